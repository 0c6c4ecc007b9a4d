"""Queue depths as Prometheus text: what Flower's ``/metrics`` cannot show.

Flower exports what Celery events tell it (task counts and runtimes,
workers online); the items waiting in bridge's queues are not events.
``bridge metrics --port 9808`` serves them on ``/metrics`` for every known
queue (a registered worker's, or one with items in a configured backend)::

    bridge_queue_items{queue,backend}                  every item: ready, leased and delayed
    bridge_queue_items_by_state{queue,backend,state}   state: ready, leased, delayed
    bridge_queue_up{queue,backend}                     1 if the backend answered this scrape

``bridge_queue_items_by_state`` is left out for a backend that cannot count
by state. Each scrape counts afresh, one scrape at a time; ``bridge metrics
--once`` prints the same text (for a textfile collector or a quick look).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer

from bridge.contract import Introspection
from bridge.errors import BridgeError
from bridge.factory import QueueFactory
from bridge.items import ItemCounts
from bridge.workers import registered_workers

logger = logging.getLogger(__name__)

DEFAULT_PORT = 9808
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_HELP = {
    "bridge_queue_items": "Items in the queue: ready, leased and delayed (Drupal's count).",
    "bridge_queue_items_by_state": "Items in the queue by state: ready, leased or delayed.",
    "bridge_queue_up": "1 if the queue's backend answered this scrape, else 0.",
}


@dataclass(frozen=True)
class QueueDepth:
    """One queue's counts at scrape time; ``total`` None when its backend failed."""

    queue: str
    backend: str
    total: int | None
    counts: ItemCounts | None = None


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
    """One queue's depth; by state where the backend can count that way."""
    try:
        counts = backend.counts(name)
        return QueueDepth(name, backend.url, counts.total, counts)
    except BridgeError as exc:
        logger.warning("Cannot count queue %s on %s: %s", name, backend.url, exc)
        return QueueDepth(name, backend.url, None)


def queue_depths(factory: QueueFactory) -> list[QueueDepth]:
    """The depth of every known queue, by queue name then backend."""
    return [queue_depth(name, backend) for name, backend in _known_queues(factory)]


def _labels(**labels: str) -> str:
    def escape(value: str) -> str:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

    return ",".join(f'{key}="{escape(value)}"' for key, value in labels.items())


def render(depths: Iterable[QueueDepth]) -> str:
    """The Prometheus text exposition (format 0.0.4) of the depths."""
    samples: dict[str, list[str]] = {metric: [] for metric in _HELP}
    for depth in depths:
        labels = _labels(queue=depth.queue, backend=depth.backend)
        samples["bridge_queue_up"].append(f"{{{labels}}} {int(depth.total is not None)}")
        if depth.total is not None:
            samples["bridge_queue_items"].append(f"{{{labels}}} {depth.total}")
        if depth.counts is not None:
            for state in ("ready", "leased", "delayed"):
                value = getattr(depth.counts, state)
                by_state = _labels(queue=depth.queue, backend=depth.backend, state=state)
                samples["bridge_queue_items_by_state"].append(f"{{{by_state}}} {value}")
    lines: list[str] = []
    for metric, help_text in _HELP.items():
        lines += [f"# HELP {metric} {help_text}", f"# TYPE {metric} gauge"]
        lines += [f"{metric}{sample}" for sample in samples[metric]]
    return "\n".join(lines) + "\n"


class MetricsServer(HTTPServer):
    """Serves ``/metrics`` from a factory, one request at a time."""

    def __init__(self, factory: QueueFactory, address: str, port: int) -> None:
        super().__init__((address, port), _Handler)
        self.factory = factory


class _Handler(BaseHTTPRequestHandler):
    server: MetricsServer

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] != "/metrics":
            self._send(404, "text/plain; charset=utf-8", "Not found; try /metrics\n")
            return
        try:
            body = render(queue_depths(self.server.factory))
        except Exception as exc:
            logger.exception("Scrape failed")
            self._send(500, "text/plain; charset=utf-8", f"scrape failed: {exc}\n")
            return
        self._send(200, CONTENT_TYPE, body)

    def _send(self, status: int, content_type: str, body: str) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        logger.debug("%s " + format, self.address_string(), *args)
