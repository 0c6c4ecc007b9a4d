"""bridge: Drupal's queue API for Python, over SQL, Redis and Kombu, run by Celery.

>>> import bridge
>>> q = bridge.QueueFactory(default="memory://").get("emails")
>>> item_id = q.create_item({"to": "ada@example.com"})
>>> item = q.claim_item(lease_time=30)
>>> q.delete_item(item)
True
"""

from __future__ import annotations

from bridge.codecs import Codec, JsonCodec
from bridge.contract import Backend, Capabilities
from bridge.errors import (
    BackendError,
    BackendUnavailableError,
    BridgeError,
    ConfigurationError,
    InvalidArgumentError,
    MissingDependencyError,
    PayloadError,
    UnknownBackendError,
    UnknownQueueError,
    UnsupportedOperationError,
)
from bridge.factory import QueueFactory, configure, get_factory, get_queue, get_topic
from bridge.failures import Backoff, HoldItem
from bridge.items import ItemCounts, ItemState, QueueItem, Settlement
from bridge.queue import Queue
from bridge.runner import Summary, process_queue, run_cron
from bridge.topics import Topic, TopicMessage, TopicStats
from bridge.workers import (
    DelayedRequeue,
    QueueWorker,
    Requeue,
    SuspendQueue,
    current_item,
    get_worker,
    queue_worker,
    registered_workers,
)

__all__ = [
    "Backend",
    "BackendError",
    "BackendUnavailableError",
    "Backoff",
    "BridgeError",
    "Capabilities",
    "Codec",
    "ConfigurationError",
    "DelayedRequeue",
    "HoldItem",
    "InvalidArgumentError",
    "ItemCounts",
    "ItemState",
    "JsonCodec",
    "MissingDependencyError",
    "PayloadError",
    "Queue",
    "QueueFactory",
    "QueueItem",
    "QueueWorker",
    "Requeue",
    "Settlement",
    "Summary",
    "SuspendQueue",
    "Topic",
    "TopicMessage",
    "TopicStats",
    "UnknownBackendError",
    "UnknownQueueError",
    "UnsupportedOperationError",
    "configure",
    "current_item",
    "get_factory",
    "get_queue",
    "get_topic",
    "get_worker",
    "process_queue",
    "queue_worker",
    "registered_workers",
    "run_cron",
]
