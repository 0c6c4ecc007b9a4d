"""Housekeeping for Kombu's ``filesystem://`` broker, so the embedded default stays bounded.

Read task messages are deleted (``store_processed`` False). What can still
grow: a Flower or ``celery events`` killed before it cancels its consumer
leaves its binding in the control folder, and every worker then writes each
event into the data folder for a reader that is gone; the same happens to
the remote-control queues of killed workers and ``celery inspect`` clients.
:func:`clean_filesystem_broker` (the ``bridge.clean_broker`` task, on beat
every minute) removes those queues' messages and bindings.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

STALE_AFTER = 300.0
"""Seconds an event or reply message may wait unread before its reader counts as gone."""


def clean_filesystem_broker(
    options: Mapping[str, Any], stale_after: float = STALE_AFTER, now: float | None = None
) -> dict[str, int]:
    """Delete event and remote-control queues whose oldest message is ``stale_after`` s old.

    A Flower or ``celery events`` killed before it cancels its consumer leaves
    its binding behind, and workers then write every event into the folder
    for nobody. Only those queues (``celeryev.*``, ``*.pidbox``) are touched.
    """
    data, control = Path(options["data_folder_in"]), Path(options["control_folder"])
    now = time.time() if now is None else now
    files: dict[str, list[Path]] = {}
    stale: set[str] = set()
    for path in data.glob("*.msg"):
        queue = path.name.partition(".")[2].removesuffix(".msg")
        if queue.startswith("celeryev.") or queue.endswith(".pidbox"):
            files.setdefault(queue, []).append(path)
            try:
                if now - path.stat().st_mtime > stale_after:
                    stale.add(queue)
            except FileNotFoundError:
                pass
    messages = 0
    for path in (path for queue in stale for path in files[queue]):
        path.unlink(missing_ok=True)
        messages += 1
    bindings = sum(_unbind(table, stale) for table in control.glob("*.exchange")) if stale else 0
    if stale:
        logger.info(
            "Dropped %d unread messages and %d bindings of %d gone receivers",
            messages,
            bindings,
            len(stale),
        )
    return {"queues": len(stale), "messages": messages, "bindings": bindings}


def _unbind(table: Path, queues: set[str]) -> int:
    """Remove the queues' bindings from one exchange table, locked as Kombu locks it."""
    import fcntl  # POSIX only, as Kombu's own lock there

    with table.open("rb+", buffering=0) as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            rows = json.loads(handle.read() or b"[]")
            kept = [row for row in rows if row[2] not in queues]
            if len(kept) != len(rows):
                handle.seek(0)
                handle.write(json.dumps(kept).encode())
                handle.truncate()
            return len(rows) - len(kept)
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
