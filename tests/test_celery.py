"""``celery -A bridge worker --beat`` for real: subprocesses, real brokers, real kills.

Each test writes a worker module into tmp_path (see ``celery_processes``),
starts Celery with tmp_path as its working directory and feeds the queue
from this process. The worker records every start on an item, so "exactly
once" is checked on what the worker did, not on what the queue says.
Timings: cron queues tick every second, and each wait is bounded.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

import bridge
from bridge.celery.config import environment_config, prepare_folders
from bridge.celery.schedules import runner_lease, runner_limits

from celery_processes import Processes
from conftest import AMQP_URL, REDIS_URL, spec_for


@pytest.fixture
def queue_name() -> str:
    return f"cq_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def procs(tmp_path: Path, queue_name: str) -> Iterator[Processes]:
    made = Processes(tmp_path, queue_name)
    try:
        yield made
    finally:
        made.stop_all()


def _use_queue(procs: Processes, kind: str) -> bridge.Queue:
    """Serve the test queue from ``kind``; SQLite means the default, ./bridge.sqlite."""
    if kind == "sqlite":
        spec: Any = {"url": f"sqlite:///{procs.tmp_path}/bridge.sqlite"}
    else:
        spec = spec_for(kind, procs.tmp_path)
        procs.env["BRIDGE_QUEUES"] = json.dumps({procs.queue: spec})
    return bridge.QueueFactory(default=spec).get(procs.queue)


def _drained(procs: Processes, queue: bridge.Queue, expected: set[str]) -> bool:
    return set(procs.starts()) >= expected and queue.number_of_items() == 0


def _assert_exactly_once(procs: Processes, expected: set[str]) -> None:
    starts = procs.starts()
    assert set(starts) == expected
    repeated = {data: count for data, count in starts.items() if count != 1}
    assert not repeated, f"items started more than once: {repeated}"


def _cleanup_broker(broker: str, celery_queue: str) -> None:
    if broker == "redis":
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        for key in client.scan_iter(match=f"*{celery_queue}*"):
            client.delete(key)
    elif broker == "rabbitmq":
        import kombu

        with kombu.Connection(AMQP_URL) as conn:  # type: ignore[attr-defined]
            conn.default_channel.queue_delete(celery_queue)


BROKERS = [
    pytest.param("embedded", "sqlite", id="filesystem-sqlite"),
    pytest.param(
        "redis",
        "postgres",
        id="redis-postgres",
        marks=[pytest.mark.service("redis"), pytest.mark.service("postgres")],
    ),
    pytest.param(
        "rabbitmq",
        "postgres",
        id="rabbitmq-postgres",
        marks=[pytest.mark.service("rabbitmq"), pytest.mark.service("postgres")],
    ),
]


@pytest.mark.parametrize(("broker", "store"), BROKERS)
def test_worker_with_beat_drains_a_cron_queue_fed_from_another_process(
    procs: Processes, broker: str, store: str
) -> None:
    queue = _use_queue(procs, store)
    celery_queue = f"bridge_test_{uuid.uuid4().hex[:10]}"
    if broker != "embedded":
        # Only the broker changes; a queue of its own keeps runs apart on a shared server.
        procs.env["BRIDGE_BROKER_URL"] = REDIS_URL if broker == "redis" else AMQP_URL
        procs.env["BRIDGE_CELERY_QUEUE"] = celery_queue
    try:
        procs.worker("--beat", "--concurrency", "2")
        expected: set[str] = set()
        for batch in range(3):
            items = [f"b{batch}-{n}" for n in range(10)]
            queue.create_items(items)
            expected |= set(items)
            procs.wait_for(
                f"batch {batch} to be drained",
                functools.partial(_drained, procs, queue, set(expected)),
                timeout=45,
            )
        _assert_exactly_once(procs, expected)
        if broker == "embedded":
            assert (procs.tmp_path / "var" / "celery" / "data").is_dir()
            assert not list((procs.tmp_path / "var" / "celery" / "processed").iterdir())
    finally:
        procs.stop_all()
        queue.delete_queue()
        _cleanup_broker(broker, celery_queue)


def test_a_worker_killed_mid_item_loses_nothing(procs: Processes) -> None:
    queue = _use_queue(procs, "sqlite")
    procs.env["TEST_CRON_TIME"] = "2"
    _, hard = runner_limits(2.0)
    lease = runner_lease(2.0, hard)
    queue.create_items(["done", "hang"])
    worker = procs.worker("--beat", "--concurrency", "1")
    procs.wait_for(
        "the worker to start the hanging item", lambda: "hang" in procs.starts(), timeout=30
    )
    started = next(r.at for r in procs.records() if r.data == "hang")
    procs.kill(worker)

    # "done" was deleted; "hang" is still there, held by the dead worker's lease,
    # which outlives the hard time limit that would have killed it.
    assert queue.number_of_items() == 1
    (held,) = queue.peek()
    assert held.data == "hang"
    assert held.expire - started >= lease - 0.5 > hard
    assert queue.claim_item(lease_time=5) is None

    claimed: list[bridge.QueueItem | None] = []

    def claim() -> bridge.QueueItem | None:
        claimed.append(queue.claim_item(5))
        return claimed[-1]

    procs.wait_for("the lease to end", claim, timeout=lease + 10)
    item = claimed[-1]
    assert item is not None
    assert (item.data, item.attempts) == ("hang", 2)
    assert queue.delete_item(item)
    assert procs.starts() == {"done": 1, "hang": 1}


def test_the_soft_time_limit_releases_the_item_in_flight(procs: Processes) -> None:
    """Sent with a 30 s hard limit, so the item's lease is longer still: coming back
    within seconds means it was released, not left to its lease."""
    queue = _use_queue(procs, "sqlite")
    queue.create_items(["hang", "never"])
    procs.worker("--concurrency", "1")
    conf = environment_config({**procs.env, "BRIDGE_VAR_DIR": str(procs.tmp_path / "var")})
    client = Celery("test-client", set_as_current=False)
    client.config_from_object(conf)
    prepare_folders(conf)
    sent = client.send_task(
        "bridge.process_queue", args=[procs.queue], soft_time_limit=2, time_limit=30
    )
    result = sent.get(timeout=30)

    assert result["stopped_by"] == "soft_time_limit"
    assert (result["processed"], result["failed"], result["remaining"]) == (0, 0, 2)
    item = queue.claim_item(lease_time=5)
    assert item is not None, "the interrupted item is still leased"
    assert (item.data, item.attempts) == ("hang", 2)
    assert procs.starts() == {"hang": 1}, "nothing is claimed after the soft limit"
    (first,) = procs.records()
    assert first.expire - first.at >= 30, "the lease must outlive the 30 s hard limit"


def test_two_beats_run_every_item_exactly_once(procs: Processes) -> None:
    queue = _use_queue(procs, "sqlite")
    procs.env["TEST_ITEM_SECONDS"] = "0.01"
    for n in (1, 2):
        procs.worker(
            "--beat",
            "--concurrency",
            "1",
            "--hostname",
            f"w{n}@%h",
            "--schedule",
            str(procs.tmp_path / f"beat-{n}"),
            name=f"worker{n}",
        )
    expected: set[str] = set()
    for batch in range(4):
        items = [f"b{batch}-{n}" for n in range(15)]
        queue.create_items(items)
        expected |= set(items)
        procs.wait_for(
            f"batch {batch} to be drained",
            functools.partial(_drained, procs, queue, set(expected)),
            timeout=45,
        )
    _assert_exactly_once(procs, expected)
    for n in (1, 2):
        log = (procs.tmp_path / f"worker{n}.log").read_text()
        assert "Sending due task bridge.process_queue:" in log, f"beat {n} never ticked"


@pytest.mark.service("postgres")
# Alone: its passes have a 1 s cron time, and on two busy cores their time limits
# interrupt items, which at-least-once then runs twice (seen twice under xdist).
@pytest.mark.exclusive
def test_four_prefork_processes_drain_one_postgres_queue_exactly_once(
    procs: Processes,
) -> None:
    queue = _use_queue(procs, "postgres")
    procs.env["TEST_ITEM_SECONDS"] = "0.02"
    procs.env["BRIDGE_SCHEDULES"] = json.dumps({procs.queue: {"every": 1, "concurrency": 4}})
    expected = {f"item-{n}" for n in range(200)}
    queue.create_items(sorted(expected))
    try:
        procs.worker("--beat", "--concurrency", "4", "--pool", "prefork")
        procs.wait_for(
            "the queue to be drained", lambda: _drained(procs, queue, expected), timeout=60
        )
        _assert_exactly_once(procs, expected)
        pids = {record.pid for record in procs.records()}
        assert len(pids) >= 2, "the four runners never overlapped"
    finally:
        procs.stop_all()
        queue.delete_queue()
