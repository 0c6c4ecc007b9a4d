"""Waiting for new Gearman jobs as a sleeping worker does: ``PRE_SLEEP``, then ``NOOP``.

``bridge queue watch`` asks a waiting store to block until items may be
there (:class:`~bridge.contract.Waiting`). gearmand has that built in for
its workers: a worker that says which functions it can do (``CAN_DO``)
and then ``PRE_SLEEP`` is sent ``NOOP`` when a job for one of them is
submitted. :class:`Sleeper` is such a worker on a connection of its own.
It never grabs a job: the claim that follows a wake-up does, through the
backend's usual path, so a job is claimed, leased and counted as any other.

The functions it can do are those of the watched queues that gearmand's
``status`` lists (every priority used so far, since functions are never
dropped), plus each queue's priority-0 function. A job of a priority never
used before is a new function, which wakes nobody: the watcher's bounded
wait (:data:`~bridge.waiting.MAX_WAIT`) sees it within a second.

A wake-up is only a hint, as the contract says: ``NOOP`` goes to every
sleeping worker, and another may claim the job first.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from bridge.backends import gearman_wire as wire


class Sleeper:
    """A worker connection that sleeps until gearmand has a job for its functions."""

    def __init__(self, connect: Callable[[], wire.Connection]) -> None:
        self._connect = connect
        self._connection: wire.Connection | None = None
        self._functions: frozenset[bytes] = frozenset()
        self._asleep = False

    def sleep(self, functions: Collection[bytes]) -> bool:
        """Start sleeping on ``functions`` (or go on); True if it was not listening until now."""
        wanted = frozenset(functions)
        connection, first = self._connection, self._connection is None
        if connection is None:
            connection = self._connection = self._connect()
        if not self._asleep or wanted != self._functions:
            # gearmand sends a worker one NOOP per GRAB_JOB: without a grab since
            # the last wake-up, the next job would wake nobody. So a grab first,
            # with no abilities (it answers NO_JOB, takes nothing), then the
            # functions, then to sleep.
            abilities = b"".join(wire.packet(wire.CAN_DO, f) for f in sorted(wanted))
            connection.send(
                wire.packet(wire.RESET_ABILITIES)
                + wire.packet(wire.GRAB_JOB_UNIQ)
                + abilities
                + wire.packet(wire.PRE_SLEEP)
            )
            connection.expect(wire.NO_JOB)
            self._functions = wanted
            self._asleep = True
        return first

    def woken(self, timeout: float) -> bool:
        """Block up to ``timeout`` s for gearmand's ``NOOP``; after one, the next
        :meth:`sleep` says ``PRE_SLEEP`` again."""
        assert self._connection is not None, "sleep() first"
        try:
            woken = self._connection.woken(timeout)
        except (wire.GearmanUnavailable, wire.GearmanServerError):
            self.close()
            raise
        if woken:
            self._asleep = False
        return woken

    def close(self) -> None:
        connection, self._connection = self._connection, None
        self._functions, self._asleep = frozenset(), False
        if connection is not None:
            connection.close()

    def forget(self) -> None:
        """In a forked child: drop the parent's socket unused."""
        self._connection = None
        self._functions, self._asleep = frozenset(), False
