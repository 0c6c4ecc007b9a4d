"""Queue workers: Drupal's QueueWorker plugins, registered by queue name.

A worker is a function registered for one queue name with
:func:`queue_worker`; it receives each item's data. How it ends decides the
item's fate, as in Drupal's ``Cron::processQueue``: it returns (the item is
deleted), or raises one of the control-flow exceptions defined here
(:class:`Requeue`, :class:`DelayedRequeue`, :class:`SuspendQueue`,
:class:`~bridge.failures.HoldItem`), or raises anything else (a failure,
which its queue's failure policy settles: see :mod:`bridge.failures`).
:mod:`bridge.runner` claims the items, calls the workers and acts on those
outcomes; this module only says what a worker is.

Worker modules are imported from the ``BRIDGE_IMPORTS`` setting (see
:mod:`bridge.settings`) before the registry is read, so a Celery worker or the
CLI finds the same workers the application registered.
"""

from __future__ import annotations

import contextvars
import importlib
import math
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from bridge.errors import ConfigurationError, InvalidArgumentError, UnknownQueueError
from bridge.failures import (
    UNSET,
    Backoff,
    FailurePolicy,
    Unset,
    check_max_attempts,
)
from bridge.failures import (
    HoldItem as HoldItem,
)
from bridge.items import QueueItem
from bridge.queue import check_seconds
from bridge.settings import load_settings

Callback = Callable[[Any], object]
F = TypeVar("F", bound=Callable[[Any], Any])


class Requeue(Exception):
    """Release the item now; it is claimed again in the same pass."""


class DelayedRequeue(Exception):
    """Make the item claimable again ``delay`` seconds from now.

    As in Drupal, a delay of 0 or less is stored as 0 (claimable at once).
    """

    def __init__(self, delay: float, message: str = "") -> None:
        super().__init__(message)
        seconds = float(delay)
        if math.isnan(seconds) or math.isinf(seconds):
            raise InvalidArgumentError(f"DelayedRequeue delay must be finite, not {delay!r}")
        self.delay = seconds if seconds > 0 else 0.0


class SuspendQueue(Exception):
    """Release the item and stop processing this queue for the rest of the run.

    With a ``delay`` shorter than ``run_cron``'s ``max_wait``, cron comes back
    to the queue after ``delay`` seconds, in the same run.
    """

    def __init__(self, message: str = "", delay: float | None = None) -> None:
        super().__init__(message)
        self.delay = None if delay is None else float(delay)


@dataclass(frozen=True)
class QueueWorker:
    """The worker of one queue: Drupal's QueueWorker plugin definition.

    ``cron_time`` is cron's time budget for the queue (None: cron never runs
    it); ``lease_time`` is the lease of each claimed item, when it must differ
    from ``cron_time`` (Drupal has only ``cron.time``, used for both).
    ``reliable`` declares that the queue must keep its items through crashes:
    every ``get(name)`` of it, producers' and consumers' alike, then reaches
    ``reliable_default`` when the default backend is not reliable (see
    :meth:`bridge.factory.QueueFactory.get`). ``max_attempts`` and ``retry``
    override the queue's failure policy (``UNSET``: the queue's applies).
    """

    name: str
    callback: Callback
    cron_time: float | None = None
    lease_time: float | None = None
    reliable: bool = False
    max_attempts: int | Unset | None = UNSET
    retry: Backoff | Unset | None = UNSET

    @property
    def cron_lease(self) -> float | None:
        """The lease cron claims with: ``lease_time`` if set, else ``cron_time``."""
        return self.lease_time if self.lease_time is not None else self.cron_time

    def failure_policy(self, queue_policy: FailurePolicy) -> FailurePolicy:
        """The policy this worker's items fail by: the queue's, with the worker's own options."""
        return queue_policy.overridden(self.max_attempts, self.retry)


_registry: dict[str, QueueWorker] = {}
_imported: set[str] = set()
_lock = threading.Lock()

current_item_var: contextvars.ContextVar[QueueItem | None] = contextvars.ContextVar(
    "bridge_current_item", default=None
)
"""The item in hand; the runner sets it around each worker call."""


def positive_seconds(what: str, value: float | None) -> float | None:
    """None, or ``value`` as float seconds above 0 (an error naming ``what`` if not)."""
    return None if value is None else check_seconds(what, value, positive=True)


def _origin(callback: Callback) -> tuple[str, str]:
    module = getattr(callback, "__module__", None) or "?"
    return module, getattr(callback, "__qualname__", repr(callback))


def queue_worker(
    name: str,
    cron_time: float | None = None,
    lease_time: float | None = None,
    *,
    reliable: bool = False,
    max_attempts: int | Unset | None = UNSET,
    retry: Backoff | Unset | None = UNSET,
) -> Callable[[F], F]:
    """Register the decorated ``callback(data)`` as the worker of queue ``name``.

    The function is returned unchanged. Registering a second function for the
    same queue is a :class:`ConfigurationError`, unless it has the same module
    and qualified name: that is the module being imported again, and the new
    definition replaces the old one. ``reliable=True`` declares the queue
    reliable (see :class:`QueueWorker`); declare it in a module that every
    process using the queue imports (``BRIDGE_IMPORTS``), or in the
    ``BRIDGE_RELIABLE_QUEUES`` setting.

    ``max_attempts`` (claims before a failing item is held; None: never held)
    and ``retry`` (a :class:`~bridge.failures.Backoff` between failed
    attempts; None: the item waits for its lease to end) override the
    queue's settings; left out, the queue's apply (default 10 and None).
    """
    if not isinstance(name, str) or not name:
        raise InvalidArgumentError(f"a queue worker needs a queue name, not {name!r}")
    cron = positive_seconds("cron_time", cron_time)
    lease = positive_seconds("lease_time", lease_time)
    if not isinstance(reliable, bool):
        raise InvalidArgumentError(f"reliable must be True or False, not {reliable!r}")
    if max_attempts is not UNSET:
        check_max_attempts(max_attempts)
    if retry is not UNSET and retry is not None and not isinstance(retry, Backoff):
        raise InvalidArgumentError(f"retry must be a bridge.Backoff or None, not {retry!r}")

    def register(callback: F) -> F:
        if not callable(callback):
            raise InvalidArgumentError(
                f"queue_worker({name!r}) decorates a function, not {callback!r}"
            )
        worker = QueueWorker(name, callback, cron, lease, reliable, max_attempts, retry)
        with _lock:
            existing = _registry.get(name)
            if existing is not None and _origin(existing.callback) != _origin(callback):
                raise ConfigurationError(
                    f"queue {name!r} already has the worker {'.'.join(_origin(existing.callback))}"
                    f"; cannot also register {'.'.join(_origin(callback))}"
                )
            _registry[name] = worker
        return callback

    return register


def import_worker_modules(modules: Iterable[str] | None = None) -> None:
    """Import the modules that register workers, each once: ``modules`` or ``BRIDGE_IMPORTS``."""
    names = load_settings().imports if modules is None else tuple(modules)
    source = " (from BRIDGE_IMPORTS)" if modules is None else ""
    for module in names:
        if module in _imported:
            continue
        try:
            importlib.import_module(module)
        except Exception as exc:
            raise ConfigurationError(
                f"cannot import worker module {module!r}{source}: {type(exc).__name__}: {exc}"
            ) from exc
        _imported.add(module)


def registered_workers() -> dict[str, QueueWorker]:
    """Every registered worker by queue name, in registration order."""
    import_worker_modules()
    with _lock:
        return dict(_registry)


def get_worker(name: str) -> QueueWorker:
    """The worker of queue ``name``; :class:`UnknownQueueError` if there is none."""
    workers = registered_workers()
    try:
        return workers[name]
    except KeyError:
        known = ", ".join(workers) or "(none)"
        imports = ",".join(load_settings().imports) or "(unset)"
        raise UnknownQueueError(
            f"no worker registered for queue {name!r}; registered: {known}; "
            f"worker modules come from BRIDGE_IMPORTS={imports}"
        ) from None


def declared_reliable(name: str) -> bool:
    """Whether the worker registered for ``name`` declares it reliable.

    Reads the registry as it is, importing nothing: the factory asks this on
    every ``get`` of a queue on a non-reliable backend.
    """
    worker = _registry.get(name)
    return worker is not None and worker.reliable


def current_item() -> QueueItem | None:
    """The item the calling worker is processing, or None outside a worker.

    A worker receives only the data, as in Drupal; this gives it the rest:
    ``attempts`` to hold poison items, the item itself to ``extend_lease``.
    """
    return current_item_var.get()
