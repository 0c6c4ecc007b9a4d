"""The Drupal layout is reached by its URL scheme, ``drupal+<SQL URL>``, with the php codec."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import bridge
from bridge.backends import backend_class
from bridge.backends.sql.drupal import DrupalQueueBackend
from bridge.errors import ConfigurationError, UnsupportedOperationError


def test_the_backend_is_found_by_its_scheme() -> None:
    for url in ("drupal+sqlite:///x.sqlite", "drupal+postgresql://u@h/db", "drupal+mysql://h/d"):
        assert backend_class(url) is DrupalQueueBackend


def test_a_factory_serves_drupal_queues(tmp_path: Path) -> None:
    factory = bridge.QueueFactory(
        default={
            "url": f"drupal+sqlite:///{tmp_path}/drupal.sqlite",
            "options": {"codec": "php", "max_attempts": None, "table": "queue"},
        }
    )
    queue = factory.get("aggregator_feeds")
    queue.create_item({"fid": 12})
    item = queue.claim_item(lease_time=30)
    assert item is not None
    assert item.data == {"fid": 12}
    assert queue.delete_item(item)
    factory.close()


@pytest.mark.usefixtures("empty_registry")
def test_a_pass_runs_php_created_items_and_refuses_max_attempts(tmp_path: Path) -> None:
    factory = bridge.QueueFactory(
        default={"url": f"drupal+sqlite:///{tmp_path}/drupal.sqlite", "options": {"codec": "php"}}
    )
    queue = factory.get("feeds")
    queue.create_items([{"fid": 1}, {"fid": 2}])
    seen: list[Any] = []
    bridge.queue_worker("feeds", cron_time=5)(seen.append)
    # The default failure policy counts attempts, which the table cannot hold.
    with pytest.raises(UnsupportedOperationError, match="max_attempts=None"):
        bridge.process_queue("feeds", factory=factory)
    assert seen == []
    factory.close()
    factory = bridge.QueueFactory(
        default={
            "url": f"drupal+sqlite:///{tmp_path}/drupal.sqlite",
            "options": {"codec": "php", "max_attempts": None},
        }
    )
    summary = bridge.process_queue("feeds", factory=factory)
    assert seen == [{"fid": 1}, {"fid": 2}]
    assert summary.processed == 2
    assert factory.get("feeds").number_of_items() == 0
    factory.close()


def test_an_unknown_database_is_refused() -> None:
    with pytest.raises(ConfigurationError):
        DrupalQueueBackend("sqlite:///no-prefix.sqlite")
