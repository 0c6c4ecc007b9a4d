"""The SQS calls of the SQS backend, and how bridge's items look on SQS.

Kept apart from ``sqs.py``, which holds the queue semantics (leases, tokens,
what a backend knows of its claims), so that this module is only about SQS
itself: queue names and URLs, message bodies, the batch limits, which error
codes mean "that receipt handle no longer holds the message" or "no such
queue", and the boto3 arguments an ``sqs://`` URL stands for.
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import unquote

from bridge.errors import (
    BackendError,
    BackendUnavailableError,
    BridgeError,
    ConfigurationError,
    InvalidArgumentError,
)
from bridge.items import StoredItem

BATCH = 10
_BATCH_BYTES = 256 * 1024
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_-]{1,80}")
_NOT_SQS_TEXT = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_ENCODING = "bridge-encoding"
_NAME_TAG = "bridge-queue"
_GONE = {
    "ReceiptHandleIsInvalid",
    "InvalidParameterValue",
    "MessageNotInflight",
    "AWS.SimpleQueueService.MessageNotInflight",
}
"""Codes of a visibility change whose receipt handle holds nothing any more.

AWS answers a handle made stale by a newer receive with InvalidParameterValue
("Message does not exist or is not available for visibility timeout change").
"""
MAX_VISIBILITY = 43_200
"""SQS's longest visibility timeout, counted from the message's receive."""
_AUTHORITY = re.compile(r"(?P<host>\[[^\]]*\]|[^:]*)(?::(?P<port>[^:]*))?")
NO_QUEUE = {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}

Message = dict[str, Any]


class SqsClient:
    """A lazily built boto3 SQS client, with bridge's names and message format."""

    __slots__ = (
        "_boto3",
        "_client",
        "_client_args",
        "_prefix",
        "_url",
        "_wait_time",
        "errors",
        "urls",
    )

    def __repr__(self) -> str:  # the client arguments hold the secret key
        return f"<SqsClient for {self._url}>"

    def __init__(
        self,
        boto3: Any,
        errors: Any,
        client_args: dict[str, Any],
        masked_url: str,
        prefix: str,
        wait_time: int,
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

    @contextmanager
    def translating(self, operation: str) -> Iterator[None]:
        """boto3's errors as bridge errors naming the endpoint, its secret masked."""
        errors = self.errors
        try:
            yield
        except BridgeError:
            raise
        except errors.ClientError as exc:
            if code(exc) in NO_QUEUE:
                self.urls.clear()  # deleted behind our back: look it up again
            raise BackendError(f"{operation} on {self._url} failed: {exc}") from exc
        except (errors.ConnectionError, errors.HTTPClientError) as exc:
            raise BackendUnavailableError(
                f"{operation} on {self._url} failed: SQS cannot be reached ({exc})"
            ) from exc
        except errors.NoCredentialsError as exc:
            raise ConfigurationError(f"{self._url}: no AWS credentials ({exc})") from exc
        except errors.BotoCoreError as exc:
            raise BackendError(f"{operation} on {self._url} failed: {exc}") from exc

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
            name = sqs_name[len(self._prefix) :]
            if sqs_name.startswith(f"{self._prefix}bridge-"):
                tags = self._sqs().list_queue_tags(QueueUrl=queue_url).get("Tags", {})
                name = str(tags.get(_NAME_TAG, name))
            self.urls.setdefault(name, queue_url)
            yield name

    def counters(self, queue_url: str) -> tuple[int, int, int]:
        """SQS's approximate (visible, in flight, delayed) message counts."""
        got = self._sqs().get_queue_attributes(
            QueueUrl=queue_url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        )["Attributes"]
        return (
            int(got["ApproximateNumberOfMessages"]),
            int(got["ApproximateNumberOfMessagesNotVisible"]),
            int(got["ApproximateNumberOfMessagesDelayed"]),
        )

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
            entries = [
                {
                    "Id": str(n),
                    "MessageBody": body,
                    "DelaySeconds": math.ceil(delay),
                    "MessageAttributes": attributes,
                }
                for n, (body, attributes) in enumerate(batch)
            ]
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
        messages: list[Message] = (
            self._sqs()
            .receive_message(
                QueueUrl=queue_url,
                MaxNumberOfMessages=count,
                VisibilityTimeout=visibility,
                WaitTimeSeconds=self._wait_time,
                MessageAttributeNames=[_ENCODING],
                AttributeNames=["ApproximateReceiveCount", "SentTimestamp"],
            )
            .get("Messages", [])
        )
        return messages

    def delete(self, queue_url: str, handles: list[str]) -> list[int]:
        """Delete by receipt handle, 10 at a time; the positions SQS deleted."""
        deleted: list[int] = []
        for start in range(0, len(handles), BATCH):
            entries = [
                {"Id": str(start + n), "ReceiptHandle": handle}
                for n, handle in enumerate(handles[start : start + BATCH])
            ]
            done = self._sqs().delete_message_batch(QueueUrl=queue_url, Entries=entries)
            deleted += [int(entry["Id"]) for entry in done.get("Successful", [])]
        return deleted

    def change_visibility(self, queue_url: str, handle: str, seconds: float) -> bool:
        """Visible ``seconds`` from now (rounded up); False if the handle holds nothing.

        SQS refuses a visibility that would keep the message hidden more than
        12 hours after its receive; that is an :class:`InvalidArgumentError`,
        not a lost claim.
        """
        try:
            self._sqs().change_message_visibility(
                QueueUrl=queue_url, ReceiptHandle=handle, VisibilityTimeout=math.ceil(seconds)
            )
        except self.errors.ClientError as exc:
            if code(exc) == "InvalidParameterValue" and "VisibilityTimeout" in _message(exc):
                raise InvalidArgumentError(
                    f"SQS refused to hide a message {math.ceil(seconds)} s more on {self._url}: "
                    f"it keeps a received message hidden at most {MAX_VISIBILITY} s in all, "
                    "counted from the receive"
                ) from None
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
        expire=expire,
        attempts=int(attributes.get("ApproximateReceiveCount", 1)) - looks,
        priority=0,
        token=message["ReceiptHandle"],
    )


def code(exc: Any) -> str:
    """The error code of a botocore ClientError."""
    return str(exc.response.get("Error", {}).get("Code", ""))


def _message(exc: Any) -> str:
    return str(exc.response.get("Error", {}).get("Message", ""))


def client_args(
    broker_url: str, region: str | None, endpoint_url: str | None, is_secure: bool, boto3: Any
) -> dict[str, Any]:
    """boto3 client arguments from a Kombu-style ``sqs://KEY:SECRET@host:port`` URL.

    The userinfo ends at the last ``@``, as :func:`bridge.urls.mask_password`
    reads it, so a secret holding a raw ``/`` or ``@`` is read whole. The URL
    never goes through ``urlsplit``, whose errors quote the part they choke
    on, and no error here quotes the URL: a misplaced secret would be in it.
    """
    rest = broker_url.partition("://")[2]
    at = rest.rfind("@")
    userinfo, authority = (rest[:at], rest[at + 1 :]) if at >= 0 else ("", rest)
    user, _, secret = userinfo.partition(":")
    found = _AUTHORITY.fullmatch(re.split(r"[/?#]", authority, maxsplit=1)[0])
    if found is None or not (found["port"] or "0").isdigit():
        raise ConfigurationError(
            "an sqs:// URL is sqs://[KEY:SECRET@][HOST[:PORT]], and the port of the one given "
            "is not a number (the URL is not printed: it may hold a secret); a key and secret "
            "end with '@', as in sqs://KEY:SECRET@"
        )
    endpoint = endpoint_url
    if endpoint is None and found["host"]:
        port = f":{found['port']}" if found["port"] else ""
        endpoint = f"{'https' if is_secure else 'http'}://{found['host']}{port}"
    return {
        "region_name": region or boto3.session.Session().region_name or "us-east-1",
        "endpoint_url": endpoint,
        "aws_access_key_id": unquote(user) if user else None,
        "aws_secret_access_key": unquote(secret) if secret else None,
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
