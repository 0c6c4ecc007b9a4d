"""The Gearman backend: what a user of gearmand notices beyond the contract suite.

The contract suite runs on the shared gearmand through conftest's
``gearman`` kind; this file checks what only Gearman shows: a killed
claimer's job back at once, the refusals of what Gearman cannot do,
priorities as functions and gearmand's levels, jobs from other Gearman
producers, URLs, payloads, and a server that dies under a call (a private
gearmand on a port of its own, started and killed here).
"""

from __future__ import annotations

import multiprocessing
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from test_multiprocess import assert_exactly_once, forked_child, run_children, spawned_child

import bridge
from bridge.backends import gearman as gearman_module
from bridge.backends import gearman_wire as wire
from bridge.backends.gearman_jobs import function_for, queue_function

from children import claim_in_a_process_and_kill_it
from conftest import GEARMAN_URL, REQUIRE_SERVICES

pytestmark = pytest.mark.service("gearman")

Connect = Callable[[str], bridge.Queue]


@pytest.fixture
def connect() -> Iterator[Connect]:
    """``connect(name)``: the queue on a backend object of its own, as another process has."""
    factories: list[bridge.QueueFactory] = []
    names: set[str] = set()

    def make(name: str) -> bridge.Queue:
        factory = bridge.QueueFactory(default={"url": GEARMAN_URL})
        factories.append(factory)
        names.add(name)
        return factory.get(name)

    yield make
    for factory in factories:
        factory.close()
    cleaner = bridge.QueueFactory(default={"url": GEARMAN_URL})
    for name in names:
        cleaner.get(name).delete_queue()
    cleaner.close()


def unique() -> str:
    return f"gm_{uuid.uuid4().hex[:10]}"


def admin(command: str) -> list[str]:
    connection = wire.Connection("127.0.0.1", _port(GEARMAN_URL), 2, 5)
    try:
        return connection.admin(command)
    finally:
        connection.close()


def _port(url: str) -> int:
    return int(url.rpartition(":")[2].rstrip("/"))


def test_a_killed_claimer_s_job_is_claimable_at_once(connect: Connect) -> None:
    """No lease to wait for: gearmand requeues the job when the claimer's socket closes."""
    name = unique()
    queue = connect(name)
    item_id = queue.create_item({"n": 1})
    claimed = claim_in_a_process_and_kill_it({"url": GEARMAN_URL}, name, 3600)
    assert claimed == item_id
    deadline = time.monotonic() + 10
    again = None
    while again is None and time.monotonic() < deadline:
        again = queue.claim_item(lease_time=60)
    assert again is not None, "the dead claimer's job came back"
    assert (again.item_id, again.data) == (item_id, {"n": 1})
    assert queue.delete_item(again)
    assert queue.number_of_items() == 0


def test_a_release_is_seen_by_another_process_at_once(connect: Connect) -> None:
    """release_item returns once gearmand has requeued the job, with the same handle."""
    name = unique()
    mine, theirs = connect(name), connect(name)
    for n in range(20):
        item_id = mine.create_item(n)
        item = mine.claim_item(lease_time=60)
        assert item is not None
        assert mine.release_item(item)
        assert mine.release_item(item) is False, "a release ends the claim"
        other = theirs.claim_item(lease_time=60)
        assert other is not None, f"round {n}: the released job was not back yet"
        assert other.item_id == item_id
        assert theirs.delete_item(other)


def test_spawned_processes_claim_every_item_exactly_once(connect: Connect) -> None:
    """Four processes of their own, each claim on a connection of its own: no item twice."""
    name = unique()
    queue = connect(name)
    ids = queue.create_items([{"n": n} for n in range(300)])
    reports = run_children(
        multiprocessing.get_context("spawn"),
        spawned_child,
        [({"url": GEARMAN_URL}, name, child) for child in range(4)],
    )
    assert_exactly_once(reports, ids)
    assert queue.number_of_items() == 0


def test_forked_children_open_connections_of_their_own(connect: Connect) -> None:
    queue = connect(unique())
    ids = queue.create_items([{"n": n} for n in range(200)])
    warm = queue.claim_items(5, lease_time=300)
    assert all([queue.release_item(item) for item in warm])
    reports = run_children(
        multiprocessing.get_context("fork"),
        forked_child,
        [(queue, child) for child in range(3)],
    )
    assert_exactly_once(reports, ids)
    assert queue.number_of_items() == 0, "the parent still works after the fork"


def test_a_killed_runner_s_item_runs_again_at_once(connect: Connect, tmp_path: Any) -> None:
    """process_queue (max_attempts=None: Gearman cannot hold) killed mid-item: run once more."""
    name = unique()
    queue = connect(name)
    queue.create_item("hang")
    script = tmp_path / "worker.py"
    script.write_text(RUNNER)
    proc = subprocess.Popen(
        [sys.executable, str(script), GEARMAN_URL, name, str(tmp_path / "started")],
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "started").exists():
            assert proc.poll() is None, proc.communicate()[1].decode()
            assert time.monotonic() < deadline, "the worker never started the item"
            time.sleep(0.02)
        proc.kill()
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    seen: list[str] = []
    factory = bridge.QueueFactory(default={"url": GEARMAN_URL})
    try:

        @bridge.queue_worker(name, max_attempts=None)
        def work(data: str) -> None:
            seen.append(data)

        summary = bridge.process_queue(name, lease_time=60, factory=factory)
    finally:
        factory.close()
    assert seen == ["hang"], "back at once, well before its 3600 s lease"
    assert (summary.processed, summary.failed) == (1, 0)
    assert queue.number_of_items() == 0


RUNNER = """
import pathlib, sys, time
import bridge

url, name, marker = sys.argv[1:]


@bridge.queue_worker(name, max_attempts=None)
def work(data):
    pathlib.Path(marker).write_text(data)
    time.sleep(600)


bridge.process_queue(name, lease_time=3600, factory=bridge.QueueFactory(default=url))
"""


def test_only_the_claiming_object_settles(connect: Connect) -> None:
    name = unique()
    mine, theirs = connect(name), connect(name)
    mine.create_item("x")
    item = mine.claim_item(lease_time=60)
    assert item is not None
    with pytest.raises(bridge.UnsupportedOperationError, match="grabbed a Gearman job"):
        theirs.delete_item(item)
    assert mine.delete_item(item)


@pytest.mark.parametrize(
    ("call", "operation"),
    [
        (lambda q, item: q.create_item("x", delay=5), "delay"),
        (lambda q, item: q.delay_item(item, 5), "delay_item"),
        (lambda q, item: q.fail_item(item, "boom", delay=5), "delay"),
        (lambda q, item: q.hold_item(item, "bad"), "hold_item"),
        (lambda q, item: q.held_items(), "held_items"),
        (lambda q, item: q.kick(), "kick"),
        (lambda q, item: q.kick_item(item.item_id), "kick_item"),
        (lambda q, item: q.delete_held(), "delete_held"),
        (lambda q, item: q.browse(), "browse"),
        (lambda q, item: q.find_item(item.item_id), "find_item"),
        (lambda q, item: q.remove_item(item.item_id), "remove_item"),
    ],
)
def test_what_gearman_cannot_do_is_refused_by_name(
    connect: Connect, call: Callable[[bridge.Queue, Any], Any], operation: str
) -> None:
    queue = connect(unique())
    queue.create_item("kept")
    item = queue.claim_item(lease_time=60)
    assert item is not None
    with pytest.raises(bridge.UnsupportedOperationError) as refused:
        call(queue, item)
    assert operation in str(refused.value)
    assert "gearman://" in str(refused.value)
    assert queue.delete_item(item), "the refusal changed nothing"


def test_the_backend_refuses_delays_too(connect: Connect) -> None:
    """Called directly (as settle() does), the backend names what it cannot do."""
    queue = connect(unique())
    queue.create_item("x")
    item = queue.claim_item(lease_time=60)
    assert item is not None
    with pytest.raises(bridge.UnsupportedOperationError, match=r"delay_item.*no delayed"):
        queue.backend.delay_item(queue.name, item, 5.0)
    with pytest.raises(bridge.UnsupportedOperationError, match="delay"):
        queue.backend.create_items(queue.name, [b'"x"'], 5.0, 0)


def test_capabilities_say_what_gearman_lacks(connect: Connect) -> None:
    caps = connect(unique()).capabilities
    assert (caps.lease, caps.crash_recovery, caps.settle_anywhere) == (
        "emulated",
        "disconnect",
        False,
    )
    assert [caps.delay, caps.hold, caps.browse, caps.remove_item] == [False] * 4
    assert not caps.settle_after_release


def levels(function: bytes) -> list[str]:
    """gearmand's high, normal and low counts of a function (admin ``prioritystatus``)."""
    for line in admin("prioritystatus"):
        fields = line.split("\t")
        if fields[0] == function.decode():
            return fields[1:4]
    return []


def test_priorities_are_functions_claimed_highest_first(connect: Connect) -> None:
    name = unique()
    queue = connect(name)
    for data, priority in [("zero", 0), ("minus", -2), ("top", 2**31 - 1), ("seven", 7)]:
        queue.create_item(data, priority=priority)
    assert levels(function_for(name, 7)) == ["0", "1", "0"], "new jobs: gearmand's normal level"
    claimed = queue.claim_items(4, lease_time=60)
    assert [(i.data, i.priority) for i in claimed] == [
        ("top", 2**31 - 1),
        ("seven", 7),
        ("zero", 0),
        ("minus", -2),
    ]
    assert queue.delete_items(claimed) == 4


def test_a_release_copies_the_job_ahead_of_newer_ones(connect: Connect) -> None:
    """The copy goes in at gearmand's high level with the attempts so far; the original goes."""
    name = unique()
    queue, other = connect(name), connect(name)
    first = queue.create_item("first")
    item = queue.claim_item(lease_time=60)
    assert item is not None
    queue.create_item("newer")
    assert queue.release_item(item)
    assert levels(queue_function(name)) == ["1", "1", "0"]
    assert queue.counts() == bridge.ItemCounts(ready=2, leased=0, delayed=0)
    again = other.claim_item(lease_time=60)
    assert again is not None
    assert (again.item_id, again.data, again.attempts) == (first, "first", 2)
    assert again.created == item.created


def test_another_producer_s_job_is_claimed_as_it_is(connect: Connect) -> None:
    """A job submitted by any Gearman client to the queue's function is an item."""
    name = unique()
    queue = connect(name)
    client = wire.Connection("127.0.0.1", _port(GEARMAN_URL), 2, 5)
    try:
        client.send(wire.packet(wire.SUBMIT_JOB_BG, queue_function(name), b"", b'{"php": true}'))
        handle = client.expect(wire.JOB_CREATED)[0].decode()
    finally:
        client.close()
    before = time.time()
    item = queue.claim_item(lease_time=60)
    assert item is not None
    assert (item.item_id, item.data, item.priority) == (handle, {"php": True}, 0)
    assert item.created >= before - 1, "no creation time in the job: the claim's"
    assert queue.release_item(item)
    again = queue.claim_item(lease_time=60)
    assert again is not None
    assert (again.item_id, again.attempts) == (handle, 2), "the copy keeps the handle as its id"
    assert queue.delete_item(again)


@pytest.mark.parametrize("name", ["with space", "per%cent~tilde", "é" * 120, "x" * 255])
def test_any_queue_name_round_trips(connect: Connect, name: str) -> None:
    queue = connect(name + uuid.uuid4().hex[:6] if len(name) < 240 else name)
    queue.create_item("a", priority=3)
    queue.create_item("b")
    assert queue.counts().ready == 2
    listed = queue.backend.queue_names()
    if len(queue_function(queue.name)) < 480:
        assert listed.get(queue.name) == 2
    assert [i.data for i in queue.claim_items(2, lease_time=60)] == ["a", "b"]


def test_peek_shows_and_keeps_the_order(connect: Connect, monkeypatch: pytest.MonkeyPatch) -> None:
    queue = connect(unique())
    queue.create_items(["a", "b", "c"])
    assert [i.data for i in queue.peek(2)] == ["a", "b"]
    assert [i.data for i in queue.claim_items(3, lease_time=60)] == ["a", "b", "c"]
    queue.release_all()
    monkeypatch.setattr(gearman_module, "PEEK_MOST", 2)
    with pytest.raises(bridge.UnsupportedOperationError, match=r"peek.*more than 2"):
        queue.peek(1)
    assert queue.counts().ready == 3


def test_an_unencodable_payload_writes_nothing(connect: Connect) -> None:
    queue = connect(unique())
    with pytest.raises(bridge.PayloadError):
        queue.create_items(["fine", {1, 2}])
    assert queue.number_of_items() == 0


@pytest.mark.parametrize(
    "url",
    [
        "gearman://",
        "gearman://host:notaport",
        "gearman://host:4730/a/path",
        "gearman://host:4730?x=1",
    ],
)
def test_bad_urls_are_configuration_errors(url: str) -> None:
    with pytest.raises(bridge.ConfigurationError, match="gearman://"):
        bridge.QueueFactory(default=url).get("q").counts()


def test_no_server_is_backend_unavailable() -> None:
    factory = bridge.QueueFactory(default=f"gearman://127.0.0.1:{_free_port()}")
    with pytest.raises(bridge.BackendUnavailableError, match="cannot connect"):
        factory.get("q").create_item("x")
    factory.close()


@pytest.fixture
def private_gearmand(tmp_path: Any) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A gearmand of the test's own on a free port: its URL and process."""
    binary = shutil.which("gearmand") or shutil.which("gearmand", path="/usr/sbin")
    if binary is None:
        if REQUIRE_SERVICES:
            pytest.fail("gearmand is not installed (BRIDGE_REQUIRE_SERVICES=1)")
        pytest.skip("gearmand is not installed")
    port = _free_port()
    server = subprocess.Popen(
        [binary, "--listen=127.0.0.1", f"--port={port}", f"--log-file={tmp_path}/gearmand.log"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                server.kill()
                pytest.fail("the private gearmand did not start")
            time.sleep(0.05)
    yield f"gearman://127.0.0.1:{port}", server
    if server.poll() is None:
        server.kill()
    server.wait()


def test_a_server_dying_mid_call_is_backend_unavailable(
    private_gearmand: tuple[str, subprocess.Popen[bytes]],
) -> None:
    url, server = private_gearmand
    factory = bridge.QueueFactory(default=url)
    queue = factory.get("doomed")
    queue.create_items(["a", "b"])
    item = queue.claim_item(lease_time=60)
    assert item is not None
    server.kill()
    server.wait()
    for call in (
        lambda: queue.counts(),
        lambda: queue.create_item("c"),
        lambda: queue.claim_item(lease_time=60),
        lambda: queue.delete_item(item),
    ):
        with pytest.raises(bridge.BackendUnavailableError, match=url):
            call()
    factory.close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port
