"""What the pages show, read from the stores through the facade; no HTML here.

Every function here blocks on the stores: the views call them in a worker
thread. The queues page reads, per store, ``queue_names`` once and, per
queue, ``counts`` and ``oldest_ready_age``: the same reads as
:func:`bridge.metrics.queue_depths`, nothing per item. A queue page adds
one page of ``browse`` (or ``peek`` where the store cannot page).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from bridge.contract import Introspection
from bridge.errors import BackendError, BridgeError, UnknownQueueError
from bridge.factory import QueueFactory
from bridge.failures import Backoff, FailurePolicy
from bridge.items import ItemCounts, ItemId, ItemState, Undecodable
from bridge.queue import BrowsedItem, Queue
from bridge.runner import DEFAULT_LEASE_TIME
from bridge.urls import mask_password
from bridge.workers import QueueWorker, registered_workers

STATES = tuple(state.value for state in ItemState)
PAYLOAD_CHARS = 300
"""A payload is cut after this many characters in a list; its item page shows it whole."""
PAYLOAD_LINES = 8
T = TypeVar("T")


class StoreDown(Exception):
    """A store failed while a page was read: the page says which one, and why."""

    def __init__(self, url: str, message: str) -> None:
        super().__init__(message)
        self.url = url
        self.message = message


@dataclass(frozen=True)
class QueueRow:
    """One line of the queues page: one queue on one store."""

    name: str
    backend: str
    counts: ItemCounts | None = None
    oldest_ready_age: float | None = None
    error: str | None = None
    worker: QueueWorker | None = None


@dataclass(frozen=True)
class Overview:
    """The queues page: every known queue, and the stores that did not answer."""

    rows: list[QueueRow]
    store_errors: list[tuple[str, str]] = field(default_factory=list)


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def scrub(factory: QueueFactory, text: str) -> str:
    """``text`` with every configured URL's password masked, for a message shown to anyone.

    Backends name their store by its masked URL already; a driver's own
    message, chained into theirs, might quote the URL it was given.
    """
    for url in _configured_urls(factory):
        masked = mask_password(url)
        if masked != url:
            text = text.replace(url, masked)
    return text


def _configured_urls(factory: QueueFactory) -> list[str]:
    specs: list[Any] = [factory.default, factory.reliable_default, *factory.queues.values()]
    urls = []
    for spec in specs:
        url = spec.get("url") if isinstance(spec, dict) else spec
        if isinstance(url, str):
            urls.append(url)
    return urls


DISCOVERY_TTL = 10.0
"""Seconds the UI remembers which queues a store holds; their counts are read every time."""


class Discovery:
    """Which queues each store holds (``queue_names``), remembered for ``ttl`` seconds.

    On a SQL store ``queue_names`` groups every item of the table (about
    300 ms at 1,000,000 items), and the queues page asks every 2 s; the
    counts it shows are read afresh each time, only the list of queues with
    items is remembered. A queue created meanwhile appears within ``ttl``
    seconds; every action forgets the list at once.
    """

    def __init__(
        self, ttl: float = DISCOVERY_TTL, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl
        self._clock = clock
        self._found: dict[tuple[int, str], tuple[float, list[str]]] = {}
        self._lock = threading.Lock()

    def names(self, store: Introspection) -> list[str]:
        key, now = (id(store), store.url), self._clock()
        with self._lock:
            hit = self._found.get(key)
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1]
        names = list(store.queue_names())
        with self._lock:
            self._found[key] = (now, names)
        return names

    def forget(self) -> None:
        with self._lock:
            self._found.clear()


def overview(factory: QueueFactory, discovery: Discovery | None = None) -> Overview:
    """Every known queue: registered workers, configured queues, queues with items."""
    workers = registered_workers()
    found: dict[tuple[str, int], tuple[str, Introspection | None, str | None]] = {}
    for name in [*workers, *factory.queues]:
        try:
            store: Introspection = factory.get(name).backend
        except BridgeError as exc:
            found.setdefault((name, 0), (name, None, scrub(factory, one_line(exc))))
            continue
        found.setdefault((name, id(store)), (name, store, None))
    down: dict[int, str] = {}
    store_errors: list[tuple[str, str]] = []
    for store in factory.backends():
        try:
            names = discovery.names(store) if discovery else list(store.queue_names())
        except BridgeError as exc:
            down[id(store)] = scrub(factory, one_line(exc))
            store_errors.append((store.url, down[id(store)]))
            continue
        for name in names:
            found.setdefault((name, id(store)), (name, store, None))
    rows = []
    for name, opened, error in found.values():
        worker = workers.get(name)
        if opened is None:
            rows.append(QueueRow(name, "?", error=error, worker=worker))
        elif id(opened) in down:
            rows.append(QueueRow(name, opened.url, error=down[id(opened)], worker=worker))
        else:
            rows.append(_depth(factory, name, opened, worker))
    rows.sort(key=lambda row: (row.name, row.backend))
    return Overview(rows, store_errors)


def _depth(
    factory: QueueFactory, name: str, store: Introspection, worker: QueueWorker | None
) -> QueueRow:
    """As :func:`bridge.metrics.queue_depth`: nothing ready is an age of 0, unknown is None."""
    try:
        counts = store.counts(name)
        age = store.oldest_ready_age(name)
    except BridgeError as exc:
        return QueueRow(name, store.url, error=scrub(factory, one_line(exc)), worker=worker)
    if age is None and counts.ready == 0:
        age = 0.0
    return QueueRow(name, store.url, counts, age, worker=worker)


def known_queue(factory: QueueFactory, name: str) -> tuple[Queue, ItemCounts]:
    """The queue and its counts if a worker, a setting or a stored item knows it.

    As the CLI's check: :class:`UnknownQueueError` naming it otherwise, so a
    typo in a URL shows a 404 rather than an empty queue.
    """
    queue = factory.get(name)
    counts = read(factory, queue, queue.counts)
    if name in registered_workers() or name in factory.queues or counts.total:
        return queue, counts
    raise UnknownQueueError(
        f"Queue not found: {name} (no registered worker, setting or stored item knows it)"
    )


def read(factory: QueueFactory, queue: Queue, call: Callable[..., T], *args: Any) -> T:
    """``call(*args)``, a store failure turned into :class:`StoreDown` naming the store."""
    try:
        return call(*args)
    except BackendError as exc:
        raise StoreDown(queue.backend.url, scrub(factory, one_line(exc))) from exc


@dataclass(frozen=True)
class WorkerView:
    """The queue page's worker box: what runs the queue and how its failures are settled."""

    registered: bool
    cron_time: float | None
    lease_time: float
    lease_source: str
    max_attempts: int | None
    retry: str
    reliable: bool


def worker_view(queue: Queue) -> WorkerView:
    worker = registered_workers().get(queue.name)
    policy: FailurePolicy = queue.failure_policy
    if worker is None:
        return WorkerView(
            False,
            None,
            DEFAULT_LEASE_TIME,
            "default",
            policy.max_attempts,
            describe_retry(policy.retry),
            False,
        )
    policy = worker.failure_policy(policy)
    if worker.lease_time is not None:
        lease, source = worker.lease_time, "lease_time"
    elif worker.cron_time is not None:
        lease, source = worker.cron_time, "cron_time"
    else:
        lease, source = DEFAULT_LEASE_TIME, "default"
    return WorkerView(
        True,
        worker.cron_time,
        lease,
        source,
        policy.max_attempts,
        describe_retry(policy.retry),
        worker.reliable,
    )


def describe_retry(retry: Backoff | None) -> str:
    if retry is None:
        return "none: a failed item comes back when its lease ends"
    return (
        f"backoff {seconds(retry.initial)}, x{retry.factor:g} each attempt, at most "
        f"{seconds(retry.maximum)}, jitter {retry.jitter:.0%}"
    )


@dataclass(frozen=True)
class ItemsView:
    """One page of a queue's items: by key with ``browse``, else the next items (``peek``)."""

    items: list[BrowsedItem]
    next_after: str | None
    paged: bool


def items_page(
    factory: QueueFactory, queue: Queue, state: str | None, after: str | None, limit: int
) -> ItemsView:
    """``browse`` where the store can; ``peek``'s first items where it cannot."""
    if queue.capabilities.browse:
        page = read(factory, queue, queue.browse, state, after, limit)
        return ItemsView(page.items, page.next_after, True)
    if after is not None or state not in (None, ItemState.READY.value):
        raise UnsupportedView(
            f"{queue.backend.url} cannot list items page by page or by state; "
            "it shows the next items only"
        )
    peeked = read(factory, queue, queue.peek, limit)
    return ItemsView([BrowsedItem(ItemState.READY, item) for item in peeked], None, False)


class UnsupportedView(Exception):
    """A page the store cannot give (a 400 saying so)."""


def id_forms(text: str) -> list[ItemId]:
    """The ids a URL's text may stand for: SQL, Redis and memory ids are ints, others str."""
    if re.fullmatch(r"[0-9]{1,18}", text):
        return [int(text), text]
    return [text]


def find_item(factory: QueueFactory, queue: Queue, text: str) -> BrowsedItem | None:
    for item_id in id_forms(text):
        found = read(factory, queue, queue.find_item, item_id)
        if found is not None:
            return found
    return None


# -- formatting ----------------------------------------------------------------------


def payload_text(data: Any) -> str:
    """The payload pretty-printed as JSON; an undecodable one as its escaped bytes."""
    if isinstance(data, Undecodable):
        return str(data)
    return json.dumps(data, indent=2, ensure_ascii=False, default=repr, sort_keys=False)


def payload_preview(data: Any) -> tuple[str, bool]:
    """The payload cut to a few lines for a list, and whether anything was cut."""
    text = payload_text(data)
    lines = text.splitlines()
    cut = text
    if len(lines) > PAYLOAD_LINES:
        cut = "\n".join(lines[:PAYLOAD_LINES])
    if len(cut) > PAYLOAD_CHARS:
        cut = cut[:PAYLOAD_CHARS]
    if cut != text:
        return cut.rstrip() + "\n…", True
    return text, False


def first_line(text: str | None) -> str:
    """An error's line for a list: its first, the type and message as the runner stores it;
    the last for a Python traceback as printed, where the type and message come last."""
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    if not lines:
        return ""
    return lines[-1] if lines[0].startswith("Traceback (most recent call last)") else lines[0]


def seconds(value: float | None) -> str:
    """A duration for people: ``0.5 s``, ``42 s``, ``3 min 20 s``, ``2 h 5 min``, ``3 d 4 h``."""
    if value is None:
        return "—"
    if value < 10:
        return f"{value:.1f} s" if value % 1 else f"{value:.0f} s"
    whole = round(value)
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def count_cells(row: QueueRow) -> dict[str, str]:
    """The count cells of a queue, by their ``data-testid``, as the pages and JSON show them."""
    counts = row.counts
    if counts is None:
        return {f"count-{state}": "—" for state in STATES} | {"oldest-age": "—"}
    cells = {f"count-{state}": str(getattr(counts, state)) for state in STATES}
    cells["oldest-age"] = seconds(row.oldest_ready_age)
    return cells
