"""Queues on Amazon SQS, for the kombu backend's ``kombu+sqs://`` URLs.

Spoken through boto3 directly rather than through Kombu's SQS transport,
which receives one message per call with the queue's default visibility,
needs a second call to set the lease, and wraps every body in a base64 JSON
envelope. Here one ``ReceiveMessage`` takes up to 10 messages and sets their
visibility to the lease in the same call, so the lease holds from the first
instant even if the claimer dies at once; sends and deletes go 10 at a time.

Features:
    Reliable and shared. The lease is SQS's visibility timeout, set per claim:
    exact, but SQS counts whole seconds, so it is rounded up; a lease that
    ends between two whole seconds is ended exactly by the backend that holds
    it, at its next call (visibility set to 0). A dead claimer's items come
    back when their lease ends. ``extend_lease`` and ``release_item`` are
    ``ChangeMessageVisibility``; ``attempts`` is SQS's receive count. Delays:
    ``DelaySeconds`` at creation (up to 900 s), the visibility timeout for
    ``delay_item`` (up to 12 h); both rounded up to whole seconds. No
    priority. Counts are SQS's approximate counters.

    Tokens are receipt handles, so any process can settle a claim. SQS
    refuses a stale handle for visibility changes, so a stale holder cannot
    release, delay or extend the new holder's claim; a stale DeleteMessage
    does not delete the new holder's message either, but SQS reports success,
    so only the backend that saw the newer claim answers False.

    Caveats, all SQS's: standard queues are not strictly FIFO (items may come
    out of order, rarely twice); a short-polling receive may miss messages of
    a nearly empty queue (the ``wait_time`` option long-polls); ``create_items``
    is not all-or-none across its batches of 10; ``delete_queue`` is
    ``PurgeQueue``, which SQS allows once a minute (within that minute the
    visible messages are deleted one batch at a time) and which may also take
    messages sent in the minute after it; a delay given at creation cannot be
    cut short, so ``release_all`` frees claimed and delayed-claimed items
    only; peeking is a receive with a zero visibility timeout, which SQS
    counts as a receive (this backend discounts its own looks from
    ``attempts``). Tested against moto, which does not refuse stale receipt
    handles at all; the stale-handle behaviour above is AWS's documented one.

URL format:
    ``kombu+sqs://`` (credentials and region from the environment, as boto3
    finds them), ``kombu+sqs://ACCESS_KEY:SECRET_KEY@`` (URL-quote the
    secret), ``kombu+sqs://KEY:SECRET@host:port`` for an SQS-compatible
    endpoint (moto, ElasticMQ, LocalStack), over http unless ``is_secure``.

Options:
    ``region`` (default: boto3's, else us-east-1), ``endpoint_url``,
    ``is_secure`` (https for a host in the URL; default False, as Kombu),
    ``queue_prefix`` (prepended to every SQS queue name), ``wait_time``
    (ReceiveMessage long polling, 0-20 s, default 0), ``connect_timeout``
    (default 5 s), ``read_timeout`` (default 30 s).

Storage layout:
    One standard SQS queue per bridge queue. A name made of letters, digits,
    ``-`` and ``_`` (with the prefix, at most 80 characters) is used as is;
    any other is ``<prefix>bridge-<sha256 of the name, 40 hex digits>``,
    tagged ``bridge-queue=<name>`` (``queue_names`` reads it back). Message:
    the payload as the body when it is text SQS accepts, else base64 with
    attribute ``bridge-encoding=base64``; the item id is the MessageId,
    ``created`` is SentTimestamp.
"""

from __future__ import annotations

import math
import os
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from bridge.backends.sqs_client import NO_QUEUE, SqsClient, client_args, code, stored
from bridge.contract import Capabilities
from bridge.errors import (
    BackendError,
    BackendUnavailableError,
    BridgeError,
    ConfigurationError,
    InvalidArgumentError,
    MissingDependencyError,
)
from bridge.items import ItemCounts, ItemId, QueueItem, StoredItem
from bridge.urls import mask_password

MAX_CREATE_DELAY = 900
"""SQS's longest DelaySeconds."""
MAX_VISIBILITY = 43_200
"""SQS's longest visibility timeout: the longest lease, and delay of a claimed item."""
_BATCH = 10
_REMEMBERED = 100_000
"""Message ids whose latest claim (and peeks) a backend remembers."""


SQS_CAPABILITIES = Capabilities(
    reliable=True, shared=True, lease="exact", extend_lease=True,
    delay=True, priority=False, counts_leased=True,
    ordered=False, cancel_delays=False,
)
"""The lease is SQS's visibility timeout, set at every receive, so it holds
exactly (to the whole second SQS counts in) even if the claimer dies; delay
is DelaySeconds; counts include in-flight and delayed messages, approximately
(SQS's own counters). No priority, no order."""


@dataclass(slots=True)
class _Claim:
    """The latest claim of one message made here, and whether it has ended."""

    queue: str
    item: StoredItem
    ended: bool = False
    delayed_until: float = 0.0
    """Set when ``delay_item`` ended the claim: when the item is due again."""


_backends: weakref.WeakSet[SqsBackend] = weakref.WeakSet()


def _forget_parent_clients() -> None:
    # boto3 clients pool sockets; a forked child builds its own.
    for backend in list(_backends):
        backend._lock = threading.RLock()
        backend._client.forget()


os.register_at_fork(after_in_child=_forget_parent_clients)


class SqsBackend:
    """Queues on SQS through boto3; see the module docstring."""

    def __init__(
        self,
        url: str,
        *,
        region: str | None = None,
        endpoint_url: str | None = None,
        is_secure: bool = False,
        queue_prefix: str = "",
        wait_time: int = 0,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
    ) -> None:
        self.url = mask_password(url)
        broker_url = url
        try:
            import boto3
            import botocore.config
            import botocore.exceptions
        except ImportError as exc:
            raise MissingDependencyError(
                f"the backend for {self.url} needs the {exc.name or 'boto3'} module; install "
                'it with: pip install "bridge[sqs]"'
            ) from None
        if isinstance(wait_time, bool) or not isinstance(wait_time, int) or not (
            0 <= wait_time <= 20
        ):
            raise ConfigurationError(f"wait_time must be an int from 0 to 20, not {wait_time!r}")
        arguments = client_args(broker_url, region, endpoint_url, is_secure, boto3)
        arguments["config"] = botocore.config.Config(
            connect_timeout=connect_timeout, read_timeout=read_timeout,
            retries={"max_attempts": 2, "mode": "standard"},
        )
        self._client = SqsClient(boto3, botocore.exceptions, arguments, self.url,
                                 queue_prefix, wait_time)
        self.capabilities = SQS_CAPABILITIES
        self._lock = threading.RLock()
        self._claims: OrderedDict[str, _Claim] = OrderedDict()
        self._looks: OrderedDict[str, int] = OrderedDict()
        _backends.add(self)

    # -- queue set-up -----------------------------------------------------------

    def create_queue(self, name: str) -> None:
        with self._calling("create_queue"):
            self._client.ensure_queue(name)

    def delete_queue(self, name: str) -> None:
        """PurgeQueue: the queue stays (with its policies), its messages go."""
        with self._calling("delete_queue"):
            for claim in self._claims.values():
                if claim.queue == name:
                    claim.ended, claim.delayed_until = True, 0.0
            queue_url = self._client.queue_url(name)
            if queue_url is not None:
                self._client.purge(queue_url)

    # -- items -------------------------------------------------------------------

    def create_items(
        self, name: str, payloads: Sequence[bytes], delay: float, priority: int
    ) -> list[ItemId]:
        if delay > MAX_CREATE_DELAY:
            raise InvalidArgumentError(
                f"SQS delays a new message at most {MAX_CREATE_DELAY} s, not {delay:g}"
            )
        with self._calling("create_items"):
            queue_url = self._client.ensure_queue(name)
            return list(self._client.send(queue_url, list(payloads), delay))

    def number_of_items(self, name: str) -> int:
        return self.counts(name).total

    def counts(self, name: str) -> ItemCounts:
        """SQS's counters, with the items this backend delayed moved from leased to delayed."""
        with self._calling("counts"):
            queue_url = self._client.queue_url(name)
            if queue_url is None:
                return ItemCounts(0, 0, 0)
            self._return_due(name)
            visible, in_flight, delayed = self._client.counters(queue_url)
            now = time.time()
            delayed_here = sum(1 for claim in self._claims.values()
                               if claim.queue == name and claim.delayed_until > now)
            moved = min(delayed_here, in_flight)
            return ItemCounts(visible, in_flight - moved, delayed + moved)

    def claim_items(self, name: str, count: int, lease_time: float) -> list[StoredItem]:
        if lease_time > MAX_VISIBILITY:
            raise InvalidArgumentError(f"SQS leases last at most {MAX_VISIBILITY} s, "
                                       f"not {lease_time:g}")
        with self._calling("claim_items"):
            queue_url = self._client.queue_url(name)
            if queue_url is None:
                return []
            self._return_due(name)
            claimed: dict[str, StoredItem] = {}  # a standard queue may repeat a message
            while len(claimed) < count:
                expire = time.time() + lease_time
                messages = self._client.receive(queue_url, min(_BATCH, count - len(claimed)),
                                                math.ceil(lease_time))
                if not messages:
                    break
                for message in messages:
                    item = stored(message, expire, self._looks.get(message["MessageId"], 0))
                    claimed[str(item.item_id)] = item
                    self._remember(str(item.item_id), _Claim(name, item))
            return list(claimed.values())

    def delete_items(self, name: str, items: Sequence[QueueItem]) -> int:
        with self._calling("delete_items"):
            queue_url = self._client.queue_url(name)
            held = [item for item in items if self._may_hold(name, item)]
            if queue_url is None or not held:
                return 0
            deleted = self._client.delete(queue_url, [item.token for item in held])
            for position in deleted:
                claim = self._claims.get(str(held[position].item_id))
                if claim is not None:
                    claim.ended = True  # later calls with this item return False
            return len(deleted)

    def release_item(self, name: str, item: QueueItem) -> bool:
        return self._set_visibility("release_item", name, item, 0.0, ends=True) is not None

    def delay_item(self, name: str, item: QueueItem, delay: float) -> float | None:
        if delay > MAX_VISIBILITY:
            raise InvalidArgumentError(f"SQS delays a claimed message at most {MAX_VISIBILITY} s")
        return self._set_visibility("delay_item", name, item, delay, ends=True)

    def extend_lease(self, name: str, item: QueueItem, lease_time: float) -> float | None:
        if lease_time > MAX_VISIBILITY:
            raise InvalidArgumentError(f"SQS leases last at most {MAX_VISIBILITY} s")
        return self._set_visibility("extend_lease", name, item, lease_time, ends=False)

    def garbage_collection(self, name: str) -> None:
        """End the leases and delays held here that are due (SQS would wait for the second)."""
        with self._calling("garbage_collection"):
            self._return_due(name)

    # -- inspection ----------------------------------------------------------------

    def queue_names(self) -> dict[str, int]:
        """Every queue under the ``queue_prefix`` with items (all the account's without one)."""
        with self._calling("queue_names"):
            counts = {name: self.counts(name).total for name in list(self._client.queues())}
            return {name: count for name, count in counts.items() if count}

    def peek(self, name: str, limit: int) -> list[StoredItem]:
        """Visible messages, received with a zero visibility timeout, then claims held here."""
        with self._calling("peek"):
            queue_url = self._client.queue_url(name)
            if queue_url is None or limit == 0:
                return []
            self._return_due(name)
            seen: dict[str, StoredItem] = {}
            while len(seen) < limit:
                messages = self._client.receive(queue_url, min(_BATCH, limit - len(seen)), 0)
                fresh = [m for m in messages if m["MessageId"] not in seen]
                for message in messages:  # SQS counts every receive: discount the looks
                    self._looks[message["MessageId"]] = self._looks.get(message["MessageId"], 0) + 1
                for message in fresh:
                    looks = self._looks[message["MessageId"]]
                    seen[message["MessageId"]] = stored(message, 0.0, looks)._replace(token="")
                if not fresh:
                    break
            now = time.time()
            leased = [claim.item._replace(token="") for claim in self._claims.values()
                      if claim.queue == name and not claim.ended and claim.item.expire > now]
            return (list(seen.values()) + leased)[:limit]

    def release_all(self, name: str) -> int:
        """Make visible every item claimed or delayed here; others' are SQS's to end."""
        with self._calling("release_all"):
            queue_url = self._client.queue_url(name)
            now = time.time()
            freed = 0
            for claim in self._claims.values():
                due = claim.delayed_until > now or (not claim.ended and claim.item.expire > now)
                if queue_url is None or claim.queue != name or not due:
                    continue
                freed += self._client.change_visibility(queue_url, claim.item.token, 0)
                claim.ended, claim.delayed_until = True, 0.0
            return freed

    def close(self) -> None:
        with self._lock:
            self._client.close()

    # -- claims known here -------------------------------------------------------------

    def _set_visibility(
        self, operation: str, name: str, item: QueueItem, seconds: float, *, ends: bool
    ) -> float | None:
        """ChangeMessageVisibility for a claim still held; the new expire, or None."""
        with self._calling(operation):
            queue_url = self._client.queue_url(name)
            if queue_url is None or not self._may_hold(name, item):
                return None
            if not self._client.change_visibility(queue_url, item.token, seconds):
                return None
            expire = time.time() + seconds if seconds else 0.0
            claim = self._claims.get(str(item.item_id))
            if claim is not None and claim.item.token == item.token:
                claim.ended = ends
                claim.delayed_until = expire if ends and seconds else 0.0
                claim.item = claim.item._replace(expire=expire)
            return expire

    def _may_hold(self, name: str, item: QueueItem) -> bool:
        """False when this backend knows the claim is over; else SQS decides."""
        if not item.token:
            return False
        claim = self._claims.get(str(item.item_id))
        if claim is None:
            return True  # a claim of another process: its receipt handle works here too
        return claim.queue == name and claim.item.token == item.token and not claim.ended

    def _return_due(self, name: str) -> None:
        """Make visible now what this backend knows is due, where SQS would wait for the second.

        Leases held here that ran out (their holder may still delete them until
        they are claimed again) and items delayed here whose delay has passed.
        """
        now = time.time()
        queue_url = self._client.urls.get(name)
        for claim in self._claims.values():
            lease_over = not claim.ended and 0 < claim.item.expire <= now
            if queue_url is None or claim.queue != name or not (
                lease_over or 0 < claim.delayed_until <= now
            ):
                continue
            self._client.change_visibility(queue_url, claim.item.token, 0)
            claim.item = claim.item._replace(expire=0.0)
            claim.delayed_until = 0.0

    def _remember(self, message_id: str, claim: _Claim) -> None:
        self._claims[message_id] = claim
        self._claims.move_to_end(message_id)
        while len(self._claims) > _REMEMBERED:
            self._claims.popitem(last=False)
        while len(self._looks) > _REMEMBERED:
            self._looks.popitem(last=False)

    @contextmanager
    def _calling(self, operation: str) -> Iterator[None]:
        """Serialize calls; boto3's errors become bridge errors naming the endpoint."""
        errors = self._client.errors
        with self._lock:
            try:
                yield
            except BridgeError:
                raise
            except errors.ClientError as exc:
                if code(exc) in NO_QUEUE:
                    self._client.urls.clear()  # deleted behind our back: look it up again
                raise BackendError(f"{operation} on {self.url} failed: {exc}") from exc
            except (errors.ConnectionError, errors.HTTPClientError) as exc:
                raise BackendUnavailableError(
                    f"{operation} on {self.url} failed: SQS cannot be reached ({exc})"
                ) from exc
            except errors.NoCredentialsError as exc:
                raise ConfigurationError(f"{self.url}: no AWS credentials ({exc})") from exc
            except errors.BotoCoreError as exc:
                raise BackendError(f"{operation} on {self.url} failed: {exc}") from exc
