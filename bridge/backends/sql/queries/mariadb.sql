-- Every statement bridge's SQL backend sends to MariaDB 10.6+ (PyMySQL, named placeholders).
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
	item_id BIGINT NOT NULL AUTO_INCREMENT,
	name VARBINARY(255) NOT NULL,
	data LONGBLOB NOT NULL,
	created DOUBLE NOT NULL,
	expire DOUBLE NOT NULL DEFAULT '0',
	priority INTEGER NOT NULL DEFAULT '0',
	attempts INTEGER NOT NULL DEFAULT '0',
	token VARCHAR(32),
	state VARCHAR(16) NOT NULL DEFAULT 'ready',
	last_error TEXT,
	held_at DOUBLE,
	hold_reason TEXT,
	ttl_end DOUBLE,
	PRIMARY KEY (item_id)
);

-- name: create_claim_index
-- runs in: first use, with the table
CREATE INDEX bridge_queue_claim ON bridge_queue (name, priority DESC, item_id);

-- name: add_state_column
-- runs in: first use of a table made before the state column
ALTER TABLE bridge_queue ADD COLUMN state VARCHAR(16) NOT NULL DEFAULT 'ready';

-- name: backfill_state
-- runs in: with add_state_column, in its transaction where DDL has one
UPDATE bridge_queue SET state='leased' WHERE bridge_queue.token IS NOT NULL AND bridge_queue.state = 'ready';

-- name: add_last_error_column
-- runs in: first use of a table made before the last_error column
ALTER TABLE bridge_queue ADD COLUMN last_error TEXT;

-- name: add_held_at_column
-- runs in: first use of a table made before the held_at column
ALTER TABLE bridge_queue ADD COLUMN held_at DOUBLE;

-- name: add_hold_reason_column
-- runs in: first use of a table made before the hold_reason column
ALTER TABLE bridge_queue ADD COLUMN hold_reason TEXT;

-- name: add_ttl_end_column
-- runs in: first use of a table made before the ttl_end column
ALTER TABLE bridge_queue ADD COLUMN ttl_end DOUBLE;

-- name: max_allowed_packet
-- runs in: first use (create_items' statement size)
SELECT @@max_allowed_packet;

-- name: binary_names
-- runs in: first use of a table made while names were VARCHAR (schema.py)
ALTER TABLE bridge_queue MODIFY COLUMN name VARBINARY(255) NOT NULL;

-- name: session_1
-- runs in: every new connection
SET time_zone = '+00:00';

-- name: ping
-- runs in: a pinned connection idle for over a second
SELECT 1;

-- name: insert[rows=1]
-- runs in: create_items
-- parameters: queue, data0, priority
INSERT INTO bridge_queue (name, data, created, expire, priority, state) VALUES (%(queue)s, %(data0)s, unix_timestamp(now(6)), 0, %(priority)s, 'ready') RETURNING bridge_queue.item_id;

-- name: insert[rows=3]
-- runs in: create_items
-- parameters: queue, data0, priority, data1, data2
INSERT INTO bridge_queue (name, data, created, expire, priority, state) VALUES (%(queue)s, %(data0)s, unix_timestamp(now(6)), 0, %(priority)s, 'ready'), (%(queue)s, %(data1)s, unix_timestamp(now(6)), 0, %(priority)s, 'ready'), (%(queue)s, %(data2)s, unix_timestamp(now(6)), 0, %(priority)s, 'ready') RETURNING bridge_queue.item_id;

-- name: insert_delayed[rows=1]
-- runs in: create_items with a delay
-- parameters: queue, data0, delay, priority
INSERT INTO bridge_queue (name, data, created, expire, priority, state) VALUES (%(queue)s, %(data0)s, unix_timestamp(now(6)), (unix_timestamp(now(6)) + %(delay)s), %(priority)s, 'delayed') RETURNING bridge_queue.item_id;

-- name: insert_ttl[rows=1]
-- runs in: create_items with a ttl
-- parameters: queue, data0, priority, ttl
INSERT INTO bridge_queue (name, data, created, expire, priority, state, ttl_end) VALUES (%(queue)s, %(data0)s, unix_timestamp(now(6)), 0, %(priority)s, 'ready', (unix_timestamp(now(6)) + %(ttl)s)) RETURNING bridge_queue.item_id;

-- name: lock_claimable[n=1]
-- runs in: claim_items, first; settle_and_claim, after the settlement
-- parameters: queue
SELECT bridge_queue.item_id, bridge_queue.data, bridge_queue.created, bridge_queue.attempts, bridge_queue.priority, bridge_queue.last_error, unix_timestamp(now(6)) AS unix_timestamp_1
FROM bridge_queue
WHERE bridge_queue.name = %(queue)s AND bridge_queue.expire <= unix_timestamp(now(6)) AND (bridge_queue.ttl_end IS NULL OR bridge_queue.ttl_end > unix_timestamp(now(6))) ORDER BY bridge_queue.priority DESC, bridge_queue.item_id
 LIMIT 1 FOR UPDATE SKIP LOCKED;

-- name: lock_claimable[n=100]
-- runs in: claim_items, first; settle_and_claim, after the settlement
-- parameters: queue
SELECT bridge_queue.item_id, bridge_queue.data, bridge_queue.created, bridge_queue.attempts, bridge_queue.priority, bridge_queue.last_error, unix_timestamp(now(6)) AS unix_timestamp_1
FROM bridge_queue
WHERE bridge_queue.name = %(queue)s AND bridge_queue.expire <= unix_timestamp(now(6)) AND (bridge_queue.ttl_end IS NULL OR bridge_queue.ttl_end > unix_timestamp(now(6))) ORDER BY bridge_queue.priority DESC, bridge_queue.item_id
 LIMIT 100 FOR UPDATE SKIP LOCKED;

-- name: mark_claimed[ids=1]
-- runs in: claim_items, then
-- parameters: expire, token, id0, now
UPDATE bridge_queue SET expire=%(expire)s, attempts=(bridge_queue.attempts + 1), token=%(token)s, state='leased' WHERE bridge_queue.item_id IN (%(id0)s) AND bridge_queue.expire <= %(now)s;

-- name: mark_claimed[ids=3]
-- runs in: claim_items, then
-- parameters: expire, token, id0, id1, id2, now
UPDATE bridge_queue SET expire=%(expire)s, attempts=(bridge_queue.attempts + 1), token=%(token)s, state='leased' WHERE bridge_queue.item_id IN (%(id0)s, %(id1)s, %(id2)s) AND bridge_queue.expire <= %(now)s;

-- name: mark_claimed_grace[ids=1]
-- runs in: claim_items with a grace, then
-- parameters: expire, token, ttl_floor, id0, now
UPDATE bridge_queue SET expire=%(expire)s, attempts=(bridge_queue.attempts + 1), token=%(token)s, state='leased', ttl_end=CASE WHEN (bridge_queue.ttl_end < %(ttl_floor)s) THEN %(ttl_floor)s ELSE bridge_queue.ttl_end END WHERE bridge_queue.item_id IN (%(id0)s) AND bridge_queue.expire <= %(now)s;

-- name: delete[ids=1]
-- runs in: delete_items (one per claim and 100 ids); settle_and_claim(delete), first
-- parameters: id0, token
DELETE FROM bridge_queue WHERE bridge_queue.item_id IN (%(id0)s) AND bridge_queue.token = %(token)s;

-- name: delete[ids=3]
-- runs in: delete_items (one per claim and 100 ids)
-- parameters: id0, id1, id2, token
DELETE FROM bridge_queue WHERE bridge_queue.item_id IN (%(id0)s, %(id1)s, %(id2)s) AND bridge_queue.token = %(token)s;

-- name: release
-- runs in: release_item; settle_and_claim, first
-- parameters: id, claim
UPDATE bridge_queue SET expire=0, state='ready' WHERE bridge_queue.item_id = %(id)s AND bridge_queue.token = %(claim)s;

-- name: delay
-- runs in: delay_item; settle_and_claim, first
-- parameters: seconds, id, claim
UPDATE bridge_queue SET expire=(unix_timestamp(now(6)) + %(seconds)s), state='delayed' WHERE bridge_queue.item_id = %(id)s AND bridge_queue.token = %(claim)s;

-- name: extend
-- runs in: extend_lease
-- parameters: seconds, id, claim
UPDATE bridge_queue SET expire=(unix_timestamp(now(6)) + %(seconds)s), state='leased' WHERE bridge_queue.item_id = %(id)s AND bridge_queue.token = %(claim)s;

-- name: extend_grace
-- runs in: extend_lease with a grace
-- parameters: seconds, grace, id, claim
UPDATE bridge_queue SET expire=(unix_timestamp(now(6)) + %(seconds)s), state='leased', ttl_end=CASE WHEN (bridge_queue.ttl_end < unix_timestamp(now(6)) + %(seconds)s + %(grace)s) THEN unix_timestamp(now(6)) + %(seconds)s + %(grace)s ELSE bridge_queue.ttl_end END WHERE bridge_queue.item_id = %(id)s AND bridge_queue.token = %(claim)s;

-- name: fail
-- runs in: fail_item without a delay; settle_and_claim, first
-- parameters: error, id, claim
UPDATE bridge_queue SET last_error=%(error)s WHERE bridge_queue.item_id = %(id)s AND bridge_queue.token = %(claim)s;

-- name: fail_delayed
-- runs in: fail_item with a delay; settle_and_claim, first
-- parameters: seconds, error, id, claim
UPDATE bridge_queue SET expire=(unix_timestamp(now(6)) + %(seconds)s), state='delayed', last_error=%(error)s WHERE bridge_queue.item_id = %(id)s AND bridge_queue.token = %(claim)s;

-- name: hold
-- runs in: hold_item; settle_and_claim, first
-- parameters: error, reason, id, claim
UPDATE bridge_queue SET expire=253402300799.0, token=NULL, state='held', last_error=coalesce(%(error)s, bridge_queue.last_error), held_at=unix_timestamp(now(6)), hold_reason=%(reason)s WHERE bridge_queue.item_id = %(id)s AND bridge_queue.token = %(claim)s;

-- name: read_expire
-- runs in: delay_item, extend_lease, release_item, fail_item: after the UPDATE, in its transaction
-- parameters: id
SELECT bridge_queue.expire
FROM bridge_queue
WHERE bridge_queue.item_id = %(id)s;

-- name: held_items
-- runs in: held_items
-- parameters: queue, limit
SELECT bridge_queue.item_id, bridge_queue.data, bridge_queue.created, bridge_queue.expire, bridge_queue.attempts, bridge_queue.priority, bridge_queue.last_error, bridge_queue.held_at, bridge_queue.hold_reason
FROM bridge_queue
WHERE bridge_queue.name = %(queue)s AND bridge_queue.state = 'held' ORDER BY bridge_queue.held_at, bridge_queue.item_id
 LIMIT %(limit)s;

-- name: kick
-- runs in: kick with a limit
-- parameters: queue, limit
UPDATE bridge_queue SET expire=0, attempts=0, state='ready', held_at=NULL, hold_reason=NULL WHERE bridge_queue.item_id IN (SELECT oldest.item_id
FROM (SELECT bridge_queue.item_id AS item_id
FROM bridge_queue
WHERE bridge_queue.name = %(queue)s AND bridge_queue.state = 'held' ORDER BY bridge_queue.held_at, bridge_queue.item_id
 LIMIT %(limit)s) AS oldest) AND bridge_queue.state = 'held';

-- name: kick_all
-- runs in: kick without a limit
-- parameters: queue
UPDATE bridge_queue SET expire=0, attempts=0, state='ready', held_at=NULL, hold_reason=NULL WHERE bridge_queue.name = %(queue)s AND bridge_queue.state = 'held';

-- name: kick_item
-- runs in: kick_item
-- parameters: id, queue
UPDATE bridge_queue SET expire=0, attempts=0, state='ready', held_at=NULL, hold_reason=NULL WHERE bridge_queue.item_id = %(id)s AND bridge_queue.name = %(queue)s AND bridge_queue.state = 'held';

-- name: delete_held
-- runs in: delete_held with a limit
-- parameters: queue, limit
DELETE FROM bridge_queue WHERE bridge_queue.item_id IN (SELECT oldest.item_id
FROM (SELECT bridge_queue.item_id AS item_id
FROM bridge_queue
WHERE bridge_queue.name = %(queue)s AND bridge_queue.state = 'held' ORDER BY bridge_queue.held_at, bridge_queue.item_id
 LIMIT %(limit)s) AS oldest) AND bridge_queue.state = 'held';

-- name: delete_all_held
-- runs in: delete_held without a limit
-- parameters: queue
DELETE FROM bridge_queue WHERE bridge_queue.name = %(queue)s AND bridge_queue.state = 'held';

-- name: counts
-- runs in: counts, number_of_items
-- parameters: queue
SELECT count(*) AS count_1, coalesce(sum(CASE WHEN (bridge_queue.expire > (SELECT unix_timestamp(now(6)) AS unix_timestamp_1) AND bridge_queue.state = 'leased') THEN 1 ELSE 0 END), 0) AS coalesce_1, coalesce(sum(CASE WHEN (bridge_queue.expire > (SELECT unix_timestamp(now(6)) AS unix_timestamp_1) AND bridge_queue.state != 'leased' AND bridge_queue.state != 'held' AND (bridge_queue.ttl_end IS NULL OR bridge_queue.ttl_end > (SELECT unix_timestamp(now(6)) AS unix_timestamp_1))) THEN 1 ELSE 0 END), 0) AS coalesce_2, coalesce(sum(CASE WHEN (bridge_queue.expire > (SELECT unix_timestamp(now(6)) AS unix_timestamp_1) AND bridge_queue.state = 'held') THEN 1 ELSE 0 END), 0) AS coalesce_3, coalesce(sum(CASE WHEN (bridge_queue.ttl_end IS NOT NULL AND bridge_queue.ttl_end <= (SELECT unix_timestamp(now(6)) AS unix_timestamp_1) AND bridge_queue.state != 'held' AND (bridge_queue.expire <= (SELECT unix_timestamp(now(6)) AS unix_timestamp_1) OR bridge_queue.state != 'leased')) THEN 1 ELSE 0 END), 0) AS coalesce_4
FROM bridge_queue
WHERE bridge_queue.name = %(queue)s;

-- name: oldest_ready_age
-- runs in: oldest_ready_age
-- parameters: queue
WITH RECURSIVE levels(priority) AS
(SELECT (SELECT bridge_queue.priority
FROM bridge_queue
WHERE bridge_queue.name = %(queue)s ORDER BY bridge_queue.priority DESC
 LIMIT 1) AS priority UNION ALL SELECT (SELECT bridge_queue.priority
FROM bridge_queue
WHERE bridge_queue.name = %(queue)s AND bridge_queue.priority < levels.priority ORDER BY bridge_queue.priority DESC
 LIMIT 1) AS priority
FROM levels
WHERE levels.priority IS NOT NULL)
 SELECT unix_timestamp(now(6)) - min((SELECT bridge_queue.created
FROM bridge_queue
WHERE bridge_queue.name = %(queue)s AND bridge_queue.priority <= levels.priority AND bridge_queue.expire <= unix_timestamp(now(6)) AND (bridge_queue.ttl_end IS NULL OR bridge_queue.ttl_end > unix_timestamp(now(6))) ORDER BY bridge_queue.priority DESC, bridge_queue.item_id
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
WHERE bridge_queue.name = %(queue)s AND bridge_queue.state != 'held' AND NOT (bridge_queue.ttl_end IS NOT NULL AND bridge_queue.ttl_end <= unix_timestamp(now(6)) AND bridge_queue.state != 'held' AND (bridge_queue.expire <= unix_timestamp(now(6)) OR bridge_queue.state != 'leased')) ORDER BY CASE WHEN (bridge_queue.expire <= unix_timestamp(now(6))) THEN 0 ELSE 1 END, bridge_queue.priority DESC, bridge_queue.item_id
 LIMIT %(limit)s;

-- name: browse[every state]
-- runs in: browse, the first page, every state
-- parameters: queue, limit
SELECT bridge_queue.item_id, bridge_queue.data, bridge_queue.created, bridge_queue.expire, bridge_queue.attempts, bridge_queue.priority, bridge_queue.last_error, bridge_queue.held_at, bridge_queue.hold_reason, CASE WHEN (bridge_queue.expire <= (SELECT unix_timestamp(now(6)) AS unix_timestamp_1)) THEN 'ready' WHEN (bridge_queue.state = 'held') THEN 'held' WHEN (bridge_queue.state = 'leased') THEN 'leased' ELSE 'delayed' END AS shown
FROM bridge_queue
WHERE bridge_queue.name = %(queue)s AND NOT (bridge_queue.ttl_end IS NOT NULL AND bridge_queue.ttl_end <= (SELECT unix_timestamp(now(6)) AS unix_timestamp_1) AND bridge_queue.state != 'held' AND (bridge_queue.expire <= (SELECT unix_timestamp(now(6)) AS unix_timestamp_1) OR bridge_queue.state != 'leased')) ORDER BY bridge_queue.priority DESC, bridge_queue.item_id
 LIMIT %(limit)s;

-- name: browse_after[every state]
-- runs in: browse, a next page, every state
-- parameters: queue, after_priority, after_id, limit
SELECT page.item_id, page.data, page.created, page.expire, page.attempts, page.priority, page.last_error, page.held_at, page.hold_reason, page.shown
FROM (SELECT rest.item_id AS item_id, rest.data AS data, rest.created AS created, rest.expire AS expire, rest.attempts AS attempts, rest.priority AS priority, rest.last_error AS last_error, rest.held_at AS held_at, rest.hold_reason AS hold_reason, rest.shown AS shown
FROM (SELECT bridge_queue.item_id AS item_id, bridge_queue.data AS data, bridge_queue.created AS created, bridge_queue.expire AS expire, bridge_queue.attempts AS attempts, bridge_queue.priority AS priority, bridge_queue.last_error AS last_error, bridge_queue.held_at AS held_at, bridge_queue.hold_reason AS hold_reason, CASE WHEN (bridge_queue.expire <= (SELECT unix_timestamp(now(6)) AS unix_timestamp_1)) THEN 'ready' WHEN (bridge_queue.state = 'held') THEN 'held' WHEN (bridge_queue.state = 'leased') THEN 'leased' ELSE 'delayed' END AS shown
FROM bridge_queue
WHERE bridge_queue.name = %(queue)s AND NOT (bridge_queue.ttl_end IS NOT NULL AND bridge_queue.ttl_end <= (SELECT unix_timestamp(now(6)) AS unix_timestamp_1) AND bridge_queue.state != 'held' AND (bridge_queue.expire <= (SELECT unix_timestamp(now(6)) AS unix_timestamp_1) OR bridge_queue.state != 'leased')) AND bridge_queue.priority = %(after_priority)s AND bridge_queue.item_id > %(after_id)s ORDER BY bridge_queue.priority DESC, bridge_queue.item_id
 LIMIT %(limit)s) AS rest UNION ALL SELECT lower.item_id AS item_id, lower.data AS data, lower.created AS created, lower.expire AS expire, lower.attempts AS attempts, lower.priority AS priority, lower.last_error AS last_error, lower.held_at AS held_at, lower.hold_reason AS hold_reason, lower.shown AS shown
FROM (SELECT bridge_queue.item_id AS item_id, bridge_queue.data AS data, bridge_queue.created AS created, bridge_queue.expire AS expire, bridge_queue.attempts AS attempts, bridge_queue.priority AS priority, bridge_queue.last_error AS last_error, bridge_queue.held_at AS held_at, bridge_queue.hold_reason AS hold_reason, CASE WHEN (bridge_queue.expire <= (SELECT unix_timestamp(now(6)) AS unix_timestamp_1)) THEN 'ready' WHEN (bridge_queue.state = 'held') THEN 'held' WHEN (bridge_queue.state = 'leased') THEN 'leased' ELSE 'delayed' END AS shown
FROM bridge_queue
WHERE bridge_queue.name = %(queue)s AND NOT (bridge_queue.ttl_end IS NOT NULL AND bridge_queue.ttl_end <= (SELECT unix_timestamp(now(6)) AS unix_timestamp_1) AND bridge_queue.state != 'held' AND (bridge_queue.expire <= (SELECT unix_timestamp(now(6)) AS unix_timestamp_1) OR bridge_queue.state != 'leased')) AND bridge_queue.priority < %(after_priority)s ORDER BY bridge_queue.priority DESC, bridge_queue.item_id
 LIMIT %(limit)s) AS lower) AS page ORDER BY page.priority DESC, page.item_id
 LIMIT %(limit)s;

-- name: browse[ready]
-- runs in: browse, the first page, ready
-- parameters: queue, limit
SELECT bridge_queue.item_id, bridge_queue.data, bridge_queue.created, bridge_queue.expire, bridge_queue.attempts, bridge_queue.priority, bridge_queue.last_error, bridge_queue.held_at, bridge_queue.hold_reason, CASE WHEN (bridge_queue.expire <= (SELECT unix_timestamp(now(6)) AS unix_timestamp_1)) THEN 'ready' WHEN (bridge_queue.state = 'held') THEN 'held' WHEN (bridge_queue.state = 'leased') THEN 'leased' ELSE 'delayed' END AS shown
FROM bridge_queue
WHERE bridge_queue.name = %(queue)s AND NOT (bridge_queue.ttl_end IS NOT NULL AND bridge_queue.ttl_end <= (SELECT unix_timestamp(now(6)) AS unix_timestamp_1) AND bridge_queue.state != 'held' AND (bridge_queue.expire <= (SELECT unix_timestamp(now(6)) AS unix_timestamp_1) OR bridge_queue.state != 'leased')) AND bridge_queue.expire <= (SELECT unix_timestamp(now(6)) AS unix_timestamp_1) AND (bridge_queue.ttl_end IS NULL OR bridge_queue.ttl_end > (SELECT unix_timestamp(now(6)) AS unix_timestamp_1)) ORDER BY bridge_queue.priority DESC, bridge_queue.item_id
 LIMIT %(limit)s;

-- name: browse_after[ready]
-- runs in: browse, a next page, ready
-- parameters: queue, after_priority, after_id, limit
SELECT page.item_id, page.data, page.created, page.expire, page.attempts, page.priority, page.last_error, page.held_at, page.hold_reason, page.shown
FROM (SELECT rest.item_id AS item_id, rest.data AS data, rest.created AS created, rest.expire AS expire, rest.attempts AS attempts, rest.priority AS priority, rest.last_error AS last_error, rest.held_at AS held_at, rest.hold_reason AS hold_reason, rest.shown AS shown
FROM (SELECT bridge_queue.item_id AS item_id, bridge_queue.data AS data, bridge_queue.created AS created, bridge_queue.expire AS expire, bridge_queue.attempts AS attempts, bridge_queue.priority AS priority, bridge_queue.last_error AS last_error, bridge_queue.held_at AS held_at, bridge_queue.hold_reason AS hold_reason, CASE WHEN (bridge_queue.expire <= (SELECT unix_timestamp(now(6)) AS unix_timestamp_1)) THEN 'ready' WHEN (bridge_queue.state = 'held') THEN 'held' WHEN (bridge_queue.state = 'leased') THEN 'leased' ELSE 'delayed' END AS shown
FROM bridge_queue
WHERE bridge_queue.name = %(queue)s AND NOT (bridge_queue.ttl_end IS NOT NULL AND bridge_queue.ttl_end <= (SELECT unix_timestamp(now(6)) AS unix_timestamp_1) AND bridge_queue.state != 'held' AND (bridge_queue.expire <= (SELECT unix_timestamp(now(6)) AS unix_timestamp_1) OR bridge_queue.state != 'leased')) AND bridge_queue.expire <= (SELECT unix_timestamp(now(6)) AS unix_timestamp_1) AND (bridge_queue.ttl_end IS NULL OR bridge_queue.ttl_end > (SELECT unix_timestamp(now(6)) AS unix_timestamp_1)) AND bridge_queue.priority = %(after_priority)s AND bridge_queue.item_id > %(after_id)s ORDER BY bridge_queue.priority DESC, bridge_queue.item_id
 LIMIT %(limit)s) AS rest UNION ALL SELECT lower.item_id AS item_id, lower.data AS data, lower.created AS created, lower.expire AS expire, lower.attempts AS attempts, lower.priority AS priority, lower.last_error AS last_error, lower.held_at AS held_at, lower.hold_reason AS hold_reason, lower.shown AS shown
FROM (SELECT bridge_queue.item_id AS item_id, bridge_queue.data AS data, bridge_queue.created AS created, bridge_queue.expire AS expire, bridge_queue.attempts AS attempts, bridge_queue.priority AS priority, bridge_queue.last_error AS last_error, bridge_queue.held_at AS held_at, bridge_queue.hold_reason AS hold_reason, CASE WHEN (bridge_queue.expire <= (SELECT unix_timestamp(now(6)) AS unix_timestamp_1)) THEN 'ready' WHEN (bridge_queue.state = 'held') THEN 'held' WHEN (bridge_queue.state = 'leased') THEN 'leased' ELSE 'delayed' END AS shown
FROM bridge_queue
WHERE bridge_queue.name = %(queue)s AND NOT (bridge_queue.ttl_end IS NOT NULL AND bridge_queue.ttl_end <= (SELECT unix_timestamp(now(6)) AS unix_timestamp_1) AND bridge_queue.state != 'held' AND (bridge_queue.expire <= (SELECT unix_timestamp(now(6)) AS unix_timestamp_1) OR bridge_queue.state != 'leased')) AND bridge_queue.expire <= (SELECT unix_timestamp(now(6)) AS unix_timestamp_1) AND (bridge_queue.ttl_end IS NULL OR bridge_queue.ttl_end > (SELECT unix_timestamp(now(6)) AS unix_timestamp_1)) AND bridge_queue.priority < %(after_priority)s ORDER BY bridge_queue.priority DESC, bridge_queue.item_id
 LIMIT %(limit)s) AS lower) AS page ORDER BY page.priority DESC, page.item_id
 LIMIT %(limit)s;

-- name: browse[leased]
-- runs in: browse, the first page, leased
-- parameters: queue, limit
SELECT bridge_queue.item_id, bridge_queue.data, bridge_queue.created, bridge_queue.expire, bridge_queue.attempts, bridge_queue.priority, bridge_queue.last_error, bridge_queue.held_at, bridge_queue.hold_reason, CASE WHEN (bridge_queue.expire <= (SELECT unix_timestamp(now(6)) AS unix_timestamp_1)) THEN 'ready' WHEN (bridge_queue.state = 'held') THEN 'held' WHEN (bridge_queue.state = 'leased') THEN 'leased' ELSE 'delayed' END AS shown
FROM bridge_queue
WHERE bridge_queue.name = %(queue)s AND NOT (bridge_queue.ttl_end IS NOT NULL AND bridge_queue.ttl_end <= (SELECT unix_timestamp(now(6)) AS unix_timestamp_1) AND bridge_queue.state != 'held' AND (bridge_queue.expire <= (SELECT unix_timestamp(now(6)) AS unix_timestamp_1) OR bridge_queue.state != 'leased')) AND bridge_queue.expire > (SELECT unix_timestamp(now(6)) AS unix_timestamp_1) AND bridge_queue.state = 'leased' ORDER BY bridge_queue.priority DESC, bridge_queue.item_id
 LIMIT %(limit)s;

-- name: browse_after[leased]
-- runs in: browse, a next page, leased
-- parameters: queue, after_priority, after_id, limit
SELECT page.item_id, page.data, page.created, page.expire, page.attempts, page.priority, page.last_error, page.held_at, page.hold_reason, page.shown
FROM (SELECT rest.item_id AS item_id, rest.data AS data, rest.created AS created, rest.expire AS expire, rest.attempts AS attempts, rest.priority AS priority, rest.last_error AS last_error, rest.held_at AS held_at, rest.hold_reason AS hold_reason, rest.shown AS shown
FROM (SELECT bridge_queue.item_id AS item_id, bridge_queue.data AS data, bridge_queue.created AS created, bridge_queue.expire AS expire, bridge_queue.attempts AS attempts, bridge_queue.priority AS priority, bridge_queue.last_error AS last_error, bridge_queue.held_at AS held_at, bridge_queue.hold_reason AS hold_reason, CASE WHEN (bridge_queue.expire <= (SELECT unix_timestamp(now(6)) AS unix_timestamp_1)) THEN 'ready' WHEN (bridge_queue.state = 'held') THEN 'held' WHEN (bridge_queue.state = 'leased') THEN 'leased' ELSE 'delayed' END AS shown
FROM bridge_queue
WHERE bridge_queue.name = %(queue)s AND NOT (bridge_queue.ttl_end IS NOT NULL AND bridge_queue.ttl_end <= (SELECT unix_timestamp(now(6)) AS unix_timestamp_1) AND bridge_queue.state != 'held' AND (bridge_queue.expire <= (SELECT unix_timestamp(now(6)) AS unix_timestamp_1) OR bridge_queue.state != 'leased')) AND bridge_queue.expire > (SELECT unix_timestamp(now(6)) AS unix_timestamp_1) AND bridge_queue.state = 'leased' AND bridge_queue.priority = %(after_priority)s AND bridge_queue.item_id > %(after_id)s ORDER BY bridge_queue.priority DESC, bridge_queue.item_id
 LIMIT %(limit)s) AS rest UNION ALL SELECT lower.item_id AS item_id, lower.data AS data, lower.created AS created, lower.expire AS expire, lower.attempts AS attempts, lower.priority AS priority, lower.last_error AS last_error, lower.held_at AS held_at, lower.hold_reason AS hold_reason, lower.shown AS shown
FROM (SELECT bridge_queue.item_id AS item_id, bridge_queue.data AS data, bridge_queue.created AS created, bridge_queue.expire AS expire, bridge_queue.attempts AS attempts, bridge_queue.priority AS priority, bridge_queue.last_error AS last_error, bridge_queue.held_at AS held_at, bridge_queue.hold_reason AS hold_reason, CASE WHEN (bridge_queue.expire <= (SELECT unix_timestamp(now(6)) AS unix_timestamp_1)) THEN 'ready' WHEN (bridge_queue.state = 'held') THEN 'held' WHEN (bridge_queue.state = 'leased') THEN 'leased' ELSE 'delayed' END AS shown
FROM bridge_queue
WHERE bridge_queue.name = %(queue)s AND NOT (bridge_queue.ttl_end IS NOT NULL AND bridge_queue.ttl_end <= (SELECT unix_timestamp(now(6)) AS unix_timestamp_1) AND bridge_queue.state != 'held' AND (bridge_queue.expire <= (SELECT unix_timestamp(now(6)) AS unix_timestamp_1) OR bridge_queue.state != 'leased')) AND bridge_queue.expire > (SELECT unix_timestamp(now(6)) AS unix_timestamp_1) AND bridge_queue.state = 'leased' AND bridge_queue.priority < %(after_priority)s ORDER BY bridge_queue.priority DESC, bridge_queue.item_id
 LIMIT %(limit)s) AS lower) AS page ORDER BY page.priority DESC, page.item_id
 LIMIT %(limit)s;

-- name: browse[delayed]
-- runs in: browse, the first page, delayed
-- parameters: queue, limit
SELECT bridge_queue.item_id, bridge_queue.data, bridge_queue.created, bridge_queue.expire, bridge_queue.attempts, bridge_queue.priority, bridge_queue.last_error, bridge_queue.held_at, bridge_queue.hold_reason, CASE WHEN (bridge_queue.expire <= (SELECT unix_timestamp(now(6)) AS unix_timestamp_1)) THEN 'ready' WHEN (bridge_queue.state = 'held') THEN 'held' WHEN (bridge_queue.state = 'leased') THEN 'leased' ELSE 'delayed' END AS shown
FROM bridge_queue
WHERE bridge_queue.name = %(queue)s AND NOT (bridge_queue.ttl_end IS NOT NULL AND bridge_queue.ttl_end <= (SELECT unix_timestamp(now(6)) AS unix_timestamp_1) AND bridge_queue.state != 'held' AND (bridge_queue.expire <= (SELECT unix_timestamp(now(6)) AS unix_timestamp_1) OR bridge_queue.state != 'leased')) AND bridge_queue.expire > (SELECT unix_timestamp(now(6)) AS unix_timestamp_1) AND bridge_queue.state != 'leased' AND bridge_queue.state != 'held' AND (bridge_queue.ttl_end IS NULL OR bridge_queue.ttl_end > (SELECT unix_timestamp(now(6)) AS unix_timestamp_1)) ORDER BY bridge_queue.priority DESC, bridge_queue.item_id
 LIMIT %(limit)s;

-- name: browse_after[delayed]
-- runs in: browse, a next page, delayed
-- parameters: queue, after_priority, after_id, limit
SELECT page.item_id, page.data, page.created, page.expire, page.attempts, page.priority, page.last_error, page.held_at, page.hold_reason, page.shown
FROM (SELECT rest.item_id AS item_id, rest.data AS data, rest.created AS created, rest.expire AS expire, rest.attempts AS attempts, rest.priority AS priority, rest.last_error AS last_error, rest.held_at AS held_at, rest.hold_reason AS hold_reason, rest.shown AS shown
FROM (SELECT bridge_queue.item_id AS item_id, bridge_queue.data AS data, bridge_queue.created AS created, bridge_queue.expire AS expire, bridge_queue.attempts AS attempts, bridge_queue.priority AS priority, bridge_queue.last_error AS last_error, bridge_queue.held_at AS held_at, bridge_queue.hold_reason AS hold_reason, CASE WHEN (bridge_queue.expire <= (SELECT unix_timestamp(now(6)) AS unix_timestamp_1)) THEN 'ready' WHEN (bridge_queue.state = 'held') THEN 'held' WHEN (bridge_queue.state = 'leased') THEN 'leased' ELSE 'delayed' END AS shown
FROM bridge_queue
WHERE bridge_queue.name = %(queue)s AND NOT (bridge_queue.ttl_end IS NOT NULL AND bridge_queue.ttl_end <= (SELECT unix_timestamp(now(6)) AS unix_timestamp_1) AND bridge_queue.state != 'held' AND (bridge_queue.expire <= (SELECT unix_timestamp(now(6)) AS unix_timestamp_1) OR bridge_queue.state != 'leased')) AND bridge_queue.expire > (SELECT unix_timestamp(now(6)) AS unix_timestamp_1) AND bridge_queue.state != 'leased' AND bridge_queue.state != 'held' AND (bridge_queue.ttl_end IS NULL OR bridge_queue.ttl_end > (SELECT unix_timestamp(now(6)) AS unix_timestamp_1)) AND bridge_queue.priority = %(after_priority)s AND bridge_queue.item_id > %(after_id)s ORDER BY bridge_queue.priority DESC, bridge_queue.item_id
 LIMIT %(limit)s) AS rest UNION ALL SELECT lower.item_id AS item_id, lower.data AS data, lower.created AS created, lower.expire AS expire, lower.attempts AS attempts, lower.priority AS priority, lower.last_error AS last_error, lower.held_at AS held_at, lower.hold_reason AS hold_reason, lower.shown AS shown
FROM (SELECT bridge_queue.item_id AS item_id, bridge_queue.data AS data, bridge_queue.created AS created, bridge_queue.expire AS expire, bridge_queue.attempts AS attempts, bridge_queue.priority AS priority, bridge_queue.last_error AS last_error, bridge_queue.held_at AS held_at, bridge_queue.hold_reason AS hold_reason, CASE WHEN (bridge_queue.expire <= (SELECT unix_timestamp(now(6)) AS unix_timestamp_1)) THEN 'ready' WHEN (bridge_queue.state = 'held') THEN 'held' WHEN (bridge_queue.state = 'leased') THEN 'leased' ELSE 'delayed' END AS shown
FROM bridge_queue
WHERE bridge_queue.name = %(queue)s AND NOT (bridge_queue.ttl_end IS NOT NULL AND bridge_queue.ttl_end <= (SELECT unix_timestamp(now(6)) AS unix_timestamp_1) AND bridge_queue.state != 'held' AND (bridge_queue.expire <= (SELECT unix_timestamp(now(6)) AS unix_timestamp_1) OR bridge_queue.state != 'leased')) AND bridge_queue.expire > (SELECT unix_timestamp(now(6)) AS unix_timestamp_1) AND bridge_queue.state != 'leased' AND bridge_queue.state != 'held' AND (bridge_queue.ttl_end IS NULL OR bridge_queue.ttl_end > (SELECT unix_timestamp(now(6)) AS unix_timestamp_1)) AND bridge_queue.priority < %(after_priority)s ORDER BY bridge_queue.priority DESC, bridge_queue.item_id
 LIMIT %(limit)s) AS lower) AS page ORDER BY page.priority DESC, page.item_id
 LIMIT %(limit)s;

-- name: browse[held]
-- runs in: browse, the first page, held
-- parameters: queue, limit
SELECT bridge_queue.item_id, bridge_queue.data, bridge_queue.created, bridge_queue.expire, bridge_queue.attempts, bridge_queue.priority, bridge_queue.last_error, bridge_queue.held_at, bridge_queue.hold_reason, CASE WHEN (bridge_queue.expire <= (SELECT unix_timestamp(now(6)) AS unix_timestamp_1)) THEN 'ready' WHEN (bridge_queue.state = 'held') THEN 'held' WHEN (bridge_queue.state = 'leased') THEN 'leased' ELSE 'delayed' END AS shown
FROM bridge_queue
WHERE bridge_queue.name = %(queue)s AND NOT (bridge_queue.ttl_end IS NOT NULL AND bridge_queue.ttl_end <= (SELECT unix_timestamp(now(6)) AS unix_timestamp_1) AND bridge_queue.state != 'held' AND (bridge_queue.expire <= (SELECT unix_timestamp(now(6)) AS unix_timestamp_1) OR bridge_queue.state != 'leased')) AND bridge_queue.expire > (SELECT unix_timestamp(now(6)) AS unix_timestamp_1) AND bridge_queue.state = 'held' ORDER BY bridge_queue.priority DESC, bridge_queue.item_id
 LIMIT %(limit)s;

-- name: browse_after[held]
-- runs in: browse, a next page, held
-- parameters: queue, after_priority, after_id, limit
SELECT page.item_id, page.data, page.created, page.expire, page.attempts, page.priority, page.last_error, page.held_at, page.hold_reason, page.shown
FROM (SELECT rest.item_id AS item_id, rest.data AS data, rest.created AS created, rest.expire AS expire, rest.attempts AS attempts, rest.priority AS priority, rest.last_error AS last_error, rest.held_at AS held_at, rest.hold_reason AS hold_reason, rest.shown AS shown
FROM (SELECT bridge_queue.item_id AS item_id, bridge_queue.data AS data, bridge_queue.created AS created, bridge_queue.expire AS expire, bridge_queue.attempts AS attempts, bridge_queue.priority AS priority, bridge_queue.last_error AS last_error, bridge_queue.held_at AS held_at, bridge_queue.hold_reason AS hold_reason, CASE WHEN (bridge_queue.expire <= (SELECT unix_timestamp(now(6)) AS unix_timestamp_1)) THEN 'ready' WHEN (bridge_queue.state = 'held') THEN 'held' WHEN (bridge_queue.state = 'leased') THEN 'leased' ELSE 'delayed' END AS shown
FROM bridge_queue
WHERE bridge_queue.name = %(queue)s AND NOT (bridge_queue.ttl_end IS NOT NULL AND bridge_queue.ttl_end <= (SELECT unix_timestamp(now(6)) AS unix_timestamp_1) AND bridge_queue.state != 'held' AND (bridge_queue.expire <= (SELECT unix_timestamp(now(6)) AS unix_timestamp_1) OR bridge_queue.state != 'leased')) AND bridge_queue.expire > (SELECT unix_timestamp(now(6)) AS unix_timestamp_1) AND bridge_queue.state = 'held' AND bridge_queue.priority = %(after_priority)s AND bridge_queue.item_id > %(after_id)s ORDER BY bridge_queue.priority DESC, bridge_queue.item_id
 LIMIT %(limit)s) AS rest UNION ALL SELECT lower.item_id AS item_id, lower.data AS data, lower.created AS created, lower.expire AS expire, lower.attempts AS attempts, lower.priority AS priority, lower.last_error AS last_error, lower.held_at AS held_at, lower.hold_reason AS hold_reason, lower.shown AS shown
FROM (SELECT bridge_queue.item_id AS item_id, bridge_queue.data AS data, bridge_queue.created AS created, bridge_queue.expire AS expire, bridge_queue.attempts AS attempts, bridge_queue.priority AS priority, bridge_queue.last_error AS last_error, bridge_queue.held_at AS held_at, bridge_queue.hold_reason AS hold_reason, CASE WHEN (bridge_queue.expire <= (SELECT unix_timestamp(now(6)) AS unix_timestamp_1)) THEN 'ready' WHEN (bridge_queue.state = 'held') THEN 'held' WHEN (bridge_queue.state = 'leased') THEN 'leased' ELSE 'delayed' END AS shown
FROM bridge_queue
WHERE bridge_queue.name = %(queue)s AND NOT (bridge_queue.ttl_end IS NOT NULL AND bridge_queue.ttl_end <= (SELECT unix_timestamp(now(6)) AS unix_timestamp_1) AND bridge_queue.state != 'held' AND (bridge_queue.expire <= (SELECT unix_timestamp(now(6)) AS unix_timestamp_1) OR bridge_queue.state != 'leased')) AND bridge_queue.expire > (SELECT unix_timestamp(now(6)) AS unix_timestamp_1) AND bridge_queue.state = 'held' AND bridge_queue.priority < %(after_priority)s ORDER BY bridge_queue.priority DESC, bridge_queue.item_id
 LIMIT %(limit)s) AS lower) AS page ORDER BY page.priority DESC, page.item_id
 LIMIT %(limit)s;

-- name: find_item
-- runs in: find_item
-- parameters: id, queue
SELECT bridge_queue.item_id, bridge_queue.data, bridge_queue.created, bridge_queue.expire, bridge_queue.attempts, bridge_queue.priority, bridge_queue.last_error, bridge_queue.held_at, bridge_queue.hold_reason, CASE WHEN (bridge_queue.expire <= (SELECT unix_timestamp(now(6)) AS unix_timestamp_1)) THEN 'ready' WHEN (bridge_queue.state = 'held') THEN 'held' WHEN (bridge_queue.state = 'leased') THEN 'leased' ELSE 'delayed' END AS shown
FROM bridge_queue
WHERE bridge_queue.item_id = %(id)s AND bridge_queue.name = %(queue)s;

-- name: free_leases
-- runs in: release_all, first
-- parameters: queue
UPDATE bridge_queue SET expire=0, token=NULL, state='ready' WHERE bridge_queue.name = %(queue)s AND bridge_queue.expire > unix_timestamp(now(6)) AND bridge_queue.state != 'held';

-- name: end_claims
-- runs in: release_all, then, in its transaction
-- parameters: queue
UPDATE bridge_queue SET token=NULL WHERE bridge_queue.name = %(queue)s AND bridge_queue.token IS NOT NULL AND bridge_queue.expire <= unix_timestamp(now(6));

-- name: remove_item
-- runs in: remove_item
-- parameters: id, queue
DELETE FROM bridge_queue WHERE bridge_queue.item_id = %(id)s AND bridge_queue.name = %(queue)s;

-- name: delete_expired
-- runs in: garbage_collection
-- parameters: queue
DELETE FROM bridge_queue WHERE bridge_queue.name = %(queue)s AND bridge_queue.ttl_end IS NOT NULL AND bridge_queue.ttl_end <= (SELECT unix_timestamp(now(6)) AS unix_timestamp_1) AND bridge_queue.state != 'held' AND (bridge_queue.expire <= (SELECT unix_timestamp(now(6)) AS unix_timestamp_1) OR bridge_queue.state != 'leased');

-- name: delete_queue
-- runs in: delete_queue
-- parameters: queue
DELETE FROM bridge_queue WHERE bridge_queue.name = %(queue)s;

-- name: topic_create_messages
-- runs in: first use of topics
CREATE TABLE bridge_queue_topic (
	name VARBINARY(255) NOT NULL,
	`position` BIGINT NOT NULL,
	data LONGBLOB NOT NULL,
	published DOUBLE NOT NULL,
	expire DOUBLE NOT NULL,
	PRIMARY KEY (name, `position`)
);

-- name: topic_create_expire_index
-- runs in: first use of topics, with the table
CREATE INDEX bridge_queue_topic_expire ON bridge_queue_topic (name, expire);

-- name: topic_create_subscribers
-- runs in: first use of topics
CREATE TABLE bridge_queue_topic_sub (
	name VARBINARY(255) NOT NULL,
	subscriber VARBINARY(255) NOT NULL,
	`position` BIGINT NOT NULL,
	PRIMARY KEY (name, subscriber)
);

-- name: topic_lock_head
-- runs in: publish and delete_topic, first
-- parameters: topic
SELECT bridge_queue_topic_sub.`position`, unix_timestamp(now(6)) AS unix_timestamp_1
FROM bridge_queue_topic_sub
WHERE bridge_queue_topic_sub.name = %(topic)s AND bridge_queue_topic_sub.subscriber = '' FOR UPDATE;

-- name: topic_delete_expired
-- runs in: publish, then; read, at most once a second
-- parameters: topic
DELETE FROM bridge_queue_topic WHERE bridge_queue_topic.name = %(topic)s AND bridge_queue_topic.expire <= unix_timestamp(now(6));

-- name: topic_insert_messages
-- runs in: publish, then, once per message
-- parameters: name, position, data, published, expire
INSERT INTO bridge_queue_topic (name, `position`, data, published, expire) VALUES (%(name)s, %(position)s, %(data)s, %(published)s, %(expire)s);

-- name: topic_set_head
-- runs in: publish, last
-- parameters: last, topic
UPDATE bridge_queue_topic_sub SET `position`=%(last)s WHERE bridge_queue_topic_sub.name = %(topic)s AND bridge_queue_topic_sub.subscriber = '';

-- name: topic_add_subscriber
-- runs in: the first publish to a topic; a first read from 'latest'
-- parameters: name, subscriber, position
INSERT IGNORE INTO bridge_queue_topic_sub (name, subscriber, `position`) VALUES (%(name)s, %(subscriber)s, %(position)s);

-- name: topic_read
-- runs in: read
-- parameters: topic, subscriber_name, limit
SELECT bridge_queue_topic.`position`, bridge_queue_topic.data, bridge_queue_topic.published, bridge_queue_topic.expire
FROM bridge_queue_topic
WHERE bridge_queue_topic.name = %(topic)s AND bridge_queue_topic.`position` > coalesce((SELECT bridge_queue_topic_sub.`position`
FROM bridge_queue_topic_sub
WHERE bridge_queue_topic_sub.name = %(topic)s AND bridge_queue_topic_sub.subscriber = %(subscriber_name)s), 0) AND bridge_queue_topic.expire > unix_timestamp(now(6)) ORDER BY bridge_queue_topic.`position`
 LIMIT %(limit)s;

-- name: topic_subscriber_position
-- runs in: a first read from 'latest'
-- parameters: topic, subscriber_name
SELECT bridge_queue_topic_sub.`position`
FROM bridge_queue_topic_sub
WHERE bridge_queue_topic_sub.name = %(topic)s AND bridge_queue_topic_sub.subscriber = %(subscriber_name)s;

-- name: topic_last_position
-- runs in: ack, first; a first read from 'latest'
-- parameters: topic
SELECT bridge_queue_topic_sub.`position`
FROM bridge_queue_topic_sub
WHERE bridge_queue_topic_sub.name = %(topic)s AND bridge_queue_topic_sub.subscriber = '';

-- name: topic_ack_forward
-- runs in: ack, then
-- parameters: wanted, topic, subscriber_name
UPDATE bridge_queue_topic_sub SET `position`=%(wanted)s WHERE bridge_queue_topic_sub.name = %(topic)s AND bridge_queue_topic_sub.subscriber = %(subscriber_name)s AND bridge_queue_topic_sub.`position` < %(wanted)s;

-- name: topic_live_stats
-- runs in: stats
-- parameters: topic
SELECT count(*) AS count_1, min(bridge_queue_topic.published) AS min_1, max(bridge_queue_topic.published) AS max_1
FROM bridge_queue_topic
WHERE bridge_queue_topic.name = %(topic)s AND bridge_queue_topic.expire > unix_timestamp(now(6));

-- name: topic_subscriber_count
-- runs in: stats
-- parameters: topic
SELECT count(*) AS count_1
FROM bridge_queue_topic_sub
WHERE bridge_queue_topic_sub.name = %(topic)s AND bridge_queue_topic_sub.subscriber != '';

-- name: topic_delete_messages
-- runs in: delete_topic, then
-- parameters: topic
DELETE FROM bridge_queue_topic WHERE bridge_queue_topic.name = %(topic)s;

-- name: topic_delete_subscribers
-- runs in: delete_topic, last
-- parameters: topic
DELETE FROM bridge_queue_topic_sub WHERE bridge_queue_topic_sub.name = %(topic)s AND bridge_queue_topic_sub.subscriber != '';

-- name: topic_binary_names_messages
-- runs in: first use of topic tables made while names were VARCHAR
ALTER TABLE bridge_queue_topic MODIFY COLUMN name VARBINARY(255) NOT NULL;

-- name: topic_binary_names_subscribers
-- runs in: first use of topic tables made while names were VARCHAR
ALTER TABLE bridge_queue_topic_sub MODIFY COLUMN name VARBINARY(255) NOT NULL, MODIFY COLUMN subscriber VARBINARY(255) NOT NULL;
