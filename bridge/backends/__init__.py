"""Backends, found by URL scheme.

``BACKENDS`` maps a scheme to a lazy ``"module:Class"`` string so that
importing bridge imports no database driver. A backend class is built as
``Class(url, **options)``; its module docstring lists the options.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from typing import Any

from bridge.backends.aliases import resolve
from bridge.contract import Backend
from bridge.errors import ConfigurationError, MissingDependencyError, UnknownBackendError
from bridge.urls import mask_password, scheme_of

BACKENDS: dict[str, str] = {
    "memory": "bridge.backends.memory:MemoryBackend",
    "sqlite": "bridge.backends.sql:SqlBackend",
    "postgresql": "bridge.backends.sql:SqlBackend",
    "mysql": "bridge.backends.sql:SqlBackend",
    "mariadb": "bridge.backends.sql:SqlBackend",
    "drupal": "bridge.backends.sql.drupal:DrupalQueueBackend",
    "redis": "bridge.backends.redis:RedisBackend",
    "rediss": "bridge.backends.redis:RedisBackend",
    "amqp": "bridge.backends.amqp:AmqpBackend",
    "amqps": "bridge.backends.amqp:AmqpBackend",
    "sqs": "bridge.backends.sqs:SqsBackend",
    "beanstalk": "bridge.backends.beanstalk:BeanstalkBackend",
    "gearman": "bridge.backends.gearman:GearmanBackend",
}

# The extra that installs each driver module a backend may import.
_EXTRAS: dict[str, str] = {
    "psycopg": "postgres",
    "psycopg2": "postgres",
    "pymysql": "mysql",
    "MySQLdb": "mysql",
    "redis": "redis",
    "kombu": "kombu",
    "boto3": "sqs",
    "botocore": "sqs",
    "greenstalk": "beanstalk",
}


def backend_class(url: str) -> type[Backend]:
    """The class serving ``url``, imported on first use (``kombu+`` aliases resolved)."""
    scheme = scheme_of(resolve(url))
    try:
        target = BACKENDS[scheme]
    except KeyError:
        close = difflib.get_close_matches(scheme, BACKENDS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        known = ", ".join(sorted(BACKENDS))
        raise UnknownBackendError(
            f"no backend for URL scheme {scheme!r}{hint} (known: {known})"
        ) from None
    module_name, _, class_name = target.partition(":")
    module = importlib.import_module(module_name)
    cls: type[Backend] = getattr(module, class_name)
    return cls


def missing_driver(exc: ImportError, url: str) -> MissingDependencyError:
    """The error to raise when a backend's driver import failed."""
    module = (exc.name or "").split(".", 1)[0]
    extra = _EXTRAS.get(module)
    fix = f'; install it with: pip install "bridge[{extra}]"' if extra else ""
    return MissingDependencyError(
        f"the backend for {mask_password(url)} needs the {module or 'driver'} module{fix}"
    )


def open_backend(url: str, options: dict[str, Any]) -> Backend:
    """A new backend for ``url`` with the backend-specific ``options``."""
    url = resolve(url)
    cls = backend_class(url)
    try:
        inspect.signature(cls).bind(url, **options)
    except TypeError as exc:
        raise ConfigurationError(f"bad options for {mask_password(url)}: {exc}") from None
    return cls(url, **options)
