"""Passes started from the UI: "run a pass now", with its progress and summary.

A pass is :func:`bridge.runner.process_queue` with a time and an item
limit. It runs either

- through Celery, as the ``bridge.process_queue`` task, when a broker is
  configured (``BRIDGE_BROKER_URL``, or ``broker_url`` in the Celery config
  module) or an app is given: a Celery worker runs it, and its progress is
  read from the result backend, where the task reports its running summary
  once a second (the ``PROGRESS`` state); or
- in a thread of the UI process, which reports after every item.

One pass per queue at a time, among the passes this UI started: a second
start while one runs is refused (:class:`RunRefused`), unless the first was
sent to Celery and no worker took it in a minute (then it is revoked). Passes that beat or
another process started are not known here. Runs are kept in memory, the
last :data:`KEEP` of them, until the process ends; on shutdown a running
thread is asked to stop before its next claim (``should_stop``), so no item
is cut off midway.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Literal

from bridge.errors import BridgeError, ConfigurationError, MissingDependencyError
from bridge.factory import QueueFactory
from bridge.runner import process_queue
from bridge.ui.model import one_line, scrub

logger = logging.getLogger(__name__)

KEEP = 100
"""Finished runs kept for their pages."""
DONE = ("processed", "requeued", "delayed", "kept_leased", "failed", "held", "lost")
"""The summary counts that together say how many items a pass has settled."""
PENDING_NOTE_AFTER = 10.0
"""Seconds a Celery pass may wait for a worker before the run page says so."""
GIVE_UP_AFTER = 60.0
"""Seconds after which a Celery pass no worker took no longer blocks a new start: revoked."""

RunsMode = Literal["auto", "thread", "celery"]


class RunRefused(Exception):
    """A pass over this queue is already running; ``run`` is that one."""

    def __init__(self, message: str, run: Run) -> None:
        super().__init__(message)
        self.run = run


@dataclass
class Run:
    """One pass started from the UI, as its page shows it."""

    run_id: str
    queue: str
    via: Literal["thread", "celery"]
    total: int
    """Items the pass is expected to take: ready ones at the start, at most the item limit."""
    time_limit: float | None
    items_limit: int | None
    started: float = field(default_factory=time.time)
    status: str = "running"
    """``queued`` (Celery, not yet picked up), ``running``, then the summary's
    ``stopped_by``, or ``error``."""
    latest: dict[str, Any] | None = None
    summary: dict[str, Any] | None = None
    error: str | None = None
    note: str | None = None
    finished: bool = False
    ended: float | None = None

    def progressed(self, summary: dict[str, Any]) -> None:
        self.latest = summary
        self.status = "running"

    def finish(self, summary: dict[str, Any], error: str | None = None) -> None:
        self.latest = self.summary = summary
        self.status = str(summary.get("stopped_by") or "done")
        self.error = error or summary.get("error")
        self.finished = True
        self.ended = time.time()

    def fail(self, error: str) -> None:
        self.status, self.error, self.finished, self.ended = "error", error, True, time.time()

    @property
    def done(self) -> int:
        latest = self.latest or {}
        return sum(int(latest.get(key) or 0) for key in DONE)

    def progress(self) -> dict[str, Any]:
        """The run page's JSON: the bar's value and max, the status, the summary at the end."""
        done = self.done
        most = max(self.total, done, 1)
        value = most if self.finished else min(done, most)
        return {
            "run_id": self.run_id,
            "queue": self.queue,
            "via": self.via,
            "status": self.status,
            "finished": self.finished,
            "value": value,
            "max": most,
            "done": done,
            "total": self.total,
            "started": self.started,
            "elapsed": (self.ended or time.time()) - self.started,
            "time_limit": self.time_limit,
            "items_limit": self.items_limit,
            "summary": self.summary,
            "error": self.error,
            "note": self.note,
        }


def broker_configured() -> bool:
    """Whether a Celery broker is set for bridge (not only the embedded default)."""
    if os.environ.get("BRIDGE_BROKER_URL"):
        return True
    import importlib.util

    if importlib.util.find_spec("celery") is None:
        return False
    from bridge.celery import app
    from bridge.celery.config import DEFAULT_BROKER

    return str(app.conf.broker_url or DEFAULT_BROKER) != DEFAULT_BROKER


def celery_app_for(mode: RunsMode, given: Any = None) -> Any:
    """The Celery app passes go through, or None for threads of this process."""
    if mode not in ("auto", "thread", "celery"):
        raise ConfigurationError(f"runs must be auto, thread or celery, not {mode!r}")
    if mode == "thread":
        return None
    if given is not None:
        return given
    if mode == "auto" and not broker_configured():
        return None
    try:
        from bridge.celery import app
    except ModuleNotFoundError as exc:
        raise MissingDependencyError(
            'running passes through Celery needs Celery: pip install "bridge[celery]"'
        ) from exc
    return app


class Runs:
    """The passes this UI started, by id; at most one running per queue."""

    def __init__(self, factory: QueueFactory, celery_app: Any = None) -> None:
        self.factory = factory
        self.celery_app = celery_app
        self._runs: OrderedDict[str, Run] = OrderedDict()
        self._running: dict[str, Run] = {}
        self._stops: dict[str, threading.Event] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()

    @property
    def via(self) -> Literal["thread", "celery"]:
        return "thread" if self.celery_app is None else "celery"

    def start(
        self, name: str, time_limit: float | None, items_limit: int | None, ready: int
    ) -> Run:
        """Start a pass over queue ``name``; :class:`RunRefused` if one is running."""
        total = ready if not items_limit else min(ready, items_limit)
        with self._lock:
            running = self._running.get(name)
            if running is not None:
                self._refresh(running)
                self._give_up_waiting(running)
                if not running.finished:
                    raise RunRefused(
                        f"A pass over {name} is already running (started "
                        f"{time.strftime('%H:%M:%S', time.localtime(running.started))}); "
                        "wait for it to end",
                        running,
                    )
            run = Run(uuid.uuid4().hex, name, self.via, total, time_limit, items_limit)
            if self.celery_app is None:
                self._start_thread(run)
            else:
                self._send(run)
            self._runs[run.run_id] = run
            self._running[name] = run
            while len(self._runs) > KEEP:
                self._runs.popitem(last=False)
            return run

    def get(self, run_id: str) -> Run | None:
        with self._lock:
            run = self._runs.get(run_id)
            if run is not None:
                self._refresh(run)
            return run

    def stop_all(self, wait: float = 10.0) -> None:
        """Ask every running thread to stop before its next claim; wait up to ``wait`` s."""
        with self._lock:
            for event in self._stops.values():
                event.set()
            threads = list(self._threads.values())
        deadline = time.monotonic() + wait
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    # -- in a thread ---------------------------------------------------------------

    def _start_thread(self, run: Run) -> None:
        stop = threading.Event()
        thread = threading.Thread(
            target=self._run_thread, args=(run, stop), name=f"bridge-ui-pass-{run.queue}"
        )
        # A daemon: a process told to exit does not wait for a long pass; the
        # item in hand then comes back when its lease ends.
        thread.daemon = True
        self._stops[run.run_id] = stop
        self._threads[run.run_id] = thread
        thread.start()

    def _run_thread(self, run: Run, stop: threading.Event) -> None:
        try:
            summary = process_queue(
                run.queue,
                run.time_limit,
                run.items_limit,
                factory=self.factory,
                progress=lambda running: run.progressed(running.as_dict()),
                should_stop=stop.is_set,
            )
        except BridgeError as exc:
            run.fail(scrub(self.factory, one_line(exc)))
        except Exception as exc:
            logger.exception("The pass over %s started from the UI failed", run.queue)
            run.fail(f"internal error {type(exc).__name__}: {one_line(exc)}")
        else:
            run.finish(summary.as_dict())
        finally:
            with self._lock:
                self._stops.pop(run.run_id, None)
                self._threads.pop(run.run_id, None)

    # -- through Celery ------------------------------------------------------------

    def _send(self, run: Run) -> None:
        from bridge.celery.schedules import PROCESS_QUEUE

        task = self.celery_app.tasks.get(PROCESS_QUEUE)
        if task is None:
            raise ConfigurationError(
                f"the Celery app {self.celery_app.main!r} has no {PROCESS_QUEUE} task; "
                "call bridge.celery.init_app(app) on it"
            )
        kwargs = {"time_limit": run.time_limit, "items_limit": run.items_limit}
        try:
            result = task.apply_async(args=[run.queue], kwargs=kwargs, task_id=run.run_id)
        except Exception as exc:
            broker = scrub(self.factory, str(self.celery_app.conf.broker_url))
            raise BridgeError(f"cannot send the pass to Celery's broker {broker}: {exc}") from exc
        run.status = "queued"
        if not self.celery_app.conf.result_backend:
            run.note = (
                "Sent to Celery; with no result backend configured its progress cannot be "
                "read here: see Flower or the worker's log"
            )
            run.status, run.finished, run.ended = "sent", True, time.time()
        run.latest = {"task_id": result.id}

    def _give_up_waiting(self, run: Run) -> None:
        """Revoke a Celery pass no worker has taken for :data:`GIVE_UP_AFTER` s.

        Else a pass sent while no worker runs would refuse every later start.
        """
        if run.finished or run.status != "queued" or time.time() - run.started < GIVE_UP_AFTER:
            return
        try:
            self.celery_app.control.revoke(run.run_id)
        except Exception as exc:
            logger.warning("Could not revoke the pass %s: %s", run.run_id, exc)
        run.fail(f"no Celery worker took this pass in {GIVE_UP_AFTER:g} s: revoked")

    def _refresh(self, run: Run) -> None:
        """Read a Celery pass's state from the result backend (a thread's updates itself)."""
        if run.via != "celery" or run.finished:
            return
        try:
            result = self.celery_app.AsyncResult(run.run_id)
            state, info = result.state, result.info
        except Exception as exc:
            run.note = f"cannot read the pass's state from the result backend: {one_line(exc)}"
            return
        if state == "PROGRESS" and isinstance(info, dict):
            run.progressed(info)
            run.note = None
        elif state == "STARTED":
            run.status, run.note = "running", None
        elif state == "SUCCESS" and isinstance(info, dict):
            run.finish(info)
        elif state == "FAILURE":
            summary = _summary_in(str(info))
            if summary is not None:
                run.finish(summary, error=one_line(Exception(str(info))).split(":")[0])
            else:
                run.fail(f"the Celery task failed: {one_line(Exception(str(info)))}")
        elif state in ("REVOKED", "REJECTED"):
            run.fail(f"the Celery task was {state.lower()}")
        elif time.time() - run.started > PENDING_NOTE_AFTER:
            run.note = (
                "No Celery worker has picked this pass up yet: is `celery -A bridge worker` "
                "running, with this queue's worker module imported?"
            )


def _summary_in(message: str) -> dict[str, Any] | None:
    """The summary a ``PassFailed`` carries as JSON after its first colon."""
    start = message.find("{")
    if start < 0:
        return None
    try:
        found = json.loads(message[start:])
    except ValueError:
        return None
    return found if isinstance(found, dict) else None
