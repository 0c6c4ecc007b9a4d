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
from bridge.backends import aliases, open_backend, sqs_held
from bridge.backends.sqs import SQS_CAPABILITIES, SqsBackend
from bridge.backends.sqs_client import SqsClient, client_args
from bridge.backends.sqs_layout import HELD_RETENTION, REDRIVE_RECEIVES
from bridge.backends.sqs_messages import MOVED_BY_SQS, NOT_BEFORE, copy_of

from children import claim_in_a_process_and_kill_it, claim_within, connections
from conftest import spec_for

sqs = pytest.mark.service("sqs")

Connect = Callable[..., bridge.Queue]


@pytest.fixture
def connect() -> Iterator[Connect]:
    """``connect(name, **options)``: the queue on a backend object of its own.

    Each call opens a new factory, as another process would. Queues are
    deleted and factories closed after.
    """
    yield from connections(spec_for("sqs", None))


def unique(prefix: str = "sqs") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


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
    for call in (
        lambda: backend.claim_items("anything", 1, 30),
        lambda: backend.held_items("anything", 10),
        lambda: backend.kick("anything", None),
        lambda: backend.delete_held("anything", None),
        lambda: backend.counts("anything"),
    ):
        with pytest.raises(bridge.BackendUnavailableError) as raised:
            call()
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


# -- failures and held items: copies, the held queue, its redrive policy ---------------


def boto(queue: bridge.Queue) -> Any:
    return queue.backend._client.boto()  # type: ignore[attr-defined]


def sqs_urls(queue: bridge.Queue) -> tuple[str, str]:
    """The SQS URLs of the queue and of its held queue."""
    layout = queue.backend._layout  # type: ignore[attr-defined]
    return layout.queue_url(queue.name), layout.held_url(queue.name)


def attributes(queue: bridge.Queue, url: str, *names: str) -> dict[str, str]:
    return dict(
        boto(queue).get_queue_attributes(QueueUrl=url, AttributeNames=list(names))["Attributes"]
    )


@sqs
def test_the_held_queue_is_the_queue_s_dead_letter_target(connect: Connect) -> None:
    queue = connect(unique())
    queue.create_item("x")
    main_url, held_url = sqs_urls(queue)
    assert held_url.endswith(f"{queue.name}-held")
    policy = json.loads(attributes(queue, main_url, "RedrivePolicy")["RedrivePolicy"])
    held = attributes(queue, held_url, "QueueArn", "MessageRetentionPeriod")
    assert policy["deadLetterTargetArn"] == held["QueueArn"]
    assert int(policy["maxReceiveCount"]) == REDRIVE_RECEIVES == 1000, "SQS's highest"
    assert int(held["MessageRetentionPeriod"]) == HELD_RETENTION == 14 * 86_400
    assert queue.backend.queue_names().get(queue.name) == 1, "the held queue is not listed"
    assert f"{queue.name}-held" not in queue.backend.queue_names()


@sqs
def test_a_queue_named_like_a_held_queue_is_a_queue_of_its_own(connect: Connect) -> None:
    name = unique()
    plain, lookalike = connect(name), connect(f"{name}-held")
    plain.create_item("plain")
    lookalike.create_item("lookalike")
    item = plain.claim_item(lease_time=60)
    assert item is not None
    assert plain.hold_item(item, reason="r")
    assert lookalike.counts().held == 0
    assert [i.data for i in lookalike.peek(10)] == ["lookalike"]
    assert [i.data for i in plain.held_items()] == ["plain"]
    names = plain.backend.queue_names()
    assert (names.get(name), names.get(f"{name}-held")) == (1, 1)


@sqs
def test_what_sqs_s_own_redrive_moves_is_held_and_can_be_kicked(connect: Connect) -> None:
    queue = connect(unique())
    item_id = queue.create_item("received too often")
    main_url, _ = sqs_urls(queue)
    policy = json.loads(attributes(queue, main_url, "RedrivePolicy")["RedrivePolicy"])
    policy["maxReceiveCount"] = 1
    boto(queue).set_queue_attributes(
        QueueUrl=main_url, Attributes={"RedrivePolicy": json.dumps(policy)}
    )
    first = queue.claim_item(lease_time=60)
    assert first is not None
    assert queue.release_item(first)
    assert queue.claim_item(lease_time=60) is None, "SQS moved it on the second receive"

    [held] = queue.held_items()
    assert (held.item_id, held.data, held.hold_reason) == (
        item_id,
        "received too often",
        MOVED_BY_SQS,
    )
    assert held.attempts >= 1
    assert queue.kick_item(item_id)
    policy["maxReceiveCount"] = REDRIVE_RECEIVES
    boto(queue).set_queue_attributes(
        QueueUrl=main_url, Attributes={"RedrivePolicy": json.dumps(policy)}
    )
    again = claim_within(queue, 10)
    assert (again.item_id, again.attempts, again.created) == (item_id, 1, first.created)


@sqs
def test_failures_and_holds_are_seen_from_every_connection(connect: Connect) -> None:
    name = unique()
    worker, operator = connect(name), connect(name)
    worker.create_item({"job": 1})
    item = worker.claim_item(lease_time=60)
    assert item is not None
    assert worker.fail_item(item, "ValueError: first", delay=0.5)
    again = claim_within(operator, 10)
    assert (again.item_id, again.attempts, again.created) == (item.item_id, 2, item.created)
    assert again.last_error == "ValueError: first"
    with pytest.raises(bridge.UnsupportedOperationError, match="another backend object"):
        worker.hold_item(again, reason="not mine")
    assert operator.hold_item(again, reason="bounced", error="ValueError: second")

    [held] = worker.held_items()
    assert (held.item_id, held.attempts, held.hold_reason) == (item.item_id, 2, "bounced")
    assert held.last_error == "ValueError: second"
    assert worker.kick() == 1
    last = claim_within(operator, 10)
    assert (last.item_id, last.attempts, last.created) == (item.item_id, 1, item.created)
    assert last.last_error == "ValueError: second"
    assert worker.delete_item(last), "the receipt handle settles from anywhere"


@sqs
def test_a_failure_of_another_object_s_claim_is_only_a_delay(
    connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    """Only the object that received the message has its body to copy the error onto."""
    name = unique()
    holder, other = connect(name), connect(name)
    holder.create_item("x")
    item = holder.claim_item(lease_time=60)
    assert item is not None
    with caplog.at_level(logging.WARNING, logger="bridge.backends.sqs"):
        assert other.fail_item(item, "lost error", delay=1)
    assert "its error is not kept" in caplog.text
    assert holder.claim_item(lease_time=60) is None
    again = claim_within(holder, 10)
    assert (again.item_id, again.attempts, again.last_error) == (item.item_id, 2, None)


@sqs
def test_a_failure_replaces_the_message_and_ends_the_claim(connect: Connect) -> None:
    """SQS messages cannot change: the error travels in a copy, so the holder lets go."""
    queue = connect(unique())
    queue.create_item("x")
    item = queue.claim_item(lease_time=2)
    assert item is not None
    assert queue.fail_item(item, "boom")
    assert (queue.counts().leased, queue.counts().delayed) == (1, 0), "waits for its lease"
    assert queue.peek(10)[0].item_id == item.item_id
    for call in CALLS.values():
        assert call(queue, item) is False, "the claimed message is gone"
    assert queue.claim_item(lease_time=60) is None
    again = claim_within(queue, 10)
    assert (again.item_id, again.attempts, again.last_error) == (item.item_id, 2, "boom")


@sqs
def test_a_retry_delay_past_900_s_waits_in_steps_without_costing_attempts(
    connect: Connect,
) -> None:
    queue = connect(unique())
    queue.create_item("later")
    item = queue.claim_item(lease_time=60)
    assert item is not None
    assert queue.fail_item(item, "slow down", delay=3_600)
    assert queue.counts().delayed == 1
    assert item.expire - time.time() == pytest.approx(3_600, abs=5)

    # The copy SQS shows after its 900 s, made here with a not-before 2 s away.
    stored = queue.backend._claims[str(item.item_id)].item  # type: ignore[attr-defined]
    copy = copy_of(stored, attempts=1, error="slow down", delay=901)._replace(delay=0)
    copy.attributes[NOT_BEFORE] = {"DataType": "Number", "StringValue": f"{time.time() + 2:.6f}"}
    main_url, _ = sqs_urls(queue)
    queue.backend._client.send(main_url, [copy])  # type: ignore[attr-defined]
    assert queue.claim_item(lease_time=60) is None, "received early: sent on, not handed out"
    assert queue.counts().delayed == 2
    again = claim_within(queue, 10)
    assert (again.item_id, again.attempts, again.last_error) == (item.item_id, 2, "slow down")


@sqs
def test_error_and_reason_texts_sqs_would_refuse_round_trip(connect: Connect) -> None:
    queue = connect(unique())
    queue.create_items(["a", "b"])
    a, b = queue.claim_items(2, lease_time=60)
    odd = "KeyError: \x00 \x1b[31mred\x1b[0m \ufffe 漢字"
    assert queue.hold_item(a, reason="", error=odd)
    time.sleep(0.01)
    assert queue.hold_item(b, reason=odd, error="")
    first, second = queue.held_items()
    assert (first.hold_reason, first.last_error) == ("", odd)
    assert (second.hold_reason, second.last_error) == (odd, "")


@sqs
def test_a_crash_between_copy_and_delete_leaves_the_item_twice_never_nowhere(
    connect: Connect, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = connect(unique())
    queue.create_item("survivor")
    item = queue.claim_item(lease_time=1)
    assert item is not None

    def crash(*args: Any) -> list[int]:
        raise RuntimeError("killed between the send and the delete")

    monkeypatch.setattr(SqsClient, "delete", crash)
    with pytest.raises(RuntimeError):
        queue.hold_item(item, reason="r")
    monkeypatch.undo()
    assert queue.counts().held == 1
    assert claim_within(queue, 10).item_id == item.item_id, "and back when the lease ends"


MOVER = textwrap.dedent("""
    import json, sys, time
    import bridge
    from bridge.backends import sqs_claims, sqs_held

    sqs_held.LOOK_HIDE = 2  # what a killed look hid comes back soon
    sqs_claims.FENCE = 2  # and so does a claim a killed hold had hidden for its copy
    spec, name, mode = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
    queue = bridge.QueueFactory(default=spec).get(name)
    if mode == "hold":
        for item in queue.claim_items(100, lease_time=2):
            queue.hold_item(item, reason="held")
            print(item.item_id, flush=True)
    else:
        while queue.kick(limit=1):
            print("kicked", flush=True)
    time.sleep(600)
""")


def move_in_a_process_and_kill_it(name: str, mode: str, after: int) -> None:
    """A child holds (or kicks) items one by one and is SIGKILLed during the next."""
    spec = spec_for("sqs", None)
    child = subprocess.Popen(
        [sys.executable, "-c", MOVER, json.dumps(spec), name, mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert child.stdout is not None
        for _ in range(after):
            assert child.stdout.readline(), child.stderr.read().decode() if child.stderr else ""
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


@sqs
@pytest.mark.parametrize("after", [3, 7])
def test_a_sigkill_mid_hold_or_mid_kick_loses_no_item(connect: Connect, after: int) -> None:
    """Copy, then delete: a kill between leaves an item twice at worst, never nowhere."""
    name = unique()
    queue = connect(name)
    ids = set(queue.create_items(range(10)))

    def everywhere() -> set[Any]:
        """Every item held or ready, once what the killed child hid is visible again.

        Its leases, looks and fences end 2 s (SQS: whole seconds) after it
        set them; an item still missing after 15 s is lost.
        """
        deadline = time.monotonic() + 15
        while True:
            time.sleep(1)
            held = {item.item_id for item in queue.held_items()}
            ready = {item.item_id for item in queue.peek(100)}
            if held | ready == ids or time.monotonic() > deadline:
                return held | ready

    move_in_a_process_and_kill_it(name, "hold", after)
    assert everywhere() == ids
    assert queue.counts().held >= after
    queue.kick()  # all held back; the kill may have left some items in both queues
    claimed = queue.claim_items(100, lease_time=60)
    assert {item.item_id for item in claimed} == ids
    for item in claimed:
        assert queue.hold_item(item, reason="again")
    move_in_a_process_and_kill_it(name, "kick", after)
    assert everywhere() == ids


@sqs
def test_kick_and_delete_held_leave_the_items_they_do_not_take_visible(connect: Connect) -> None:
    queue = connect(unique())
    queue.create_items(range(12))  # more than one receive's 10
    for claimed in queue.claim_items(12, lease_time=60):
        assert queue.hold_item(claimed, reason=str(claimed.data))
    held = queue.held_items()
    assert len(held) == 12
    assert [item.held_at for item in held] == sorted(item.held_at or 0 for item in held)
    assert queue.kick(limit=5) == 5
    assert queue.delete_held(limit=2) == 2
    assert queue.counts().held == 5
    assert [item.item_id for item in queue.held_items()] == [item.item_id for item in held[7:]]
    assert queue.delete_held() == 5
    assert queue.counts() == bridge.ItemCounts(ready=5, leased=0, delayed=0, held=0)


@sqs
def test_old_held_messages_are_sent_again_before_sqs_s_retention_ends(
    connect: Connect, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = connect(unique())
    queue.create_item("kept")
    item = queue.claim_item(lease_time=60)
    assert item is not None
    assert queue.hold_item(item, reason="r", error="e")
    [before] = queue.held_items()
    _, held_url = sqs_urls(queue)

    def message_ids() -> set[str]:
        got = boto(queue).receive_message(QueueUrl=held_url, MaxNumberOfMessages=10)
        handles = [(m["MessageId"], m["ReceiptHandle"]) for m in got.get("Messages", [])]
        for _, handle in handles:
            boto(queue).change_message_visibility(
                QueueUrl=held_url, ReceiptHandle=handle, VisibilityTimeout=0
            )
        return {message_id for message_id, _ in handles}

    old = message_ids()
    monkeypatch.setattr(sqs_held, "REFRESH_AFTER", -1)  # every held message counts as old
    queue.garbage_collection()
    assert message_ids().isdisjoint(old), "a new message, with a new retention"
    [after] = queue.held_items()
    assert after == before, "the same item, held at the same time, with its reason and error"
    tags = boto(queue).list_queue_tags(QueueUrl=held_url)["Tags"]
    assert time.time() - float(tags["bridge-refreshed"]) < 60
    renewed = message_ids()
    queue.garbage_collection()
    assert message_ids() == renewed, "at most hourly per backend object"


@sqs
def test_a_redrive_policy_to_another_queue_is_left_alone(
    connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    name = unique()
    owner = connect(name)
    owner.create_queue()
    main_url, _ = sqs_urls(owner)
    theirs = boto(owner).create_queue(QueueName=f"{name}-theirs")["QueueUrl"]
    arn = attributes(owner, theirs, "QueueArn")["QueueArn"]
    policy = json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": 3})
    boto(owner).set_queue_attributes(QueueUrl=main_url, Attributes={"RedrivePolicy": policy})
    try:
        with caplog.at_level(logging.WARNING, logger="bridge.backends.sqs_layout"):
            connect(name).create_item("x")
        assert "RedrivePolicy to another queue" in caplog.text
        assert attributes(owner, main_url, "RedrivePolicy")["RedrivePolicy"] == policy
    finally:
        boto(owner).delete_queue(QueueUrl=theirs)


@sqs
def test_sqs_cannot_tell_the_age_of_the_oldest_ready_item(connect: Connect) -> None:
    queue = connect(unique())
    queue.create_item("x")
    assert queue.backend.oldest_ready_age(queue.name) is None


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
