"""Warm shutdown: on Celery's stop signal a pass stops claiming and ends within a grace period.

Celery's warm shutdown (SIGTERM, or one Ctrl-C, to the worker's main
process) stops taking tasks and waits for the running ones; a pass that
went on claiming until its budget ran out kept the worker for the whole
budget, longer than Docker's 10 s or whatever an orchestrator allows, and
was then killed with its items leased. So when the shutdown begins, in the
main process:

1. a flag shared with the pool processes is set. Each pass checks it before
   each claim (``should_stop``), claims nothing more, and returns its
   summary (``stopped_by: shutdown``) once the item in hand is done;
2. an embedded beat (``worker --beat``) is stopped at once, so no tick is
   sent after the shutdown began;
3. ``bridge_shutdown_grace`` seconds later (default 1), a pool process still
   running a pass gets the signal of Celery's soft time limit: the worker
   function is interrupted, its item released (claimable again at once, not
   when its lease ends) and the pass returns. A cold shutdown does this at
   once.

Only the prefork pool (the default) can be interrupted: under solo or
threads the pass still stops claiming, but the item in hand runs to its end.
The flag is one byte of anonymous shared memory made in the worker's main
process before its pool forks, so every pool process, restarted ones
included, sees it.
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import os
import signal
import threading
from typing import Any

from celery import signals

logger = logging.getLogger(__name__)

DEFAULT_GRACE = 1.0
"""Seconds the item in hand may still take once a warm shutdown begins."""
RUNNER_TASKS = frozenset({"bridge.process_queue", "bridge.run_cron"})
INTERRUPT = getattr(signal, "SIGUSR1", None)
"""The signal billiard's pool processes turn into SoftTimeLimitExceeded."""

_flag: mmap.mmap | None = None
_worker: Any = None
_installed = False
_lock = threading.Lock()


def requested() -> bool:
    """True once this worker's warm shutdown has begun (in its pool processes too)."""
    return _flag is not None and _flag[0] == 1


def install() -> None:
    """Connect to Celery's worker signals, once per process."""
    global _installed
    with _lock:
        if not _installed:
            signals.worker_init.connect(_on_worker_init, weak=False)
            signals.worker_shutting_down.connect(_on_shutting_down, weak=False)
            _installed = True


def _on_worker_init(sender: Any, **_: Any) -> None:
    """In the worker's main process, before the pool forks: make the shared flag."""
    global _flag, _worker
    _flag = mmap.mmap(-1, 1)
    _worker = sender


def grace_of(worker: Any) -> float:
    value = worker.app.conf.get("bridge_shutdown_grace")
    try:
        grace = float(DEFAULT_GRACE if value is None else value)
    except (TypeError, ValueError):
        logger.warning(
            "bridge_shutdown_grace=%r is not a number of seconds; using %s", value, DEFAULT_GRACE
        )
        return DEFAULT_GRACE
    return max(0.0, grace)


def _on_shutting_down(sender: Any, how: str = "Warm", **_: Any) -> None:
    """In the main process, as the shutdown begins (inside Celery's signal handler)."""
    if _flag is None or _worker is None:
        return
    first = _flag[0] == 0
    _flag[0] = 1
    beat = getattr(_worker, "beat", None)
    if beat is not None:
        with contextlib.suppress(Exception):
            beat.stop()
    grace = 0.0 if how != "Warm" else grace_of(_worker)
    if first or how != "Warm":
        timer = threading.Timer(grace, _interrupt_passes)
        timer.daemon = True
        timer.start()


def _interrupt_passes() -> None:
    """Interrupt each pool process still running a pass; its item is released."""
    from celery.worker import state

    if INTERRUPT is None:
        return
    for _ in range(3):  # the main thread may change the set meanwhile
        try:
            running = [r for r in list(state.active_requests) if r.type in RUNNER_TASKS]
            break
        except RuntimeError:
            continue
    else:
        return
    for request in running:
        pid = request.worker_pid
        if pid and pid != os.getpid():
            logger.warning(
                "Warm shutdown: interrupting %s[%s] in process %s; its item is released.",
                request.name,
                request.id,
                pid,
            )
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, INTERRUPT)
