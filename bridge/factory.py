"""Which backend serves which queue: Drupal's ``QueueFactory`` with settings.

A queue's setting is the default's, overridden by its entry in ``queues``
(the model of Drupal's ``queue_service_<name>`` and Marconi's
``marconi_queue_<name>``). An entry may be a URL, or ``{"url": ..., "options":
{...}}``; a missing ``url`` means the default's. Options inherit: the
facade's options always (``codec``, and the failure policy's
``max_attempts`` and ``retry``: see :mod:`bridge.failures`), backend
options whenever the same backend class serves the entry and the default
(``postgresql://`` and ``mysql://`` are one SQL backend; ``amqp://`` and
``sqs://`` are two), since they would be meaningless to another one.

One name, one store: which store serves a queue depends only on the
settings and on what declares the queue reliable (``reliable_queues``, or a
worker registered with ``reliable=True``), never on the arguments of one
call, so the runner's ``get(name)`` reaches what a producer wrote. A queue
declared reliable whose backend is not reliable is served by
``reliable_default``; one set explicitly to a non-reliable backend is
refused. ``get(name, reliable=True)`` only checks: it raises when the queue
would not be reliable, and never hands out another store than ``get(name)``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bridge.backends import backend_class, open_backend
from bridge.codecs import get_codec
from bridge.contract import Backend, Introspection
from bridge.errors import ConfigurationError
from bridge.failures import FailurePolicy
from bridge.queue import Queue
from bridge.settings import DEFAULT_URL, Settings, Spec, load_settings, with_failure_defaults
from bridge.urls import mask_password
from bridge.workers import declared_reliable, import_worker_modules

if TYPE_CHECKING:
    from bridge.topics import Topic, TopicStore

_FACADE_OPTIONS = ("codec", "max_attempts", "retry")


@dataclass(frozen=True)
class _Resolved:
    url: str
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def backend_options(self) -> dict[str, Any]:
        return {k: v for k, v in self.options.items() if k not in _FACADE_OPTIONS}

    @property
    def cache_key(self) -> str:
        return json.dumps([self.url, self.backend_options], sort_keys=True, default=repr)


def _split(spec: Spec | None, what: str) -> tuple[str | None, dict[str, Any]]:
    if spec is None:
        return None, {}
    if isinstance(spec, str):
        return spec, {}
    if isinstance(spec, Mapping):
        unknown = set(spec) - {"url", "options"}
        if unknown:
            raise ConfigurationError(
                f"{what} has unknown keys {sorted(unknown)}; expected 'url' and 'options'"
            )
        url = spec.get("url")
        options = spec.get("options") or {}
        if url is not None and not isinstance(url, str):
            raise ConfigurationError(f"{what}: url must be a string, not {url!r}")
        if not isinstance(options, Mapping):
            raise ConfigurationError(f"{what}: options must be a mapping, not {options!r}")
        return url, dict(options)
    raise ConfigurationError(f"{what} must be a URL or a mapping, not {spec!r}")


def _resolve(base: Spec, override: Spec | None, what: str) -> _Resolved:
    base_url, base_options = _split(base, "the default queue setting")
    url, options = _split(override, what)
    url = url or base_url
    if url is None:
        raise ConfigurationError(f"{what} has no url and the default has none either")
    inherited = {k: v for k, v in base_options.items() if k in _FACADE_OPTIONS}
    if base_url is not None and _same_backend(url, base_url):
        inherited = base_options
    return _Resolved(url, {**inherited, **options})


def _same_backend(url: str, base_url: str) -> bool:
    """Whether one backend class serves both URLs, so the base's options mean the same.

    Schemes are not enough: ``postgresql://`` and ``mysql://`` are one SQL
    backend sharing ``table``, ``kombu+amqp://`` is ``amqp://``, while
    ``amqp://`` and ``sqs://`` are different backends whose options differ.
    """
    if url == base_url:
        return True
    try:
        base_class = backend_class(base_url)
    except ConfigurationError:
        # A default naming no backend shares nothing with a queue that has its
        # own URL; the default's error shows where a queue actually uses it.
        return False
    return backend_class(url) is base_class


class QueueFactory:
    """Builds and caches one :class:`Queue` per name from the settings."""

    def __init__(
        self,
        default: Spec = DEFAULT_URL,
        reliable_default: Spec | None = None,
        queues: Mapping[str, Spec] | None = None,
        reliable_queues: Iterable[str] = (),
    ) -> None:
        self.default = default
        self.reliable_default = reliable_default
        self.queues: Mapping[str, Spec] = queues if queues is not None else {}
        if isinstance(reliable_queues, str):
            raise ConfigurationError(
                f"reliable_queues is a collection of queue names, not the string "
                f"{reliable_queues!r}"
            )
        self.reliable_queues = frozenset(reliable_queues)
        self._backends: dict[str, Backend] = {}
        self._cache: dict[str, Queue] = {}
        self._topics: dict[str, Topic] = {}
        self._topic_stores: dict[str, TopicStore] = {}
        self._lock = threading.Lock()
        self._workers_imported = False

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> QueueFactory:
        settings = settings or load_settings()
        return cls(
            with_failure_defaults(settings.default, settings.failure_options),
            with_failure_defaults(settings.reliable_default, settings.failure_options),
            settings.queues,
            settings.reliable_queues,
        )

    def get(self, name: str, reliable: bool = False) -> Queue:
        """The queue called ``name``: the same store whoever asks, and however.

        The store follows from the settings and the declarations alone (see
        the module docstring). ``reliable=True`` states that the caller needs
        a reliable queue: :class:`ConfigurationError`, saying how to declare
        the queue, when it is not one.
        """
        with self._lock:
            queue = self._cache.get(name)
        if queue is None or not queue.capabilities.reliable:
            queue = self._get_unsure(name)
        if reliable and not queue.capabilities.reliable:
            raise ConfigurationError(
                f"queue {name!r} is not reliable: {queue.backend.url} serves it, and "
                "get(name, reliable=True) never reaches another store than get(name). "
                f"{self._how_to_declare(name)}"
            )
        return queue

    def _get_unsure(self, name: str) -> Queue:
        """Open queue ``name``, or recheck one on a non-reliable backend."""
        with self._lock:
            queue = self._cache.get(name)
            if queue is None:
                queue = self._build(name, reliable=False)
                if queue.capabilities.reliable:
                    self._cache[name] = queue
                    return queue
        # Only a queue on a non-reliable backend gets here. Whether it is
        # declared reliable may import worker modules, which may call get():
        # never under the lock.
        declared = self._declared_reliable(name)
        with self._lock:
            cached = self._cache.get(name)
            if cached is None:
                cached = self._build(name, declared)
                self._cache[name] = cached
            elif declared and not cached.capabilities.reliable:
                raise ConfigurationError(
                    f"queue {name!r} was declared reliable after it was opened on "
                    f"{cached.backend.url}, which is not reliable; items written there would "
                    "never reach the reliable store. Declare it before the queue is first "
                    "used: in BRIDGE_RELIABLE_QUEUES, or with queue_worker(..., reliable=True) "
                    "in a module listed in BRIDGE_IMPORTS"
                )
            return cached

    def _declared_reliable(self, name: str) -> bool:
        """Whether the settings or a registered worker declare queue ``name`` reliable."""
        if name in self.reliable_queues:
            return True
        if not self._workers_imported:
            # Once per factory: the workers a consumer will import may declare it.
            import_worker_modules()
            self._workers_imported = True
        return declared_reliable(name)

    def _how_to_declare(self, name: str) -> str:
        """The advice for a queue that must be reliable and is not."""
        if _split(self.queues.get(name), f"the setting of queue {name!r}")[0] is not None:
            return "Its own URL in the queues setting names that backend: give it a reliable one."
        fix = (
            f"Declare it reliable with queue_worker({name!r}, reliable=True), "
            f"BRIDGE_RELIABLE_QUEUES={name} or reliable_queues=[{name!r}]"
        )
        if self.reliable_default is None:
            fix += ", and set reliable_default (BRIDGE_QUEUE_DEFAULT_RELIABLE) to serve it"
        return fix + "; or make the default backend reliable."

    def backends(self) -> list[Introspection]:
        """Every backend the settings name, opened on demand: what listings scan.

        Read-only views (:class:`~bridge.contract.Introspection`): the CLI's
        listings and metrics see names, counts and items, and nothing that
        changes a queue.

        The default's, the reliable default's, and every configured queue's,
        those routed by ``BRIDGE_QUEUE__<NAME>`` included.
        """
        specs: list[tuple[Spec, Spec | None]] = [(self.default, None)]
        if self.reliable_default is not None:
            specs.append((self.reliable_default, None))
        specs += [(self.default, self.queues[n]) for n in self.queues]
        with self._lock:
            found: dict[str, Introspection] = {}
            for base, override in specs:
                resolved = _resolve(base, override, "a queue setting")
                found[resolved.cache_key] = self._backend(resolved)
            return list(found.values())

    def close(self) -> None:
        """Close every backend this factory opened; later calls reopen them."""
        with self._lock:
            for backend in self._backends.values():
                backend.close()
            self._backends.clear()
            self._cache.clear()
            self._topics.clear()
            self._topic_stores.clear()

    def get_topic(self, name: str) -> Topic:
        """The topic ``name`` (pub/sub, see :mod:`bridge.topics`), cached.

        Served by the store a queue of the same name would use (the default,
        or the name's entry in ``queues``), with that entry's codec.
        :class:`~bridge.errors.UnsupportedOperationError` names a backend
        that cannot keep topics.
        """
        from bridge.topics import Topic, check_topics, open_topic_store

        with self._lock:
            topic = self._topics.get(name)
            if topic is None:
                resolved = _resolve(self.default, self.queues.get(name), f"the setting of {name!r}")
                store = self._topic_stores.get(resolved.cache_key)
                if store is None:
                    check_topics(backend_class(resolved.url), resolved.url)
                    store = open_topic_store(self._backend(resolved))
                    self._topic_stores[resolved.cache_key] = store
                codec = get_codec(str(resolved.options.get("codec", "json")))
                topic = self._topics[name] = Topic(name, store, codec)
            return topic

    def _build(self, name: str, reliable: bool) -> Queue:
        """Queue ``name`` from its setting; ``reliable``: declared reliable."""
        what = f"the setting of queue {name!r}"
        override = self.queues.get(name)
        resolved = _resolve(self.default, override, what)
        backend = self._backend(resolved)
        if reliable and not backend.capabilities.reliable:
            explicit_url = _split(override, what)[0]
            if explicit_url is not None or self.reliable_default is None:
                raise ConfigurationError(
                    f"queue {name!r} is declared reliable but {backend.url} is not; set "
                    "reliable_default (BRIDGE_QUEUE_DEFAULT_RELIABLE) or give the queue "
                    "a reliable backend"
                )
            resolved = _resolve(self.reliable_default, override, what)
            backend = self._backend(resolved)
            if not backend.capabilities.reliable:
                raise ConfigurationError(
                    f"reliable_default {backend.url} is not a reliable backend"
                )
        codec = get_codec(str(resolved.options.get("codec", "json")))
        return Queue(name, backend, codec, FailurePolicy.from_options(resolved.options, what))

    def _backend(self, resolved: _Resolved) -> Backend:
        backend = self._backends.get(resolved.cache_key)
        if backend is None:
            backend = open_backend(resolved.url, resolved.backend_options)
            self._backends[resolved.cache_key] = backend
        return backend

    def __repr__(self) -> str:
        default = _split(self.default, "default")[0] or ""
        return f"<QueueFactory default={mask_password(default)} queues={list(self.queues)}>"


_factory: QueueFactory | None = None
_factory_lock = threading.Lock()


def configure(
    default: Spec | None = None,
    reliable_default: Spec | None = None,
    queues: Mapping[str, Spec] | None = None,
    reliable_queues: Iterable[str] | None = None,
) -> QueueFactory:
    """Set what :func:`get_queue` uses; unset arguments come from the settings.

    ``BRIDGE_MAX_ATTEMPTS`` and ``BRIDGE_RETRY`` apply under a ``default``
    or ``reliable_default`` given here too, unless its own options set them.
    """
    global _factory
    settings = load_settings()
    failure = settings.failure_options
    factory = QueueFactory(
        with_failure_defaults(default if default is not None else settings.default, failure),
        with_failure_defaults(
            reliable_default if reliable_default is not None else settings.reliable_default,
            failure,
        ),
        queues if queues is not None else settings.queues,
        reliable_queues if reliable_queues is not None else settings.reliable_queues,
    )
    with _factory_lock:
        previous, _factory = _factory, factory
    if previous is not None:
        previous.close()
    return factory


def get_factory() -> QueueFactory:
    """The factory :func:`get_queue` uses, built from the settings on first use."""
    global _factory
    with _factory_lock:
        if _factory is None:
            _factory = QueueFactory.from_settings()
        return _factory


def get_topic(name: str) -> Topic:
    """The topic ``name`` from the configured factory (see :mod:`bridge.topics`)."""
    return get_factory().get_topic(name)


def get_queue(name: str, reliable: bool = False) -> Queue:
    """The queue ``name`` from the configured factory (Drupal's ``\\Drupal::queue``).

    ``reliable=True`` checks that the queue is reliable; it never picks the store.
    """
    return get_factory().get(name, reliable)
