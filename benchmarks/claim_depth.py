"""Claim latency as a queue grows: does a claim cost the same at 1k and 1M items?

Fills one queue to each depth (through the facade's ``create_items``), then
times ``claim_item`` alone, deleting each claimed item outside the timing so
the depth stays put. Prints median, p95 and mean per depth and the ratio of
the deepest to the shallowest.

    python -m benchmarks.claim_depth --url postgresql://postgres@127.0.0.1/test \\
        --depths 1000 1000000 --claims 1000

``python -m benchmarks`` runs it in a process of its own with ``--json``, for
PostgreSQL and Redis.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import bridge

FILL_BATCH = 10_000


def fill(queue: bridge.Queue, depth: int) -> float:
    started = time.perf_counter()
    have = queue.number_of_items()
    while have < depth:
        batch = min(FILL_BATCH, depth - have)
        queue.create_items([{"n": have + i, "pad": "x" * 64} for i in range(batch)])
        have += batch
    return time.perf_counter() - started


def analyze(queue: bridge.Queue) -> None:
    """Refresh the planner's statistics, as autovacuum soon would in production."""
    backend = queue.backend
    engine = getattr(backend, "engine", None)
    if engine is None:
        return
    name = engine.dialect.name
    keyword = {"mysql": "ANALYZE TABLE", "postgresql": "VACUUM ANALYZE"}.get(name, "ANALYZE")
    with engine.begin() as conn:
        conn.exec_driver_sql(f"{keyword} {backend.table.name}")  # type: ignore[attr-defined]


def time_claims(queue: bridge.Queue, claims: int) -> list[float]:
    timings = []
    for _ in range(claims):
        started = time.perf_counter()
        item = queue.claim_item(lease_time=60)
        timings.append(time.perf_counter() - started)
        assert item is not None, "the queue ran dry: raise the depth or lower --claims"
        queue.delete_item(item)
        queue.create_item(item.data)  # keep the depth where it was
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--table", default="bridge_bench_depth")
    parser.add_argument("--depths", type=int, nargs="+", default=[1000, 1_000_000])
    parser.add_argument("--claims", type=int, default=1000)
    parser.add_argument("--json", action="store_true", help="print one JSON line instead")
    args = parser.parse_args()
    options: dict[str, str] = {}
    if args.url.startswith("redis"):
        options = {"key_prefix": args.table}
    elif not args.url.startswith(("sqlite", "memory")):
        options = {"table": args.table}
    factory = bridge.QueueFactory(default={"url": args.url, "options": options})
    queue = factory.get("depth_probe")
    queue.delete_queue()
    medians, rows = {}, []
    if not args.json:
        print(f"{'depth':>10} {'median ms':>10} {'p95 ms':>8} {'mean ms':>8}  (fill s)")
    for depth in sorted(args.depths):
        filled = fill(queue, depth)
        analyze(queue)
        time_claims(queue, min(100, args.claims))  # warm the pool and the caches
        timings = sorted(time_claims(queue, args.claims))
        median = statistics.median(timings) * 1000
        p95 = timings[int(len(timings) * 0.95)] * 1000
        mean = statistics.fmean(timings) * 1000
        medians[depth] = median
        rows.append({"depth": depth, "median_ms": median, "p95_ms": p95, "mean_ms": mean})
        if not args.json:
            print(f"{depth:>10} {median:>10.3f} {p95:>8.3f} {mean:>8.3f}  ({filled:.1f})")
    deepest, shallowest = max(medians), min(medians)
    if args.json:
        print(json.dumps({"rows": rows}))
    else:
        print(
            f"median at {deepest} / median at {shallowest}: "
            f"{medians[deepest] / medians[shallowest]:.2f}x"
        )
    queue.delete_queue()
    factory.close()


if __name__ == "__main__":
    main()
