"""beanstalkd queues (``beanstalk://``), spoken through greenstalk.

The queue semantics live here; ``beanstalk_wire.py`` holds the URL, tube
names, job bodies, priorities and the connection, ``beanstalk_claims.py``
the reservations this object holds, ``beanstalk_looks.py`` the looks that
reserve nothing (peek, ages, tube totals), ``beanstalk_held.py`` buried
jobs, ``beanstalk_delays.py`` fractional delays, ``beanstalk_parked.py`` the
wait of ``bridge queue watch``. ``docs/beanstalk.md`` explains the choices.

Features:
    One tube per queue. ``create_items`` puts jobs (priority and delay
    native). beanstalkd counts delays in whole seconds: a delay with a
    fraction is put rounded up, and the object that set it ends it on time
    (``kick-job`` at its next claim from the queue), so only other
    processes see it up to a second late. A claim is
    ``reserve-with-timeout 0`` and a ``stats-job`` for the attempts.
    ``wait_for_items`` (:class:`~bridge.contract.Waiting`) is a blocking
    ``reserve-with-timeout`` on the queues' tubes; the job it reserves is
    parked for the next claim of its queue, its attempt counted once.
    ``extend_lease`` is ``touch``, ``release_item`` and ``delay_item`` are
    ``release`` (with a delay), ``delete_items`` is ``delete``.

    Fencing: beanstalkd lets only the connection that reserved a job
    release, touch or bury it, and refuses another connection's delete of
    it. A claim is therefore tied to this backend object's one connection:
    its token names the object, and a call with another object's (or
    process's) claim raises :class:`~bridge.errors.UnsupportedOperationError`
    (``settle_anywhere`` False). A claim of its own that this object has
    since lost (claimed again, released, its connection dropped) answers
    False. A holder's release or delay ends its claim
    (``settle_after_release`` False): the job is back in the tube and only a
    new reservation can touch it again.

    The lease is emulated (``lease="emulated"``). beanstalkd's ttr is set per
    job when it is put, not per reservation, so jobs are put with the
    ``ttr`` option (default 3600 s) and a claim's ``lease_time`` is kept
    here: when this object next claims from the queue (or garbage-collects,
    releases all or closes), it releases the claims whose lease has ended, so
    they come back in their place. A claimer that dies or loses its
    connection has its jobs back at once: beanstalkd releases a connection's
    reservations when it closes (``crash_recovery="disconnect"``). A process
    that hangs with its connection open keeps its jobs until their ttr ends
    (beanstalkd 1.12 may wait for that connection's next command to act on
    it); ``max_lease`` stays a minute short of it, so a lease never
    outlives it.

    Holding (``beanstalk_held.py``) is ``bury`` and ``kick-job``, jobs that
    other clients buried included; what beanstalkd does not keep, the
    capabilities say. A job's body never changes and beanstalkd keeps no
    data beside it, so no error is kept (``keeps_errors`` False:
    ``fail_item`` delays or leaves the job as asked, ``last_error`` stays
    None), nor a hold's reason or time (``held_details`` False:
    ``hold_reason`` "", ``held_at`` None; only the oldest buried job is
    known to be the oldest). A kick keeps the reserve count
    (``kick_resets_attempts`` False); a claim keeps the job's ``buries``
    (``times_kicked``: each was ended by a kick) so that the runner counts
    ``max_attempts`` anew from each kick. No ``browse`` or ``remove_item``
    (beanstalkd lists no jobs, and no connection may delete another's
    reservation). ``release_all`` frees this object's claims only, and not
    delays (``cancel_delays`` False: beanstalkd kicks delayed jobs only when
    a tube has none buried). ``peek`` shows the jobs parked here and the
    claims here whose lease ended, the next ready job (``peek-ready``), then
    ready jobs found by walking job ids up from it (at most ``peek_scan``
    ids): a look, not a census. ``counts`` are ``stats-tube``'s, with this
    object's parked jobs and ended leases moved from leased to ready;
    another process's count as leased until it releases them.

    Attempts are ``stats-job``'s ``reserves``: every reservation by anyone,
    exact. ``create_items`` puts one job per payload; if one put is refused,
    the ones already put are deleted, but a connection lost in the middle
    leaves those put so far. A forked child drops its parent's connection
    unused and opens its own.

URL format:
    ``beanstalk://host:port`` (port 11300 if left out). No path, user or
    query: beanstalkd has none.

Options:
    ``tube_prefix`` (default ""): put before every tube name, to keep apart
    several bridge installations (or test runs) on one server. ``ttr`` (default
    3600): the ttr of the jobs this backend puts, in seconds; ``max_lease`` is
    a minute less (half, below two minutes). ``connect_timeout`` (default
    5 s), ``timeout`` (default 30 s): a call not answered in that time is a
    lost connection. ``peek_scan`` (default 1000): how many job ids ``peek``
    walks past the first ready job, and ``held_items`` around the oldest
    buried one.

Storage layout:
    Tube = ``tube_prefix`` + the queue name, each byte beanstalkd does not
    allow in a tube name (and ``$``) written ``$hh``; a name longer than 200
    bytes that way becomes ``$$`` + its SHA-256. Job: priority
    ``2**31 - 1 - priority`` (beanstalkd serves lower first), delay and ttr
    in whole seconds, body ``\\0bridge1\\0`` + the creation time (epoch
    seconds, six decimals, the creating process's clock) + ``\\n`` + the
    payload. Jobs of other producers are claimed too: their body is the
    payload, their creation time is beanstalkd's whole-second age. Item id =
    the job id, unique on the server (with a binlog, across restarts too).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import suppress
from typing import Any, final

from bridge.backends import beanstalk_held as held
from bridge.backends import beanstalk_looks as looks
from bridge.backends import beanstalk_parked as parked
from bridge.backends import beanstalk_wire as wire
from bridge.backends import missing_driver
from bridge.backends.beanstalk_session import Session
from bridge.contract import Backend, Capabilities, Waiting
from bridge.errors import ConfigurationError
from bridge.items import ItemCounts, ItemId, QueueItem, StoredItem


def beanstalk_capabilities(max_lease: float) -> Capabilities:
    """Reliable and shared, leases emulated, claims tied to the connection (module docstring)."""
    return Capabilities(
        reliable=True,
        shared=True,
        lease="emulated",
        extend_lease=True,
        delay=True,
        priority=True,
        counts_leased=True,
        crash_recovery="disconnect",
        settle_anywhere=False,
        ordered=True,
        cancel_delays=False,
        settle_after_release=False,
        max_lease=max_lease,
        hold=True,
        held_details=False,
        keeps_errors=False,
        kick_resets_attempts=False,
        browse=False,
        remove_item=False,
        settle_and_claim=False,
    )


@final
class BeanstalkBackend(Session, Backend, Waiting):
    """Queues on beanstalkd, one tube each; see the module docstring."""

    def __init__(
        self,
        url: str,
        *,
        tube_prefix: str = "",
        ttr: int = 3600,
        connect_timeout: float = 5.0,
        timeout: float = 30.0,
        peek_scan: int = 1000,
    ) -> None:
        super().__init__(url)
        try:
            import greenstalk
        except ImportError as exc:
            raise missing_driver(exc, url) from None
        host, port = wire.parse_url(url)
        if not isinstance(ttr, int) or not 2 <= ttr < 2**32:
            raise ConfigurationError(f"ttr must be whole seconds from 2 to 2**32 - 1, not {ttr!r}")
        self._g = greenstalk
        self._prefix = wire.check_prefix(tube_prefix)
        self._ttr = ttr
        self._peek_scan = peek_scan
        self._conn = wire.Connection(greenstalk, host, port, connect_timeout, timeout)
        self._hashed: dict[str, str] = {}
        """Tubes named by a hash, to the queue names they serve (seen by this object)."""
        self.capabilities = beanstalk_capabilities(ttr - min(60.0, ttr / 2))
        self.forget_connections()

    # -- items -------------------------------------------------------------------

    def create_items(
        self, name: str, payloads: Sequence[bytes], delay: float, priority: int
    ) -> list[ItemId]:
        with self._calling("create_items"):
            client = self._conn.use(self._tube(name))
            body_time, pri, seconds = time.time(), wire.to_pri(priority), wire.whole_seconds(delay)
            ids: list[ItemId] = []
            try:
                for payload in payloads:
                    job_id: int = client.put(wire.wrap(payload, body_time), pri, seconds, self._ttr)
                    ids.append(job_id)
                    self._delays.note(name, job_id, body_time + delay, seconds > delay)
            except self._g.Error:
                # All or none: take back what went in before the refusal.
                for put in ids:
                    with suppress(self._g.Error):
                        client.delete(put)
                raise
            return ids

    def claim_items(self, name: str, count: int, lease_time: float) -> list[StoredItem]:
        with self._calling("claim_items"):
            # Jobs a wait parked for this queue first: reserved already, their
            # attempt counted once (beanstalk_parked.py).
            claimed = parked.hand_out(self._claims, name, count, lease_time, self._release)
            self._requeue(parked.stale(self._claims, name))
            # Only as many ended leases as the claim asks for go back: the
            # rest stay this object's, still settleable by their holders.
            self._requeue(self._claims.expired(name)[: count - len(claimed)])
            self._delays.wake(self._g, self._conn.client(), name)
            client = self._conn.watch(self._tube(name))
            while len(claimed) < count:
                started = time.time()
                try:
                    job = client.reserve(0)
                except (self._g.TimedOutError, self._g.DeadlineSoonError):
                    break  # nothing ready (DEADLINE_SOON: and a reservation here nears its ttr)
                claimed.append(self._receive(client, name, job, started, lease_time))
            return claimed

    def _receive(
        self, client: Any, name: str, job: Any, started: float, lease_time: float
    ) -> StoredItem:
        """Hold a reserved job under a new token; its attempts are beanstalkd's reserve count."""
        stats = client.stats_job(job.id)
        stored = looks.reserved(job, stats, started)
        # A job another producer put may have a shorter ttr than the lease.
        expire = min(started + lease_time, stored.expire)
        token = self._claims.add(name, job.id, stats["pri"], expire, stats["buries"])
        return stored._replace(expire=expire, token=token)

    def delete_items(self, name: str, items: Sequence[QueueItem]) -> int:
        with self._calling("delete_items"):
            client = self._conn.client()
            deleted = 0
            for item in items:
                claim = self._claims.get(name, item, self.url)
                if claim is not None:
                    self._claims.end(claim)
                    deleted += self._done(client.delete, claim.job_id)
            return deleted

    def release_item(self, name: str, item: QueueItem) -> bool:
        with self._calling("release_item"):
            claim = self._claims.get(name, item, self.url)
            if claim is None:
                return False
            self._claims.end(claim)
            return bool(self._done(self._conn.client().release, self._job(claim), claim.pri, 0))

    def delay_item(self, name: str, item: QueueItem, delay: float) -> float | None:
        with self._calling("delay_item"):
            return self._delay(name, item, delay)

    def _delay(self, name: str, item: QueueItem, delay: float) -> float | None:
        claim = self._claims.get(name, item, self.url)
        if claim is None:
            return None
        self._claims.end(claim)
        seconds, now = wire.whole_seconds(delay), time.time()
        released = self._done(self._conn.client().release, self._job(claim), claim.pri, seconds)
        if not released:
            return None
        self._delays.note(name, claim.job_id, now + delay, seconds > delay)
        return now + delay

    def extend_lease(self, name: str, item: QueueItem, lease_time: float) -> float | None:
        """``touch``: beanstalkd starts the job's ttr again; the lease is kept here."""
        with self._calling("extend_lease"):
            claim = self._claims.get(name, item, self.url)
            if claim is None:
                return None
            now = time.time()
            if not self._done(self._conn.client().touch, self._job(claim)):
                self._claims.end(claim)
                return None
            claim.expire = now + lease_time
            return claim.expire

    def fail_item(
        self, name: str, item: QueueItem, error: str, delay: float | None
    ) -> float | None:
        """Delay the job, or leave it leased; the error is not kept (beanstalkd keeps no data).

        Without a delay, a ``stats-job`` confirms the job is still reserved
        (beanstalkd does not say by whom; this object holding the claim does).
        """
        with self._calling("fail_item"):
            if delay is not None:
                return self._delay(name, item, delay)
            claim = self._claims.get(name, item, self.url)
            if claim is None:
                return None
            try:
                state = self._conn.client().stats_job(claim.job_id)["state"]
            except self._g.NotFoundError:
                state = "deleted"
            if state != "reserved":
                self._claims.end(claim)
                return None
            return claim.expire

    def garbage_collection(self, name: str) -> None:
        """Release every claim of this queue held here whose lease (or park lease) has ended."""
        with self._calling("garbage_collection"):
            self._requeue(self._claims.expired(name))

    def wait_for_items(self, names: Sequence[str], timeout: float) -> bool:
        """``reserve-with-timeout`` on the queues' tubes; a job it reserves is parked
        for the next claim of its queue (``beanstalk_parked.py``)."""
        with self._calling("wait_for_items"):
            if self._waiter.first(names):
                return True  # not waiting until now: items may have come meanwhile
            self._requeue(parked.elsewhere(self._claims, names))
            if any(self._claims.parked(name) for name in names):
                return True
            tubes = {self._tube(name): name for name in names}
            try:
                return parked.wait(
                    self._g, self._conn, self._claims, tubes, timeout, self._next_due(names)
                )
            except Exception:
                raise  # an answer read whole (or a lost connection, which _calling drops)
            except BaseException:
                # Interrupted mid-reserve (the watcher's second signal): the
                # answer may be on its way, so the connection cannot be trusted;
                # dropping it makes beanstalkd release every job it reserved.
                self._lost()
                raise

    def _next_due(self, names: Sequence[str]) -> float | None:
        """When an item of ``names`` next becomes claimable here: a lease held here ends,
        or a fractional delay set here passes; None if this object knows of none."""
        times = [c.expire for n in names for c in self._claims.of(n) if c.parked is None]
        times += [due for n in names if (due := self._delays.next_due(n)) is not None]
        return min(times, default=None)

    # -- inspection ----------------------------------------------------------------

    def counts(self, name: str) -> ItemCounts:
        """``stats-tube``, with this object's ended leases counted ready."""
        with self._calling("counts"):
            try:
                stats = self._conn.client().stats_tube(self._tube(name))
            except self._g.NotFoundError:
                return ItemCounts(0, 0, 0, 0)  # beanstalkd drops a tube once empty and unused
            reserved = stats["current-jobs-reserved"]
            ended = min(len(self._claims.idle(name)), reserved)
            return ItemCounts(
                stats["current-jobs-ready"] + ended,
                reserved - ended,
                stats["current-jobs-delayed"],
                stats["current-jobs-buried"],
            )

    def oldest_ready_age(self, name: str) -> float | None:
        """The age of the next job to claim (``peek-ready``): beanstalkd shows only that one."""
        with self._calling("oldest_ready_age"):
            return looks.next_ready_age(self._g, self._conn.use(self._tube(name)))

    def queue_names(self) -> dict[str, int]:
        """Every tube under the prefix with jobs in it, by queue name."""
        with self._calling("queue_names"):
            found: dict[str, int] = {}
            for tube, total in looks.tube_totals(self._g, self._conn.client()).items():
                name = self._hashed.get(tube) or wire.name_of(self._prefix, tube)
                if name is not None:
                    found[name] = total
            return found

    def peek(self, name: str, limit: int) -> list[StoredItem]:
        """Parked jobs and ended leases held here, the next ready job, then ready jobs by
        a walk of job ids."""
        with self._calling("peek"):
            tube = self._tube(name)
            client = self._conn.use(tube)
            shown = [
                stored
                for claim in self._claims.idle(name)
                if (stored := looks.look(self._g, client, claim.job_id)) is not None
            ][:limit]
            wanted = limit - len(shown)
            if wanted > 0:
                shown += looks.ready_jobs(self._g, client, tube, wanted, self._peek_scan)
            return shown

    # -- administration -------------------------------------------------------------

    def release_all(self, name: str) -> int:
        """Release this object's claims of the queue; other connections' are out of reach."""
        with self._calling("release_all"):
            return self._requeue(self._claims.of(name))

    def delete_queue(self, name: str) -> None:
        """Delete the tube's ready, delayed and buried jobs and this object's reservations.

        Jobs reserved by other connections cannot be deleted (beanstalkd
        refuses); they stay until settled or given back.
        """
        with self._calling("delete_queue"):
            client = self._conn.use(self._tube(name))
            self._delays.forget(name)
            for claim in self._claims.of(name):
                self._claims.end(claim)
                self._done(client.delete, claim.job_id)
            for peek in (client.peek_ready, client.peek_delayed, client.peek_buried):
                while True:
                    try:
                        job = peek()
                    except self._g.NotFoundError:
                        break
                    self._done(client.delete, job.id)

    # -- holding: bury and kick (beanstalk_held.py) ----------------------------------

    def hold_item(self, name: str, item: QueueItem, reason: str, error: str | None) -> bool:
        """``bury`` the job; beanstalkd keeps neither ``reason`` nor ``error``."""
        with self._calling("hold_item"):
            claim = self._claims.get(name, item, self.url)
            if claim is None:
                return False
            self._claims.end(claim)
            return bool(self._done(self._conn.client().bury, self._job(claim), claim.pri))

    def held_items(self, name: str, limit: int) -> list[StoredItem]:
        """The oldest buried job, then the tube's others by a walk of job ids."""
        with self._calling("held_items"):
            tube = self._tube(name)
            client = self._conn.use(tube)
            return held.held_jobs(self._g, client, tube, limit, self._peek_scan)

    def kick(self, name: str, limit: int | None) -> int:
        """``kick-job`` the buried jobs, oldest buried first (never delayed ones)."""
        with self._calling("kick"):
            client = self._conn.use(self._tube(name))
            return held.each_buried(
                self._g, client, limit, lambda job: self._done(client.kick_job, job)
            )

    def kick_item(self, name: str, item_id: ItemId) -> bool:
        with self._calling("kick_item"):
            if not isinstance(item_id, int):
                return False
            client = self._conn.client()
            if not held.is_buried_in(self._g, client, item_id, self._tube(name)):
                return False
            return bool(self._done(client.kick_job, item_id))

    def delete_held(self, name: str, limit: int | None) -> int:
        with self._calling("delete_held"):
            client = self._conn.use(self._tube(name))
            return held.each_buried(
                self._g, client, limit, lambda job: self._done(client.delete, job)
            )

    def times_kicked(self, name: str, item: QueueItem) -> int:
        """``stats-job``'s ``buries`` as the claim saw it: a reserved job was kicked after each.

        Not ``kicks``: that also counts the ``kick-job`` that ends a
        fractional delay on time (``beanstalk_delays.py``). Any client's
        buries count.
        """
        with self._lock:
            claim = self._claims.get(name, item, self.url)
            return 0 if claim is None else claim.kicks

    def _tube(self, name: str) -> str:
        tube = wire.tube_for(self._prefix, name)
        if tube.startswith(self._prefix + "$$"):
            self._hashed[tube] = name
        return tube
