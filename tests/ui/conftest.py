"""Fixtures for the Queue UI's tests: the app built on a factory, and served over HTTP.

``make_app(factory, **options)`` builds ``bridge.ui.create_app`` on the
test's factory (options as ``create_app`` takes them) and, after the test,
stops any pass the app started in a thread. ``ui_factory`` is a factory on
the memory store, a SQLite file of the test's own, the session's PostgreSQL
table, then its Redis key prefix (``ui_kind`` says which); ``client`` is
Starlette's TestClient on an app built over it. ``serve(app)`` serves an
app with uvicorn for the browser tests.

``tests/ui`` is a package (``__init__.py``) so that this file does not
shadow ``tests/conftest.py`` as the module ``conftest``, which the tests
here import ``spec_for`` and ``REQUIRE_SERVICES`` from.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import bridge

from conftest import spec_for

# -- the app on a factory, for every UI test ------------------------------------------

UI_KINDS = [
    pytest.param("memory", id="memory"),
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.service("postgres")),
    pytest.param("redis", id="redis", marks=pytest.mark.service("redis")),
]


@pytest.fixture
def make_app(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Any]]:
    """Build the UI on a given factory: ``make_app(factory, read_only=True, ...)``.

    No credentials and no Celery unless the test passes them: the
    environment's ``BRIDGE_UI_*`` and ``BRIDGE_BROKER_URL`` are unset.
    """
    from bridge.ui import create_app

    for variable in (
        "BRIDGE_UI_USER",
        "BRIDGE_UI_PASSWORD",
        "BRIDGE_UI_TOKEN",
        "BRIDGE_BROKER_URL",
    ):
        monkeypatch.delenv(variable, raising=False)
    made: list[Any] = []

    def make(factory: bridge.QueueFactory, **options: Any) -> Any:
        app = create_app(factory, **options)
        made.append(app)
        return app

    yield make
    for app in made:
        app.state.bridge_ui.runs.stop_all()


@pytest.fixture(params=UI_KINDS)
def ui_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture
def ui_factory(ui_kind: str, tmp_path: Path) -> Iterator[bridge.QueueFactory]:
    """A factory on memory, the test's SQLite file, the session's PostgreSQL table or Redis."""
    factory = bridge.QueueFactory(default=spec_for(ui_kind, tmp_path))
    yield factory
    factory.close()


@pytest.fixture
def client(make_app: Callable[..., Any], ui_factory: bridge.QueueFactory) -> Iterator[Any]:
    """Starlette's TestClient on the UI over ``ui_factory``."""
    from starlette.testclient import TestClient

    with TestClient(make_app(ui_factory)) as test_client:
        yield test_client


# -- the app served over HTTP, for the browser tests -----------------------------------


@contextlib.contextmanager
def served(app: Any) -> Iterator[str]:
    """Serve the ASGI ``app`` with uvicorn on 127.0.0.1 and a free port; yields its base URL.

    uvicorn runs in a thread of this process, so a test sees the same worker
    registry as the app. The socket is bound here, before the thread starts,
    so the port is known and taken before anything connects to it.
    """
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=3)
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"uvicorn:{port}", daemon=True
    )
    thread.start()
    try:
        for _ in range(500):
            if server.started or not thread.is_alive():
                break
            threading.Event().wait(0.01)
        if not server.started:
            raise RuntimeError(f"uvicorn did not start on 127.0.0.1:{port}")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@pytest.fixture
def serve() -> Iterator[Callable[[Any], str]]:
    """``serve(app)`` serves an app for the test's length and returns its base URL."""
    with contextlib.ExitStack() as stack:
        yield lambda app: stack.enter_context(served(app))
