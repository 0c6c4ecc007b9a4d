"""Every statement the SQL topic store sends (``topics_sql.py``), built once per store.

Kept apart from the topic semantics so that ``catalogue.py`` can render
them into ``queries/<dialect>.sql`` beside the queue's statements, where a
DBA reads what bridge sends. Values travel as named parameters (``topic``,
``subscriber_name``, ``wanted``...); the database's clock is written in, as
in the queue's statements (:func:`~bridge.backends.sql.statements.database_now`).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite

from bridge.backends.sql.statements import NAME_TYPE, database_now
from bridge.errors import ConfigurationError

HEAD = ""
"""The subscriber name of a topic's head row (no real subscriber can have it)."""
_LONGEST_IDENTIFIER = 63  # PostgreSQL cuts longer names silently


def topic_tables(table: str) -> tuple[sa.Table, sa.Table]:
    """The messages table and the subscribers' table for the queue table ``table``."""
    if len(table) + len("_topic_expire") > _LONGEST_IDENTIFIER:
        raise ConfigurationError(
            f"table name {table!r} is too long for topics: its tables add '_topic_expire' "
            f"and must stay within {_LONGEST_IDENTIFIER} characters"
        )
    metadata = sa.MetaData()
    messages = sa.Table(
        f"{table}_topic",
        metadata,
        sa.Column("name", NAME_TYPE, primary_key=True),
        sa.Column("position", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column(
            "data",
            sa.LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb"),
            nullable=False,
        ),
        sa.Column("published", sa.Double(), nullable=False),
        sa.Column("expire", sa.Double(), nullable=False),
    )
    sa.Index(f"{table}_topic_expire", messages.c.name, messages.c.expire)
    subscribers = sa.Table(
        f"{table}_topic_sub",
        metadata,
        sa.Column("name", NAME_TYPE, primary_key=True),
        sa.Column("subscriber", NAME_TYPE, primary_key=True),
        sa.Column("position", sa.BigInteger(), nullable=False),
    )
    return messages, subscribers


class TopicStatements:
    """The topic store's statements for one queue table and dialect kind."""

    def __init__(self, table: str, kind: str) -> None:
        self.kind = kind
        self.messages, self.subscribers = topic_tables(table)
        m, s = self.messages, self.subscribers
        now = database_now(kind)
        topic: sa.BindParameter[str] = sa.bindparam("topic")
        subscriber: sa.BindParameter[str] = sa.bindparam("subscriber_name")
        # The head's empty name written in, so the SQL reads as what it is.
        is_head = s.c.subscriber == sa.literal_column(f"'{HEAD}'")
        head = (s.c.name == topic) & is_head
        mine = (s.c.name == topic) & (s.c.subscriber == subscriber)

        self.lock_head = sa.select(s.c.position, now).where(head).with_for_update()
        """A publish or a delete_topic, first: the topic's last position, locked."""
        self.last_position = sa.select(s.c.position).where(head)
        self.delete_expired = sa.delete(m).where(m.c.name == topic, m.c.expire <= now)
        self.insert_messages = sa.insert(m)
        """Run with one parameter set per message (``executemany``)."""
        self.set_head = sa.update(s).where(head).values(position=sa.bindparam("last"))
        after = sa.select(s.c.position).where(mine).scalar_subquery()
        zero: sa.ColumnElement[int] = sa.literal_column(
            "0"
        )  # a new subscriber reads from the first position
        self.read = (
            sa.select(m.c.position, m.c.data, m.c.published, m.c.expire)
            .where(
                m.c.name == topic, m.c.position > sa.func.coalesce(after, zero), m.c.expire > now
            )
            .order_by(m.c.position)
            .limit(sa.bindparam("limit", type_=sa.Integer()))
        )
        self.subscriber_position = sa.select(s.c.position).where(mine)
        self.ack_forward = (
            sa.update(s)
            .where(mine, s.c.position < sa.bindparam("wanted"))
            .values(position=sa.bindparam("wanted"))
        )
        self.add_subscriber = self._insert_ignore()
        """A subscriber's (or the head's) row unless it exists."""
        self.add_subscriber_returning = (
            None if kind in ("mysql", "mariadb") else self._insert_ignore().returning(s.c.position)
        )
        """The same, saying whether it inserted: psycopg reports -1 rows for ``DO NOTHING``."""
        self.live_stats = sa.select(
            sa.func.count(), sa.func.min(m.c.published), sa.func.max(m.c.published)
        ).where(m.c.name == topic, m.c.expire > now)
        self.subscriber_count = sa.select(sa.func.count()).where(s.c.name == topic, ~is_head)
        self.delete_messages = sa.delete(m).where(m.c.name == topic)
        self.delete_subscribers = sa.delete(s).where(s.c.name == topic, ~is_head)

    def _insert_ignore(self) -> Any:
        s = self.subscribers
        if self.kind == "postgresql":
            return postgresql.insert(s).on_conflict_do_nothing()
        if self.kind == "sqlite":
            return sqlite.insert(s).on_conflict_do_nothing()
        return sa.insert(s).prefix_with("IGNORE")
