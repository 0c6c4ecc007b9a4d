"""Queues for Prometheus: depths, held items, waiting time and outcomes.

Flower exports what Celery events tell it (task counts and runtimes,
workers online); the items waiting in bridge's queues are not events.
``bridge metrics --port 9808`` serves these on ``/metrics`` for every known
queue (a registered worker's, or one with items in a configured backend)::

    bridge_queue_items{queue,backend}                     every item, held ones included
    bridge_queue_items_by_state{queue,backend,state}      state: ready, leased, delayed, held
    bridge_queue_held_items{queue,backend}                held items, waiting for an operator
    bridge_queue_oldest_ready_age_seconds{queue,backend}  how long the oldest ready item waits
    bridge_queue_up{queue,backend}                        1 if the backend answered this scrape
    bridge_queue_outcomes_total{queue,outcome}            items settled by the runner

The gauges are read from the stores through
:class:`~bridge.contract.Introspection` at each scrape (:class:`QueueCollector`),
one scrape at a time; ``backend`` is the store's URL with its password
masked. The oldest ready item's age is 0 when nothing is ready, and absent
while items are ready in a store that cannot tell their age (RabbitMQ,
SQS). The outcome counter is
:mod:`bridge.stats`'s: it counts in the processes that run items, so this
process sees it only when it runs them itself or when
``PROMETHEUS_MULTIPROC_DIR`` names the directory those processes write to
(``docs/failures.md``).

:func:`make_registry` and :func:`make_wsgi_app` are what an application
mounts; :func:`serve` is ``bridge metrics``' server, a thread per
connection, so a scraper that connects and sends nothing holds up nobody.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import prometheus_client
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import CollectorRegistry

from bridge.contract import Introspection
from bridge.errors import BridgeError, ConfigurationError
from bridge.factory import QueueFactory
from bridge.items import ItemCounts
from bridge.stats import outcome_counter
from bridge.workers import registered_workers

logger = logging.getLogger(__name__)

DEFAULT_PORT = 9808
STATES = ("ready", "leased", "delayed", "held")
MULTIPROC_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
SOCKET_TIMEOUT = 30.0
"""Seconds a connection may stay silent before its thread lets it go."""

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


@dataclass(frozen=True)
class QueueDepth:
    """One queue at scrape time; ``counts`` None when its backend failed.

    ``oldest_ready_age`` is None when the store cannot tell (or failed).
    """

    queue: str
    backend: str
    counts: ItemCounts | None
    oldest_ready_age: float | None = None

    @property
    def total(self) -> int | None:
        """Every item, held ones included (Drupal's count); None when the backend failed."""
        return None if self.counts is None else self.counts.total


def _known_queues(factory: QueueFactory) -> list[tuple[str, Introspection]]:
    """(queue, backend) for every registered worker and every stored queue, once each."""
    found: dict[tuple[str, int], tuple[str, Introspection]] = {}
    for name in registered_workers():
        store: Introspection = factory.get(name).backend
        found[(name, id(store))] = (name, store)
    for store in factory.backends():
        try:
            names = list(store.queue_names())
        except BridgeError as exc:
            logger.warning("Cannot list the queues of %s: %s", store.url, exc)
            continue
        for name in names:
            found.setdefault((name, id(store)), (name, store))
    return sorted(found.values(), key=lambda pair: (pair[0], pair[1].url))


def queue_depth(name: str, backend: Introspection) -> QueueDepth:
    """One queue's counts by state and the age of its oldest ready item.

    The contract's None age means "nothing is ready" or "cannot tell"
    (RabbitMQ, SQS); the counts tell which. Nothing ready is an age of 0;
    ready items of unknown age leave it None, never 0, which would keep an
    alert on waiting work quiet.
    """
    try:
        counts = backend.counts(name)
        age = backend.oldest_ready_age(name)
    except BridgeError as exc:
        logger.warning("Cannot count queue %s on %s: %s", name, backend.url, exc)
        return QueueDepth(name, backend.url, None)
    if age is None and counts.ready == 0:
        age = 0.0
    return QueueDepth(name, backend.url, counts, age)


def queue_depths(factory: QueueFactory) -> list[QueueDepth]:
    """Every known queue, by queue name then backend."""
    return [queue_depth(name, backend) for name, backend in _known_queues(factory)]


def families(depths: Iterable[QueueDepth]) -> list[Metric]:
    """The gauges of the depths, as ``prometheus_client`` metric families."""
    labels = ["queue", "backend"]
    items = GaugeMetricFamily(
        "bridge_queue_items",
        "Items in the queue: ready, leased, delayed and held (Drupal's count).",
        labels=labels,
    )
    by_state = GaugeMetricFamily(
        "bridge_queue_items_by_state",
        "Items in the queue by state: ready, leased, delayed or held.",
        labels=[*labels, "state"],
    )
    held = GaugeMetricFamily(
        "bridge_queue_held_items",
        "Held items: set aside after failing, never claimed until kicked or deleted.",
        labels=labels,
    )
    age = GaugeMetricFamily(
        "bridge_queue_oldest_ready_age_seconds",
        "Seconds the oldest ready item has waited since it was created; 0 if none is ready.",
        labels=labels,
    )
    up = GaugeMetricFamily(
        "bridge_queue_up", "1 if the queue's backend answered this scrape, else 0.", labels=labels
    )
    for depth in depths:
        names = [depth.queue, depth.backend]
        up.add_metric(names, int(depth.counts is not None))
        if depth.counts is None:
            continue
        items.add_metric(names, depth.counts.total)
        held.add_metric(names, depth.counts.held)
        for state in STATES:
            by_state.add_metric([*names, state], getattr(depth.counts, state))
        if depth.oldest_ready_age is not None:
            age.add_metric(names, depth.oldest_ready_age)
    return [items, by_state, held, age, up]


class QueueCollector:
    """A ``prometheus_client`` collector reading a factory's stores at each scrape.

    Collections run one at a time: a backend object is not promised to be
    safe to use from several threads at once, and concurrent scrapes of the
    same stores would only count the same items twice over.
    """

    def __init__(self, factory: QueueFactory) -> None:
        self.factory = factory
        self._lock = threading.Lock()

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            depths = queue_depths(self.factory)
        yield from families(depths)

    def describe(self) -> Iterator[Metric]:
        # Names for the registry's duplicate check, without reading any store.
        yield from families([])


def multiprocess_dir() -> str | None:
    """The directory of ``prometheus_client``'s multiprocess mode, if it is on."""
    return os.environ.get(MULTIPROC_VARIABLE) or None


def make_registry(factory: QueueFactory) -> CollectorRegistry:
    """A registry with the queue gauges and the runner's outcome counters.

    The counters come from ``PROMETHEUS_MULTIPROC_DIR`` when it is set (every
    process that wrote there, added up), else from this process alone.
    """
    registry = CollectorRegistry()
    registry.register(QueueCollector(factory))
    path = multiprocess_dir()
    if path is None:
        registry.register(outcome_counter())
    elif not os.path.isdir(path):
        raise ConfigurationError(
            f"{MULTIPROC_VARIABLE}={path!r} is not a directory; create it (empty) "
            "before the workers start, or unset it"
        )
    else:
        MultiProcessCollector(registry, path)  # type: ignore[no-untyped-call, unused-ignore]
    return registry


def exposition(factory: QueueFactory) -> str:
    """The text exposition of :func:`make_registry`, as one scrape would get it."""
    return prometheus_client.generate_latest(make_registry(factory)).decode()


def make_wsgi_app(factory: QueueFactory) -> WsgiApp:
    """A WSGI app serving :func:`make_registry` at whatever path it is mounted on."""
    app: WsgiApp = prometheus_client.make_wsgi_app(make_registry(factory))
    return app


def _only_metrics(app: WsgiApp) -> WsgiApp:
    """``app`` on ``/metrics``; 404 elsewhere, and 500 (logged) for a failed scrape."""

    def serve(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != "/metrics":
            start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"Not found; try /metrics\n"]
        try:
            return list(app(environ, start_response))
        except Exception as exc:
            logger.exception("Scrape failed")
            start_response(
                "500 Internal Server Error",
                [("Content-Type", "text/plain; charset=utf-8")],
                # wsgiref allows a second start_response only with exc_info.
                (type(exc), exc, exc.__traceback__),
            )
            return [f"scrape failed: {exc}\n".encode()]

    return serve


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    # Daemon threads: a connection left open never keeps the process alive.
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    timeout = SOCKET_TIMEOUT

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s " + format, self.address_string(), *args)


def serve(factory: QueueFactory, address: str, port: int) -> WSGIServer:
    """A server for ``/metrics`` on ``address:port``, bound but not yet serving.

    Call ``serve_forever()`` on it. Raises OSError when it cannot listen
    (``socket.gaierror`` for an address that does not resolve).
    """
    app = _only_metrics(make_wsgi_app(factory))
    # An IPv6 address needs an IPv6 socket; the server class fixes the family.
    found = socket.getaddrinfo(address, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)

    class _Server(_ThreadingServer):
        address_family = found[0][0]

    return make_server(address, port, app, server_class=_Server, handler_class=_QuietHandler)
