"""A Zaqar v2-compatible HTTP API over bridge's queues, for producers that are not Python.

Marconi (now OpenStack Zaqar) is how a Drupal site's Marconi module, or any
Zaqar client, talks to a queue over HTTP. ``bridge serve`` answers the same
requests: queues, posting and listing messages, claims with a ttl and a
grace, deleting a message with its claim id, queue stats. A queue is a
bridge queue, a message an item: a Python worker claims what a PHP site
posted. ``docs/serve.md`` has the endpoints, the mapping and what is not
covered.

``bridge serve`` serves it with uvicorn on 127.0.0.1:8888; :func:`create_app`
returns the ASGI app to mount in an application of your own. Install with
``pip install "bridge[serve]"``.

Modules: :mod:`~bridge.serve.app` (the app, auth, error documents),
:mod:`~bridge.serve.handlers` (the endpoints), :mod:`~bridge.serve.wire`
(Zaqar's limits and JSON shapes), :mod:`~bridge.serve.claims` (Zaqar claim
ids over bridge's claim tokens).
"""

from __future__ import annotations

import importlib.util

if importlib.util.find_spec("starlette") is None:  # pragma: no cover - depends on the install
    from bridge.errors import MissingDependencyError

    raise MissingDependencyError('bridge serve needs its extra: pip install "bridge[serve]"')

from bridge.serve.app import check_address, create_app, credentials_from_settings

__all__ = ["check_address", "create_app", "credentials_from_settings"]
