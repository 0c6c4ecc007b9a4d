"""``bridge metrics``: queue depth as Prometheus text, scraped from a real server process."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from celery_processes import http_get

import bridge
from bridge.items import ItemCounts
from bridge.metrics import QueueDepth, queue_depths, render

from conftest import SHARED_BACKENDS, spec_for


def _sample(text: str, metric: str, **labels: str) -> float:
    """The value of the one sample of ``metric`` carrying ``labels``."""
    for line in text.splitlines():
        name, _, rest = line.partition("{")
        if name != metric:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', rest.rpartition("}")[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {metric} sample with {labels} in:\n{text}")


def test_render_is_prometheus_text_with_escaped_labels() -> None:
    text = render(
        [
            QueueDepth('we"ird\\q', "memory://", 3, ItemCounts(1, 1, 1)),
            QueueDepth("plain", "kombu+amqp://guest:***@host//", 5),
            QueueDepth("down", "postgresql://app:***@db/app", None),
        ]
    )
    assert text.endswith("\n")
    assert "# TYPE bridge_queue_items gauge" in text
    assert 'bridge_queue_items{queue="we\\"ird\\\\q",backend="memory://"} 3' in text
    assert 'bridge_queue_items_by_state{queue="plain"' not in text  # no split: not shown
    assert _sample(text, "bridge_queue_items", queue="plain") == 5
    assert _sample(text, "bridge_queue_up", queue="down") == 0
    assert 'bridge_queue_items{queue="down"' not in text
    for line in text.splitlines():
        assert line.startswith("#") or re.fullmatch(r"bridge_\w+\{.*\} \d+", line), line


EXACT_COUNTS = [
    p for p in SHARED_BACKENDS if p.values[0] in ("sqlite", "postgres", "mariadb", "redis")
]
"""Backends whose counts are exact at once (SQS's are approximate, AMQP's ready-only)."""


@pytest.mark.parametrize("kind", EXACT_COUNTS)
def test_depths_split_ready_leased_and_delayed(
    kind: str, tmp_path: Path, empty_registry: None
) -> None:
    """Where a backend counts by state it says so; else the total alone is reported."""
    factory = bridge.QueueFactory(default=spec_for(kind, tmp_path))
    name = f"m_{uuid.uuid4().hex[:10]}"
    queue = factory.get(name)
    delays = queue.capabilities.delay
    try:
        queue.create_items(["a", "b"])
        if delays:
            queue.create_item("later", delay=60)
        claimed = queue.claim_item(lease_time=60)
        assert claimed is not None
        (depth,) = [d for d in queue_depths(factory) if d.queue == name]
        assert depth.total == (3 if delays else 2)
        if depth.counts is not None:
            assert depth.counts == ItemCounts(ready=1, leased=1, delayed=int(delays))
        queue.delete_item(claimed)
    finally:
        queue.delete_queue()
        factory.close()


def test_bridge_metrics_serves_every_known_queue(tmp_path: Path) -> None:
    """A registered worker's empty queue and a queue with items both appear."""
    (tmp_path / "metrics_workers.py").write_text(
        "import bridge\n\n@bridge.queue_worker('registered', cron_time=5)\n"
        "def work(data):\n    pass\n"
    )
    factory = bridge.QueueFactory(default=f"sqlite:///{tmp_path}/bridge.sqlite")
    stored = factory.get("stored")
    stored.create_items([1, 2, 3])
    assert stored.claim_item(lease_time=60) is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BRIDGE_", "CELERY_"))}
    env.update(PYTHONPATH=str(tmp_path), BRIDGE_IMPORTS="metrics_workers", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "bridge.cli", "metrics", "--port", "0"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        found = re.search(r"http://127\.0\.0\.1:(\d+)/metrics", line)
        assert found, f"no address announced: {line!r}"
        url = f"http://127.0.0.1:{found[1]}"
        started = time.monotonic()
        text = http_get(f"{url}/metrics")
        assert time.monotonic() - started < 5
        assert _sample(text, "bridge_queue_items", queue="stored") == 3
        assert _sample(text, "bridge_queue_items_by_state", queue="stored", state="leased") == 1
        assert _sample(text, "bridge_queue_items_by_state", queue="stored", state="ready") == 2
        assert _sample(text, "bridge_queue_items", queue="registered") == 0
        assert _sample(text, "bridge_queue_up", queue="registered") == 1
        with pytest.raises(OSError, match="404"):
            http_get(f"{url}/other")
    finally:
        proc.kill()
        proc.communicate()
        factory.close()


def test_bridge_metrics_once_prints_the_exposition(tmp_path: Path) -> None:
    bridge.QueueFactory(default=f"sqlite:///{tmp_path}/bridge.sqlite").get("q").create_item(1)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BRIDGE_", "CELERY_"))}
    out = subprocess.run(
        [sys.executable, "-m", "bridge.cli", "metrics", "--once"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert _sample(out, "bridge_queue_items", queue="q") == 1


@pytest.mark.parametrize("routed_by", ["variable", "BRIDGE_QUEUES"])
def test_bridge_metrics_exports_a_queue_routed_to_another_backend(
    tmp_path: Path, routed_by: str
) -> None:
    """A queue set by BRIDGE_QUEUE__<NAME> is exported as one set in BRIDGE_QUEUES is."""
    other = f"sqlite:///{tmp_path}/other.sqlite"
    stored = bridge.QueueFactory(default=other)
    stored.get("emails").create_items([1, 2])
    stored.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BRIDGE_", "CELERY_"))}
    if routed_by == "variable":
        env["BRIDGE_QUEUE__EMAILS"] = other
    else:
        env["BRIDGE_QUEUES"] = json.dumps({"emails": other})
    out = subprocess.run(
        [sys.executable, "-m", "bridge.cli", "metrics", "--once"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert _sample(out, "bridge_queue_items", queue="emails", backend=other) == 2
    assert _sample(out, "bridge_queue_up", queue="emails", backend=other) == 1
