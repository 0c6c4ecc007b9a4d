"""Queues on Amazon SQS (``sqs://``), spoken through boto3.

Not through Kombu's SQS transport: here one ``ReceiveMessage`` takes up to 10
messages and sets their visibility to the lease in the same call, so the
lease holds from the first instant. ``docs/sqs.md`` explains the choices.

Features:
    Reliable and shared. The lease is SQS's visibility timeout, set per
    claim: exact, but SQS counts whole seconds, so it is rounded up; a lease
    that ends between two seconds is ended exactly by the backend that holds
    it, at its next call. A dead claimer's items come back when their lease
    ends. ``extend_lease``, ``release_item`` and ``delay_item`` are
    ``ChangeMessageVisibility``; ``attempts`` is SQS's receive count. Delays:
    ``DelaySeconds`` at creation (up to 900 s, and never cut short), the
    visibility timeout for ``delay_item``. No priority, no order. Counts are
    SQS's approximate counters.

    Tokens are receipt handles, so any process can settle a claim; SQS
    refuses a stale handle's visibility changes, but reports a stale delete
    as done, so only the backend that saw the newer claim answers False.
    After its own ``delay_item`` the holder may still make every call; after
    its own release (or its lease's end) it may delete and release, but SQS
    cannot hide a visible message again, so ``extend_lease`` and
    ``delay_item`` return False (``settle_after_release`` is False). SQS
    hides a message at most 12 h from its receive: a longer extension or
    delay of a claim made here is cut to what is left, with a warning.

URL format:
    ``sqs://`` (credentials and region from the environment, as boto3 finds
    them), ``sqs://ACCESS_KEY:SECRET_KEY@`` (the userinfo ends at the last
    ``@``, so a secret may hold ``/`` or ``@`` as it is; URL-quoting works
    too), ``sqs://KEY:SECRET@host:port`` for an SQS-compatible endpoint
    (moto, ElasticMQ, LocalStack), over http unless ``is_secure``.
    ``kombu+sqs://`` is a deprecated alias.

Options:
    ``region`` (default: boto3's, else us-east-1), ``endpoint_url``,
    ``is_secure`` (https for a host in the URL; default False),
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
    ``created`` is SentTimestamp. In memory, each backend remembers the
    latest claim of the last 100,000 messages it received.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal, final

from bridge.backends.sqs_client import MAX_VISIBILITY, SqsClient, client_args, stored
from bridge.contract import Backend, Capabilities
from bridge.errors import ConfigurationError, MissingDependencyError
from bridge.items import ItemCounts, ItemId, QueueItem, StoredItem

log = logging.getLogger(__name__)

MAX_CREATE_DELAY = 900
"""SQS's longest DelaySeconds."""
_BATCH = 10
_REMEMBERED = 100_000
"""Message ids whose latest claim (and peeks) a backend remembers."""

SQS_CAPABILITIES = Capabilities(
    reliable=True,
    shared=True,
    lease="exact",
    extend_lease=True,
    delay=True,
    priority=False,
    counts_leased=True,
    ordered=False,
    cancel_delays=False,
    settle_after_release=False,
    max_delay=MAX_VISIBILITY,
    max_create_delay=MAX_CREATE_DELAY,
    max_lease=MAX_VISIBILITY,
)
"""A creation delay cannot be cut short (``cancel_delays``), and a released
message cannot be hidden again (``settle_after_release``)."""

State = Literal["leased", "delayed", "visible", "ended"]
"""Of a claim made here: hidden by its lease or by ``delay_item``; visible
again (released, or its lease or delay over), still its holder's to delete or
release; ended (deleted, or freed by ``release_all`` or ``delete_queue``)."""


@dataclass(slots=True)
class _Claim:
    """The latest claim of one message made here."""

    queue: str
    item: StoredItem
    received: float
    """When the receive was sent: SQS's 12 hours of visibility count from after it."""
    hidden_until: float
    """SQS hides the message at least until then (the last visibility, rounded up)."""
    state: State = "leased"


@final
class SqsBackend(Backend):
    """Queues on SQS through boto3; see the module docstring."""

    capabilities = SQS_CAPABILITIES

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
        super().__init__(url)
        try:
            import boto3
            import botocore.config
            import botocore.exceptions
        except ImportError as exc:
            raise MissingDependencyError(
                f"the backend for {self.url} needs the {exc.name or 'boto3'} module; install "
                'it with: pip install "bridge[sqs]"'
            ) from None
        if isinstance(wait_time, bool) or not isinstance(wait_time, int) or wait_time > 20:
            raise ConfigurationError(f"wait_time must be an int from 0 to 20, not {wait_time!r}")
        arguments = client_args(url, region, endpoint_url, is_secure, boto3)
        arguments["config"] = botocore.config.Config(
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"max_attempts": 2, "mode": "standard"},
        )
        self._client = SqsClient(
            boto3, botocore.exceptions, arguments, self.url, queue_prefix, wait_time
        )
        self._lock = threading.RLock()
        self._claims: OrderedDict[str, _Claim] = OrderedDict()
        self._looks: OrderedDict[str, int] = OrderedDict()

    # -- queue set-up -----------------------------------------------------------

    def create_queue(self, name: str) -> None:
        with self._calling("create_queue"):
            self._client.ensure_queue(name)

    def delete_queue(self, name: str) -> None:
        """PurgeQueue: the queue stays (with its policies), its messages go."""
        with self._calling("delete_queue"):
            for claim in self._claims.values():
                if claim.queue == name:
                    claim.state = "ended"
            queue_url = self._client.queue_url(name)
            if queue_url is not None:
                self._client.purge(queue_url)

    # -- items -------------------------------------------------------------------

    def create_items(
        self, name: str, payloads: Sequence[bytes], delay: float, priority: int
    ) -> list[ItemId]:
        with self._calling("create_items"):
            queue_url = self._client.ensure_queue(name)
            return list(self._client.send(queue_url, list(payloads), delay))

    def counts(self, name: str) -> ItemCounts:
        """SQS's counters, with the items this backend delayed moved from leased to delayed."""
        with self._calling("counts"):
            queue_url = self._client.queue_url(name)
            if queue_url is None:
                return ItemCounts(0, 0, 0)
            self._return_due(name)
            visible, in_flight, delayed = self._client.counters(queue_url)
            now = time.time()
            delayed_here = sum(
                1
                for claim in self._claims.values()
                if claim.queue == name and claim.state == "delayed" and claim.item.expire > now
            )
            moved = min(delayed_here, in_flight)
            return ItemCounts(visible, in_flight - moved, delayed + moved)

    def claim_items(self, name: str, count: int, lease_time: float) -> list[StoredItem]:
        with self._calling("claim_items"):
            queue_url = self._client.queue_url(name)
            if queue_url is None:
                return []
            self._return_due(name)
            claimed: dict[str, StoredItem] = {}  # a standard queue may repeat a message
            while len(claimed) < count:
                sent = time.time()
                hidden = math.ceil(lease_time)
                wanted = min(_BATCH, count - len(claimed))
                messages = self._client.receive(queue_url, wanted, hidden)
                if not messages:
                    break
                for message in messages:
                    looks = self._looks.get(message["MessageId"], 0)
                    item = stored(message, sent + lease_time, looks)
                    claimed[str(item.item_id)] = item
                    self._remember(str(item.item_id), _Claim(name, item, sent, sent + hidden))
            return list(claimed.values())

    def delete_items(self, name: str, items: Sequence[QueueItem]) -> int:
        with self._calling("delete_items"):
            queue_url = self._client.queue_url(name)
            held = [item for item in items if not self._lost(name, item)]
            if queue_url is None or not held:
                return 0
            deleted = self._client.delete(queue_url, [item.token for item in held])
            for position in deleted:
                item = held[position]
                claim = self._claims.get(str(item.item_id))
                if claim is None:  # another process's claim: later calls here answer False
                    row = StoredItem(
                        item.item_id, b"", item.created, 0.0, item.attempts, 0, item.token
                    )
                    claim = _Claim(name, row, 0.0, 0.0)
                    self._remember(str(item.item_id), claim)
                claim.state = "ended"
            return len(deleted)

    def release_item(self, name: str, item: QueueItem) -> bool:
        return self._set_visibility("release_item", name, item, 0.0, "visible") is not None

    def delay_item(self, name: str, item: QueueItem, delay: float) -> float | None:
        return self._set_visibility("delay_item", name, item, delay, "delayed")

    def extend_lease(self, name: str, item: QueueItem, lease_time: float) -> float | None:
        return self._set_visibility("extend_lease", name, item, lease_time, "leased")

    def garbage_collection(self, name: str) -> None:
        """End the leases and delays held here that are due (SQS would wait for the second)."""
        with self._calling("garbage_collection"):
            self._return_due(name)

    # -- inspection and administration ----------------------------------------------

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
            hidden = [
                claim.item._replace(token="")
                for claim in self._claims.values()
                if claim.queue == name
                and claim.state in ("leased", "delayed")
                and claim.item.expire > now
            ]
            return (list(seen.values()) + hidden)[:limit]

    def release_all(self, name: str) -> int:
        """Make visible every item claimed or delayed here, and end every claim made here.

        Other processes' claims are SQS's to end: no call lists them.
        """
        with self._calling("release_all"):
            queue_url = self._client.queue_url(name)
            now = time.time()
            freed = 0
            for claim in self._claims.values():
                if claim.queue != name or claim.state == "ended":
                    continue
                hidden = claim.state != "visible" and now < claim.hidden_until
                if queue_url is not None and hidden:  # past the lease too, to the second
                    shown = self._client.change_visibility(queue_url, claim.item.token, 0)
                    if shown and claim.item.expire > now:
                        freed += 1
                claim.state = "ended"
            return freed

    def close(self) -> None:
        with self._lock:
            self._client.close()

    def forget_connections(self) -> None:
        # boto3 clients pool sockets; a forked child builds its own.
        self._lock = threading.RLock()
        self._client.forget()

    # -- claims known here -------------------------------------------------------------

    def _set_visibility(
        self, operation: str, name: str, item: QueueItem, seconds: float, state: State
    ) -> float | None:
        """ChangeMessageVisibility for a claim still held; the new expire, or None."""
        with self._calling(operation):
            queue_url = self._client.queue_url(name)
            if queue_url is None or self._lost(name, item):
                return None
            claim = self._claims.get(str(item.item_id))
            if seconds and claim is not None:
                reach = self._reach(operation, claim, seconds)
                if reach is None:
                    return None
                seconds = reach
            sent = time.time()
            if not self._client.change_visibility(queue_url, item.token, seconds):
                return None
            expire = sent + seconds if seconds else 0.0
            if claim is not None:
                claim.state = state if seconds else "visible"
                claim.hidden_until = sent + math.ceil(seconds)
                claim.item = claim.item._replace(expire=expire)
            return expire

    def _reach(self, operation: str, claim: _Claim, seconds: float) -> float | None:
        """How long SQS can still hide the claim's message: ``seconds``, less, or None.

        None once the message is visible: SQS hides a message only by
        receiving it, and a visibility change on a visible one does nothing.
        """
        now = time.time()
        if claim.state == "visible" or now >= claim.hidden_until:
            return None
        left = claim.received + MAX_VISIBILITY - now
        if seconds <= left:
            return seconds
        if left < 1:
            return None
        log.warning(
            "%s on %s: SQS hides a received message at most %d s in all, so item %s is "
            "hidden %d s instead of %g s",
            operation,
            self.url,
            MAX_VISIBILITY,
            claim.item.item_id,
            math.floor(left),
            seconds,
        )
        return float(math.floor(left))

    def _lost(self, name: str, item: QueueItem) -> bool:
        """True when this backend knows the claim is over; else SQS decides."""
        if not item.token:
            return True
        claim = self._claims.get(str(item.item_id))
        if claim is None:
            return False  # a claim of another process: its receipt handle works here too
        return claim.queue != name or claim.item.token != item.token or claim.state == "ended"

    def _return_due(self, name: str) -> None:
        """Make visible now what this backend knows is due, where SQS would wait for the second.

        Leases held here that ran out (their holder may still delete them until
        they are claimed again) and items delayed here whose delay has passed.
        """
        now = time.time()
        queue_url = self._client.urls.get(name)
        for claim in self._claims.values():
            due = claim.state in ("leased", "delayed") and claim.item.expire <= now
            if queue_url is None or claim.queue != name or not due:
                continue
            if now < claim.hidden_until:
                self._client.change_visibility(queue_url, claim.item.token, 0)
            claim.item = claim.item._replace(expire=0.0)
            claim.state = "visible"

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
        with self._lock, self._client.translating(operation):
            yield
