"""The Redis backend on one server and on a Redis Cluster, side by side, interleaved.

For each URL, in turns (so that the machine's load falls on both alike):

- claim latency: one queue kept 1,000 items deep, ``claim_item`` timed
  alone (``benchmarks.claim_depth``'s method: the claimed item is deleted
  and created again outside the timing);
- drain: ``--items`` items created untimed, then drained by one client as
  ``benchmarks/systems/bridge_system.py`` drains, at batch 1 (claim, then
  ``settle_and_claim`` deleting each item and claiming the next) and batch
  100 (``claim_items`` / ``delete_items``); items per second.

Next to the wall times, which a loaded machine spreads, the CPU time of
this (client) process and the servers' own time in scripts (``INFO
commandstats``, summed over the masters), per call or item: those barely
move with the load. Give each URL a server of its own: a shared one's
commandstats count every client's scripts.

One queue lives on one master, so a cluster does not make one queue faster:
what it adds is per call (redis-py's cluster client hashes each call's
first key and picks the node). A cluster spreads many queues over its masters.

    python -m benchmarks.redis_cluster --items 20000 --rounds 3 \\
        --url redis://127.0.0.1:6379/9 \\
        --url redis+cluster://127.0.0.1:7000,127.0.0.1:7001,127.0.0.1:7002
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict

from redis.cluster import RedisCluster

import bridge
from benchmarks.claim_depth import fill, time_claims
from bridge import Settlement
from bridge.backends.redis_cluster import ClusterClient

LEASE = 60.0
PAYLOAD = {"n": 0, "pad": "x" * 64}


def server_micros(queue: bridge.Queue) -> float:
    """Microseconds the store's masters spent in scripts so far (``INFO commandstats``)."""
    client = queue.backend.client  # type: ignore[attr-defined]
    if isinstance(client, ClusterClient):
        replies = client.cluster().info("commandstats", target_nodes=RedisCluster.PRIMARIES)
        stats = list(replies.values())
    else:
        stats = [client.info("commandstats")]
    return float(sum(stat.get("cmdstat_evalsha", {}).get("usec", 0) for stat in stats))


class Meter:
    """Wall time, this process's CPU time and the servers' script time of what it wraps."""

    def __init__(self, queue: bridge.Queue) -> None:
        self.queue = queue

    def __enter__(self) -> Meter:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        self.server = server_micros(self.queue)
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu
        self.server = server_micros(self.queue) - self.server


def drain(queue: bridge.Queue, items: int, batch: int) -> Meter:
    """Drain ``items`` freshly created ones, measured."""
    queue.delete_queue()
    for start in range(0, items, 1000):
        queue.create_items([PAYLOAD] * min(1000, items - start))
    done = 0
    with Meter(queue) as meter:
        if batch == 1:
            claimed = queue.claim_items(1, LEASE)
            while claimed:
                _, claimed = queue.settle_and_claim(Settlement.delete(claimed[0]), 1, LEASE)
                done += 1
        else:
            while claimed := queue.claim_items(batch, LEASE):
                queue.delete_items(claimed)
                done += len(claimed)
    assert done == items, f"drained {done} of {items}"
    return meter


def measure(url: str, items: int, claims: int) -> dict[str, float]:
    factory = bridge.QueueFactory(default={"url": url, "options": {"key_prefix": "bench_cluster"}})
    queue = factory.get("probe")
    try:
        queue.delete_queue()
        fill(queue, 1000)
        time_claims(queue, 100)  # warm: connections, scripts
        with Meter(queue) as meter:
            timings = sorted(time_claims(queue, claims))
        # Each timed claim comes with an untimed delete and create: a third
        # of the CPU and server time is the claim's, roughly; the server's
        # own figure for the claim alone is in ``INFO commandstats``.
        figures = {
            "claim median ms": statistics.median(timings) * 1000,
            "claim p95 ms": timings[int(len(timings) * 0.95)] * 1000,
            "claim+delete+create client us": meter.cpu / claims * 1e6,
            "claim+delete+create server us": meter.server / claims,
        }
        for batch in (1, 100):
            meter = drain(queue, items, batch)
            figures[f"drain b{batch} items/s"] = items / meter.wall
            figures[f"drain b{batch} client us/item"] = meter.cpu / items * 1e6
            figures[f"drain b{batch} server us/item"] = meter.server / items
        return figures
    finally:
        queue.delete_queue()
        factory.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", action="append", required=True, help="repeat: one per store")
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--claims", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    results: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for _ in range(args.rounds):
        for url in args.url:
            for key, value in measure(url, args.items, args.claims).items():
                results[url][key].append(value)
    for url, figures in results.items():
        print(url)
        for key, values in figures.items():
            shown = " ".join(f"{value:.3f}" if value < 100 else f"{value:.0f}" for value in values)
            print(f"  {key:<32} median {statistics.median(values):>9.3f}   runs: {shown}")


if __name__ == "__main__":
    main()
