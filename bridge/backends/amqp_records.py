"""What the RabbitMQ backend keeps and sends about messages.

:class:`Fetched` is what bridge reads from a message ``basic.get`` returned,
:class:`Held` a delivery held under a claim, :class:`Outgoing` a message
about to be published, and :class:`Ledger` the claims counted per message
id, which classic queues do not count.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from bridge.backends.tokens import CREATED_HEADER
from bridge.errors import ConfigurationError
from bridge.items import StoredItem

ATTEMPTS_HEADER = "bridge-attempts"
"""Claims made before this copy of the message was published (a delay republishes it)."""
_LEDGER_SIZE = 100_000
"""Message ids whose claims a backend remembers."""


class Outgoing(NamedTuple):
    """One message to publish: the item id, the payload, its priority and headers."""

    message_id: str
    body: bytes
    priority: int
    headers: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Fetched:
    """What bridge reads from one message ``basic.get`` returned."""

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
        )

    def again(self, message_id: str, claims: int) -> Outgoing:
        """This message as a new copy, carrying the claims made so far (not RabbitMQ's headers)."""
        return Outgoing(
            message_id,
            self.body,
            self.priority,
            {CREATED_HEADER: self.created, ATTEMPTS_HEADER: claims},
        )


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

    def stored(self, token: str) -> StoredItem:
        f = self.fetched
        return StoredItem(
            self.item_id, f.body, f.created, self.expire, self.attempts, f.priority, token
        )


class Ledger:
    """Claims and looks per message id, so attempts count what the broker does not.

    Classic queues count no deliveries, so a release is invisible to the
    next claimer; quorum queues count every one, a peek's included, so the
    looks this backend made are taken off.
    """

    def __init__(self) -> None:
        self._seen: OrderedDict[str, list[int]] = OrderedDict()
        """message id -> [claims so far, looks counted by the broker as deliveries]"""

    def claim(self, fetched: Fetched) -> int:
        """The attempt number of the claim being made now, remembered."""
        record = self._record(fetched.message_id)
        if fetched.delivery_count is not None:
            looks = record[1] if record else 0
            attempts = fetched.earlier + fetched.delivery_count - looks + 1
        elif record is not None:
            attempts = record[0] + 1
        else:
            attempts = fetched.earlier + 1 + int(fetched.redelivered)
        self.note(fetched.message_id, attempts)
        return attempts

    def look(self, fetched: Fetched) -> int:
        """Claims so far of a message fetched for a look (not a claim), remembered."""
        record = self._record(fetched.message_id)
        looks = record[1] if record else 0
        if fetched.delivery_count is not None:
            claims = fetched.earlier + fetched.delivery_count - looks
        elif record is not None:
            claims = record[0]
        else:
            claims = fetched.earlier + int(fetched.redelivered)
        self.note(fetched.message_id, claims, looks + 1)
        return claims

    def note(self, message_id: str | None, claims: int, looks: int | None = None) -> None:
        """Remember the claims of a message; ``looks`` None keeps the count of looks."""
        if not message_id:
            return
        record = self._seen.get(message_id)
        if looks is None:
            looks = record[1] if record else 0
        self._seen[message_id] = [claims, looks]
        self._seen.move_to_end(message_id)
        if len(self._seen) > _LEDGER_SIZE:
            self._seen.popitem(last=False)

    def forget(self, message_id: str | None) -> None:
        if message_id:
            self._seen.pop(message_id, None)

    def _record(self, message_id: str | None) -> list[int] | None:
        return self._seen.get(message_id) if message_id else None


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
