"""How the RabbitMQ backend lays its queues out: types, arguments, holding and held queues.

No I/O here: these are the decisions, kept apart from ``amqp_session.py``
(which talks to the broker) so that they read, and test, on their own.

Queue type. A bridge queue is a quorum queue where the server has what the
backend needs from one (RabbitMQ 3.10: message TTL and at-least-once
dead-lettering on quorum queues), because a quorum queue never hands back
a message whose acknowledgement it confirmed, even after a crash of the
broker; a classic queue can (it persists acknowledgements lazily). Classic
queues are used when asked for (``queue_type="classic"``), on older
servers, and for ``max_priority``: RabbitMQ's ``x-max-priority`` is a
classic-queue argument (RabbitMQ 4's quorum queues have two priority levels
served 2:1, not the strict order bridge promises).

Quorum queues are declared with ``x-delivery-limit`` at its largest, for two
reasons: RabbitMQ 4 drops a message after 20 redeliveries by default, and a
quorum queue with a delivery limit puts a requeued message back ahead of the
ready ones (without one, RabbitMQ 3 puts it at the back).

Holding queues. A delayed item waits in a holding queue of its bridge
queue, one per delay bucket: delays are grouped by the power of two (in
milliseconds) at or above them, from 256 ms to 2**31 ms (about 24.8 days).
Each message carries its exact delay as its ``expiration``; when it expires,
RabbitMQ dead-letters it back into the bridge queue. RabbitMQ expires
messages only at the head of a queue, so a message can wait behind an
earlier one of the same bucket with a longer delay: it is then late by at
most the difference, which is less than its own delay (nothing is ever
early). A holding queue deletes itself (``x-expires``) once unused for its
bucket plus :data:`EXPIRES_MARGIN_MS`; the backend declares it again before
publishing to it whenever its last declaration is older than
:data:`RENEW_AFTER`, so it always outlives its messages. An index queue per
bridge queue, declared with every holding queue and living longer than any,
says whether the bridge queue has any holding queue at all, so counting a
queue that never delayed costs one look, not one per bucket.

Held queues. Items set aside (``hold_item``) wait in their bridge queue's
held queue, ``bridge.held.<name>``, in the order they were held, until
kicked back or deleted. It has the type the bridge queue is declared with:
a quorum queue gets the same ``x-delivery-limit``, which keeps the order
through the requeues of a look and never drops a message however often it
is looked at; a classic one gets no priorities, which would reorder it. It
has nothing that could drop a message (no expiry, no length limit, none of
``queue_arguments``), is declared at the first hold and lives until its
bridge queue is deleted.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from bridge.errors import ConfigurationError

QueueType = Literal["quorum", "classic"]

QUORUM_SINCE = (3, 10)
"""The first RabbitMQ with message TTL and at-least-once dead-lettering on quorum queues."""
DELIVERY_LIMIT = 2**31 - 1
BUCKETS_MS: tuple[int, ...] = tuple(2**k for k in range(8, 32))
"""Holding-queue buckets: each holds the delays above the one before, up to itself."""
MAX_DELAY = BUCKETS_MS[-1] // 1000
"""The longest delay, in seconds: RabbitMQ keeps TTLs and expiries in 32 bits of milliseconds."""
EXPIRES_MARGIN_MS = 600_000
RENEW_AFTER = 300.0
"""Seconds after which a holding queue is declared again before use (half the margin)."""
HOLDING_PREFIX = "bridge.delay."
HELD_PREFIX = "bridge.held."
RESERVED_PREFIXES = ("amq.", HOLDING_PREFIX, HELD_PREFIX)
"""Queue names bridge refuses: RabbitMQ's own, and those of its holding and held queues."""
_MAX_NAME_BYTES = 255


@dataclass(frozen=True)
class Layout:
    """The queue type and declare arguments the options ask for."""

    queue_type: QueueType | None
    """None: quorum where the server has it (:data:`QUORUM_SINCE`), classic elsewhere."""
    max_priority: int | None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        queue_type: str | None,
        max_priority: int | None,
        queue_arguments: Mapping[str, Any] | None,
    ) -> Layout:
        """Check the options and settle what they leave open."""
        extra = dict(queue_arguments or {})
        if "x-max-priority" in extra:
            raise ConfigurationError(
                "set priorities with the max_priority option, not x-max-priority"
            )
        named = extra.pop("x-queue-type", None)
        if named is not None and queue_type is not None and named != queue_type:
            raise ConfigurationError(
                f"queue_type={queue_type!r} and queue_arguments' x-queue-type={named!r} disagree"
            )
        chosen = queue_type if queue_type is not None else named
        if chosen not in (None, "quorum", "classic"):
            raise ConfigurationError(f"queue_type must be 'quorum' or 'classic', not {chosen!r}")
        kind: QueueType | None = (
            "quorum" if chosen == "quorum" else ("classic" if chosen == "classic" else None)
        )
        if max_priority is not None and (
            isinstance(max_priority, bool)
            or not isinstance(max_priority, int)
            or not 1 <= max_priority <= 255
        ):
            raise ConfigurationError(
                f"max_priority must be an int from 1 to 255, not {max_priority!r}"
            )
        if kind == "quorum" and max_priority is not None:
            raise ConfigurationError(
                "max_priority needs classic queues (x-max-priority); RabbitMQ 4's quorum queues "
                "have two priority levels served 2:1, not strict order: leave queue_type unset"
            )
        return cls(kind, max_priority, extra)

    @property
    def strict(self) -> bool:
        """Whether a queue declared otherwise is an error (else it is used as it is)."""
        return self.queue_type is not None or self.max_priority is not None

    def main_type(self, version: tuple[int, ...] | None) -> QueueType:
        if self.queue_type is not None:
            return self.queue_type
        if self.max_priority is not None:
            return "classic"
        return "quorum" if has_quorum(version) else "classic"

    def main_arguments(self, version: tuple[int, ...] | None) -> dict[str, Any]:
        arguments = dict(self.extra)
        if self.main_type(version) == "quorum":
            arguments.update({"x-queue-type": "quorum", "x-delivery-limit": DELIVERY_LIMIT})
        elif self.max_priority is not None:
            arguments["x-max-priority"] = self.max_priority
        return arguments

    def holding_type(self, version: tuple[int, ...] | None) -> QueueType:
        """Quorum where the server has it, unless classic queues were asked for."""
        return "quorum" if has_quorum(version) and self.queue_type != "classic" else "classic"

    def holding_arguments(
        self, name: str, bucket_ms: int, version: tuple[int, ...] | None
    ) -> dict[str, Any]:
        arguments: dict[str, Any] = {
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": name,
            "x-expires": bucket_ms + EXPIRES_MARGIN_MS,
        }
        if self.holding_type(version) == "quorum":
            # Without reject-publish, a quorum queue dead-letters at most once.
            arguments.update(
                {
                    "x-queue-type": "quorum",
                    "x-overflow": "reject-publish",
                    "x-dead-letter-strategy": "at-least-once",
                }
            )
        return arguments

    def held_arguments(self, version: tuple[int, ...] | None) -> dict[str, Any]:
        """The held queue: the bridge queue's type, and nothing that drops or reorders."""
        if self.main_type(version) == "quorum":
            return {"x-queue-type": "quorum", "x-delivery-limit": DELIVERY_LIMIT}
        return {}

    def index_arguments(self, version: tuple[int, ...] | None) -> dict[str, Any]:
        arguments: dict[str, Any] = {"x-expires": BUCKETS_MS[-1] + 2 * EXPIRES_MARGIN_MS}
        if self.holding_type(version) == "quorum":
            arguments["x-queue-type"] = "quorum"
        return arguments


def has_quorum(version: tuple[int, ...] | None) -> bool:
    return version is not None and version[:2] >= QUORUM_SINCE


def parse_version(value: object) -> tuple[int, ...] | None:
    """``(3, 10, 8)`` from a server's ``version`` property ("3.10.8", b"4.0.0-rc.2")."""
    text = value.decode(errors="replace") if isinstance(value, bytes) else str(value or "")
    match = re.match(r"\d+(?:\.\d+)*", text)
    return tuple(int(part) for part in match.group().split(".")) if match else None


def bucket_for(delay: float) -> int:
    """The holding bucket (milliseconds) of a delay in seconds."""
    wanted = expiration_ms(delay)
    for bucket in BUCKETS_MS:
        if wanted <= bucket:
            return bucket
    raise ValueError(f"a delay of {delay} s is past the longest, {MAX_DELAY} s")


def expiration_ms(delay: float) -> int:
    """A delay as the message ``expiration``: whole milliseconds, never early."""
    return max(1, math.ceil(delay * 1000))


def holding_name(name: str, bucket_ms: int) -> str:
    return _derived(f"{HOLDING_PREFIX}{bucket_ms}ms.", name)


def index_name(name: str) -> str:
    return _derived(f"{HOLDING_PREFIX}index.", name)


def held_name(name: str) -> str:
    return _derived(HELD_PREFIX, name)


def _derived(prefix: str, name: str) -> str:
    """``prefix`` + ``name``, or + the name's SHA-256 when that passes RabbitMQ's 255 bytes."""
    derived = prefix + name
    if len(derived.encode()) <= _MAX_NAME_BYTES:
        return derived
    return prefix + "sha256-" + hashlib.sha256(name.encode()).hexdigest()
