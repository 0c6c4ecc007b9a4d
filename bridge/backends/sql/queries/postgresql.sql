-- Every statement bridge's SQL backend sends to PostgreSQL (psycopg 3, named placeholders).
--
-- Generated from bridge/backends/sql/statements.py by catalogue.py; do not edit.
-- tests/test_sql_statements.py fails when this file and the statements differ;
-- regenerate with: BRIDGE_WRITE_SQL=1 pytest tests/test_sql_statements.py
--
-- The table is bridge_queue (the `table` option). [n=...] is a claim of n items
-- (the LIMIT is part of the text); [ids=...] and [rows=...] repeat a placeholder
-- or a row that many times (up to 100). Parameters are listed in the order the
-- driver takes them. Not listed: what SQLAlchemy sends by itself (the isolation
-- level, its pool's pings, schema reflection). Trailing spaces are trimmed.

-- name: create_table
-- runs in: first use of a database (create_queue, or any call)
CREATE TABLE bridge_queue (
	item_id BIGSERIAL NOT NULL,
	name VARCHAR(255) NOT NULL,
	data BYTEA NOT NULL,
	created DOUBLE PRECISION NOT NULL,
	expire DOUBLE PRECISION DEFAULT '0' NOT NULL,
	priority INTEGER DEFAULT '0' NOT NULL,
	attempts INTEGER DEFAULT '0' NOT NULL,
	token VARCHAR(32),
	state VARCHAR(16) DEFAULT 'ready' NOT NULL,
	last_error TEXT,
	held_at DOUBLE PRECISION,
	hold_reason TEXT,
	PRIMARY KEY (item_id)
);

-- name: create_claim_index
-- runs in: first use, with the table
CREATE INDEX bridge_queue_claim ON bridge_queue (name, priority DESC, item_id);

-- name: add_state_column
-- runs in: first use of a table made before the state column
ALTER TABLE bridge_queue ADD COLUMN state VARCHAR(16) DEFAULT 'ready' NOT NULL;

-- name: backfill_state
-- runs in: with add_state_column, in its transaction where DDL has one
UPDATE bridge_queue SET state='leased' WHERE bridge_queue.token IS NOT NULL AND bridge_queue.state = 'ready';

-- name: add_last_error_column
-- runs in: first use of a table made before the last_error column
ALTER TABLE bridge_queue ADD COLUMN last_error TEXT;

-- name: add_held_at_column
-- runs in: first use of a table made before the held_at column
ALTER TABLE bridge_queue ADD COLUMN held_at DOUBLE PRECISION;

-- name: add_hold_reason_column
-- runs in: first use of a table made before the hold_reason column
ALTER TABLE bridge_queue ADD COLUMN hold_reason TEXT;

-- name: session_1
-- runs in: every new connection
SET enable_sort = off;

-- name: ping
-- runs in: a pinned connection idle for over a second
SELECT 1;

-- name: begin
-- runs in: create_items of over 100 rows, delete_items of many claims
BEGIN;

-- name: commit
-- runs in: the end of those transactions
COMMIT;

-- name: rollback
-- runs in: a failed transaction
ROLLBACK;

-- name: insert[rows=1]
-- runs in: create_items
-- parameters: queue, data0, priority
INSERT INTO bridge_queue (name, data, created, expire, priority, state) VALUES (%(queue)s::VARCHAR, %(data0)s, EXTRACT(epoch FROM statement_timestamp()), 0, %(priority)s::INTEGER, 'ready') RETURNING bridge_queue.item_id;

-- name: insert[rows=3]
-- runs in: create_items
-- parameters: queue, data0, priority, data1, data2
INSERT INTO bridge_queue (name, data, created, expire, priority, state) VALUES (%(queue)s::VARCHAR, %(data0)s, EXTRACT(epoch FROM statement_timestamp()), 0, %(priority)s::INTEGER, 'ready'), (%(queue)s::VARCHAR, %(data1)s, EXTRACT(epoch FROM statement_timestamp()), 0, %(priority)s::INTEGER, 'ready'), (%(queue)s::VARCHAR, %(data2)s, EXTRACT(epoch FROM statement_timestamp()), 0, %(priority)s::INTEGER, 'ready') RETURNING bridge_queue.item_id;

-- name: insert_delayed[rows=1]
-- runs in: create_items with a delay
-- parameters: queue, data0, delay, priority
INSERT INTO bridge_queue (name, data, created, expire, priority, state) VALUES (%(queue)s::VARCHAR, %(data0)s, EXTRACT(epoch FROM statement_timestamp()), (EXTRACT(epoch FROM statement_timestamp()) + %(delay)s), %(priority)s::INTEGER, 'delayed') RETURNING bridge_queue.item_id;

-- name: claim[n=1]
-- runs in: claim_items
-- parameters: queue, lease_time, token
WITH picked AS
(SELECT bridge_queue.item_id AS item_id
FROM bridge_queue
WHERE bridge_queue.name = %(queue)s::VARCHAR AND bridge_queue.expire <= EXTRACT(epoch FROM statement_timestamp()) ORDER BY bridge_queue.priority DESC, bridge_queue.item_id
 LIMIT 1 FOR UPDATE SKIP LOCKED)
 UPDATE bridge_queue SET expire=(EXTRACT(epoch FROM statement_timestamp()) + %(lease_time)s), attempts=(bridge_queue.attempts + 1), token=%(token)s::VARCHAR, state='leased' FROM picked WHERE bridge_queue.item_id = picked.item_id AND bridge_queue.expire <= EXTRACT(epoch FROM statement_timestamp()) RETURNING bridge_queue.item_id, bridge_queue.data, bridge_queue.created, bridge_queue.expire, bridge_queue.attempts, bridge_queue.priority, bridge_queue.last_error;

-- name: claim[n=100]
-- runs in: claim_items
-- parameters: queue, lease_time, token
WITH picked AS
(SELECT bridge_queue.item_id AS item_id
FROM bridge_queue
WHERE bridge_queue.name = %(queue)s::VARCHAR AND bridge_queue.expire <= EXTRACT(epoch FROM statement_timestamp()) ORDER BY bridge_queue.priority DESC, bridge_queue.item_id
 LIMIT 100 FOR UPDATE SKIP LOCKED)
 UPDATE bridge_queue SET expire=(EXTRACT(epoch FROM statement_timestamp()) + %(lease_time)s), attempts=(bridge_queue.attempts + 1), token=%(token)s::VARCHAR, state='leased' FROM picked WHERE bridge_queue.item_id = picked.item_id AND bridge_queue.expire <= EXTRACT(epoch FROM statement_timestamp()) RETURNING bridge_queue.item_id, bridge_queue.data, bridge_queue.created, bridge_queue.expire, bridge_queue.attempts, bridge_queue.priority, bridge_queue.last_error;

-- name: delete[ids=any]
-- runs in: delete_items (one per claim)
-- parameters: ids, token
DELETE FROM bridge_queue WHERE bridge_queue.item_id = ANY (%(ids)s::BIGINT[]) AND bridge_queue.token = %(token)s::VARCHAR;

-- name: release
-- runs in: release_item
-- parameters: id, claim
UPDATE bridge_queue SET expire=0, state='ready' WHERE bridge_queue.item_id = %(id)s::BIGINT AND bridge_queue.token = %(claim)s::VARCHAR RETURNING bridge_queue.expire;

-- name: delay
-- runs in: delay_item
-- parameters: seconds, id, claim
UPDATE bridge_queue SET expire=(EXTRACT(epoch FROM statement_timestamp()) + %(seconds)s), state='delayed' WHERE bridge_queue.item_id = %(id)s::BIGINT AND bridge_queue.token = %(claim)s::VARCHAR RETURNING bridge_queue.expire;

-- name: extend
-- runs in: extend_lease
-- parameters: seconds, id, claim
UPDATE bridge_queue SET expire=(EXTRACT(epoch FROM statement_timestamp()) + %(seconds)s), state='leased' WHERE bridge_queue.item_id = %(id)s::BIGINT AND bridge_queue.token = %(claim)s::VARCHAR RETURNING bridge_queue.expire;

-- name: fail
-- runs in: fail_item without a delay
-- parameters: error, id, claim
UPDATE bridge_queue SET last_error=%(error)s::VARCHAR WHERE bridge_queue.item_id = %(id)s::BIGINT AND bridge_queue.token = %(claim)s::VARCHAR RETURNING bridge_queue.expire;

-- name: fail_delayed
-- runs in: fail_item with a delay
-- parameters: seconds, error, id, claim
UPDATE bridge_queue SET expire=(EXTRACT(epoch FROM statement_timestamp()) + %(seconds)s), state='delayed', last_error=%(error)s::VARCHAR WHERE bridge_queue.item_id = %(id)s::BIGINT AND bridge_queue.token = %(claim)s::VARCHAR RETURNING bridge_queue.expire;

-- name: hold
-- runs in: hold_item
-- parameters: error, reason, id, claim
UPDATE bridge_queue SET expire=253402300799.0, token=NULL, state='held', last_error=coalesce(%(error)s::VARCHAR, bridge_queue.last_error), held_at=EXTRACT(epoch FROM statement_timestamp()), hold_reason=%(reason)s::VARCHAR WHERE bridge_queue.item_id = %(id)s::BIGINT AND bridge_queue.token = %(claim)s::VARCHAR;

-- name: held_items
-- runs in: held_items
-- parameters: queue, limit
SELECT bridge_queue.item_id, bridge_queue.data, bridge_queue.created, bridge_queue.expire, bridge_queue.attempts, bridge_queue.priority, bridge_queue.last_error, bridge_queue.held_at, bridge_queue.hold_reason
FROM bridge_queue
WHERE bridge_queue.name = %(queue)s::VARCHAR AND bridge_queue.state = 'held' ORDER BY bridge_queue.held_at, bridge_queue.item_id
 LIMIT %(limit)s::INTEGER;

-- name: kick
-- runs in: kick with a limit
-- parameters: queue, limit
WITH oldest AS
(SELECT bridge_queue.item_id AS item_id
FROM bridge_queue
WHERE bridge_queue.name = %(queue)s::VARCHAR AND bridge_queue.state = 'held' ORDER BY bridge_queue.held_at, bridge_queue.item_id
 LIMIT %(limit)s::INTEGER FOR UPDATE SKIP LOCKED)
 UPDATE bridge_queue SET expire=0, attempts=0, state='ready', held_at=NULL, hold_reason=NULL FROM oldest WHERE bridge_queue.item_id = oldest.item_id AND bridge_queue.state = 'held';

-- name: kick_all
-- runs in: kick without a limit
-- parameters: queue
UPDATE bridge_queue SET expire=0, attempts=0, state='ready', held_at=NULL, hold_reason=NULL WHERE bridge_queue.name = %(queue)s::VARCHAR AND bridge_queue.state = 'held';

-- name: kick_item
-- runs in: kick_item
-- parameters: id, queue
UPDATE bridge_queue SET expire=0, attempts=0, state='ready', held_at=NULL, hold_reason=NULL WHERE bridge_queue.item_id = %(id)s::BIGINT AND bridge_queue.name = %(queue)s::VARCHAR AND bridge_queue.state = 'held';

-- name: delete_held
-- runs in: delete_held with a limit
-- parameters: queue, limit
WITH oldest AS
(SELECT bridge_queue.item_id AS item_id
FROM bridge_queue
WHERE bridge_queue.name = %(queue)s::VARCHAR AND bridge_queue.state = 'held' ORDER BY bridge_queue.held_at, bridge_queue.item_id
 LIMIT %(limit)s::INTEGER FOR UPDATE SKIP LOCKED)
 DELETE FROM bridge_queue USING oldest WHERE bridge_queue.item_id = oldest.item_id AND bridge_queue.state = 'held';

-- name: delete_all_held
-- runs in: delete_held without a limit
-- parameters: queue
DELETE FROM bridge_queue WHERE bridge_queue.name = %(queue)s::VARCHAR AND bridge_queue.state = 'held';

-- name: counts
-- runs in: counts, number_of_items
-- parameters: queue
SELECT count(*) AS count_1, coalesce(sum(CASE WHEN (bridge_queue.expire > EXTRACT(epoch FROM statement_timestamp()) AND bridge_queue.state = 'leased') THEN 1 ELSE 0 END), 0) AS coalesce_1, coalesce(sum(CASE WHEN (bridge_queue.expire > EXTRACT(epoch FROM statement_timestamp()) AND bridge_queue.state != 'leased' AND bridge_queue.state != 'held') THEN 1 ELSE 0 END), 0) AS coalesce_2, coalesce(sum(CASE WHEN (bridge_queue.state = 'held') THEN 1 ELSE 0 END), 0) AS coalesce_3
FROM bridge_queue
WHERE bridge_queue.name = %(queue)s::VARCHAR;

-- name: oldest_ready_age
-- runs in: oldest_ready_age
-- parameters: queue
SELECT EXTRACT(epoch FROM statement_timestamp()) - min(bridge_queue.created) AS anon_1
FROM bridge_queue
WHERE bridge_queue.name = %(queue)s::VARCHAR AND bridge_queue.expire <= EXTRACT(epoch FROM statement_timestamp());

-- name: queue_names
-- runs in: queue_names
SELECT bridge_queue.name, count(*) AS count_1
FROM bridge_queue GROUP BY bridge_queue.name;

-- name: peek
-- runs in: peek
-- parameters: queue, limit
SELECT bridge_queue.item_id, bridge_queue.data, bridge_queue.created, bridge_queue.expire, bridge_queue.attempts, bridge_queue.priority, bridge_queue.last_error
FROM bridge_queue
WHERE bridge_queue.name = %(queue)s::VARCHAR AND bridge_queue.state != 'held' ORDER BY CASE WHEN (bridge_queue.expire <= EXTRACT(epoch FROM statement_timestamp())) THEN 0 ELSE 1 END, bridge_queue.priority DESC, bridge_queue.item_id
 LIMIT %(limit)s::INTEGER;

-- name: free_leases
-- runs in: release_all, first
-- parameters: queue
UPDATE bridge_queue SET expire=0, token=NULL, state='ready' WHERE bridge_queue.name = %(queue)s::VARCHAR AND bridge_queue.expire > EXTRACT(epoch FROM statement_timestamp()) AND bridge_queue.state != 'held';

-- name: end_claims
-- runs in: release_all, then, in its transaction
-- parameters: queue
UPDATE bridge_queue SET token=NULL WHERE bridge_queue.name = %(queue)s::VARCHAR AND bridge_queue.token IS NOT NULL AND bridge_queue.expire <= EXTRACT(epoch FROM statement_timestamp());

-- name: delete_queue
-- runs in: delete_queue
-- parameters: queue
DELETE FROM bridge_queue WHERE bridge_queue.name = %(queue)s::VARCHAR;
