"""How bridge's items look as SQS messages: bodies, attributes, copies.

SQS messages cannot be changed once sent, and SQS hands out no call that
reads a message by id. Everything bridge keeps beyond the payload therefore
travels in message attributes, written when a message is sent, and a change
(an error to keep, a hold, a kick) is a new copy of the message followed by
the deletion of the old one. The copy carries the item's identity, so the
item keeps its id, creation time and attempt count across copies:

==========================  ========  =============================================
attribute                   type      meaning
==========================  ========  =============================================
``bridge-encoding``         String    ``base64`` when the body is the payload in base64
``bridge-id``               String    the item's id: the MessageId of its first message
``bridge-created``          Number    the item's creation, epoch seconds
``bridge-attempts``         Number    claims made of earlier copies (held: all of them)
``bridge-error``            text      the last failed attempt's error
``bridge-held-at``          Number    when the item was held (only in the held queue)
``bridge-reason``           text      why it was held (only in the held queue)
``bridge-not-before``       Number    claimable from then on: a delay past 900 s
==========================  ========  =============================================

A message without ``bridge-id`` is an item's first message: its MessageId
and SentTimestamp are the id and creation time. ``attempts`` is
``bridge-attempts`` plus SQS's ApproximateReceiveCount of this copy, which
no call can reset. A "text" attribute is a String when SQS accepts it as
one (non-empty, characters XML allows), the UTF-8 bytes as
``Binary.utf-8`` otherwise, and ``String.empty`` for "" (SQS refuses empty
values).
"""

from __future__ import annotations

import base64
import math
import re
import time
from collections.abc import Iterable
from typing import Any, NamedTuple

from bridge.items import StoredItem

MAX_MESSAGE_DELAY = 900
"""SQS's longest DelaySeconds; a longer delay is ``bridge-not-before``."""

ENCODING = "bridge-encoding"
ID = "bridge-id"
CREATED = "bridge-created"
ATTEMPTS = "bridge-attempts"
ERROR = "bridge-error"
HELD_AT = "bridge-held-at"
REASON = "bridge-reason"
NOT_BEFORE = "bridge-not-before"
ATTRIBUTES = [ENCODING, ID, CREATED, ATTEMPTS, ERROR, HELD_AT, REASON, NOT_BEFORE]
"""Every attribute a receive asks for."""
MOVED_BY_SQS = (
    "moved to the held queue by SQS: the queue's RedrivePolicy saw more receives than its "
    "maxReceiveCount"
)
"""The reason shown for a held message that bridge did not hold itself."""

_NOT_SQS_TEXT = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

Message = dict[str, Any]
Attributes = dict[str, dict[str, Any]]


class Outgoing(NamedTuple):
    """A message to send: its body, attributes and DelaySeconds."""

    body: str
    attributes: Attributes
    delay: int

    @property
    def size(self) -> int:
        """Bytes SQS counts against its message and batch limits (about)."""
        values = sum(
            len(name) + len(str(value.get("StringValue") or value.get("BinaryValue") or ""))
            for name, value in self.attributes.items()
        )
        return len(self.body.encode("utf-8")) + values


def new(payload: bytes, delay: float) -> Outgoing:
    """An item's first message: the payload, and nothing else stored with it."""
    body, attributes = _encode(payload)
    return Outgoing(body, attributes, math.ceil(delay))


def copy_of(
    item: StoredItem,
    *,
    attempts: int,
    error: str | None,
    delay: float = 0.0,
    held_at: float | None = None,
    reason: str | None = None,
) -> Outgoing:
    """A new message standing for ``item``: same id, creation and payload."""
    body, attributes = _encode(item.payload)
    attributes[ID] = _string(str(item.item_id))
    attributes[CREATED] = _number(item.created)
    attributes[ATTEMPTS] = _number(attempts)
    if error is not None:
        attributes[ERROR] = _text(error)
    if held_at is not None:
        attributes[HELD_AT] = _number(held_at)
        attributes[REASON] = _text(reason or "")
    return _delayed(body, attributes, delay)


def resend(message: Message, *, delay: float = 0.0, unheld: bool = False) -> Outgoing:
    """A received message sent again: the same item, ``delay`` s from now.

    ``unheld``: a kick, so the copy leaves the hold behind and its attempts
    start again from 0. Anything else keeps every attribute, so the item's
    attempts stay exact (the copy's own receive count starts at 0).
    """
    attributes: Attributes = {
        name: {
            key: value[key] for key in ("DataType", "StringValue", "BinaryValue") if key in value
        }
        for name, value in message.get("MessageAttributes", {}).items()
        if name in ATTRIBUTES and name != NOT_BEFORE
    }
    if ID not in attributes:  # the item's first message (or one SQS moved to held)
        attributes[ID] = _string(str(message["MessageId"]))
        attributes[CREATED] = _number(_sent(message))
    if unheld:
        attributes[ATTEMPTS] = _number(0)
        attributes.pop(HELD_AT, None)
        attributes.pop(REASON, None)
    return _delayed(str(message["Body"]), attributes, delay)


def stored(message: Message, expire: float, looks: int) -> StoredItem:
    """The item a received message carries; ``looks``: receives that were only peeks."""
    attributes = message.get("MessageAttributes", {})
    receives = int(message.get("Attributes", {}).get("ApproximateReceiveCount", 1))
    return StoredItem(
        item_id=item_id(message),
        payload=_payload(message),
        created=_created(message),
        expire=expire,
        attempts=_int(attributes, ATTEMPTS) + receives - looks,
        priority=0,
        token=str(message["ReceiptHandle"]),
        last_error=_read_text(attributes.get(ERROR)),
    )


def held(message: Message) -> StoredItem:
    """The held item a message of the held queue carries.

    Held by bridge, it says when, why and after how many attempts. Moved
    there by SQS's own redrive, it says none of that: its sending time
    stands for when it was held, and its receive count (which this look
    raised by one) for its attempts.
    """
    attributes = message.get("MessageAttributes", {})
    held_at = attributes.get(HELD_AT)
    attempts = _int(attributes, ATTEMPTS)
    if held_at is None:
        receives = int(message.get("Attributes", {}).get("ApproximateReceiveCount", 1))
        attempts += max(receives - 1, 0)
    return StoredItem(
        item_id=item_id(message),
        payload=_payload(message),
        created=_created(message),
        expire=0.0,
        attempts=attempts,
        priority=0,
        token="",
        last_error=_read_text(attributes.get(ERROR)),
        held_at=float(held_at["StringValue"]) if held_at else _sent(message),
        hold_reason=_read_text(attributes.get(REASON)) if held_at else MOVED_BY_SQS,
    )


def item_id(message: Message) -> str:
    found = message.get("MessageAttributes", {}).get(ID)
    return str(found["StringValue"]) if found else str(message["MessageId"])


def not_before(message: Message) -> float:
    """When a copy delayed past 900 s may be claimed; 0 for any other message."""
    found = message.get("MessageAttributes", {}).get(NOT_BEFORE)
    return float(found["StringValue"]) if found else 0.0


def sent_at(message: Message) -> float:
    """When this copy was sent (SQS's SentTimestamp), epoch seconds."""
    return _sent(message)


def batches(messages: Iterable[Outgoing], most_bytes: int, most: int) -> Iterable[list[int]]:
    """Positions of ``messages`` in runs SQS takes in one batch (a bigger one alone)."""
    batch: list[int] = []
    size = 0
    for position, message in enumerate(messages):
        if batch and (len(batch) == most or size + message.size > most_bytes):
            yield batch
            batch, size = [], 0
        batch.append(position)
        size += message.size
    if batch:
        yield batch


# -- encoding ----------------------------------------------------------------------


def _delayed(body: str, attributes: Attributes, delay: float) -> Outgoing:
    if delay > MAX_MESSAGE_DELAY:
        attributes[NOT_BEFORE] = _number(time.time() + delay)
    return Outgoing(body, attributes, min(math.ceil(delay), MAX_MESSAGE_DELAY))


def _encode(payload: bytes) -> tuple[str, Attributes]:
    """The message body and attributes: text SQS accepts as is, anything else base64."""
    try:
        text = payload.decode("utf-8")
        if not _NOT_SQS_TEXT.search(text):
            return text, {}
    except UnicodeDecodeError:
        pass
    encoded = base64.b64encode(payload).decode("ascii")
    return encoded, {ENCODING: _string("base64")}


def _payload(message: Message) -> bytes:
    encoding = message.get("MessageAttributes", {}).get(ENCODING, {}).get("StringValue")
    body: str = message["Body"]
    return base64.b64decode(body) if encoding == "base64" else body.encode("utf-8")


def _string(value: str) -> dict[str, Any]:
    return {"DataType": "String", "StringValue": value}


def _number(value: float) -> dict[str, Any]:
    # Plain decimals: SQS's Number takes no exponent, and microseconds are the clock's.
    shown = str(value) if isinstance(value, int) else f"{value:.6f}"
    return {"DataType": "Number", "StringValue": shown}


def _text(value: str) -> dict[str, Any]:
    if not value:
        return {"DataType": "String.empty", "StringValue": "-"}
    if _NOT_SQS_TEXT.search(value):
        return {"DataType": "Binary.utf-8", "BinaryValue": value.encode("utf-8", "surrogatepass")}
    return _string(value)


def _read_text(value: dict[str, Any] | None) -> str | None:
    if value is None:
        return None
    if value["DataType"] == "String.empty":
        return ""
    if "BinaryValue" in value:
        return bytes(value["BinaryValue"]).decode("utf-8", "surrogatepass")
    return str(value["StringValue"])


def _int(attributes: dict[str, Any], name: str) -> int:
    found = attributes.get(name)
    return int(float(found["StringValue"])) if found else 0


def _created(message: Message) -> float:
    found = message.get("MessageAttributes", {}).get(CREATED)
    return float(found["StringValue"]) if found else _sent(message)


def _sent(message: Message) -> float:
    return int(message.get("Attributes", {}).get("SentTimestamp", time.time() * 1000)) / 1000
