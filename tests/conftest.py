"""Backends every test can run on, and the rule for service-backed ones.

``backend_spec`` is parametrized over every backend: memory, SQLite (a file
of the test's own), PostgreSQL and MariaDB. Service-backed parameters carry
``pytest.mark.service(name)``: on a machine without the service they skip
with a reason; with ``BRIDGE_REQUIRE_SERVICES=1`` (set by ``.ci/run``) they
fail instead, so CI can never go green by skipping.

Isolation on shared servers: each test session uses its own table
(``bridge_test_<random>``, dropped at the end) and each test its own queue
name.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, cast

import pytest

import bridge

# Tests that stop a shared server run alone under xdist (tests/exclusive.py).
from exclusive import pytest_runtest_protocol  # noqa: F401

POSTGRES_URL = os.environ.get(
    "BRIDGE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
MARIADB_URL = os.environ.get("BRIDGE_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
REDIS_URL = os.environ.get("BRIDGE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
REDIS_CLUSTER_URL = os.environ.get(
    "BRIDGE_TEST_REDIS_CLUSTER_URL",
    "redis+cluster://127.0.0.1:7000,127.0.0.1:7001,127.0.0.1:7002",
)
AMQP_URL = os.environ.get("BRIDGE_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
BEANSTALK_URL = os.environ.get("BRIDGE_TEST_BEANSTALK_URL", "beanstalk://127.0.0.1:11300")
GEARMAN_URL = os.environ.get("BRIDGE_TEST_GEARMAN_URL", "gearman://127.0.0.1:4730")
SERVICE_URLS = {
    "postgres": POSTGRES_URL,
    "mariadb": MARIADB_URL,
    "redis": REDIS_URL,
    "redis-cluster": REDIS_CLUSTER_URL,
    "rabbitmq": AMQP_URL,
    "sqs": os.environ.get("BRIDGE_TEST_SQS_URL", ""),
    "beanstalk": BEANSTALK_URL,
    "gearman": GEARMAN_URL,
}
REQUIRE_SERVICES = os.environ.get("BRIDGE_REQUIRE_SERVICES") == "1"

SESSION_TABLE = f"bridge_test_{uuid.uuid4().hex[:10]}"

_reachable: dict[str, str | None] = {}


def service_problem(service: str) -> str | None:
    """None when the service answers, else why it does not (checked once per session)."""
    if service not in _reachable:
        try:
            _ping(service)
            _reachable[service] = None
        except Exception as exc:
            _reachable[service] = f"{service} at {SERVICE_URLS[service]} unreachable: {exc}"
    return _reachable[service]


def _ping(service: str) -> None:
    url = SERVICE_URLS[service]
    if service == "redis":
        import redis

        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    elif service == "gearman":
        from urllib.parse import urlsplit

        from bridge.backends.gearman_wire import Connection

        where = urlsplit(url)
        connection = Connection(where.hostname or "", where.port or 4730, 2, 2)
        try:
            connection.admin_one(b"version")
        finally:
            connection.close()
    elif service == "beanstalk":
        import socket
        from urllib.parse import urlsplit

        where = urlsplit(url)
        with socket.create_connection((where.hostname, where.port or 11300), timeout=2) as sock:
            sock.sendall(b"stats\r\n")
            if not sock.recv(64).startswith(b"OK "):
                raise ConnectionError("the server does not answer as beanstalkd")
    elif service in ("sqs", "redis-cluster"):
        factory = bridge.QueueFactory(default=spec_for(service, None))
        factory.get("ping").number_of_items()
        factory.close()
    elif service == "rabbitmq":
        import kombu

        with kombu.Connection(url, connect_timeout=2) as conn:  # type: ignore[attr-defined]
            conn.ensure_connection(max_retries=1)
    else:
        import sqlalchemy

        engine = sqlalchemy.create_engine(url)
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT 1"))
        engine.dispose()


def require_service(service: str) -> None:
    problem = service_problem(service)
    if problem is None:
        return
    if REQUIRE_SERVICES:
        pytest.fail(f"{problem} (BRIDGE_REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(problem)


def pytest_runtest_setup(item: pytest.Item) -> None:
    for marker in item.iter_markers("service"):
        require_service(marker.args[0])


BACKENDS = [
    pytest.param("memory", id="memory"),
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.service("postgres")),
    pytest.param("mariadb", id="mariadb", marks=pytest.mark.service("mariadb")),
    pytest.param("redis", id="redis", marks=pytest.mark.service("redis")),
    pytest.param("redis-cluster", id="redis-cluster", marks=pytest.mark.service("redis-cluster")),
    pytest.param("rabbitmq", id="rabbitmq", marks=pytest.mark.service("rabbitmq")),
    pytest.param("sqs", id="sqs", marks=pytest.mark.service("sqs")),
    pytest.param("beanstalk", id="beanstalk", marks=pytest.mark.service("beanstalk")),
    pytest.param("gearman", id="gearman", marks=pytest.mark.service("gearman")),
]
SQL_BACKENDS = BACKENDS[1:4]
SHARED_BACKENDS = [param for param in BACKENDS[1:] if param.values[0] != "gearman"]
"""Backends several OS processes can share (all but memory).

Gearman is shared too, but the tests over this list run the runner with its
default ``max_attempts``, which needs ``hold``, and count attempts across a
SIGKILL, which Gearman does not keep: ``tests/test_gearman.py`` runs the
multi-process and crash cases that hold for it.
"""


def spec_for(kind: str, tmp_path: Any) -> dict[str, Any]:
    """The QueueFactory ``default`` setting for one backend kind."""
    if kind == "memory":
        return {"url": "memory://"}
    if kind == "sqlite":
        return {"url": f"sqlite:///{tmp_path}/queue.sqlite"}
    if kind in ("redis", "redis-cluster"):
        return {"url": SERVICE_URLS[kind], "options": {"key_prefix": SESSION_TABLE}}
    if kind == "rabbitmq":
        return {"url": AMQP_URL}
    if kind == "beanstalk":
        return {"url": BEANSTALK_URL, "options": {"tube_prefix": f"{SESSION_TABLE}."}}
    if kind == "gearman":
        # Gearman cannot hold items, so the runner's max_attempts must be off.
        return {"url": GEARMAN_URL, "options": {"max_attempts": None}}
    if kind == "sqs":
        return {
            "url": SERVICE_URLS["sqs"] or _moto_sqs_url(),
            "options": {"region": "us-east-1", "queue_prefix": f"{SESSION_TABLE}-"},
        }
    return {"url": SERVICE_URLS[kind], "options": {"table": SESSION_TABLE}}


_moto_servers: list[Any] = []


def _moto_sqs_url() -> str:
    """SQS for the tests without BRIDGE_TEST_SQS_URL: a moto server, started once."""
    if not _moto_servers:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication
        from moto.server import ThreadedMotoServer
        from moto.sqs.models import SQSBackend

        # moto recomputes every attribute of the queue, a pass over all its
        # messages, for each message it hands out: minutes for a 1000-item test.
        cast(Any, SQSBackend).is_message_valid_based_on_retention_period = (
            lambda backend, queue_name, message: (
                message.sent_timestamp / 1000
                + int(backend.get_queue(queue_name).message_retention_period)
                > time.time()
            )
        )
        # moto's threaded server lets two receives hand out one message: one
        # request at a time makes each call atomic, as SQS's are.
        lock, serve = threading.Lock(), DomainDispatcherApplication.__call__

        def one_at_a_time(app: Any, environ: Any, start_response: Any) -> Any:
            with lock:
                return list(serve(app, environ, start_response))

        cast(Any, DomainDispatcherApplication).__call__ = one_at_a_time
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per request
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        _moto_servers.append(server)
    host, port = _moto_servers[0].get_host_and_port()
    return f"sqs://testing:testing@{host}:{port}"


RUNNER_BACKENDS = BACKENDS
"""The backends of the ``factory`` and ``queue`` fixtures outside the contract suite.

Every backend: a test that needs a capability a store lacks (``hold``,
``keeps_errors``, ``delay``...) skips by that capability, never by name.
"""


@pytest.fixture(params=RUNNER_BACKENDS)
def backend_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture
def backend_spec(backend_kind: str, tmp_path: Any) -> dict[str, Any]:
    return spec_for(backend_kind, tmp_path)


@pytest.fixture
def factory(backend_spec: dict[str, Any]) -> Iterator[bridge.QueueFactory]:
    made = bridge.QueueFactory(default=backend_spec)
    yield made
    made.close()


@pytest.fixture
def queue_name() -> str:
    return f"q_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def make_queue(factory: bridge.QueueFactory) -> Iterator[Callable[..., bridge.Queue]]:
    """Make queues with unique names on the test's backend; deleted afterwards."""
    made: list[bridge.Queue] = []

    def make(name: str | None = None) -> bridge.Queue:
        queue = factory.get(name or f"q_{uuid.uuid4().hex[:12]}")
        made.append(queue)
        return queue

    yield make
    for queue in made:
        queue.delete_queue()


@pytest.fixture
def queue(make_queue: Callable[..., bridge.Queue]) -> bridge.Queue:
    return make_queue()


@pytest.fixture
def empty_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """An empty worker registry and no worker modules from settings; restored after."""
    from bridge import workers

    monkeypatch.delenv("BRIDGE_IMPORTS", raising=False)
    monkeypatch.setenv("CELERY_CONFIG_MODULE", f"no_celeryconfig_{uuid.uuid4().hex}")
    saved, imported = dict(workers._registry), set(workers._imported)
    workers._registry.clear()
    yield
    workers._registry.clear()
    workers._registry.update(saved)
    workers._imported.clear()
    workers._imported.update(imported)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Drop the session's table on every server that had one."""
    import sqlalchemy

    for service, url in SERVICE_URLS.items():
        if service not in ("postgres", "mariadb") or _reachable.get(service, "unchecked"):
            continue
        engine = sqlalchemy.create_engine(url)
        with engine.begin() as conn:
            conn.execute(sqlalchemy.text(f"DROP TABLE IF EXISTS {SESSION_TABLE}"))
            # Topics' tables (bridge/backends/topics_sql.py), made on first use.
            for suffix in ("_topic", "_topic_sub"):
                conn.execute(sqlalchemy.text(f"DROP TABLE IF EXISTS {SESSION_TABLE}{suffix}"))
        engine.dispose()
