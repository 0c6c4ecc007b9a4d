"""``create_app``: the Queue UI as an ASGI app, its routes, and its error pages.

The routes are those of ``docs/ui.md``. A queue name is matched with
``{name:path}``, so names holding ``/`` work; the sub-page routes come
first, so ``/queues/a/held`` is queue ``a``'s held page (see
:func:`bridge.ui.views._known_or_longer` for a queue named ``a/held``).

Errors become pages, never tracebacks: an unknown queue or item is a 404
naming it, a bad argument (state, cursor, limit) a 400 with bridge's
message, a store that cannot be reached a 503 naming the store (its URL
masked), a refused action a 403 (CSRF, read-only) or 409 (a pass already
running). Anything else is a 500 that says it is a bug, and is logged.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from bridge.errors import (
    BridgeError,
    InvalidArgumentError,
    UnknownQueueError,
    UnsupportedOperationError,
)
from bridge.factory import QueueFactory, get_factory
from bridge.ui import actions, views
from bridge.ui.model import Discovery, StoreDown, UnsupportedView, one_line, scrub
from bridge.ui.rates import OutcomeRates
from bridge.ui.runs import Runs, RunsMode, celery_app_for
from bridge.ui.security import (
    AuthMiddleware,
    Credentials,
    HeadersMiddleware,
    ReadOnlyMiddleware,
)
from bridge.ui.web import HERE, STORE_THREADS, Context, make_templates

logger = logging.getLogger(__name__)

SESSION_COOKIE = "bridge_ui"
DEFAULT_PAGE_SIZE = 50
QUEUE = "/queues/{name:path}"

Endpoint = Callable[[Context, Request], Awaitable[Response]]


def create_app(
    factory: QueueFactory | None = None,
    *,
    read_only: bool = False,
    credentials: Credentials | None = None,
    metrics: bool = False,
    runs: RunsMode = "auto",
    celery_app: Any = None,
    secret: str | None = None,
    page_size: int = DEFAULT_PAGE_SIZE,
) -> Starlette:
    """The Queue UI over ``factory`` (default: the one built from the settings).

    ``read_only`` renders no action and answers every POST with 403.
    ``credentials`` (default: ``BRIDGE_UI_USER``/``BRIDGE_UI_PASSWORD``/
    ``BRIDGE_UI_TOKEN``) are asked of every request when set. ``metrics``
    serves ``/metrics`` from :func:`bridge.metrics.make_registry`. Passes
    run through Celery (``runs="celery"``, or ``"auto"`` when a broker is
    configured; ``celery_app`` is one of your own with
    ``bridge.celery.init_app`` applied), else in a thread of this process.
    ``secret`` signs the session cookie that holds the CSRF token: give the
    same one to every process serving the app (random per process if None).
    """
    if isinstance(page_size, bool) or not isinstance(page_size, int) or not 1 <= page_size <= 500:
        raise InvalidArgumentError(f"page_size must be an int from 1 to 500, not {page_size!r}")
    factory = factory if factory is not None else get_factory()
    credentials = credentials if credentials is not None else Credentials.from_settings()
    registry = None
    if metrics:
        from bridge.metrics import make_registry

        registry = make_registry(factory)
    ctx = Context(
        factory=factory,
        read_only=read_only,
        runs=Runs(factory, celery_app_for(runs, celery_app)),
        rates=OutcomeRates(),
        templates=make_templates(),
        registry=registry,
        page_size=page_size,
        limiter=anyio.CapacityLimiter(STORE_THREADS),
        discovery=Discovery(),
    )
    middleware = [Middleware(HeadersMiddleware), Middleware(AuthMiddleware, credentials)]
    if read_only:
        middleware.append(Middleware(ReadOnlyMiddleware))
    middleware.append(
        Middleware(
            SessionMiddleware,
            secret_key=secret or secrets.token_urlsafe(32),
            session_cookie=SESSION_COOKIE,
            same_site="strict",
            max_age=None,
        )
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await anyio.to_thread.run_sync(ctx.runs.stop_all)

    app = Starlette(
        routes=_routes(ctx, metrics),
        middleware=middleware,
        exception_handlers=_handlers(ctx),
        lifespan=lifespan,
    )
    app.state.bridge_ui = ctx
    return app


def _routes(ctx: Context, metrics: bool) -> list[BaseRoute]:
    def get(path: str, endpoint: Endpoint) -> Route:
        return Route(path, functools.partial(endpoint, ctx), methods=["GET"])

    def post(path: str, endpoint: Endpoint) -> Route:
        return Route(path, functools.partial(endpoint, ctx), methods=["POST"])

    routes: list[BaseRoute] = [
        get("/", views.queues_page),
        get("/queues.json", views.queues_json),
        get("/runs/{run_id}.json", views.run_json),
        get("/runs/{run_id}", views.run_page),
        post(QUEUE + "/items/{item_id}/delete", actions.delete_item),
        post(QUEUE + "/items/{item_id}/kick", actions.kick_item),
        get(QUEUE + "/items/{item_id}", views.item_page),
        post(QUEUE + "/held/kick", actions.kick_all),
        post(QUEUE + "/held/delete", actions.delete_held),
        get(QUEUE + "/held", views.held_page),
        post(QUEUE + "/release", actions.release_all),
        post(QUEUE + "/delete", actions.delete_queue),
        post(QUEUE + "/run", actions.run_pass),
        get(QUEUE, views.queue_page),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    if metrics:
        routes.insert(2, get("/metrics", views.metrics))
    return routes


def _handlers(ctx: Context) -> dict[Any, Callable[[Request, Exception], Awaitable[Response]]]:
    def page(
        request: Request,
        status: int,
        title: str,
        message: str,
        link: tuple[str, str] | None = None,
    ) -> Response:
        return ctx.render(
            request, "error.html", status, title=title, message=message, link=link, status=status
        )

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        titles = {403: "Refused", 404: "Not found", 405: "Method not allowed"}
        message = exc.detail
        if exc.status_code == 404 and message == "Not Found":
            message = f"Nothing is served at {request.url.path}."
        return page(request, exc.status_code, titles.get(exc.status_code, "Error"), message)

    async def unknown_queue(request: Request, exc: Exception) -> Response:
        return page(request, 404, "Queue not found", one_line(exc))

    async def bad_argument(request: Request, exc: Exception) -> Response:
        return page(request, 400, "Bad request", scrub(ctx.factory, one_line(exc)))

    async def refused(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, actions.Refused)
        return page(request, exc.status, "Refused", exc.message, exc.link)

    async def store_down(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StoreDown)
        message = f"The store at {exc.url} cannot be reached or failed: {exc.message}"
        return page(request, 503, "Store unreachable", message)

    async def bridge_error(request: Request, exc: Exception) -> Response:
        return page(request, 500, "Error", scrub(ctx.factory, one_line(exc)))

    async def internal(request: Request, exc: Exception) -> Response:
        logger.exception("The queue UI failed on %s %s", request.method, request.url.path)
        message = (
            f"Internal error {type(exc).__name__}: this is a bug in bridge; the UI's log "
            "has the traceback"
        )
        return page(request, 500, "Internal error", message)

    return {
        HTTPException: http_error,
        UnknownQueueError: unknown_queue,
        InvalidArgumentError: bad_argument,
        UnsupportedOperationError: bad_argument,
        UnsupportedView: bad_argument,
        actions.Refused: refused,
        StoreDown: store_down,
        BridgeError: bridge_error,
        Exception: internal,
    }
