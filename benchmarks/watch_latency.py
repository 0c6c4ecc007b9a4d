"""Pick-up latency of ``bridge queue watch``: from ``create_item`` to the worker's start.

Run ``python benchmarks/watch_latency.py [--items 200] [STORE...]`` (every store
when none is named: sqlite mariadb redis-cluster postgres redis beanstalk
rabbitmq gearman).
For each store it starts ``bridge --import watch_latency queue watch`` as a
subprocess (this file is also its worker module), creates items one at a
time, each after the previous one started and a random pause of 20-300 ms
(so the watcher is back waiting, as between real items, and an item does
not always come just after a sleeping watcher began its sleep), and prints
the median, 95th percentile and worst latency, in milliseconds, as a
Markdown table. Each item carries its creation time (taken just before
``create_item``); the worker writes ``time.time()`` minus that, so both ends
read one machine's clock.

Stores: ``BRIDGE_TEST_POSTGRES_URL``, ``BRIDGE_TEST_MARIADB_URL``,
``BRIDGE_TEST_REDIS_URL``, ``BRIDGE_TEST_REDIS_CLUSTER_URL``,
``BRIDGE_TEST_AMQP_URL``, ``BRIDGE_TEST_BEANSTALK_URL`` and
``BRIDGE_TEST_GEARMAN_URL`` (the test suite's
defaults otherwise); SQLite in a temporary directory. RabbitMQ's queue is a
quorum queue (the backend's default).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

QUEUE = "watch_latency"
URLS = {
    "postgres": os.environ.get(
        "BRIDGE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    ),
    "redis": os.environ.get("BRIDGE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"),
    "beanstalk": os.environ.get("BRIDGE_TEST_BEANSTALK_URL", "beanstalk://127.0.0.1:11300"),
    "rabbitmq": os.environ.get("BRIDGE_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//"),
    "gearman": os.environ.get("BRIDGE_TEST_GEARMAN_URL", "gearman://127.0.0.1:4730"),
    "mariadb": os.environ.get(
        "BRIDGE_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test"
    ),
    "redis-cluster": os.environ.get(
        "BRIDGE_TEST_REDIS_CLUSTER_URL",
        "redis+cluster://127.0.0.1:7000,127.0.0.1:7001,127.0.0.1:7002",
    ),
}
HOW = {
    "sqlite": "sleeps 0.25 s between claims",
    "mariadb": "sleeps 0.25 s between claims",
    "redis-cluster": "sleeps 0.25 s between claims",
    "postgres": "LISTEN / NOTIFY",
    "redis": "pub/sub on the queue's wake channel",
    "beanstalk": "a blocking reserve-with-timeout, the job parked for the claim",
    "rabbitmq": "a consumer on the queue, the pushed message parked for the claim",
    "gearman": "a sleeping worker (PRE_SLEEP), woken by gearmand's NOOP",
}

if os.environ.get("WATCH_LATENCY_LOG"):
    # Imported by the watcher (``--import watch_latency``): the worker.
    import bridge

    bridge.configure(json.loads(os.environ["WATCH_LATENCY_SPEC"]), queues={})
    _log = open(os.environ["WATCH_LATENCY_LOG"], "a", buffering=1)  # noqa: SIM115 - for the process

    # Never fails, so no item is held: max_attempts=None lets it run on a
    # store that cannot hold items (Gearman) too.
    @bridge.queue_worker(QUEUE, max_attempts=None)
    def _started(data: Any) -> None:
        _log.write(f"{time.time() - data['t']:.6f}\n")


def _spec(kind: str, scratch: Path) -> dict[str, Any]:
    if kind == "sqlite":
        return {"url": f"sqlite:///{scratch}/latency.sqlite"}
    if kind == "postgres":
        return {"url": URLS["postgres"], "options": {"table": "watch_latency"}}
    if kind == "beanstalk":
        return {"url": URLS["beanstalk"], "options": {"tube_prefix": "watch_latency."}}
    if kind in ("rabbitmq", "gearman"):
        return {"url": URLS[kind]}
    if kind == "mariadb":
        return {"url": URLS["mariadb"], "options": {"table": "watch_latency"}}
    return {"url": URLS[kind], "options": {"key_prefix": "watch_latency"}}


def measure(kind: str, items: int) -> list[float]:
    """Latencies in seconds of ``items`` items created one at a time on ``kind``."""
    import bridge

    with tempfile.TemporaryDirectory() as scratch:
        log = Path(scratch) / "started.log"
        log.touch()
        spec = _spec(kind, Path(scratch))
        factory = bridge.QueueFactory(default=spec)
        queue = factory.get(QUEUE)
        queue.delete_queue()
        env = {
            **os.environ,
            "WATCH_LATENCY_SPEC": json.dumps(spec),
            "WATCH_LATENCY_LOG": str(log),
            "PYTHONPATH": str(Path(__file__).parent),
        }
        command = [str(Path(sys.executable).parent / "bridge"), "--import", "watch_latency"]
        watcher = subprocess.Popen(
            [*command, "queue", "watch", QUEUE], env=env, stderr=subprocess.DEVNULL
        )
        try:
            time.sleep(1.5)  # started, and listening
            for n in range(items):
                queue.create_item({"t": time.time()})
                deadline = time.monotonic() + 10
                while len(log.read_text().splitlines()) <= n:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{kind}: item {n} not picked up within 10 s")
                    time.sleep(0.0005)
                time.sleep(random.uniform(0.02, 0.3))
        finally:
            watcher.terminate()
            watcher.wait(timeout=30)
            queue.delete_queue()
            factory.close()
        return [float(line) for line in log.read_text().splitlines()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=200)
    # No argparse choices: with nargs="*" it checks the default list as one choice.
    parser.add_argument("kinds", nargs="*", metavar="STORE", help=", ".join(HOW))
    args = parser.parse_args()
    unknown = sorted(set(args.kinds) - set(HOW))
    if unknown:
        parser.error(f"unknown store {', '.join(unknown)}; the stores are {', '.join(HOW)}")
    args.kinds = args.kinds or list(HOW)
    print("| store | how it waits | median ms | p95 ms | max ms |")
    print("|---|---|---|---|---|")
    for kind in args.kinds:
        latencies = sorted(ms * 1000 for ms in measure(kind, args.items))
        p95 = latencies[max(0, round(0.95 * len(latencies)) - 1)]
        print(
            f"| {kind} | {HOW[kind]} | {statistics.median(latencies):.1f} | {p95:.1f} "
            f"| {latencies[-1]:.1f} |"
        )


if __name__ == "__main__":
    main()
