"""The jobs one beanstalkd backend object has reserved, each under a claim token.

beanstalkd ties a reservation to the connection that made it, so a token
names the backend object (``tokens.py``): a claim of its own that it has
since lost answers False, a claim made through another object or process is
refused with :class:`~bridge.errors.UnsupportedOperationError`. A forked
child starts a new :class:`Claims` with a new owner.
"""

from __future__ import annotations

import itertools
import time
import uuid
from dataclasses import dataclass

from bridge.backends.tokens import new_token, token_owner
from bridge.errors import UnsupportedOperationError
from bridge.items import QueueItem, StoredItem


@dataclass(slots=True)
class Claim:
    """A job reserved on this object's connection, and the lease kept for it here."""

    token: str
    name: str
    job_id: int
    pri: int
    """beanstalkd's priority, given back with a release so the job keeps its place."""
    expire: float
    seq: int
    kicks: int = 0
    """How often the job had been kicked back from buried when it was reserved (its
    ``buries``): the runner's ``max_attempts`` counts anew from each kick."""
    parked: StoredItem | None = None
    """A job a wait reserved, not handed out yet (``beanstalk_parked.py``): the item
    the next claim of its queue hands out, as it was when reserved; ``expire`` is
    then the end of its park lease."""


class Claims:
    """Reservations of one backend object, by token; the latest claim of each job wins."""

    def __init__(self) -> None:
        self.owner = uuid.uuid4().hex[:12]
        self._by_token: dict[str, Claim] = {}
        self._by_job: dict[int, str] = {}
        self._parked: set[str] = set()
        """Tokens of the parked claims: so that a claim, which asks for them first,
        looks at those few rather than at every claim held here."""
        self._seq = itertools.count()

    def add(
        self,
        name: str,
        job_id: int,
        pri: int,
        expire: float,
        kicks: int = 0,
        parked: StoredItem | None = None,
    ) -> str:
        """A new claim on a job just reserved; an older claim of it here is over."""
        old = self._by_job.pop(job_id, None)
        if old is not None:
            self._by_token.pop(old, None)
            self._parked.discard(old)
        token = new_token(self.owner)
        seq = next(self._seq)
        self._by_token[token] = Claim(token, name, job_id, pri, expire, seq, kicks, parked)
        self._by_job[job_id] = token
        if parked is not None:
            self._parked.add(token)
        return token

    def get(self, name: str, item: QueueItem, url: str) -> Claim | None:
        """The claim ``item`` holds here, None if it is over; another object's is refused."""
        if not item.token:
            return None  # a peeked item holds no claim
        if token_owner(item.token) != self.owner:
            raise UnsupportedOperationError(
                f"item {item.item_id!r} was claimed through another connection to {url}; "
                "beanstalkd lets only the connection that reserved a job settle it "
                "(capabilities.settle_anywhere is False)"
            )
        claim = self._by_token.get(item.token)
        if claim is None or claim.name != name or claim.job_id != item.item_id:
            return None
        return claim

    def end(self, claim: Claim) -> None:
        self._by_token.pop(claim.token, None)
        self._parked.discard(claim.token)
        if self._by_job.get(claim.job_id) == claim.token:
            del self._by_job[claim.job_id]

    def of(self, name: str) -> list[Claim]:
        """The queue's claims, oldest first."""
        found = [claim for claim in self._by_token.values() if claim.name == name]
        return sorted(found, key=lambda claim: claim.seq)

    def expired(self, name: str) -> list[Claim]:
        """The queue's claims whose lease has ended, oldest first (parked ones too)."""
        now = time.time()
        return [claim for claim in self.of(name) if claim.expire <= now]

    def parked(self, name: str | None = None) -> list[Claim]:
        """Jobs a wait reserved and no claim took yet, of ``name`` (None: every queue)."""
        if not self._parked:
            return []
        found = (self._by_token[token] for token in self._parked)
        return sorted((c for c in found if name is None or c.name == name), key=lambda c: c.seq)

    def idle(self, name: str) -> list[Claim]:
        """Held here but claimable by this object's next claim: parked, then ended leases."""
        now = time.time()
        ended = [c for c in self.of(name) if c.parked is None and c.expire <= now]
        return self.parked(name) + ended

    def clear(self) -> None:
        """The connection is gone: beanstalkd released every reservation it held."""
        self._by_token.clear()
        self._by_job.clear()
        self._parked.clear()
