"""Every statement the Drupal layout sends, per dialect, as text a reader can check.

These are few and short, and their point is to be the same statements as
Drupal's ``DatabaseQueue`` (or compatible with them), so they are written
out rather than built: ``{t}`` is the quoted table name, ``{n}`` a count
written into the text (a LIMIT, as the default layout does; see
``statements.inline``). Times are whole seconds, as Drupal's: ``:now`` is
the database clock rounded down, ``:expire`` the last second a lease or
delay lasts (``ceil(now + seconds) - 1``), both computed by the backend from
one read of the database's clock (``NOW``).

Claimable is ``expire < :now``: 0 (never claimed, released, reset by
Drupal's garbage collection) and a lease or delay whose second has passed,
exactly what Drupal's ``garbageCollection`` would reset to 0 at that
instant, so bridge takes nothing a Drupal site would not hand out after
its next cron. Every claim ends in an UPDATE that checks ``expire < :now``
again on the row it changes, the same compare-and-set as Drupal's
``UPDATE ... WHERE item_id = :id AND expire = 0``: whichever of the two
writes second matches no row.
"""

from __future__ import annotations

NOW = {
    "sqlite": "SELECT (julianday('now') - 2440587.5) * 86400.0",
    "postgresql": "SELECT extract(epoch from statement_timestamp())::float8",
    # Each session's time zone is UTC (engine.py), so this is exact.
    "mysql": "SELECT UNIX_TIMESTAMP(NOW(6))",
}

CLAIM = {
    # One statement: the CTE locks the rows it picks, skipping rows another
    # claimer (or a PHP UPDATE) holds; the UPDATE checks again.
    "postgresql": (
        "WITH picked AS (SELECT item_id FROM {t} WHERE name = :queue AND expire < :now "
        "ORDER BY created, item_id LIMIT {n} FOR UPDATE SKIP LOCKED) "
        "UPDATE {t} AS q SET expire = :expire FROM picked "
        "WHERE q.item_id = picked.item_id AND q.expire < :now "
        "RETURNING q.item_id, q.data, q.created"
    ),
    # One statement takes SQLite's write lock as it starts: nothing to race.
    "sqlite": (
        "UPDATE {t} SET expire = :expire WHERE item_id IN (SELECT item_id FROM {t} "
        "WHERE name = :queue AND expire < :now ORDER BY created, item_id LIMIT {n}) "
        "AND expire < :now RETURNING item_id, data, created"
    ),
}
CANDIDATES = (
    "SELECT item_id, data, created, expire FROM {t} WHERE name = :queue AND expire < :now "
    "ORDER BY created, item_id LIMIT {n}"
)
"""MariaDB/MySQL: Drupal's own two steps, a plain read of the candidates, then
TAKE on each: the very statement Drupal's claimItem sends (when ``:seen`` is
0), so that InnoDB plans it as it plans PHP's, takes its locks in the same
order (the ``expire`` index, then the row) and holds them for one statement
only. A locking read (``FOR UPDATE SKIP LOCKED``) first took the row, then
the ``expire`` index entry, the other order: PHP's claims died as deadlock
victims."""
TAKE = "UPDATE {t} SET expire = :expire WHERE item_id = :id AND expire = :seen"

INSERT = "INSERT INTO {t} (name, data, expire, created) VALUES (:queue, :data, :expire, :created)"

# A holder's calls: fenced by the expire its claim (or its last extend or
# delay) wrote, the only trace of a claim Drupal's table keeps.
DELETE = "DELETE FROM {t} WHERE item_id = :id AND expire = :held"
SET_EXPIRE = "UPDATE {t} SET expire = :expire WHERE item_id = :id AND expire = :held"
HELD = "SELECT count(*) FROM {t} WHERE item_id = :id AND expire = :held"

COUNTS = (
    "SELECT count(*), coalesce(sum(CASE WHEN expire >= :now THEN 1 ELSE 0 END), 0) "
    "FROM {t} WHERE name = :queue"
)
QUEUE_NAMES = "SELECT name, count(*) FROM {t} GROUP BY name"
PEEK = (
    "SELECT item_id, data, created, expire FROM {t} WHERE name = :queue AND expire < :now "
    "ORDER BY created, item_id LIMIT {n}"
)
OLDEST_READY = (
    "SELECT created FROM {t} WHERE name = :queue AND expire < :now "
    "ORDER BY created, item_id LIMIT 1"
)
RELEASE_ALL = "UPDATE {t} SET expire = 0 WHERE name = :queue AND expire <> 0"
"""Queue UI's "remove leases": every lease and delay of the queue, dropped."""
GARBAGE_COLLECTION = (
    "UPDATE {t} SET expire = 0 WHERE name = :queue AND expire <> 0 AND expire < :now"
)
"""Drupal's reset of ended leases, for this queue only (Drupal's own is table-wide)."""
DELETE_QUEUE = "DELETE FROM {t} WHERE name = :queue"
REMOVE_ITEM = "DELETE FROM {t} WHERE item_id = :id AND name = :queue"
