"""Which SQS queues stand for a bridge queue, and how they are set up.

Each bridge queue is one standard SQS queue plus a companion for its held
items, ``<queue>-held``. A name of letters, digits, ``-`` and ``_`` (with
the ``queue_prefix``, at most 80 characters) is used as is; any other, and
any ending in ``-held`` (so that no queue can be another's held queue),
becomes ``<prefix>bridge-<sha256 of the name, 40 hex digits>``, tagged
``bridge-queue=<name>``. A held queue's name is the queue's plus ``-held``,
or ``<prefix>bridge-<sha256>-held`` when that would pass 80 characters.

The held queue keeps messages 14 days, SQS's longest retention, and is the
queue's ``RedrivePolicy`` dead-letter target, so that SQS's own redrive and
bridge's holds land in one place. Its ``maxReceiveCount`` is 1000, SQS's
highest, so that it never fires before bridge's own ``max_attempts``:
bridge counts attempts itself, because peeks are receives too and a kick
cannot reset SQS's count. A RedrivePolicy someone set to another queue is
left alone, with a warning.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterator
from typing import Any

from bridge.backends.sqs_client import NO_QUEUE, SqsClient, code

log = logging.getLogger(__name__)

_PLAIN_NAME = re.compile(r"[A-Za-z0-9_-]{1,80}")
_MAX_NAME = 80
_NAME_TAG = "bridge-queue"
HELD_SUFFIX = "-held"
HELD_RETENTION = 1_209_600
"""14 days, SQS's longest retention: how long a held message lasts unless sent again."""
REDRIVE_RECEIVES = 1000
"""The ``maxReceiveCount`` bridge sets: SQS's highest."""
_EXISTS = {"QueueAlreadyExists", "QueueNameExists"}


class SqsLayout:
    """The URLs of each bridge queue's SQS queues, looked up or created once per process."""

    __slots__ = ("_prefix", "_refused", "client", "held_urls", "urls")

    def __init__(self, client: SqsClient, prefix: str) -> None:
        self.client = client
        self._prefix = prefix
        self.urls: dict[str, str] = {}
        self.held_urls: dict[str, str] = {}
        self._refused: set[str] = set()
        client.on_missing_queue = self.forget

    def forget(self) -> None:
        """Look every URL up again: a queue was deleted behind this process's back."""
        self.urls.clear()
        self.held_urls.clear()
        self._refused.clear()

    def queue_url(self, name: str) -> str | None:
        """The URL of queue ``name``; None if it does not exist."""
        if name not in self.urls:
            found = self._lookup(self._sqs_name(name))
            if found is None:
                return None
            self.urls[name] = found
        return self.urls[name]

    def ensure_queue(self, name: str) -> str:
        """The URL of queue ``name``, created first (with its held queue) if need be.

        The held queue is set up once per process; where SQS refuses (a role
        allowed to create queues but not to set their attributes), items are
        still created, and the first hold tries again and says why it cannot.
        """
        if name not in self.urls:
            sqs_name = self._sqs_name(name)
            tags = {} if sqs_name == self._prefix + name else {"tags": {_NAME_TAG: name}}
            created = self._sqs().create_queue(QueueName=sqs_name, **tags)
            self.urls[name] = str(created["QueueUrl"])
        if name not in self.held_urls and name not in self._refused:
            try:
                self._set_up_holding(name, self.urls[name])
            except self.client.errors.ClientError as exc:
                self._refused.add(name)
                log.warning("queue %r on %s: no held queue yet: %s", name, self.client.url, exc)
        return self.urls[name]

    def ensure_held(self, name: str) -> str:
        """The URL of queue ``name``'s held queue, set up first if need be."""
        queue_url = self.ensure_queue(name)  # sets the held queue up, unless SQS refused
        if name not in self.held_urls:
            self._set_up_holding(name, queue_url)  # again, to raise why it cannot
        return self.held_urls[name]

    def held_url(self, name: str) -> str | None:
        """The URL of queue ``name``'s held queue; None if it has none."""
        if name not in self.held_urls:
            found = self._lookup(self._held_name(name))
            if found is None:
                return None
            self.held_urls[name] = found
        return self.held_urls[name]

    def queues(self) -> Iterator[str]:
        """The bridge names of the queues under this prefix (held queues left out)."""
        pages = self._sqs().get_paginator("list_queues").paginate(QueueNamePrefix=self._prefix)
        for queue_url in (url for page in pages for url in page.get("QueueUrls", [])):
            sqs_name = queue_url.rstrip("/").rsplit("/", 1)[-1]
            if sqs_name.endswith(HELD_SUFFIX):
                continue
            name = sqs_name[len(self._prefix) :]
            if sqs_name.startswith(f"{self._prefix}bridge-"):
                tags = self._sqs().list_queue_tags(QueueUrl=queue_url).get("Tags", {})
                name = str(tags.get(_NAME_TAG, name))
            self.urls.setdefault(name, queue_url)
            yield name

    def tag(self, queue_url: str, key: str) -> float:
        """A number kept as a tag of the queue; 0 when it has none."""
        tags = self._sqs().list_queue_tags(QueueUrl=queue_url).get("Tags", {})
        try:
            return float(tags.get(key, 0))
        except ValueError:
            return 0.0

    def set_tag(self, queue_url: str, key: str, value: float) -> None:
        self._sqs().tag_queue(QueueUrl=queue_url, Tags={key: f"{value:.0f}"})

    def _set_up_holding(self, name: str, queue_url: str) -> None:
        """Create the held queue and make it the queue's dead-letter target."""
        held_name = self._held_name(name)
        sqs = self._sqs()
        try:
            held_url = str(
                sqs.create_queue(
                    QueueName=held_name,
                    Attributes={"MessageRetentionPeriod": str(HELD_RETENTION)},
                )["QueueUrl"]
            )
        except self.client.errors.ClientError as exc:
            if code(exc) not in _EXISTS:  # made by hand, with other attributes: use it
                raise
            held_url = str(sqs.get_queue_url(QueueName=held_name)["QueueUrl"])
        held_arn = self._attributes(held_url, "QueueArn").get("QueueArn")
        policy = self._attributes(queue_url, "RedrivePolicy").get("RedrivePolicy")
        if not policy:
            redrive = {"deadLetterTargetArn": held_arn, "maxReceiveCount": REDRIVE_RECEIVES}
            sqs.set_queue_attributes(
                QueueUrl=queue_url, Attributes={"RedrivePolicy": json.dumps(redrive)}
            )
        elif _target(policy) != held_arn:
            log.warning(
                "queue %r on %s has a RedrivePolicy to another queue: what SQS moves "
                "there is not among its held items (bridge holds them in %s)",
                name,
                self.client.url,
                held_name,
            )
        self.held_urls[name] = held_url

    def _attributes(self, queue_url: str, name: str) -> dict[str, str]:
        got = self._sqs().get_queue_attributes(QueueUrl=queue_url, AttributeNames=[name])
        return dict(got.get("Attributes", {}))

    def _lookup(self, sqs_name: str) -> str | None:
        try:
            found = self._sqs().get_queue_url(QueueName=sqs_name)
        except self.client.errors.ClientError as exc:
            if code(exc) not in NO_QUEUE:
                raise
            return None
        return str(found["QueueUrl"])

    def _sqs_name(self, name: str) -> str:
        plain = self._prefix + name
        if _PLAIN_NAME.fullmatch(plain) and not plain.endswith(HELD_SUFFIX):
            return plain
        return f"{self._prefix}bridge-{_digest(name)}"

    def _held_name(self, name: str) -> str:
        held = self._sqs_name(name) + HELD_SUFFIX
        if len(held) <= _MAX_NAME:
            return held
        return f"{self._prefix}bridge-{_digest(name)}{HELD_SUFFIX}"

    def _sqs(self) -> Any:
        return self.client.boto()


def _digest(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()[:40]


def _target(policy: str) -> object:
    """The dead-letter target of a RedrivePolicy, or None where it is not readable."""
    try:
        found = json.loads(policy)
    except ValueError:
        return None
    return found.get("deadLetterTargetArn") if isinstance(found, dict) else None
