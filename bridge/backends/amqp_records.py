"""What the RabbitMQ backend keeps and sends about messages.

:class:`Fetched` is what bridge reads from a message it received (``basic.get``
or a consumer's ``basic.deliver``),
:class:`Held` a delivery held under a claim, :class:`Outgoing` a message
about to be published, and :class:`Ledger` the claims counted per copy of a
message, which classic queues do not count.

Messages never change, so whatever bridge learns about an item after it was
published (the claims made so far, the last error, why it was held) travels
in the headers of a new copy, published when the item moves: delayed,
released after a failure, held, kicked. Each copy has an id of its own
(:data:`COPY_HEADER`), so a count kept for one copy never leaks into the next.
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from bridge.backends.tokens import CREATED_HEADER
from bridge.errors import ConfigurationError
from bridge.items import StoredItem

ATTEMPTS_HEADER = "bridge-attempts"
"""Claims made before this copy of the message was published; 0 on a kicked copy.

A quorum queue counts deliveries per message and that count cannot be reset,
so attempts are this offset plus the broker's count of the copy in hand.
"""
COPY_HEADER = "bridge-copy"
"""The id of this copy of the item (none on the first): what :class:`Ledger` counts by."""
ERROR_HEADER = "bridge-last-error"
"""The item's last failed attempt's error (``fail_item``, ``hold_item``)."""
HELD_AT_HEADER = "bridge-held-at"
"""On a held copy: when it was held, epoch seconds, the holding process's clock."""
REASON_HEADER = "bridge-hold-reason"
"""On a held copy: why it was held."""
_LEDGER_SIZE = 100_000
"""Message ids whose claims a backend remembers."""


class Outgoing(NamedTuple):
    """One message to publish: the item id, the payload, its priority and headers."""

    message_id: str
    body: bytes
    priority: int
    headers: dict[str, Any]


class Fetched(NamedTuple):
    """What bridge reads from one message it received, fetched or pushed.

    A named tuple, not a frozen dataclass: one is built for every claim, and
    a tuple is built several times faster.
    """

    tag: int
    message_id: str | None
    body: bytes
    created: float
    priority: int
    redelivered: bool
    delivery_count: int | None
    """Quorum queues' ``x-delivery-count``: earlier deliveries, counted by the broker."""
    earlier: int
    """Claims made before this copy was published (:data:`ATTEMPTS_HEADER`)."""
    copy: str | None = None
    error: str | None = None
    held_at: float | None = None
    reason: str | None = None
    consumer: str | None = None
    """The consumer tag it was pushed to (``basic.deliver``); None when fetched (``basic.get``)."""

    @property
    def returned(self) -> bool:
        """Requeued before, on a quorum queue: served ahead of the messages never fetched."""
        return self.redelivered and self.delivery_count is not None

    @property
    def key(self) -> str | None:
        """What :class:`Ledger` counts this copy's claims by: the message id and copy id."""
        if not self.message_id:
            return None
        return f"{self.message_id}/{self.copy}" if self.copy else self.message_id

    @classmethod
    def of(cls, message: Any) -> Fetched:
        properties: dict[str, Any] = message.properties
        headers: dict[str, Any] = properties.get("application_headers") or {}
        body = message.body
        created = headers.get(CREATED_HEADER, properties.get("timestamp"))
        if isinstance(created, datetime):
            created = created.timestamp()
        count = headers.get("x-delivery-count")
        earlier = headers.get(ATTEMPTS_HEADER)
        return cls(
            tag=message.delivery_tag,
            message_id=properties.get("message_id") or None,
            body=body if isinstance(body, bytes) else str(body).encode(),
            created=float(created) if isinstance(created, int | float) else time.time(),
            priority=int(properties.get("priority") or 0),
            redelivered=bool(message.delivery_info.get("redelivered")),
            delivery_count=int(count) if isinstance(count, int) else None,
            earlier=earlier if isinstance(earlier, int) and earlier > 0 else 0,
            copy=_text(headers.get(COPY_HEADER)),
            error=_text(headers.get(ERROR_HEADER)),
            held_at=_number(headers.get(HELD_AT_HEADER)),
            reason=_text(headers.get(REASON_HEADER)),
            consumer=message.delivery_info.get("consumer_tag") or None,
        )

    def again(self, message_id: str, claims: int, error: str | None) -> Outgoing:
        """This message as a new copy with the claims so far and the last error.

        RabbitMQ's own headers (``x-death``, ``x-delivery-count``) and the
        held ones stay behind: the copy starts afresh in its new queue.
        """
        headers: dict[str, Any] = {
            CREATED_HEADER: self.created,
            ATTEMPTS_HEADER: claims,
            COPY_HEADER: uuid.uuid4().hex[:16],
        }
        if error is not None:
            headers[ERROR_HEADER] = error
        return Outgoing(message_id, self.body, self.priority, headers)

    def held(self) -> StoredItem:
        """This message of a held queue as a held item."""
        return StoredItem(
            self.message_id or "",
            self.body,
            self.created,
            0.0,
            self.earlier,
            self.priority,
            "",
            self.error,
            self.held_at if self.held_at is not None else self.created,
            self.reason if self.reason is not None else "",
        )


def held_copy(copy: Outgoing, held_at: float, reason: str) -> Outgoing:
    """``copy`` as it waits in a held queue: with when and why it was held."""
    headers = {**copy.headers, HELD_AT_HEADER: held_at, REASON_HEADER: reason}
    return copy._replace(headers=headers)


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value if isinstance(value, str) else None


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


@dataclass(slots=True)
class Held:
    """One unacknowledged delivery a backend holds, under its current token."""

    queue: str
    channel: Any
    fetched: Fetched
    item_id: str
    attempts: int
    expire: float
    delivered: float
    seq: int
    error: str | None = None
    """The item's last error as the next claimer must see it: the message's, or a newer
    one ``fail_item`` gave this claim, which only a new copy can carry (:attr:`changed`)."""

    @property
    def changed(self) -> bool:
        """Whether giving the item back takes a new copy: the message lacks its last error."""
        return self.error != self.fetched.error

    def stored(self, token: str) -> StoredItem:
        f = self.fetched
        return StoredItem(
            self.item_id,
            f.body,
            f.created,
            self.expire,
            self.attempts,
            f.priority,
            token,
            self.error,
        )


class Ledger:
    """Claims and looks per copy of a message, so attempts count what the broker does not.

    Classic queues count no deliveries, so a release is invisible to the
    next claimer; quorum queues count every one, a peek's included, so the
    looks this backend made are taken off. A new copy (delayed, kicked, given
    back after a failure) carries the claims so far in its headers and is
    counted afresh: a kick resets attempts for every process, including one
    that counted the item's claims before it was held.
    """

    def __init__(self) -> None:
        self._seen: OrderedDict[str, list[int]] = OrderedDict()
        """message id -> [claims so far, looks counted by the broker as deliveries]"""

    def claim(self, fetched: Fetched) -> int:
        """The attempt number of the claim being made now, remembered."""
        record = self._record(fetched.key)
        if fetched.delivery_count is not None:
            looks = record[1] if record else 0
            attempts = fetched.earlier + fetched.delivery_count - looks + 1
        elif record is not None:
            attempts = record[0] + 1
        else:
            attempts = fetched.earlier + 1 + int(fetched.redelivered)
        self.note(fetched.key, attempts)
        return attempts

    def look(self, fetched: Fetched) -> int:
        """Claims so far of a message fetched for a look (not a claim), remembered."""
        record = self._record(fetched.key)
        looks = record[1] if record else 0
        if fetched.delivery_count is not None:
            claims = fetched.earlier + fetched.delivery_count - looks
        elif record is not None:
            claims = record[0]
        else:
            claims = fetched.earlier + int(fetched.redelivered)
        self.note(fetched.key, claims, looks + 1)
        return claims

    def note(self, key: str | None, claims: int, looks: int | None = None) -> None:
        """Remember the claims of a copy; ``looks`` None keeps the count of looks."""
        if not key:
            return
        record = self._seen.get(key)
        if looks is None:
            looks = record[1] if record else 0
        self._seen[key] = [claims, looks]
        self._seen.move_to_end(key)
        if len(self._seen) > _LEDGER_SIZE:
            self._seen.popitem(last=False)

    def forget(self, key: str | None) -> None:
        """Drop a copy's record: it was deleted, or moved on as a new copy."""
        if key:
            self._seen.pop(key, None)

    def _record(self, key: str | None) -> list[int] | None:
        return self._seen.get(key) if key else None


def check_max_lease(max_lease: float | None) -> float | None:
    if max_lease is None:
        return None
    if isinstance(max_lease, bool) or not isinstance(max_lease, int | float) or max_lease <= 0:
        raise ConfigurationError(
            f"max_lease must be a positive number of seconds or None, not {max_lease!r}"
        )
    return float(max_lease)


def longest_lease(max_lease: float | None) -> float | None:
    """The longest lease a claim or an extension may ask for, under ``max_lease``.

    ``max_lease`` bounds when a lease ends, counted from the delivery
    (RabbitMQ's consumer_timeout counts from there). A minute (or half, for
    a short ``max_lease``) is kept back so that a full-length lease can still
    be extended by its full length within that time after the claim.
    """
    if max_lease is None:
        return None
    return max_lease - min(60.0, max_lease / 2)
