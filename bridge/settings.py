"""Where bridge's settings come from when the application does not pass them.

Highest first:

1. ``bridge.configure(...)`` in the application.
2. The environment:

   ``BRIDGE_QUEUE_DEFAULT``
       the URL every queue uses unless overridden (default
       ``sqlite:///bridge.sqlite``, relative to the working directory).
   ``BRIDGE_QUEUE_DEFAULT_RELIABLE``
       the URL that serves the queues declared reliable when the default
       backend is not reliable (Drupal 7's ``queue_default_reliable_class``).
   ``BRIDGE_RELIABLE_QUEUES``
       comma-separated queue names declared reliable (as a worker does with
       ``queue_worker(name, reliable=True)``).
   ``BRIDGE_QUEUE__<NAME>``
       one queue's URL: ``<NAME>`` is the queue name upper-cased with every
       character other than a letter or digit turned into ``_``, so
       ``BRIDGE_QUEUE__EMAILS`` serves queue ``emails``. Listings name such a
       queue ``<NAME>`` lower-cased (see :class:`EnvironmentQueues`).
   ``BRIDGE_QUEUES``
       a JSON object shaped like ``QueueFactory(queues=...)``, for overrides
       that carry options or names an environment variable cannot spell.
   ``BRIDGE_IMPORTS``
       comma-separated modules that register queue workers.
   ``BRIDGE_MAX_ATTEMPTS``
       the claims a failing item gets before it is held, for every queue
       whose settings do not say (default 10; ``none``: never held, as in
       Drupal). See :mod:`bridge.failures`.
   ``BRIDGE_RETRY``
       the backoff between failed attempts for every queue whose settings do
       not say, a JSON object such as ``{"initial": 10, "factor": 2,
       "maximum": 3600}``; ``none`` (the default): a failed item waits for
       its lease to end.
   ``BRIDGE_OUTAGE_TOLERANCE``
       how long (seconds) a pass retries a store it cannot reach before it
       stops (default 30; 0: stop at the first failed round trip).
   ``BRIDGE_UI_USER``, ``BRIDGE_UI_PASSWORD``, ``BRIDGE_UI_TOKEN``
       the web Queue UI's credentials (:func:`load_ui_settings`): HTTP basic
       auth, or a bearer token; ``bridge ui`` refuses to listen on any
       address but loopback without one of them.

3. The Celery configuration module (``celeryconfig`` or the module named by
   ``CELERY_CONFIG_MODULE``), if importable: its ``bridge_queue_default``,
   ``bridge_queue_default_reliable``, ``bridge_queues``, ``bridge_imports``,
   ``bridge_reliable_queues``, ``bridge_max_attempts``, ``bridge_retry``,
   ``bridge_outage_tolerance`` and ``bridge_ui_user`` / ``bridge_ui_password``
   / ``bridge_ui_token``.

``BRIDGE_MAX_ATTEMPTS`` and ``BRIDGE_RETRY`` become options of the default
queue setting (:func:`with_failure_defaults`), which every queue inherits;
the default setting's own ``max_attempts`` and ``retry`` options win.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import math
import os
import re
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, TypeVar

from bridge.errors import ConfigurationError

DEFAULT_URL = "sqlite:///bridge.sqlite"
QUEUE_ENV_PREFIX = "BRIDGE_QUEUE__"
DEFAULT_OUTAGE_TOLERANCE = 30.0
"""Seconds a pass retries an unreachable store: a server restart, a failover."""

Spec = str | Mapping[str, Any]
"""A backend URL, or ``{"url": ..., "options": {...}}``; either part may be left out."""
_S = TypeVar("_S", bound=Spec | None)


@dataclass(frozen=True)
class Settings:
    default: Spec = DEFAULT_URL
    reliable_default: Spec | None = None
    queues: Mapping[str, Spec] = field(default_factory=dict)
    imports: tuple[str, ...] = ()
    reliable_queues: frozenset[str] = frozenset()
    failure_options: Mapping[str, Any] = field(default_factory=dict)
    """``max_attempts`` and ``retry`` for every queue, where given."""
    outage_tolerance: float = DEFAULT_OUTAGE_TOLERANCE


def queue_env_name(queue: str) -> str:
    """The environment variable that overrides one queue's URL."""
    return QUEUE_ENV_PREFIX + re.sub(r"[^A-Za-z0-9]", "_", queue).upper()


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from the environment over the Celery config module over the defaults."""
    env = os.environ if environ is None else environ
    config = _celery_config(env)
    default = env.get("BRIDGE_QUEUE_DEFAULT") or getattr(config, "bridge_queue_default", None)
    reliable = env.get("BRIDGE_QUEUE_DEFAULT_RELIABLE") or getattr(
        config, "bridge_queue_default_reliable", None
    )
    queues: dict[str, Spec] = dict(getattr(config, "bridge_queues", None) or {})
    if env.get("BRIDGE_QUEUES"):
        queues.update(_json_queues(env["BRIDGE_QUEUES"]))
    imports = env.get("BRIDGE_IMPORTS") or getattr(config, "bridge_imports", None) or ""
    if not isinstance(imports, str):
        imports = ",".join(imports)
    reliable_queues = (
        env.get("BRIDGE_RELIABLE_QUEUES") or getattr(config, "bridge_reliable_queues", None) or ""
    )
    if not isinstance(reliable_queues, str):
        reliable_queues = ",".join(reliable_queues)
    return Settings(
        default=default or DEFAULT_URL,
        reliable_default=reliable or None,
        queues=EnvironmentQueues(queues, env),
        imports=tuple(module.strip() for module in imports.split(",") if module.strip()),
        reliable_queues=frozenset(n.strip() for n in reliable_queues.split(",") if n.strip()),
        failure_options=_failure_options(env, config),
        outage_tolerance=_outage_tolerance(env, config),
    )


@dataclass(frozen=True)
class UiSettings:
    """The web Queue UI's credentials; None where not set."""

    user: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)


def load_ui_settings(environ: Mapping[str, str] | None = None) -> UiSettings:
    """``BRIDGE_UI_USER``, ``BRIDGE_UI_PASSWORD`` and ``BRIDGE_UI_TOKEN``, else the Celery
    config module's ``bridge_ui_user``, ``bridge_ui_password`` and ``bridge_ui_token``.

    Checked by :class:`bridge.ui.Credentials` (a user needs a password).
    """
    env = os.environ if environ is None else environ
    config = _celery_config(env)
    values = []
    for key in ("user", "password", "token"):
        value = env.get(f"BRIDGE_UI_{key.upper()}") or getattr(config, f"bridge_ui_{key}", None)
        if value is not None and not isinstance(value, str):
            raise ConfigurationError(
                f"bridge_ui_{key} must be a string, not {type(value).__name__}"
            )
        values.append(value or None)
    return UiSettings(*values)


def with_failure_defaults(spec: _S, failure_options: Mapping[str, Any]) -> _S | Spec:
    """A default queue setting ``spec`` with ``failure_options`` under its own options."""
    if spec is None or not failure_options:
        return spec
    if isinstance(spec, str):
        return {"url": spec, "options": dict(failure_options)}
    if not isinstance(spec, Mapping) or not isinstance(spec.get("options") or {}, Mapping):
        return spec  # the factory says what is wrong with it
    return {**spec, "options": {**failure_options, **(spec.get("options") or {})}}


def _failure_options(env: Mapping[str, str], config: ModuleType | None) -> dict[str, Any]:
    """``max_attempts`` and ``retry`` for every queue, from the environment or celeryconfig.

    Checked when a queue is built from them (:class:`bridge.failures.FailurePolicy`).
    """
    options: dict[str, Any] = {}
    text = env.get("BRIDGE_MAX_ATTEMPTS", "").strip()
    if text:
        if text.lower() == "none":
            options["max_attempts"] = None
        else:
            try:
                options["max_attempts"] = int(text)
            except ValueError:
                raise ConfigurationError(
                    f"BRIDGE_MAX_ATTEMPTS must be a whole number of 1 or more, or none, "
                    f"not {text!r}"
                ) from None
    elif config is not None and hasattr(config, "bridge_max_attempts"):
        options["max_attempts"] = config.bridge_max_attempts
    text = env.get("BRIDGE_RETRY", "").strip()
    if text:
        if text.lower() == "none":
            options["retry"] = None
        else:
            try:
                options["retry"] = json.loads(text)
            except ValueError as exc:
                raise ConfigurationError(
                    f"BRIDGE_RETRY must be a JSON object such as "
                    f'{{"initial": 10, "factor": 2, "maximum": 3600}}, or none: {exc}'
                ) from None
    elif config is not None and hasattr(config, "bridge_retry"):
        options["retry"] = config.bridge_retry
    return options


def _outage_tolerance(env: Mapping[str, str], config: ModuleType | None) -> float:
    text = env.get("BRIDGE_OUTAGE_TOLERANCE", "").strip()
    value: object = text or getattr(config, "bridge_outage_tolerance", DEFAULT_OUTAGE_TOLERANCE)
    seconds = math.nan
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        with contextlib.suppress(ValueError):
            seconds = float(value)
    if not 0 <= seconds <= 2**31 - 1:
        raise ConfigurationError(
            f"BRIDGE_OUTAGE_TOLERANCE must be seconds from 0 to {2**31 - 1}, not {value!r}"
        )
    return seconds


class EnvironmentQueues(Mapping[str, Spec]):
    """Per-queue settings where ``BRIDGE_QUEUE__<NAME>`` wins over the others.

    Iteration gives every configured queue once, so that listings and
    metrics reach the backend of each: first the names from ``BRIDGE_QUEUES``
    and the Celery config, then one name per ``BRIDGE_QUEUE__<NAME>`` variable
    that none of those spells. A variable cannot say which name it was
    encoded from (``emails``, ``Emails`` and ``EMAILS`` share one), so such a
    queue is named ``<NAME>`` lower-cased: exact for the usual lower-case
    names of letters, digits and ``_``. A variable that no name encodes to
    (a lower-case letter or other character after the prefix) serves no
    queue and is skipped.
    """

    def __init__(self, queues: Mapping[str, Spec], environ: Mapping[str, str]) -> None:
        self._queues = dict(queues)
        self._environ = environ

    def __getitem__(self, name: str) -> Spec:
        url = self._environ.get(queue_env_name(name))
        if url:
            return url
        return self._queues[name]

    def __contains__(self, name: object) -> bool:
        if isinstance(name, str) and self._environ.get(queue_env_name(name)):
            return True
        return name in self._queues

    def __iter__(self) -> Iterator[str]:
        yield from self._queues
        yield from self._environment_only()

    def __len__(self) -> int:
        return len(self._queues) + len(self._environment_only())

    def _environment_only(self) -> list[str]:
        """Names recovered from the variables no configured name already covers."""
        covered = {queue_env_name(name) for name in self._queues}
        names = []
        for variable, url in self._environ.items():
            if not url or variable in covered or not variable.startswith(QUEUE_ENV_PREFIX):
                continue
            name = variable[len(QUEUE_ENV_PREFIX) :].lower()
            if name and queue_env_name(name) == variable:
                names.append(name)
        return sorted(names)


def _json_queues(text: str) -> dict[str, Spec]:
    try:
        queues = json.loads(text)
    except ValueError as exc:
        raise ConfigurationError(f"BRIDGE_QUEUES is not valid JSON: {exc}") from exc
    if not isinstance(queues, dict):
        raise ConfigurationError("BRIDGE_QUEUES must be a JSON object of queue name to URL")
    return queues


def _celery_config(env: Mapping[str, str]) -> ModuleType | None:
    """The Celery configuration module, looked for in the working directory too.

    Celery's own commands find ``celeryconfig.py`` in the directory they run
    in; the ``bridge`` and ``celery`` scripts do not put that directory on the
    import path, so without this both would read different settings.
    """
    name = env.get("CELERY_CONFIG_MODULE", "celeryconfig")
    cwd = os.getcwd()
    added = cwd not in sys.path
    if added:
        sys.path.append(cwd)
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name == name:
            return None
        raise
    finally:
        if added:
            sys.path.remove(cwd)
