"""Looking at beanstalkd jobs without reserving them: ``peek`` and ``stats-job``.

beanstalkd lists no jobs. It shows one job by id (``peek``), and the next
ready, delayed or buried job of a tube; everything else here is built from
those. A look never reserves, so it never counts as an attempt.
"""

from __future__ import annotations

import time
from typing import Any

from bridge.backends import beanstalk_wire as wire
from bridge.items import StoredItem


def look(g: Any, client: Any, job_id: int, stats: Any = None) -> StoredItem | None:
    """A job as a listing shows it (no token, expire 0); None if it is gone."""
    try:
        stats = stats or client.stats_job(job_id)
        body = client.peek(job_id).body
    except g.NotFoundError:
        return None
    created, payload = wire.unwrap(body)
    if created is None:
        created = time.time() - stats["age"]
    priority = wire.from_pri(stats["pri"])
    return StoredItem(job_id, payload, created, 0.0, stats["reserves"], priority, "")


def reserved(job: Any, stats: Any, started: float) -> StoredItem:
    """A job just reserved, before a claim gives it a token and a lease.

    ``expire`` is the end of its ttr (beanstalkd's backstop, the longest any
    lease on it may last); ``attempts`` is its reserve count, this one included.
    """
    created, payload = wire.unwrap(job.body)
    if created is None:
        created = started - stats["age"]
    priority = wire.from_pri(stats["pri"])
    expire = started + float(stats["ttr"])
    return StoredItem(job.id, payload, created, expire, stats["reserves"], priority, "")


def ready_jobs(g: Any, client: Any, tube: str, wanted: int, scan: int) -> list[StoredItem]:
    """Up to ``wanted`` ready jobs of the used ``tube``, in claim order, as far as seen.

    The first is exact (``peek-ready``); the rest are found by walking job
    ids up from it, at most ``scan`` ids, ``stats-job`` on each: ids grow
    with creation, so the walk sees the jobs created after the first, but not
    older jobs of a lower priority, nor those past the scan.
    """
    try:
        first = client.peek_ready()
    except g.NotFoundError:
        return []
    found: list[StoredItem] = []
    for job_id in range(first.id, first.id + scan + 1):
        if len(found) == wanted:
            break
        try:
            stats = client.stats_job(job_id)
        except g.NotFoundError:
            continue
        if stats["tube"] == tube and stats["state"] == "ready":
            stored = look(g, client, job_id, stats)
            if stored is not None:
                found.append(stored)
    found.sort(key=lambda item: (-item.priority, item.item_id))
    return found


def next_ready_age(g: Any, client: Any) -> float | None:
    """Seconds since the next ready job of the used tube was created; None if none is ready."""
    try:
        job = client.peek_ready()
    except g.NotFoundError:
        return None
    created, _ = wire.unwrap(job.body)
    if created is None:
        return float(client.stats_job(job.id)["age"])
    return max(time.time() - created, 0.0)


def tube_totals(g: Any, client: Any) -> dict[str, int]:
    """Every tube on the server with jobs in it, and how many (``list-tubes``, ``stats-tube``)."""
    totals: dict[str, int] = {}
    for tube in client.tubes():
        try:
            stats = client.stats_tube(tube)
        except g.NotFoundError:
            continue  # gone since the listing
        total = sum(stats[f"current-jobs-{state}"] for state in STATES)
        if total:
            totals[tube] = total
    return totals


STATES = ("ready", "reserved", "delayed", "buried")
