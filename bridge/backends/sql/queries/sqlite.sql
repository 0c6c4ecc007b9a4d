-- Every statement bridge's SQL backend sends to SQLite (the sqlite3 module, qmark placeholders).
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
	item_id INTEGER NOT NULL,
	name VARCHAR(255) NOT NULL,
	data BLOB NOT NULL,
	created DOUBLE NOT NULL,
	expire DOUBLE DEFAULT '0' NOT NULL,
	priority INTEGER DEFAULT '0' NOT NULL,
	attempts INTEGER DEFAULT '0' NOT NULL,
	token VARCHAR(32),
	state VARCHAR(16) DEFAULT 'ready' NOT NULL,
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
ALTER TABLE bridge_queue ADD COLUMN state VARCHAR(16) DEFAULT 'ready' NOT NULL;

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

-- name: session_1
-- runs in: every new connection
PRAGMA journal_mode=WAL;

-- name: session_2
-- runs in: every new connection
PRAGMA synchronous=NORMAL;

-- name: ping
-- runs in: a pinned connection idle for over a second
SELECT 1;

-- name: begin_write
-- runs in: write transactions of more than one statement: settle_and_claim, create_items of over 100 rows, release_all...
BEGIN IMMEDIATE;

-- name: begin_read
-- runs in: counts, queue_names, peek, browse
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
INSERT INTO bridge_queue (name, data, created, expire, priority, state) VALUES (?, ?, ((julianday('now') - 2440587.5) * 86400.0), 0, ?, 'ready') RETURNING item_id;

-- name: insert[rows=3]
-- runs in: create_items
-- parameters: queue, data0, priority, queue, data1, priority, queue, data2, priority
INSERT INTO bridge_queue (name, data, created, expire, priority, state) VALUES (?, ?, ((julianday('now') - 2440587.5) * 86400.0), 0, ?, 'ready'), (?, ?, ((julianday('now') - 2440587.5) * 86400.0), 0, ?, 'ready'), (?, ?, ((julianday('now') - 2440587.5) * 86400.0), 0, ?, 'ready') RETURNING item_id;

-- name: insert_delayed[rows=1]
-- runs in: create_items with a delay
-- parameters: queue, data0, delay, priority
INSERT INTO bridge_queue (name, data, created, expire, priority, state) VALUES (?, ?, ((julianday('now') - 2440587.5) * 86400.0), ((julianday('now') - 2440587.5) * 86400.0 + ?), ?, 'delayed') RETURNING item_id;

-- name: insert_ttl[rows=1]
-- runs in: create_items with a ttl
-- parameters: queue, data0, priority, ttl
INSERT INTO bridge_queue (name, data, created, expire, priority, state, ttl_end) VALUES (?, ?, ((julianday('now') - 2440587.5) * 86400.0), 0, ?, 'ready', ((julianday('now') - 2440587.5) * 86400.0 + ?)) RETURNING item_id;

-- name: claim[n=1]
-- runs in: claim_items; settle_and_claim, after the settlement
-- parameters: lease_time, token, queue
UPDATE bridge_queue SET expire=((julianday('now') - 2440587.5) * 86400.0 + ?), attempts=(bridge_queue.attempts + 1), token=?, state='leased' WHERE bridge_queue.item_id = (SELECT bridge_queue.item_id
FROM bridge_queue
WHERE bridge_queue.name = ? AND bridge_queue.expire <= (julianday('now') - 2440587.5) * 86400.0 AND (bridge_queue.ttl_end IS NULL OR bridge_queue.ttl_end > (julianday('now') - 2440587.5) * 86400.0) ORDER BY bridge_queue.priority DESC, bridge_queue.item_id
 LIMIT 1 OFFSET 0) AND bridge_queue.expire <= (julianday('now') - 2440587.5) * 86400.0 RETURNING item_id, data, created, expire, attempts, priority, last_error;

-- name: claim[n=100]
-- runs in: claim_items; settle_and_claim, after the settlement
-- parameters: lease_time, token, queue
UPDATE bridge_queue SET expire=((julianday('now') - 2440587.5) * 86400.0 + ?), attempts=(bridge_queue.attempts + 1), token=?, state='leased' WHERE bridge_queue.item_id IN (SELECT bridge_queue.item_id
FROM bridge_queue
WHERE bridge_queue.name = ? AND bridge_queue.expire <= (julianday('now') - 2440587.5) * 86400.0 AND (bridge_queue.ttl_end IS NULL OR bridge_queue.ttl_end > (julianday('now') - 2440587.5) * 86400.0) ORDER BY bridge_queue.priority DESC, bridge_queue.item_id
 LIMIT 100 OFFSET 0) AND bridge_queue.expire <= (julianday('now') - 2440587.5) * 86400.0 RETURNING item_id, data, created, expire, attempts, priority, last_error;

-- name: claim_grace[n=1]
-- runs in: claim_items with a grace
-- parameters: lease_time, token, lease_time, grace, lease_time, grace, queue
UPDATE bridge_queue SET expire=((julianday('now') - 2440587.5) * 86400.0 + ?), attempts=(bridge_queue.attempts + 1), token=?, state='leased', ttl_end=CASE WHEN (bridge_queue.ttl_end < (julianday('now') - 2440587.5) * 86400.0 + ? + ?) THEN (julianday('now') - 2440587.5) * 86400.0 + ? + ? ELSE bridge_queue.ttl_end END WHERE bridge_queue.item_id = (SELECT bridge_queue.item_id
FROM bridge_queue
WHERE bridge_queue.name = ? AND bridge_queue.expire <= (julianday('now') - 2440587.5) * 86400.0 AND (bridge_queue.ttl_end IS NULL OR bridge_queue.ttl_end > (julianday('now') - 2440587.5) * 86400.0) ORDER BY bridge_queue.priority DESC, bridge_queue.item_id
 LIMIT 1 OFFSET 0) AND bridge_queue.expire <= (julianday('now') - 2440587.5) * 86400.0 RETURNING item_id, data, created, expire, attempts, priority, last_error;

-- name: delete[ids=1]
-- runs in: delete_items (one per claim and 100 ids); settle_and_claim(delete), first
-- parameters: id0, token
DELETE FROM bridge_queue WHERE bridge_queue.item_id IN (?) AND bridge_queue.token = ?;

-- name: delete[ids=3]
-- runs in: delete_items (one per claim and 100 ids)
-- parameters: id0, id1, id2, token
DELETE FROM bridge_queue WHERE bridge_queue.item_id IN (?, ?, ?) AND bridge_queue.token = ?;

-- name: release
-- runs in: release_item; settle_and_claim, first
-- parameters: id, claim
UPDATE bridge_queue SET expire=0, state='ready' WHERE bridge_queue.item_id = ? AND bridge_queue.token = ? RETURNING expire;

-- name: delay
-- runs in: delay_item; settle_and_claim, first
-- parameters: seconds, id, claim
UPDATE bridge_queue SET expire=((julianday('now') - 2440587.5) * 86400.0 + ?), state='delayed' WHERE bridge_queue.item_id = ? AND bridge_queue.token = ? RETURNING expire;

-- name: extend
-- runs in: extend_lease
-- parameters: seconds, id, claim
UPDATE bridge_queue SET expire=((julianday('now') - 2440587.5) * 86400.0 + ?), state='leased' WHERE bridge_queue.item_id = ? AND bridge_queue.token = ? RETURNING expire;

-- name: extend_grace
-- runs in: extend_lease with a grace
-- parameters: seconds, seconds, grace, seconds, grace, id, claim
UPDATE bridge_queue SET expire=((julianday('now') - 2440587.5) * 86400.0 + ?), state='leased', ttl_end=CASE WHEN (bridge_queue.ttl_end < (julianday('now') - 2440587.5) * 86400.0 + ? + ?) THEN (julianday('now') - 2440587.5) * 86400.0 + ? + ? ELSE bridge_queue.ttl_end END WHERE bridge_queue.item_id = ? AND bridge_queue.token = ? RETURNING expire;

-- name: fail
-- runs in: fail_item without a delay; settle_and_claim, first
-- parameters: error, id, claim
UPDATE bridge_queue SET last_error=? WHERE bridge_queue.item_id = ? AND bridge_queue.token = ? RETURNING expire;

-- name: fail_delayed
-- runs in: fail_item with a delay; settle_and_claim, first
-- parameters: seconds, error, id, claim
UPDATE bridge_queue SET expire=((julianday('now') - 2440587.5) * 86400.0 + ?), state='delayed', last_error=? WHERE bridge_queue.item_id = ? AND bridge_queue.token = ? RETURNING expire;

-- name: hold
-- runs in: hold_item; settle_and_claim, first
-- parameters: error, reason, id, claim
UPDATE bridge_queue SET expire=253402300799.0, token=NULL, state='held', last_error=coalesce(?, bridge_queue.last_error), held_at=((julianday('now') - 2440587.5) * 86400.0), hold_reason=? WHERE bridge_queue.item_id = ? AND bridge_queue.token = ?;

-- name: held_items
-- runs in: held_items
-- parameters: queue, limit
SELECT bridge_queue.item_id, bridge_queue.data, bridge_queue.created, bridge_queue.expire, bridge_queue.attempts, bridge_queue.priority, bridge_queue.last_error, bridge_queue.held_at, bridge_queue.hold_reason
FROM bridge_queue
WHERE bridge_queue.name = ? AND bridge_queue.state = 'held' ORDER BY bridge_queue.held_at, bridge_queue.item_id
 LIMIT ? OFFSET 0;

-- name: kick
-- runs in: kick with a limit
-- parameters: queue, limit
UPDATE bridge_queue SET expire=0, attempts=0, state='ready', held_at=NULL, hold_reason=NULL WHERE bridge_queue.item_id IN (SELECT bridge_queue.item_id
FROM bridge_queue
WHERE bridge_queue.name = ? AND bridge_queue.state = 'held' ORDER BY bridge_queue.held_at, bridge_queue.item_id
 LIMIT ? OFFSET 0) AND bridge_queue.state = 'held';

-- name: kick_all
-- runs in: kick without a limit
-- parameters: queue
UPDATE bridge_queue SET expire=0, attempts=0, state='ready', held_at=NULL, hold_reason=NULL WHERE bridge_queue.name = ? AND bridge_queue.state = 'held';

-- name: kick_item
-- runs in: kick_item
-- parameters: id, queue
UPDATE bridge_queue SET expire=0, attempts=0, state='ready', held_at=NULL, hold_reason=NULL WHERE bridge_queue.item_id = ? AND bridge_queue.name = ? AND bridge_queue.state = 'held';

-- name: delete_held
-- runs in: delete_held with a limit
-- parameters: queue, limit
DELETE FROM bridge_queue WHERE bridge_queue.item_id IN (SELECT bridge_queue.item_id
FROM bridge_queue
WHERE bridge_queue.name = ? AND bridge_queue.state = 'held' ORDER BY bridge_queue.held_at, bridge_queue.item_id
 LIMIT ? OFFSET 0) AND bridge_queue.state = 'held';

-- name: delete_all_held
-- runs in: delete_held without a limit
-- parameters: queue
DELETE FROM bridge_queue WHERE bridge_queue.name = ? AND bridge_queue.state = 'held';

-- name: counts
-- runs in: counts, number_of_items
-- parameters: queue
SELECT count(*) AS count_1, count(*) FILTER (WHERE bridge_queue.expire > (SELECT (julianday('now') - 2440587.5) * 86400.0 AS anon_2) AND bridge_queue.state = 'leased') AS anon_1, count(*) FILTER (WHERE bridge_queue.expire > (SELECT (julianday('now') - 2440587.5) * 86400.0 AS anon_2) AND bridge_queue.state != 'leased' AND bridge_queue.state != 'held' AND (bridge_queue.ttl_end IS NULL OR bridge_queue.ttl_end > (SELECT (julianday('now') - 2440587.5) * 86400.0 AS anon_2))) AS anon_3, count(*) FILTER (WHERE bridge_queue.expire > (SELECT (julianday('now') - 2440587.5) * 86400.0 AS anon_2) AND bridge_queue.state = 'held') AS anon_4, count(*) FILTER (WHERE bridge_queue.ttl_end IS NOT NULL AND bridge_queue.ttl_end <= (SELECT (julianday('now') - 2440587.5) * 86400.0 AS anon_2) AND bridge_queue.state != 'held' AND (bridge_queue.expire <= (SELECT (julianday('now') - 2440587.5) * 86400.0 AS anon_2) OR bridge_queue.state != 'leased')) AS anon_5
FROM bridge_queue
WHERE bridge_queue.name = ?;

-- name: oldest_ready_age
-- runs in: oldest_ready_age
-- parameters: queue, queue, queue
WITH RECURSIVE levels(priority) AS
(SELECT (SELECT bridge_queue.priority
FROM bridge_queue
WHERE bridge_queue.name = ? ORDER BY bridge_queue.priority DESC
 LIMIT 1 OFFSET 0) AS priority UNION ALL SELECT (SELECT bridge_queue.priority
FROM bridge_queue
WHERE bridge_queue.name = ? AND bridge_queue.priority < levels.priority ORDER BY bridge_queue.priority DESC
 LIMIT 1 OFFSET 0) AS priority
FROM levels
WHERE levels.priority IS NOT NULL)
 SELECT (julianday('now') - 2440587.5) * 86400.0 - min((SELECT bridge_queue.created
FROM bridge_queue
WHERE bridge_queue.name = ? AND bridge_queue.priority <= levels.priority AND bridge_queue.expire <= (julianday('now') - 2440587.5) * 86400.0 AND (bridge_queue.ttl_end IS NULL OR bridge_queue.ttl_end > (julianday('now') - 2440587.5) * 86400.0) ORDER BY bridge_queue.priority DESC, bridge_queue.item_id
 LIMIT 1 OFFSET 0)) AS anon_1
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
WHERE bridge_queue.name = ? AND bridge_queue.state != 'held' AND NOT (bridge_queue.ttl_end IS NOT NULL AND bridge_queue.ttl_end <= (julianday('now') - 2440587.5) * 86400.0 AND bridge_queue.state != 'held' AND (bridge_queue.expire <= (julianday('now') - 2440587.5) * 86400.0 OR bridge_queue.state != 'leased')) ORDER BY CASE WHEN (bridge_queue.expire <= (julianday('now') - 2440587.5) * 86400.0) THEN 0 ELSE 1 END, bridge_queue.priority DESC, bridge_queue.item_id
 LIMIT ? OFFSET 0;

-- name: browse[every state]
-- runs in: browse, the first page, every state
-- parameters: queue, limit
SELECT bridge_queue.item_id, bridge_queue.data, bridge_queue.created, bridge_queue.expire, bridge_queue.attempts, bridge_queue.priority, bridge_queue.last_error, bridge_queue.held_at, bridge_queue.hold_reason, CASE WHEN (bridge_queue.expire <= (SELECT (julianday('now') - 2440587.5) * 86400.0 AS anon_1)) THEN 'ready' WHEN (bridge_queue.state = 'held') THEN 'held' WHEN (bridge_queue.state = 'leased') THEN 'leased' ELSE 'delayed' END AS shown
FROM bridge_queue
WHERE bridge_queue.name = ? AND NOT (bridge_queue.ttl_end IS NOT NULL AND bridge_queue.ttl_end <= (SELECT (julianday('now') - 2440587.5) * 86400.0 AS anon_1) AND bridge_queue.state != 'held' AND (bridge_queue.expire <= (SELECT (julianday('now') - 2440587.5) * 86400.0 AS anon_1) OR bridge_queue.state != 'leased')) ORDER BY bridge_queue.priority DESC, bridge_queue.item_id
 LIMIT ? OFFSET 0;

-- name: browse_after[every state]
-- runs in: browse, a next page, every state
-- parameters: queue, after_priority, after_id, limit, queue, after_priority, limit, limit
SELECT page.item_id, page.data, page.created, page.expire, page.attempts, page.priority, page.last_error, page.held_at, page.hold_reason, page.shown
FROM (SELECT rest.item_id AS item_id, rest.data AS data, rest.created AS created, rest.expire AS expire, rest.attempts AS attempts, rest.priority AS priority, rest.last_error AS last_error, rest.held_at AS held_at, rest.hold_reason AS hold_reason, rest.shown AS shown
FROM (SELECT bridge_queue.item_id AS item_id, bridge_queue.data AS data, bridge_queue.created AS created, bridge_queue.expire AS expire, bridge_queue.attempts AS attempts, bridge_queue.priority AS priority, bridge_queue.last_error AS last_error, bridge_queue.held_at AS held_at, bridge_queue.hold_reason AS hold_reason, CASE WHEN (bridge_queue.expire <= (SELECT (julianday('now') - 2440587.5) * 86400.0 AS anon_1)) THEN 'ready' WHEN (bridge_queue.state = 'held') THEN 'held' WHEN (bridge_queue.state = 'leased') THEN 'leased' ELSE 'delayed' END AS shown
FROM bridge_queue
WHERE bridge_queue.name = ? AND NOT (bridge_queue.ttl_end IS NOT NULL AND bridge_queue.ttl_end <= (SELECT (julianday('now') - 2440587.5) * 86400.0 AS anon_1) AND bridge_queue.state != 'held' AND (bridge_queue.expire <= (SELECT (julianday('now') - 2440587.5) * 86400.0 AS anon_1) OR bridge_queue.state != 'leased')) AND bridge_queue.priority = ? AND bridge_queue.item_id > ? ORDER BY bridge_queue.priority DESC, bridge_queue.item_id
 LIMIT ? OFFSET 0) AS rest UNION ALL SELECT lower.item_id AS item_id, lower.data AS data, lower.created AS created, lower.expire AS expire, lower.attempts AS attempts, lower.priority AS priority, lower.last_error AS last_error, lower.held_at AS held_at, lower.hold_reason AS hold_reason, lower.shown AS shown
FROM (SELECT bridge_queue.item_id AS item_id, bridge_queue.data AS data, bridge_queue.created AS created, bridge_queue.expire AS expire, bridge_queue.attempts AS attempts, bridge_queue.priority AS priority, bridge_queue.last_error AS last_error, bridge_queue.held_at AS held_at, bridge_queue.hold_reason AS hold_reason, CASE WHEN (bridge_queue.expire <= (SELECT (julianday('now') - 2440587.5) * 86400.0 AS anon_1)) THEN 'ready' WHEN (bridge_queue.state = 'held') THEN 'held' WHEN (bridge_queue.state = 'leased') THEN 'leased' ELSE 'delayed' END AS shown
FROM bridge_queue
WHERE bridge_queue.name = ? AND NOT (bridge_queue.ttl_end IS NOT NULL AND bridge_queue.ttl_end <= (SELECT (julianday('now') - 2440587.5) * 86400.0 AS anon_1) AND bridge_queue.state != 'held' AND (bridge_queue.expire <= (SELECT (julianday('now') - 2440587.5) * 86400.0 AS anon_1) OR bridge_queue.state != 'leased')) AND bridge_queue.priority < ? ORDER BY bridge_queue.priority DESC, bridge_queue.item_id
 LIMIT ? OFFSET 0) AS lower) AS page ORDER BY page.priority DESC, page.item_id
 LIMIT ? OFFSET 0;

-- name: browse[ready]
-- runs in: browse, the first page, ready
-- parameters: queue, limit
SELECT bridge_queue.item_id, bridge_queue.data, bridge_queue.created, bridge_queue.expire, bridge_queue.attempts, bridge_queue.priority, bridge_queue.last_error, bridge_queue.held_at, bridge_queue.hold_reason, CASE WHEN (bridge_queue.expire <= (SELECT (julianday('now') - 2440587.5) * 86400.0 AS anon_1)) THEN 'ready' WHEN (bridge_queue.state = 'held') THEN 'held' WHEN (bridge_queue.state = 'leased') THEN 'leased' ELSE 'delayed' END AS shown
FROM bridge_queue
WHERE bridge_queue.name = ? AND NOT (bridge_queue.ttl_end IS NOT NULL AND bridge_queue.ttl_end <= (SELECT (julianday('now') - 2440587.5) * 86400.0 AS anon_1) AND bridge_queue.state != 'held' AND (bridge_queue.expire <= (SELECT (julianday('now') - 2440587.5) * 86400.0 AS anon_1) OR bridge_queue.state != 'leased')) AND bridge_queue.expire <= (SELECT (julianday('now') - 2440587.5) * 86400.0 AS anon_1) AND (bridge_queue.ttl_end IS NULL OR bridge_queue.ttl_end > (SELECT (julianday('now') - 2440587.5) * 86400.0 AS anon_1)) ORDER BY bridge_queue.priority DESC, bridge_queue.item_id
 LIMIT ? OFFSET 0;

-- name: browse_after[ready]
-- runs in: browse, a next page, ready
-- parameters: queue, after_priority, after_id, limit, queue, after_priority, limit, limit
SELECT page.item_id, page.data, page.created, page.expire, page.attempts, page.priority, page.last_error, page.held_at, page.hold_reason, page.shown
FROM (SELECT rest.item_id AS item_id, rest.data AS data, rest.created AS created, rest.expire AS expire, rest.attempts AS attempts, rest.priority AS priority, rest.last_error AS last_error, rest.held_at AS held_at, rest.hold_reason AS hold_reason, rest.shown AS shown
FROM (SELECT bridge_queue.item_id AS item_id, bridge_queue.data AS data, bridge_queue.created AS created, bridge_queue.expire AS expire, bridge_queue.attempts AS attempts, bridge_queue.priority AS priority, bridge_queue.last_error AS last_error, bridge_queue.held_at AS held_at, bridge_queue.hold_reason AS hold_reason, CASE WHEN (bridge_queue.expire <= (SELECT (julianday('now') - 2440587.5) * 86400.0 AS anon_1)) THEN 'ready' WHEN (bridge_queue.state = 'held') THEN 'held' WHEN (bridge_queue.state = 'leased') THEN 'leased' ELSE 'delayed' END AS shown
FROM bridge_queue
WHERE bridge_queue.name = ? AND NOT (bridge_queue.ttl_end IS NOT NULL AND bridge_queue.ttl_end <= (SELECT (julianday('now') - 2440587.5) * 86400.0 AS anon_1) AND bridge_queue.state != 'held' AND (bridge_queue.expire <= (SELECT (julianday('now') - 2440587.5) * 86400.0 AS anon_1) OR bridge_queue.state != 'leased')) AND bridge_queue.expire <= (SELECT (julianday('now') - 2440587.5) * 86400.0 AS anon_1) AND (bridge_queue.ttl_end IS NULL OR bridge_queue.ttl_end > (SELECT (julianday('now') - 2440587.5) * 86400.0 AS anon_1)) AND bridge_queue.priority = ? AND bridge_queue.item_id > ? ORDER BY bridge_queue.priority DESC, bridge_queue.item_id
 LIMIT ? OFFSET 0) AS rest UNION ALL SELECT lower.item_id AS item_id, lower.data AS data, lower.created AS created, lower.expire AS expire, lower.attempts AS attempts, lower.priority AS priority, lower.last_error AS last_error, lower.held_at AS held_at, lower.hold_reason AS hold_reason, lower.shown AS shown
FROM (SELECT bridge_queue.item_id AS item_id, bridge_queue.data AS data, bridge_queue.created AS created, bridge_queue.expire AS expire, bridge_queue.attempts AS attempts, bridge_queue.priority AS priority, bridge_queue.last_error AS last_error, bridge_queue.held_at AS held_at, bridge_queue.hold_reason AS hold_reason, CASE WHEN (bridge_queue.expire <= (SELECT (julianday('now') - 2440587.5) * 86400.0 AS anon_1)) THEN 'ready' WHEN (bridge_queue.state = 'held') THEN 'held' WHEN (bridge_queue.state = 'leased') THEN 'leased' ELSE 'delayed' END AS shown
FROM bridge_queue
WHERE bridge_queue.name = ? AND NOT (bridge_queue.ttl_end IS NOT NULL AND bridge_queue.ttl_end <= (SELECT (julianday('now') - 2440587.5) * 86400.0 AS anon_1) AND bridge_queue.state != 'held' AND (bridge_queue.expire <= (SELECT (julianday('now') - 2440587.5) * 86400.0 AS anon_1) OR bridge_queue.state != 'leased')) AND bridge_queue.expire <= (SELECT (julianday('now') - 2440587.5) * 86400.0 AS anon_1) AND (bridge_queue.ttl_end IS NULL OR bridge_queue.ttl_end > (SELECT (julianday('now') - 2440587.5) * 86400.0 AS anon_1)) AND bridge_queue.priority < ? ORDER BY bridge_queue.priority DESC, bridge_queue.item_id
 LIMIT ? OFFSET 0) AS lower) AS page ORDER BY page.priority DESC, page.item_id
 LIMIT ? OFFSET 0;

-- name: browse[leased]
-- runs in: browse, the first page, leased
-- parameters: queue, limit
SELECT bridge_queue.item_id, bridge_queue.data, bridge_queue.created, bridge_queue.expire, bridge_queue.attempts, bridge_queue.priority, bridge_queue.last_error, bridge_queue.held_at, bridge_queue.hold_reason, CASE WHEN (bridge_queue.expire <= (SELECT (julianday('now') - 2440587.5) * 86400.0 AS anon_1)) THEN 'ready' WHEN (bridge_queue.state = 'held') THEN 'held' WHEN (bridge_queue.state = 'leased') THEN 'leased' ELSE 'delayed' END AS shown
FROM bridge_queue
WHERE bridge_queue.name = ? AND NOT (bridge_queue.ttl_end IS NOT NULL AND bridge_queue.ttl_end <= (SELECT (julianday('now') - 2440587.5) * 86400.0 AS anon_1) AND bridge_queue.state != 'held' AND (bridge_queue.expire <= (SELECT (julianday('now') - 2440587.5) * 86400.0 AS anon_1) OR bridge_queue.state != 'leased')) AND bridge_queue.expire > (SELECT (julianday('now') - 2440587.5) * 86400.0 AS anon_1) AND bridge_queue.state = 'leased' ORDER BY bridge_queue.priority DESC, bridge_queue.item_id
 LIMIT ? OFFSET 0;

-- name: browse_after[leased]
-- runs in: browse, a next page, leased
-- parameters: queue, after_priority, after_id, limit, queue, after_priority, limit, limit
SELECT page.item_id, page.data, page.created, page.expire, page.attempts, page.priority, page.last_error, page.held_at, page.hold_reason, page.shown
FROM (SELECT rest.item_id AS item_id, rest.data AS data, rest.created AS created, rest.expire AS expire, rest.attempts AS attempts, rest.priority AS priority, rest.last_error AS last_error, rest.held_at AS held_at, rest.hold_reason AS hold_reason, rest.shown AS shown
FROM (SELECT bridge_queue.item_id AS item_id, bridge_queue.data AS data, bridge_queue.created AS created, bridge_queue.expire AS expire, bridge_queue.attempts AS attempts, bridge_queue.priority AS priority, bridge_queue.last_error AS last_error, bridge_queue.held_at AS held_at, bridge_queue.hold_reason AS hold_reason, CASE WHEN (bridge_queue.expire <= (SELECT (julianday('now') - 2440587.5) * 86400.0 AS anon_1)) THEN 'ready' WHEN (bridge_queue.state = 'held') THEN 'held' WHEN (bridge_queue.state = 'leased') THEN 'leased' ELSE 'delayed' END AS shown
FROM bridge_queue
WHERE bridge_queue.name = ? AND NOT (bridge_queue.ttl_end IS NOT NULL AND bridge_queue.ttl_end <= (SELECT (julianday('now') - 2440587.5) * 86400.0 AS anon_1) AND bridge_queue.state != 'held' AND (bridge_queue.expire <= (SELECT (julianday('now') - 2440587.5) * 86400.0 AS anon_1) OR bridge_queue.state != 'leased')) AND bridge_queue.expire > (SELECT (julianday('now') - 2440587.5) * 86400.0 AS anon_1) AND bridge_queue.state = 'leased' AND bridge_queue.priority = ? AND bridge_queue.item_id > ? ORDER BY bridge_queue.priority DESC, bridge_queue.item_id
 LIMIT ? OFFSET 0) AS rest UNION ALL SELECT lower.item_id AS item_id, lower.data AS data, lower.created AS created, lower.expire AS expire, lower.attempts AS attempts, lower.priority AS priority, lower.last_error AS last_error, lower.held_at AS held_at, lower.hold_reason AS hold_reason, lower.shown AS shown
FROM (SELECT bridge_queue.item_id AS item_id, bridge_queue.data AS data, bridge_queue.created AS created, bridge_queue.expire AS expire, bridge_queue.attempts AS attempts, bridge_queue.priority AS priority, bridge_queue.last_error AS last_error, bridge_queue.held_at AS held_at, bridge_queue.hold_reason AS hold_reason, CASE WHEN (bridge_queue.expire <= (SELECT (julianday('now') - 2440587.5) * 86400.0 AS anon_1)) THEN 'ready' WHEN (bridge_queue.state = 'held') THEN 'held' WHEN (bridge_queue.state = 'leased') THEN 'leased' ELSE 'delayed' END AS shown
FROM bridge_queue
WHERE bridge_queue.name = ? AND NOT (bridge_queue.ttl_end IS NOT NULL AND bridge_queue.ttl_end <= (SELECT (julianday('now') - 2440587.5) * 86400.0 AS anon_1) AND bridge_queue.state != 'held' AND (bridge_queue.expire <= (SELECT (julianday('now') - 2440587.5) * 86400.0 AS anon_1) OR bridge_queue.state != 'leased')) AND bridge_queue.expire > (SELECT (julianday('now') - 2440587.5) * 86400.0 AS anon_1) AND bridge_queue.state = 'leased' AND bridge_queue.priority < ? ORDER BY bridge_queue.priority DESC, bridge_queue.item_id
 LIMIT ? OFFSET 0) AS lower) AS page ORDER BY page.priority DESC, page.item_id
 LIMIT ? OFFSET 0;

-- name: browse[delayed]
-- runs in: browse, the first page, delayed
-- parameters: queue, limit
SELECT bridge_queue.item_id, bridge_queue.data, bridge_queue.created, bridge_queue.expire, bridge_queue.attempts, bridge_queue.priority, bridge_queue.last_error, bridge_queue.held_at, bridge_queue.hold_reason, CASE WHEN (bridge_queue.expire <= (SELECT (julianday('now') - 2440587.5) * 86400.0 AS anon_1)) THEN 'ready' WHEN (bridge_queue.state = 'held') THEN 'held' WHEN (bridge_queue.state = 'leased') THEN 'leased' ELSE 'delayed' END AS shown
FROM bridge_queue
WHERE bridge_queue.name = ? AND NOT (bridge_queue.ttl_end IS NOT NULL AND bridge_queue.ttl_end <= (SELECT (julianday('now') - 2440587.5) * 86400.0 AS anon_1) AND bridge_queue.state != 'held' AND (bridge_queue.expire <= (SELECT (julianday('now') - 2440587.5) * 86400.0 AS anon_1) OR bridge_queue.state != 'leased')) AND bridge_queue.expire > (SELECT (julianday('now') - 2440587.5) * 86400.0 AS anon_1) AND bridge_queue.state != 'leased' AND bridge_queue.state != 'held' AND (bridge_queue.ttl_end IS NULL OR bridge_queue.ttl_end > (SELECT (julianday('now') - 2440587.5) * 86400.0 AS anon_1)) ORDER BY bridge_queue.priority DESC, bridge_queue.item_id
 LIMIT ? OFFSET 0;

-- name: browse_after[delayed]
-- runs in: browse, a next page, delayed
-- parameters: queue, after_priority, after_id, limit, queue, after_priority, limit, limit
SELECT page.item_id, page.data, page.created, page.expire, page.attempts, page.priority, page.last_error, page.held_at, page.hold_reason, page.shown
FROM (SELECT rest.item_id AS item_id, rest.data AS data, rest.created AS created, rest.expire AS expire, rest.attempts AS attempts, rest.priority AS priority, rest.last_error AS last_error, rest.held_at AS held_at, rest.hold_reason AS hold_reason, rest.shown AS shown
FROM (SELECT bridge_queue.item_id AS item_id, bridge_queue.data AS data, bridge_queue.created AS created, bridge_queue.expire AS expire, bridge_queue.attempts AS attempts, bridge_queue.priority AS priority, bridge_queue.last_error AS last_error, bridge_queue.held_at AS held_at, bridge_queue.hold_reason AS hold_reason, CASE WHEN (bridge_queue.expire <= (SELECT (julianday('now') - 2440587.5) * 86400.0 AS anon_1)) THEN 'ready' WHEN (bridge_queue.state = 'held') THEN 'held' WHEN (bridge_queue.state = 'leased') THEN 'leased' ELSE 'delayed' END AS shown
FROM bridge_queue
WHERE bridge_queue.name = ? AND NOT (bridge_queue.ttl_end IS NOT NULL AND bridge_queue.ttl_end <= (SELECT (julianday('now') - 2440587.5) * 86400.0 AS anon_1) AND bridge_queue.state != 'held' AND (bridge_queue.expire <= (SELECT (julianday('now') - 2440587.5) * 86400.0 AS anon_1) OR bridge_queue.state != 'leased')) AND bridge_queue.expire > (SELECT (julianday('now') - 2440587.5) * 86400.0 AS anon_1) AND bridge_queue.state != 'leased' AND bridge_queue.state != 'held' AND (bridge_queue.ttl_end IS NULL OR bridge_queue.ttl_end > (SELECT (julianday('now') - 2440587.5) * 86400.0 AS anon_1)) AND bridge_queue.priority = ? AND bridge_queue.item_id > ? ORDER BY bridge_queue.priority DESC, bridge_queue.item_id
 LIMIT ? OFFSET 0) AS rest UNION ALL SELECT lower.item_id AS item_id, lower.data AS data, lower.created AS created, lower.expire AS expire, lower.attempts AS attempts, lower.priority AS priority, lower.last_error AS last_error, lower.held_at AS held_at, lower.hold_reason AS hold_reason, lower.shown AS shown
FROM (SELECT bridge_queue.item_id AS item_id, bridge_queue.data AS data, bridge_queue.created AS created, bridge_queue.expire AS expire, bridge_queue.attempts AS attempts, bridge_queue.priority AS priority, bridge_queue.last_error AS last_error, bridge_queue.held_at AS held_at, bridge_queue.hold_reason AS hold_reason, CASE WHEN (bridge_queue.expire <= (SELECT (julianday('now') - 2440587.5) * 86400.0 AS anon_1)) THEN 'ready' WHEN (bridge_queue.state = 'held') THEN 'held' WHEN (bridge_queue.state = 'leased') THEN 'leased' ELSE 'delayed' END AS shown
FROM bridge_queue
WHERE bridge_queue.name = ? AND NOT (bridge_queue.ttl_end IS NOT NULL AND bridge_queue.ttl_end <= (SELECT (julianday('now') - 2440587.5) * 86400.0 AS anon_1) AND bridge_queue.state != 'held' AND (bridge_queue.expire <= (SELECT (julianday('now') - 2440587.5) * 86400.0 AS anon_1) OR bridge_queue.state != 'leased')) AND bridge_queue.expire > (SELECT (julianday('now') - 2440587.5) * 86400.0 AS anon_1) AND bridge_queue.state != 'leased' AND bridge_queue.state != 'held' AND (bridge_queue.ttl_end IS NULL OR bridge_queue.ttl_end > (SELECT (julianday('now') - 2440587.5) * 86400.0 AS anon_1)) AND bridge_queue.priority < ? ORDER BY bridge_queue.priority DESC, bridge_queue.item_id
 LIMIT ? OFFSET 0) AS lower) AS page ORDER BY page.priority DESC, page.item_id
 LIMIT ? OFFSET 0;

-- name: browse[held]
-- runs in: browse, the first page, held
-- parameters: queue, limit
SELECT bridge_queue.item_id, bridge_queue.data, bridge_queue.created, bridge_queue.expire, bridge_queue.attempts, bridge_queue.priority, bridge_queue.last_error, bridge_queue.held_at, bridge_queue.hold_reason, CASE WHEN (bridge_queue.expire <= (SELECT (julianday('now') - 2440587.5) * 86400.0 AS anon_1)) THEN 'ready' WHEN (bridge_queue.state = 'held') THEN 'held' WHEN (bridge_queue.state = 'leased') THEN 'leased' ELSE 'delayed' END AS shown
FROM bridge_queue
WHERE bridge_queue.name = ? AND NOT (bridge_queue.ttl_end IS NOT NULL AND bridge_queue.ttl_end <= (SELECT (julianday('now') - 2440587.5) * 86400.0 AS anon_1) AND bridge_queue.state != 'held' AND (bridge_queue.expire <= (SELECT (julianday('now') - 2440587.5) * 86400.0 AS anon_1) OR bridge_queue.state != 'leased')) AND bridge_queue.expire > (SELECT (julianday('now') - 2440587.5) * 86400.0 AS anon_1) AND bridge_queue.state = 'held' ORDER BY bridge_queue.priority DESC, bridge_queue.item_id
 LIMIT ? OFFSET 0;

-- name: browse_after[held]
-- runs in: browse, a next page, held
-- parameters: queue, after_priority, after_id, limit, queue, after_priority, limit, limit
SELECT page.item_id, page.data, page.created, page.expire, page.attempts, page.priority, page.last_error, page.held_at, page.hold_reason, page.shown
FROM (SELECT rest.item_id AS item_id, rest.data AS data, rest.created AS created, rest.expire AS expire, rest.attempts AS attempts, rest.priority AS priority, rest.last_error AS last_error, rest.held_at AS held_at, rest.hold_reason AS hold_reason, rest.shown AS shown
FROM (SELECT bridge_queue.item_id AS item_id, bridge_queue.data AS data, bridge_queue.created AS created, bridge_queue.expire AS expire, bridge_queue.attempts AS attempts, bridge_queue.priority AS priority, bridge_queue.last_error AS last_error, bridge_queue.held_at AS held_at, bridge_queue.hold_reason AS hold_reason, CASE WHEN (bridge_queue.expire <= (SELECT (julianday('now') - 2440587.5) * 86400.0 AS anon_1)) THEN 'ready' WHEN (bridge_queue.state = 'held') THEN 'held' WHEN (bridge_queue.state = 'leased') THEN 'leased' ELSE 'delayed' END AS shown
FROM bridge_queue
WHERE bridge_queue.name = ? AND NOT (bridge_queue.ttl_end IS NOT NULL AND bridge_queue.ttl_end <= (SELECT (julianday('now') - 2440587.5) * 86400.0 AS anon_1) AND bridge_queue.state != 'held' AND (bridge_queue.expire <= (SELECT (julianday('now') - 2440587.5) * 86400.0 AS anon_1) OR bridge_queue.state != 'leased')) AND bridge_queue.expire > (SELECT (julianday('now') - 2440587.5) * 86400.0 AS anon_1) AND bridge_queue.state = 'held' AND bridge_queue.priority = ? AND bridge_queue.item_id > ? ORDER BY bridge_queue.priority DESC, bridge_queue.item_id
 LIMIT ? OFFSET 0) AS rest UNION ALL SELECT lower.item_id AS item_id, lower.data AS data, lower.created AS created, lower.expire AS expire, lower.attempts AS attempts, lower.priority AS priority, lower.last_error AS last_error, lower.held_at AS held_at, lower.hold_reason AS hold_reason, lower.shown AS shown
FROM (SELECT bridge_queue.item_id AS item_id, bridge_queue.data AS data, bridge_queue.created AS created, bridge_queue.expire AS expire, bridge_queue.attempts AS attempts, bridge_queue.priority AS priority, bridge_queue.last_error AS last_error, bridge_queue.held_at AS held_at, bridge_queue.hold_reason AS hold_reason, CASE WHEN (bridge_queue.expire <= (SELECT (julianday('now') - 2440587.5) * 86400.0 AS anon_1)) THEN 'ready' WHEN (bridge_queue.state = 'held') THEN 'held' WHEN (bridge_queue.state = 'leased') THEN 'leased' ELSE 'delayed' END AS shown
FROM bridge_queue
WHERE bridge_queue.name = ? AND NOT (bridge_queue.ttl_end IS NOT NULL AND bridge_queue.ttl_end <= (SELECT (julianday('now') - 2440587.5) * 86400.0 AS anon_1) AND bridge_queue.state != 'held' AND (bridge_queue.expire <= (SELECT (julianday('now') - 2440587.5) * 86400.0 AS anon_1) OR bridge_queue.state != 'leased')) AND bridge_queue.expire > (SELECT (julianday('now') - 2440587.5) * 86400.0 AS anon_1) AND bridge_queue.state = 'held' AND bridge_queue.priority < ? ORDER BY bridge_queue.priority DESC, bridge_queue.item_id
 LIMIT ? OFFSET 0) AS lower) AS page ORDER BY page.priority DESC, page.item_id
 LIMIT ? OFFSET 0;

-- name: find_item
-- runs in: find_item
-- parameters: id, queue
SELECT bridge_queue.item_id, bridge_queue.data, bridge_queue.created, bridge_queue.expire, bridge_queue.attempts, bridge_queue.priority, bridge_queue.last_error, bridge_queue.held_at, bridge_queue.hold_reason, CASE WHEN (bridge_queue.expire <= (SELECT (julianday('now') - 2440587.5) * 86400.0 AS anon_1)) THEN 'ready' WHEN (bridge_queue.state = 'held') THEN 'held' WHEN (bridge_queue.state = 'leased') THEN 'leased' ELSE 'delayed' END AS shown
FROM bridge_queue
WHERE bridge_queue.item_id = ? AND bridge_queue.name = ?;

-- name: free_leases
-- runs in: release_all, first
-- parameters: queue
UPDATE bridge_queue SET expire=0, token=NULL, state='ready' WHERE bridge_queue.name = ? AND bridge_queue.expire > (julianday('now') - 2440587.5) * 86400.0 AND bridge_queue.state != 'held';

-- name: end_claims
-- runs in: release_all, then, in its transaction
-- parameters: queue
UPDATE bridge_queue SET token=NULL WHERE bridge_queue.name = ? AND bridge_queue.token IS NOT NULL AND bridge_queue.expire <= (julianday('now') - 2440587.5) * 86400.0;

-- name: remove_item
-- runs in: remove_item
-- parameters: id, queue
DELETE FROM bridge_queue WHERE bridge_queue.item_id = ? AND bridge_queue.name = ?;

-- name: delete_expired
-- runs in: garbage_collection
-- parameters: queue
DELETE FROM bridge_queue WHERE bridge_queue.name = ? AND bridge_queue.ttl_end IS NOT NULL AND bridge_queue.ttl_end <= (SELECT (julianday('now') - 2440587.5) * 86400.0 AS anon_1) AND bridge_queue.state != 'held' AND (bridge_queue.expire <= (SELECT (julianday('now') - 2440587.5) * 86400.0 AS anon_1) OR bridge_queue.state != 'leased');

-- name: delete_queue
-- runs in: delete_queue
-- parameters: queue
DELETE FROM bridge_queue WHERE bridge_queue.name = ?;

-- name: topic_create_messages
-- runs in: first use of topics
CREATE TABLE bridge_queue_topic (
	name VARCHAR(255) NOT NULL,
	position BIGINT NOT NULL,
	data BLOB NOT NULL,
	published DOUBLE NOT NULL,
	expire DOUBLE NOT NULL,
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
SELECT bridge_queue_topic_sub.position, (julianday('now') - 2440587.5) * 86400.0 AS anon_1
FROM bridge_queue_topic_sub
WHERE bridge_queue_topic_sub.name = ? AND bridge_queue_topic_sub.subscriber = '';

-- name: topic_delete_expired
-- runs in: publish, then; read, at most once a second
-- parameters: topic
DELETE FROM bridge_queue_topic WHERE bridge_queue_topic.name = ? AND bridge_queue_topic.expire <= (julianday('now') - 2440587.5) * 86400.0;

-- name: topic_insert_messages
-- runs in: publish, then, once per message
-- parameters: name, position, data, published, expire
INSERT INTO bridge_queue_topic (name, position, data, published, expire) VALUES (?, ?, ?, ?, ?);

-- name: topic_set_head
-- runs in: publish, last
-- parameters: last, topic
UPDATE bridge_queue_topic_sub SET position=? WHERE bridge_queue_topic_sub.name = ? AND bridge_queue_topic_sub.subscriber = '';

-- name: topic_add_subscriber
-- runs in: the first publish to a topic; a first read from 'latest'
-- parameters: name, subscriber, position
INSERT INTO bridge_queue_topic_sub (name, subscriber, position) VALUES (?, ?, ?) ON CONFLICT DO NOTHING;

-- name: topic_read
-- runs in: read
-- parameters: topic, topic, subscriber_name, limit, param_1
SELECT bridge_queue_topic.position, bridge_queue_topic.data, bridge_queue_topic.published, bridge_queue_topic.expire
FROM bridge_queue_topic
WHERE bridge_queue_topic.name = ? AND bridge_queue_topic.position > coalesce((SELECT bridge_queue_topic_sub.position
FROM bridge_queue_topic_sub
WHERE bridge_queue_topic_sub.name = ? AND bridge_queue_topic_sub.subscriber = ?), 0) AND bridge_queue_topic.expire > (julianday('now') - 2440587.5) * 86400.0 ORDER BY bridge_queue_topic.position
 LIMIT ? OFFSET ?;

-- name: topic_subscriber_position
-- runs in: a first read from 'latest'
-- parameters: topic, subscriber_name
SELECT bridge_queue_topic_sub.position
FROM bridge_queue_topic_sub
WHERE bridge_queue_topic_sub.name = ? AND bridge_queue_topic_sub.subscriber = ?;

-- name: topic_last_position
-- runs in: ack, first; a first read from 'latest'
-- parameters: topic
SELECT bridge_queue_topic_sub.position
FROM bridge_queue_topic_sub
WHERE bridge_queue_topic_sub.name = ? AND bridge_queue_topic_sub.subscriber = '';

-- name: topic_ack_forward
-- runs in: ack, then
-- parameters: wanted, topic, subscriber_name, wanted
UPDATE bridge_queue_topic_sub SET position=? WHERE bridge_queue_topic_sub.name = ? AND bridge_queue_topic_sub.subscriber = ? AND bridge_queue_topic_sub.position < ?;

-- name: topic_live_stats
-- runs in: stats
-- parameters: topic
SELECT count(*) AS count_1, min(bridge_queue_topic.published) AS min_1, max(bridge_queue_topic.published) AS max_1
FROM bridge_queue_topic
WHERE bridge_queue_topic.name = ? AND bridge_queue_topic.expire > (julianday('now') - 2440587.5) * 86400.0;

-- name: topic_subscriber_count
-- runs in: stats
-- parameters: topic
SELECT count(*) AS count_1
FROM bridge_queue_topic_sub
WHERE bridge_queue_topic_sub.name = ? AND bridge_queue_topic_sub.subscriber != '';

-- name: topic_delete_messages
-- runs in: delete_topic, then
-- parameters: topic
DELETE FROM bridge_queue_topic WHERE bridge_queue_topic.name = ?;

-- name: topic_delete_subscribers
-- runs in: delete_topic, last
-- parameters: topic
DELETE FROM bridge_queue_topic_sub WHERE bridge_queue_topic_sub.name = ? AND bridge_queue_topic_sub.subscriber != '';

-- name: topic_add_subscriber_returning
-- runs in: ack of a subscriber's first marker
-- parameters: name, subscriber, position
INSERT INTO bridge_queue_topic_sub (name, subscriber, position) VALUES (?, ?, ?) ON CONFLICT DO NOTHING RETURNING position;
