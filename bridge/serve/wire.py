"""What crosses the wire: Zaqar v2's limits, request checks and JSON shapes.

The limits are Zaqar's defaults (its ``[transport]`` options), so a client
written against Zaqar meets the same refusals here. Every refusal is an
:class:`ApiError`, which the app turns into Zaqar's error document,
``{"title": ..., "description": ...}``, with the status Zaqar uses.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any
from urllib.parse import quote

from bridge.items import QueueItem, Undecodable

QUEUE_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
MAX_QUEUES_PAGE = 20
DEFAULT_QUEUES_PAGE = 10
MAX_MESSAGES_PAGE = 20
DEFAULT_MESSAGES_PAGE = 10
MAX_POST_BYTES = 262_144
MIN_MESSAGE_TTL, MAX_MESSAGE_TTL, DEFAULT_MESSAGE_TTL = 60, 1_209_600, 3600
MAX_MESSAGE_DELAY = 900
MIN_CLAIM_TTL, MAX_CLAIM_TTL, DEFAULT_CLAIM_TTL = 60, 43_200, 300
MIN_GRACE, MAX_GRACE, DEFAULT_GRACE = 60, 43_200, 60
MAX_CLAIM_LIMIT, DEFAULT_CLAIM_LIMIT = 20, 10


class ApiError(Exception):
    """A refusal with Zaqar's status, title and description."""

    def __init__(self, status: int, title: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.title = title
        self.description = description


def bad(description: str, title: str = "Invalid API request") -> ApiError:
    return ApiError(400, title, description)


def queue_name(name: str) -> str:
    if not QUEUE_NAME.match(name):
        raise bad(
            "Queue names may not be more than 64 characters long, and may contain only "
            "ASCII letters, digits, underscores and dashes.",
            "Invalid queue identification",
        )
    return name


def client_id(value: str | None) -> str:
    """Zaqar's ``Client-ID``: required, a UUID (with or without dashes)."""
    if not value:
        raise bad("The Client-ID header is required.", "Missing header")
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise bad("Client-ID must be a UUID.", "Malformed header") from None


def json_body(raw: bytes) -> Any:
    if len(raw) > MAX_POST_BYTES:
        raise bad(f"The request body may be at most {MAX_POST_BYTES} bytes.")
    if not raw.strip():
        raise bad("The request body is empty; a JSON document is expected.", "Malformed JSON")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise bad("The request body is not valid JSON.", "Malformed JSON") from None


def int_in(what: str, value: Any, low: int, high: int, default: int) -> int:
    """An integer field or query parameter from ``low`` to ``high``; ``default`` when absent."""
    if value is None:
        return default
    if isinstance(value, str):
        if not re.fullmatch(r"-?[0-9]{1,12}", value.strip()):
            raise bad(f"{what} must be an integer from {low} to {high}, not {value!r}.")
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise bad(f"{what} must be an integer from {low} to {high}, not {value!r}.")
    return value


def flag(what: str, value: str | None) -> bool:
    if value is None:
        return False
    if value.lower() in ("true", "1", "yes"):
        return True
    if value.lower() in ("false", "0", "no"):
        return False
    raise bad(f"{what} must be true or false, not {value!r}.")


def posted_messages(document: Any) -> list[tuple[Any, int, int]]:
    """``{"messages": [{"body", "ttl", "delay"}, ...]}`` as (body, ttl, delay) triples."""
    messages = document.get("messages") if isinstance(document, dict) else None
    if not isinstance(messages, list) or not messages:
        raise bad('The body must be {"messages": [...]} with 1 or more messages.')
    if len(messages) > MAX_MESSAGES_PAGE:
        raise bad(f"At most {MAX_MESSAGES_PAGE} messages may be posted at once.")
    posted = []
    for message in messages:
        if not isinstance(message, dict) or "body" not in message:
            raise bad('Every message must be an object with a "body".')
        ttl = int_in(
            "ttl", message.get("ttl"), MIN_MESSAGE_TTL, MAX_MESSAGE_TTL, DEFAULT_MESSAGE_TTL
        )
        delay = int_in("delay", message.get("delay"), 0, MAX_MESSAGE_DELAY, 0)
        posted.append((message["body"], ttl, delay))
    return posted


def _terms(document: Any) -> dict[str, Any]:
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise bad('The body must be an object such as {"ttl": 300, "grace": 60}.')
    return document


def claim_terms(document: Any) -> tuple[int, int]:
    """A new claim's ``ttl`` and ``grace`` from its body, Zaqar's defaults where absent."""
    terms = _terms(document)
    return (
        int_in("ttl", terms.get("ttl"), MIN_CLAIM_TTL, MAX_CLAIM_TTL, DEFAULT_CLAIM_TTL),
        int_in("grace", terms.get("grace"), MIN_GRACE, MAX_GRACE, DEFAULT_GRACE),
    )


def renewal_terms(document: Any, ttl: int, grace: int) -> tuple[int, int]:
    """A renewal's ``ttl`` and ``grace``; the claim's own (``ttl``, ``grace``) where absent."""
    terms = _terms(document)
    return (
        int_in("ttl", terms.get("ttl"), MIN_CLAIM_TTL, MAX_CLAIM_TTL, ttl),
        int_in("grace", terms.get("grace"), MIN_GRACE, MAX_GRACE, grace),
    )


def queue_href(name: str) -> str:
    return f"/v2/queues/{name}"


def message_href(name: str, message_id: str, claim_id: str | None = None) -> str:
    href = f"{queue_href(name)}/messages/{quote(message_id, safe='')}"
    return href if claim_id is None else f"{href}?claim_id={claim_id}"


def message(
    name: str, item: QueueItem, claim_id: str | None = None, now: float | None = None
) -> dict[str, Any]:
    """A message as Zaqar lists it: only the fields zaqarclient's Message accepts.

    ``ttl`` is Zaqar's longest: bridge keeps a message until it is deleted
    (docs/serve.md), so no shorter time to live would be true.
    """
    now = time.time() if now is None else now
    message_id = str(item.item_id)
    body = None if isinstance(item.data, Undecodable) else item.data
    return {
        "id": message_id,
        "href": message_href(name, message_id, claim_id),
        "ttl": MAX_MESSAGE_TTL,
        "age": max(0, int(now - item.created)),
        "body": body,
        "claim_count": item.attempts,
    }
