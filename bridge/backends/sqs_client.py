"""The SQS calls of the SQS backend.

Kept apart from ``sqs.py``, which holds the queue semantics (leases, tokens,
what a backend knows of its claims), ``sqs_layout.py`` (which queues stand
for a bridge queue) and ``sqs_messages.py`` (what a message carries), so
that this module is only about SQS's calls: the batch limits, which error
codes mean "that receipt handle no longer holds the message" or "no such
queue", how boto3's errors become bridge's, and the boto3 arguments an
``sqs://`` URL stands for.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import unquote

from bridge.backends.sqs_messages import ATTRIBUTES, Message, Outgoing, batches, new
from bridge.errors import (
    BackendError,
    BackendUnavailableError,
    BridgeError,
    ConfigurationError,
    InvalidArgumentError,
)

BATCH = 10
_BATCH_BYTES = 256 * 1024
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


class SqsClient:
    """A lazily built boto3 SQS client and the calls bridge makes with it."""

    __slots__ = (
        "_boto3",
        "_client",
        "_client_args",
        "_url",
        "_wait_time",
        "errors",
        "on_missing_queue",
    )

    def __repr__(self) -> str:  # the client arguments hold the secret key
        return f"<SqsClient for {self._url}>"

    def __init__(
        self,
        boto3: Any,
        errors: Any,
        client_args: dict[str, Any],
        masked_url: str,
        wait_time: int,
    ) -> None:
        self._boto3 = boto3
        self.errors = errors
        self._client_args = client_args
        self._url = masked_url
        self._wait_time = wait_time
        self._client: Any = None
        self.on_missing_queue: Callable[[], None] = lambda: None
        """Called when SQS says a queue does not exist: cached URLs are stale."""

    @property
    def url(self) -> str:
        """The backend's URL, its secret masked."""
        return self._url

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
                self.on_missing_queue()  # deleted behind our back: look it up again
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

    def counters(self, queue_url: str) -> tuple[int, int, int]:
        """SQS's approximate (visible, in flight, delayed) message counts."""
        got = self.boto().get_queue_attributes(
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
            self.boto().purge_queue(QueueUrl=queue_url)
        except self.errors.ClientError as exc:
            if "PurgeQueueInProgress" not in code(exc):
                raise
            while messages := self.receive(queue_url, BATCH, 30):
                self.delete(queue_url, [message["ReceiptHandle"] for message in messages])

    # -- messages --------------------------------------------------------------------

    def create(self, queue_url: str, payloads: list[bytes], delay: float) -> list[str]:
        """Send new items in batches; their ids, in order. A refusal raises, counting the rest."""
        ids, refusals = self.send(queue_url, [new(payload, delay) for payload in payloads])
        written = [message_id for message_id in ids if message_id is not None]
        if refusals:
            raise BackendError(
                f"create_items on {self._url}: SQS refused {len(ids) - len(written)} of "
                f"{len(ids)} messages ({refusals[0]}); the {len(written)} others were written"
            )
        return written

    def send(self, queue_url: str, messages: list[Outgoing]) -> tuple[list[str | None], list[str]]:
        """Send in batches: each message's id (None where SQS refused it), and why refused."""
        ids: list[str | None] = [None] * len(messages)
        refusals: list[str] = []
        for batch in batches(messages, _BATCH_BYTES, BATCH):
            entries = [
                {
                    "Id": str(position),
                    "MessageBody": messages[position].body,
                    "DelaySeconds": messages[position].delay,
                    "MessageAttributes": messages[position].attributes,
                }
                for position in batch
            ]
            sent = self.boto().send_message_batch(QueueUrl=queue_url, Entries=entries)
            for entry in sent.get("Successful", []):
                ids[int(entry["Id"])] = str(entry["MessageId"])
            refusals += [f"{f.get('Code')}: {f.get('Message')}" for f in sent.get("Failed", [])]
        return ids, refusals

    def receive(
        self, queue_url: str, count: int, visibility: int, wait: int | None = None
    ) -> list[Message]:
        """Up to ``count`` (at most 10) messages, invisible for ``visibility`` s.

        ``wait``: long polling, in seconds; the ``wait_time`` option by default.
        """
        messages: list[Message] = (
            self.boto()
            .receive_message(
                QueueUrl=queue_url,
                MaxNumberOfMessages=count,
                VisibilityTimeout=visibility,
                WaitTimeSeconds=self._wait_time if wait is None else wait,
                MessageAttributeNames=ATTRIBUTES,
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
            done = self.boto().delete_message_batch(QueueUrl=queue_url, Entries=entries)
            deleted += [int(entry["Id"]) for entry in done.get("Successful", [])]
        return deleted

    def show(self, queue_url: str, handles: list[str]) -> None:
        """Make received messages visible again, 10 at a time (a failure is left to time)."""
        for start in range(0, len(handles), BATCH):
            entries = [
                {"Id": str(n), "ReceiptHandle": handle, "VisibilityTimeout": 0}
                for n, handle in enumerate(handles[start : start + BATCH])
            ]
            self.boto().change_message_visibility_batch(QueueUrl=queue_url, Entries=entries)

    def change_visibility(self, queue_url: str, handle: str, seconds: float) -> bool:
        """Visible ``seconds`` from now (rounded up); False if the handle holds nothing.

        SQS refuses a visibility that would keep the message hidden more than
        12 hours after its receive; that is an :class:`InvalidArgumentError`,
        not a lost claim.
        """
        try:
            self.boto().change_message_visibility(
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

    def boto(self) -> Any:
        """The boto3 client, built on first use (and again after :meth:`forget`)."""
        if self._client is None:
            self._client = self._boto3.session.Session().client("sqs", **self._client_args)
        return self._client


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
