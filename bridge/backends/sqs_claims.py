"""What one SQS backend object knows of the claims it made, and the copies replacing them.

SQS tells a receipt handle's holder little: it reports a stale delete as
done, ignores a visibility change on a visible message, and has no call
that reads a message by id. So each backend object remembers the latest
claim it made of each item (the last 100,000), with the payload it
received: that record fences the object's own stale holders, ends a lease
between two of SQS's seconds, and is the body a hold or a failure copies.

A message cannot be changed, so keeping an error with an item or holding
it means sending a copy and deleting the claimed message, in that order:
a crash between the two leaves the item twice, never nowhere.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from bridge.backends.sqs_client import MAX_VISIBILITY, SqsClient
from bridge.backends.sqs_messages import Message, Outgoing, not_before, resend
from bridge.errors import BackendError
from bridge.items import QueueItem, StoredItem

FENCE = 30
"""Seconds a claim must still be hidden for a copy to replace it unchecked."""
REMEMBERED = 100_000
"""Items whose latest claim (and messages whose peeks) a backend remembers."""

State = Literal["leased", "delayed", "visible", "waiting", "ended"]
"""Of a claim made here: hidden by its lease or by ``delay_item``; visible
again (released, or its lease or delay over), still its holder's to delete or
release; waiting: replaced by ``fail_item`` with a copy delayed to the end of
its lease, which counts as leased until then; ended (deleted, held, failed
with a delay, or freed by ``release_all`` or ``delete_queue``)."""


@dataclass(slots=True)
class Claim:
    """The latest claim of one item made here."""

    queue: str
    item: StoredItem
    received: float
    """When the receive was sent: SQS's 12 hours of visibility count from after it."""
    hidden_until: float
    """SQS hides the message at least until then (the last visibility, rounded up)."""
    state: State = "leased"

    def reach(self, seconds: float, now: float) -> float | None:
        """How long SQS can still hide the message: ``seconds``, whole seconds less, or None.

        SQS hides a message at most 12 h from its receive. None once the
        message is visible: SQS hides a message only by receiving it, and a
        visibility change on a visible one does nothing.
        """
        if self.state == "visible" or now >= self.hidden_until:
            return None
        left = self.received + MAX_VISIBILITY - now
        if seconds <= left:
            return seconds
        return float(math.floor(left)) if left >= 1 else None


class Claims:
    """The latest claim of each item made here, by item id; and the peeks of each message."""

    __slots__ = ("_claims", "_looks")

    def __init__(self) -> None:
        self._claims: OrderedDict[str, Claim] = OrderedDict()
        self._looks: OrderedDict[str, int] = OrderedDict()

    def __getitem__(self, item_id: str) -> Claim:
        return self._claims[item_id]

    def get(self, item_id: str) -> Claim | None:
        return self._claims.get(item_id)

    def remember(self, item_id: str, claim: Claim) -> None:
        self._claims[item_id] = claim
        self._claims.move_to_end(item_id)
        while len(self._claims) > REMEMBERED:
            self._claims.popitem(last=False)
        while len(self._looks) > REMEMBERED:
            self._looks.popitem(last=False)

    def forget(self, item_id: str) -> None:
        self._claims.pop(item_id, None)

    def of(self, name: str) -> Iterator[Claim]:
        """The claims made here of queue ``name``'s items."""
        return (claim for claim in self._claims.values() if claim.queue == name)

    def lost(self, name: str, item: QueueItem) -> bool:
        """True when this backend knows the claim is over; else SQS decides.

        A token this backend did not see last is another object's claim:
        newer than the one seen here when it counts more attempts (then its
        receipt handle works here too), stale otherwise. A kick restarts the
        count, so a claim made elsewhere after a kick looks stale here.
        """
        if not item.token:
            return True
        claim = self._claims.get(str(item.item_id))
        if claim is None:
            return False  # a claim of another process: its receipt handle works here too
        if claim.queue != name:
            return True
        if claim.item.token != item.token:
            return item.attempts <= claim.item.attempts
        return claim.state in ("waiting", "ended")

    def mine(self, item: QueueItem) -> Claim | None:
        """The record of this very claim, when it was made here; None for another's."""
        claim = self._claims.get(str(item.item_id))
        return claim if claim is not None and claim.item.token == item.token else None

    def looks(self, message_id: str) -> int:
        """How many receives of this message were peeks made here (SQS counts them all)."""
        return self._looks.get(message_id, 0)

    def looked(self, message_id: str) -> None:
        self._looks[message_id] = self._looks.get(message_id, 0) + 1

    def hidden_here(self, name: str, now: float) -> tuple[int, int]:
        """Items of ``name`` delayed by ``delay_item`` here, and waiting after ``fail_item``.

        SQS counts the first in flight (leased) and the second delayed; the
        contract counts them the other way round.
        """
        delayed = waiting = 0
        for claim in self.of(name):
            if claim.item.expire > now:
                delayed += claim.state == "delayed"
                waiting += claim.state == "waiting"
        return delayed, waiting

    def hidden_items(self, name: str, now: float) -> list[StoredItem]:
        """The items of ``name`` that claims made here hide now, tokens blanked, for peek."""
        return [
            claim.item._replace(token="")
            for claim in self.of(name)
            if claim.state in ("leased", "delayed", "waiting") and claim.item.expire > now
        ]


def fence(client: SqsClient, queue_url: str, claim: Claim, now: float) -> bool:
    """Whether a copy may replace the claim's message: nobody else can receive it meanwhile.

    A claim hidden for :data:`FENCE` s more is safe as it is. Closer to its
    end, a visibility change keeps it hidden, and on AWS refuses a handle
    that a newer receive made stale (the claim then ends). A visible message
    (the holder's own release, or its lease over) stays the holder's until
    someone receives it, which no call can prevent.
    """
    if claim.state == "visible" or now >= claim.hidden_until:
        return True
    if claim.hidden_until - now >= FENCE or claim.received + MAX_VISIBILITY - now < FENCE:
        return True
    if client.change_visibility(queue_url, claim.item.token, FENCE):
        claim.hidden_until = now + FENCE
        return True
    claim.state = "ended"
    return False


def replace(client: SqsClient, from_url: str, to_url: str, claim: Claim, copy: Outgoing) -> None:
    """Send the copy, then delete the claimed message: a crash between leaves both."""
    _, refusals = client.send(to_url, [copy])
    if refusals:
        raise BackendError(
            f"SQS refused the copy of item {claim.item.item_id!r} on {client.url} "
            f"({refusals[0]}); the item is unchanged"
        )
    client.delete(from_url, [claim.item.token])


def send_on(client: SqsClient, queue_url: str, early: list[Message]) -> None:
    """Copies received before their ``bridge-not-before``: sent again, delayed the rest.

    SQS delays a message at most 900 s; a longer retry delay goes in steps.
    The new copy's receive count starts at 0 and its attempts attribute is
    the old one's, so the early receive costs no attempt.
    """
    now = time.time()
    ids, _ = client.send(
        queue_url, [resend(message, delay=not_before(message) - now) for message in early]
    )
    sent = [message["ReceiptHandle"] for message, i in zip(early, ids, strict=True) if i]
    client.delete(queue_url, sent)  # a refused one comes back when its lease ends
