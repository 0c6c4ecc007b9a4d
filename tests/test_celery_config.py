"""The Celery app's parts in process: settings, schedules, limits, soft-limit guard, housekeeping.

The subprocess tests (test_celery.py, test_flower.py) show the whole works;
these pin each rule down quickly and say which one broke.
"""

from __future__ import annotations

import json
import os
import runpy
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from celery.app.task import Task
from celery.events.state import State
from celery.exceptions import SoftTimeLimitExceeded
from celery.schedules import crontab

import bridge
import bridge.celery as bc
from bridge.celery import init_app
from bridge.celery.config import Configuration, environment_config, prepare_folders
from bridge.celery.filesystem import clean_filesystem_broker
from bridge.celery.schedules import queue_schedules, runner_lease, runner_limits
from bridge.celery.tasks import _Progress
from bridge.errors import ConfigurationError
from bridge.runner import Summary

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.usefixtures("empty_registry", "local_files_in_tmp")


@pytest.fixture
def local_files_in_tmp(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The app reads its settings once; whichever test is first, its files go to a tmp_path."""
    monkeypatch.setenv("BRIDGE_VAR_DIR", str(tmp_path / "var"))


@pytest.fixture
def workers() -> dict[str, bridge.QueueWorker]:
    bridge.queue_worker("mail", cron_time=10)(lambda data: None)
    bridge.queue_worker("thumbs", cron_time=2, lease_time=60)(lambda data: None)
    bridge.queue_worker("manual")(lambda data: None)
    return bridge.registered_workers()


@pytest.fixture
def memory_factory(monkeypatch: pytest.MonkeyPatch) -> Iterator[bridge.QueueFactory]:
    """The process-wide factory, which the task uses, on memory://."""
    factory = bridge.QueueFactory(default="memory://")
    monkeypatch.setattr(bridge.factory, "_factory", factory)
    yield factory
    factory.close()


# --- settings -----------------------------------------------------------------

ENVIRONMENTS = [
    {},
    {"BRIDGE_BROKER_URL": "redis://cache:6379/1", "BRIDGE_RESULT_BACKEND": "disabled"},
    {
        "BRIDGE_BROKER_URL": "amqp://guest@rabbit//",
        "BRIDGE_VAR_DIR": "/srv/bridge",
        "BRIDGE_CELERY_QUEUE": "cron",
        "BRIDGE_SCHEDULES": '{"mail": 5}',
    },
]


@pytest.mark.parametrize("environ", ENVIRONMENTS)
def test_celeryconfig_spells_out_the_built_in_settings(
    environ: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in [k for k in os.environ if k.startswith("BRIDGE_")]:
        monkeypatch.delenv(key)
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    module = runpy.run_path(str(ROOT / "celeryconfig.py"))
    built_in = environment_config()
    assert {key: module[key] for key in built_in} == built_in
    spelled = {
        k
        for k, v in module.items()
        if not k.startswith("_")
        and k.islower()
        and not callable(v)
        and type(v).__name__ != "module"
    }
    assert spelled == set(built_in)


def test_the_default_is_server_less_and_bounded(tmp_path: Path) -> None:
    conf = environment_config({"BRIDGE_VAR_DIR": str(tmp_path)})
    assert conf["broker_url"].startswith("filesystem://")
    options = conf["broker_transport_options"]
    assert options["store_processed"] is False
    assert options["data_folder_in"] == options["data_folder_out"]
    assert conf["result_backend"] == f"db+sqlite:///{tmp_path}/celery/results.sqlite"
    assert conf["result_expires"]
    prepare_folders(conf)
    assert sorted(p.name for p in (tmp_path / "celery").iterdir()) == [
        "control",
        "data",
        "processed",
    ]


def test_a_real_broker_drops_the_filesystem_options() -> None:
    conf = environment_config({"BRIDGE_BROKER_URL": "redis://cache:6379/0"})
    assert conf["broker_transport_options"] == {}


def test_a_config_module_overrides_setting_by_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "site_celery.py").write_text(
        "import os\nbroker_url = 'redis://elsewhere:6379/0'\nworker_concurrency = 3\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("CELERY_CONFIG_MODULE", "site_celery")
    monkeypatch.setenv("BRIDGE_SCHEDULES", '{"mail": 5}')
    conf = Configuration()
    assert conf["broker_url"] == "redis://elsewhere:6379/0"
    assert conf["worker_concurrency"] == 3
    assert conf["bridge_schedules"] == '{"mail": 5}'
    assert "os" not in conf


# --- schedules and limits -----------------------------------------------------


def test_every_cron_queue_gets_an_expiring_entry(workers: dict[str, Any]) -> None:
    schedules = {s.queue: s for s in queue_schedules(workers, None)}
    assert set(schedules) == {"mail", "thumbs"}
    entries = schedules["mail"].entries()
    assert list(entries) == ["bridge.process_queue:mail"]
    entry = entries["bridge.process_queue:mail"]
    soft, hard = runner_limits(10.0)
    assert entry == {
        "task": "bridge.process_queue",
        "schedule": 10.0,
        "args": ("mail",),
        "kwargs": {"time_limit": 10.0},
        "options": {"expires": 10.0, "soft_time_limit": soft, "time_limit": hard},
    }


def test_bridge_schedules_sets_interval_crontab_runners_or_none(workers: dict[str, Any]) -> None:
    setting = json.dumps(
        {
            "mail": "*/5 * * * *",
            "thumbs": {"every": 1, "time_limit": 3, "concurrency": 3},
            "manual": 60,
        }
    )
    schedules = {s.queue: s for s in queue_schedules(workers, setting)}
    mail = schedules["mail"].entries()["bridge.process_queue:mail"]
    assert mail["schedule"] == crontab.from_string("*/5 * * * *")
    assert mail["options"]["expires"] == 300.0
    thumbs = schedules["thumbs"].entries()
    assert list(thumbs) == [
        "bridge.process_queue:thumbs",
        "bridge.process_queue:thumbs#2",
        "bridge.process_queue:thumbs#3",
    ]
    assert {e["kwargs"]["time_limit"] for e in thumbs.values()} == {3.0}
    assert schedules["manual"].every == 60.0
    assert schedules["manual"].budget == 30.0  # no cron_time: the default budget
    assert queue_schedules(workers, {"mail": None, "thumbs": None}) == []


@pytest.mark.parametrize(
    "setting",
    [
        '{"nobody": 5}',
        "[1, 2]",
        "{not json",
        '{"mail": -1}',
        '{"mail": true}',
        '{"mail": {"every": 5, "crontab": "* * * * *"}}',
        '{"mail": {"evry": 5}}',
        '{"mail": {"concurrency": 0}}',
        '{"mail": {"concurrency": 1.5}}',
        '{"mail": "61 * * * *"}',
    ],
)
def test_bad_schedules_are_refused_with_the_queue_named(
    workers: dict[str, Any], setting: str
) -> None:
    with pytest.raises(ConfigurationError, match=r"schedules|BRIDGE_SCHEDULES"):
        queue_schedules(workers, setting)


def test_a_worker_whose_items_take_long_gets_a_later_soft_limit(workers: dict[str, Any]) -> None:
    (thumbs,) = [s for s in queue_schedules(workers, None) if s.queue == "thumbs"]
    options = thumbs.entries()["bridge.process_queue:thumbs"]["options"]
    assert options["soft_time_limit"] == 2 + 60  # budget + the worker's lease_time
    assert runner_lease(60.0, options["time_limit"]) > options["time_limit"]


@pytest.mark.parametrize("budget", [0.1, 1, 2, 10, 60, 900, 3600])
@pytest.mark.parametrize("item_time", [None, 5.0, 600.0])
def test_the_lease_always_outlives_the_hard_limit(budget: float, item_time: float | None) -> None:
    soft, hard = runner_limits(budget, item_time)
    assert budget < soft < hard
    assert soft - budget >= (item_time or 1.0)
    for lease in (0.5, budget, hard, hard * 3):
        assert runner_lease(lease, hard) >= max(lease, hard + 2)
    assert runner_lease(7.0, None) == 7.0


def _probe_app(**conf: Any) -> Celery:
    app = Celery("probe", set_as_current=False)
    app.config_from_object({"broker_url": "memory://", **conf})
    return app


def test_the_schedule_is_installed_on_finalize(workers: dict[str, Any]) -> None:
    app = _probe_app(
        broker_url="filesystem://",
        bridge_schedules='{"thumbs": 4}',
        beat_schedule={"bridge.process_queue:mail": {"task": "mine"}},
    )
    init_app(app)
    app.finalize()
    schedule = app.conf.beat_schedule
    assert schedule["bridge.process_queue:mail"] == {"task": "mine"}  # the application's wins
    assert schedule["bridge.process_queue:thumbs"]["schedule"] == 4.0
    assert schedule["bridge.clean_broker"]["task"] == "bridge.clean_broker"


def test_init_app_schedules_are_overridden_queue_by_queue_by_the_app_setting(
    workers: dict[str, Any],
) -> None:
    app = _probe_app(bridge_schedules={"thumbs": {"every": 9, "queue": "bridge.thumbs"}})
    init_app(app, schedules={"mail": 3, "thumbs": 5})
    app.finalize()
    schedule = app.conf.beat_schedule
    assert schedule["bridge.process_queue:mail"]["schedule"] == 3.0
    thumbs = schedule["bridge.process_queue:thumbs"]
    assert (thumbs["schedule"], thumbs["options"]["queue"]) == (9.0, "bridge.thumbs")
    assert "queue" not in schedule["bridge.process_queue:mail"]["options"]
    assert "bridge.clean_broker" not in schedule  # not the filesystem broker


def test_init_app_registers_on_that_app_only(workers: dict[str, Any]) -> None:
    mine, other = _probe_app(), _probe_app()
    tasks = init_app(mine)
    other.finalize()
    assert {"bridge.process_queue", "bridge.run_cron", "bridge.clean_broker"} <= set(mine.tasks)
    assert not [name for name in other.tasks if name.startswith("bridge.")]
    assert tasks.process_queue.app is mine
    with pytest.raises(ConfigurationError, match="already"):
        init_app(mine)


def test_importing_bridge_celery_never_makes_its_app_current(tmp_path: Path) -> None:
    """In a fresh process, as an application would: its app first, then bridge's modules."""
    code = """
from celery import Celery, current_app, shared_task
app = Celery("userproj", broker="memory://")
import bridge.celery.schedules, bridge.celery, bridge.celery.demo
@shared_task
def add(x, y):
    return x + y
assert current_app.main == "userproj", current_app.main
assert add.app is app, add.app
assert bridge.celery.app.main == "bridge"
assert "bridge.process_queue" not in app.tasks, "bridge's tasks are not shared"
print("ok")
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BRIDGE_", "CELERY_"))}
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=60,
    )
    assert done.stdout.strip() == "ok", done.stderr


def test_senders_get_the_queue_limits_route_and_name(
    workers: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[dict[str, Any]] = []
    keys = ("soft_time_limit", "time_limit", "queue", "shadow")
    monkeypatch.setattr(
        Task,
        "apply_async",
        lambda self, *a, **options: sent.append(
            {k: options[k] for k in keys if options.get(k) is not None}
        ),
    )
    app = _probe_app(bridge_schedules={"thumbs": {"queue": "bridge.thumbs"}})
    tasks = init_app(app)
    tasks.process_queue.apply_async(("mail",))
    tasks.process_queue.apply_async(("mail",), {"time_limit": 2})
    tasks.process_queue.apply_async(("mail",), soft_time_limit=5, time_limit=9)
    tasks.process_queue.apply_async(("unknown",))
    tasks.process_queue.apply_async(("thumbs",))
    tasks.process_queue.apply_async(("thumbs",), queue="elsewhere", shadow="mine")
    tasks.run_cron.apply_async()
    soft10, hard10 = runner_limits(10.0)
    soft2, hard2 = runner_limits(2.0)
    soft2_60, hard2_60 = runner_limits(2.0, 60.0)  # thumbs' items may take 60 s
    soft12, hard12 = runner_limits(12.0, 60.0)
    assert sent == [
        {"soft_time_limit": soft10, "time_limit": hard10, "shadow": "bridge.process_queue:mail"},
        {"soft_time_limit": soft2, "time_limit": hard2, "shadow": "bridge.process_queue:mail"},
        {"soft_time_limit": 5, "time_limit": 9, "shadow": "bridge.process_queue:mail"},
        {"shadow": "bridge.process_queue:unknown"},
        {
            "soft_time_limit": soft2_60,
            "time_limit": hard2_60,
            "queue": "bridge.thumbs",
            "shadow": "bridge.process_queue:thumbs",
        },
        {
            "soft_time_limit": soft2_60,
            "time_limit": hard2_60,
            "queue": "elsewhere",
            "shadow": "mine",
        },
        {"soft_time_limit": soft12, "time_limit": hard12},
    ]


EVENT = {
    "uuid": "t1",
    "hostname": "celery@test",
    "pid": 1,
    "clock": 1,
    "utcoffset": 0,
    "timestamp": time.time(),
    "local_received": time.time(),
}


def test_progress_never_lands_in_flowers_own_task_fields(
    memory_factory: bridge.QueueFactory,
) -> None:
    """Flower keeps every field of an event on its task; the counts must travel in ``result``."""
    events: list[dict[str, Any]] = []

    class Recorder:
        request = type("Request", (), {"id": "t1", "ignore_result": True})()
        app = _probe_app()

        def send_event(self, type_: str, **fields: Any) -> None:
            events.append({**EVENT, "type": type_, "clock": 2, **fields})

    _Progress(Recorder())(Summary("jobs", processed=3, failed=7))
    (progress,) = events
    assert set(progress) - {*EVENT, "type"} == {"result"}
    state = State()
    state.event(
        {**EVENT, "type": "task-received", "name": "bridge.process_queue:jobs", "args": "('jobs',)"}
    )
    state.event(progress)
    task = state.tasks["t1"]
    assert task.state == "PROGRESS"
    assert task.failed is None, "a count landed in Flower's failed timestamp"
    assert "'failed': 7" in task.result
    assert "'processed': 3" in task.result
    assert task.name == "bridge.process_queue:jobs"


# --- the task body and the soft-limit guard -----------------------------------


def test_the_task_returns_the_summary_and_what_remains(memory_factory: bridge.QueueFactory) -> None:
    seen: list[Any] = []
    bridge.queue_worker("jobs", cron_time=5)(seen.append)
    memory_factory.get("jobs").create_items([1, 2, 3])
    result = bc.process_queue_task.run("jobs", items_limit=2)
    assert seen == [1, 2]
    assert (result["queue"], result["processed"], result["stopped_by"]) == (
        "jobs",
        2,
        "items_limit",
    )
    assert result["remaining"] == 1
    json.dumps(result)


def test_a_soft_time_limit_in_the_worker_releases_its_item(
    memory_factory: bridge.QueueFactory,
) -> None:
    calls: list[Any] = []

    def stuck(data: Any) -> None:
        calls.append(data)
        if data == "stuck":
            raise SoftTimeLimitExceeded()

    bridge.queue_worker("slow", cron_time=5, lease_time=600)(stuck)
    queue = memory_factory.get("slow")
    queue.create_items(["stuck", "next"])
    result = bc.process_queue_task.run("slow")
    assert calls == ["stuck"], "no claim after the soft limit"
    assert (result["stopped_by"], result["suspended"], result["failed"]) == (
        "soft_time_limit",
        None,
        0,
    )
    item = queue.claim_item(lease_time=5)
    assert item is not None
    assert (item.data, item.attempts) == ("stuck", 2), "not released"
    assert bridge.get_worker("slow").callback is stuck, "the registry is left alone"


# --- filesystem broker housekeeping -------------------------------------------


def test_unread_event_queues_and_their_bindings_are_dropped(tmp_path: Path) -> None:
    data, control = tmp_path / "data", tmp_path / "control"
    data.mkdir()
    control.mkdir()
    now = time.time()
    old = now - 1000

    def message(name: str, mtime: float) -> Path:
        path = data / name
        path.write_text("{}")
        os.utime(path, (mtime, mtime))
        return path

    gone = [message("1_a.celeryev.gone.msg", old), message("5_b.celeryev.gone.msg", now)]
    reply = message("2_c.abc.reply.celery.pidbox.msg", old)
    task = message("3_d.bridge.msg", old)
    live = message("4_e.celeryev.live.msg", now)
    table = control / "celeryev.exchange"
    table.write_text(
        json.dumps([["worker.#", "", "celeryev.gone"], ["worker.#", "", "celeryev.live"]])
    )
    options = {"data_folder_in": str(data), "control_folder": str(control)}

    assert clean_filesystem_broker(options, now=now) == {"queues": 2, "messages": 3, "bindings": 1}
    assert not any(path.exists() for path in [*gone, reply])
    assert task.exists()
    assert live.exists()
    assert json.loads(table.read_text()) == [["worker.#", "", "celeryev.live"]]
    assert clean_filesystem_broker(options, now=now)["queues"] == 0


def test_bridge_celery_is_what_celery_dash_a_bridge_finds() -> None:
    from celery.app.utils import find_app

    assert find_app("bridge") is bc.app
    assert sys.modules["bridge.celery"].app.main == "bridge"
