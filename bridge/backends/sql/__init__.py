"""Queues in one SQL table through SQLAlchemy Core: SQLite, PostgreSQL, MariaDB/MySQL.

Features:
    Reliable, shared by every process that reaches the database, with exact
    per-claim leases, extend_lease, delays, priority, claim tokens and
    attempts. Every time is the database's own clock, so workers on hosts
    with skewed clocks agree. An item is claimable when ``expire <= now``:
    expired leases and elapsed delays need no garbage-collection pass.

    Claims are atomic and use the claim index, so their cost does not grow
    with the queue:

    * PostgreSQL: one autocommitted ``WITH picked AS (SELECT ... FOR UPDATE
      SKIP LOCKED) UPDATE ... FROM picked RETURNING`` statement.
    * SQLite: one ``UPDATE ... WHERE item_id IN (SELECT ... LIMIT n)
      RETURNING`` (``= (SELECT ...)`` for one), on its own: it takes the
      write lock as it starts, as ``BEGIN IMMEDIATE`` would. SQLite has one
      writer, so that is the whole story (no "database is locked": WAL plus
      a busy timeout make writers queue instead of fail).
    * MariaDB 10.6+ / MySQL 8.0.1+: in one READ COMMITTED transaction,
      ``SELECT ... FOR UPDATE SKIP LOCKED`` in index order, then the UPDATE.

    The last word is always an UPDATE conditioned on the item still being
    claimable, whose row count (or returned rows) decides the claim. As in
    Drupal, a holder's own release or delay keeps its claim: it may go on
    deleting, releasing, delaying or extending the item until another claim
    replaces its token, or ``release_all`` clears it.

    Failed items (the ``hold`` capability): ``fail_item`` keeps the error
    in ``last_error``, which the next claim returns; ``hold_item`` sets an
    item aside in one UPDATE (``state = 'held'``, its ``expire`` at
    9999-12-31 so that the claim's own ``expire <= now`` skips it), and
    ``kick`` sets held items back in one UPDATE: a process killed at any
    instant leaves each item held or not, never lost, never in both.

    Waiting (``bridge queue watch``): on PostgreSQL the INSERT of ready
    items also calls ``pg_notify`` once, on a channel named after the table
    with the queue's name as payload, and ``wait_for_items`` listens on a
    connection of its own; elsewhere it sleeps briefly (``bridge/waiting.py``).

    Failures: a server that cannot be reached, or a connection lost
    mid-call, is ``BackendUnavailableError``; other database errors are
    ``BackendError``. On MariaDB/MySQL a payload whose INSERT would exceed
    the server's ``max_allowed_packet`` (read once per backend) is refused
    with ``PayloadError`` before anything is sent, rather than left to the
    server, which drops the connection as if it had gone away.

    ``settle_and_claim`` settles a finished item and claims the next in one
    transaction with one commit (on PostgreSQL, mostly one statement):
    all or nothing. Operators page through every item (``browse``, by key
    in claim order), look one up (``find_item``) and delete one in any
    state (``remove_item``).

    Every statement, per dialect, is in ``queries/<dialect>.sql``, rendered
    from ``statements.py`` and kept true by ``tests/test_sql_statements.py``.

URL format:
    ``sqlite:///relative/path.sqlite``, ``sqlite:////absolute/path.sqlite``,
    ``postgresql://user@host:5432/db`` (psycopg 3; ``postgresql+psycopg://``
    is the same), ``mysql://`` or ``mariadb://user@host:3306/db`` (PyMySQL).
    Any SQLAlchemy URL with an explicit driver also works. A SQLite file
    bridge creates is readable by its owner only (mode 0600), and so are
    its ``-wal`` and ``-shm`` files.

Options:
    ``table``: the table's name (default ``bridge_queue``); one table holds
    many queues, as Drupal's ``queue`` table does.
    ``busy_timeout``: SQLite only, seconds a writer waits for the lock
    (default 30).
    ``synchronous``: SQLite only, ``NORMAL`` (default; with WAL, commits
    survive a process crash, the last ones may be lost on power loss) or
    ``FULL`` (survive power loss too, slower).
    ``pool_size``: connections kept per process (default 5).

Storage layout:
    Table ``bridge_queue``: ``item_id`` (autoincrement primary key),
    ``name`` (queue name), ``data`` (encoded payload), ``created`` (epoch s),
    ``expire`` (epoch s before which the item is not claimable: the lease
    deadline when leased, the delay's end when delayed, 0 when ready),
    ``priority`` (higher first), ``attempts`` (claims so far), ``token``
    (the latest claim's token, kept through the holder's release and delay,
    cleared by ``release_all`` and by a hold), ``state`` (``ready``,
    ``leased``, ``delayed`` or ``held``: what a future ``expire`` is
    waiting for, which is how ``counts()`` tells a lease from a delay),
    ``last_error`` (the latest failed attempt's error), ``held_at`` and
    ``hold_reason`` (NULL unless held). Index ``<table>_claim`` on
    ``(name, priority DESC, item_id)``: claim order, walked from its head.
    ``expire`` and ``state`` are kept out of the index so that a claim's
    UPDATE changes no indexed column. A table made by an earlier version
    gets the columns it lacks on first use (``schema.py``).

Modules:
    ``backend.py`` the operations; ``statements.py`` every statement;
    ``driver.py`` the hot path's compiled statements and pinned connections;
    ``engine.py`` engine and session settings; ``schema.py`` table creation
    and migration; ``errors.py`` driver errors to bridge's;
    ``catalogue.py`` the statements rendered into ``queries/``;
    ``listing.py`` operators' listings and the browse cursor.
"""

from __future__ import annotations

from bridge.backends.sql.backend import SqlBackend

__all__ = ["SqlBackend"]
