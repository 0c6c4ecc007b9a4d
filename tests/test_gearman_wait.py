"""``bridge queue watch`` on gearmand: the watcher sleeps as a Gearman worker
(``PRE_SLEEP``) and gearmand's ``NOOP`` wakes it, instead of a 0.25 s sleep.

The backend's wait is tested here (what wakes it, what does not); the
watcher as a subprocess on gearmand is in ``tests/test_watch.py``.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator

import pytest

import bridge
from bridge.backends.gearman import GearmanBackend

from conftest import SERVICE_URLS

pytestmark = pytest.mark.service("gearman")


@pytest.fixture
def gearman() -> Iterator[bridge.QueueFactory]:
    factory = bridge.QueueFactory(default=SERVICE_URLS["gearman"])
    yield factory
    factory.close()


def _name() -> str:
    return f"gw{uuid.uuid4().hex[:10]}"


def _backend(queue: bridge.Queue) -> GearmanBackend:
    backend = queue.backend
    assert isinstance(backend, GearmanBackend)
    return backend


def test_the_wait_ends_when_a_job_is_submitted_not_at_its_timeout(
    gearman: bridge.QueueFactory,
) -> None:
    queue, other = gearman.get(_name()), gearman.get(_name())
    backend = _backend(queue)
    assert backend.wait_for_items([queue.name], 2.0) is True  # the first call: listening now
    started = time.monotonic()
    assert backend.wait_for_items([queue.name], 0.3) is False  # nothing came
    assert 0.25 < time.monotonic() - started < 1.0
    other.create_item("not watched")  # another queue's job wakes nobody here
    assert backend.wait_for_items([queue.name], 0.3) is False

    timer = threading.Timer(0.3, lambda: queue.create_item("new"))
    timer.start()
    started = time.monotonic()
    assert backend.wait_for_items([queue.name], 5.0) is True
    waited = time.monotonic() - started
    timer.join()
    assert 0.2 < waited < 1.0, waited  # woken by the job, not the 5 s timeout
    item = queue.claim_item(lease_time=30)
    assert item is not None
    assert (item.data, item.attempts) == ("new", 1)  # the wait claimed nothing
    assert queue.delete_item(item)
    other.delete_queue()


def test_a_job_waiting_already_ends_the_wait_at_once_at_any_priority(
    gearman: bridge.QueueFactory,
) -> None:
    queue = gearman.get(_name())
    backend = _backend(queue)
    queue.create_item("high", priority=7)  # its own function, NAME~7
    assert backend.wait_for_items([queue.name], 2.0) is True
    started = time.monotonic()
    assert backend.wait_for_items([queue.name], 2.0) is True
    assert time.monotonic() - started < 0.5
    assert queue.counts().ready == 1  # a wake-up takes nothing
    queue.delete_queue()


def test_a_lost_gearmand_connection_is_backend_unavailable_and_the_next_wait_listens_again(
    gearman: bridge.QueueFactory,
) -> None:
    queue = gearman.get(_name())
    backend = _backend(queue)
    assert backend.wait_for_items([queue.name], 1.0) is True
    # As when gearmand restarts: the connection ends under the sleeping waiter.
    backend._sleeper._connection._sock.shutdown(socket.SHUT_RDWR)  # type: ignore[union-attr]
    with pytest.raises(bridge.BackendUnavailableError):
        backend.wait_for_items([queue.name], 1.0)
    assert backend.wait_for_items([queue.name], 1.0) is True  # a new connection, listening
