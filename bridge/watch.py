"""``bridge queue watch``: a long-running worker that waits for items (Lilmuckers' ``watch``).

Each queue is drained by :func:`bridge.runner.run_queue_pass`, the pass of
``process_queue``, so every outcome is settled by the runner's rules; between
passes the watcher blocks in :func:`bridge.waiting.wait_for_items` until
the store says that items may be there (PostgreSQL ``NOTIFY``, Redis
pub/sub, a RabbitMQ consumer, beanstalkd's blocking reserve, a sleeping
Gearman worker's wake-up), or sleeps :data:`~bridge.waiting.SLEEP_INTERVAL`
on a store that cannot say (SQLite, MariaDB, SQS, Redis Cluster). A pass
follows every wake-up and every bounded wait (:data:`~bridge.waiting.MAX_WAIT`),
so a lost notification, an ended delay or lease, or an item released by
another process is seen within that bound.

Stopping: the first SIGTERM or SIGINT stops claiming; the item in hand is
finished and settled alone (no next claim travels with its settlement),
and the watcher exits 0. A second signal raises :class:`Hurry` in the
worker, which the runner treats as an interrupt: the item is released now.

``concurrency`` N > 1 forks N processes, each a watcher of its own (one
claim at a time, its own connections), rather than N threads: a worker
that holds the GIL or crashes takes only its process, and each process
handles its own signals, so a second signal can interrupt a running worker
(Python delivers signals to the main thread only). The parent forwards
SIGTERM to them and exits 0 when they all did.

A store that stops answering: each round trip is retried by the runner for
``BRIDGE_OUTAGE_TOLERANCE`` (30 s), then the pass ends; the watcher logs it
and waits :data:`OUTAGE_PAUSE` s (doubling to :data:`LONGEST_OUTAGE_PAUSE`)
before the next pass, so an outage is a few log lines, not a crash loop.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from bridge.contract import QueueStore
from bridge.errors import BackendUnavailableError, BridgeError, UnknownQueueError
from bridge.factory import QueueFactory
from bridge.runner import run_queue_pass
from bridge.waiting import MAX_WAIT, sleep_for_items, wait_for_items
from bridge.workers import registered_workers

logger = logging.getLogger(__name__)

OUTAGE_PAUSE = 1.0
LONGEST_OUTAGE_PAUSE = 30.0
"""The pause after a pass that ended because its store was unreachable, doubling."""
SUSPEND_PAUSE = 60.0
"""How long a queue suspended without a delay (``SuspendQueue(delay=None)``) rests."""
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Hurry(BaseException):
    """The second stop signal: raised in the worker, whose item the runner releases.

    A ``BaseException``, so that a worker's ``except Exception`` does not swallow it.
    """


def check(names: Sequence[str], factory: QueueFactory, lease_time: float | None) -> None:
    """Refuse, before watching, what no pass could run: raises a ``BridgeError``.

    A queue without a registered worker, a bad URL or option, a lease or a
    failure policy the store refuses. A store that is down is not refused:
    the watch waits for it.
    """
    workers = registered_workers()
    for name in names:
        if name not in workers:
            raise UnknownQueueError(
                f"Queue not found: no worker is registered for {name!r}; "
                "register one with @queue_worker and --import its module (or BRIDGE_IMPORTS)"
            )
        # A pass told to stop before its first claim: it checks the worker, the
        # lease and the policy against the store's capabilities, and claims nothing.
        run_queue_pass(
            name,
            lease_time=lease_time,
            factory=factory,
            should_stop=lambda: True,
            outage_tolerance=0,
        )


@dataclass
class _Stopping:
    """What the stop signals set: asked before each claim and each wait."""

    signals: int = 0

    def __call__(self) -> bool:
        return self.signals > 0

    def handle(self, signum: int, frame: FrameType | None) -> None:
        self.signals += 1
        if self.signals == 1:
            logger.warning("Stopping once the item in hand is settled (signal %d).", signum)
        else:
            raise Hurry(f"signal {signum} received twice")


@dataclass
class _QueueState:
    resting_until: float = 0.0
    outage_pause: float = OUTAGE_PAUSE


@dataclass
class Watcher:
    """One process's watch over ``names``: passes, then a wait, until stopped."""

    names: Sequence[str]
    factory: QueueFactory
    lease_time: float | None = None
    stopping: Callable[[], bool] = lambda: False
    states: dict[str, _QueueState] = field(init=False)

    def __post_init__(self) -> None:
        self.states = {name: _QueueState() for name in self.names}

    def run(self) -> None:
        """Watch until ``stopping()``; returns at once on :class:`Hurry`."""
        try:
            while not self.stopping():
                # Every due queue gets its pass (a list, not any()'s short cut).
                worked = any([self._pass(name, self.states[name]) for name in self._due()])
                if not worked and not self.stopping():
                    self._wait()
        except Hurry:
            logger.warning("Stopped at once; the item in hand, if any, was released.")

    def _due(self) -> list[str]:
        now = time.monotonic()
        return [name for name in self.names if self.states[name].resting_until <= now]

    def _pass(self, name: str, state: _QueueState) -> bool:
        """Drain one queue; whether it settled any item."""
        if self.stopping():
            return False
        summary, suspension = run_queue_pass(
            name,
            lease_time=self.lease_time,
            factory=self.factory,
            should_stop=self.stopping,
            interrupts=(Hurry,),
        )
        if summary.stopped_by == "interrupted":
            raise Hurry("interrupted")
        if summary.stopped_by == "backend unavailable" and not self.stopping():
            logger.error(
                "Queue %s: %s; next try in %.0f s.", name, summary.error, state.outage_pause
            )
            state.resting_until = time.monotonic() + state.outage_pause
            state.outage_pause = min(state.outage_pause * 2, LONGEST_OUTAGE_PAUSE)
            return False
        state.outage_pause = OUTAGE_PAUSE
        if suspension is not None:
            rest = suspension.delay if suspension.delay is not None else SUSPEND_PAUSE
            logger.warning("Queue %s suspended for %g s: %s", name, rest, suspension)
            state.resting_until = time.monotonic() + rest
        settled = summary.as_dict()
        return any(settled[key] for key in ("processed", "requeued", "delayed", "failed", "held"))

    def _wait(self) -> None:
        """Block until items may be there, a resting queue is due, or ``MAX_WAIT``."""
        now = time.monotonic()
        due = self._due()
        resting = [s.resting_until for s in self.states.values() if s.resting_until > now]
        timeout = min([MAX_WAIT, *(until - now for until in resting)])
        stores: dict[int, QueueStore] = {}
        for name in due:
            backend: QueueStore = self.factory.get(name).backend
            stores[id(backend)] = backend
        if len(stores) != 1:
            # Nothing to wait on, or queues on several stores: no one call waits
            # on them all, so the short sleep of a store that cannot wake us.
            sleep_for_items(timeout)
            return
        (store,) = stores.values()
        try:
            wait_for_items(store, due, timeout)
        except BackendUnavailableError as exc:
            logger.warning("Waiting on %s failed (%s); claiming again in %g s.", store.url, exc, 1)
            time.sleep(1.0)
        except BridgeError as exc:
            logger.error("Waiting on %s failed (%s); sleeping instead.", store.url, exc)
            sleep_for_items(timeout)


def watch(
    names: Sequence[str],
    factory: QueueFactory,
    *,
    concurrency: int = 1,
    lease_time: float | None = None,
) -> int:
    """Watch ``names`` until SIGTERM or SIGINT: the exit status (0 when every watcher
    stopped cleanly). ``check`` first: this assumes the queues are runnable."""
    if concurrency <= 1:
        return _watch_here(names, factory, lease_time)
    return _watch_forked(names, factory, concurrency, lease_time)


def _watch_here(names: Sequence[str], factory: QueueFactory, lease_time: float | None) -> int:
    stopping = _Stopping()
    previous = {signum: signal.signal(signum, stopping.handle) for signum in STOP_SIGNALS}
    try:
        Watcher(names, factory, lease_time, stopping).run()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0


def _child(names: Sequence[str], factory: QueueFactory, lease_time: float | None) -> None:
    # The parent turns a terminal's Ctrl-C (sent to the whole group) into one
    # SIGTERM per child, so a child counts each stop request once.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stopping = _Stopping()
    signal.signal(signal.SIGTERM, stopping.handle)
    try:
        Watcher(names, factory, lease_time, stopping).run()
    except BridgeError as exc:
        logger.error("Watcher %d stopped: %s", os.getpid(), exc)
        os._exit(1)


def _watch_forked(
    names: Sequence[str], factory: QueueFactory, concurrency: int, lease_time: float | None
) -> int:
    context = multiprocessing.get_context("fork")
    parent = os.getpid()
    children: list[Any] = []
    signals = 0

    def forward(signum: int, frame: FrameType | None) -> None:
        nonlocal signals
        if os.getpid() != parent:
            # A child between fork and setting its own handlers: stop it.
            raise SystemExit(0)
        signals += 1
        if signals == 1:
            logger.warning("Stopping %d watchers (signal %d).", len(children), signum)
        for child in children:
            if child.pid is not None and child.exitcode is None:
                os.kill(child.pid, signal.SIGTERM)

    previous = {signum: signal.signal(signum, forward) for signum in STOP_SIGNALS}
    try:
        for _ in range(concurrency):
            child = context.Process(target=_child, args=(names, factory, lease_time))
            child.start()
            children.append(child)
            if signals and child.pid is not None:  # a stop came while starting: tell it too
                os.kill(child.pid, signal.SIGTERM)
        for child in children:
            child.join()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    failed = [child for child in children if child.exitcode != 0]
    for child in failed:
        logger.error("Watcher %s ended with exit status %s.", child.pid, child.exitcode)
    return 1 if failed else 0
