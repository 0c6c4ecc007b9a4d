"""The ``bridge`` command line, run in process with CliRunner and as the real script.

Every test gets its own SQLite file, so state carries from one invocation to
the next as it does for a user; workers registered here are removed again by
the ``registry`` fixture. A user's mistake must end in one ``Error:`` line and
a non-zero exit, never a traceback: the error tests check exactly that, and
``catch_exceptions=False`` makes any exception escaping the CLI fail the test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import pytest
from click.testing import CliRunner, Result

import bridge
import bridge.factory
from bridge import workers
from bridge.cli import cli

UNREACHABLE_URL = "postgresql+psycopg://nobody@127.0.0.1:1/x"
RunCli = Callable[..., Result]

# Settings from the test runner's environment or a celeryconfig module must
# not leak into the commands under test.
ISOLATED_ENV: dict[str, str | None] = {
    "BRIDGE_QUEUE_DEFAULT_RELIABLE": None,
    "BRIDGE_QUEUES": None,
    "BRIDGE_IMPORTS": None,
    "CELERY_CONFIG_MODULE": "bridge_test_no_celeryconfig",
}


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/cli.sqlite"


@pytest.fixture
def run_cli(db_url: str, monkeypatch: pytest.MonkeyPatch) -> RunCli:
    """Invoke ``bridge ARGS...`` in process on the test's SQLite file."""
    monkeypatch.setattr(bridge.factory, "_factory", None)
    runner = CliRunner()

    def run(*args: str, env: dict[str, str | None] | None = None, **kwargs: Any) -> Result:
        full_env = {**ISOLATED_ENV, "BRIDGE_QUEUE_DEFAULT": db_url, **(env or {})}
        # A fresh factory per invocation, as a new process would build.
        bridge.factory._factory = None
        return runner.invoke(cli, list(args), env=full_env, catch_exceptions=False, **kwargs)

    return run


@pytest.fixture
def registry() -> Iterator[dict[str, workers.QueueWorker]]:
    """The worker registry, restored to its state before the test."""
    saved = dict(workers._registry)
    yield workers._registry
    workers._registry.clear()
    workers._registry.update(saved)


@pytest.fixture
def name() -> str:
    return f"cli_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def queue(db_url: str, name: str) -> Iterator[bridge.Queue]:
    """The test's queue, opened directly to check what the commands did."""
    factory = bridge.QueueFactory(default=db_url)
    yield factory.get(name)
    factory.close()


def register(name: str, callback: Callable[[Any], object], **options: Any) -> None:
    bridge.queue_worker(name, **options)(callback)


def assert_one_error_line(result: Result, *needles: str) -> None:
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    for needle in needles:
        assert needle in lines[0]


def listed(run_cli: RunCli) -> dict[str, dict[str, Any]]:
    result = run_cli("queue", "list", "--format", "json")
    assert result.exit_code == 0, result.output
    return {row["name"]: row for row in json.loads(result.stdout)}


# --- send, list, peek ------------------------------------------------------


def test_send_then_list_shows_the_count(run_cli: RunCli, name: str, db_url: str) -> None:
    for n in range(3):
        result = run_cli("queue", "send", name, json.dumps({"n": n}), "--create")
        assert result.exit_code == 0, result.output
        assert result.stdout.strip().isdigit()
    rows = listed(run_cli)
    assert rows[name] == {"name": name, "items": 3, "held": 0, "backend": db_url, "cron": None}
    table = run_cli("queue", "list").stdout
    assert table.splitlines()[0].split() == ["name", "items", "held", "backend", "cron"]
    assert any(
        line.split()[:3] == [name, "3", "0"] and line.endswith("-") for line in table.splitlines()
    )


def test_list_shows_held_items(run_cli: RunCli, name: str, queue: bridge.Queue) -> None:
    """Held items are in the count, as Drupal counts everything, and on their own."""
    queue.create_items(["poison", "fine"])
    hold_next(queue, "bounced")
    assert listed(run_cli)[name]["items"] == 2
    assert listed(run_cli)[name]["held"] == 1
    row = next(line for line in run_cli("queue", "list").stdout.splitlines() if name in line)
    assert row.split()[:3] == [name, "2", "1"]


@pytest.mark.parametrize("routed_by", ["variable", "BRIDGE_QUEUES"])
def test_list_shows_a_queue_routed_to_another_backend(
    run_cli: RunCli, tmp_path: Path, routed_by: str
) -> None:
    """A queue set by BRIDGE_QUEUE__<NAME> is listed as one set in BRIDGE_QUEUES is."""
    other = f"sqlite:///{tmp_path}/other.sqlite"
    routes = {"emails": other, "video-thumbs": other}
    env: dict[str, str | None] = (
        {"BRIDGE_QUEUE__EMAILS": other, "BRIDGE_QUEUE__VIDEO_THUMBS": other}
        if routed_by == "variable"
        else {"BRIDGE_QUEUES": json.dumps(routes)}
    )
    for queue_name in routes:
        result = run_cli("queue", "send", queue_name, "{}", "--create", env=env)
        assert result.exit_code == 0, result.output
    result = run_cli("queue", "list", "--format", "json", env=env)
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["emails"] == {
        "name": "emails",
        "items": 1,
        "held": 0,
        "backend": other,
        "cron": None,
    }
    # Listed under its stored name, though its variable spells it otherwise.
    assert rows["video-thumbs"]["items"] == 1
    assert rows["video-thumbs"]["backend"] == other


def test_list_shows_worker_queues_with_their_cron_time(
    run_cli: RunCli, registry: object, name: str
) -> None:
    register(name, lambda data: None, cron_time=15)
    assert listed(run_cli)[name] == {
        "name": name,
        "items": 0,
        "held": 0,
        "backend": ANY,
        "cron": 15,
    }
    row = next(line for line in run_cli("queue", "list").stdout.splitlines() if name in line)
    assert row.split()[-1] == "15"


def test_send_to_an_unknown_queue_needs_create(run_cli: RunCli, name: str) -> None:
    assert_one_error_line(run_cli("queue", "send", name, "{}"), name, "--create")
    assert run_cli("queue", "send", name, "{}", "--create").exit_code == 0
    # Once it has items, the queue is known.
    assert run_cli("queue", "send", name, "{}").exit_code == 0


def test_send_with_delay_and_priority(run_cli: RunCli, name: str, queue: bridge.Queue) -> None:
    run_cli("queue", "send", name, '"late"', "--create", "--delay", "60")
    run_cli("queue", "send", name, '"low"', "--priority", "1")
    run_cli("queue", "send", name, '"high"', "--priority", "5")
    assert [queue.claim_item().data for _ in range(2)] == ["high", "low"]  # type: ignore[union-attr]
    assert queue.claim_item() is None


def test_peek_shows_data_without_claiming(run_cli: RunCli, name: str, queue: bridge.Queue) -> None:
    run_cli("queue", "send", name, '{"to": "ada@example.com"}', "--create")
    result = run_cli("queue", "peek", name)
    assert result.exit_code == 0, result.output
    header, row = result.stdout.splitlines()
    assert header.split() == [
        "id",
        "created",
        "state",
        "attempts",
        "priority",
        "data",
        "last",
        "error",
    ]
    assert "ready" in row
    assert row.endswith("-"), "no error yet"
    assert '{"to": "ada@example.com"}' in row
    assert queue.number_of_items() == 1
    item = queue.claim_item()
    assert item is not None
    assert item.attempts == 1
    assert item.data == {"to": "ada@example.com"}


def test_peek_json_shows_leases(run_cli: RunCli, name: str, queue: bridge.Queue) -> None:
    queue.create_items([1, 2, 3])
    assert queue.claim_item(lease_time=60) is not None
    result = run_cli("queue", "peek", name, "--limit", "5", "--format", "json")
    rows = json.loads(result.stdout)
    assert [row["data"] for row in rows] == [2, 3, 1]
    assert [row["attempts"] for row in rows] == [0, 0, 1]
    assert rows[2]["state"].startswith("claimable in ")
    assert rows[0]["state"] == "ready"
    assert [row["last_error"] for row in rows] == [None, None, None]


def test_peek_shows_attempts_and_the_first_line_of_the_last_error(
    run_cli: RunCli, name: str, queue: bridge.Queue
) -> None:
    queue.create_item({"to": "ada"})
    item = queue.claim_item(lease_time=60)
    assert item is not None
    assert queue.fail_item(item, ERROR, delay=0)
    result = run_cli("queue", "peek", name)
    assert result.exit_code == 0, result.output
    header, row = result.stdout.splitlines()
    assert row[header.index("attempts") :].split()[0] == "1"
    assert row.endswith("ValueError: address bounced")
    assert "Traceback" not in result.stdout
    (shown,) = json.loads(run_cli("queue", "peek", name, "--format", "json").stdout)
    assert shown["last_error"] == ERROR
    assert shown["attempts"] == 1


def test_peek_shows_an_undecodable_payload_escaped(
    run_cli: RunCli, name: str, queue: bridge.Queue
) -> None:
    """A row another program wrote: its raw bytes, escaped, never a terminal escape."""
    queue.backend.create_items(name, [b"not json {\x1b[2J\n"], 0, 0)
    result = run_cli("queue", "peek", name)
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.stdout
    assert "<undecodable 15 bytes: 'not json {\\x1b[2J\\n'" in result.stdout
    (shown,) = json.loads(run_cli("queue", "peek", name, "--format", "json").stdout)
    assert shown["data"].startswith("<undecodable 15 bytes: ")


# --- held, kick, delete-held ---------------------------------------------------

ERROR = (
    "ValueError: address bounced\n"
    "Traceback (most recent call last):\n"
    '  File "workers.py", line 3, in send\n'
    "    raise ValueError('address bounced')"
)


def hold_next(queue: bridge.Queue, reason: str, error: str | None = ERROR) -> bridge.QueueItem:
    item = queue.claim_item(lease_time=60)
    assert item is not None
    assert queue.hold_item(item, reason=reason, error=error)
    return item


def test_held_lists_id_attempts_time_reason_and_error(
    run_cli: RunCli, name: str, queue: bridge.Queue
) -> None:
    queue.create_items(["poison", "fine"])
    before = time.time()
    poison = hold_next(queue, "bounced\x1b[2J twice\non two lines")
    result = run_cli("queue", "held", name)
    assert result.exit_code == 0, result.output
    header, row = result.stdout.splitlines()
    assert header.split() == ["id", "attempts", "held", "since", "reason", "last", "error"]
    assert row.split()[:2] == [str(poison.item_id), "1"]
    assert "bounced\\x1b[2J twice\\non two lines" in row, "escaped, on one line"
    assert row.endswith("ValueError: address bounced")
    assert "\x1b" not in result.stdout
    (shown,) = json.loads(run_cli("queue", "held", name, "--format", "json").stdout)
    assert shown["id"] == poison.item_id
    assert shown["data"] == "poison"
    assert shown["attempts"] == 1
    assert shown["hold_reason"] == "bounced\x1b[2J twice\non two lines"
    assert shown["last_error"] == ERROR
    assert before - 1 <= shown["held_at"] <= time.time() + 1


def test_held_lists_oldest_first_up_to_the_limit(
    run_cli: RunCli, name: str, queue: bridge.Queue
) -> None:
    queue.create_items(["a", "b", "c"])
    first = hold_next(queue, "first")
    second = hold_next(queue, "second", error=None)
    rows = json.loads(run_cli("queue", "held", name, "--format", "json").stdout)
    assert [row["id"] for row in rows] == [first.item_id, second.item_id]
    assert rows[1]["last_error"] is None
    rows = json.loads(run_cli("queue", "held", name, "--limit", "1", "--format", "json").stdout)
    assert [row["id"] for row in rows] == [first.item_id]
    table = run_cli("queue", "held", name).stdout.splitlines()
    assert table[2].endswith("-"), "no error"


def test_held_when_none_is(run_cli: RunCli, name: str, queue: bridge.Queue) -> None:
    queue.create_item("fine")
    assert run_cli("queue", "held", name).stdout.strip() == f"No held items in {name}."
    assert json.loads(run_cli("queue", "held", name, "--format", "json").stdout) == []


def test_an_undecodable_item_is_held_and_listed_escaped(
    run_cli: RunCli, name: str, queue: bridge.Queue
) -> None:
    """A claim holds what it cannot decode; the held list names it and shows its bytes."""
    (bad,) = queue.backend.create_items(name, [b"not json {"], 0, 0)
    queue.create_item("fine")
    claimed = queue.claim_item()
    assert claimed is not None
    assert claimed.data == "fine"
    (shown,) = json.loads(run_cli("queue", "held", name, "--format", "json").stdout)
    assert shown["id"] == bad
    assert "cannot be decoded" in shown["hold_reason"]
    assert shown["data"].startswith("<undecodable 10 bytes: 'not json {'")
    assert "cannot be decoded" in run_cli("queue", "held", name).stdout


def test_kick_by_id_then_all(run_cli: RunCli, name: str, queue: bridge.Queue) -> None:
    queue.create_items(["a", "b", "c"])
    first = hold_next(queue, "one")
    hold_next(queue, "two")
    result = run_cli("queue", "kick", name, str(first.item_id))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"Kicked 1 item back to ready in {name}"
    assert queue.counts().held == 1
    again = queue.claim_item(lease_time=60)
    assert again is not None
    assert again.item_id == first.item_id
    assert again.attempts == 1, "attempts start again"
    assert again.last_error == ERROR, "the error is kept for the next claimer"
    result = run_cli("queue", "kick", name, "--all")
    assert result.stdout.strip() == f"Kicked 1 item back to ready in {name}"
    assert queue.counts().held == 0
    assert run_cli("queue", "kick", name, "--all").stdout.strip() == (
        f"Kicked 0 items back to ready in {name}"
    )


def test_kick_names_the_ids_not_held(run_cli: RunCli, name: str, queue: bridge.Queue) -> None:
    queue.create_items(["a", "b"])
    held = hold_next(queue, "one")
    leased = queue.claim_item(lease_time=60)
    assert leased is not None
    result = run_cli("queue", "kick", name, str(leased.item_id), str(held.item_id), "x\ny")
    assert result.exit_code == 1
    assert result.stdout.strip() == f"Kicked 1 item back to ready in {name}"
    assert_one_error_line(result, f"not held in {name}: {leased.item_id}, x\\ny")
    assert queue.counts().held == 0
    assert queue.counts().leased == 1, "a leased item is not kicked"


@pytest.mark.parametrize("args", [(), ("--all", "1")])
def test_kick_needs_ids_or_all(run_cli: RunCli, name: str, queue: bridge.Queue, args: Any) -> None:
    queue.create_item("a")
    result = run_cli("queue", "kick", name, *args)
    assert result.exit_code == 2
    assert_one_error_line(result, "--all")


def test_delete_held_leaves_other_items(run_cli: RunCli, name: str, queue: bridge.Queue) -> None:
    queue.create_items(["a", "b", "c"])
    hold_next(queue, "one")
    hold_next(queue, "two")
    result = run_cli("queue", "delete-held", name, "--yes")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"Deleted 2 held items from {name}"
    assert queue.counts() == bridge.ItemCounts(ready=1, leased=0, delayed=0, held=0)


def test_delete_held_asks_first(run_cli: RunCli, name: str, queue: bridge.Queue) -> None:
    queue.create_items(["a", "b"])
    hold_next(queue, "one")
    refused = run_cli("queue", "delete-held", name, input="n\n")
    assert refused.exit_code == 1
    assert f"Delete all 1 held item in the {name} queue?" in refused.output
    assert queue.counts().held == 1
    assert run_cli("queue", "delete-held", name, input="y\n").exit_code == 0
    assert queue.number_of_items() == 1
    result = run_cli("queue", "delete-held", name)
    assert result.stdout.strip() == f"No held items in {name}."


def test_peek_an_empty_known_queue(run_cli: RunCli, registry: object, name: str) -> None:
    register(name, lambda data: None)
    assert run_cli("queue", "peek", name).stdout.strip() == f"No items in {name}."
    assert json.loads(run_cli("queue", "peek", name, "--format", "json").stdout) == []


# --- run -------------------------------------------------------------------


def test_run_drains_with_the_registered_worker(
    run_cli: RunCli, registry: object, name: str, queue: bridge.Queue
) -> None:
    seen: list[Any] = []
    register(name, seen.append)
    queue.create_items([{"n": n} for n in range(5)])
    result = run_cli("queue", "run", name)
    assert result.exit_code == 0, result.output
    assert seen == [{"n": n} for n in range(5)]
    assert f"Processed 5 items from the {name} queue in " in result.stdout
    assert "(requeued 0, delayed 0, failed 0, held 0, lost 0)" in result.stdout
    assert queue.number_of_items() == 0


def test_run_counts_failures(
    run_cli: RunCli, registry: object, name: str, queue: bridge.Queue
) -> None:
    def work(data: int) -> None:
        if data == 2:
            raise RuntimeError("boom")

    register(name, work)
    queue.create_items([1, 2, 3])
    result = run_cli("queue", "run", name)
    assert result.exit_code == 3, "an item failed"
    assert "Processed 2 items" in result.stdout
    assert "failed 1, held 0" in result.stdout
    assert result.stderr.splitlines()[-1] == (
        f"Error: 1 item failed and 0 items were held in the {name} queue"
    )
    assert queue.number_of_items() == 1
    (failed,) = queue.peek(1)
    assert failed.last_error is not None
    assert failed.last_error.startswith("RuntimeError: boom")


def test_run_exits_3_when_an_item_is_held(
    run_cli: RunCli, registry: object, name: str, queue: bridge.Queue
) -> None:
    def work(data: int) -> None:
        raise ValueError(f"no {data}")

    register(name, work, max_attempts=1)
    queue.create_items([1])
    result = run_cli("queue", "run", name)
    assert result.exit_code == 3
    assert "failed 0, held 1" in result.stdout
    assert result.stderr.splitlines()[-1] == (
        f"Error: 0 items failed and 1 item was held in the {name} queue; "
        f"list them with: bridge queue held {name}"
    )
    assert "ValueError: no 1" in run_cli("queue", "held", name).stdout


def test_run_with_items_limit(
    run_cli: RunCli, registry: object, name: str, queue: bridge.Queue
) -> None:
    register(name, lambda data: None)
    queue.create_items(list(range(5)))
    result = run_cli("queue", "run", name, "--items-limit", "2")
    assert result.exit_code == 0, result.output
    assert f"Processed 2 items from the {name} queue" in result.stdout
    assert "Stopped at the items limit." in result.stdout
    assert queue.number_of_items() == 3


def test_run_with_lease_time(
    run_cli: RunCli, registry: object, name: str, queue: bridge.Queue
) -> None:
    register(name, lambda data: 1 / 0)
    queue.create_item("x")
    result = run_cli("queue", "run", name, "--lease-time", "120")
    assert "failed 1" in result.stdout
    peeked = queue.peek(1)[0]
    assert peeked.expire - peeked.created > 100


def test_suspended_run_fails_with_the_message(
    run_cli: RunCli, registry: object, name: str, queue: bridge.Queue
) -> None:
    def work(data: Any) -> None:
        raise bridge.SuspendQueue("API down")

    register(name, work)
    queue.create_items([1, 2])
    result = run_cli("queue", "run", name)
    assert result.exit_code == 1
    assert "Processed 0 items" in result.stdout
    assert_one_error_line(result, name, "suspended", "API down")
    assert queue.number_of_items() == 2
    assert queue.claim_item() is not None  # released, not left leased


def test_run_needs_a_registered_worker(run_cli: RunCli, name: str, queue: bridge.Queue) -> None:
    queue.create_item("x")
    assert_one_error_line(run_cli("queue", "run", name), "Queue not found", name)


# --- release, delete --------------------------------------------------------


def test_release_frees_a_leased_item(run_cli: RunCli, name: str, queue: bridge.Queue) -> None:
    queue.create_items(["a", "b"])
    assert queue.claim_item(lease_time=300) is not None
    assert queue.claim_item(lease_time=300) is not None
    assert queue.claim_item() is None
    result = run_cli("queue", "release", name)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"Released 2 leases in {name}"
    assert queue.claim_item() is not None


def test_delete_empties_the_queue(run_cli: RunCli, name: str, queue: bridge.Queue) -> None:
    queue.create_items(["a", "b"])
    assert queue.claim_item() is not None
    result = run_cli("queue", "delete", name, "--yes")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"All items in {name} queue deleted."
    assert queue.number_of_items() == 0
    assert name not in listed(run_cli)


def test_delete_asks_first(run_cli: RunCli, name: str, queue: bridge.Queue) -> None:
    queue.create_items(["a", "b"])
    refused = run_cli("queue", "delete", name, input="n\n")
    assert refused.exit_code == 1
    assert f"Delete all 2 items in the {name} queue?" in refused.output
    assert queue.number_of_items() == 2
    assert run_cli("queue", "delete", name, input="y\n").exit_code == 0
    assert queue.number_of_items() == 0


# --- demo, --import, --version ----------------------------------------------


def test_demo_on_another_queue(run_cli: RunCli, registry: object, name: str) -> None:
    result = run_cli("demo", "--items", "7", "--queue", name)
    assert result.exit_code == 0, result.output
    assert f"Created 7 items in the {name} queue" in result.stdout
    assert f"Processed 7 items from the {name} queue" in result.stdout
    assert "bridge queue list" in result.stdout
    assert listed(run_cli)[name]["items"] == 0


def test_demo_refuses_a_queue_with_its_own_worker(
    run_cli: RunCli, registry: object, name: str, queue: bridge.Queue
) -> None:
    register(name, lambda data: None)
    assert_one_error_line(run_cli("demo", "--queue", name), name, "own worker")
    assert queue.number_of_items() == 0


def test_import_option_registers_workers(
    run_cli: RunCli,
    registry: object,
    name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    module = f"cli_workers_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(
        f"import bridge\n\n@bridge.queue_worker({name!r}, cron_time=5)\ndef work(data): pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    result = run_cli("--import", module, "queue", "list", "--format", "json")
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows[name]["cron"] == 5
    sys.modules.pop(module, None)


def test_version(run_cli: RunCli) -> None:
    result = run_cli("--version")
    assert result.exit_code == 0
    assert result.stdout.startswith("bridge, version ")


# --- a user's mistakes: one line, no traceback --------------------------------


def test_bad_json(run_cli: RunCli, name: str) -> None:
    result = run_cli("queue", "send", name, "{not json", "--create")
    assert result.exit_code == 2
    assert_one_error_line(result, "JSON")


@pytest.mark.parametrize(
    "args",
    [
        ("peek",),
        ("release",),
        ("delete", "--yes"),
        ("held",),
        ("kick", "--all"),
        ("delete-held", "--yes"),
    ],
)
def test_unknown_queue(run_cli: RunCli, name: str, args: tuple[str, ...]) -> None:
    result = run_cli("queue", args[0], name, *args[1:])
    assert result.exit_code == 1
    assert_one_error_line(result, "Queue not found", name)


@pytest.mark.parametrize(
    "args", [("queue", "list"), ("queue", "send", "q", "{}", "--create"), ("demo",)]
)
def test_bad_url_scheme(run_cli: RunCli, args: tuple[str, ...]) -> None:
    result = run_cli(*args, env={"BRIDGE_QUEUE_DEFAULT": "postgress://x"})
    assert result.exit_code == 1
    assert_one_error_line(result, "postgress", "postgresql")


def test_unreachable_database(run_cli: RunCli) -> None:
    result = run_cli("queue", "list", env={"BRIDGE_QUEUE_DEFAULT": UNREACHABLE_URL})
    assert result.exit_code == 1
    assert_one_error_line(result, "127.0.0.1")


def test_unknown_import(run_cli: RunCli) -> None:
    result = run_cli("--import", "no_such_module_here", "queue", "list")
    assert_one_error_line(result, "no_such_module_here")


def test_bad_bridge_imports(run_cli: RunCli) -> None:
    result = run_cli("queue", "list", env={"BRIDGE_IMPORTS": "no_such_module_either"})
    assert_one_error_line(result, "no_such_module_either")


# --- the real console script --------------------------------------------------


def bridge_command() -> list[str]:
    """The installed ``bridge`` script next to this Python, else ``python -m bridge.cli``."""
    script = Path(sys.executable).with_name("bridge")
    return [str(script)] if script.exists() else [sys.executable, "-m", "bridge.cli"]


def run_script(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    clean["CELERY_CONFIG_MODULE"] = "bridge_test_no_celeryconfig"
    return subprocess.run(
        [*bridge_command(), *args],
        cwd=cwd,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("url", ["postgress://x", UNREACHABLE_URL])
def test_script_reports_mistakes_without_traceback(tmp_path: Path, url: str) -> None:
    done = run_script(tmp_path, "queue", "list", BRIDGE_QUEUE_DEFAULT=url)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr + done.stdout
    assert done.stderr.startswith("Error: ")
    assert len(done.stderr.strip().splitlines()) == 1


def test_script_demo_end_to_end(tmp_path: Path) -> None:
    done = run_script(tmp_path, "demo", "--items", "20")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert "Created 20 items in the bridge_demo queue on sqlite:///bridge.sqlite" in done.stdout
    assert "Processed 20 items from the bridge_demo queue in " in done.stdout
    assert (tmp_path / "bridge.sqlite").exists()
    listing = run_script(tmp_path, "--import", "bridge.demo", "queue", "list", "--format", "json")
    assert listing.returncode == 0, listing.stderr
    rows = {row["name"]: row for row in json.loads(listing.stdout)}
    assert rows["bridge_demo"]["items"] == 0
    assert rows["bridge_demo"]["cron"] == 10
    plain = run_script(tmp_path, "queue", "list", "--format", "json")
    assert "bridge_demo" not in plain.stdout, "the demo worker leaked into a plain run"


def test_script_run_exit_status_and_one_line_per_failure(tmp_path: Path) -> None:
    """The console script: a failing item is one log line (no traceback) and exit 3."""
    (tmp_path / "failing_workers.py").write_text(
        "import bridge\n\n@bridge.queue_worker('failing')\n"
        "def work(data):\n    if data == 'bad':\n        raise ValueError('bad item')\n"
    )
    url = f"sqlite:///{tmp_path}/bridge.sqlite"
    bridge.QueueFactory(default=url).get("failing").create_items(["ok", "bad"])
    done = run_script(
        tmp_path, "--import", "failing_workers", "queue", "run", "failing", PYTHONPATH=str(tmp_path)
    )
    assert done.returncode == 3, done.stderr
    assert "Processed 1 item from the failing queue" in done.stdout
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[-1] == "Error: 1 item failed and 0 items were held in the failing queue"
    assert any("ValueError: bad item" in line for line in lines[:-1]), done.stderr
