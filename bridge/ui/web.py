"""What every view shares: the app's context, links, rendering, and the hop to a thread.

Store calls block, so a view runs them with :meth:`Context.call`, in a
worker thread (at most :data:`STORE_THREADS` at once), and renders in the
event loop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

import anyio
import anyio.to_thread
import jinja2
from prometheus_client.registry import CollectorRegistry
from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from bridge.factory import QueueFactory
from bridge.items import ItemId
from bridge.ui import model
from bridge.ui.rates import OutcomeRates
from bridge.ui.runs import Runs
from bridge.ui.security import csrf_token

HERE = Path(__file__).resolve().parent
STORE_THREADS = 8
"""Store calls run at once; more requests wait for a thread."""
T = TypeVar("T")


def make_templates() -> Jinja2Templates:
    """The templates, autoescaped whatever their file name: data from queues is never markup."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        seconds=model.seconds, isotime=_isotime, localtime=_localtime, inseconds=_inseconds
    )
    return Jinja2Templates(env=env)


def _isotime(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def _localtime(epoch: float) -> str:
    return datetime.fromtimestamp(epoch).isoformat(sep=" ", timespec="seconds")


def _inseconds(delta: float) -> str:
    """``in 25 s``, or ``25 s ago`` for a deadline passed."""
    return f"in {model.seconds(delta)}" if delta >= 0 else f"{model.seconds(-delta)} ago"


@dataclass
class Context:
    """The app's state: its factory, options, runs and rates."""

    factory: QueueFactory
    read_only: bool
    runs: Runs
    rates: OutcomeRates
    templates: Jinja2Templates
    registry: CollectorRegistry | None
    page_size: int
    limiter: anyio.CapacityLimiter
    discovery: model.Discovery

    async def call(self, function: Callable[..., T], *args: Any) -> T:
        """``function(*args)`` in a worker thread: store calls block."""
        return await anyio.to_thread.run_sync(function, *args, limiter=self.limiter)

    def render(
        self, request: Request, template: str, status_code: int = 200, **values: Any
    ) -> Response:
        # Outside the session middleware (a page for an internal error) there is none.
        session = "session" in request.scope
        flashed = request.session.pop("flash", None) if session else None
        context = {
            "links": Links(request),
            "read_only": self.read_only,
            "csrf": csrf_token(request) if session and not self.read_only else "",
            "flash": values.pop("flash", None) or flashed,
            **values,
        }
        return self.templates.TemplateResponse(request, template, context, status_code=status_code)


def flash(request: Request, message: str) -> None:
    """The message the next page shows (``data-testid="flash"``)."""
    request.session["flash"] = message


class Links:
    """Every URL a page links to, under the app's mount point, names path-escaped.

    A queue name may hold ``/``, spaces, ``%`` or anything else: it is
    percent-escaped with its ``/`` kept, which the ``{name:path}`` routes
    read back whole. An item id is escaped entirely.
    """

    def __init__(self, request: Request) -> None:
        self.root = str(request.scope.get("root_path", "")).rstrip("/")

    def home(self) -> str:
        return f"{self.root}/"

    def static(self, name: str) -> str:
        return f"{self.root}/static/{name}"

    def queues_json(self) -> str:
        return f"{self.root}/queues.json"

    def queue(self, name: str, **query: Any) -> str:
        shown = {k: v for k, v in query.items() if v is not None}
        suffix = f"?{urlencode(shown)}" if shown else ""
        return f"{self.root}/queues/{quote(name, safe='/')}{suffix}"

    def queue_part(self, name: str, *parts: str) -> str:
        return "/".join([f"{self.root}/queues/{quote(name, safe='/')}", *parts])

    def item(self, name: str, item_id: ItemId, *parts: str) -> str:
        return self.queue_part(name, "items", quote(str(item_id), safe=""), *parts)

    def run(self, run_id: str, json: bool = False) -> str:
        return f"{self.root}/runs/{quote(run_id, safe='')}{'.json' if json else ''}"

    def metrics(self) -> str:
        return f"{self.root}/metrics"
