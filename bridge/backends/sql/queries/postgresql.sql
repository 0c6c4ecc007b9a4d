-- Every statement bridge's SQL backend sends to PostgreSQL (psycopg 3, named placeholders).
--
-- Generated from bridge/backends/sql/statements.py and topic_statements.py by
-- catalogue.py; do not edit.
-- tests/test_sql_statements.py fails when this file and the statements differ;
-- regenerate with: BRIDGE_WRITE_SQL=1 pytest tests/test_sql_statements.py
--
-- The table is bridge_queue (the `table` option); the topic store's statements
-- (topic_*) use bridge_queue_topic and bridge_queue_topic_sub beside it.
-- [n=...] is a claim of n items (the LIMIT is part of the text); [ids=...] and
-- [rows=...] repeat a placeholder or a row that many times (up to 100).
-- Parameters are listed in the order the driver takes them. Not listed: what
-- SQLAlchemy sends by itself (the isolation level, its pool's pings, schema
-- reflection). Trailing spaces are trimmed.

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
	ttl_end DOUBLE PRECISION,
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

-- name: add_ttl_end_column
-- runs in: first use of a table made before the ttl_end column
ALTER TABLE bridge_queue ADD COLUMN ttl_end DOUBLE PRECISION;

-- name: session_1
-- runs in: every new connection
SET enable_sort = off;

-- name: session_2
-- runs in: every new connection
SET jit = off;

-- name: ping
-- runs in: a pinned connection idle for over a second
SELECT 1;

-- name: begin
-- runs in: create_items of over 100 rows, delete_items of many claims, settle_and_claim of a release or a delay of 0
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
WITH created AS
(INSERT INTO bridge_queue (name, data, created, expire, priority, state) VALUES (%(queue)s::VARCHAR, %(data0)s, EXTRACT(epoch FROM statement_timestamp()), 0, %(priority)s::INTEGER, 'ready') RETURNING bridge_queue.item_id),
woken AS
(SELECT pg_notify('bridge_queue', %(queue)s::VARCHAR) AS woken)
 SELECT created.item_id
FROM created JOIN woken ON true;

-- name: insert[rows=3]
-- runs in: create_items
-- parameters: queue, data0, priority, data1, data2
WITH created AS
(INSERT INTO bridge_queue (name, data, created, expire, priority, state) VALUES (%(queue)s::VARCHAR, %(data0)s, EXTRACT(epoch FROM statement_timestamp()), 0, %(priority)s::INTEGER, 'ready'), (%(queue)s::VARCHAR, %(data1)s, EXTRACT(epoch FROM statement_timestamp()), 0, %(priority)s::INTEGER, 'ready'), (%(queue)s::VARCHAR, %(data2)s, EXTRACT(epoch FROM statement_timestamp()), 0, %(priority)s::INTEGER, 'ready') RETURNING bridge_queue.item_id),
woken AS
(SELECT pg_notify('bridge_queue', %(queue)s::VARCHAR) AS woken)
 SELECT created.item_id
FROM created JOIN woken ON true;

-- name: insert_delayed[rows=1]
-- runs in: create_items with a delay
-- parameters: queue, data0, delay, priority
INSERT INTO bridge_queue (name, data, created, expire, priority, state) VALUES (%(queue)s::VARCHAR, %(data0)s, EXTRACT(epoch FROM statement_timestamp()), (EXTRACT(epoch FROM statement_timestamp()) + %(delay)s), %(priority)s::INTEGER, 'delayed') RETURNING bridge_queue.item_id;

-- name: insert_ttl[rows=1]
-- runs in: create_items with a ttl
-- parameters: queue, data0, priority, ttl
WITH created AS
(INSERT INTO bridge_queue (name, data, created, expire, priority, state, ttl_end) VALUES (%(queue)s::VARCHAR, %(data0)s, EXTRACT(epoch FROM statement_timestamp()), 0, %(priority)s::INTEGER, 'ready', (EXTRACT(epoch FROM statement_timestamp()) + %(ttl)s)) RETURNING bridge_queue.item_id),
woken AS
(SELECT pg_notify('bridge_queue', %(queue)s::VARCHAR) AS woken)
 SELECT created.item_id
FROM created JOIN woken ON true;

-- name: claim[n=1]
-- runs in: claim_items; settle_and_claim, after the settlement
-- parameters: queue, lease_time, token
WITH picked AS
(SELECT bridge_queue.item_id AS item_id
FROM bridge_queue
WHERE bridge_queue.name = %(queue)s::VARCHAR AND bridge_queue.expire <= EXTRACT(epoch FROM statement_timestamp()) AND (bridge_queue.ttl_end IS NULL OR bridge_queue.ttl_end > EXTRACT(epoch FROM statement_timestamp())) ORDER BY bridge_queue.priority DESC, bridge_queue.item_id
 LIMIT 1 FOR UPDATE SKIP LOCKED)
 UPDATE bridge_queue SET expire=(EXTRACT(epoch FROM statement_timestamp()) + %(lease_time)s), attempts=(bridge_queue.attempts + 1), token=%(token)s::VARCHAR, state='leased' FROM picked WHERE bridge_queue.item_id = picked.item_id AND bridge_queue.expire <= EXTRACT(epoch FROM statement_timestamp()) RETURNING bridge_queue.item_id, bridge_queue.data, bridge_queue.created, bridge_queue.expire, bridge_queue.attempts, bridge_queue.priority, bridge_queue.last_error;

-- name: claim[n=100]
-- runs in: claim_items; settle_and_claim, after the settlement
-- parameters: queue, lease_time, token
WITH picked AS
(SELECT bridge_queue.item_id AS item_id
FROM bridge_queue
WHERE bridge_queue.name = %(queue)s::VARCHAR AND bridge_queue.expire <= EXTRACT(epoch FROM statement_timestamp()) AND (bridge_queue.ttl_end IS NULL OR bridge_queue.ttl_end > EXTRACT(epoch FROM statement_timestamp())) ORDER BY bridge_queue.priority DESC, bridge_queue.item_id
 LIMIT 100 FOR UPDATE SKIP LOCKED)
 UPDATE bridge_queue SET expire=(EXTRACT(epoch FROM statement_timestamp()) + %(lease_time)s), attempts=(bridge_queue.attempts + 1), token=%(token)s::VARCHAR, state='leased' FROM picked WHERE bridge_queue.item_id = picked.item_id AND bridge_queue.expire <= EXTRACT(epoch FROM statement_timestamp()) RETURNING bridge_queue.item_id, bridge_queue.data, bridge_queue.created, bridge_queue.expire, bridge_queue.attempts, bridge_queue.priority, bridge_queue.last_error;

-- name: claim_grace[n=1]
-- runs in: claim_items with a grace
-- parameters: queue, lease_time, token, grace
WITH picked AS
(SELECT bridge_queue.item_id AS item_id
FROM bridge_queue
WHERE bridge_queue.name = %(queue)s::VARCHAR AND bridge_queue.expire <= EXTRACT(epoch FROM statement_timestamp()) AND (bridge_queue.ttl_end IS NULL OR bridge_queue.ttl_end > EXTRACT(epoch FROM statement_timestamp())) ORDER BY bridge_queue.priority DESC, bridge_queue.item_id
 LIMIT 1 FOR UPDATE SKIP LOCKED)
 UPDATE bridge_queue SET expire=(EXTRACT(epoch FROM statement_timestamp()) + %(lease_time)s), attempts=(bridge_queue.attempts + 1), token=%(token)s::VARCHAR, state='leased', ttl_end=CASE WHEN (bridge_queue.ttl_end < EXTRACT(epoch FROM statement_timestamp()) + %(lease_time)s + %(grace)s) THEN EXTRACT(epoch FROM statement_timestamp()) + %(lease_time)s + %(grace)s ELSE bridge_queue.ttl_end END FROM picked WHERE bridge_queue.item_id = picked.item_id AND bridge_queue.expire <= EXTRACT(epoch FROM statement_timestamp()) RETURNING bridge_queue.item_id, bridge_queue.data, bridge_queue.created, bridge_queue.expire, bridge_queue.attempts, bridge_queue.priority, bridge_queue.last_error;

-- name: delete[ids=any]
-- runs in: delete_items (one per claim)
-- parameters: ids, token
DELETE FROM bridge_queue WHERE bridge_queue.item_id = ANY (%(ids)s::BIGINT[]) AND bridge_queue.token = %(token)s::VARCHAR;

-- name: settle_and_claim[delete,n=1]
-- runs in: settle_and_claim(delete) of 1: one statement
-- parameters: id, claim, queue, lease_time, token
WITH settled AS
(DELETE FROM bridge_queue WHERE bridge_queue.item_id = %(id)s::BIGINT AND bridge_queue.token = %(claim)s::VARCHAR RETURNING bridge_queue.item_id),
picked AS
(SELECT bridge_queue.item_id AS item_id
FROM bridge_queue
WHERE bridge_queue.name = %(queue)s::VARCHAR AND bridge_queue.expire <= EXTRACT(epoch FROM statement_timestamp()) AND (bridge_queue.ttl_end IS NULL OR bridge_queue.ttl_end > EXTRACT(epoch FROM statement_timestamp())) AND bridge_queue.item_id != %(id)s::BIGINT ORDER BY bridge_queue.priority DESC, bridge_queue.item_id
 LIMIT 1 FOR UPDATE SKIP LOCKED),
claimed AS
(UPDATE bridge_queue SET expire=(EXTRACT(epoch FROM statement_timestamp()) + %(lease_time)s), attempts=(bridge_queue.attempts + 1), token=%(token)s::VARCHAR, state='leased' FROM picked WHERE bridge_queue.item_id = picked.item_id AND bridge_queue.expire <= EXTRACT(epoch FROM statement_timestamp()) RETURNING bridge_queue.item_id, bridge_queue.data, bridge_queue.created, bridge_queue.expire, bridge_queue.attempts, bridge_queue.priority, bridge_queue.last_error)
 SELECT done.settled, claimed.item_id, claimed.data, claimed.created, claimed.expire, claimed.attempts, claimed.priority, claimed.last_error
FROM (SELECT count(*) AS settled
FROM settled) AS done LEFT OUTER JOIN claimed ON true;

-- name: settle_and_claim[delay,n=1]
-- runs in: settle_and_claim(delay of over 0 s) of 1: one statement
-- parameters: seconds, id, claim, queue, lease_time, token
WITH settled AS
(UPDATE bridge_queue SET expire=(EXTRACT(epoch FROM statement_timestamp()) + %(seconds)s), state='delayed' WHERE bridge_queue.item_id = %(id)s::BIGINT AND bridge_queue.token = %(claim)s::VARCHAR RETURNING bridge_queue.item_id),
picked AS
(SELECT bridge_queue.item_id AS item_id
FROM bridge_queue
WHERE bridge_queue.name = %(queue)s::VARCHAR AND bridge_queue.expire <= EXTRACT(epoch FROM statement_timestamp()) AND (bridge_queue.ttl_end IS NULL OR bridge_queue.ttl_end > EXTRACT(epoch FROM statement_timestamp())) AND bridge_queue.item_id != %(id)s::BIGINT ORDER BY bridge_queue.priority DESC, bridge_queue.item_id
 LIMIT 1 FOR UPDATE SKIP LOCKED),
claimed AS
(UPDATE bridge_queue SET expire=(EXTRACT(epoch FROM statement_timestamp()) + %(lease_time)s), attempts=(bridge_queue.attempts + 1), token=%(token)s::VARCHAR, state='leased' FROM picked WHERE bridge_queue.item_id = picked.item_id AND bridge_queue.expire <= EXTRACT(epoch FROM statement_timestamp()) RETURNING bridge_queue.item_id, bridge_queue.data, bridge_queue.created, bridge_queue.expire, bridge_queue.attempts, bridge_queue.priority, bridge_queue.last_error)
 SELECT done.settled, claimed.item_id, claimed.data, claimed.created, claimed.expire, claimed.attempts, claimed.priority, claimed.last_error
FROM (SELECT count(*) AS settled
FROM settled) AS done LEFT OUTER JOIN claimed ON true;

-- name: settle_and_claim[fail,n=1]
-- runs in: settle_and_claim(fail without a delay) of 1: one statement
-- parameters: error, id, claim, queue, lease_time, token
WITH settled AS
(UPDATE bridge_queue SET last_error=%(error)s::VARCHAR WHERE bridge_queue.item_id = %(id)s::BIGINT AND bridge_queue.token = %(claim)s::VARCHAR RETURNING bridge_queue.item_id),
picked AS
(SELECT bridge_queue.item_id AS item_id
FROM bridge_queue
WHERE bridge_queue.name = %(queue)s::VARCHAR AND bridge_queue.expire <= EXTRACT(epoch FROM statement_timestamp()) AND (bridge_queue.ttl_end IS NULL OR bridge_queue.ttl_end > EXTRACT(epoch FROM statement_timestamp())) AND bridge_queue.item_id != %(id)s::BIGINT ORDER BY bridge_queue.priority DESC, bridge_queue.item_id
 LIMIT 1 FOR UPDATE SKIP LOCKED),
claimed AS
(UPDATE bridge_queue SET expire=(EXTRACT(epoch FROM statement_timestamp()) + %(lease_time)s), attempts=(bridge_queue.attempts + 1), token=%(token)s::VARCHAR, state='leased' FROM picked WHERE bridge_queue.item_id = picked.item_id AND bridge_queue.expire <= EXTRACT(epoch FROM statement_timestamp()) RETURNING bridge_queue.item_id, bridge_queue.data, bridge_queue.created, bridge_queue.expire, bridge_queue.attempts, bridge_queue.priority, bridge_queue.last_error)
 SELECT done.settled, claimed.item_id, claimed.data, claimed.created, claimed.expire, claimed.attempts, claimed.priority, claimed.last_error
FROM (SELECT count(*) AS settled
FROM settled) AS done LEFT OUTER JOIN claimed ON true;

-- name: settle_and_claim[fail_delayed,n=1]
-- runs in: settle_and_claim(fail with a delay of over 0 s) of 1: one statement
-- parameters: seconds, error, id, claim, queue, lease_time, token
WITH settled AS
(UPDATE bridge_queue SET expire=(EXTRACT(epoch FROM statement_timestamp()) + %(seconds)s), state='delayed', last_error=%(error)s::VARCHAR WHERE bridge_queue.item_id = %(id)s::BIGINT AND bridge_queue.token = %(claim)s::VARCHAR RETURNING bridge_queue.item_id),
picked AS
(SELECT bridge_queue.item_id AS item_id
FROM bridge_queue
WHERE bridge_queue.name = %(queue)s::VARCHAR AND bridge_queue.expire <= EXTRACT(epoch FROM statement_timestamp()) AND (bridge_queue.ttl_end IS NULL OR bridge_queue.ttl_end > EXTRACT(epoch FROM statement_timestamp())) AND bridge_queue.item_id != %(id)s::BIGINT ORDER BY bridge_queue.priority DESC, bridge_queue.item_id
 LIMIT 1 FOR UPDATE SKIP LOCKED),
claimed AS
(UPDATE bridge_queue SET expire=(EXTRACT(epoch FROM statement_timestamp()) + %(lease_time)s), attempts=(bridge_queue.attempts + 1), token=%(token)s::VARCHAR, state='leased' FROM picked WHERE bridge_queue.item_id = picked.item_id AND bridge_queue.expire <= EXTRACT(epoch FROM statement_timestamp()) RETURNING bridge_queue.item_id, bridge_queue.data, bridge_queue.created, bridge_queue.expire, bridge_queue.attempts, bridge_queue.priority, bridge_queue.last_error)
 SELECT done.settled, claimed.item_id, claimed.data, claimed.created, claimed.expire, claimed.attempts, claimed.priority, claimed.last_error
FROM (SELECT count(*) AS settled
FROM settled) AS done LEFT OUTER JOIN claimed ON true;

-- name: settle_and_claim[hold,n=1]
-- runs in: settle_and_claim(hold) of 1: one statement
-- parameters: error, reason, id, claim, queue, lease_time, token
WITH settled AS
(UPDATE bridge_queue SET expire=253402300799.0, token=NULL, state='held', last_error=coalesce(%(error)s::VARCHAR, bridge_queue.last_error), held_at=EXTRACT(epoch FROM statement_timestamp()), hold_reason=%(reason)s::VARCHAR WHERE bridge_queue.item_id = %(id)s::BIGINT AND bridge_queue.token = %(claim)s::VARCHAR RETURNING bridge_queue.item_id),
picked AS
(SELECT bridge_queue.item_id AS item_id
FROM bridge_queue
WHERE bridge_queue.name = %(queue)s::VARCHAR AND bridge_queue.expire <= EXTRACT(epoch FROM statement_timestamp()) AND (bridge_queue.ttl_end IS NULL OR bridge_queue.ttl_end > EXTRACT(epoch FROM statement_timestamp())) AND bridge_queue.item_id != %(id)s::BIGINT ORDER BY bridge_queue.priority DESC, bridge_queue.item_id
 LIMIT 1 FOR UPDATE SKIP LOCKED),
claimed AS
(UPDATE bridge_queue SET expire=(EXTRACT(epoch FROM statement_timestamp()) + %(lease_time)s), attempts=(bridge_queue.attempts + 1), token=%(token)s::VARCHAR, state='leased' FROM picked WHERE bridge_queue.item_id = picked.item_id AND bridge_queue.expire <= EXTRACT(epoch FROM statement_timestamp()) RETURNING bridge_queue.item_id, bridge_queue.data, bridge_queue.created, bridge_queue.expire, bridge_queue.attempts, bridge_queue.priority, bridge_queue.last_error)
 SELECT done.settled, claimed.item_id, claimed.data, claimed.created, claimed.expire, claimed.attempts, claimed.priority, claimed.last_error
FROM (SELECT count(*) AS settled
FROM settled) AS done LEFT OUTER JOIN claimed ON true;

-- name: settle_and_claim[delete,n=100]
-- runs in: settle_and_claim(delete) of 100: one statement
-- parameters: id, claim, queue, lease_time, token
WITH settled AS
(DELETE FROM bridge_queue WHERE bridge_queue.item_id = %(id)s::BIGINT AND bridge_queue.token = %(claim)s::VARCHAR RETURNING bridge_queue.item_id),
picked AS
(SELECT bridge_queue.item_id AS item_id
FROM bridge_queue
WHERE bridge_queue.name = %(queue)s::VARCHAR AND bridge_queue.expire <= EXTRACT(epoch FROM statement_timestamp()) AND (bridge_queue.ttl_end IS NULL OR bridge_queue.ttl_end > EXTRACT(epoch FROM statement_timestamp())) AND bridge_queue.item_id != %(id)s::BIGINT ORDER BY bridge_queue.priority DESC, bridge_queue.item_id
 LIMIT 100 FOR UPDATE SKIP LOCKED),
claimed AS
(UPDATE bridge_queue SET expire=(EXTRACT(epoch FROM statement_timestamp()) + %(lease_time)s), attempts=(bridge_queue.attempts + 1), token=%(token)s::VARCHAR, state='leased' FROM picked WHERE bridge_queue.item_id = picked.item_id AND bridge_queue.expire <= EXTRACT(epoch FROM statement_timestamp()) RETURNING bridge_queue.item_id, bridge_queue.data, bridge_queue.created, bridge_queue.expire, bridge_queue.attempts, bridge_queue.priority, bridge_queue.last_error)
 SELECT done.settled, claimed.item_id, claimed.data, claimed.created, claimed.expire, claimed.attempts, claimed.priority, claimed.last_error
FROM (SELECT count(*) AS settled
FROM settled) AS done LEFT OUTER JOIN claimed ON true;

-- name: release
-- runs in: release_item; settle_and_claim, first, of a release or a delay of 0
-- parameters: id, claim
UPDATE bridge_queue SET expire=0, state='ready' WHERE bridge_queue.item_id = %(id)s::BIGINT AND bridge_queue.token = %(claim)s::VARCHAR RETURNING bridge_queue.expire;

-- name: delay
-- runs in: delay_item; settle_and_claim, first, of a release or a delay of 0
-- parameters: seconds, id, claim
UPDATE bridge_queue SET expire=(EXTRACT(epoch FROM statement_timestamp()) + %(seconds)s), state='delayed' WHERE bridge_queue.item_id = %(id)s::BIGINT AND bridge_queue.token = %(claim)s::VARCHAR RETURNING bridge_queue.expire;

-- name: extend
-- runs in: extend_lease
-- parameters: seconds, id, claim
UPDATE bridge_queue SET expire=(EXTRACT(epoch FROM statement_timestamp()) + %(seconds)s), state='leased' WHERE bridge_queue.item_id = %(id)s::BIGINT AND bridge_queue.token = %(claim)s::VARCHAR RETURNING bridge_queue.expire;

-- name: extend_grace
-- runs in: extend_lease with a grace
-- parameters: seconds, grace, id, claim
UPDATE bridge_queue SET expire=(EXTRACT(epoch FROM statement_timestamp()) + %(seconds)s), state='leased', ttl_end=CASE WHEN (bridge_queue.ttl_end < EXTRACT(epoch FROM statement_timestamp()) + %(seconds)s + %(grace)s) THEN EXTRACT(epoch FROM statement_timestamp()) + %(seconds)s + %(grace)s ELSE bridge_queue.ttl_end END WHERE bridge_queue.item_id = %(id)s::BIGINT AND bridge_queue.token = %(claim)s::VARCHAR RETURNING bridge_queue.expire;

-- name: fail
-- runs in: fail_item without a delay
-- parameters: error, id, claim
UPDATE bridge_queue SET last_error=%(error)s::VARCHAR WHERE bridge_queue.item_id = %(id)s::BIGINT AND bridge_queue.token = %(claim)s::VARCHAR RETURNING bridge_queue.expire;

-- name: fail_delayed
-- runs in: fail_item with a delay; settle_and_claim, first, of a release or a delay of 0
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
SELECT count(*) AS count_1, count(*) FILTER (WHERE bridge_queue.expire > (SELECT CAST(EXTRACT(epoch FROM statement_timestamp()) AS DOUBLE PRECISION) AS anon_2) AND bridge_queue.state = 'leased') AS anon_1, count(*) FILTER (WHERE bridge_queue.expire > (SELECT CAST(EXTRACT(epoch FROM statement_timestamp()) AS DOUBLE PRECISION) AS anon_2) AND bridge_queue.state != 'leased' AND bridge_queue.state != 'held' AND (bridge_queue.ttl_end IS NULL OR bridge_queue.ttl_end > (SELECT CAST(EXTRACT(epoch FROM statement_timestamp()) AS DOUBLE PRECISION) AS anon_2))) AS anon_3, count(*) FILTER (WHERE bridge_queue.expire > (SELECT CAST(EXTRACT(epoch FROM statement_timestamp()) AS DOUBLE PRECISION) AS anon_2) AND bridge_queue.state = 'held') AS anon_4, count(*) FILTER (WHERE bridge_queue.ttl_end IS NOT NULL AND bridge_queue.ttl_end <= (SELECT CAST(EXTRACT(epoch FROM statement_timestamp()) AS DOUBLE PRECISION) AS anon_2) AND bridge_queue.state != 'held' AND (bridge_queue.expire <= (SELECT CAST(EXTRACT(epoch FROM statement_timestamp()) AS DOUBLE PRECISION) AS anon_2) OR bridge_queue.state != 'leased')) AS anon_5
FROM bridge_queue
WHERE bridge_queue.name = %(queue)s::VARCHAR;

-- name: oldest_ready_age
-- runs in: oldest_ready_age
-- parameters: queue
WITH RECURSIVE levels(priority) AS
(SELECT (SELECT bridge_queue.priority
FROM bridge_queue
WHERE bridge_queue.name = %(queue)s::VARCHAR ORDER BY bridge_queue.priority DESC
 LIMIT 1) AS priority UNION ALL SELECT (SELECT bridge_queue.priority
FROM bridge_queue
WHERE bridge_queue.name = %(queue)s::VARCHAR AND bridge_queue.priority < levels.priority ORDER BY bridge_queue.priority DESC
 LIMIT 1) AS priority
FROM levels
WHERE levels.priority IS NOT NULL)
 SELECT EXTRACT(epoch FROM statement_timestamp()) - min((SELECT bridge_queue.created
FROM bridge_queue
WHERE bridge_queue.name = %(queue)s::VARCHAR AND bridge_queue.priority <= levels.priority AND bridge_queue.expire <= EXTRACT(epoch FROM statement_timestamp()) AND (bridge_queue.ttl_end IS NULL OR bridge_queue.ttl_end > EXTRACT(epoch FROM statement_timestamp())) ORDER BY bridge_queue.priority DESC, bridge_queue.item_id
 LIMIT 1)) AS anon_1
FROM levels
WHERE levels.priority IS NOT NULL;

-- name: queue_names
-- runs in: queue_names
SELECT bridge_queue.name, count(*) AS count_1
FROM bridge_queue GROUP BY bridge_queue.name;

-- name: peek
-- runs in: peek
-- parameters: queue, limit
SELECT bridge_queue.item_id, bridge_queue.data, bridge_queue.created, bridge_queue.expire, bridge_queue.attempts, bridge_queue.priority, bridge_queue.last_error
FROM bridge_queue
WHERE bridge_queue.name = %(queue)s::VARCHAR AND bridge_queue.state != 'held' AND NOT (bridge_queue.ttl_end IS NOT NULL AND bridge_queue.ttl_end <= EXTRACT(epoch FROM statement_timestamp()) AND bridge_queue.state != 'held' AND (bridge_queue.expire <= EXTRACT(epoch FROM statement_timestamp()) OR bridge_queue.state != 'leased')) ORDER BY CASE WHEN (bridge_queue.expire <= EXTRACT(epoch FROM statement_timestamp())) THEN 0 ELSE 1 END, bridge_queue.priority DESC, bridge_queue.item_id
 LIMIT %(limit)s::INTEGER;

-- name: browse[every state]
-- runs in: browse, the first page, every state
-- parameters: queue, limit
SELECT bridge_queue.item_id, bridge_queue.data, bridge_queue.created, bridge_queue.expire, bridge_queue.attempts, bridge_queue.priority, bridge_queue.last_error, bridge_queue.held_at, bridge_queue.hold_reason, CASE WHEN (bridge_queue.expire <= (SELECT CAST(EXTRACT(epoch FROM statement_timestamp()) AS DOUBLE PRECISION) AS anon_1)) THEN 'ready' WHEN (bridge_queue.state = 'held') THEN 'held' WHEN (bridge_queue.state = 'leased') THEN 'leased' ELSE 'delayed' END AS shown
FROM bridge_queue
WHERE bridge_queue.name = %(queue)s::VARCHAR AND NOT (bridge_queue.ttl_end IS NOT NULL AND bridge_queue.ttl_end <= (SELECT CAST(EXTRACT(epoch FROM statement_timestamp()) AS DOUBLE PRECISION) AS anon_1) AND bridge_queue.state != 'held' AND (bridge_queue.expire <= (SELECT CAST(EXTRACT(epoch FROM statement_timestamp()) AS DOUBLE PRECISION) AS anon_1) OR bridge_queue.state != 'leased')) ORDER BY bridge_queue.priority DESC, bridge_queue.item_id
 LIMIT %(limit)s::INTEGER;

-- name: browse_after[every state]
-- runs in: browse, a next page, every state
-- parameters: queue, after_priority, after_id, limit
SELECT page.item_id, page.data, page.created, page.expire, page.attempts, page.priority, page.last_error, page.held_at, page.hold_reason, page.shown
FROM (SELECT rest.item_id AS item_id, rest.data AS data, rest.created AS created, rest.expire AS expire, rest.attempts AS attempts, rest.priority AS priority, rest.last_error AS last_error, rest.held_at AS held_at, rest.hold_reason AS hold_reason, rest.shown AS shown
FROM (SELECT bridge_queue.item_id AS item_id, bridge_queue.data AS data, bridge_queue.created AS created, bridge_queue.expire AS expire, bridge_queue.attempts AS attempts, bridge_queue.priority AS priority, bridge_queue.last_error AS last_error, bridge_queue.held_at AS held_at, bridge_queue.hold_reason AS hold_reason, CASE WHEN (bridge_queue.expire <= (SELECT CAST(EXTRACT(epoch FROM statement_timestamp()) AS DOUBLE PRECISION) AS anon_1)) THEN 'ready' WHEN (bridge_queue.state = 'held') THEN 'held' WHEN (bridge_queue.state = 'leased') THEN 'leased' ELSE 'delayed' END AS shown
FROM bridge_queue
WHERE bridge_queue.name = %(queue)s::VARCHAR AND NOT (bridge_queue.ttl_end IS NOT NULL AND bridge_queue.ttl_end <= (SELECT CAST(EXTRACT(epoch FROM statement_timestamp()) AS DOUBLE PRECISION) AS anon_1) AND bridge_queue.state != 'held' AND (bridge_queue.expire <= (SELECT CAST(EXTRACT(epoch FROM statement_timestamp()) AS DOUBLE PRECISION) AS anon_1) OR bridge_queue.state != 'leased')) AND bridge_queue.priority = %(after_priority)s::INTEGER AND bridge_queue.item_id > %(after_id)s::BIGINT ORDER BY bridge_queue.priority DESC, bridge_queue.item_id
 LIMIT %(limit)s::INTEGER) AS rest UNION ALL SELECT lower.item_id AS item_id, lower.data AS data, lower.created AS created, lower.expire AS expire, lower.attempts AS attempts, lower.priority AS priority, lower.last_error AS last_error, lower.held_at AS held_at, lower.hold_reason AS hold_reason, lower.shown AS shown
FROM (SELECT bridge_queue.item_id AS item_id, bridge_queue.data AS data, bridge_queue.created AS created, bridge_queue.expire AS expire, bridge_queue.attempts AS attempts, bridge_queue.priority AS priority, bridge_queue.last_error AS last_error, bridge_queue.held_at AS held_at, bridge_queue.hold_reason AS hold_reason, CASE WHEN (bridge_queue.expire <= (SELECT CAST(EXTRACT(epoch FROM statement_timestamp()) AS DOUBLE PRECISION) AS anon_1)) THEN 'ready' WHEN (bridge_queue.state = 'held') THEN 'held' WHEN (bridge_queue.state = 'leased') THEN 'leased' ELSE 'delayed' END AS shown
FROM bridge_queue
WHERE bridge_queue.name = %(queue)s::VARCHAR AND NOT (bridge_queue.ttl_end IS NOT NULL AND bridge_queue.ttl_end <= (SELECT CAST(EXTRACT(epoch FROM statement_timestamp()) AS DOUBLE PRECISION) AS anon_1) AND bridge_queue.state != 'held' AND (bridge_queue.expire <= (SELECT CAST(EXTRACT(epoch FROM statement_timestamp()) AS DOUBLE PRECISION) AS anon_1) OR bridge_queue.state != 'leased')) AND bridge_queue.priority < %(after_priority)s::INTEGER ORDER BY bridge_queue.priority DESC, bridge_queue.item_id
 LIMIT %(limit)s::INTEGER) AS lower) AS page ORDER BY page.priority DESC, page.item_id
 LIMIT %(limit)s::INTEGER;

-- name: browse[ready]
-- runs in: browse, the first page, ready
-- parameters: queue, limit
SELECT bridge_queue.item_id, bridge_queue.data, bridge_queue.created, bridge_queue.expire, bridge_queue.attempts, bridge_queue.priority, bridge_queue.last_error, bridge_queue.held_at, bridge_queue.hold_reason, CASE WHEN (bridge_queue.expire <= (SELECT CAST(EXTRACT(epoch FROM statement_timestamp()) AS DOUBLE PRECISION) AS anon_1)) THEN 'ready' WHEN (bridge_queue.state = 'held') THEN 'held' WHEN (bridge_queue.state = 'leased') THEN 'leased' ELSE 'delayed' END AS shown
FROM bridge_queue
WHERE bridge_queue.name = %(queue)s::VARCHAR AND NOT (bridge_queue.ttl_end IS NOT NULL AND bridge_queue.ttl_end <= (SELECT CAST(EXTRACT(epoch FROM statement_timestamp()) AS DOUBLE PRECISION) AS anon_1) AND bridge_queue.state != 'held' AND (bridge_queue.expire <= (SELECT CAST(EXTRACT(epoch FROM statement_timestamp()) AS DOUBLE PRECISION) AS anon_1) OR bridge_queue.state != 'leased')) AND bridge_queue.expire <= (SELECT CAST(EXTRACT(epoch FROM statement_timestamp()) AS DOUBLE PRECISION) AS anon_1) AND (bridge_queue.ttl_end IS NULL OR bridge_queue.ttl_end > (SELECT CAST(EXTRACT(epoch FROM statement_timestamp()) AS DOUBLE PRECISION) AS anon_1)) ORDER BY bridge_queue.priority DESC, bridge_queue.item_id
 LIMIT %(limit)s::INTEGER;

-- name: browse_after[ready]
-- runs in: browse, a next page, ready
-- parameters: queue, after_priority, after_id, limit
SELECT page.item_id, page.data, page.created, page.expire, page.attempts, page.priority, page.last_error, page.held_at, page.hold_reason, page.shown
FROM (SELECT rest.item_id AS item_id, rest.data AS data, rest.created AS created, rest.expire AS expire, rest.attempts AS attempts, rest.priority AS priority, rest.last_error AS last_error, rest.held_at AS held_at, rest.hold_reason AS hold_reason, rest.shown AS shown
FROM (SELECT bridge_queue.item_id AS item_id, bridge_queue.data AS data, bridge_queue.created AS created, bridge_queue.expire AS expire, bridge_queue.attempts AS attempts, bridge_queue.priority AS priority, bridge_queue.last_error AS last_error, bridge_queue.held_at AS held_at, bridge_queue.hold_reason AS hold_reason, CASE WHEN (bridge_queue.expire <= (SELECT CAST(EXTRACT(epoch FROM statement_timestamp()) AS DOUBLE PRECISION) AS anon_1)) THEN 'ready' WHEN (bridge_queue.state = 'held') THEN 'held' WHEN (bridge_queue.state = 'leased') THEN 'leased' ELSE 'delayed' END AS shown
FROM bridge_queue
WHERE bridge_queue.name = %(queue)s::VARCHAR AND NOT (bridge_queue.ttl_end IS NOT NULL AND bridge_queue.ttl_end <= (SELECT CAST(EXTRACT(epoch FROM statement_timestamp()) AS DOUBLE PRECISION) AS anon_1) AND bridge_queue.state != 'held' AND (bridge_queue.expire <= (SELECT CAST(EXTRACT(epoch FROM statement_timestamp()) AS DOUBLE PRECISION) AS anon_1) OR bridge_queue.state != 'leased')) AND bridge_queue.expire <= (SELECT CAST(EXTRACT(epoch FROM statement_timestamp()) AS DOUBLE PRECISION) AS anon_1) AND (bridge_queue.ttl_end IS NULL OR bridge_queue.ttl_end > (SELECT CAST(EXTRACT(epoch FROM statement_timestamp()) AS DOUBLE PRECISION) AS anon_1)) AND bridge_queue.priority = %(after_priority)s::INTEGER AND bridge_queue.item_id > %(after_id)s::BIGINT ORDER BY bridge_queue.priority DESC, bridge_queue.item_id
 LIMIT %(limit)s::INTEGER) AS rest UNION ALL SELECT lower.item_id AS item_id, lower.data AS data, lower.created AS created, lower.expire AS expire, lower.attempts AS attempts, lower.priority AS priority, lower.last_error AS last_error, lower.held_at AS held_at, lower.hold_reason AS hold_reason, lower.shown AS shown
FROM (SELECT bridge_queue.item_id AS item_id, bridge_queue.data AS data, bridge_queue.created AS created, bridge_queue.expire AS expire, bridge_queue.attempts AS attempts, bridge_queue.priority AS priority, bridge_queue.last_error AS last_error, bridge_queue.held_at AS held_at, bridge_queue.hold_reason AS hold_reason, CASE WHEN (bridge_queue.expire <= (SELECT CAST(EXTRACT(epoch FROM statement_timestamp()) AS DOUBLE PRECISION) AS anon_1)) THEN 'ready' WHEN (bridge_queue.state = 'held') THEN 'held' WHEN (bridge_queue.state = 'leased') THEN 'leased' ELSE 'delayed' END AS shown
FROM bridge_queue
WHERE bridge_queue.name = %(queue)s::VARCHAR AND NOT (bridge_queue.ttl_end IS NOT NULL AND bridge_queue.ttl_end <= (SELECT CAST(EXTRACT(epoch FROM statement_timestamp()) AS DOUBLE PRECISION) AS anon_1) AND bridge_queue.state != 'held' AND (bridge_queue.expire <= (SELECT CAST(EXTRACT(epoch FROM statement_timestamp()) AS DOUBLE PRECISION) AS anon_1) OR bridge_queue.state != 'leased')) AND bridge_queue.expire <= (SELECT CAST(EXTRACT(epoch FROM statement_timestamp()) AS DOUBLE PRECISION) AS anon_1) AND (bridge_queue.ttl_end IS NULL OR bridge_queue.ttl_end > (SELECT CAST(EXTRACT(epoch FROM statement_timestamp()) AS DOUBLE PRECISION) AS anon_1)) AND bridge_queue.priority < %(after_priority)s::INTEGER ORDER BY bridge_queue.priority DESC, bridge_queue.item_id
 LIMIT %(limit)s::INTEGER) AS lower) AS page ORDER BY page.priority DESC, page.item_id
 LIMIT %(limit)s::INTEGER;

-- name: browse[leased]
-- runs in: browse, the first page, leased
-- parameters: queue, limit
SELECT bridge_queue.item_id, bridge_queue.data, bridge_queue.created, bridge_queue.expire, bridge_queue.attempts, bridge_queue.priority, bridge_queue.last_error, bridge_queue.held_at, bridge_queue.hold_reason, CASE WHEN (bridge_queue.expire <= (SELECT CAST(EXTRACT(epoch FROM statement_timestamp()) AS DOUBLE PRECISION) AS anon_1)) THEN 'ready' WHEN (bridge_queue.state = 'held') THEN 'held' WHEN (bridge_queue.state = 'leased') THEN 'leased' ELSE 'delayed' END AS shown
FROM bridge_queue
WHERE bridge_queue.name = %(queue)s::VARCHAR AND NOT (bridge_queue.ttl_end IS NOT NULL AND bridge_queue.ttl_end <= (SELECT CAST(EXTRACT(epoch FROM statement_timestamp()) AS DOUBLE PRECISION) AS anon_1) AND bridge_queue.state != 'held' AND (bridge_queue.expire <= (SELECT CAST(EXTRACT(epoch FROM statement_timestamp()) AS DOUBLE PRECISION) AS anon_1) OR bridge_queue.state != 'leased')) AND bridge_queue.expire > (SELECT CAST(EXTRACT(epoch FROM statement_timestamp()) AS DOUBLE PRECISION) AS anon_1) AND bridge_queue.state = 'leased' ORDER BY bridge_queue.priority DESC, bridge_queue.item_id
 LIMIT %(limit)s::INTEGER;

-- name: browse_after[leased]
-- runs in: browse, a next page, leased
-- parameters: queue, after_priority, after_id, limit
SELECT page.item_id, page.data, page.created, page.expire, page.attempts, page.priority, page.last_error, page.held_at, page.hold_reason, page.shown
FROM (SELECT rest.item_id AS item_id, rest.data AS data, rest.created AS created, rest.expire AS expire, rest.attempts AS attempts, rest.priority AS priority, rest.last_error AS last_error, rest.held_at AS held_at, rest.hold_reason AS hold_reason, rest.shown AS shown
FROM (SELECT bridge_queue.item_id AS item_id, bridge_queue.data AS data, bridge_queue.created AS created, bridge_queue.expire AS expire, bridge_queue.attempts AS attempts, bridge_queue.priority AS priority, bridge_queue.last_error AS last_error, bridge_queue.held_at AS held_at, bridge_queue.hold_reason AS hold_reason, CASE WHEN (bridge_queue.expire <= (SELECT CAST(EXTRACT(epoch FROM statement_timestamp()) AS DOUBLE PRECISION) AS anon_1)) THEN 'ready' WHEN (bridge_queue.state = 'held') THEN 'held' WHEN (bridge_queue.state = 'leased') THEN 'leased' ELSE 'delayed' END AS shown
FROM bridge_queue
WHERE bridge_queue.name = %(queue)s::VARCHAR AND NOT (bridge_queue.ttl_end IS NOT NULL AND bridge_queue.ttl_end <= (SELECT CAST(EXTRACT(epoch FROM statement_timestamp()) AS DOUBLE PRECISION) AS anon_1) AND bridge_queue.state != 'held' AND (bridge_queue.expire <= (SELECT CAST(EXTRACT(epoch FROM statement_timestamp()) AS DOUBLE PRECISION) AS anon_1) OR bridge_queue.state != 'leased')) AND bridge_queue.expire > (SELECT CAST(EXTRACT(epoch FROM statement_timestamp()) AS DOUBLE PRECISION) AS anon_1) AND bridge_queue.state = 'leased' AND bridge_queue.priority = %(after_priority)s::INTEGER AND bridge_queue.item_id > %(after_id)s::BIGINT ORDER BY bridge_queue.priority DESC, bridge_queue.item_id
 LIMIT %(limit)s::INTEGER) AS rest UNION ALL SELECT lower.item_id AS item_id, lower.data AS data, lower.created AS created, lower.expire AS expire, lower.attempts AS attempts, lower.priority AS priority, lower.last_error AS last_error, lower.held_at AS held_at, lower.hold_reason AS hold_reason, lower.shown AS shown
FROM (SELECT bridge_queue.item_id AS item_id, bridge_queue.data AS data, bridge_queue.created AS created, bridge_queue.expire AS expire, bridge_queue.attempts AS attempts, bridge_queue.priority AS priority, bridge_queue.last_error AS last_error, bridge_queue.held_at AS held_at, bridge_queue.hold_reason AS hold_reason, CASE WHEN (bridge_queue.expire <= (SELECT CAST(EXTRACT(epoch FROM statement_timestamp()) AS DOUBLE PRECISION) AS anon_1)) THEN 'ready' WHEN (bridge_queue.state = 'held') THEN 'held' WHEN (bridge_queue.state = 'leased') THEN 'leased' ELSE 'delayed' END AS shown
FROM bridge_queue
WHERE bridge_queue.name = %(queue)s::VARCHAR AND NOT (bridge_queue.ttl_end IS NOT NULL AND bridge_queue.ttl_end <= (SELECT CAST(EXTRACT(epoch FROM statement_timestamp()) AS DOUBLE PRECISION) AS anon_1) AND bridge_queue.state != 'held' AND (bridge_queue.expire <= (SELECT CAST(EXTRACT(epoch FROM statement_timestamp()) AS DOUBLE PRECISION) AS anon_1) OR bridge_queue.state != 'leased')) AND bridge_queue.expire > (SELECT CAST(EXTRACT(epoch FROM statement_timestamp()) AS DOUBLE PRECISION) AS anon_1) AND bridge_queue.state = 'leased' AND bridge_queue.priority < %(after_priority)s::INTEGER ORDER BY bridge_queue.priority DESC, bridge_queue.item_id
 LIMIT %(limit)s::INTEGER) AS lower) AS page ORDER BY page.priority DESC, page.item_id
 LIMIT %(limit)s::INTEGER;

-- name: browse[delayed]
-- runs in: browse, the first page, delayed
-- parameters: queue, limit
SELECT bridge_queue.item_id, bridge_queue.data, bridge_queue.created, bridge_queue.expire, bridge_queue.attempts, bridge_queue.priority, bridge_queue.last_error, bridge_queue.held_at, bridge_queue.hold_reason, CASE WHEN (bridge_queue.expire <= (SELECT CAST(EXTRACT(epoch FROM statement_timestamp()) AS DOUBLE PRECISION) AS anon_1)) THEN 'ready' WHEN (bridge_queue.state = 'held') THEN 'held' WHEN (bridge_queue.state = 'leased') THEN 'leased' ELSE 'delayed' END AS shown
FROM bridge_queue
WHERE bridge_queue.name = %(queue)s::VARCHAR AND NOT (bridge_queue.ttl_end IS NOT NULL AND bridge_queue.ttl_end <= (SELECT CAST(EXTRACT(epoch FROM statement_timestamp()) AS DOUBLE PRECISION) AS anon_1) AND bridge_queue.state != 'held' AND (bridge_queue.expire <= (SELECT CAST(EXTRACT(epoch FROM statement_timestamp()) AS DOUBLE PRECISION) AS anon_1) OR bridge_queue.state != 'leased')) AND bridge_queue.expire > (SELECT CAST(EXTRACT(epoch FROM statement_timestamp()) AS DOUBLE PRECISION) AS anon_1) AND bridge_queue.state != 'leased' AND bridge_queue.state != 'held' AND (bridge_queue.ttl_end IS NULL OR bridge_queue.ttl_end > (SELECT CAST(EXTRACT(epoch FROM statement_timestamp()) AS DOUBLE PRECISION) AS anon_1)) ORDER BY bridge_queue.priority DESC, bridge_queue.item_id
 LIMIT %(limit)s::INTEGER;

-- name: browse_after[delayed]
-- runs in: browse, a next page, delayed
-- parameters: queue, after_priority, after_id, limit
SELECT page.item_id, page.data, page.created, page.expire, page.attempts, page.priority, page.last_error, page.held_at, page.hold_reason, page.shown
FROM (SELECT rest.item_id AS item_id, rest.data AS data, rest.created AS created, rest.expire AS expire, rest.attempts AS attempts, rest.priority AS priority, rest.last_error AS last_error, rest.held_at AS held_at, rest.hold_reason AS hold_reason, rest.shown AS shown
FROM (SELECT bridge_queue.item_id AS item_id, bridge_queue.data AS data, bridge_queue.created AS created, bridge_queue.expire AS expire, bridge_queue.attempts AS attempts, bridge_queue.priority AS priority, bridge_queue.last_error AS last_error, bridge_queue.held_at AS held_at, bridge_queue.hold_reason AS hold_reason, CASE WHEN (bridge_queue.expire <= (SELECT CAST(EXTRACT(epoch FROM statement_timestamp()) AS DOUBLE PRECISION) AS anon_1)) THEN 'ready' WHEN (bridge_queue.state = 'held') THEN 'held' WHEN (bridge_queue.state = 'leased') THEN 'leased' ELSE 'delayed' END AS shown
FROM bridge_queue
WHERE bridge_queue.name = %(queue)s::VARCHAR AND NOT (bridge_queue.ttl_end IS NOT NULL AND bridge_queue.ttl_end <= (SELECT CAST(EXTRACT(epoch FROM statement_timestamp()) AS DOUBLE PRECISION) AS anon_1) AND bridge_queue.state != 'held' AND (bridge_queue.expire <= (SELECT CAST(EXTRACT(epoch FROM statement_timestamp()) AS DOUBLE PRECISION) AS anon_1) OR bridge_queue.state != 'leased')) AND bridge_queue.expire > (SELECT CAST(EXTRACT(epoch FROM statement_timestamp()) AS DOUBLE PRECISION) AS anon_1) AND bridge_queue.state != 'leased' AND bridge_queue.state != 'held' AND (bridge_queue.ttl_end IS NULL OR bridge_queue.ttl_end > (SELECT CAST(EXTRACT(epoch FROM statement_timestamp()) AS DOUBLE PRECISION) AS anon_1)) AND bridge_queue.priority = %(after_priority)s::INTEGER AND bridge_queue.item_id > %(after_id)s::BIGINT ORDER BY bridge_queue.priority DESC, bridge_queue.item_id
 LIMIT %(limit)s::INTEGER) AS rest UNION ALL SELECT lower.item_id AS item_id, lower.data AS data, lower.created AS created, lower.expire AS expire, lower.attempts AS attempts, lower.priority AS priority, lower.last_error AS last_error, lower.held_at AS held_at, lower.hold_reason AS hold_reason, lower.shown AS shown
FROM (SELECT bridge_queue.item_id AS item_id, bridge_queue.data AS data, bridge_queue.created AS created, bridge_queue.expire AS expire, bridge_queue.attempts AS attempts, bridge_queue.priority AS priority, bridge_queue.last_error AS last_error, bridge_queue.held_at AS held_at, bridge_queue.hold_reason AS hold_reason, CASE WHEN (bridge_queue.expire <= (SELECT CAST(EXTRACT(epoch FROM statement_timestamp()) AS DOUBLE PRECISION) AS anon_1)) THEN 'ready' WHEN (bridge_queue.state = 'held') THEN 'held' WHEN (bridge_queue.state = 'leased') THEN 'leased' ELSE 'delayed' END AS shown
FROM bridge_queue
WHERE bridge_queue.name = %(queue)s::VARCHAR AND NOT (bridge_queue.ttl_end IS NOT NULL AND bridge_queue.ttl_end <= (SELECT CAST(EXTRACT(epoch FROM statement_timestamp()) AS DOUBLE PRECISION) AS anon_1) AND bridge_queue.state != 'held' AND (bridge_queue.expire <= (SELECT CAST(EXTRACT(epoch FROM statement_timestamp()) AS DOUBLE PRECISION) AS anon_1) OR bridge_queue.state != 'leased')) AND bridge_queue.expire > (SELECT CAST(EXTRACT(epoch FROM statement_timestamp()) AS DOUBLE PRECISION) AS anon_1) AND bridge_queue.state != 'leased' AND bridge_queue.state != 'held' AND (bridge_queue.ttl_end IS NULL OR bridge_queue.ttl_end > (SELECT CAST(EXTRACT(epoch FROM statement_timestamp()) AS DOUBLE PRECISION) AS anon_1)) AND bridge_queue.priority < %(after_priority)s::INTEGER ORDER BY bridge_queue.priority DESC, bridge_queue.item_id
 LIMIT %(limit)s::INTEGER) AS lower) AS page ORDER BY page.priority DESC, page.item_id
 LIMIT %(limit)s::INTEGER;

-- name: browse[held]
-- runs in: browse, the first page, held
-- parameters: queue, limit
SELECT bridge_queue.item_id, bridge_queue.data, bridge_queue.created, bridge_queue.expire, bridge_queue.attempts, bridge_queue.priority, bridge_queue.last_error, bridge_queue.held_at, bridge_queue.hold_reason, CASE WHEN (bridge_queue.expire <= (SELECT CAST(EXTRACT(epoch FROM statement_timestamp()) AS DOUBLE PRECISION) AS anon_1)) THEN 'ready' WHEN (bridge_queue.state = 'held') THEN 'held' WHEN (bridge_queue.state = 'leased') THEN 'leased' ELSE 'delayed' END AS shown
FROM bridge_queue
WHERE bridge_queue.name = %(queue)s::VARCHAR AND NOT (bridge_queue.ttl_end IS NOT NULL AND bridge_queue.ttl_end <= (SELECT CAST(EXTRACT(epoch FROM statement_timestamp()) AS DOUBLE PRECISION) AS anon_1) AND bridge_queue.state != 'held' AND (bridge_queue.expire <= (SELECT CAST(EXTRACT(epoch FROM statement_timestamp()) AS DOUBLE PRECISION) AS anon_1) OR bridge_queue.state != 'leased')) AND bridge_queue.expire > (SELECT CAST(EXTRACT(epoch FROM statement_timestamp()) AS DOUBLE PRECISION) AS anon_1) AND bridge_queue.state = 'held' ORDER BY bridge_queue.priority DESC, bridge_queue.item_id
 LIMIT %(limit)s::INTEGER;

-- name: browse_after[held]
-- runs in: browse, a next page, held
-- parameters: queue, after_priority, after_id, limit
SELECT page.item_id, page.data, page.created, page.expire, page.attempts, page.priority, page.last_error, page.held_at, page.hold_reason, page.shown
FROM (SELECT rest.item_id AS item_id, rest.data AS data, rest.created AS created, rest.expire AS expire, rest.attempts AS attempts, rest.priority AS priority, rest.last_error AS last_error, rest.held_at AS held_at, rest.hold_reason AS hold_reason, rest.shown AS shown
FROM (SELECT bridge_queue.item_id AS item_id, bridge_queue.data AS data, bridge_queue.created AS created, bridge_queue.expire AS expire, bridge_queue.attempts AS attempts, bridge_queue.priority AS priority, bridge_queue.last_error AS last_error, bridge_queue.held_at AS held_at, bridge_queue.hold_reason AS hold_reason, CASE WHEN (bridge_queue.expire <= (SELECT CAST(EXTRACT(epoch FROM statement_timestamp()) AS DOUBLE PRECISION) AS anon_1)) THEN 'ready' WHEN (bridge_queue.state = 'held') THEN 'held' WHEN (bridge_queue.state = 'leased') THEN 'leased' ELSE 'delayed' END AS shown
FROM bridge_queue
WHERE bridge_queue.name = %(queue)s::VARCHAR AND NOT (bridge_queue.ttl_end IS NOT NULL AND bridge_queue.ttl_end <= (SELECT CAST(EXTRACT(epoch FROM statement_timestamp()) AS DOUBLE PRECISION) AS anon_1) AND bridge_queue.state != 'held' AND (bridge_queue.expire <= (SELECT CAST(EXTRACT(epoch FROM statement_timestamp()) AS DOUBLE PRECISION) AS anon_1) OR bridge_queue.state != 'leased')) AND bridge_queue.expire > (SELECT CAST(EXTRACT(epoch FROM statement_timestamp()) AS DOUBLE PRECISION) AS anon_1) AND bridge_queue.state = 'held' AND bridge_queue.priority = %(after_priority)s::INTEGER AND bridge_queue.item_id > %(after_id)s::BIGINT ORDER BY bridge_queue.priority DESC, bridge_queue.item_id
 LIMIT %(limit)s::INTEGER) AS rest UNION ALL SELECT lower.item_id AS item_id, lower.data AS data, lower.created AS created, lower.expire AS expire, lower.attempts AS attempts, lower.priority AS priority, lower.last_error AS last_error, lower.held_at AS held_at, lower.hold_reason AS hold_reason, lower.shown AS shown
FROM (SELECT bridge_queue.item_id AS item_id, bridge_queue.data AS data, bridge_queue.created AS created, bridge_queue.expire AS expire, bridge_queue.attempts AS attempts, bridge_queue.priority AS priority, bridge_queue.last_error AS last_error, bridge_queue.held_at AS held_at, bridge_queue.hold_reason AS hold_reason, CASE WHEN (bridge_queue.expire <= (SELECT CAST(EXTRACT(epoch FROM statement_timestamp()) AS DOUBLE PRECISION) AS anon_1)) THEN 'ready' WHEN (bridge_queue.state = 'held') THEN 'held' WHEN (bridge_queue.state = 'leased') THEN 'leased' ELSE 'delayed' END AS shown
FROM bridge_queue
WHERE bridge_queue.name = %(queue)s::VARCHAR AND NOT (bridge_queue.ttl_end IS NOT NULL AND bridge_queue.ttl_end <= (SELECT CAST(EXTRACT(epoch FROM statement_timestamp()) AS DOUBLE PRECISION) AS anon_1) AND bridge_queue.state != 'held' AND (bridge_queue.expire <= (SELECT CAST(EXTRACT(epoch FROM statement_timestamp()) AS DOUBLE PRECISION) AS anon_1) OR bridge_queue.state != 'leased')) AND bridge_queue.expire > (SELECT CAST(EXTRACT(epoch FROM statement_timestamp()) AS DOUBLE PRECISION) AS anon_1) AND bridge_queue.state = 'held' AND bridge_queue.priority < %(after_priority)s::INTEGER ORDER BY bridge_queue.priority DESC, bridge_queue.item_id
 LIMIT %(limit)s::INTEGER) AS lower) AS page ORDER BY page.priority DESC, page.item_id
 LIMIT %(limit)s::INTEGER;

-- name: find_item
-- runs in: find_item
-- parameters: id, queue
SELECT bridge_queue.item_id, bridge_queue.data, bridge_queue.created, bridge_queue.expire, bridge_queue.attempts, bridge_queue.priority, bridge_queue.last_error, bridge_queue.held_at, bridge_queue.hold_reason, CASE WHEN (bridge_queue.expire <= (SELECT CAST(EXTRACT(epoch FROM statement_timestamp()) AS DOUBLE PRECISION) AS anon_1)) THEN 'ready' WHEN (bridge_queue.state = 'held') THEN 'held' WHEN (bridge_queue.state = 'leased') THEN 'leased' ELSE 'delayed' END AS shown
FROM bridge_queue
WHERE bridge_queue.item_id = %(id)s::BIGINT AND bridge_queue.name = %(queue)s::VARCHAR;

-- name: free_leases
-- runs in: release_all, first
-- parameters: queue
UPDATE bridge_queue SET expire=0, token=NULL, state='ready' WHERE bridge_queue.name = %(queue)s::VARCHAR AND bridge_queue.expire > EXTRACT(epoch FROM statement_timestamp()) AND bridge_queue.state != 'held';

-- name: end_claims
-- runs in: release_all, then, in its transaction
-- parameters: queue
UPDATE bridge_queue SET token=NULL WHERE bridge_queue.name = %(queue)s::VARCHAR AND bridge_queue.token IS NOT NULL AND bridge_queue.expire <= EXTRACT(epoch FROM statement_timestamp());

-- name: remove_item
-- runs in: remove_item
-- parameters: id, queue
DELETE FROM bridge_queue WHERE bridge_queue.item_id = %(id)s::BIGINT AND bridge_queue.name = %(queue)s::VARCHAR;

-- name: delete_expired
-- runs in: garbage_collection
-- parameters: queue
DELETE FROM bridge_queue WHERE bridge_queue.name = %(queue)s::VARCHAR AND bridge_queue.ttl_end IS NOT NULL AND bridge_queue.ttl_end <= (SELECT CAST(EXTRACT(epoch FROM statement_timestamp()) AS DOUBLE PRECISION) AS anon_1) AND bridge_queue.state != 'held' AND (bridge_queue.expire <= (SELECT CAST(EXTRACT(epoch FROM statement_timestamp()) AS DOUBLE PRECISION) AS anon_1) OR bridge_queue.state != 'leased');

-- name: delete_queue
-- runs in: delete_queue
-- parameters: queue
DELETE FROM bridge_queue WHERE bridge_queue.name = %(queue)s::VARCHAR;

-- name: topic_create_messages
-- runs in: first use of topics
CREATE TABLE bridge_queue_topic (
	name VARCHAR(255) NOT NULL,
	position BIGINT NOT NULL,
	data BYTEA NOT NULL,
	published DOUBLE PRECISION NOT NULL,
	expire DOUBLE PRECISION NOT NULL,
	PRIMARY KEY (name, position)
);

-- name: topic_create_expire_index
-- runs in: first use of topics, with the table
CREATE INDEX bridge_queue_topic_expire ON bridge_queue_topic (name, expire);

-- name: topic_create_subscribers
-- runs in: first use of topics
CREATE TABLE bridge_queue_topic_sub (
	name VARCHAR(255) NOT NULL,
	subscriber VARCHAR(255) NOT NULL,
	position BIGINT NOT NULL,
	PRIMARY KEY (name, subscriber)
);

-- name: topic_lock_head
-- runs in: publish and delete_topic, first
-- parameters: topic
SELECT bridge_queue_topic_sub.position, EXTRACT(epoch FROM statement_timestamp()) AS anon_1
FROM bridge_queue_topic_sub
WHERE bridge_queue_topic_sub.name = %(topic)s::VARCHAR AND bridge_queue_topic_sub.subscriber = '' FOR UPDATE;

-- name: topic_delete_expired
-- runs in: publish, then; read, at most once a second
-- parameters: topic
DELETE FROM bridge_queue_topic WHERE bridge_queue_topic.name = %(topic)s::VARCHAR AND bridge_queue_topic.expire <= EXTRACT(epoch FROM statement_timestamp());

-- name: topic_insert_messages
-- runs in: publish, then, once per message
-- parameters: name, position, data, published, expire
INSERT INTO bridge_queue_topic (name, position, data, published, expire) VALUES (%(name)s::VARCHAR, %(position)s::BIGINT, %(data)s, %(published)s, %(expire)s);

-- name: topic_set_head
-- runs in: publish, last
-- parameters: last, topic
UPDATE bridge_queue_topic_sub SET position=%(last)s::BIGINT WHERE bridge_queue_topic_sub.name = %(topic)s::VARCHAR AND bridge_queue_topic_sub.subscriber = '';

-- name: topic_add_subscriber
-- runs in: the first publish to a topic; a first read from 'latest'
-- parameters: name, subscriber, position
INSERT INTO bridge_queue_topic_sub (name, subscriber, position) VALUES (%(name)s::VARCHAR, %(subscriber)s::VARCHAR, %(position)s::BIGINT) ON CONFLICT DO NOTHING;

-- name: topic_read
-- runs in: read
-- parameters: topic, subscriber_name, limit
SELECT bridge_queue_topic.position, bridge_queue_topic.data, bridge_queue_topic.published, bridge_queue_topic.expire
FROM bridge_queue_topic
WHERE bridge_queue_topic.name = %(topic)s::VARCHAR AND bridge_queue_topic.position > coalesce((SELECT bridge_queue_topic_sub.position
FROM bridge_queue_topic_sub
WHERE bridge_queue_topic_sub.name = %(topic)s::VARCHAR AND bridge_queue_topic_sub.subscriber = %(subscriber_name)s::VARCHAR), 0) AND bridge_queue_topic.expire > EXTRACT(epoch FROM statement_timestamp()) ORDER BY bridge_queue_topic.position
 LIMIT %(limit)s::INTEGER;

-- name: topic_subscriber_position
-- runs in: a first read from 'latest'
-- parameters: topic, subscriber_name
SELECT bridge_queue_topic_sub.position
FROM bridge_queue_topic_sub
WHERE bridge_queue_topic_sub.name = %(topic)s::VARCHAR AND bridge_queue_topic_sub.subscriber = %(subscriber_name)s::VARCHAR;

-- name: topic_last_position
-- runs in: ack, first; a first read from 'latest'
-- parameters: topic
SELECT bridge_queue_topic_sub.position
FROM bridge_queue_topic_sub
WHERE bridge_queue_topic_sub.name = %(topic)s::VARCHAR AND bridge_queue_topic_sub.subscriber = '';

-- name: topic_ack_forward
-- runs in: ack, then
-- parameters: wanted, topic, subscriber_name
UPDATE bridge_queue_topic_sub SET position=%(wanted)s::BIGINT WHERE bridge_queue_topic_sub.name = %(topic)s::VARCHAR AND bridge_queue_topic_sub.subscriber = %(subscriber_name)s::VARCHAR AND bridge_queue_topic_sub.position < %(wanted)s::BIGINT;

-- name: topic_live_stats
-- runs in: stats
-- parameters: topic
SELECT count(*) AS count_1, min(bridge_queue_topic.published) AS min_1, max(bridge_queue_topic.published) AS max_1
FROM bridge_queue_topic
WHERE bridge_queue_topic.name = %(topic)s::VARCHAR AND bridge_queue_topic.expire > EXTRACT(epoch FROM statement_timestamp());

-- name: topic_subscriber_count
-- runs in: stats
-- parameters: topic
SELECT count(*) AS count_1
FROM bridge_queue_topic_sub
WHERE bridge_queue_topic_sub.name = %(topic)s::VARCHAR AND bridge_queue_topic_sub.subscriber != '';

-- name: topic_delete_messages
-- runs in: delete_topic, then
-- parameters: topic
DELETE FROM bridge_queue_topic WHERE bridge_queue_topic.name = %(topic)s::VARCHAR;

-- name: topic_delete_subscribers
-- runs in: delete_topic, last
-- parameters: topic
DELETE FROM bridge_queue_topic_sub WHERE bridge_queue_topic_sub.name = %(topic)s::VARCHAR AND bridge_queue_topic_sub.subscriber != '';

-- name: topic_add_subscriber_returning
-- runs in: ack of a subscriber's first marker
-- parameters: name, subscriber, position
INSERT INTO bridge_queue_topic_sub (name, subscriber, position) VALUES (%(name)s::VARCHAR, %(subscriber)s::VARCHAR, %(position)s::BIGINT) ON CONFLICT DO NOTHING RETURNING bridge_queue_topic_sub.position;
