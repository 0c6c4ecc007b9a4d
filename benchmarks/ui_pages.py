"""The Queue UI's pages on a big PostgreSQL queue: how long each takes to render.

Fills queue ``big`` with ``--items`` ready items (one ``INSERT ... SELECT
generate_series`` in bridge's table format, so a million take seconds, not
minutes), leases, delays and holds a few hundred of them, adds three small
queues, ``VACUUM ANALYZE``s the table, then serves ``bridge.ui.create_app``
with uvicorn in a thread of this process and times, over one keep-alive
connection from the standard library's ``http.client``, each page the
operator opens: the queues page, ``/queues.json`` (what that page polls),
the big queue's first page of items, a page halfway into it (through
the cursor of ``browse``), its items filtered to the held ones, its held
items page and one item. Each page is fetched a
few times first (warm-up), then ``--requests`` times; the table gives the
median and the 95th percentile, in milliseconds, as the client saw them.

    python -m benchmarks.ui_pages                     # 1,000,000 items
    python -m benchmarks.ui_pages --items 10000       # a quick run

The table lives in the benchmark database (``bridge_bench``, created when
missing; ``BRIDGE_BENCH_POSTGRESQL`` moves it), in a table of its own
(``--table``), dropped and filled again on each run unless ``--reuse``
finds it already holding ``--items`` items.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import socket
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import bridge
from benchmarks.machine import _cpu, _postgresql
from benchmarks.services import Services

BIG = "big"
SMALL = {"emails": 200, "webhooks": 50, "reports": 5}
LEASED = 200
DELAYED = 100
HELD = 50
DEEP_FRACTION = 0.5
"""Where the deep page starts: this far into the big queue."""
WALK_CHUNK = 20_000
"""Items per ``browse`` call while walking to the deep page's cursor (setup only)."""


@dataclass
class Timing:
    page: str
    path: str
    median_ms: float
    p95_ms: float
    size: int

    def row(self) -> str:
        return (
            f"| {self.page} | `{self.path[:40]}` | {self.median_ms:.1f} | {self.p95_ms:.1f} "
            f"| {self.size:,} |"
        )


# -- the store ---------------------------------------------------------------------------


def fill_big(url: str, table: str, items: int) -> float:
    """``items`` ready items in queue ``BIG``, in one statement; seconds taken.

    The table must exist (bridge makes it); the rows are what ``create_items``
    would write: compact JSON, ``created`` a millisecond apart in the past.
    """
    import psycopg

    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            f"""
            INSERT INTO {table} (name, data, created, expire, priority, attempts, state)
            SELECT %(queue)s,
                   convert_to('{{"n":' || g || ',"pad":"' || repeat('x', 64) || '"}}', 'UTF8'),
                   extract(epoch from statement_timestamp()) - (%(items)s - g) * 0.001,
                   0, 0, 0, 'ready'
            FROM generate_series(1, %(items)s) AS g
            """,
            {"queue": BIG, "items": items},
        )
    return time.perf_counter() - started


def shape(factory: bridge.QueueFactory) -> None:
    """Leases, delays, held items with errors, and the small queues."""
    big = factory.get(BIG)
    big.claim_items(LEASED, lease_time=3600)
    big.create_items([{"later": n} for n in range(DELAYED)], delay=3600)
    for n, item in enumerate(big.claim_items(HELD, lease_time=60)):
        error = (
            f"ConnectionError: host {n} refused\n"
            "Traceback (most recent call last):\n"
            '  File "/srv/app/workers.py", line 12, in fetch\n'
            "    raise ConnectionError(...)\n"
        )
        big.hold_item(item, reason="attempts exhausted", error=error)
    for name, count in SMALL.items():
        factory.get(name).create_items([{"queue": name, "n": n} for n in range(count)])


def sql(url: str, statement: str) -> Any:
    """One statement outside a transaction (VACUUM needs that); its first row, if any."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.execute(statement)
        return cursor.fetchone() if cursor.description else None


def big_items(url: str, table: str) -> int:
    """Items in queue ``BIG`` now (0 without the table)."""
    if sql(url, f"SELECT to_regclass('{table}')")[0] is None:
        return 0
    return int(sql(url, f"SELECT count(*) FROM {table} WHERE name = '{BIG}'")[0])


def deep_cursor(queue: bridge.Queue, depth: int) -> str | None:
    """The ``browse`` cursor after the first ``depth`` items; None without ``browse``."""
    if not queue.capabilities.browse:
        return None
    after: str | None = None
    walked = 0
    while walked < depth:
        page = queue.browse(after=after, limit=min(WALK_CHUNK, depth - walked))
        walked += len(page.items)
        after = page.next_after
        if after is None:
            break
    return after


# -- serving and timing ----------------------------------------------------------------


@contextlib.contextmanager
def served(app: Any) -> Iterator[tuple[str, int]]:
    """The app on uvicorn at 127.0.0.1 and a free port, in a thread; yields (host, port)."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        yield "127.0.0.1", port
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def fetch(conn: http.client.HTTPConnection, path: str) -> tuple[float, int]:
    """One GET on the kept-alive connection: (seconds until the whole body was read, bytes)."""
    started = time.perf_counter()
    conn.request("GET", path)
    answer = conn.getresponse()
    body = answer.read()
    elapsed = time.perf_counter() - started
    if answer.status != 200:
        raise RuntimeError(f"GET {path}: {answer.status} {body[:300]!r}")
    return elapsed, len(body)


def time_page(
    conn: http.client.HTTPConnection, page: str, path: str, warmup: int, requests: int
) -> Timing:
    size = 0
    for _ in range(warmup):
        _, size = fetch(conn, path)
    seconds = [fetch(conn, path)[0] for _ in range(requests)]
    ordered = sorted(seconds)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return Timing(page, path, statistics.median(seconds) * 1000, p95 * 1000, size)


def first_item_path(conn: http.client.HTTPConnection) -> str:
    """The item page of the big queue's first listed item, read from its first page."""
    conn.request("GET", f"/queues/{BIG}")
    body = conn.getresponse().read().decode()
    marker = 'data-testid="item-row-'
    at = body.find(marker)
    if at < 0:
        raise RuntimeError(f"no item row on /queues/{BIG}")
    item_id = body[at + len(marker) : body.index('"', at + len(marker))]
    return f"/queues/{BIG}/items/{item_id}"


def measure(
    factory: bridge.QueueFactory, cursor: str | None, warmup: int, requests: int
) -> list[Timing]:
    from bridge.ui import create_app

    pages = [
        ("queues page", "/"),
        ("queues.json (the page's poll)", "/queues.json"),
        ("a queue's first items page", f"/queues/{BIG}"),
    ]
    if cursor is not None:
        pages.append(("a page halfway in (cursor)", f"/queues/{BIG}?after={quote(cursor)}"))
    pages.append(("its held items, filtered", f"/queues/{BIG}?state=held"))
    pages.append(("held items page", f"/queues/{BIG}/held"))
    with served(create_app(factory=factory)) as (host, port):
        conn = http.client.HTTPConnection(host, port, timeout=120)
        pages.append(("one item", first_item_path(conn)))
        timings = [time_page(conn, page, path, warmup, requests) for page, path in pages]
        conn.close()
    return timings


# -- the run ------------------------------------------------------------------------------


def prepare(url: str, table: str, items: int, reuse: bool) -> str:
    """Fill the table (unless ``reuse`` finds it filled); a line saying what was done."""
    if reuse and big_items(url, table) >= items:
        return f"reused {table}"
    sql(url, f"DROP TABLE IF EXISTS {table}")
    factory = bridge.QueueFactory(default={"url": url, "options": {"table": table}})
    try:
        factory.get(BIG).create_queue()
        seconds = fill_big(url, table, items)
        shape(factory)
    finally:
        factory.close()
    started = time.perf_counter()
    sql(url, f"VACUUM ANALYZE {table}")
    vacuum = time.perf_counter() - started
    return f"filled {items:,} items in {seconds:.1f} s, VACUUM ANALYZE in {vacuum:.1f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=1_000_000, help="items in the big queue")
    parser.add_argument("--table", default="bridge_bench_ui")
    parser.add_argument("--requests", type=int, default=20, help="timed requests per page")
    parser.add_argument("--warmup", type=int, default=3, help="untimed requests per page first")
    parser.add_argument("--reuse", action="store_true", help="keep a table already filled")
    parser.add_argument("--keep", action="store_true", help="leave the table after the run")
    parser.add_argument("--json", action="store_true", help="print one JSON line instead")
    args = parser.parse_args()

    services = Services(Path(tempfile.gettempdir()))
    services.prepare("postgresql")
    url = services.url("postgresql")
    setup = prepare(url, args.table, args.items, args.reuse)
    factory = bridge.QueueFactory(default={"url": url, "options": {"table": args.table}})
    try:
        started = time.perf_counter()
        cursor = deep_cursor(factory.get(BIG), int(args.items * DEEP_FRACTION))
        walk = time.perf_counter() - started
        timings = measure(factory, cursor, args.warmup, args.requests)
        counts = factory.get(BIG).counts()
    finally:
        factory.close()
        if not args.keep:
            sql(url, f"DROP TABLE IF EXISTS {args.table}")

    if args.json:
        print(json.dumps({"items": args.items, "timings": [t.__dict__ for t in timings]}))
        return
    print(f"{_cpu()}, {os.cpu_count()} cores; {_postgresql(url)}")
    print(f"{setup}; walked to the deep cursor in {walk:.1f} s")
    print(f"queue {BIG!r} on {urlsplit(url).hostname}: {counts}")
    print(f"median and p95 of {args.requests} requests after {args.warmup} warm-up:\n")
    print("| page | path | median ms | p95 ms | bytes |")
    print("|---|---|---|---|---|")
    for timing in timings:
        print(timing.row())
    if cursor is None:
        print("\n(no deep page: this backend has no browse; the app shows peek instead)")


if __name__ == "__main__":
    main()
