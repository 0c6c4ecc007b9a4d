"""What a beanstalkd user notices beyond the contract suite.

Claims belong to the connection that reserved them (fencing); a closed
connection hands its jobs back at once; a job's ttr brings it back from a
claimer that hangs with its connection open; holding is bury and kick, with
no reason, time or reset of attempts; URLs, payloads and a dead server fail
clearly.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

import bridge
from bridge.backends import beanstalk_wire as wire

from conftest import BEANSTALK_URL, REQUIRE_SERVICES, SESSION_TABLE

pytestmark = pytest.mark.service("beanstalk")

PREFIX = f"{SESSION_TABLE}."


def spec(**options: Any) -> dict[str, Any]:
    return {"url": BEANSTALK_URL, "options": {"tube_prefix": PREFIX, **options}}


@pytest.fixture
def factory() -> Iterator[bridge.QueueFactory]:
    made = bridge.QueueFactory(default=spec())
    yield made
    made.close()


@pytest.fixture
def other() -> Iterator[bridge.QueueFactory]:
    """A second factory: another beanstalkd connection, as another process has."""
    made = bridge.QueueFactory(default=spec())
    yield made
    made.close()


@pytest.fixture
def queue(factory: bridge.QueueFactory) -> Iterator[bridge.Queue]:
    made = factory.get(f"bs_{uuid.uuid4().hex[:12]}")
    yield made
    made.delete_queue()


def raw_client() -> Any:
    import greenstalk

    host, port = wire.parse_url(BEANSTALK_URL)
    return greenstalk.Client((host, port), encoding=None)


def claim_within(queue: bridge.Queue, seconds: float, lease_time: float = 30) -> bridge.QueueItem:
    deadline = time.monotonic() + seconds
    while (item := queue.claim_item(lease_time=lease_time)) is None:
        assert time.monotonic() < deadline, f"nothing claimable within {seconds} s"
        time.sleep(0.05)
    return item


def test_the_capabilities_say_what_beanstalkd_does(queue: bridge.Queue) -> None:
    caps = queue.capabilities
    assert (caps.reliable, caps.shared, caps.lease) == (True, True, "emulated")
    assert (caps.crash_recovery, caps.settle_anywhere, caps.settle_after_release) == (
        "disconnect",
        False,
        False,
    )
    assert (caps.browse, caps.remove_item, caps.cancel_delays) == (False, False, False)
    assert caps.hold, "bury and kick"
    assert (caps.held_details, caps.keeps_errors, caps.kick_resets_attempts) == (
        False,
        False,
        False,
    )
    assert caps.max_lease == 3600 - 60, "a minute short of the jobs' ttr"


# -- fencing: a claim belongs to the connection that reserved the job --------------


def test_only_the_reserving_connection_settles_a_claim(
    queue: bridge.Queue, other: bridge.QueueFactory
) -> None:
    queue.create_item("mine")
    item = queue.claim_item(lease_time=60)
    assert item is not None
    theirs = other.get(queue.name)
    for call in (theirs.delete_item, theirs.release_item, lambda i: theirs.extend_lease(i, 30)):
        with pytest.raises(bridge.UnsupportedOperationError, match="another connection"):
            call(item)
    assert theirs.claim_item(lease_time=60) is None, "still reserved here"
    assert queue.delete_item(item)
    assert theirs.number_of_items() == 0


def test_a_closed_connection_hands_its_jobs_back_at_once(
    queue: bridge.Queue, other: bridge.QueueFactory
) -> None:
    queue.create_item("x")
    claimer = bridge.QueueFactory(default=spec())
    item = claimer.get(queue.name).claim_item(lease_time=600)
    assert item is not None
    claimer.close()
    again = claim_within(other.get(queue.name), 5)
    assert (again.item_id, again.attempts) == (item.item_id, 2)
    assert other.get(queue.name).delete_item(again)


def test_the_ttr_brings_a_job_back_from_a_claimer_that_hangs(
    queue: bridge.Queue, other: bridge.QueueFactory
) -> None:
    short = bridge.QueueFactory(default=spec(ttr=2))
    try:
        hung = short.get(queue.name)
        assert hung.capabilities.max_lease == 1, "half of a short ttr is kept back"
        hung.create_item("slow")
        item = hung.claim_item(lease_time=1)
        assert item is not None
        time.sleep(2.5)
        # A call that releases nothing: beanstalkd 1.12 sometimes ends an idle
        # connection's ttr only once that connection speaks again (docs/beanstalk.md).
        hung.counts()
        again = claim_within(other.get(queue.name), 10)
        assert (again.item_id, again.attempts) == (item.item_id, 2)
        assert hung.delete_item(item) is False, "the reservation is another's now"
        assert other.get(queue.name).delete_item(again)
    finally:
        short.close()


def test_a_lease_ended_here_goes_back_at_this_object_s_next_claim(
    queue: bridge.Queue, other: bridge.QueueFactory
) -> None:
    queue.create_item("x")
    item = queue.claim_item(lease_time=0.2)
    assert item is not None
    time.sleep(0.4)
    assert queue.counts().ready == 1, "counted ready here: its lease has ended"
    assert other.get(queue.name).claim_item(lease_time=30) is None, "still reserved here"
    queue.garbage_collection()
    again = other.get(queue.name).claim_item(lease_time=30)
    assert again is not None
    assert again.attempts == 2
    assert queue.delete_item(item) is False


def test_a_fractional_delay_ends_on_time_for_the_object_that_set_it(queue: bridge.Queue) -> None:
    # beanstalkd delays whole seconds (1 s here); the object that set 0.3 s
    # kicks the job at its first claim after 0.3 s.
    queue.create_item("soon", delay=0.3)
    assert queue.claim_item(lease_time=30) is None
    time.sleep(0.35)
    item = queue.claim_item(lease_time=30)
    assert item is not None
    assert queue.delay_item(item, 0.3)
    time.sleep(0.35)
    again = queue.claim_item(lease_time=30)
    assert again is not None
    assert (again.item_id, again.attempts) == (item.item_id, 2)


# -- holding: bury and kick ---------------------------------------------------------


def test_hold_is_bury_and_kick_is_kick_job_without_reason_time_or_reset(
    queue: bridge.Queue, other: bridge.QueueFactory
) -> None:
    queue.create_items(["poison", "fine"])
    item = queue.claim_item(lease_time=60)
    assert item is not None
    assert queue.hold_item(item, reason="bad", error="ValueError: bad")
    client = raw_client()
    try:
        assert client.stats_job(item.item_id)["state"] == "buried"
    finally:
        client.close()
    assert queue.counts().held == 1
    assert queue.number_of_items() == 2
    [held] = other.get(queue.name).held_items()
    assert (held.item_id, held.data, held.attempts) == (item.item_id, "poison", 1)
    assert (held.hold_reason, held.held_at, held.last_error) == ("", None, None)
    assert queue.delete_item(item) is False, "burying ended the claim"
    assert other.get(queue.name).kick_item(item.item_id), "any connection kicks"
    assert queue.kick_item(item.item_id) is False, "no longer buried"
    again = queue.claim_items(2, lease_time=60)
    assert [i.data for i in again] == ["poison", "fine"], "back in its place"
    assert again[0].attempts == 2, "beanstalkd's reserve count is not reset by a kick"
    assert queue.backend.times_kicked(queue.name, again[0]) == 1
    assert queue.delete_items(again) == 2


def test_a_job_buried_by_another_client_is_listed_kicked_and_deleted(
    queue: bridge.Queue,
) -> None:
    ids = queue.create_items(["a", "b", "c", "d"])
    client = raw_client()
    try:
        client.watch(PREFIX + queue.name)
        client.ignore("default")
        jobs = {job.id: job for job in (client.reserve(5) for _ in ids)}
        # Buried c, a, b: beanstalkd shows c as the oldest buried; the
        # others are found by walking ids on both sides, listed by id.
        for job_id in (ids[2], ids[0], ids[1]):
            client.bury(jobs[job_id])
        client.release(jobs[ids[3]])
    finally:
        client.close()
    assert [item.data for item in queue.held_items()] == ["c", "a", "b"]
    assert [item.data for item in queue.held_items(2)] == ["c", "a"]
    assert queue.counts().held == 3
    assert queue.kick(limit=1) == 1, "the oldest buried: c"
    assert [item.data for item in queue.held_items()] == ["a", "b"]
    assert queue.delete_held(limit=1) == 1, "a, buried before b"
    assert [item.data for item in queue.held_items()] == ["b"]
    assert queue.kick_item(ids[1])
    claimed = queue.claim_items(4, lease_time=60)
    assert sorted(item.data for item in claimed) == ["b", "c", "d"]
    assert queue.counts().held == 0


def test_kick_never_wakes_delayed_jobs(queue: bridge.Queue) -> None:
    queue.create_item("later", delay=60)
    queue.create_item("now")
    item = queue.claim_item(lease_time=60)
    assert item is not None
    assert queue.hold_item(item)
    assert queue.kick() == 1
    assert queue.kick() == 0, "beanstalkd's kick would take delayed"
    assert queue.delete_held() == 0
    assert queue.counts().delayed == 1


@pytest.mark.usefixtures("empty_registry")
def test_a_kicked_item_gets_max_attempts_again_though_its_count_goes_on(
    factory: bridge.QueueFactory, queue: bridge.Queue
) -> None:
    queue.create_item("x")
    calls: list[int] = []

    # A fractional retry: its delay is ended on time by kick-job, which
    # beanstalkd counts in "kicks" too; only kicks from buried must count.
    quick = bridge.Backoff(initial=0.05, factor=1, maximum=0.05, jitter=0)

    @bridge.queue_worker(queue.name, max_attempts=2, retry=quick)
    def broken(data: str) -> None:
        item = bridge.workers.current_item()
        assert item is not None
        calls.append(item.attempts)
        raise RuntimeError("still broken")

    def run_until_held() -> None:
        deadline = time.monotonic() + 20
        while queue.counts().held == 0:
            assert time.monotonic() < deadline
            bridge.process_queue(queue.name, time_limit=5, factory=factory)
            time.sleep(0.06)

    run_until_held()
    assert queue.kick() == 1
    run_until_held()
    assert calls == [1, 2, 3, 4], "two more runs after the kick, counted on"
    [held] = queue.held_items()
    assert held.attempts == 4


# -- what other beanstalkd programs see and put ------------------------------------


def test_jobs_of_another_producer_are_claimed(queue: bridge.Queue) -> None:
    client = raw_client()
    try:
        client.use(PREFIX + queue.name)
        job_id = client.put(b'{"from": "php"}', priority=0, ttr=60)
    finally:
        client.close()
    item = queue.claim_item(lease_time=30)
    assert item is not None
    assert (item.item_id, item.data, item.attempts) == (job_id, {"from": "php"}, 1)
    assert item.priority == bridge.contract.MAX_PRIORITY, "beanstalkd's most urgent"
    assert abs(item.created - time.time()) < 5
    assert queue.delete_item(item)


def test_names_beanstalkd_refuses_get_tubes_it_accepts(factory: bridge.QueueFactory) -> None:
    tag = uuid.uuid4().hex[:8]
    names = [f"émail {tag}/$", f"-{tag}", f"{tag}-" + "n" * 246]
    queues = [factory.get(name) for name in names]
    try:
        for queue in queues:
            queue.create_item(queue.name)
        listed = queues[0].backend.queue_names()
        assert {name: listed.get(name) for name in names} == dict.fromkeys(names, 1)
        assert wire.tube_for(PREFIX, names[0]) == f"{PREFIX}$c3$a9mail$20{tag}/$24"
        assert wire.name_of(PREFIX, wire.tube_for(PREFIX, names[0])) == names[0]
        assert len(wire.tube_for(PREFIX, names[2])) <= wire.MAX_TUBE_BYTES
    finally:
        for queue in queues:
            queue.delete_queue()


def test_peek_walks_past_other_tubes_jobs(
    queue: bridge.Queue, factory: bridge.QueueFactory
) -> None:
    neighbour = factory.get(f"bs_{uuid.uuid4().hex[:12]}")
    try:
        ids = []
        for n in range(3):
            ids += queue.create_items([n])
            neighbour.create_items(["other"] * 5)
        assert [item.item_id for item in queue.peek(10)] == ids
        assert [item.data for item in queue.peek(2)] == [0, 1]
    finally:
        neighbour.delete_queue()


# -- errors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "beanstalk://",
        "beanstalk://host:11300/tube",
        "beanstalk://host:11300?ttr=5",
        "beanstalk://user:secret@host:11300",
        "beanstalk://host:notaport",
    ],
)
def test_bad_urls_are_refused(url: str) -> None:
    with pytest.raises(bridge.ConfigurationError, match="beanstalk URL"):
        bridge.QueueFactory(default=url).get("q").number_of_items()


@pytest.mark.parametrize(
    "options", [{"ttr": 1}, {"ttr": 2**32}, {"tube_prefix": "a b"}, {"tube_prefix": "-x"}]
)
def test_bad_options_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(bridge.ConfigurationError):
        bridge.QueueFactory(default={"url": BEANSTALK_URL, "options": options}).get("q")


def test_unencodable_payloads_write_nothing(queue: bridge.Queue) -> None:
    with pytest.raises(bridge.PayloadError):
        queue.create_items(["fine", object()])
    assert queue.number_of_items() == 0


def test_a_job_too_big_for_the_server_writes_nothing(queue: bridge.Queue) -> None:
    client = raw_client()
    try:
        most = client.stats()["max-job-size"]
    finally:
        client.close()
    with pytest.raises(bridge.BackendError, match="max-job-size"):
        queue.create_items(["small", "x" * most])
    assert queue.number_of_items() == 0, "the put before the refusal was taken back"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def own_server() -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A beanstalkd of this test's own, to stop and freeze without touching the shared one."""
    binary = shutil.which("beanstalkd")
    if binary is None:
        message = "the beanstalkd binary is not installed"
        if REQUIRE_SERVICES:
            pytest.fail(message)
        pytest.skip(message)
    port = free_port()
    proc = subprocess.Popen([binary, "-l", "127.0.0.1", "-p", str(port)])
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert time.monotonic() < deadline, "beanstalkd did not start"
            time.sleep(0.05)
    yield proc, f"beanstalk://127.0.0.1:{port}"
    if proc.poll() is None:
        proc.send_signal(signal.SIGCONT)
        proc.kill()
    proc.wait()


def test_a_dead_server_mid_call_is_unavailable_and_the_next_call_reconnects(
    own_server: tuple[subprocess.Popen[bytes], str],
) -> None:
    proc, url = own_server
    factory = bridge.QueueFactory(default=url)
    try:
        queue = factory.get("q")
        queue.create_item("x")
        item = queue.claim_item(lease_time=60)
        assert item is not None
        proc.kill()
        proc.wait()
        with pytest.raises(bridge.BackendUnavailableError, match="connection is lost"):
            queue.delete_item(item)
        with pytest.raises(bridge.BackendUnavailableError):
            queue.number_of_items()
    finally:
        factory.close()


def test_a_server_that_stops_answering_times_out(
    own_server: tuple[subprocess.Popen[bytes], str],
) -> None:
    proc, url = own_server
    factory = bridge.QueueFactory(default={"url": url, "options": {"timeout": 0.5}})
    try:
        queue = factory.get("q")
        queue.create_item("x")
        proc.send_signal(signal.SIGSTOP)
        started = time.monotonic()
        with pytest.raises(bridge.BackendUnavailableError):
            queue.claim_item(lease_time=30)
        assert time.monotonic() - started < 5
        proc.send_signal(signal.SIGCONT)
        item = queue.claim_item(lease_time=30)
        assert item is not None, "the next call reconnects"
        assert item.data == "x"
    finally:
        factory.close()


def test_no_server_is_unavailable() -> None:
    factory = bridge.QueueFactory(default=f"beanstalk://127.0.0.1:{free_port()}")
    with pytest.raises(bridge.BackendUnavailableError):
        factory.get("q").number_of_items()
