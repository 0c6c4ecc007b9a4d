"""Gearman queues: background jobs in a ``gearmand`` job server.

``gearman_wire.py`` speaks the protocol (no client library: it says why),
``gearman_jobs.py`` names functions and unique ids and reads the admin
listings. ``docs/gearman.md`` explains the mapping and its limits.

Features:
    An item is a background job (``SUBMIT_JOB_BG``) of the queue's function
    for its priority (``gearman_jobs.py``), its payload the job's workload,
    so other Gearman workers read it as it is. ``create_items`` writes every
    job before it reads an answer: one round trip, but not all or nothing
    (Gearman has no transaction): a connection lost midway leaves the first
    jobs created.

    A claim is a worker's ``GRAB_JOB_UNIQ`` on a connection of its own,
    held open while the claim lasts: gearmand gives the job to nobody else
    while that connection lives. Claims take the queue's functions highest
    priority first (one admin ``status`` call says which have jobs), so
    priorities are exact over the whole 32-bit range; within a function
    gearmand hands out its high level first, then normal, first in, first
    out.

    Gearman has no lease. The lease here is emulated, as on RabbitMQ: an
    expired claim is handed back when this object next claims from the
    queue, peeks, garbage-collects, releases all or closes, and
    ``extend_lease`` moves this object's deadline. A claimer that dies or
    loses its connection has its jobs requeued by gearmand at once
    (``crash_recovery="disconnect"``), at the back of the queue; one that
    hangs alive holds them until it is killed. (``CAN_DO_TIMEOUT`` is not
    used: gearmand 1.1 raises a timeout under 1000 to 1000 and counts it in
    seconds, with one timer a connection.)

    A hand-back (release, an expired lease, ``release_all``, ``close``)
    submits a copy of the job at gearmand's high level, with the same item
    id and creation time and the attempts so far in its unique id, reads
    gearmand's answer, and then completes the original: the item is ready
    again, ahead of newer items, when the call returns. A process killed
    between the two leaves both (the original requeued by its disconnect):
    the item can come back twice, never zero times. The copy is a new job,
    so the hand-back ends the claim (``settle_after_release=False``).
    Delete is ``WORK_COMPLETE``, confirmed by an echo on the same
    connection, which gearmand answers after it has dropped the job.

    Who may settle: only the object that grabbed a job holds its
    connection; a claim made elsewhere is refused with
    :class:`~bridge.errors.UnsupportedOperationError`
    (``settle_anywhere=False``). Attempts travel in the unique id through
    hand-backs; a crash loses the dead claim's count (a lower bound then).
    ``fail_item``'s error stays with this object (gearmand has no place
    for it) and goes to its own next claim of the item.

    No delay (gearmand 1.1 has no delayed background jobs it hands back on
    time), no held items, no browsing or removal by id: refused up front
    by the facade, and here with the same error. ``peek`` takes jobs in
    claim order (all of a function's high-level ones at least) and hands
    them back in that order; for that moment other workers do not see them
    (at most :data:`PEEK_MOST`). ``counts`` reads ``status``: queued jobs
    are ready, running ones leased, whoever runs them. ``wait_for_items``
    (``bridge queue watch``) sleeps as a Gearman worker of the queues'
    functions until gearmand's ``NOOP`` (``gearman_wait.py``). ``delete_queue``
    deletes the queue's ready jobs and this object's claims; jobs other
    workers hold stay theirs.

URL format:
    ``gearman://host:4730`` (port 4730 by default). One server a URL.

Options:
    ``connect_timeout`` (default 5 s), ``timeout``: the longest wait for an
    answer (default 30 s).

Storage layout:
    Functions ``NAME`` and ``NAME~PRIORITY``; jobs with the payload as
    their workload and unique id ``<nonce>:<created>:<attempts>:<item id>``
    (``gearman_jobs.py``); new jobs at gearmand's normal level, copies
    handed back at its high level. In gearmand's memory unless it runs with a
    persistent queue (``--queue-type``): a restart of a plain gearmand
    loses every job.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import final
from urllib.parse import urlsplit

from bridge.backends import gearman_wire as wire
from bridge.backends.gearman_jobs import (
    Claim,
    Errors,
    FunctionStatus,
    Unique,
    function_for,
    new_id,
    parse_high,
    parse_status,
    parse_unique,
    priority_of,
    queue_function,
    queue_name_of,
    unique_for,
)
from bridge.backends.gearman_wait import Sleeper
from bridge.backends.tokens import new_token, token_owner
from bridge.contract import Backend, Capabilities, Waiting
from bridge.errors import (
    BackendError,
    BackendUnavailableError,
    BridgeError,
    ConfigurationError,
    UnsupportedOperationError,
)
from bridge.items import ItemCounts, ItemId, QueueItem, StoredItem

PEEK_MOST = 1000
"""The most jobs ``peek`` takes and hands back to show a queue."""
_IDLE_MOST = 16
"""Idle worker connections kept for the next claims; more are closed."""
_DRAIN_BATCH = 100
_NO_HOLD = "Gearman has no place to set a job aside"
_NO_DELAY = "gearmand has no delayed background jobs"


def _refused(operation: str, url: str, why: str) -> UnsupportedOperationError:
    return UnsupportedOperationError(f"{url} does not support {operation}: {why}")


@final
class GearmanBackend(Backend, Waiting):
    """Queues as Gearman background jobs; see the module docstring."""

    capabilities = Capabilities(
        reliable=True,
        shared=True,
        lease="emulated",
        extend_lease=True,
        delay=False,
        priority=True,
        counts_leased=True,
        crash_recovery="disconnect",
        settle_anywhere=False,
        ordered=False,  # handed-back items go ahead of newer ones in the order they came back
        settle_after_release=False,
        keeps_errors=False,  # only in the object that failed the item (module docstring)
    )

    def __init__(self, url: str, *, connect_timeout: float = 5.0, timeout: float = 30.0) -> None:
        super().__init__(url)
        self._host, self._port = _address(url, self.url)
        self._connect_timeout = connect_timeout
        self._timeout = timeout
        self._owner = new_token("gearman").replace(".", "")
        self._serial = 0
        self._lock = threading.RLock()
        self._errors = Errors()
        self.forget_connections()

    def forget_connections(self) -> None:
        # Dropped unused: a forked child must not write to its parent's sockets.
        self._admin: wire.Connection | None = None
        self._client: wire.Connection | None = None
        self._idle: list[wire.Connection] = []
        self._claims: dict[str, Claim] = {}
        self._sleeper = Sleeper(lambda: self._connect(f"{self._owner}-wait"))

    def close(self) -> None:
        """Hand back every claim (gearmand requeues what a failed hand-back leaves)."""
        with self._lock:
            claims = sorted(self._claims.values(), key=_claim_order)
            with contextlib.suppress(wire.GearmanUnavailable, wire.GearmanServerError):
                self._hand_back(claims)
            for claim in claims:
                claim.connection.close()
            for connection in [self._admin, self._client, *self._idle]:
                if connection is not None:
                    connection.close()
            self._sleeper.close()
            self.forget_connections()

    # -- items -------------------------------------------------------------------

    def create_items(
        self, name: str, payloads: Sequence[bytes], delay: float, priority: int
    ) -> list[ItemId]:
        if delay:
            raise _refused("delay", self.url, _NO_DELAY)
        function = function_for(name, priority)
        with self._calling("create_items"):
            client = self._client_connection()
            ids = [new_id() for _ in payloads]
            now = time.time()
            client.send(
                b"".join(
                    wire.packet(
                        wire.SUBMIT_JOB_BG, function, unique_for(i, now, 0, copy=False), payload
                    )
                    for i, payload in zip(ids, payloads, strict=True)
                )
            )
            for _ in payloads:
                client.expect(wire.JOB_CREATED)
            return list(ids)

    def claim_items(self, name: str, count: int, lease_time: float) -> list[StoredItem]:
        with self._calling("claim_items"):
            # As many expired claims as this claim could take: the rest stay their
            # holder's until someone needs them (the contract's expired-lease rule).
            self._hand_back(self._due(name, count))
            claims: list[Claim] = []
            for priority, status in self._ready_functions(name):
                if len(claims) >= count:
                    break
                claims += self._grab(name, status, priority, count - len(claims), lease_time)
            rows = []
            for claim in claims:
                token = new_token(self._owner)
                self._claims[token] = claim
                claim.attempts += 1
                rows.append(_stored(claim, token, self._errors.get(claim.item_id)))
            return rows

    def delete_items(self, name: str, items: Sequence[QueueItem]) -> int:
        with self._calling("delete_items"):
            claims = [c for item in items if (c := self._take_claim(name, item)) is not None]
            self._complete(claims)
            for claim in claims:
                self._errors.forget(claim.item_id)
            return len(claims)

    def release_item(self, name: str, item: QueueItem) -> bool:
        with self._calling("release_item"):
            claim = self._take_claim(name, item)
            if claim is None:
                return False
            self._hand_back([claim])
            return True

    def delay_item(self, name: str, item: QueueItem, delay: float) -> float | None:
        raise _refused("delay_item", self.url, _NO_DELAY)

    def extend_lease(self, name: str, item: QueueItem, lease_time: float) -> float | None:
        with self._lock:
            claim = self._claim_of(name, item)
            if claim is None:
                return None
            # The connection holds the job whatever the deadline: the lease is ours alone.
            claim.expire = time.time() + lease_time
            return claim.expire

    def fail_item(
        self, name: str, item: QueueItem, error: str, delay: float | None
    ) -> float | None:
        if delay:
            raise _refused("fail_item with a delay", self.url, _NO_DELAY)
        with self._calling("fail_item"):
            claim = self._claim_of(name, item)
            if claim is None:
                return None
            self._errors.put(claim.item_id, error)
            if delay is None:
                return claim.expire  # stays leased until its lease ends, as in Drupal
            self._hand_back([self._claims.pop(item.token)])
            return time.time()

    # -- introspection and administration ---------------------------------------------

    def counts(self, name: str) -> ItemCounts:
        with self._calling("counts"):
            mine = self._statuses(name)
            return ItemCounts(
                ready=sum(s.queued for _, s in mine),
                leased=sum(s.running for _, s in mine),
                delayed=0,
            )

    def queue_names(self) -> dict[str, int]:
        with self._calling("queue_names"):
            found: dict[str, int] = {}
            for status in parse_status(self._admin_connection().admin("status")):
                if status.total:
                    queue = queue_name_of(status.function)
                    found[queue] = found.get(queue, 0) + status.total
            return found

    def peek(self, name: str, limit: int) -> list[StoredItem]:
        """Take the next jobs, look, and hand them back in the order they were in.

        Copies go back at the high level, behind any high-level job still
        queued: so every high-level job of a function is taken before its
        first normal one, and a copy can never pass one it followed.
        """
        if limit == 0:
            return []
        with self._calling("peek"):
            self._hand_back(self._due(name))
            high = parse_high(self._admin_connection().admin("prioritystatus"))
            taken: list[Claim] = []
            try:
                for priority, status in self._ready_functions(name):
                    if len(taken) >= limit:
                        break
                    most = max(limit - len(taken), high.get(status.function, 0))
                    if len(taken) + min(most, status.queued) > PEEK_MOST:
                        raise _refused(
                            "peek",
                            self.url,
                            f"Gearman shows a job only by taking it, and keeping the order "
                            f"means taking more than {PEEK_MOST} jobs of priority {priority}",
                        )
                    taken += self._grab(name, status, priority, most, 0.0)
            finally:
                self._hand_back(taken)
            return [
                _stored(c, "", self._errors.get(c.item_id))._replace(expire=0.0)
                for c in taken[:limit]
            ]

    def garbage_collection(self, name: str) -> None:
        with self._calling("garbage_collection"):
            self._hand_back(self._due(name))

    def release_all(self, name: str) -> int:
        """Hand back every job this object holds in the queue; other processes' stay theirs."""
        with self._calling("release_all"):
            mine = [t for t, c in self._claims.items() if c.name == name]
            claims = sorted((self._claims.pop(t) for t in mine), key=_claim_order)
            self._hand_back(claims)
            return len(claims)

    def delete_queue(self, name: str) -> None:
        with self._calling("delete_queue"):
            mine = [t for t, c in self._claims.items() if c.name == name]
            self._complete([self._claims.pop(t) for t in mine])
            for _ in range(10_000):
                ready = self._ready_functions(name)
                if not ready:
                    break
                for _, status in ready:
                    self._drain(status.function, min(status.queued, _DRAIN_BATCH))
            # No ``drop function``: gearmand 1.1 drops every function whose name
            # matches regardless of case, queued jobs and all (dropping ``pad``
            # emptied ``PAD``), and a job submitted between a check and the drop
            # would go with it. The empty functions stay in ``status``, which
            # ``queue_names`` skips.

    def wait_for_items(self, names: Sequence[str], timeout: float) -> bool:
        """Sleep as a Gearman worker of the queues' functions until gearmand wakes it.

        ``PRE_SLEEP`` on a connection of its own (``gearman_wait.py``);
        gearmand sends ``NOOP`` at once when a job is queued already, else
        when one is submitted. The functions are each queue's priority-0 one
        and those ``status`` lists (one admin call per wait). One watcher
        thread at a time: the sleep is outside the lock, so that the
        object's other calls do not wait for it.
        """
        with self._calling("wait_for_items"):
            stems = {queue_function(name) for name in names}
            functions = set(stems)
            for status in parse_status(self._admin_connection().admin("status")):
                if any(priority_of(status.function, stem) is not None for stem in stems):
                    functions.add(status.function)
            if self._sleeper.sleep(functions):
                return True  # not listening until now (the contract's first call)
        try:
            return self._sleeper.woken(timeout)
        except (wire.GearmanUnavailable, wire.GearmanServerError) as exc:
            raise BackendUnavailableError(f"wait_for_items on {self.url} failed: {exc}") from exc

    def hold_item(self, name: str, item: QueueItem, reason: str, error: str | None) -> bool:
        raise _refused("hold_item", self.url, _NO_HOLD)

    def held_items(self, name: str, limit: int) -> list[StoredItem]:
        raise _refused("held_items", self.url, _NO_HOLD)

    def kick(self, name: str, limit: int | None) -> int:
        raise _refused("kick", self.url, _NO_HOLD)

    def kick_item(self, name: str, item_id: ItemId) -> bool:
        raise _refused("kick_item", self.url, _NO_HOLD)

    def delete_held(self, name: str, limit: int | None) -> int:
        raise _refused("delete_held", self.url, _NO_HOLD)

    # -- claims --------------------------------------------------------------------

    def _grab(
        self, name: str, status: FunctionStatus, priority: int, most: int, lease_time: float
    ) -> list[Claim]:
        """Up to ``most`` jobs of one function, each on its own connection, in claim order."""
        connections = [self._worker_connection() for _ in range(min(most, status.queued))]
        ask = (
            wire.packet(wire.RESET_ABILITIES)
            + wire.packet(wire.CAN_DO, status.function)
            + wire.packet(wire.GRAB_JOB_UNIQ)
        )
        wire.send_all(connections, [ask] * len(connections))
        now = time.time()
        claims = []
        for connection in connections:
            kind, args = connection.read()
            if kind != wire.JOB_ASSIGN_UNIQ:
                self._idle_connection(connection)  # NO_JOB: another worker was first
                continue
            handle, function, unique, payload = args
            ours = parse_unique(unique) or Unique(handle.decode(), now, 0, copy=False)
            claims.append(
                Claim(
                    name,
                    ours.item_id,
                    handle.decode(),
                    function,
                    payload,
                    priority,
                    ours.created,
                    now + lease_time,
                    ours.attempts,
                    connection,
                    (0 if ours.copy else 1, _handle_number(handle)),
                )
            )
        # gearmand may serve the connections' grabs in any order; this is the order it
        # had them in (a job requeued by a claimer's disconnect aside).
        claims.sort(key=lambda c: c.order)
        return claims

    def _hand_back(self, claims: list[Claim]) -> None:
        """Copy each job back at the high level, in order, then complete the originals.

        The copies are confirmed before any original is completed: a failure
        between leaves an item twice, never lost.
        """
        if not claims:
            return
        client = self._client_connection()
        client.send(
            b"".join(
                wire.packet(
                    wire.SUBMIT_JOB_HIGH_BG,
                    c.function,
                    unique_for(c.item_id, c.created, c.attempts, copy=True),
                    c.payload,
                )
                for c in claims
            )
        )
        for claim in claims:
            if client.expect(wire.JOB_CREATED)[0].decode() == claim.handle:
                raise BackendError(f"gearmand at {self.url} merged a copy into job {claim.handle}")
        self._complete(claims)

    def _complete(self, claims: list[Claim]) -> None:
        """Finish the claims' jobs (gearmand drops them); their connections go back idle."""
        done = wire.packet(wire.RESET_ABILITIES) + wire.packet(wire.ECHO_REQ, b"done")
        connections = [c.connection for c in claims]
        wire.send_all(
            connections,
            [wire.packet(wire.WORK_COMPLETE, c.handle.encode(), b"") + done for c in claims],
        )
        for connection in connections:
            connection.expect(wire.ECHO_RES)
            self._idle_connection(connection)

    def _drain(self, function: bytes, count: int) -> None:
        """Grab and complete up to ``count`` ready jobs on one connection (delete_queue)."""
        connection = self._worker_connection()
        connection.send(
            wire.packet(wire.RESET_ABILITIES)
            + wire.packet(wire.CAN_DO, function)
            + wire.packet(wire.GRAB_JOB_UNIQ) * count
        )
        handles = []
        for _ in range(count):
            kind, args = connection.read()
            if kind == wire.JOB_ASSIGN_UNIQ:
                handles.append(args[0])
        connection.send(
            b"".join(wire.packet(wire.WORK_COMPLETE, h, b"") for h in handles)
            + wire.packet(wire.RESET_ABILITIES)
            + wire.packet(wire.ECHO_REQ, b"drained")
        )
        connection.expect(wire.ECHO_RES)
        self._idle_connection(connection)

    def _due(self, name: str, most: int | None = None) -> list[Claim]:
        """This object's expired claims in the queue (the first ``most``), taken out."""
        now = time.time()
        due = [(c.order, t) for t, c in self._claims.items() if c.name == name and c.expire <= now]
        return [self._claims.pop(t) for _, t in sorted(due)[:most]]

    def _claim_of(self, name: str, item: QueueItem) -> Claim | None:
        """This object's claim that ``item`` names, if it still holds it."""
        claim = self._claims.get(item.token)
        if claim is None and item.token and token_owner(item.token) != self._owner:
            raise UnsupportedOperationError(
                f"item {item.item_id!r} of queue {name!r} was claimed through another "
                f"backend object or process; on {self.url} only the connection that grabbed "
                "a Gearman job can complete it or hand it back"
            )
        if claim is None or claim.name != name or claim.item_id != item.item_id:
            return None
        return claim

    def _take_claim(self, name: str, item: QueueItem) -> Claim | None:
        claim = self._claim_of(name, item)
        if claim is not None:
            del self._claims[item.token]
        return claim

    # -- functions and connections ---------------------------------------------------

    def _statuses(self, name: str) -> list[tuple[int, FunctionStatus]]:
        stem = queue_function(name)
        found = []
        for status in parse_status(self._admin_connection().admin("status")):
            priority = priority_of(status.function, stem)
            if priority is not None:
                found.append((priority, status))
        return found

    def _ready_functions(self, name: str) -> list[tuple[int, FunctionStatus]]:
        """The queue's functions with ready jobs, highest priority first."""
        ready = [(p, s) for p, s in self._statuses(name) if s.queued]
        return sorted(ready, key=lambda found: -found[0])

    def _admin_connection(self) -> wire.Connection:
        if self._admin is None:
            self._admin = self._connect("")
        return self._admin

    def _client_connection(self) -> wire.Connection:
        if self._client is None:
            self._client = self._connect("")
        return self._client

    def _worker_connection(self) -> wire.Connection:
        if self._idle:
            return self._idle.pop()
        self._serial += 1
        return self._connect(f"{self._owner}-{self._serial}")

    def _idle_connection(self, connection: wire.Connection) -> None:
        if len(self._idle) < _IDLE_MOST:
            self._idle.append(connection)
        else:
            connection.close()

    def _connect(self, client_id: str) -> wire.Connection:
        return wire.Connection(
            self._host, self._port, self._connect_timeout, self._timeout, client_id
        )

    @contextmanager
    def _calling(self, operation: str) -> Iterator[None]:
        """Serialize calls; socket and server errors become bridge errors naming the server."""
        with self._lock:
            try:
                yield
            except BridgeError:
                raise
            except wire.GearmanUnavailable as exc:
                self._lost()
                raise BackendUnavailableError(f"{operation} on {self.url} failed: {exc}") from exc
            except wire.GearmanServerError as exc:
                raise BackendError(f"{operation} on {self.url} failed: {exc}") from exc

    def _lost(self) -> None:
        """After a socket error: reconnect next time. Claims stay until their calls fail."""
        for connection in [self._admin, self._client, *self._idle]:
            if connection is not None:
                connection.close()
        self._admin = self._client = None
        self._idle = []


def _stored(claim: Claim, token: str, error: str | None) -> StoredItem:
    return StoredItem(
        claim.item_id,
        claim.payload,
        claim.created,
        claim.expire,
        claim.attempts,
        claim.priority,
        token,
        error,
    )


def _claim_order(claim: Claim) -> tuple[int, int]:
    return claim.order


def _handle_number(handle: bytes) -> int:
    tail = handle.rpartition(b":")[2]
    return int(tail) if tail.isdigit() else 0


def _address(url: str, masked: str) -> tuple[str, int]:
    """Host and port of ``gearman://host[:port]``, or a ConfigurationError naming the URL."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port or 4730
    except ValueError as exc:
        raise ConfigurationError(f"bad Gearman URL {masked}: {exc}") from None
    if not host or parts.path not in ("", "/") or parts.query:
        raise ConfigurationError(
            f"a Gearman URL is gearman://HOST[:PORT] (default port 4730), not {masked}"
        )
    return host, port
