"""The web Queue UI: every queue, its items and held failures, and actions on them.

Drupal's Queue UI, Horizon and rq-dashboard for bridge's queues: server-rendered
pages (Starlette and Jinja2, autoescaped), a few lines of the project's own
JavaScript for live counts and a pass's progress, no build step.

``bridge ui`` serves it with uvicorn on 127.0.0.1:8010. To serve it inside an
application of your own, mount the ASGI app :func:`create_app` returns::

    from starlette.routing import Mount
    app = Starlette(routes=[Mount("/queues-ui", app=bridge.ui.create_app(factory))])

Install it with ``pip install "bridge[ui]"``. ``docs/ui.md`` describes the
pages, the routes and the security model (credentials, CSRF, read-only).

Modules: :mod:`~bridge.ui.app` (the app, routes, error pages),
:mod:`~bridge.ui.views` (GET pages), :mod:`~bridge.ui.actions` (POST
actions), :mod:`~bridge.ui.model` (what pages read from the stores),
:mod:`~bridge.ui.runs` (passes started from the UI),
:mod:`~bridge.ui.rates` (processed and failed per minute),
:mod:`~bridge.ui.security` (auth, CSRF, headers), :mod:`~bridge.ui.web`
(context, links, rendering).
"""

from __future__ import annotations

import importlib.util


def _missing() -> str | None:
    """The first package of the ``ui`` extra that is not installed (uvicorn: ``bridge ui`` only)."""
    for module in ("starlette", "jinja2", "itsdangerous"):
        if importlib.util.find_spec(module) is None:
            return module
    multipart = ("python_multipart", "multipart")  # its module's name, new and old
    if all(importlib.util.find_spec(module) is None for module in multipart):
        return "python-multipart"
    return None


if (_absent := _missing()) is not None:  # pragma: no cover - depends on the install
    from bridge.errors import MissingDependencyError

    raise MissingDependencyError(f'the queue UI needs {_absent}: pip install "bridge[ui]"')

from bridge.ui.app import create_app  # noqa: E402 - after the dependency check
from bridge.ui.security import Credentials, check_address  # noqa: E402

__all__ = ["Credentials", "check_address", "create_app"]
