"""Which Kombu transports the kombu backend serves, and what each really does.

Kept apart from the implementations so the per-transport facts sit in one
place a reader (and ``tests/test_kombu.py``) can check against behaviour:

* :data:`SERVED`: the transports bridge drives, by family (``amqp``, ``sqs``).
* :data:`REFUSED`: the transports bridge refuses, each with the reason and
  the bridge backend to use instead. They are refused rather than degraded
  because a consumer that crashes on them loses its message for good
  (``docs/kombu.md`` gives the evidence).
* :func:`capabilities_for`: the :class:`~bridge.queue.Capabilities` of a
  family, given its options.

Also here: the URL split (``kombu+<transport>://...``) and the small pieces
both implementations share (claim tokens, the ``bridge-created`` header).
"""

from __future__ import annotations

import secrets

from bridge.contract import Capabilities
from bridge.errors import ConfigurationError
from bridge.urls import mask_password

SCHEME_PREFIX = "kombu+"

SERVED: dict[str, str] = {
    "amqp": "amqp",
    "amqps": "amqp",
    "pyamqp": "amqp",
    "sqs": "sqs",
}
"""Transport name (as Kombu spells it in a URL) → the implementation family."""

_INSTEAD = (
    "use bridge's SQL backend instead for a reliable queue with exact leases and crash "
    "recovery (sqlite:///path/to/queue.sqlite, postgresql://user@host/db), or its memory "
    "backend (memory://) for an in-process one"
)

REFUSED: dict[str, str] = {
    "sqla": (
        "Kombu's SQLAlchemy transport commits a fetched row as invisible before it is "
        "acknowledged, so a consumer that crashes loses the message for good (it is never "
        "redelivered), and acknowledged rows are never deleted; " + _INSTEAD
    ),
    "filesystem": (
        "Kombu's filesystem transport moves a message's file out of the queue when it is "
        "fetched and keeps the unacknowledged message only in the consumer's memory, so a "
        "consumer that crashes loses it and it is never redelivered; " + _INSTEAD
    ),
    "memory": (
        "Kombu's memory transport lives in one process and never restores unacknowledged "
        "messages, not even on close, so they are lost and never redelivered; " + _INSTEAD
    ),
    "redis": (
        "Kombu's Redis transport restores unacknowledged messages only from a consuming "
        "loop, after a database-wide visibility_timeout, never for the single-message "
        "fetches bridge claims with, so a crashed claimer's messages stay unacknowledged; "
        "use bridge's own Redis backend instead (exact per-item leases): redis://host:6379/0"
    ),
}
REFUSED["sqlalchemy"] = REFUSED["sqla"]
REFUSED["rediss"] = REFUSED["sentinel"] = REFUSED["redis"]

CREATED_HEADER = "bridge-created"
"""Message header (AMQP) or attribute (SQS) holding the creation time, epoch seconds."""


def split_url(url: str) -> tuple[str, str]:
    """``kombu+amqp://h//`` → ``("amqp", "amqp://h//")``; refused transports raise.

    The transport is the part of the scheme before any ``+`` (Kombu's own
    ``sqla+postgresql://`` spelling), lower-cased.
    """
    if not url.lower().startswith(SCHEME_PREFIX):
        raise ConfigurationError(
            f"{mask_password(url)} is not a kombu backend URL; expected "
            "kombu+<transport>://..., such as kombu+amqp://guest@localhost//"
        )
    broker_url = url[len(SCHEME_PREFIX):]
    scheme, sep, _ = broker_url.partition("://")
    transport = scheme.split("+", 1)[0].lower()
    if not sep or not transport:
        raise ConfigurationError(
            f"{mask_password(url)} names no Kombu transport; expected kombu+<transport>://..."
        )
    if transport in REFUSED:
        raise ConfigurationError(
            f"the kombu backend refuses the {transport!r} transport of "
            f"{mask_password(url)}: {REFUSED[transport]}"
        )
    if transport not in SERVED:
        served = ", ".join(sorted(SERVED))
        raise ConfigurationError(
            f"the kombu backend does not serve the {transport!r} transport of "
            f"{mask_password(url)}: bridge only drives transports whose redelivery it "
            f"has checked ({served})"
        )
    return SERVED[transport], broker_url


def capabilities_for(family: str, *, priority: bool = False) -> Capabilities:
    """What a transport family does; ``priority`` for an AMQP queue with x-max-priority.

    amqp: reliable (durable queues, persistent messages, committed publishes;
    a dead claimer's messages are redelivered at once) and shared, but the
    lease is emulated by the claiming connection (see ``kombu.py``), which is
    also why ``extend_lease`` is local. No delay: RabbitMQ has none without a
    plugin. Counts see ready messages and this backend's own claims only.

    sqs: the lease is SQS's visibility timeout, set at every receive, so it
    holds exactly (to the whole second SQS counts in) even if the claimer
    dies; delay is DelaySeconds (up to 900 s); counts include in-flight and
    delayed messages, approximately (SQS's own counters). No priority.
    """
    if family == "amqp":
        return Capabilities(
            reliable=True, shared=True, lease="emulated", extend_lease=True,
            delay=False, priority=priority, counts_leased=False,
            crash_recovery="disconnect", settle_anywhere=False,
        )
    if family == "sqs":
        return Capabilities(
            reliable=True, shared=True, lease="exact", extend_lease=True,
            delay=True, priority=False, counts_leased=True,
            ordered=False, cancel_delays=False,
        )
    raise ConfigurationError(f"no capabilities known for transport family {family!r}")


def new_token(owner: str) -> str:
    """A claim token naming the backend object that issued it.

    ``owner`` lets a backend tell a claim of its own that it has since lost
    (the call returns False) from a claim made through another connection
    or process, which no broker lets it settle (an explicit error).
    """
    return f"{owner}.{secrets.token_hex(8)}"


def token_owner(token: str) -> str:
    """The ``owner`` part of a token from :func:`new_token` ("" for a peeked item's)."""
    return token.rpartition(".")[0]
