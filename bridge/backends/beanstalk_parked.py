"""Waiting for items on beanstalkd (``bridge queue watch``): a blocking reserve, parked.

beanstalkd tells a connection that a job is ready only by handing it over:
``reserve-with-timeout`` on the watched tubes returns the moment a job is
put (or its delay ends, or another connection releases it). So
``wait_for_items(names, timeout)`` watches the tubes of ``names`` on the
backend object's one connection and reserves with a timeout of whole
seconds (beanstalkd counts no less); below one second it reserves with 0
and sleeps the rest, as a store that cannot wait would.

A job the wait reserves is *parked*: kept as a claim of this object, with
no token handed out, under a park lease of :data:`PARK_LEASE`. The next
``claim_items`` of its queue hands it out first, under a new token and the
lease it asks for, with its ``attempts`` as the reserve that parked it
counted them: once. Releasing it and reserving it again would count a
second reservation, one more attempt towards ``max_attempts``.

A parked job is never lost and never hidden for long:

- a claim of its queue takes it at any age (within its ttr);
- when its park lease ends, this object's next claim of any queue,
  ``garbage_collection`` of its queue, ``release_all`` or ``close``
  releases it (``release``, at its own priority: back in its place);
- a wait that does not name its queue (the watcher rests that queue)
  releases it at once;
- a process that dies, or closes or loses its connection, has it back in
  the tube at once: beanstalkd releases a connection's reservations;
- ``counts`` shows it ready and ``peek`` first, as this object's ended
  leases are shown; ``delete_queue`` deletes it.

The wait also ends (True) when this object knows that an item of ``names``
becomes claimable: a lease it holds ends (its next claim releases it), or a
fractional delay it set passes (``beanstalk_delays.py``). ``DEADLINE_SOON``
(a reservation of this connection within a second of its ttr) ends it too,
so that the claim that follows releases what it must.

The first wait on a queue returns True at once (the contract: the caller
claims first), and so does a wait while a named queue has a parked job. The
wait holds the backend's lock, as every call on its one connection must: a
call from another thread of the process waits for it (at most ``timeout``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from bridge.backends import beanstalk_looks as looks
from bridge.backends import beanstalk_wire as wire
from bridge.backends.beanstalk_claims import Claim, Claims
from bridge.items import StoredItem

PARK_LEASE = 1.0
"""Seconds a parked job waits for a claim of its queue before any claim here releases it.

The watcher claims within milliseconds of its wait; a claim of its own queue
takes a parked job at any age, so this bounds only how long another queue's
pass, or a caller that never claims, keeps it from other claimers.
"""
TTR_MARGIN = 1.0
"""A parked job this close to the end of its ttr is released, not handed out:
beanstalkd may hand it to another connection at any moment."""


class Waiter:
    """The waits of one backend object: which queues it has waited on."""

    def __init__(self) -> None:
        self.forget()

    def forget(self) -> None:
        """No queue waited on yet: at start-up, after a lost connection, in a forked child."""
        self._waited: set[str] = set()

    def first(self, names: Sequence[str]) -> bool:
        """Whether a name was not waited on before (the caller claims first, at once)."""
        new = not self._waited.issuperset(names)
        self._waited.update(names)
        return new


def wait(
    g: Any,
    conn: wire.Connection,
    claims: Claims,
    tubes: dict[str, str],
    timeout: float,
    due: float | None,
) -> bool:
    """Reserve on ``tubes`` (tube to queue name) up to ``timeout`` s; park what comes.

    ``due``: the epoch time an item of these queues becomes claimable here,
    if this object knows one; the wait ends then.
    """
    if due is not None:
        left = due - time.time()
        if left <= 0:
            return True
        timeout = min(timeout, left)
    client = conn.watch(*tubes)
    seconds = math.floor(timeout)
    started = time.time()
    try:
        job = client.reserve(seconds)
    except g.TimedOutError:
        if seconds == 0:
            time.sleep(max(0.0, timeout - (time.time() - started)))
        return due is not None and time.time() >= due
    except g.DeadlineSoonError:
        return True
    park(g, client, claims, tubes, job, started)
    return True


def park(
    g: Any, client: Any, claims: Claims, tubes: dict[str, str], job: Any, started: float
) -> None:
    """Keep a job the wait reserved as a parked claim of its queue."""
    stats = client.stats_job(job.id)
    name = tubes.get(stats["tube"])
    if name is None:  # not a tube this wait watched: cannot happen, but never keep it
        client.release(job, stats["pri"], 0)
        return
    stored = looks.reserved(job, stats, started)
    claims.add(name, job.id, stats["pri"], time.time() + PARK_LEASE, stats["buries"], parked=stored)


def hand_out(
    claims: Claims, name: str, count: int, lease_time: float, release: Callable[[Claim], Any]
) -> list[StoredItem]:
    """Up to ``count`` parked jobs of ``name``, each under a new token and ``lease_time``.

    Their attempts are the reserve count the wait saw, which that reserve
    included. One too near the end of its ttr is released instead.
    """
    handed: list[StoredItem] = []
    now = time.time()
    for claim in claims.parked(name):
        if len(handed) == count:
            break
        stored = claim.parked
        assert stored is not None
        claims.end(claim)
        if stored.expire - now <= TTR_MARGIN:
            release(claim)
            continue
        expire = min(now + lease_time, stored.expire)
        token = claims.add(name, claim.job_id, claim.pri, expire, claim.kicks)
        handed.append(stored._replace(expire=expire, token=token))
    return handed


def stale(claims: Claims, name: str) -> list[Claim]:
    """Parked jobs of queues other than ``name`` whose park lease has ended."""
    now = time.time()
    return [claim for claim in claims.parked() if claim.name != name and claim.expire <= now]


def elsewhere(claims: Claims, names: Iterable[str]) -> list[Claim]:
    """Parked jobs of queues not in ``names``: a wait that leaves their queue out
    (the watcher rests it) gives them back at once."""
    waited = set(names)
    return [claim for claim in claims.parked() if claim.name not in waited]
