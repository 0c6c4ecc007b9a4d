"""Workers for ``bridge --import watch_workers queue watch`` in tests/test_watch.py.

The store comes from ``WATCH_TEST_SPEC`` (a QueueFactory ``default`` as
JSON); the queues are ``<WATCH_TEST_PREFIX>_a`` and ``_b``. Each worker
start appends ``<pid> <time> <item id> <data>`` to ``WATCH_TEST_LOG``, so
the test sees when and where each item began; an item ``{"sleep": s}``
takes s seconds, for a signal to arrive while it runs.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import bridge

bridge.configure(json.loads(os.environ["WATCH_TEST_SPEC"]), queues={})
PREFIX = os.environ.get("WATCH_TEST_PREFIX", "watch")


def _log(data: Any) -> None:
    item = bridge.current_item()
    line = f"{os.getpid()} {time.time():.6f} {item.item_id if item else '-'} {json.dumps(data)}\n"
    with open(os.environ["WATCH_TEST_LOG"], "a") as log:
        log.write(line)


@bridge.queue_worker(f"{PREFIX}_a", lease_time=30)
def work_a(data: Any) -> None:
    _log(data)
    if isinstance(data, dict) and "sleep" in data:
        time.sleep(data["sleep"])


@bridge.queue_worker(f"{PREFIX}_b", lease_time=30)
def work_b(data: Any) -> None:
    _log(data)
