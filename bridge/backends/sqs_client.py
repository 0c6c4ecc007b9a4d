"""The SQS calls of the kombu backend, and how bridge's items look on SQS.

Kept apart from ``kombu_sqs.py``, which holds the queue semantics (leases,
tokens, what this backend knows of its claims), so that this module is only
about SQS itself: queue names and URLs, message bodies, the batch limits,
and which error codes mean "that receipt handle no longer holds the message"
or "no such queue".
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote, urlsplit

from bridge.errors import BackendError
from bridge.items import StoredItem

BATCH = 10
_BATCH_BYTES = 256 * 1024
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_-]{1,80}")
_NOT_SQS_TEXT = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_ENCODING = "bridge-encoding"
_NAME_TAG = "bridge-queue"
_GONE = {"ReceiptHandleIsInvalid", "InvalidParameterValue", "MessageNotInflight",
         "AWS.SimpleQueueService.MessageNotInflight"}
NO_QUEUE = {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}

Message = dict[str, Any]


class SqsClient:
    """A lazily built boto3 SQS client, with bridge's names and message format."""

    def __init__(
        self, boto3: Any, errors: Any, client_args: dict[str, Any], masked_url: str,
        prefix: str, wait_time: int,
    ) -> None:
        self._boto3 = boto3
        self.errors = errors
        self._client_args = client_args
        self._url = masked_url
        self._prefix = prefix
        self._wait_time = wait_time
        self._client: Any = None
        self.urls: dict[str, str] = {}

    def forget(self) -> None:
        """Drop the client without closing its sockets (a forked child's share)."""
        self._client = None

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    # -- queues ----------------------------------------------------------------------

    def queue_url(self, name: str) -> str | None:
        """The URL of queue ``name``; None if it does not exist."""
        if name not in self.urls:
            try:
                found = self._sqs().get_queue_url(QueueName=self._sqs_name(name))
            except self.errors.ClientError as exc:
                if code(exc) not in NO_QUEUE:
                    raise
                return None
            self.urls[name] = str(found["QueueUrl"])
        return self.urls[name]

    def ensure_queue(self, name: str) -> str:
        """The URL of queue ``name``, created first if it does not exist."""
        if name not in self.urls:
            sqs_name = self._sqs_name(name)
            tags = {} if sqs_name == self._prefix + name else {"tags": {_NAME_TAG: name}}
            created = self._sqs().create_queue(QueueName=sqs_name, **tags)
            self.urls[name] = str(created["QueueUrl"])
        return self.urls[name]

    def queues(self) -> Iterator[str]:
        """The bridge names of the queues under this prefix."""
        pages = self._sqs().get_paginator("list_queues").paginate(QueueNamePrefix=self._prefix)
        for queue_url in (url for page in pages for url in page.get("QueueUrls", [])):
            sqs_name = queue_url.rstrip("/").rsplit("/", 1)[-1]
            name = sqs_name[len(self._prefix):]
            if sqs_name.startswith(f"{self._prefix}bridge-"):
                tags = self._sqs().list_queue_tags(QueueUrl=queue_url).get("Tags", {})
                name = str(tags.get(_NAME_TAG, name))
            self.urls.setdefault(name, queue_url)
            yield name

    def counters(self, queue_url: str) -> tuple[int, int, int]:
        """SQS's approximate (visible, in flight, delayed) message counts."""
        got = self._sqs().get_queue_attributes(QueueUrl=queue_url, AttributeNames=[
            "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed"])["Attributes"]
        return (int(got["ApproximateNumberOfMessages"]),
                int(got["ApproximateNumberOfMessagesNotVisible"]),
                int(got["ApproximateNumberOfMessagesDelayed"]))

    def purge(self, queue_url: str) -> None:
        """PurgeQueue; within a minute of the last one, delete the visible messages instead."""
        try:
            self._sqs().purge_queue(QueueUrl=queue_url)
        except self.errors.ClientError as exc:
            if "PurgeQueueInProgress" not in code(exc):
                raise
            while messages := self.receive(queue_url, BATCH, 30):
                self.delete(queue_url, [message["ReceiptHandle"] for message in messages])

    # -- messages --------------------------------------------------------------------

    def send(self, queue_url: str, payloads: list[bytes], delay: float) -> list[str]:
        """Send in batches; the message ids, in order."""
        ids: list[str] = []
        for batch in _batches([_encode(payload) for payload in payloads]):
            entries = [{"Id": str(n), "MessageBody": body, "DelaySeconds": math.ceil(delay),
                        "MessageAttributes": attributes}
                       for n, (body, attributes) in enumerate(batch)]
            sent = self._sqs().send_message_batch(QueueUrl=queue_url, Entries=entries)
            if sent.get("Failed"):
                failure = sent["Failed"][0]
                raise BackendError(
                    f"create_items on {self._url}: SQS refused {len(sent['Failed'])} of "
                    f"{len(entries)} messages ({failure.get('Code')}: {failure.get('Message')}); "
                    f"{len(ids)} earlier ones were written"
                )
            by_id = {entry["Id"]: entry["MessageId"] for entry in sent["Successful"]}
            ids.extend(by_id[str(n)] for n in range(len(entries)))
        return ids

    def receive(self, queue_url: str, count: int, visibility: int) -> list[Message]:
        """Up to ``count`` (at most 10) messages, invisible for ``visibility`` s."""
        messages: list[Message] = self._sqs().receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=count, VisibilityTimeout=visibility,
            WaitTimeSeconds=self._wait_time, MessageAttributeNames=[_ENCODING],
            AttributeNames=["ApproximateReceiveCount", "SentTimestamp"],
        ).get("Messages", [])
        return messages

    def delete(self, queue_url: str, handles: list[str]) -> list[int]:
        """Delete by receipt handle, 10 at a time; the positions SQS deleted."""
        deleted: list[int] = []
        for start in range(0, len(handles), BATCH):
            entries = [{"Id": str(start + n), "ReceiptHandle": handle}
                       for n, handle in enumerate(handles[start:start + BATCH])]
            done = self._sqs().delete_message_batch(QueueUrl=queue_url, Entries=entries)
            deleted += [int(entry["Id"]) for entry in done.get("Successful", [])]
        return deleted

    def change_visibility(self, queue_url: str, handle: str, seconds: float) -> bool:
        """Visible ``seconds`` from now (rounded up); False if the handle holds nothing."""
        try:
            self._sqs().change_message_visibility(
                QueueUrl=queue_url, ReceiptHandle=handle, VisibilityTimeout=math.ceil(seconds))
        except self.errors.ClientError as exc:
            if code(exc) in _GONE or code(exc) in NO_QUEUE:
                return False
            raise
        return True

    def _sqs_name(self, name: str) -> str:
        plain = self._prefix + name
        if _PLAIN_NAME.fullmatch(plain):
            return plain
        return f"{self._prefix}bridge-{hashlib.sha256(name.encode()).hexdigest()[:40]}"

    def _sqs(self) -> Any:
        if self._client is None:
            self._client = self._boto3.session.Session().client("sqs", **self._client_args)
        return self._client


def stored(message: Message, expire: float, looks: int) -> StoredItem:
    """The item a received message carries; ``looks``: receives that were only peeks."""
    attributes = message.get("Attributes", {})
    encoding = message.get("MessageAttributes", {}).get(_ENCODING, {}).get("StringValue")
    body: str = message["Body"]
    return StoredItem(
        item_id=message["MessageId"],
        payload=base64.b64decode(body) if encoding == "base64" else body.encode("utf-8"),
        created=int(attributes.get("SentTimestamp", time.time() * 1000)) / 1000,
        expire=expire, attempts=int(attributes.get("ApproximateReceiveCount", 1)) - looks,
        priority=0, token=message["ReceiptHandle"],
    )


def code(exc: Any) -> str:
    """The error code of a botocore ClientError."""
    return str(exc.response.get("Error", {}).get("Code", ""))


def client_args(
    broker_url: str, region: str | None, endpoint_url: str | None, is_secure: bool, boto3: Any
) -> dict[str, Any]:
    """boto3 client arguments from a Kombu-style ``sqs://KEY:SECRET@host:port`` URL."""
    parts = urlsplit(broker_url)
    endpoint = endpoint_url
    if endpoint is None and parts.hostname:
        port = f":{parts.port}" if parts.port else ""
        endpoint = f"{'https' if is_secure else 'http'}://{parts.hostname}{port}"
    return {
        "region_name": region or boto3.session.Session().region_name or "us-east-1",
        "endpoint_url": endpoint,
        "aws_access_key_id": unquote(parts.username) if parts.username else None,
        "aws_secret_access_key": unquote(parts.password) if parts.password else None,
    }


def _encode(payload: bytes) -> tuple[str, dict[str, Any]]:
    """The message body and attributes: text SQS accepts as is, anything else base64."""
    try:
        text = payload.decode("utf-8")
        if not _NOT_SQS_TEXT.search(text):
            return text, {}
    except UnicodeDecodeError:
        pass
    encoded = base64.b64encode(payload).decode("ascii")
    return encoded, {_ENCODING: {"DataType": "String", "StringValue": "base64"}}


def _batches(messages: list[tuple[str, dict[str, Any]]]) -> Iterator[list[tuple[str, Any]]]:
    """Runs of at most 10 messages and 256 KiB, SQS's batch limits (a bigger one alone)."""
    batch: list[tuple[str, Any]] = []
    size = 0
    for message in messages:
        length = len(message[0].encode("utf-8"))
        if batch and (len(batch) == BATCH or size + length > _BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(message)
        size += length
    if batch:
        yield batch
