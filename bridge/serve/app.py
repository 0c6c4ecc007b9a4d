"""``create_app``: the Zaqar v2 API as an ASGI app, its auth, and its error documents.

Auth is the Queue UI's (:mod:`bridge.ui.security`): the same
:class:`~bridge.ui.security.Credentials` check, asked of every request when
credentials are set, and the same loopback rule for ``bridge serve``. A
Zaqar client sends its token as ``X-Auth-Token``; that header is accepted
beside ``Authorization: Bearer`` and basic auth.

Every error is Zaqar's document, ``{"title", "description"}``, never a
traceback: a bad argument is a 400 naming it, a store that does not answer
a 503, a store that cannot do what was asked a 400 saying so, anything
else a 500 that says it is a bug (and is logged).
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from bridge.errors import (
    BackendUnavailableError,
    BridgeError,
    ConfigurationError,
    InvalidArgumentError,
    PayloadError,
    UnsupportedOperationError,
)
from bridge.factory import QueueFactory, get_factory
from bridge.serve import handlers, wire
from bridge.serve.claims import ClaimBook
from bridge.serve.handlers import Api
from bridge.serve.wire import ApiError
from bridge.ui.model import one_line, scrub
from bridge.ui.security import AuthMiddleware, Credentials, is_loopback

logger = logging.getLogger(__name__)

STORE_THREADS = 16
QUEUE = "/v2/queues/{name}"

Endpoint = Callable[[Api, Request], Awaitable[Response]]


def credentials_from_settings(
    user: str | None = None, password: str | None = None, token: str | None = None
) -> Credentials:
    """``BRIDGE_SERVE_USER``/``BRIDGE_SERVE_PASSWORD``/``BRIDGE_SERVE_TOKEN``, overridden by the
    arguments; a user without a password (or the reverse) is refused."""
    user = user or os.environ.get("BRIDGE_SERVE_USER") or None
    password = password or os.environ.get("BRIDGE_SERVE_PASSWORD") or None
    token = token or os.environ.get("BRIDGE_SERVE_TOKEN") or None
    if (user is None) != (password is None):
        raise ConfigurationError(
            "bridge serve's basic auth needs both a user and a password "
            "(BRIDGE_SERVE_USER and BRIDGE_SERVE_PASSWORD)"
        )
    return Credentials(user, password, token)


def check_address(host: str, credentials: Credentials) -> None:
    """Refuse a non-loopback address without credentials: anyone reaching it could post."""
    if is_loopback(host) or credentials.configured:
        return
    raise ConfigurationError(
        f"refusing to serve the Zaqar API on {host} without credentials: set "
        "BRIDGE_SERVE_TOKEN (or BRIDGE_SERVE_USER and BRIDGE_SERVE_PASSWORD), "
        "or listen on 127.0.0.1"
    )


def _error(status: int, title: str, description: str) -> JSONResponse:
    return JSONResponse({"title": title, "description": description}, status_code=status)


def _unauthorized() -> Response:
    """401 as a Zaqar error document (the shared AuthMiddleware adds the challenge)."""
    return _error(
        401,
        "Unauthorized",
        "Credentials needed: X-Auth-Token (or Authorization: Bearer) with the token, "
        "or basic auth with the user and password.",
    )


def create_app(
    factory: QueueFactory | None = None, *, credentials: Credentials | None = None
) -> Starlette:
    """The Zaqar v2 API over ``factory`` (default: the one built from the settings).

    ``credentials`` (default: ``BRIDGE_SERVE_USER``/``BRIDGE_SERVE_PASSWORD``/
    ``BRIDGE_SERVE_TOKEN``) are asked of every request when set.
    """
    factory = factory if factory is not None else get_factory()
    credentials = credentials if credentials is not None else credentials_from_settings()
    api = Api(factory, ClaimBook(), anyio.CapacityLimiter(STORE_THREADS))

    def route(path: str, method: str, endpoint: Endpoint) -> Route:
        return Route(path, _with_client(functools.partial(endpoint, api)), methods=[method])

    routes: list[BaseRoute] = [
        Route("/v2/ping", _ping, methods=["GET", "HEAD"]),
        route("/v2/queues", "GET", handlers.list_queues),
        route(QUEUE, "PUT", handlers.put_queue),
        route(QUEUE, "GET", handlers.get_queue),
        route(QUEUE, "DELETE", handlers.delete_queue),
        route(QUEUE + "/stats", "GET", handlers.queue_stats),
        route(QUEUE + "/messages", "POST", handlers.post_messages),
        route(QUEUE + "/messages", "GET", handlers.list_messages),
        route(QUEUE + "/messages", "DELETE", handlers.delete_messages),
        route(QUEUE + "/messages/{message_id}", "GET", handlers.get_message),
        route(QUEUE + "/messages/{message_id}", "DELETE", handlers.delete_message),
        route(QUEUE + "/claims", "POST", handlers.create_claim),
        route(QUEUE + "/claims/{claim_id}", "GET", handlers.get_claim),
        route(QUEUE + "/claims/{claim_id}", "PATCH", handlers.update_claim),
        route(QUEUE + "/claims/{claim_id}", "DELETE", handlers.delete_claim),
    ]
    app = Starlette(routes=routes, exception_handlers=_handlers(factory))
    app.add_middleware(
        AuthMiddleware,
        credentials=credentials,
        realm="bridge Zaqar API",
        token_header="x-auth-token",
        refusal=_unauthorized,
    )
    app.state.bridge_serve = api
    return app


async def _ping(request: Request) -> Response:
    return Response(status_code=204)


def _with_client(
    endpoint: Callable[[Request], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    """Zaqar's rule: every queue, message and claim request names its client."""

    async def checked(request: Request) -> Response:
        request.state.client_id = wire.client_id(request.headers.get("client-id"))
        return await endpoint(request)

    return checked


Handler = Callable[[Request, Exception], Awaitable[Response]]


def _handlers(factory: QueueFactory) -> dict[Any, Handler]:
    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return _error(exc.status, exc.title, exc.description)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        titles = {404: "Not found", 405: "Method not allowed"}
        description = exc.detail
        if exc.status_code == 404:
            description = f"Nothing is served at {request.url.path}."
        elif exc.status_code == 405:
            description = f"{request.method} is not allowed on {request.url.path}."
        return _error(exc.status_code, titles.get(exc.status_code, "Error"), description)

    async def bad_argument(request: Request, exc: Exception) -> Response:
        return _error(400, "Invalid API request", scrub(factory, one_line(exc)))

    async def unsupported(request: Request, exc: Exception) -> Response:
        return _error(400, "Not supported by this store", scrub(factory, one_line(exc)))

    async def store_down(request: Request, exc: Exception) -> Response:
        return _error(503, "Service Unavailable", scrub(factory, one_line(exc)))

    async def bridge_error(request: Request, exc: Exception) -> Response:
        return _error(500, "Internal server error", scrub(factory, one_line(exc)))

    async def internal(request: Request, exc: Exception) -> Response:
        logger.exception("bridge serve failed on %s %s", request.method, request.url.path)
        return _error(
            500,
            "Internal server error",
            f"{type(exc).__name__}: this is a bug in bridge; the server's log has the traceback.",
        )

    return {
        ApiError: api_error,
        HTTPException: http_error,
        InvalidArgumentError: bad_argument,
        PayloadError: bad_argument,
        UnsupportedOperationError: unsupported,
        BackendUnavailableError: store_down,
        BridgeError: bridge_error,
        Exception: internal,
    }
