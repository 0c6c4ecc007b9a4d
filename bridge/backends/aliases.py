"""URL schemes that name another backend, and Kombu transports bridge refuses.

bridge's RabbitMQ and SQS backends were first reached through Kombu-style
``kombu+<transport>://`` URLs. Those stay accepted: ``kombu+amqp://`` (and
``kombu+amqps://``, ``kombu+pyamqp://``) is the RabbitMQ backend's
``amqp://``; ``kombu+sqs://`` is the SQS backend's ``sqs://`` and logs a
deprecation once per process, since that backend talks to SQS through boto3,
not Kombu. Any other Kombu transport is refused with the reason, from
:data:`REFUSED`, or as unchecked.
"""

from __future__ import annotations

import logging

from bridge.errors import ConfigurationError
from bridge.urls import mask_password

log = logging.getLogger(__name__)

KOMBU_PREFIX = "kombu+"

ALIASES: dict[str, tuple[str, bool]] = {
    "amqp": ("amqp", False),
    "amqps": ("amqps", False),
    "pyamqp": ("amqp", False),
    "sqs": ("sqs", True),
}
"""Kombu transport -> (bridge scheme, whether the alias is deprecated)."""

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


_warned: set[str] = set()


def resolve(url: str) -> str:
    """``url`` with a ``kombu+`` alias replaced by bridge's own scheme; refused ones raise."""
    if not url.lower().startswith(KOMBU_PREFIX):
        return url
    rest = url[len(KOMBU_PREFIX) :]
    scheme, sep, tail = rest.partition("://")
    transport = scheme.split("+", 1)[0].lower()
    if not sep or not transport:
        raise ConfigurationError(
            f"{mask_password(url)} names no Kombu transport; expected kombu+<transport>://..."
        )
    if transport in REFUSED:
        raise ConfigurationError(
            f"bridge refuses Kombu's {transport!r} transport ({mask_password(url)}): "
            f"{REFUSED[transport]}"
        )
    if transport not in ALIASES:
        known = ", ".join(f"kombu+{name}" for name in sorted(ALIASES))
        raise ConfigurationError(
            f"bridge does not serve Kombu's {transport!r} transport ({mask_password(url)}): "
            f"it only drives transports whose redelivery it has checked ({known})"
        )
    target, deprecated = ALIASES[transport]
    if deprecated and transport not in _warned:
        _warned.add(transport)
        log.warning(
            "kombu+%s:// URLs are deprecated; use %s:// (%s)", transport, target, mask_password(url)
        )
    return f"{target}://{tail}"
