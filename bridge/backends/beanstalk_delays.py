"""Fractional delays on beanstalkd, ended on time by the object that set them.

beanstalkd counts delays in whole seconds, so a delay with a fraction is put
rounded up (``wire.whole_seconds``). The backend object that set it
remembers when it really ends, and its next claim from the queue kicks
(``kick-job``) the jobs whose delay has passed to the fraction: beanstalkd
would hand them out only at the next whole second. Other processes see
such a job up to a second late.
"""

from __future__ import annotations

import time
from typing import Any

MAX_DUE = 100_000
"""The most fractional delays one object ends on time in a queue; past that, at the whole second."""


class EarlyDelays:
    """The jobs delayed here for a fraction of a second less than beanstalkd's whole seconds."""

    def __init__(self) -> None:
        self._due: dict[str, dict[int, float]] = {}

    def note(self, name: str, job_id: int, due: float, early: bool) -> None:
        """Remember a delay that beanstalkd's whole seconds made longer (``early``)."""
        due_here = self._due.setdefault(name, {})
        if early and len(due_here) < MAX_DUE:
            due_here[job_id] = due

    def next_due(self, name: str) -> float | None:
        """When the earliest delay set here on ``name`` ends (epoch seconds); None if none."""
        return min(self._due.get(name, {}).values(), default=None)

    def forget(self, name: str) -> None:
        self._due.pop(name, None)

    def wake(self, g: Any, client: Any, name: str) -> None:
        """``kick-job`` the queue's jobs delayed here whose delay has passed to the fraction.

        A job no longer delayed (claimed since, by a process that did not
        wait) is left alone.
        """
        due_here = self._due.get(name)
        if not due_here:
            return
        now = time.time()
        for job_id, due in list(due_here.items()):
            if due > now:
                continue
            del due_here[job_id]
            try:
                if client.stats_job(job_id)["state"] == "delayed":
                    client.kick_job(job_id)
            except g.NotFoundError:
                pass
