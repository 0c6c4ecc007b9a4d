"""Held items on beanstalkd: buried jobs, as far as beanstalkd shows them.

``hold_item`` is ``bury``, ``kick`` is ``kick-job``. beanstalkd keeps a
tube's buried jobs in the order they were buried but shows only the first
(``peek-buried``); it keeps no reason, error or time of a bury, and a kick
leaves the job's reserve count (its ``attempts``) as it was
(``held_details`` and ``kick_resets_attempts`` False). Every operation
here therefore starts from ``peek-buried``: kicking and deleting take the
oldest buried job, one at a time, exactly; a listing shows it first, then
the tube's other buried jobs found by walking job ids around it.

Never beanstalkd's ``kick N``: on a tube without buried jobs it kicks
delayed ones, and another client may kick the last buried job between a
look and the command.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bridge.backends import beanstalk_looks as looks
from bridge.items import StoredItem


def held_jobs(g: Any, client: Any, tube: str, limit: int, scan: int) -> list[StoredItem]:
    """Up to ``limit`` buried jobs of the used ``tube``: the oldest buried, then by id.

    The first is exact (``peek-buried``). The others are found by
    ``stats-job`` on the ids on either side of it, nearest first, at most
    ``scan`` ids, stopping once ``stats-tube`` says all are found: a job
    buried later may have an older id, so both sides are walked. Their
    order is the order of creation, not of burial (beanstalkd does not say).
    """
    if limit <= 0:
        return []
    try:
        first = client.peek_buried()
    except g.NotFoundError:
        return []
    shown = looks.look(g, client, first.id)
    if shown is None:
        return []  # kicked or deleted since the peek
    buried = _buried_total(g, client, tube)
    others: list[StoredItem] = []
    for job_id in _around(first.id, scan):
        if len(others) + 1 >= buried:
            break
        try:
            stats = client.stats_job(job_id)
        except g.NotFoundError:
            continue
        if stats["tube"] == tube and stats["state"] == "buried":
            stored = looks.look(g, client, job_id, stats)
            if stored is not None:
                others.append(stored)
    others.sort(key=lambda item: item.item_id)
    return [_held(shown), *(_held(item) for item in others)][:limit]


def each_buried(g: Any, client: Any, limit: int | None, act: Callable[[int], int]) -> int:
    """``act`` on the used tube's oldest buried job, then the next, up to ``limit``.

    ``act`` answers 1 if done, 0 if the job was gone (another client kicked
    or deleted it meanwhile); the loop then looks again.
    """
    done = 0
    while limit is None or done < limit:
        try:
            job = client.peek_buried()
        except g.NotFoundError:
            break
        done += act(job.id)
    return done


def is_buried_in(g: Any, client: Any, job_id: int, tube: str) -> bool:
    """Whether job ``job_id`` is buried in ``tube`` (``stats-job``)."""
    try:
        stats = client.stats_job(job_id)
    except g.NotFoundError:
        return False
    return bool(stats["tube"] == tube and stats["state"] == "buried")


def _held(item: StoredItem) -> StoredItem:
    # Held, with no reason, error or time: beanstalkd keeps none of them.
    return item._replace(hold_reason="")


def _buried_total(g: Any, client: Any, tube: str) -> int:
    try:
        return int(client.stats_tube(tube)["current-jobs-buried"])
    except g.NotFoundError:
        return 0


def _around(center: int, scan: int) -> list[int]:
    """Job ids on either side of ``center``, nearest first, ``scan`` in all (ids start at 1)."""
    ids: list[int] = []
    step = 1
    while len(ids) < scan:
        ids.append(center + step)
        if center - step >= 1 and len(ids) < scan:
            ids.append(center - step)
        step += 1
    return ids
