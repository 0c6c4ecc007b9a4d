"""The SQS backend: what SQS really does under Drupal's queue API.

The contract suite runs on SQS through conftest's ``sqs`` kind (a local
moto server unless ``BRIDGE_TEST_SQS_URL`` is set); this file checks what
only SQS shows: server-side leases, claims settled from any connection, a
killed claimer, its limits, and names and bytes SQS would refuse. Every
queue has a unique name and is deleted afterwards.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import signal
import subprocess
import sys
import textwrap
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import bridge
from bridge.backends import aliases, open_backend
from bridge.backends.sqs import SQS_CAPABILITIES, SqsBackend
from bridge.backends.sqs_client import SqsClient, client_args

from conftest import spec_for

sqs = pytest.mark.service("sqs")

Connect = Callable[..., bridge.Queue]


@pytest.fixture
def connect() -> Iterator[Connect]:
    """``connect(name, **options)``: the queue on a backend object of its own.

    Each call opens a new factory, as another process would. Queues are
    deleted and factories closed after.
    """
    factories: list[bridge.QueueFactory] = []
    names: set[str] = set()

    def make(name: str, **options: Any) -> bridge.Queue:
        spec = spec_for("sqs", None)
        spec["options"] = {**spec.get("options", {}), **options}
        factory = bridge.QueueFactory(default=spec)
        factories.append(factory)
        names.add(name)
        return factory.get(name)

    yield make
    for factory in factories:
        factory.close()
    cleaner = bridge.QueueFactory(default=spec_for("sqs", None))
    for name in names:
        cleaner.get(name).delete_queue()
    cleaner.close()


def unique(prefix: str = "sqs") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def claim_within(queue: bridge.Queue, seconds: float, lease: float = 60) -> bridge.QueueItem:
    deadline = time.monotonic() + seconds
    while (item := queue.claim_item(lease_time=lease)) is None:
        if time.monotonic() > deadline:
            pytest.fail(f"nothing became claimable within {seconds} s")
        time.sleep(0.05)
    return item


CLAIMER = textwrap.dedent("""
    import json, sys, time
    import bridge

    spec, name = json.loads(sys.argv[1]), sys.argv[2]
    queue = bridge.QueueFactory(default=spec).get(name)
    item = queue.claim_item(lease_time=float(sys.argv[3]))
    print(json.dumps(item.item_id if item else None), flush=True)
    time.sleep(600)
""")


def claim_in_a_process_and_kill_it(spec: dict[str, Any], name: str, lease: float) -> Any:
    """A child process claims one item and is SIGKILLed holding it; the item id."""
    child = subprocess.Popen(
        [sys.executable, "-c", CLAIMER, json.dumps(spec), name, str(lease)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line, child.stderr.read().decode() if child.stderr else "no output"
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        return json.loads(line)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


@sqs
def test_sqs_leases_are_held_by_the_server(connect: Connect) -> None:
    """The lease holds across connections and ends on its own, with nobody calling."""
    name = unique()
    holder, other = connect(name), connect(name)
    holder.create_item("job")
    first = holder.claim_item(lease_time=1)
    assert first is not None
    assert other.claim_item(lease_time=30) is None
    second = claim_within(other, 10, lease=30)
    assert (second.item_id, second.attempts) == (first.item_id, 2)
    assert other.delete_item(second)


@sqs
def test_sqs_claims_settle_from_any_connection(connect: Connect) -> None:
    name = unique()
    holder, other = connect(name), connect(name)
    holder.create_items(["a", "b"])
    a, b = holder.claim_items(2, lease_time=60)
    assert other.release_item(b), "a receipt handle works from any connection"
    assert other.delete_item(a)
    again = other.claim_item(lease_time=60)
    assert again is not None
    assert (again.data, again.attempts) == ("b", 2)


@sqs
def test_sqs_a_killed_claimer_s_item_comes_back_when_its_lease_ends(connect: Connect) -> None:
    name = unique()
    queue = connect(name)
    item_id = queue.create_item("survives a crash")
    assert claim_in_a_process_and_kill_it(spec_for("sqs", None), name, lease=2) == item_id
    started = time.monotonic()
    assert queue.claim_item(lease_time=30) is None, "the dead claimer's lease still holds"
    item = claim_within(queue, 10)
    assert time.monotonic() - started > 0.5
    assert (item.item_id, item.attempts) == (item_id, 2)


@sqs
def test_sqs_limits_and_capabilities(connect: Connect) -> None:
    queue = connect(unique())
    assert queue.capabilities == SQS_CAPABILITIES
    with pytest.raises(bridge.UnsupportedOperationError):
        queue.create_item("x", priority=1)
    with pytest.raises(bridge.InvalidArgumentError, match="900"):
        queue.create_item("x", delay=901)
    with pytest.raises(bridge.InvalidArgumentError, match="43200"):
        queue.claim_item(lease_time=43_201)
    assert queue.number_of_items() == 0


@sqs
def test_sqs_names_and_bytes_sqs_would_refuse_are_mapped(connect: Connect) -> None:
    name = unique("émail.漢字 with spaces")
    queue = connect(name)
    backend = queue.backend
    payloads = [b"\x00\xff raw bytes", "text \ufffe".encode(), b'{"json": true}']
    ids = backend.create_items(name, payloads, 0, 0)
    claimed = backend.claim_items(name, 3, 30)
    assert [item.item_id for item in claimed] == ids
    assert [item.payload for item in claimed] == payloads
    assert backend.queue_names().get(name) == 3


def test_sqs_unreachable_is_unavailable() -> None:
    backend = open_backend(
        "kombu+sqs://key:s3cret@127.0.0.1:1", {"region": "us-east-1", "connect_timeout": 1}
    )
    with pytest.raises(bridge.BackendUnavailableError) as raised:
        backend.claim_items("anything", 1, 30)
    assert "s3cret" not in str(raised.value)


# -- one holder's calls: Drupal's return values, where SQS can give them ------------

CALLS: dict[str, Callable[[bridge.Queue, bridge.QueueItem], bool]] = {
    "delete": lambda queue, item: queue.delete_item(item),
    "release": lambda queue, item: queue.release_item(item),
    "delay": lambda queue, item: queue.delay_item(item, 60),
    "extend": lambda queue, item: queue.extend_lease(item, 60),
}


def expected(calls: tuple[str, ...]) -> list[bool]:
    """What SQS gives one holder: Drupal's values, except that a visible message stays visible.

    After a release, ChangeMessageVisibility cannot hide the message again, so
    the holder's delay and extend return False there; its delete and release
    still work, and after a delay (the message still hidden) everything does.
    """
    state, results = "hidden", []
    for call in calls:
        ok = state == "hidden" or (state == "visible" and call in ("delete", "release"))
        results.append(ok)
        if ok and call == "delete":
            state = "deleted"
        elif ok and call == "release":
            state = "visible"
    return results


@sqs
def test_one_holder_s_calls_return_drupal_s_values_where_sqs_can(connect: Connect) -> None:
    assert not SQS_CAPABILITIES.settle_after_release
    queue = connect(unique())
    sequences = list(itertools.product(CALLS, repeat=3))
    queue.create_items(range(len(sequences)))
    items = queue.claim_items(len(sequences), lease_time=60)
    assert len(items) == len(sequences)
    for sequence, item in zip(sequences, items, strict=True):
        got = [CALLS[call](queue, item) for call in sequence]
        assert got == expected(sequence), sequence


@sqs
def test_a_delayed_item_stays_its_holder_s(connect: Connect) -> None:
    """Drupal: delayItem, then releaseItem, are both TRUE; both FALSE after deleteItem."""
    queue = connect(unique())
    queue.create_item("x")
    item = queue.claim_item(lease_time=60)
    assert item is not None
    assert queue.delay_item(item, 60)
    assert queue.counts().delayed == 1
    assert queue.extend_lease(item, 60), "still hidden: the holder may take it back"
    assert queue.delay_item(item, 60)
    assert queue.release_item(item)
    assert queue.delete_item(item)
    assert queue.number_of_items() == 0
    for name, call in CALLS.items():
        assert call(queue, item) is False, f"{name} after delete"


@sqs
def test_a_holder_whose_lease_ran_out_may_delete_but_not_hide_again(connect: Connect) -> None:
    queue = connect(unique())
    queue.create_items(["a", "b"])
    a, b = queue.claim_items(2, lease_time=0.2)
    time.sleep(0.3)
    queue.garbage_collection()  # makes both visible now, instead of at SQS's next second
    assert queue.extend_lease(a, 60) is False, "SQS would ignore it and report success"
    assert queue.delay_item(a, 60) is False
    assert queue.counts().ready == 2
    assert queue.delete_item(a), "nobody claimed it since: still the holder's"
    assert queue.release_item(b)
    again = queue.claim_item(lease_time=60)
    assert again is not None
    assert (again.item_id, again.attempts) == (b.item_id, 2)
    assert queue.delete_item(b) is False, "claimed again: the old holder is fenced"
    assert queue.delete_item(again)


# -- limits --------------------------------------------------------------------------


@sqs
def test_delays_past_sqs_s_limits_are_refused_before_any_call(
    connect: Connect, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DelayedRequeue(86400) in a worker: a clear refusal naming the limit, SQS untouched."""
    queue = connect(unique())
    queue.create_item("x")
    item = queue.claim_item(lease_time=60)
    assert item is not None
    calls: list[str] = []
    for method in ("change_visibility", "send", "receive", "delete"):
        monkeypatch.setattr(SqsClient, method, lambda *args, m=method: calls.append(m))
    for refused in (
        lambda: queue.delay_item(item, 86_400),
        lambda: queue.extend_lease(item, 43_201),
        lambda: queue.create_item("y", delay=901),
    ):
        with pytest.raises(bridge.InvalidArgumentError) as raised:
            refused()
        assert re.search(r"at most (43200|900) seconds, the limit of sqs://", str(raised.value))
    assert calls == []
    monkeypatch.undo()
    assert queue.claim_item(lease_time=60) is None, "the item is still leased"
    assert queue.delay_item(item, 43_200), "12 h is within SQS's limit"
    assert queue.create_item("y", delay=900)


@sqs
def test_a_claim_is_hidden_at_most_12_hours_from_its_receive(
    connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    queue = connect(unique())
    queue.create_item("x")
    item = queue.claim_item(lease_time=43_200)
    assert item is not None
    claim = queue.backend._claims[str(item.item_id)]  # type: ignore[attr-defined]
    claim.received -= 43_200 - 600  # as if received 11 h 50 min ago
    with caplog.at_level(logging.WARNING, logger="bridge.backends.sqs"):
        assert queue.extend_lease(item, 3_600)
    assert item.expire - time.time() == pytest.approx(600, abs=5), "cut to what is left"
    assert re.search(r"item \S+ is hidden 59\d s instead of 3600 s", caplog.text), caplog.text
    claim.received -= 600
    assert queue.delay_item(item, 60) is False, "nothing left: SQS shows it at the 12 h"
    assert queue.delete_item(item)


@sqs
def test_sqs_refuses_a_foreign_claim_past_12_hours_as_invalid(connect: Connect) -> None:
    """Another process's claim: SQS's refusal is an error, never a claim reported lost."""
    name = unique()
    holder, other = connect(name), connect(name)
    holder.create_item("x")
    item = holder.claim_item(lease_time=60)
    assert item is not None
    with pytest.raises(bridge.InvalidArgumentError, match="43200 s in all"):
        other.extend_lease(item, 43_200)
    assert other.extend_lease(item, 60)
    assert other.delete_item(item)


# -- URLs: the deprecated alias, and secrets never printed -----------------------------


@sqs
def test_kombu_sqs_is_a_deprecated_alias_logged_once(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(aliases, "_warned", set())
    spec = spec_for("sqs", None)
    name = unique()
    with caplog.at_level(logging.WARNING, logger="bridge.backends.aliases"):
        for url in (spec["url"], spec["url"]):
            plain = bridge.QueueFactory(default={**spec, "url": url})
            plain.get(name).create_item("plain")
            plain.close()
        assert caplog.records == [], "sqs:// is the backend's own scheme"
        for _ in range(2):
            old = bridge.QueueFactory(default={**spec, "url": "kombu+" + spec["url"]})
            queue = old.get(name)
            assert isinstance(queue.backend, SqsBackend)
            assert queue.number_of_items() == 2
            old.close()
    warnings = [record.getMessage() for record in caplog.records]
    assert len(warnings) == 1, warnings
    assert "kombu+sqs:// URLs are deprecated; use sqs://" in warnings[0]
    assert "testing:***@" in warnings[0]
    cleaner = bridge.QueueFactory(default=spec)
    cleaner.get(name).delete_queue()
    cleaner.close()


SECRET = "wJalr/XUtnFEMI@K7MDENG/bPxRfiCY"
SECRET_PIECES = ["wJalr", "XUtnFEMI", "K7MDENG", "bPxRfiCY"]


def printed(error: BaseException) -> str:
    """Everything a traceback of ``error`` shows: messages, chained causes, source lines."""
    return "".join(traceback.format_exception(error)) + repr(error)


def test_a_secret_with_slash_and_at_is_read_whole() -> None:
    args = client_args(f"sqs://AKIDEXAMPLE:{SECRET}@127.0.0.1:4566", "eu-west-1", None, False, None)
    assert args["aws_access_key_id"] == "AKIDEXAMPLE"
    assert args["aws_secret_access_key"] == SECRET
    assert args["endpoint_url"] == "http://127.0.0.1:4566"
    quoted = client_args("sqs://AKIDEXAMPLE:a%2Fb%40c@", "eu-west-1", None, False, None)
    assert (quoted["aws_secret_access_key"], quoted["endpoint_url"]) == ("a/b@c", None)


def test_a_secret_with_slash_and_at_is_never_printed() -> None:
    backend = open_backend(
        f"sqs://AKIDEXAMPLE:{SECRET}@127.0.0.1:1", {"region": "us-east-1", "connect_timeout": 1}
    )
    assert backend.url == "sqs://AKIDEXAMPLE:***@127.0.0.1:1"
    shown = repr(backend) + repr(vars(backend) if hasattr(backend, "__dict__") else "")
    with pytest.raises(bridge.BackendUnavailableError) as raised:
        backend.claim_items("anything", 1, 30)
    shown += printed(raised.value)
    assert "sqs://AKIDEXAMPLE:***@127.0.0.1:1" in str(raised.value)
    for piece in SECRET_PIECES:
        assert piece not in shown


@pytest.mark.parametrize(
    "url",
    [
        f"sqs://AKIDEXAMPLE:{SECRET.replace('@', '')}",  # the '@' that ends it forgotten
        f"sqs://AKIDEXAMPLE:{SECRET}@host:port",
        f"kombu+sqs://AKIDEXAMPLE:{SECRET.replace('@', '')}",
    ],
)
def test_a_malformed_url_is_refused_without_printing_it(url: str) -> None:
    with pytest.raises(bridge.ConfigurationError, match="sqs://KEY:SECRET@") as raised:
        open_backend(url, {"region": "us-east-1"})
    for piece in SECRET_PIECES:
        assert piece not in printed(raised.value)
