"""Zaqar claims over bridge's per-item claims: one id for the items one request claimed.

A bridge claim is a token on each item; a Zaqar claim is one id naming a
set of messages, which a client queries, renews, releases, or quotes to
delete a message. :class:`ClaimBook` keeps, in this process, which claimed
:class:`~bridge.items.QueueItem` objects (their tokens) each claim id names.

Kept in memory on purpose: the tokens are what lets a delete or a renewal
prove it still holds the item, and the store already keeps the leases, so
nothing here has to survive a restart. A restarted server forgets its
claims; their items come back when their leases end, as a crashed worker's
do. Several server processes do not share claims (docs/serve.md).
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field

from bridge.items import QueueItem


@dataclass
class Claim:
    """One Zaqar claim: its items by message id, its ttl and grace, when it ends."""

    claim_id: str
    queue: str
    items: dict[str, QueueItem]
    ttl: int
    grace: int
    client_id: str
    started: float = field(default_factory=time.monotonic)
    ends: float = 0.0

    def __post_init__(self) -> None:
        if not self.ends:
            self.ends = self.started + self.ttl

    @property
    def age(self) -> int:
        return int(time.monotonic() - self.started)


class ClaimBook:
    """Live claims by id; one that has ended is forgotten when next looked at."""

    def __init__(self) -> None:
        self._claims: dict[str, Claim] = {}
        self._lock = threading.Lock()  # handlers run in worker threads

    def add(
        self, queue: str, items: list[QueueItem], ttl: int, grace: int, client_id: str
    ) -> Claim:
        claim = Claim(
            uuid.uuid4().hex,
            queue,
            {str(item.item_id): item for item in items},
            ttl,
            grace,
            client_id,
        )
        with self._lock:
            self._forget_ended()
            self._claims[claim.claim_id] = claim
        return claim

    def get(self, queue: str, claim_id: str) -> Claim | None:
        """The live claim ``claim_id`` of ``queue``, or None (unknown, ended, another queue's)."""
        with self._lock:
            claim = self._claims.get(claim_id)
            if claim is None or claim.queue != queue:
                return None
            if claim.ends <= time.monotonic() or not claim.items:
                del self._claims[claim_id]
                return None
            return claim

    def renew(self, claim: Claim, ttl: int, grace: int) -> None:
        """Zaqar's renewal: the claim ends ``ttl`` s from now; its age keeps counting."""
        with self._lock:
            claim.ttl, claim.grace = ttl, grace
            claim.ends = time.monotonic() + ttl

    def drop_item(self, claim: Claim, message_id: str) -> None:
        with self._lock:
            claim.items.pop(message_id, None)

    def pop(self, queue: str, claim_id: str) -> Claim | None:
        """Forget the claim and return it if it was live."""
        claim = self.get(queue, claim_id)
        if claim is not None:
            with self._lock:
                self._claims.pop(claim_id, None)
        return claim

    def forget_queue(self, queue: str) -> None:
        with self._lock:
            for claim_id in [c.claim_id for c in self._claims.values() if c.queue == queue]:
                del self._claims[claim_id]

    def __len__(self) -> int:
        with self._lock:
            self._forget_ended()
            return len(self._claims)

    def _forget_ended(self) -> None:
        now = time.monotonic()
        for claim_id in [c.claim_id for c in self._claims.values() if c.ends <= now]:
            del self._claims[claim_id]
