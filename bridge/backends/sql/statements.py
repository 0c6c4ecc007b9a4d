"""Every statement the SQL backend sends, built with SQLAlchemy Core.

One source for every dialect: :class:`Statements` builds each statement for
one table and one dialect, and nothing else in the backend writes SQL. The
backend compiles the hot statements once per shape (a claim of *n*, a
delete of *n* ids) and runs them on the driver; the rest run through
SQLAlchemy. ``catalogue.py`` renders every statement, per dialect, into
``queries/<dialect>.sql``, which a test keeps equal to what is built here.

What makes the statements fast is said where they are built: the LIMIT is
written into the text (:func:`inline`), deletes and holder updates find
rows by id and token only, and ``expire`` is out of the claim index.

Held items are kept out of claims by ``expire`` alone (:data:`HELD_UNTIL`),
so the claim is the same statement with or without them; everything else
that must tell them apart reads ``state``.

An item's TTL is kept as its deadline, ``ttl_end`` (NULL: no TTL). The
claim skips an item past it with one more test on the rows it already
reads (no index has ``ttl_end``: an indexed column changed by a graced
claim would cost every claim PostgreSQL's in-place update), and
``garbage_collection`` deletes expired rows, so they are not walked over
for long.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.schema import CreateIndex, CreateTable

from bridge.errors import ConfigurationError

READY = "ready"
"""Created or released: claimable once ``expire`` has passed (at once, mostly)."""
LEASED = "leased"
"""Claimed or extended: ``expire`` is the lease's end."""
DELAYED = "delayed"
"""Created with a delay or delayed: ``expire`` is the delay's end."""

HELD = "held"
"""Set aside after failing (``hold_item``): never claimable until kicked."""
EXPIRED = "expired"
"""Not a stored state: an item past its TTL, as ``counts`` classifies it (:data:`TTL_END`)."""
STATES = (READY, LEASED, DELAYED, HELD)
"""Every state, as ``counts`` and ``browse`` name them (``bridge.items.ItemState``)."""
HELD_UNTIL = 253402300799.0
"""A held item's ``expire``: 9999-12-31 23:59:59 UTC, after any lease (the
longest ends before 2100) and still a date every tool can show. With it the
claim's own ``expire <= now`` skips held items: the claim statement, and
its plan, stay what they were without holding, and a bridge too old to know
``state = 'held'`` never claims a held item either."""

STATE_COLUMN = "state"
"""Added after the first release; ``schema.py`` adds it to older tables."""
TTL_END = "ttl_end"
"""An item's TTL deadline, epoch seconds (NULL: none); past it an unleased item is expired."""
ADDED_COLUMNS = (STATE_COLUMN, "last_error", "held_at", "hold_reason", TTL_END)
"""Columns a table made by an earlier bridge may lack, in the order they came;
``schema.py`` adds the missing ones on first use."""


class QueueName(sa.types.TypeDecorator[str]):
    """A queue's (or topic's, or subscriber's) name: compared as its exact characters.

    On MariaDB and MySQL a VARCHAR compares by its collation, by default
    without case, accents or trailing spaces (``pad``, ``PAD``, ``pád`` and
    ``pad `` would be one queue), so names are bytes there, UTF-8, at most
    255 (:data:`~bridge.contract.MAX_NAME_BYTES`); a VARCHAR elsewhere.
    Parameters and results are ``str`` either way.
    """

    impl = sa.String(255)
    cache_ok = True

    def load_dialect_impl(self, dialect: sa.Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.VARBINARY(255))
        return dialect.type_descriptor(sa.String(255))

    def process_bind_param(self, value: str | None, dialect: sa.Dialect) -> Any:
        if isinstance(value, str) and dialect.name in ("mysql", "mariadb"):
            return value.encode("utf-8")
        return value

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> str | None:
        return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


NAME_TYPE = QueueName()


def queue_table(name: str) -> sa.Table:
    """The queue table: one for every queue of a database, as Drupal's ``queue``."""
    table = sa.Table(
        name,
        sa.MetaData(),
        sa.Column("item_id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("name", NAME_TYPE, nullable=False),
        sa.Column(
            "data",
            sa.LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb"),
            nullable=False,
        ),
        sa.Column("created", sa.Double(), nullable=False),
        sa.Column("expire", sa.Double(), nullable=False, server_default="0"),
        sa.Column("priority", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("token", sa.String(32), nullable=True),
        # A string, not an enum type, so that a state can be added (as
        # 'held' was) without altering a type on every database.
        sa.Column(STATE_COLUMN, sa.String(16), nullable=False, server_default=READY),
        # NULL unless set, with no default: adding them to a big table is
        # then a change of the catalogue only, on every database.
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("held_at", sa.Double(), nullable=True),
        sa.Column("hold_reason", sa.Text(), nullable=True),
        sa.Column(TTL_END, sa.Double(), nullable=True),
    )
    sa.Index(f"{name}_claim", table.c.name, table.c.priority.desc(), table.c.item_id)
    return table


def dialect_kind(dialect: sa.Dialect) -> str:
    """``sqlite``, ``postgresql``, ``mariadb`` or ``mysql``: one file of statements each."""
    if dialect.name in ("mysql", "mariadb"):
        return "mariadb" if getattr(dialect, "is_mariadb", False) else "mysql"
    if dialect.name in ("sqlite", "postgresql"):
        return dialect.name
    raise ConfigurationError(f"the sql backend does not support the {dialect.name} dialect")


def database_now(kind: str) -> sa.ColumnElement[float]:
    """The database's clock in epoch seconds, fixed for the whole statement.

    Written as literals, not parameters, so that the rendered SQL reads as
    what it is and the driver has nothing to send for it.
    """
    if kind == "postgresql":
        now: sa.ColumnElement[Any] = sa.extract("epoch", sa.func.statement_timestamp())
    elif kind in ("mysql", "mariadb"):
        # Each session's time zone is UTC (engine.py), so this is exact.
        now = sa.func.unix_timestamp(sa.func.now(sa.literal_column("6")))
    else:
        days = sa.func.julianday(sa.literal_column("'now'")) - sa.literal_column("2440587.5")
        now = days * sa.literal_column("86400.0")
    return sa.type_coerce(now, sa.Double())


def inline(count: int) -> sa.ColumnElement[int]:
    """A number written into the SQL text rather than sent as a parameter.

    Constants are written in so that there is nothing to send and the
    rendered files show them. For a LIMIT it matters more: psycopg prepares
    a statement after five runs, and PostgreSQL may then plan it once for
    any parameters. Not knowing the LIMIT, that generic plan
    assumes a tenth of the queue and hash-joins it: measured at 2 s per claim
    on a 1M-item queue instead of 0.3 ms. Knowing it, every plan walks the
    claim index and stops after ``count`` rows.
    """
    return sa.literal_column(str(int(count)), sa.Integer())


def placeholders(prefix: str, count: int, type_: Any) -> list[sa.BindParameter[Any]]:
    """``count`` parameters named ``<prefix>0``, ``<prefix>1``...; the backend fills them."""
    return [sa.bindparam(f"{prefix}{i}", type_=type_) for i in range(count)]


def _queue() -> sa.BindParameter[str]:
    """The queue's name. Not ``name``: SQLAlchemy keeps the names of columns for
    the values an UPDATE sets, and refuses them for any other parameter."""
    return sa.bindparam("queue", type_=sa.String())


def _state(value: str) -> sa.ColumnElement[str]:
    return sa.literal_column(f"'{value}'", sa.String())


def _item_id() -> sa.BindParameter[int]:
    """The holder's item (``item_id`` is a column, so not that name)."""
    return sa.bindparam("id", type_=sa.BigInteger())


def _claim_token() -> sa.BindParameter[str]:
    """The holder's claim token (``token`` names the new one a claim writes)."""
    return sa.bindparam("claim", type_=sa.String())


def _error() -> sa.BindParameter[str]:
    """The error text to keep (``last_error`` is a column, so not that name)."""
    return sa.bindparam("error", type_=sa.Text())


def _limit() -> sa.BindParameter[int]:
    """A listing's or an operator's limit: sent, since these run seldom (see :func:`inline`)."""
    return sa.bindparam("limit", type_=sa.Integer())


class Statements:
    """Every statement on one queue table, for one dialect.

    Methods take the statement's shape (how many rows, ids or items);
    properties are the statements whose text never varies. Parameters are
    named after what they carry (``queue``, ``token``, ``lease_time``...).
    """

    def __init__(self, table: sa.Table, dialect: sa.Dialect) -> None:
        self.table = table
        self.dialect = dialect
        self.kind = dialect_kind(dialect)
        self.now = database_now(self.kind)
        self.insert_returning = bool(dialect.insert_returning)
        """Whether an INSERT returns its ids (MySQL's does not: rows go one by one)."""
        self.update_returning = bool(dialect.update_returning)
        """Whether a holder's UPDATE returns the new expire (MariaDB's and MySQL's do not)."""
        self._browse: dict[tuple[str | None, bool], sa.Select[Any]] = {}

    def _limited(self, select: sa.Select[Any], limit: sa.ColumnElement[int]) -> sa.Select[Any]:
        # SQLite's compiler adds an OFFSET to every LIMIT; written in, it is
        # no parameter. Elsewhere none: PostgreSQL treats OFFSET 0 as a fence.
        if self.kind == "sqlite":
            return select.limit(limit).offset(inline(0))
        return select.limit(limit)

    # -- schema -----------------------------------------------------------------------

    def create_table(self) -> CreateTable:
        return CreateTable(self.table)

    def create_claim_index(self) -> CreateIndex:
        (index,) = self.table.indexes
        return CreateIndex(index)

    def add_column(self, name: str) -> str:
        """For a table made before column ``name``: the column as CREATE TABLE has it."""
        compiler = self.dialect.ddl_compiler(self.dialect, self.create_table())
        column = compiler.get_column_specification(self.table.c[name])
        table = self.dialect.identifier_preparer.format_table(self.table)
        return f"ALTER TABLE {table} ADD COLUMN {column}"

    @cached_property
    def backfill_state(self) -> sa.Update:
        """After adding the column: items an earlier version had leased say so.

        That version cleared the token on release and delay, so a token
        meant a lease; ``state = 'ready'`` leaves alone rows that a current
        process already wrote meanwhile.
        """
        t = self.table
        return (
            sa.update(t)
            .where(t.c.token.is_not(None), t.c.state == _state(READY))
            .values(state=_state(LEASED))
        )

    # -- the hot path: compiled once per shape, run on a pinned connection --------------

    def insert(self, rows: int, delayed: bool, ttl: bool = False) -> sa.Insert | sa.Select[Any]:
        """One multi-row INSERT of ``rows`` payloads, all with one name, delay and priority;
        ``ttl``: each with a deadline ``ttl`` s from now."""
        t = self.table
        delay: sa.BindParameter[float] = sa.bindparam("delay", type_=sa.Double())
        row: dict[str, Any] = {
            "name": _queue(),
            "created": self.now,
            "expire": self.now + delay if delayed else sa.literal_column("0", sa.Double()),
            "priority": sa.bindparam("priority", type_=sa.Integer()),
            "state": _state(DELAYED if delayed else READY),
        }
        if ttl:
            row[TTL_END] = self.now + sa.bindparam("ttl", type_=sa.Double())
        insert = sa.insert(t).values(
            [{**row, "data": data} for data in placeholders("data", rows, sa.LargeBinary())]
        )
        if self.insert_returning:
            insert = insert.returning(t.c.item_id)
        if self.kind == "postgresql" and not delayed:
            return self._waking(insert)
        return insert

    def _waking(self, insert: sa.Insert) -> sa.Select[Any]:
        """The INSERT, and one ``pg_notify(table, queue)`` that wakes ``bridge queue watch``.

        In the same statement, so creating costs no extra round trip. Once
        per statement: a single-row CTE (volatile, so evaluated once), not
        in RETURNING, where it ran per row and made a 100-row INSERT 60%
        slower. The channel is the table's name, a plain identifier
        (checked by the backend), written in.
        """
        channel = sa.literal_column(f"'{self.table.name}'", sa.String())
        created = insert.cte("created")
        woken = sa.select(sa.func.pg_notify(channel, _queue()).label("woken")).cte("woken")
        return sa.select(created.c.item_id).select_from(created.join(woken, sa.true()))

    def claimable(self) -> sa.Select[Any]:
        """The queue's claimable items in claim order: the walk of the claim index."""
        t = self.table
        return (
            sa.select(t.c.item_id)
            .where(t.c.name == _queue(), t.c.expire <= self.now, self._alive(self.now))
            .order_by(t.c.priority.desc(), t.c.item_id)
        )

    def _alive(self, now: sa.ColumnElement[float]) -> sa.ColumnElement[bool]:
        """Within its TTL, or without one: for an item no lease holds, not expired."""
        ttl_end = self.table.c[TTL_END]
        return sa.or_(ttl_end.is_(None), ttl_end > now)

    def expired(self, now: sa.ColumnElement[float]) -> sa.ColumnElement[bool]:
        """Past its TTL with no lease holding it (a held item never expires)."""
        t = self.table
        # IS NOT NULL first, so that the whole is false, never NULL, without a
        # TTL: NOT (NULL AND ...) would hide such an item from peek and browse.
        return sa.and_(
            t.c[TTL_END].is_not(None),
            t.c[TTL_END] <= now,
            ~self._is_held(),
            sa.or_(t.c.expire <= now, t.c.state != _state(LEASED)),
        )

    def claim(self, count: int, grace: bool = False) -> sa.Update:
        """The one-statement claim of PostgreSQL and SQLite: up to ``count`` items.

        ``grace``: each claimed item's TTL deadline, if it has one, moved to
        at least the lease's end plus the ``grace`` parameter.
        """
        return self._claim(count, sparing=False, grace=grace)

    def _graced(self, floor: sa.ColumnElement[float]) -> dict[str, Any]:
        """A TTL deadline raised to ``floor``; NULL (no TTL) stays NULL, as NULL < x is not true."""
        ttl_end = self.table.c[TTL_END]
        return {TTL_END: sa.case((ttl_end < floor, floor), else_=ttl_end)}

    def _claim(self, count: int, sparing: bool, grace: bool = False) -> sa.Update:
        """The claim; ``sparing``: never the item ``id`` (settle_and_claim's, settled alongside)."""
        t = self.table
        picked = self.claimable()
        if sparing:
            picked = picked.where(t.c.item_id != _item_id())
        picked = self._limited(picked, inline(count))
        if self.kind == "postgresql":
            chosen = picked.with_for_update(skip_locked=True).cte("picked")
            which = t.c.item_id == chosen.c.item_id
        elif count == 1:
            # SQLite builds a temporary b-tree for an IN (...) list, even of
            # one: = is 45k fewer instructions a claim, a quarter of a claim
            # and delete (callgrind).
            which = t.c.item_id == picked.scalar_subquery()
        else:
            which = t.c.item_id.in_(picked.scalar_subquery())
        lease_end = self.now + sa.bindparam("lease_time", 0.0, type_=sa.Double())
        graced = self._graced(lease_end + sa.bindparam("grace", type_=sa.Double())) if grace else {}
        return (
            sa.update(t)
            .where(which, t.c.expire <= self.now)
            .values(
                expire=lease_end,
                token=sa.bindparam("token", "", type_=sa.String()),
                attempts=t.c.attempts + inline(1),
                state=_state(LEASED),
                **graced,
            )
            # The previous attempt's error, for the worker that tries again:
            # the one column the claim reads beyond what it always did.
            .returning(*self._listed())
        )

    def lock_claimable(self, count: int) -> sa.Select[Any]:
        """MariaDB/MySQL's first step: lock the next claimable rows, and read the clock."""
        t = self.table
        locked = self.claimable().add_columns(
            t.c.data, t.c.created, t.c.attempts, t.c.priority, t.c.last_error, self.now
        )
        return self._limited(locked, inline(count)).with_for_update(skip_locked=True)

    def mark_claimed(self, ids: int, grace: bool = False) -> sa.Update:
        """MariaDB/MySQL's second step: claim the ``ids`` locked rows if still claimable.

        ``grace``: TTL deadlines raised to at least the ``ttl_floor`` parameter.
        """
        t = self.table
        graced = self._graced(sa.bindparam("ttl_floor", type_=sa.Double())) if grace else {}
        return (
            sa.update(t)
            .where(
                t.c.item_id.in_(placeholders("id", ids, sa.BigInteger())),
                t.c.expire <= sa.bindparam("now", type_=sa.Double()),
            )
            .values(
                expire=sa.bindparam("expire", type_=sa.Double()),
                token=sa.bindparam("token", type_=sa.String()),
                attempts=t.c.attempts + inline(1),
                state=_state(LEASED),
                **graced,
            )
        )

    def delete(self, ids: int) -> sa.Delete:
        """Delete ``ids`` items (0: an array of any length) of one claim, if still held.

        By id and token only: the token already names the claim, and a
        ``name =`` term let PostgreSQL, on stale statistics, walk the claim
        index for the ids instead of the primary key (95 ms per delete at 20k
        items, against 0.3 ms).
        """
        t = self.table
        if ids:
            which: sa.ColumnElement[bool] = t.c.item_id.in_(
                placeholders("id", ids, sa.BigInteger())
            )
        else:  # PostgreSQL: one array parameter, one statement for any count
            which = t.c.item_id == sa.any_(sa.bindparam("ids", type_=ARRAY(sa.BigInteger())))
        return sa.delete(t).where(which, t.c.token == sa.bindparam("token", type_=sa.String()))

    # -- a holder's calls: by id and token, as deletes are --------------------------------

    def _by_holder(self) -> sa.Update:
        t = self.table
        # Not item_id and token, which are columns (see _queue).
        return sa.update(t).where(t.c.item_id == _item_id(), t.c.token == _claim_token())

    def _returning_expire(self, update: sa.Update) -> sa.Update:
        return update.returning(self.table.c.expire) if self.update_returning else update

    def settled(self, action: str) -> sa.Update | sa.Delete:
        """What a settlement does to the holder's item, by id and token, returning nothing.

        ``action`` is ``delete``, ``release``, ``delay``, ``extend``, ``fail``
        (the error kept, the lease left to run out), ``fail_delayed`` (the
        error kept and the item delayed, as ``delay`` does) or ``hold`` (set
        aside, which ends the claim; without an error, ``error`` NULL, the
        item keeps the one it had). A moved item keeps its token: the holder
        may go on settling, as in Drupal, until another claim replaces it.
        """
        t = self.table
        if action == "delete":
            return sa.delete(t).where(t.c.item_id == _item_id(), t.c.token == _claim_token())
        moves: dict[str, dict[str, Any]] = {
            "release": {"expire": sa.literal_column("0", sa.Double()), "state": _state(READY)},
            "delay": {"expire": self._from_now(), "state": _state(DELAYED)},
            "extend": {"expire": self._from_now(), "state": _state(LEASED)},
            "extend_grace": {
                "expire": self._from_now(),
                "state": _state(LEASED),
                **self._graced(self._from_now() + sa.bindparam("grace", type_=sa.Double())),
            },
            "fail": {"last_error": _error()},
            "fail_delayed": {
                "last_error": _error(),
                "expire": self._from_now(),
                "state": _state(DELAYED),
            },
            "hold": {
                "state": _state(HELD),
                "expire": sa.literal_column(repr(HELD_UNTIL), sa.Double()),
                "held_at": self.now,
                "hold_reason": sa.bindparam("reason", type_=sa.Text()),
                "last_error": sa.func.coalesce(_error(), t.c.last_error),
                "token": sa.null(),
            },
        }
        return self._by_holder().values(moves[action])

    def _returned(self, action: str) -> sa.Update:
        update = self.settled(action)
        assert isinstance(update, sa.Update)
        return self._returning_expire(update)

    @cached_property
    def release(self) -> sa.Update:
        return self._returned("release")

    @cached_property
    def delay(self) -> sa.Update:
        return self._returned("delay")

    @cached_property
    def extend(self) -> sa.Update:
        return self._returned("extend")

    @cached_property
    def extend_grace(self) -> sa.Update:
        """extend_lease with a grace: the TTL deadline raised as a claim with grace raises it."""
        return self._returned("extend_grace")

    def _from_now(self) -> sa.ColumnElement[float]:
        return self.now + sa.bindparam("seconds", type_=sa.Double())

    @cached_property
    def fail(self) -> sa.Update:
        """fail_item without a delay: the error kept, the lease left to run out."""
        return self._returned("fail")

    @cached_property
    def fail_delayed(self) -> sa.Update:
        """fail_item with a delay: the error kept and the item delayed, as ``delay`` does."""
        return self._returned("fail_delayed")

    @cached_property
    def hold(self) -> sa.Update:
        """hold_item: the claim's item set aside in one UPDATE, which ends the claim."""
        update = self.settled("hold")
        assert isinstance(update, sa.Update)
        return update

    def settle_and_claim(self, action: str, count: int) -> sa.Select[Any]:
        """PostgreSQL: a settlement and the next claim of ``count`` in one statement.

        Data-modifying CTEs: ``settled`` is the single call's statement (by id
        and token), ``claimed`` the claim, which spares the settled item so
        that the two never touch the same row (the order in which PostgreSQL
        runs them is its own). One statement is one transaction: both happen
        or neither. One row per claimed item, or one of NULLs if none was,
        each led by how many items were settled (0 or 1). Only for
        settlements after which the item cannot be claimable at once; a
        release, or a delay of 0, needs the claim to see it (two statements,
        one transaction).
        """
        t = self.table
        settled = self.settled(action).returning(t.c.item_id).cte("settled")
        claimed = self._claim(count, sparing=True).cte("claimed")
        done = sa.select(sa.func.count().label("settled")).select_from(settled).subquery("done")
        return sa.select(done.c.settled, *claimed.c).select_from(done.outerjoin(claimed, sa.true()))

    @cached_property
    def read_expire(self) -> sa.Select[Any]:
        """Without UPDATE ... RETURNING: the new expire, read under the UPDATE's row lock."""
        t = self.table
        return sa.select(t.c.expire).where(t.c.item_id == sa.bindparam("id", type_=sa.BigInteger()))

    # -- held items: by state, oldest held first --------------------------------------

    @cached_property
    def held_items(self) -> sa.Select[Any]:
        """The oldest held items. No index has ``held_at``: this reads the
        queue's rows (through the claim index's ``name``) and sorts the held ones."""
        t = self.table
        return self._limited(
            sa.select(*self._listed(), t.c.held_at, t.c.hold_reason)
            .where(t.c.name == _queue(), self._is_held())
            .order_by(t.c.held_at, t.c.item_id),
            _limit(),
        )

    def kick(self, limited: bool) -> sa.Update:
        """Held items back to ready, attempts reset; ``limited``: the oldest ``limit``.

        One UPDATE, so a kick that is killed has moved all or none.
        ``last_error`` stays for the next claimer.
        """
        return sa.update(self.table).where(*self._held_here(limited)).values(self._kicked())

    @cached_property
    def kick_item(self) -> sa.Update:
        t = self.table
        return (
            sa.update(t)
            .where(
                t.c.item_id == sa.bindparam("id", type_=sa.BigInteger()),
                t.c.name == _queue(),
                self._is_held(),
            )
            .values(self._kicked())
        )

    @staticmethod
    def _kicked() -> dict[str, Any]:
        return {
            "state": _state(READY),
            "expire": sa.literal_column("0", sa.Double()),
            "attempts": inline(0),
            "held_at": sa.null(),
            "hold_reason": sa.null(),
        }

    def delete_held(self, limited: bool) -> sa.Delete:
        """Held items deleted; ``limited``: the oldest ``limit`` of them."""
        return sa.delete(self.table).where(*self._held_here(limited))

    def _is_held(self) -> sa.ColumnElement[bool]:
        return self.table.c.state == _state(HELD)

    def _held_here(self, limited: bool) -> list[sa.ColumnElement[bool]]:
        """The queue's held items; ``limited``: the oldest ``limit`` of them.

        The outer ``state = 'held'`` is checked again on each row the
        statement changes, so that an item another kick or delete took
        first is not counted twice.
        """
        t = self.table
        if not limited:
            return [t.c.name == _queue(), self._is_held()]
        picked = self._limited(
            sa.select(t.c.item_id)
            .where(t.c.name == _queue(), self._is_held())
            .order_by(t.c.held_at, t.c.item_id),
            _limit(),
        )
        if self.kind == "postgresql":
            # A CTE, as the claim's: PostgreSQL may run an IN (...) subquery
            # again for each row it changes, and each run, no longer seeing
            # the rows changed so far, picks the next ones: kick(limit=1)
            # kicked two. SKIP LOCKED lets a concurrent kick take the next ones.
            oldest = picked.with_for_update(skip_locked=True).cte("oldest")
            return [t.c.item_id == oldest.c.item_id, self._is_held()]
        if self.kind in ("mysql", "mariadb"):
            # They refuse a LIMIT inside IN (...) and, MySQL, a subquery on
            # the table being changed; a derived table is neither, and its
            # LIMIT makes it materialized before the change starts.
            picked = sa.select(picked.subquery("oldest").c.item_id)
        return [t.c.item_id.in_(picked.scalar_subquery()), self._is_held()]

    # -- introspection and administration ------------------------------------------------

    @cached_property
    def now_once(self) -> sa.ScalarSelect[float]:
        """The clock read once per statement, for statements that test every row of a queue.

        A scalar subquery, which each database evaluates once. Written in
        place, PostgreSQL's clock is evaluated again for each row, and as
        ``numeric`` (what ``extract`` returns), against which each row's
        ``expire`` is converted: at 1M rows that was most of ``counts``' time.
        """
        now = sa.cast(self.now, sa.Double()) if self.kind == "postgresql" else self.now
        return sa.select(now).scalar_subquery()

    def in_state(self, state: str, now: sa.ColumnElement[float]) -> sa.ColumnElement[bool]:
        """Whether an item is in ``state`` at ``now``: the one classification of
        ``counts``, ``browse``'s filter and :meth:`state_of`.

        Ready is what a claim takes: ``expire`` has passed (an ended lease
        or delay included), whatever ``state`` says. An item still waiting
        is held or leased when its ``state`` says so, delayed otherwise. A
        held item's ``expire`` never passes (:data:`HELD_UNTIL`). A ready or
        delayed item past its TTL is :data:`EXPIRED` instead.
        """
        t = self.table
        if state == EXPIRED:
            return self.expired(now)
        if state == READY:
            return sa.and_(t.c.expire <= now, self._alive(now))
        waiting = t.c.expire > now
        if state == DELAYED:
            return sa.and_(waiting, t.c.state != _state(LEASED), ~self._is_held(), self._alive(now))
        return sa.and_(waiting, t.c.state == _state(state))

    def state_of(self, now: sa.ColumnElement[float]) -> sa.ColumnElement[str]:
        """Each item's state at ``now``, as :meth:`in_state` classifies it."""
        t = self.table
        return sa.case(
            (t.c.expire <= now, _state(READY)),
            (self._is_held(), _state(HELD)),
            (t.c.state == _state(LEASED), _state(LEASED)),
            else_=_state(DELAYED),
        )

    @cached_property
    def counts(self) -> sa.Select[Any]:
        """Total, leased, delayed and held (ready is the rest), in one pass over the queue's rows.

        No index can count by state without costing every claim: one holding
        ``expire`` or ``state`` (or with either in its WHERE) would make each
        claim's UPDATE change an indexed column, and PostgreSQL could no
        longer update the row in place (HOT). So this reads the rows; what
        keeps it fast is the clock read once (:attr:`now_once`) and, where
        the database has it, ``count(*) FILTER (WHERE ...)`` instead of a sum
        of CASEs.
        """
        t = self.table
        now = self.now_once

        def number(state: str) -> sa.ColumnElement[Any]:
            condition = self.in_state(state, now)
            if self.kind in ("mysql", "mariadb"):  # no FILTER
                one, zero = inline(1), inline(0)
                return sa.func.coalesce(sa.func.sum(sa.case((condition, one), else_=zero)), zero)
            return sa.func.count().filter(condition)

        return sa.select(
            sa.func.count(), number(LEASED), number(DELAYED), number(HELD), number(EXPIRED)
        ).where(t.c.name == _queue())

    @cached_property
    def oldest_ready_age(self) -> sa.Select[Any]:
        """Seconds since the oldest claimable item was created (NULL: none is), by the claim index.

        Ids grow with time, so in each priority the oldest claimable item is
        the first claimable one in the claim index, which a claim would find
        too. ``levels`` walks the priorities present, one index probe each
        (a loose index scan, written as a recursive CTE since PostgreSQL has
        none); each level's probe walks past the leased, delayed and held
        items at its head, as a claim does. The oldest of those firsts is
        the answer. A probe asks for the first claimable item at its level
        *or below*, in claim order: for a level with one, that is its first;
        otherwise an item of a lower level, whose own probe finds it too, so
        the minimum is unchanged. Asked with ``priority =`` and ordered by id,
        PostgreSQL's generic plan of the prepared statement (psycopg prepares
        after five runs) walked the primary key instead, from the table's
        first id: 100 ms for a small queue beside a 1,000,000-item one, 0.2
        ms with the claim order, which only the claim index gives. Two
        items created at once by concurrent transactions may get ids in
        the other order; the age is then off by the difference
        of their ``created``, milliseconds. No index has ``created``: one
        would cost every insert and delete to serve a metric.
        """
        t = self.table

        def highest(below: sa.ColumnElement[int] | None) -> sa.ScalarSelect[Any]:
            found = sa.select(t.c.priority).where(t.c.name == _queue())
            if below is not None:
                found = found.where(t.c.priority < below)
            return self._limited(found.order_by(t.c.priority.desc()), inline(1)).scalar_subquery()

        levels = sa.select(highest(None).label("priority")).cte("levels", recursive=True)
        lower = sa.select(highest(levels.c.priority).label("priority")).where(
            levels.c.priority.is_not(None)
        )
        levels = levels.union_all(lower)
        first = self._limited(
            sa.select(t.c.created)
            .where(
                t.c.name == _queue(),
                t.c.priority <= levels.c.priority,
                t.c.expire <= self.now,
                self._alive(self.now),
            )
            .order_by(t.c.priority.desc(), t.c.item_id),
            inline(1),
        ).scalar_subquery()
        return sa.select(self.now - sa.func.min(first)).where(levels.c.priority.is_not(None))

    def _shown(self, now: sa.ColumnElement[float]) -> tuple[sa.ColumnElement[Any], ...]:
        """What an operator's listing shows: the stored item, held fields, state at ``now``."""
        t = self.table
        return (*self._listed(), t.c.held_at, t.c.hold_reason, self.state_of(now).label("shown"))

    def browse(self, state: str | None, after: bool) -> sa.Select[Any]:
        """A page of the queue's items (of ``state``), after a cursor if ``after``; built once."""
        key = (state, after)
        if key not in self._browse:
            self._browse[key] = self._build_browse(state, after)
        return self._browse[key]

    def _build_browse(self, state: str | None, after: bool) -> sa.Select[Any]:
        """A page of the queue's items (of ``state``) in claim order, after a cursor if ``after``.

        By key, never by offset: the cursor is the last row's ``(priority,
        item_id)``, and what follows it in the claim index's order is the
        rest of its priority (``priority = p AND item_id > i``) and then the
        lower priorities (``priority < p``). Each is a range of the claim
        index, so each part is its own walk, joined by UNION ALL: a single
        ``priority < p OR (priority = p AND item_id > i)`` would let the
        index bound only ``priority <= p`` and walk again every earlier item
        of ``p``, as much as OFFSET does. A page by state walks the claim
        index, testing each row, until it has ``limit`` rows: quick for a
        state most items are in, a pass over the queue for a rare one.
        """
        t = self.table
        now = self.now_once
        order = (t.c.priority.desc(), t.c.item_id)
        # An expired item is gone but for garbage_collection: counted, never listed.
        where = [t.c.name == _queue(), ~self.expired(now)]
        if state is not None:
            where.append(self.in_state(state, now))

        def page(*more: sa.ColumnElement[bool]) -> sa.Select[Any]:
            return self._limited(
                sa.select(*self._shown(now)).where(*where, *more).order_by(*order), _limit()
            )

        if not after:
            return page()
        priority = sa.bindparam("after_priority", type_=sa.Integer())
        rest = page(
            t.c.priority == priority, t.c.item_id > sa.bindparam("after_id", type_=sa.BigInteger())
        )
        lower = page(t.c.priority < priority)
        both = sa.union_all(
            sa.select(rest.subquery("rest")), sa.select(lower.subquery("lower"))
        ).subquery("page")
        return self._limited(
            sa.select(both).order_by(both.c.priority.desc(), both.c.item_id), _limit()
        )

    @cached_property
    def find_item(self) -> sa.Select[Any]:
        t = self.table
        return sa.select(*self._shown(self.now_once)).where(
            t.c.item_id == _item_id(), t.c.name == _queue()
        )

    @cached_property
    def remove_item(self) -> sa.Delete:
        """An operator's delete: by id in the queue, whatever the state or claim."""
        t = self.table
        return sa.delete(t).where(t.c.item_id == _item_id(), t.c.name == _queue())

    @cached_property
    def queue_names(self) -> sa.Select[Any]:
        t = self.table
        return sa.select(t.c.name, sa.func.count()).group_by(t.c.name)

    def _listed(self) -> tuple[sa.Column[Any], ...]:
        """What a listing shows of an item (a StoredItem's fields up to ``last_error``,
        without the token)."""
        t = self.table
        return (
            t.c.item_id,
            t.c.data,
            t.c.created,
            t.c.expire,
            t.c.attempts,
            t.c.priority,
            t.c.last_error,
        )

    @cached_property
    def peek(self) -> sa.Select[Any]:
        """The next items in claim order, claimable ones first, held ones not; this one sorts."""
        t = self.table
        waiting = sa.case((t.c.expire <= self.now, inline(0)), else_=inline(1))
        return self._limited(
            sa.select(*self._listed())
            .where(t.c.name == _queue(), ~self._is_held(), ~self.expired(self.now))
            .order_by(waiting, t.c.priority.desc(), t.c.item_id),
            _limit(),
        )

    @cached_property
    def free_leases(self) -> sa.Update:
        """release_all, first: every lease and delay dropped, and its claim ended.

        Held items wait too (their ``expire`` is :data:`HELD_UNTIL`) but stay held.
        """
        t = self.table
        return (
            sa.update(t)
            .where(t.c.name == _queue(), t.c.expire > self.now, ~self._is_held())
            .values(
                expire=sa.literal_column("0", sa.Double()), token=sa.null(), state=_state(READY)
            )
        )

    @cached_property
    def end_claims(self) -> sa.Update:
        """release_all, then: claims whose lease had ended, or that released, end too."""
        t = self.table
        return (
            sa.update(t)
            .where(t.c.name == _queue(), t.c.token.is_not(None), t.c.expire <= self.now)
            .values(token=sa.null())
        )

    @cached_property
    def delete_expired(self) -> sa.Delete:
        """garbage_collection: the queue's expired items deleted (a pass over its rows)."""
        t = self.table
        return sa.delete(t).where(t.c.name == _queue(), self.expired(self.now_once))

    @cached_property
    def delete_queue(self) -> sa.Delete:
        t = self.table
        return sa.delete(t).where(t.c.name == _queue())
