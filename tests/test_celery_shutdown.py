"""Warm shutdown: SIGTERM mid-pass stops claiming at once and loses no time on any item.

The runner's ``should_stop`` hook is pinned down in process first; then a
real ``celery -A bridge worker --beat`` gets SIGTERM a few seconds into a
20 s pass, as Docker, systemd or Kubernetes would send it. Measured from
the signal: when the pass returned (bridge's part), when the process
exited (Celery's teardown added), what started after the signal, and
whether every item not processed is claimable at once, not after its lease.
"""

from __future__ import annotations

import json
import re
import signal
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

import bridge
from bridge.runner import process_queue, run_cron

from celery_processes import Processes
from conftest import AMQP_URL

ITEM_SECONDS = 0.2
BUDGET = 20
PASS_ENDS_WITHIN = 2.0
"""Seconds from SIGTERM to the pass's summary, on top of the item in hand (the issue's bound)."""
CELERY_TEARDOWN = 10.0
"""Celery's own warm shutdown once no task runs (consumer, pool join, interpreter exit):
measured idle at 2 s (Redis) to 3.7 s (RabbitMQ) on a loaded 2-core machine; bounded
loosely here, since bridge cannot shorten it."""


# --- the runner's hook, in process ---------------------------------------------


def test_should_stop_ends_a_pass_before_its_next_claim(empty_registry: None) -> None:
    factory = bridge.QueueFactory(default="memory://")
    seen: list[int] = []
    bridge.queue_worker("jobs", cron_time=30)(seen.append)
    factory.get("jobs").create_items(list(range(10)))
    summary = process_queue("jobs", factory=factory, should_stop=lambda: len(seen) >= 3)
    assert (summary.processed, summary.stopped_by) == (3, "shutdown")
    assert factory.get("jobs").number_of_items() == 7
    assert process_queue("jobs", factory=factory, should_stop=lambda: True).processed == 0


def test_should_stop_ends_run_cron_and_its_revisit_waits(empty_registry: None) -> None:
    factory = bridge.QueueFactory(default="memory://")
    stop = {"now": False}

    def suspends(data: Any) -> None:
        stop["now"] = True  # as if SIGTERM came while this item ran
        raise bridge.SuspendQueue("later", delay=25)

    bridge.queue_worker("first", cron_time=5)(suspends)
    bridge.queue_worker("second", cron_time=5)(lambda data: None)
    factory.get("first").create_items([1])
    factory.get("second").create_items([1])
    started = time.monotonic()
    summaries = run_cron(factory=factory, should_stop=lambda: stop["now"])
    assert time.monotonic() - started < 2, "the shutdown waited out the revisit"
    assert [(s.queue, s.stopped_by) for s in summaries] == [("first", "suspended")]
    assert factory.get("second").number_of_items() == 1


# --- real processes --------------------------------------------------------------


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    made = Processes(tmp_path, f"sq_{uuid.uuid4().hex[:10]}")
    try:
        yield made
    finally:
        made.stop_all()


def _log_time(line: str) -> float:
    stamp = re.match(r"\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})", line)
    assert stamp, line
    return datetime.strptime(stamp[1], "%Y-%m-%d %H:%M:%S,%f").timestamp()


def _claim_all(queue: bridge.Queue) -> list[bridge.QueueItem]:
    claimed = []
    while (item := queue.claim_item(lease_time=60)) is not None:
        claimed.append(item)
    return claimed


def _sigterm_mid_pass(procs: Processes, queue: bridge.Queue, items: int) -> dict[str, float]:
    """Start a worker with beat, SIGTERM it 3 s into the pass; the measured timings."""
    procs.env.update(
        TEST_CRON_TIME=str(BUDGET),
        TEST_ITEM_SECONDS=str(ITEM_SECONDS),
        BRIDGE_SCHEDULES=json.dumps({procs.queue: {"every": 2}}),
    )
    queue.create_items([f"i{n}" for n in range(items)])
    worker = procs.worker("--beat", "--concurrency", "1")
    procs.wait_for("the pass to start", lambda: procs.records(), timeout=60)
    first = procs.records()[0].at
    time.sleep(max(0.0, first + 3 - time.time()))
    sent = time.time()
    worker.send_signal(signal.SIGTERM)
    worker.wait(timeout=60)
    exited = time.time()
    log = procs.log()
    (ended,) = [
        line
        for line in log.splitlines()
        if "stopped by shutdown" in line and f" {procs.queue} queue" in line
    ][:1] or [""]
    assert ended, f"no pass stopped by the shutdown:\n{procs.logs()}"
    beat_sends = [_log_time(line) for line in log.splitlines() if "Sending due task" in line]
    return {
        "pass_returned": round(_log_time(ended) - sent, 2),
        "worker_exited": round(exited - sent, 2),
        "exit_code": float(worker.returncode),
        "started_after": float(sum(r.at > sent for r in procs.records())),
        "beat_sends_after": float(sum(at > sent for at in beat_sends)),
    }


BROKERS = [
    pytest.param("embedded", id="filesystem"),
    pytest.param("rabbitmq", id="rabbitmq", marks=pytest.mark.service("rabbitmq")),
]


@pytest.mark.parametrize("broker", BROKERS)
def test_sigterm_mid_pass_stops_claiming_and_leaves_every_item_claimable(
    procs: Processes, broker: str, capsys: pytest.CaptureFixture[str]
) -> None:
    if broker == "rabbitmq":
        procs.env.update(
            BRIDGE_BROKER_URL=AMQP_URL, BRIDGE_CELERY_QUEUE=f"bridge_test_{uuid.uuid4().hex[:10]}"
        )
    queue = bridge.QueueFactory(default=f"sqlite:///{procs.tmp_path}/bridge.sqlite").get(
        procs.queue
    )
    items = 400
    try:
        timings = _sigterm_mid_pass(procs, queue, items)
    finally:
        if broker == "rabbitmq":
            _delete_amqp_queue(procs.env["BRIDGE_CELERY_QUEUE"])
    with capsys.disabled():
        print(f"\nSIGTERM mid-pass ({broker} broker, {ITEM_SECONDS} s items): {timings}")
    assert timings["exit_code"] == 0
    assert timings["pass_returned"] <= PASS_ENDS_WITHIN + ITEM_SECONDS, timings
    assert timings["worker_exited"] <= PASS_ENDS_WITHIN + ITEM_SECONDS + CELERY_TEARDOWN, timings
    assert timings["started_after"] == 0, "an item was claimed after SIGTERM"
    assert timings["beat_sends_after"] == 0, "beat sent a tick after SIGTERM"
    done = len(procs.records())
    left = _claim_all(queue)
    assert len(left) == items - done, "an item is leased by the stopped worker"
    assert {item.attempts for item in left} == {1}


def test_an_item_outlasting_the_grace_is_released_at_once(
    procs: Processes, capsys: pytest.CaptureFixture[str]
) -> None:
    """A worker function stuck for 600 s: interrupted one grace period after SIGTERM."""
    procs.env.update(
        TEST_CRON_TIME="30",
        BRIDGE_SHUTDOWN_GRACE="1",
        BRIDGE_SCHEDULES=json.dumps({procs.queue: {"every": 1}}),
    )
    queue = bridge.QueueFactory(default=f"sqlite:///{procs.tmp_path}/bridge.sqlite").get(
        procs.queue
    )
    queue.create_items(["hang", "never"])
    worker = procs.worker("--beat", "--concurrency", "1")
    procs.wait_for(
        "the worker to start the stuck item", lambda: "hang" in procs.starts(), timeout=60
    )
    sent = time.time()
    worker.send_signal(signal.SIGTERM)
    worker.wait(timeout=60)
    exited = time.time() - sent
    assert worker.returncode == 0
    assert exited <= 1 + PASS_ENDS_WITHIN + CELERY_TEARDOWN, exited
    log = procs.log()
    (interrupted,) = [
        line
        for line in log.splitlines()
        if "Warm shutdown: interrupting bridge.process_queue:" in line
    ][:1] or [""]
    assert interrupted, procs.logs()
    with capsys.disabled():
        print(
            f"\nSIGTERM with a 600 s item in hand: interrupted and released after "
            f"{_log_time(interrupted) - sent:.2f} s, worker exited after {exited:.2f} s"
        )
    assert "'stopped_by': 'shutdown'" in log, procs.logs()
    left = _claim_all(queue)
    assert sorted((item.data, item.attempts) for item in left) == [("hang", 2), ("never", 1)]
    assert procs.starts() == {"hang": 1}


def _delete_amqp_queue(name: str) -> None:
    import kombu

    with kombu.Connection(AMQP_URL) as conn:  # type: ignore[attr-defined]
        conn.default_channel.queue_delete(name)
