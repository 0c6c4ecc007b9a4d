"""Every statement the SQL backend sends is in ``bridge/backends/sql/queries/``.

Two checks keep those files true. Each file must equal what
``catalogue.render`` makes of ``statements.py`` now, so a changed statement
fails here until the file is regenerated (``BRIDGE_WRITE_SQL=1``). And a
live backend, driven through every operation, must send only statements
its file lists, so a statement added to the backend but left out of the
catalogue fails here too.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

import bridge
from bridge import Settlement
from bridge.backends.sql import SqlBackend, catalogue, driver
from bridge.backends.sql.statements import dialect_kind
from bridge.items import ItemState

from conftest import SQL_BACKENDS, spec_for

WRITE = os.environ.get("BRIDGE_WRITE_SQL") == "1"
DOCS = Path(__file__).parent.parent / "docs" / "sql.md"
# Listed, but not sent by the operations below: schema set-up and migration
# (tests/test_sql_schema.py), session set-up (on connect, before recording),
# and the transactions PostgreSQL opens only for over 100 rows.
NOT_EXERCISED = {
    "create_table",
    "create_claim_index",
    "add_state_column",
    "backfill_state",
    "add_last_error_column",
    "add_held_at_column",
    "add_hold_reason_column",
    "add_ttl_end_column",
    "max_allowed_packet",
    "binary_names",
    "topic_binary_names_messages",
    "topic_binary_names_subscribers",
    "rollback",
    "begin",
    "commit",
    # The topic store's tables: made before recording, with the queue's.
    "topic_create_messages",
    "topic_create_expire_index",
    "topic_create_subscribers",
}


@pytest.mark.parametrize("kind", catalogue.KINDS)
def test_the_checked_in_sql_is_what_the_statements_compile_to(kind: str) -> None:
    path = catalogue.path_of(kind)
    rendered = catalogue.render(kind)
    current = path.read_text() if path.exists() else ""
    if current == rendered:
        return
    if WRITE:
        path.write_text(rendered)
        return
    diff = "".join(
        difflib.unified_diff(
            current.splitlines(keepends=True),
            rendered.splitlines(keepends=True),
            str(path),
            "rendered from bridge/backends/sql/statements.py",
        )
    )
    pytest.fail(
        f"{path} differs from the statements the backend compiles:\n{diff}\n"
        "If the change is meant, regenerate the files and commit them with it:\n"
        "    BRIDGE_WRITE_SQL=1 .venv/bin/pytest tests/test_sql_statements.py",
        pytrace=False,
    )


class _RecordingCursor:
    """A DB-API cursor that notes every statement it is given."""

    def __init__(self, cursor: Any, sent: list[str]) -> None:
        self._cursor = cursor
        self._sent = sent

    def execute(self, sql: str, *args: Any) -> Any:
        self._sent.append(sql)
        return self._cursor.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)


@pytest.fixture(params=SQL_BACKENDS)
def recording(
    request: pytest.FixtureRequest, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[bridge.Queue, list[str], bridge.QueueFactory]]:
    """A prepared SQL queue, and its factory, whose every statement from now on is noted."""
    sent: list[str] = []
    pinned_init = driver._Pinned.__init__

    def recording_init(pinned: Any, *args: Any) -> None:
        pinned_init(pinned, *args)
        pinned.cursor = _RecordingCursor(pinned.cursor, sent)

    monkeypatch.setattr(driver._Pinned, "__init__", recording_init)
    factory = bridge.QueueFactory(default=spec_for(request.param, tmp_path))
    queue = factory.get("statement_probe")
    queue.delete_queue()  # prepared: schema reflection is SQLAlchemy's, not listed
    factory.get_topic(queue.name).stats()  # the topic store's tables too

    def note(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        sent.append(statement)

    backend = queue.backend
    assert isinstance(backend, SqlBackend)
    event.listen(backend.engine, "before_cursor_execute", note)
    yield queue, sent, factory
    event.remove(backend.engine, "before_cursor_execute", note)
    queue.delete_queue()
    factory.close()


def _every_operation(queue: bridge.Queue) -> None:
    """Each operation once, with the shapes the catalogue lists (3 rows, 1 row...)."""
    queue.create_items(["a", "b", "c"])
    three = queue.claim_items(100, lease_time=60)
    assert len(three) == 3
    assert queue.delete_items(three) == 3
    queue.create_item("d")
    one = queue.claim_item(lease_time=60)
    assert one is not None
    assert queue.extend_lease(one, 60)
    assert queue.delay_item(one, 60)
    assert queue.release_item(one)
    assert queue.counts().total == 1
    assert len(queue.peek(5)) == 1
    assert queue.backend.queue_names()
    again = queue.claim_item(lease_time=60)
    assert again is not None
    assert queue.delete_item(again)
    queue.create_item("e", delay=60)
    assert queue.claim_item(lease_time=60) is None
    backend = queue.backend
    assert isinstance(backend, SqlBackend)
    backend._pinned._local.pinned.used -= 2 * driver.PING_AFTER  # idle: pinged first
    assert queue.release_all() == 1
    queue.create_item("f")
    _every_holding_operation(queue)
    queue.delete_queue()
    _every_operator_operation(queue)
    queue.delete_queue()
    _every_settlement(queue)
    _every_expiring_operation(queue)
    queue.delete_queue()


def _every_holding_operation(queue: bridge.Queue) -> None:
    """Failures and held items: each statement once."""
    queue.create_item("g")
    assert queue.backend.oldest_ready_age(queue.name) is not None
    first, second, third = queue.claim_items(100, lease_time=60)
    assert queue.fail_item(first, "ValueError: once")
    assert queue.fail_item(first, "ValueError: twice", delay=0)
    assert queue.hold_item(second, reason="poison", error="KeyError: 'k'")
    assert queue.hold_item(third, reason="poison")
    assert len(queue.held_items()) == 2
    assert queue.kick(limit=1) == 1
    assert queue.kick() == 1
    held = queue.claim_items(100, lease_time=60)
    assert [queue.hold_item(item) for item in held] == [True, True, True]
    assert queue.kick_item(held[0].item_id)
    assert queue.delete_held(limit=1) == 1
    assert queue.delete_held() == 1


def _every_operator_operation(queue: bridge.Queue) -> None:
    """browse in every state, first and next pages; find_item; remove_item."""
    ids = queue.create_items(["h", "i", "j"])
    for state in (None, *ItemState):
        first = queue.browse(state=state, limit=1)
        queue.browse(state=state, after=first.next_after or "0:0", limit=1)
    assert queue.find_item(ids[0]) is not None
    assert queue.remove_item(ids[0])


def _every_expiring_operation(queue: bridge.Queue) -> None:
    """A TTL, a claim with grace and the garbage collection that deletes expired items."""
    queue.create_item("t", ttl=60)
    item = queue.claim_item(lease_time=60, grace=5)
    assert item is not None
    assert queue.extend_lease(item, 60, grace=5)
    assert queue.delete_item(item)
    queue.garbage_collection()


def _every_settlement(queue: bridge.Queue) -> None:
    """settle_and_claim with each settlement, so each dialect's statements run."""
    queue.create_items(["k", "l", "m"])  # in the shapes the catalogue lists
    queue.create_items(["n", "o", "p"])
    queue.create_item("q")
    item = queue.claim_item(lease_time=60)
    settlements = [
        Settlement.delete,
        Settlement.release,
        lambda item: Settlement.delay_by(item, 60),
        lambda item: Settlement.delay_by(item, 0),
        lambda item: Settlement.fail(item, "ValueError: once"),
        lambda item: Settlement.fail(item, "ValueError: later", delay=60),
        lambda item: Settlement.hold(item, "poison"),
    ]
    for settlement in settlements:
        assert item is not None
        settled, claimed = queue.settle_and_claim(settlement(item), count=1, lease_time=60)
        assert settled
        item = claimed[0] if claimed else None
    queue.create_item("r")
    queue.create_item("s")
    assert item is not None
    settled, claimed = queue.settle_and_claim(Settlement.delete(item), count=100, lease_time=60)
    assert settled
    assert [each.data for each in claimed] == ["q", "r", "s"]


def _every_topic_operation(topic: bridge.Topic) -> None:
    """The topic store's statements, each once: a new topic, a new subscriber, an ack."""
    topic.delete_topic()
    first = topic.publish("t1")  # a new topic: its head row is added, then the publish
    assert [m.data for m in topic.read("late", start="latest")] == []  # a first read at the end
    topic.publish("t2")
    assert [m.data for m in topic.read("early")] == ["t1", "t2"]
    assert topic.ack("early", first)  # the subscriber's first marker
    assert topic.stats().subscribers == 2
    topic.delete_topic()


def test_a_live_backend_sends_only_listed_statements(
    recording: tuple[bridge.Queue, list[str], bridge.QueueFactory],
) -> None:
    queue, sent, factory = recording
    backend = queue.backend
    assert isinstance(backend, SqlBackend)
    _every_operation(queue)
    topic = factory.get_topic(queue.name)
    assert topic.store.engine is backend.engine  # type: ignore[attr-defined]
    _every_topic_operation(topic)
    kind = dialect_kind(backend.engine.dialect)
    listed = {entry.sql: entry.name for entry in catalogue.entries(kind, table=backend.table.name)}
    unlisted = sorted({catalogue.tidy(sql) for sql in sent} - set(listed))
    assert not unlisted, (
        f"sent to {kind} but not in {catalogue.path_of(kind).name} "
        "(add them to bridge/backends/sql/catalogue.py):\n" + "\n\n".join(unlisted)
    )
    unsent = {name for sql, name in listed.items() if sql not in {catalogue.tidy(s) for s in sent}}
    unsent -= NOT_EXERCISED
    unsent = {name for name in unsent if not name.startswith("session_")}
    assert not unsent, f"listed for {kind} but never sent: {sorted(unsent)}"


def test_the_docs_link_the_files_and_copy_no_sql() -> None:
    """docs/sql.md points at the rendered files instead of quoting SQL, which could drift."""
    text = DOCS.read_text()
    assert not re.search(r"^```sql", text, re.MULTILINE), "docs/sql.md copies SQL by hand"
    for kind in catalogue.KINDS:
        assert f"../bridge/backends/sql/queries/{kind}.sql" in text, kind
