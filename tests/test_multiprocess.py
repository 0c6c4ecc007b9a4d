"""Several OS processes on one queue: every item claimed exactly once.

The children are real processes with their own connections (spawn), or
forks of a parent whose connection pool is already in use (fork): the case
of a Celery prefork worker that touched its queue before forking.
"""

from __future__ import annotations

import multiprocessing
import queue as queue_module
import time
import traceback
import uuid
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import Any

import pytest

import bridge

from conftest import SHARED_BACKENDS, spec_for

LEASE = 300.0
"""Far longer than the test: a lease running out would hand an item out twice."""
WAIT = 60.0
"""How long the children may take, all together; a hung child fails the test."""

Report = tuple[int, list[Any], str | None]


def drain(queue: bridge.Queue, child: int) -> list[Any]:
    """Claim and delete until nothing is left, mixing single and bulk calls."""
    claimed: list[Any] = []
    empty_in_a_row = 0
    turn = child
    while empty_in_a_row < 3:
        turn += 1
        if turn % 2:
            batch = queue.claim_items(10, lease_time=LEASE)
        else:
            item = queue.claim_item(lease_time=LEASE)
            batch = [item] if item is not None else []
        if not batch:
            # Rows another process is claiming right now are skipped, not
            # waited for; look again before deciding the queue is empty.
            empty_in_a_row += 1
            time.sleep(0.05)
            continue
        empty_in_a_row = 0
        # An item takes a moment of work, as a real one would; without it one
        # child can empty a SQLite queue before the others' turn at the lock.
        time.sleep(0.001)
        claimed.extend(item.item_id for item in batch)
        deleted = int(queue.delete_item(batch[0])) if len(batch) == 1 else queue.delete_items(batch)
        if deleted != len(batch):
            raise AssertionError(f"deleted {deleted} of {len(batch)} items this child held")
    return claimed


def spawned_child(spec: dict[str, Any], name: str, child: int, start: Any, results: Any) -> None:
    claimed: list[Any] = []
    try:
        factory = bridge.QueueFactory(default=spec)
        queue = factory.get(name)
        queue.number_of_items()  # connect before the start line, not after
        start.wait(WAIT)
        claimed = drain(queue, child)
        factory.close()
        results.put((child, claimed, None))
    except BaseException:
        results.put((child, claimed, traceback.format_exc()))


def forked_child(queue: bridge.Queue, child: int, start: Any, results: Any) -> None:
    claimed: list[Any] = []
    try:
        start.wait(WAIT)
        claimed = drain(queue, child)
        results.put((child, claimed, None))
    except BaseException:
        results.put((child, claimed, traceback.format_exc()))


def run_children(ctx: BaseContext, target: Any, args: list[tuple[Any, ...]]) -> list[Report]:
    """Start one process per args tuple, together; their reports, checked for errors."""
    results = ctx.Queue()
    start = ctx.Barrier(len(args))
    processes = [
        ctx.Process(target=target, args=(*child_args, start, results))  # type: ignore[attr-defined]
        for child_args in args
    ]
    for process in processes:
        process.start()
    deadline = time.monotonic() + WAIT
    reports: list[Report] = []
    try:
        for _ in processes:
            reports.append(results.get(timeout=max(0.1, deadline - time.monotonic())))
    except queue_module.Empty:
        missing = len(processes) - len(reports)
        pytest.fail(f"{missing} of {len(processes)} children did not report within {WAIT} s")
    finally:
        for process in processes:
            process.join(timeout=max(0.1, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join()
    errors = [f"child {child}:\n{error}" for child, _, error in reports if error]
    assert not errors, "\n".join(errors)
    assert [process.exitcode for process in processes] == [0] * len(processes)
    return reports


def assert_exactly_once(reports: list[Report], ids: list[Any]) -> None:
    claimed = [item_id for _, child_ids, _ in reports for item_id in child_ids]
    assert len(claimed) == len(set(claimed)), "an item was claimed twice"
    assert sorted(claimed) == sorted(ids), "an item was lost"
    busy = [len(child_ids) for _, child_ids, _ in reports]
    assert sum(1 for count in busy if count) >= 2, f"no real contention: {busy}"


@pytest.mark.parametrize("kind", SHARED_BACKENDS)
def test_spawned_processes_claim_every_item_exactly_once(kind: str, tmp_path: Path) -> None:
    spec = spec_for(kind, tmp_path)
    name = f"mp_{uuid.uuid4().hex[:12]}"
    factory = bridge.QueueFactory(default=spec)
    queue = factory.get(name)
    try:
        ids = []
        for start in range(0, 600, 100):
            ids += queue.create_items([{"n": n} for n in range(start, start + 100)])
        reports = run_children(
            multiprocessing.get_context("spawn"),
            spawned_child,
            [(spec, name, child) for child in range(4)],
        )
        assert_exactly_once(reports, ids)
        assert queue.number_of_items() == 0
    finally:
        queue.delete_queue()
        factory.close()


@pytest.mark.parametrize("kind", SHARED_BACKENDS)
def test_forked_children_share_the_parents_queue(kind: str, tmp_path: Path) -> None:
    factory = bridge.QueueFactory(default=spec_for(kind, tmp_path))
    queue = factory.get(f"fork_{uuid.uuid4().hex[:12]}")
    try:
        # The parent's pool now holds live connections the children inherit.
        ids = queue.create_items([{"n": n} for n in range(300)])
        warm = queue.claim_items(5, lease_time=LEASE)
        assert all([queue.release_item(item) for item in warm])
        assert queue.number_of_items() == 300

        reports = run_children(
            multiprocessing.get_context("fork"),
            forked_child,
            [(queue, child) for child in range(3)],
        )
        assert_exactly_once(reports, ids)

        assert queue.number_of_items() == 0, "the parent still works after the fork"
        queue.create_item("after the fork")
        item = queue.claim_item(lease_time=30)
        assert item is not None
        assert item.data == "after the fork"
        assert queue.delete_item(item)
    finally:
        queue.delete_queue()
        factory.close()
