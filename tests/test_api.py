"""The public surface: names, errors, the factory and its settings, the codec."""

from __future__ import annotations

import inspect
import json
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import sqlalchemy

import bridge
import bridge.errors
import bridge.factory
from bridge.settings import load_settings, queue_env_name

from conftest import MARIADB_URL, POSTGRES_URL, SESSION_TABLE

NO_CELERY_CONFIG = {"CELERY_CONFIG_MODULE": "bridge_tests_no_such_celeryconfig"}
"""Keeps a celeryconfig module that happens to be importable out of the settings."""


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def tables_in(path: Path) -> dict[str, int]:
    """Every table of a SQLite file with its row count, read without bridge."""
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        return {
            name: conn.execute(f'SELECT COUNT(*) FROM "{name}"').fetchone()[0] for (name,) in rows
        }


# -- public names ---------------------------------------------------------------


def test_all_lists_exactly_the_public_names() -> None:
    public = {
        name
        for name, value in vars(bridge).items()
        if not name.startswith("_") and not isinstance(value, ModuleType) and name != "annotations"
    }
    assert len(bridge.__all__) == len(set(bridge.__all__)), "no duplicates"
    assert set(bridge.__all__) == public


def test_every_public_name_imports() -> None:
    namespace: dict[str, Any] = {}
    exec("from bridge import *", namespace)
    assert set(namespace) - {"__builtins__"} == set(bridge.__all__)
    for name in bridge.__all__:
        assert namespace[name] is getattr(bridge, name)


def test_the_documented_api_is_public() -> None:
    documented = {
        "QueueFactory",
        "Queue",
        "QueueItem",
        "Capabilities",
        "Backend",
        "get_queue",
        "configure",
        "queue_worker",
        "process_queue",
        "run_cron",
        "Requeue",
        "DelayedRequeue",
        "SuspendQueue",
        "BridgeError",
        "PayloadError",
        "InvalidArgumentError",
    }
    assert documented <= set(bridge.__all__)
    documented_queue_methods = [
        "create_queue",
        "create_item",
        "create_items",
        "number_of_items",
        "claim_item",
        "claim_items",
        "delete_item",
        "delete_items",
        "release_item",
        "delay_item",
        "extend_lease",
        "garbage_collection",
        "delete_queue",
    ]
    for method in documented_queue_methods:
        assert callable(getattr(bridge.Queue, method)), method


def test_every_error_is_a_bridge_error() -> None:
    errors = [getattr(bridge, name) for name in bridge.__all__ if name.endswith("Error")]
    assert len(errors) >= 10
    for error in errors:
        assert issubclass(error, bridge.BridgeError), error
    defined = [
        value
        for value in vars(bridge.errors).values()
        if isinstance(value, type)
        and issubclass(value, BaseException)
        and value.__module__ == "bridge.errors"
    ]
    assert {error.__name__ for error in defined} <= set(bridge.__all__), "all errors are public"
    assert all(issubclass(error, bridge.BridgeError) for error in defined)


def test_the_error_tree() -> None:
    assert issubclass(bridge.UnknownBackendError, bridge.ConfigurationError)
    assert issubclass(bridge.MissingDependencyError, bridge.ConfigurationError)
    assert issubclass(bridge.BackendUnavailableError, bridge.BackendError)
    assert issubclass(bridge.InvalidArgumentError, ValueError)
    for error in (
        bridge.PayloadError,
        bridge.UnknownQueueError,
        bridge.UnsupportedOperationError,
        bridge.BackendError,
    ):
        assert not issubclass(error, bridge.ConfigurationError), error


def test_queue_items_are_typed_value_objects() -> None:
    fields = set(inspect.signature(bridge.QueueItem).parameters)
    assert {"item_id", "data", "created", "expire", "attempts"} <= fields
    capabilities = bridge.QueueFactory(default="memory://").get("x").capabilities
    with pytest.raises(AttributeError):
        capabilities.reliable = True  # type: ignore[misc]


def test_importing_bridge_imports_no_driver() -> None:
    drivers = ["psycopg", "psycopg2", "pymysql", "MySQLdb", "redis", "kombu"]
    script = textwrap.dedent(f"""
        import json, sys
        import bridge
        bridge.QueueFactory(default="memory://").get("x").create_item(1)
        loaded = sorted({{m.split(".")[0] for m in sys.modules}} & set({drivers!r}))
        print(json.dumps(loaded))
    """)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert json.loads(done.stdout) == []


@pytest.mark.parametrize(
    ("url", "extra"),
    [
        ("mysql+pymysql://root@127.0.0.1:3306/test", "mysql"),
        ("postgresql+psycopg://postgres@127.0.0.1:5432/test", "postgres"),
    ],
)
def test_a_missing_driver_names_the_extra(url: str, extra: str) -> None:
    script = textwrap.dedent(f"""
        import sys
        sys.modules["pymysql"] = sys.modules["psycopg"] = None  # as if not installed
        import bridge
        try:
            bridge.QueueFactory(default={url!r}).get("x").number_of_items()
        except bridge.MissingDependencyError as exc:
            print(exc)
    """)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert f'pip install "bridge[{extra}]"' in done.stdout


# -- the factory ----------------------------------------------------------------


def test_a_queue_can_be_sent_to_another_backend_by_url(tmp_path: Path) -> None:
    db = tmp_path / "main.sqlite"
    factory = bridge.QueueFactory(default=sqlite_url(db), queues={"cache": "memory://"})
    try:
        cache, jobs = factory.get("cache"), factory.get("jobs")
        assert not cache.capabilities.reliable
        assert jobs.capabilities.reliable
        cache.create_item("in memory")
        jobs.create_item("on disk")
        assert [count for count in tables_in(db).values()] == [1], "only 'jobs' is on disk"
        assert factory.get("cache") is cache
        assert factory.get("jobs") is jobs
    finally:
        factory.close()


def test_a_queue_can_have_its_own_url_and_options(tmp_path: Path) -> None:
    main, thumbs = tmp_path / "main.sqlite", tmp_path / "thumbs.sqlite"
    factory = bridge.QueueFactory(
        default=sqlite_url(main),
        queues={
            "thumbs": {"url": sqlite_url(thumbs), "options": {"table": "thumb_jobs"}},
            "audit": {"options": {"table": "audit_jobs"}},
        },
    )
    try:
        factory.get("thumbs").create_items(["a", "b"])
        factory.get("audit").create_item("c")
        factory.get("other").create_item("d")
        assert tables_in(thumbs) == {"thumb_jobs": 2}
        main_tables = tables_in(main)
        assert main_tables.pop("audit_jobs") == 1, "no url: the default's url, own options"
        assert list(main_tables.values()) == [1]
    finally:
        factory.close()


def test_backend_options_are_inherited_by_the_same_backend_only(tmp_path: Path) -> None:
    main, other = tmp_path / "main.sqlite", tmp_path / "other.sqlite"
    factory = bridge.QueueFactory(
        default={"url": sqlite_url(main), "options": {"table": "shared_jobs"}},
        queues={
            "other": sqlite_url(other),
            "local": "memory://",
            "renamed": {"options": {"table": "own_jobs"}},
        },
    )
    try:
        factory.get("other").create_item("x")
        factory.get("renamed").create_item("y")
        factory.get("local").create_item("z")  # memory takes no table option
        assert not factory.get("local").capabilities.shared
        assert tables_in(other) == {"shared_jobs": 1}
        assert tables_in(main) == {"own_jobs": 1}
    finally:
        factory.close()


def test_backend_options_are_inherited_by_backend_not_by_scheme() -> None:
    """One backend class behind two schemes shares options; two classes never do.

    Nothing here connects: the backends are built, and what they were given
    is read back (port 1 has no server, and is never reached).
    """
    factory = bridge.QueueFactory(
        default={"url": "postgresql://app@127.0.0.1:1/app", "options": {"table": "jobs"}},
        queues={
            "maria": "mariadb://app@127.0.0.1:1/app",
            "mysql": "mysql://app@127.0.0.1:1/app",
            "own": {"url": "mysql://app@127.0.0.1:1/app", "options": {"table": "mine"}},
            "local": "memory://",
        },
    )
    rabbit = bridge.QueueFactory(
        default={"url": "amqp://guest@127.0.0.1:1//", "options": {"max_priority": 5}},
        queues={
            "kombu": "kombu+amqp://guest@127.0.0.1:1//",
            "tls": "amqps://guest@127.0.0.1:1//",
            "sqs": "sqs://key:secret@127.0.0.1:1",
        },
    )
    try:
        for name, table in [("maria", "jobs"), ("mysql", "jobs"), ("own", "mine")]:
            assert factory.get(name).backend.table.name == table  # type: ignore[attr-defined]
        assert not factory.get("local").capabilities.shared  # memory takes no table
        assert rabbit.get("kombu").capabilities.priority, "kombu+amqp:// is amqp://"
        assert rabbit.get("tls").capabilities.priority, "amqps:// is the same backend"
        assert rabbit.get("sqs").backend.url.startswith("sqs://"), "no max_priority for SQS"
    finally:
        factory.close()
        rabbit.close()


def test_a_default_naming_no_backend_passes_nothing_on() -> None:
    factory = bridge.QueueFactory(
        default={"url": "nope://x", "options": {"table": "jobs"}}, queues={"local": "memory://"}
    )
    factory.get("local").create_item(1)
    with pytest.raises(bridge.UnknownBackendError, match="nope"):
        factory.get("other")


@pytest.mark.service("postgres")
@pytest.mark.service("mariadb")
def test_a_postgres_default_table_serves_a_mariadb_queue() -> None:
    factory = bridge.QueueFactory(
        default={"url": POSTGRES_URL, "options": {"table": SESSION_TABLE}},
        queues={"on_maria": MARIADB_URL},
    )
    try:
        factory.get("on_maria").create_item({"n": 1})
        engine = sqlalchemy.create_engine(MARIADB_URL)
        with engine.connect() as conn:
            count = conn.execute(
                sqlalchemy.text(f"SELECT COUNT(*) FROM {SESSION_TABLE} WHERE name = 'on_maria'")
            ).scalar_one()
        engine.dispose()
        assert count == 1
    finally:
        factory.get("on_maria").delete_queue()
        factory.close()


def test_backends_lists_every_store_the_settings_name(tmp_path: Path) -> None:
    urls = [sqlite_url(tmp_path / f"{n}.sqlite") for n in ("main", "spare", "own")]
    factory = bridge.QueueFactory(
        default=urls[0], reliable_default=urls[1], queues={"own": urls[2], "same": urls[0]}
    )
    try:
        assert sorted(backend.url for backend in factory.backends()) == sorted(urls)
    finally:
        factory.close()


def test_the_codec_option_is_inherited_by_every_backend(tmp_path: Path) -> None:
    factory = bridge.QueueFactory(
        default={"url": sqlite_url(tmp_path / "q.sqlite"), "options": {"codec": "yaml-ish"}},
        queues={"local": "memory://", "fixed": {"url": "memory://", "options": {"codec": "json"}}},
    )
    try:
        for name in ("jobs", "local"):
            with pytest.raises(bridge.ConfigurationError, match="yaml-ish"):
                factory.get(name)
        fixed = factory.get("fixed")
        assert fixed.codec.name == "json"
        fixed.create_item([1])
    finally:
        factory.close()


def test_reliable_queues_fall_back_to_reliable_default(tmp_path: Path) -> None:
    db = tmp_path / "reliable.sqlite"
    factory = bridge.QueueFactory(
        default="memory://", reliable_default=sqlite_url(db), reliable_queues=["orders"]
    )
    try:
        reliable = factory.get("orders", reliable=True)
        plain = factory.get("orders")
        assert reliable is plain, "one name, one store"
        assert reliable.capabilities.reliable
        reliable.create_item({"order": 1})
        assert list(tables_in(db).values()) == [1]
        assert not factory.get("scratch").capabilities.reliable
    finally:
        factory.close()


def test_a_reliable_default_backend_is_used_as_it_is(tmp_path: Path) -> None:
    main, spare = tmp_path / "main.sqlite", tmp_path / "spare.sqlite"
    factory = bridge.QueueFactory(default=sqlite_url(main), reliable_default=sqlite_url(spare))
    try:
        factory.get("orders", reliable=True).create_item(1)
        assert list(tables_in(main).values()) == [1]
        assert not spare.exists() or sum(tables_in(spare).values()) == 0
    finally:
        factory.close()


def test_reliable_is_refused_without_a_reliable_backend() -> None:
    factory = bridge.QueueFactory(default="memory://")
    with pytest.raises(bridge.ConfigurationError, match="reliable"):
        factory.get("orders", reliable=True)
    assert not factory.get("orders").capabilities.reliable
    not_reliable = bridge.QueueFactory(default="memory://", reliable_default="memory://")
    with pytest.raises(bridge.ConfigurationError, match="reliable"):
        not_reliable.get("orders", reliable=True)


def test_reliable_refuses_a_queue_set_to_a_non_reliable_backend(tmp_path: Path) -> None:
    factory = bridge.QueueFactory(
        default=sqlite_url(tmp_path / "main.sqlite"),
        reliable_default=sqlite_url(tmp_path / "spare.sqlite"),
        queues={"scratch": "memory://"},
    )
    try:
        with pytest.raises(bridge.ConfigurationError, match="scratch"):
            factory.get("scratch", reliable=True)
        assert not factory.get("scratch").capabilities.reliable
        assert factory.get("other", reliable=True).capabilities.reliable
    finally:
        factory.close()


def test_a_closed_factory_reopens_on_use(tmp_path: Path) -> None:
    factory = bridge.QueueFactory(default=sqlite_url(tmp_path / "q.sqlite"))
    factory.get("jobs").create_item("kept")
    factory.close()
    item = factory.get("jobs").claim_item(lease_time=30)
    factory.close()
    assert item is not None
    assert item.data == "kept"


@pytest.mark.parametrize(
    ("url", "suggestion"),
    [
        ("sqllite:///x.sqlite", "sqlite"),
        ("memroy://", "memory"),
        ("postgress://localhost/db", "postgresql"),
    ],
)
def test_an_unknown_scheme_suggests_a_known_one(url: str, suggestion: str) -> None:
    factory = bridge.QueueFactory(default=url)
    with pytest.raises(bridge.UnknownBackendError, match=f"did you mean '{suggestion}'"):
        factory.get("x")


@pytest.mark.parametrize("url", ["", "just-a-path.sqlite", "://nothing", "zzzz://x"])
def test_an_unusable_url_is_a_configuration_error(url: str) -> None:
    with pytest.raises(bridge.UnknownBackendError):
        bridge.QueueFactory(default=url).get("x")


@pytest.mark.parametrize(
    "spec",
    [
        {"url": "memory://", "options": {"table": "jobs"}},
        {"url": "sqlite:///{tmp}/q.sqlite", "options": {"tabel": "jobs"}},
        {"url": "sqlite:///{tmp}/q.sqlite", "options": {"table": "jobs; DROP TABLE x"}},
        {"url": "sqlite:///{tmp}/q.sqlite", "options": {"synchronous": "SOMETIMES"}},
        {"url": "memory://", "options": ["codec", "json"]},
        {"url": "memory://", "option": {}},
        {"url": 5},
        7,
    ],
)
def test_bad_settings_are_configuration_errors(spec: Any, tmp_path: Path) -> None:
    if isinstance(spec, dict) and isinstance(spec.get("url"), str):
        spec = {**spec, "url": spec["url"].format(tmp=tmp_path)}
    with pytest.raises(bridge.ConfigurationError):
        bridge.QueueFactory(default=spec).get("x")
    with pytest.raises(bridge.ConfigurationError):
        bridge.QueueFactory(default="memory://", queues={"x": spec}).get("x")


@pytest.mark.service("postgres")
def test_passwords_are_masked() -> None:
    secret_url = POSTGRES_URL.replace("://postgres@", "://postgres:hunter2@")
    assert "hunter2" in secret_url
    factory = bridge.QueueFactory(default=secret_url)
    try:
        queue = factory.get("x")
        for shown in (repr(factory), repr(queue), queue.backend.url):
            assert "hunter2" not in shown
            assert "postgres:***@" in shown
    finally:
        factory.close()


# -- settings from the environment ------------------------------------------------


def test_settings_without_any_environment() -> None:
    settings = load_settings(environ=NO_CELERY_CONFIG)
    assert settings.default == "sqlite:///bridge.sqlite"
    assert settings.reliable_default is None
    assert dict(settings.queues) == {}


def test_the_default_urls_come_from_the_environment(tmp_path: Path) -> None:
    spare = tmp_path / "spare.sqlite"
    settings = load_settings(
        environ={
            **NO_CELERY_CONFIG,
            "BRIDGE_QUEUE_DEFAULT": "memory://",
            "BRIDGE_QUEUE_DEFAULT_RELIABLE": sqlite_url(spare),
            "BRIDGE_RELIABLE_QUEUES": " jobs, ",
        }
    )
    assert settings.default == "memory://"
    assert settings.reliable_default == sqlite_url(spare)
    assert settings.reliable_queues == {"jobs"}
    factory = bridge.QueueFactory.from_settings(settings)
    try:
        assert not factory.get("other").capabilities.reliable
        factory.get("jobs", reliable=True).create_item("safe")
        assert list(tables_in(spare).values()) == [1]
    finally:
        factory.close()


def test_one_queue_from_its_own_variable(tmp_path: Path) -> None:
    assert queue_env_name("emails") == "BRIDGE_QUEUE__EMAILS"
    assert queue_env_name("video-thumbs.v2") == "BRIDGE_QUEUE__VIDEO_THUMBS_V2"
    settings = load_settings(
        environ={
            **NO_CELERY_CONFIG,
            "BRIDGE_QUEUE_DEFAULT": sqlite_url(tmp_path / "main.sqlite"),
            "BRIDGE_QUEUE__VIDEO_THUMBS_V2": "memory://",
            "BRIDGE_QUEUES": json.dumps({"video-thumbs.v2": sqlite_url(tmp_path / "json.sqlite")}),
        }
    )
    assert settings.queues["video-thumbs.v2"] == "memory://", "the variable wins over JSON"
    assert "video-thumbs.v2" in settings.queues
    factory = bridge.QueueFactory.from_settings(settings)
    try:
        assert not factory.get("video-thumbs.v2").capabilities.reliable
        assert factory.get("emails").capabilities.reliable
    finally:
        factory.close()


def test_queues_routed_by_their_variables_are_iterated(tmp_path: Path) -> None:
    """Listings reach a queue set by BRIDGE_QUEUE__<NAME> as one set in BRIDGE_QUEUES."""
    spare = sqlite_url(tmp_path / "spare.sqlite")
    settings = load_settings(
        environ={
            **NO_CELERY_CONFIG,
            "BRIDGE_QUEUE_DEFAULT": "memory://",
            "BRIDGE_QUEUES": json.dumps({"video-thumbs.v2": "memory://", "Emails": "memory://"}),
            "BRIDGE_QUEUE__VIDEO_THUMBS_V2": spare,  # overrides the JSON entry: one name
            "BRIDGE_QUEUE__EMAILS": spare,  # also what "Emails" encodes to: no second name
            "BRIDGE_QUEUE__AGGREGATOR_FEEDS": spare,  # recovered lower-cased
            "BRIDGE_QUEUE__Lower": spare,  # no name encodes to it: serves nothing
            "BRIDGE_QUEUE__": spare,
            "BRIDGE_QUEUE__UNSET": "",
        }
    )
    queues = settings.queues
    assert list(queues) == ["video-thumbs.v2", "Emails", "aggregator_feeds"]
    assert len(queues) == 3
    assert dict(queues) == dict.fromkeys(queues, spare)
    assert "AGGREGATOR_FEEDS" in queues, "the variable serves every name that encodes to it"
    assert "unset" not in queues
    factory = bridge.QueueFactory.from_settings(settings)
    try:
        assert sorted(b.url for b in factory.backends()) == ["memory://", spare]
    finally:
        factory.close()


def test_queues_with_options_from_json(tmp_path: Path) -> None:
    thumbs = tmp_path / "thumbs.sqlite"
    settings = load_settings(
        environ={
            **NO_CELERY_CONFIG,
            "BRIDGE_QUEUE_DEFAULT": "memory://",
            "BRIDGE_QUEUES": json.dumps(
                {
                    "thumbs": {"url": sqlite_url(thumbs), "options": {"table": "thumb_jobs"}},
                    "emails": "memory://",
                }
            ),
        }
    )
    assert set(settings.queues) == {"thumbs", "emails"}
    factory = bridge.QueueFactory.from_settings(settings)
    try:
        factory.get("thumbs").create_item({"w": 64})
        assert tables_in(thumbs) == {"thumb_jobs": 1}
    finally:
        factory.close()


@pytest.mark.parametrize("text", ["{not json", '["a", "b"]', '"memory://"'])
def test_bad_json_queues_are_configuration_errors(text: str) -> None:
    with pytest.raises(bridge.ConfigurationError, match="BRIDGE_QUEUES"):
        load_settings(environ={**NO_CELERY_CONFIG, "BRIDGE_QUEUES": text})


def test_the_celery_config_module_is_read_under_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "bridge_test_celeryconfig.py").write_text(
        textwrap.dedent("""
        bridge_queue_default = "memory://from-config"
        bridge_queue_default_reliable = "sqlite:///from-config.sqlite"
        bridge_queues = {"emails": "memory://emails", "thumbs": "memory://thumbs"}
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    environ = {"CELERY_CONFIG_MODULE": "bridge_test_celeryconfig"}
    settings = load_settings(environ=environ)
    assert settings.default == "memory://from-config"
    assert settings.reliable_default == "sqlite:///from-config.sqlite"
    assert dict(settings.queues) == {"emails": "memory://emails", "thumbs": "memory://thumbs"}

    settings = load_settings(
        environ={
            **environ,
            "BRIDGE_QUEUE_DEFAULT": "memory://from-env",
            "BRIDGE_QUEUE__EMAILS": "memory://emails-from-env",
        }
    )
    assert settings.default == "memory://from-env"
    assert settings.queues["emails"] == "memory://emails-from-env"
    assert settings.queues["thumbs"] == "memory://thumbs"


def test_get_queue_uses_the_configured_factory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bridge.factory, "_factory", None)
    monkeypatch.setenv("CELERY_CONFIG_MODULE", NO_CELERY_CONFIG["CELERY_CONFIG_MODULE"])
    monkeypatch.setenv("BRIDGE_QUEUE_DEFAULT", "memory://")
    from_env = bridge.get_queue("jobs")
    assert from_env.backend.url == "memory://"
    assert bridge.get_queue("jobs") is from_env
    from_env.create_item("x")

    configured = bridge.configure(default="memory://configured")
    assert bridge.get_factory() is configured
    queue = bridge.get_queue("jobs")
    assert queue is not from_env
    assert queue.backend.url == "memory://configured"
    assert queue.number_of_items() == 0


# -- the codec --------------------------------------------------------------------


def test_the_json_codec_round_trips_and_names_what_it_refuses() -> None:
    codec = bridge.JsonCodec()
    assert codec.name == "json"
    data = {"text": "naïve 🚀", "n": [1, 2.5, None, True]}
    encoded = codec.encode(data)
    assert isinstance(encoded, bytes)
    assert json.loads(encoded.decode("utf-8")) == data
    assert codec.decode(encoded) == data
    with pytest.raises(bridge.PayloadError, match=r"tuple at data\['n'\]\[1\]"):
        codec.encode({"n": [1, (2, 3)]})
    with pytest.raises(bridge.PayloadError, match="int"):
        codec.encode({"ok": {5: "five"}})


def test_the_json_codec_refuses_to_decode_garbage() -> None:
    with pytest.raises(bridge.PayloadError):
        bridge.JsonCodec().decode(b"\xff\xfe not json")


def test_the_json_codec_refuses_data_nested_too_deeply() -> None:
    deep: Any = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(bridge.PayloadError):
        bridge.JsonCodec().encode(deep)


def test_an_unknown_codec_is_a_configuration_error() -> None:
    with pytest.raises(bridge.ConfigurationError, match="json"):
        bridge.QueueFactory(default={"url": "memory://", "options": {"codec": "pickle"}}).get("x")
