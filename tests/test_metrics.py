"""``bridge metrics``: queue gauges and outcome counters, read with prometheus_client's parser.

The gauges come from real stores at scrape time; the counters from real
runs of ``process_queue``, in this process and, through
``PROMETHEUS_MULTIPROC_DIR``, in other processes (a forked child among
them, as Celery's prefork pool makes). The server is the real script in a
process of its own, scraped over TCP.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

import bridge
from bridge.items import ItemCounts
from bridge.metrics import (
    QueueDepth,
    exposition,
    families,
    make_registry,
    queue_depth,
    queue_depths,
)

from celery_processes import http_get
from conftest import SHARED_BACKENDS, spec_for

DOCS = Path(__file__).resolve().parent.parent / "docs"


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of an exposition, parsed by prometheus_client: (name, labels) -> value."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(text: str, name: str, **labels: str) -> float:
    """The value of the one sample of ``name`` whose labels include ``labels``."""
    found = [
        v
        for (sample, sample_labels), v in samples(text).items()
        if sample == name and set(labels.items()) <= sample_labels
    ]
    assert len(found) == 1, f"{len(found)} {name} samples with {labels} in:\n{text}"
    return found[0]


def has(text: str, name: str, **labels: str) -> bool:
    return any(
        sample == name and set(labels.items()) <= sample_labels
        for sample, sample_labels in samples(text)
    )


def clean_env(**extra: str) -> dict[str, str]:
    """The environment for a bridge process: none of this shell's bridge, Celery or
    prometheus_client settings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("BRIDGE_", "CELERY_", "PROMETHEUS_", "prometheus_"))
    }
    env["CELERY_CONFIG_MODULE"] = "bridge_test_no_celeryconfig"
    return {**env, **extra}


@pytest.fixture
def sqlite_factory(tmp_path: Path) -> Iterator[bridge.QueueFactory]:
    factory = bridge.QueueFactory(default=f"sqlite:///{tmp_path}/bridge.sqlite")
    yield factory
    factory.close()


# -- the gauges ---------------------------------------------------------------------


def test_families_escape_labels_and_show_a_backend_down() -> None:
    registry = CollectorRegistry()

    class Fixed:
        def collect(self) -> Any:
            return families(
                [
                    QueueDepth('we"ird\\q\nx', "memory://", ItemCounts(1, 2, 3, 4), 7.5),
                    QueueDepth("blind", "amqp://guest:***@host//", ItemCounts(5, 0, 0)),
                    QueueDepth("down", "postgresql://app:***@db/app", None),
                ]
            )

    registry.register(Fixed())
    from prometheus_client import generate_latest

    text = generate_latest(registry).decode()
    weird = {"queue": 'we"ird\\q\nx', "backend": "memory://"}
    assert value(text, "bridge_queue_items", **weird) == 10
    assert value(text, "bridge_queue_held_items", **weird) == 4
    for state, count in [("ready", 1), ("leased", 2), ("delayed", 3), ("held", 4)]:
        assert value(text, "bridge_queue_items_by_state", state=state, **weird) == count
    assert value(text, "bridge_queue_oldest_ready_age_seconds", **weird) == 7.5
    assert value(text, "bridge_queue_up", **weird) == 1
    # Ready items of unknown age: no age series (0 would hide waiting work).
    assert not has(text, "bridge_queue_oldest_ready_age_seconds", queue="blind")
    assert value(text, "bridge_queue_items", queue="blind") == 5
    assert value(text, "bridge_queue_up", queue="down") == 0
    assert not has(text, "bridge_queue_items", queue="down")
    assert not has(text, "bridge_queue_held_items", queue="down")


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_exposition_shows_held_items_and_the_oldest_ready_age(
    kind: str, tmp_path: Path, empty_registry: None
) -> None:
    """The issue's test: parsed by prometheus_client, on a real store."""
    factory = bridge.QueueFactory(default=spec_for(kind, tmp_path))
    name = f"m_{uuid.uuid4().hex[:10]}"
    queue = factory.get(name)
    try:
        queue.create_items(["poison", "waits", "waits too"])
        poison = queue.claim_item(lease_time=60)
        assert poison is not None
        assert queue.hold_item(poison, reason="bounced", error="ValueError: bounced")
        time.sleep(0.3)
        text = exposition(factory)
        age = value(text, "bridge_queue_oldest_ready_age_seconds", queue=name)
        assert 0.3 <= age < 60, age
        assert value(text, "bridge_queue_held_items", queue=name) == 1
        assert value(text, "bridge_queue_items_by_state", queue=name, state="held") == 1
        assert value(text, "bridge_queue_items_by_state", queue=name, state="ready") == 2
        assert value(text, "bridge_queue_items", queue=name) == 3
        assert value(text, "bridge_queue_up", queue=name) == 1
        # Nothing ready: nothing waits.
        for _ in range(2):
            assert queue.claim_item(lease_time=60) is not None
        text = exposition(factory)
        assert value(text, "bridge_queue_oldest_ready_age_seconds", queue=name) == 0
        assert value(text, "bridge_queue_items_by_state", queue=name, state="leased") == 2
    finally:
        queue.delete_queue()
        factory.close()


EXACT_COUNTS = [
    p for p in SHARED_BACKENDS if p.values[0] in ("sqlite", "postgres", "mariadb", "redis")
]
"""Backends whose counts are exact at once (SQS's are approximate, AMQP's ready-only)."""


@pytest.mark.parametrize("kind", EXACT_COUNTS)
def test_depths_split_ready_leased_delayed_and_held(
    kind: str, tmp_path: Path, empty_registry: None
) -> None:
    factory = bridge.QueueFactory(default=spec_for(kind, tmp_path))
    name = f"m_{uuid.uuid4().hex[:10]}"
    queue = factory.get(name)
    try:
        queue.create_items(["a", "b", "c"])
        queue.create_item("later", delay=60)
        claimed = queue.claim_item(lease_time=60)
        held = queue.claim_item(lease_time=60)
        assert claimed is not None
        assert held is not None
        assert queue.hold_item(held, reason="test")
        (depth,) = [d for d in queue_depths(factory) if d.queue == name]
        assert depth.counts == ItemCounts(ready=1, leased=1, delayed=1, held=1)
        assert depth.total == 4
        queue.delete_item(claimed)
    finally:
        queue.delete_queue()
        factory.close()


@pytest.mark.service("rabbitmq")
def test_a_store_that_cannot_tell_the_age(tmp_path: Path, empty_registry: None) -> None:
    """RabbitMQ: no age while items are ready, 0 when none is."""
    factory = bridge.QueueFactory(default=spec_for("rabbitmq", tmp_path))
    name = f"m_{uuid.uuid4().hex[:10]}"
    queue = factory.get(name)
    try:
        assert queue_depth(name, queue.backend).oldest_ready_age == 0
        queue.create_items(["a", "b"])
        deadline = time.monotonic() + 10
        while (depth := queue_depth(name, queue.backend)).counts != ItemCounts(2, 0, 0):
            assert time.monotonic() < deadline, depth
            time.sleep(0.1)
        assert depth.oldest_ready_age is None
        text = exposition(factory)
        assert not has(text, "bridge_queue_oldest_ready_age_seconds", queue=name)
        assert value(text, "bridge_queue_items_by_state", queue=name, state="ready") == 2
    finally:
        queue.delete_queue()
        factory.close()


# -- the outcome counters --------------------------------------------------------------


def test_outcome_counters_move_when_process_queue_runs_a_failing_worker(
    empty_registry: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    factory = bridge.QueueFactory(default="memory://")
    name = f"m_{uuid.uuid4().hex[:10]}"
    registry = make_registry(factory)

    def count(outcome: str) -> float:
        labels = {"queue": name, "outcome": outcome}
        return registry.get_sample_value("bridge_queue_outcomes_total", labels) or 0.0

    @bridge.queue_worker(name, max_attempts=2)
    def work(data: str) -> None:
        if data != "fine":
            raise ValueError(f"cannot {data}")

    queue = factory.get(name)
    queue.create_items(["fine", "bad", "fine"])
    summary = bridge.process_queue(name, lease_time=60, factory=factory)
    assert (summary.processed, summary.failed) == (2, 1)
    assert (count("processed"), count("failed"), count("held")) == (2, 1, 0)
    assert queue.release_all() == 1  # the failed item, back at once: its last attempt
    summary = bridge.process_queue(name, lease_time=60, factory=factory)
    assert summary.held == 1
    assert (count("processed"), count("failed"), count("held")) == (2, 1, 1)
    assert value(exposition(factory), "bridge_queue_held_items", queue=name) == 1


WORKERS_MODULE = """
import bridge

@bridge.queue_worker("outcomes")
def work(data):
    if data == "bad":
        raise ValueError("bad item")
"""

RUN_AND_FORK = """
import os, sys
import bridge
import outcome_workers

factory = bridge.QueueFactory(default=sys.argv[1])
bridge.process_queue("outcomes", items_limit=2, factory=factory)
pid = os.fork()
if pid == 0:
    # As a prefork child: counts inherited from the parent must not be counted twice.
    bridge.process_queue("outcomes", factory=factory)
    os._exit(0)
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def test_multiprocess_mode_adds_up_every_process(tmp_path: Path) -> None:
    """Two runs and a forked child write counters; a separate ``bridge metrics`` sums them."""
    url = f"sqlite:///{tmp_path}/bridge.sqlite"
    factory = bridge.QueueFactory(default=url)
    factory.get("outcomes").create_items(["ok", "ok", "bad", "ok", "ok", "ok", "bad"])
    factory.close()
    (tmp_path / "outcome_workers.py").write_text(WORKERS_MODULE)
    (tmp_path / "run_and_fork.py").write_text(RUN_AND_FORK)
    counters = tmp_path / "prometheus"
    counters.mkdir()
    env = clean_env(
        PYTHONPATH=str(tmp_path),
        BRIDGE_IMPORTS="outcome_workers",
        BRIDGE_QUEUE_DEFAULT=url,
        PROMETHEUS_MULTIPROC_DIR=str(counters),
    )
    run = [sys.executable, "run_and_fork.py", url]
    subprocess.run(run, cwd=tmp_path, env=env, check=True, timeout=60)
    assert len(list(counters.glob("counter_*.db"))) == 2, "the parent's file and the child's"
    out = subprocess.run(
        [sys.executable, "-m", "bridge.cli", "metrics", "--once"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert value(out, "bridge_queue_outcomes_total", queue="outcomes", outcome="processed") == 5
    assert value(out, "bridge_queue_outcomes_total", queue="outcomes", outcome="failed") == 2
    assert value(out, "bridge_queue_items_by_state", queue="outcomes", state="leased") == 2


def test_a_missing_multiprocess_directory(tmp_path: Path) -> None:
    """The metrics command says so in one line; a run goes on without its counters."""
    url = f"sqlite:///{tmp_path}/bridge.sqlite"
    factory = bridge.QueueFactory(default=url)
    factory.get("outcomes").create_items(["ok", "ok"])
    factory.close()
    (tmp_path / "outcome_workers.py").write_text(WORKERS_MODULE)
    env = clean_env(
        PYTHONPATH=str(tmp_path),
        BRIDGE_QUEUE_DEFAULT=url,
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "gone"),
    )
    cli = [sys.executable, "-m", "bridge.cli"]
    done = subprocess.run(
        [*cli, "metrics", "--once"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 1
    assert done.stderr.startswith("Error: PROMETHEUS_MULTIPROC_DIR=")
    assert len(done.stderr.splitlines()) == 1, done.stderr
    done = subprocess.run(
        [*cli, "--import", "outcome_workers", "queue", "run", "outcomes"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "Processed 2 items" in done.stdout
    assert "Outcome counters are off in this process" in done.stderr
    assert done.stderr.count("Outcome counters are off") == 1
    assert "Traceback" not in done.stderr


# -- the server ------------------------------------------------------------------------


class Server:
    """``bridge metrics --port 0`` in a process of its own; ``url`` once it listens."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bridge.cli", "metrics", "--port", "0"],
            cwd=cwd,
            env={**env, "PYTHONUNBUFFERED": "1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        found = re.search(r"http://127\.0\.0\.1:(\d+)/metrics", line)
        assert found, f"no address announced: {line!r}"
        self.port = int(found[1])
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.kill()
        self.proc.communicate()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """A registered worker's empty queue and a stored queue with a leased item."""
    (tmp_path / "metrics_workers.py").write_text(
        "import bridge\n\n@bridge.queue_worker('registered', cron_time=5)\n"
        "def work(data):\n    pass\n"
    )
    factory = bridge.QueueFactory(default=f"sqlite:///{tmp_path}/bridge.sqlite")
    stored = factory.get("stored")
    stored.create_items([1, 2, 3])
    assert stored.claim_item(lease_time=60) is not None
    factory.close()
    running = Server(
        tmp_path, clean_env(PYTHONPATH=str(tmp_path), BRIDGE_IMPORTS="metrics_workers")
    )
    yield running
    running.stop()


def test_bridge_metrics_serves_every_known_queue(server: Server) -> None:
    started = time.monotonic()
    text = http_get(f"{server.url}/metrics")
    assert time.monotonic() - started < 5
    assert value(text, "bridge_queue_items", queue="stored") == 3
    assert value(text, "bridge_queue_items_by_state", queue="stored", state="leased") == 1
    assert value(text, "bridge_queue_items_by_state", queue="stored", state="ready") == 2
    assert value(text, "bridge_queue_items", queue="registered") == 0
    assert value(text, "bridge_queue_up", queue="registered") == 1
    with pytest.raises(OSError, match="404"):
        http_get(f"{server.url}/other")


def test_an_idle_connection_does_not_block_a_scrape(server: Server) -> None:
    """One scraper that connects and sends nothing, one that stops mid-request."""
    with (
        socket.create_connection(("127.0.0.1", server.port)),  # sends nothing
        socket.create_connection(("127.0.0.1", server.port)) as halfway,
    ):
        halfway.sendall(b"GET /metr")
        time.sleep(0.2)  # both are accepted before the real scrape
        started = time.monotonic()
        text = http_get(f"{server.url}/metrics", timeout=5)
        assert time.monotonic() - started < 5
        assert value(text, "bridge_queue_items", queue="stored") == 3


def test_bridge_metrics_once_prints_the_exposition(tmp_path: Path) -> None:
    bridge.QueueFactory(default=f"sqlite:///{tmp_path}/bridge.sqlite").get("q").create_item(1)
    out = subprocess.run(
        [sys.executable, "-m", "bridge.cli", "metrics", "--once"],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert value(out, "bridge_queue_items", queue="q") == 1
    assert value(out, "bridge_queue_oldest_ready_age_seconds", queue="q") >= 0


@pytest.mark.parametrize("routed_by", ["variable", "BRIDGE_QUEUES"])
def test_bridge_metrics_exports_a_queue_routed_to_another_backend(
    tmp_path: Path, routed_by: str
) -> None:
    """A queue set by BRIDGE_QUEUE__<NAME> is exported as one set in BRIDGE_QUEUES is."""
    other = f"sqlite:///{tmp_path}/other.sqlite"
    stored = bridge.QueueFactory(default=other)
    stored.get("emails").create_items([1, 2])
    stored.close()
    if routed_by == "variable":
        env = clean_env(BRIDGE_QUEUE__EMAILS=other)
    else:
        env = clean_env(BRIDGE_QUEUES=json.dumps({"emails": other}))
    out = subprocess.run(
        [sys.executable, "-m", "bridge.cli", "metrics", "--once"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert value(out, "bridge_queue_items", queue="emails", backend=other) == 2
    assert value(out, "bridge_queue_up", queue="emails", backend=other) == 1


# -- the alert rules in docs/failures.md -------------------------------------------------


def alert_rules() -> list[dict[str, Any]]:
    text = (DOCS / "failures.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.DOTALL)
    rules = [
        rule
        for block in blocks
        for group in (yaml.safe_load(block) or {}).get("groups", [])
        for rule in group["rules"]
    ]
    assert rules, "docs/failures.md has no alert rules"
    return rules


def test_the_documented_alert_rules_name_metrics_that_exist(
    tmp_path: Path, empty_registry: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every metric an alert rule names is in a real exposition (counters included)."""
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    factory = bridge.QueueFactory(default=f"sqlite:///{tmp_path}/bridge.sqlite")
    name = f"m_{uuid.uuid4().hex[:10]}"

    @bridge.queue_worker(name)
    def work(data: str) -> None:
        if data == "bad":
            raise ValueError("bad item")

    factory.get(name).create_items(["fine", "bad"])
    bridge.process_queue(name, factory=factory)
    exported = {sample for sample, _ in samples(exposition(factory))}
    factory.close()
    alerts = alert_rules()
    named = {alert["alert"] for alert in alerts}
    assert {"BridgeQueueHasHeldItems", "BridgeWorkWaits", "BridgeQueueFailing"} <= named
    for rule in alerts:
        assert set(rule) >= {"alert", "expr", "for", "annotations"}, rule
        used = set(re.findall(r"\bbridge_[a-z_]+", rule["expr"]))
        assert used, rule["expr"]
        assert used <= exported, f"{rule['alert']} names {used - exported}"
