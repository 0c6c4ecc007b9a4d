"""Held items on SQS: one look over a queue's held queue, and what is done with it.

SQS lists nothing and orders nothing, so every operation on held items
starts with a look: receive every message of the held queue, hidden for
:data:`LOOK_HIDE` s so that two operators never kick one item twice, then
sort by ``held_at``. "Oldest held first" is exact within what one look
sees; a message SQS did not hand out this time (its counters lag, or
another look has it hidden) is left for the next. What a look took and did
not use is made visible again at once.

Moves between queues are a send followed by a delete, never the other way
round: a crash in between leaves the item in both queues (SQS has no
transaction across queues), never in neither. A look merges copies of one
item, so such a duplicate is listed, kicked and deleted as one item.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bridge.backends.sqs_claims import Claim, replace
from bridge.backends.sqs_client import BATCH, SqsClient
from bridge.backends.sqs_layout import SqsLayout
from bridge.backends.sqs_messages import Message, copy_of, held, resend, sent_at
from bridge.errors import BackendError
from bridge.items import ItemId, StoredItem

log = logging.getLogger(__name__)

LOOK_HIDE = 30
"""Seconds a look hides the held messages it received, while it decides."""
REFRESH_AFTER = 7 * 86_400
"""A held message this old is sent again, so that SQS's 14-day retention never ends it."""
REFRESH_EVERY = 86_400
"""How often (at most, across processes) a held queue is looked over for old messages."""
_REFRESHED_TAG = "bridge-refreshed"


@dataclass(slots=True)
class Held:
    """One held item: how it is listed, the copy a kick sends back, every copy's handle."""

    item: StoredItem
    message: Message
    handles: list[str] = field(default_factory=list)


Choice = Callable[[list["Held"]], list["Held"]]
"""Which of the held items a look saw (oldest held first) an operation takes."""


def hold(
    client: SqsClient,
    queue_url: str,
    held_url: str,
    claim: Claim,
    reason: str,
    error: str | None,
    now: float,
) -> None:
    """Copy a claimed item to the held queue (with its attempts), then delete it; ends the claim."""
    row = claim.item
    last_error = row.last_error if error is None else error
    copy = copy_of(row, attempts=row.attempts, error=last_error, held_at=now, reason=reason)
    replace(client, queue_url, held_url, claim, copy)
    claim.state = "ended"


def oldest(limit: int | None) -> Choice:
    return lambda entries: entries[:limit]


def one(item_id: ItemId) -> Choice:
    wanted = str(item_id)
    return lambda entries: [entry for entry in entries if str(entry.item.item_id) == wanted][:1]


def act(layout: SqsLayout, name: str, choose: Choice, *, kick: bool) -> list[str]:
    """One look over ``name``'s held queue: kick or delete the chosen items, show the rest.

    Returns the ids of the items kicked or deleted.
    """
    client, held_url = layout.client, layout.held_url(name)
    if held_url is None:
        return []
    entries = look(client, held_url)
    chosen = choose(entries)
    put_back(client, held_url, [entry for entry in entries if entry not in chosen])
    if not chosen:
        return []
    if kick:
        done = _move(client, layout.ensure_queue(name), held_url, chosen, unheld=True)
    else:
        done = _delete(client, held_url, chosen)
    return [str(entry.item.item_id) for entry in done]


def listed(layout: SqsLayout, name: str, limit: int) -> list[StoredItem]:
    """Up to ``limit`` held items, oldest held first; a look that hides none afterwards."""
    held_url = layout.held_url(name)
    if held_url is None or limit == 0:
        return []
    entries = look(layout.client, held_url)
    put_back(layout.client, held_url, entries)
    return [entry.item for entry in entries[:limit]]


def look(client: SqsClient, held_url: str) -> list[Held]:
    """Every held item one look sees, oldest held first; its messages stay hidden.

    Long polling (1 s) while SQS's counter says more are there, then one
    short poll for what the counter missed: on AWS, a short poll of a small
    queue may answer empty while messages remain.
    """
    expected = client.counters(held_url)[0]
    messages: dict[str, Message] = {}
    while True:
        wait = 1 if len(messages) < expected else 0
        received = client.receive(held_url, BATCH, LOOK_HIDE, wait=wait)
        if not received:
            break
        for message in received:  # a standard queue may hand one out twice
            messages[message["MessageId"]] = message
    items: dict[str, Held] = {}
    for message in messages.values():
        row = held(message)
        entry = items.setdefault(str(row.item_id), Held(row, message))
        entry.handles.append(message["ReceiptHandle"])
        if (row.held_at or 0.0) < (entry.item.held_at or 0.0):
            entry.item, entry.message = row, message
    return sorted(items.values(), key=lambda e: (e.item.held_at or 0.0, str(e.item.item_id)))


def put_back(client: SqsClient, held_url: str, entries: list[Held]) -> None:
    """Make what a look took visible again, in the held queue."""
    client.show(held_url, [handle for entry in entries for handle in entry.handles])


def _delete(client: SqsClient, held_url: str, entries: list[Held]) -> list[Held]:
    """Delete the items (every copy); the entries of which SQS deleted a copy."""
    handles = [handle for entry in entries for handle in entry.handles]
    owners = [entry for entry in entries for _ in entry.handles]
    deleted = {id(owners[position]) for position in client.delete(held_url, handles)}
    return [entry for entry in entries if id(entry) in deleted]


def refresh_if_due(layout: SqsLayout, name: str) -> int:
    """Send again the held messages near SQS's retention; how many. At most daily.

    The day is kept as a tag of the held queue, so that processes which each
    start with ``garbage_collection`` do not each look the queue over.
    """
    client, held_url = layout.client, layout.held_url(name)
    if held_url is None or not sum(client.counters(held_url)):
        return 0
    now = time.time()
    if now - layout.tag(held_url, _REFRESHED_TAG) < REFRESH_EVERY:
        return 0
    layout.set_tag(held_url, _REFRESHED_TAG, now)
    entries = look(client, held_url)
    old = [entry for entry in entries if now - sent_at(entry.message) > REFRESH_AFTER]
    put_back(client, held_url, [entry for entry in entries if entry not in old])
    refreshed = len(_move(client, held_url, held_url, old, unheld=False))
    if refreshed:
        log.info("sent %d held items of %r on %s again", refreshed, name, client.url)
    return refreshed


def _move(
    client: SqsClient, to_url: str, held_url: str, entries: list[Held], *, unheld: bool
) -> list[Held]:
    """Send a copy of each entry to ``to_url``, then delete the entries sent.

    Kicked (``unheld``), a copy leaves the hold behind, its attempts start
    from 0, its error stays. An entry SQS refused stays held (visible again
    when the look's hide ends); the refusal is raised after the rest moved.
    """
    ids, refusals = client.send(to_url, [resend(e.message, unheld=unheld) for e in entries])
    moved = [entry for entry, sent in zip(entries, ids, strict=True) if sent is not None]
    client.delete(held_url, [handle for entry in moved for handle in entry.handles])
    if refusals:
        raise BackendError(
            f"SQS refused {len(refusals)} of {len(entries)} held items on {client.url}: "
            f"{refusals[0]}; they stay held"
        )
    return moved
