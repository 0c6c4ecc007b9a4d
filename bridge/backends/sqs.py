"""Queues on Amazon SQS (``sqs://``), spoken through boto3.

Not through Kombu's SQS transport: here one ``ReceiveMessage`` takes up to 10
messages and sets their visibility to the lease in the same call, so the
lease holds from the first instant. The queue semantics live here;
``sqs_client.py`` makes the SQS calls, ``sqs_layout.py`` names and sets up
the queues, ``sqs_messages.py`` says what a message carries,
``sqs_claims.py`` keeps what this object knows of its claims and
``sqs_held.py`` runs the held queues. ``docs/sqs.md`` explains the choices.

Features:
    Reliable and shared. The lease is SQS's visibility timeout, set per
    claim: exact, but SQS counts whole seconds, so it is rounded up; a lease
    that ends between two seconds is ended exactly by the backend that holds
    it, at its next call. A dead claimer's items come back when their lease
    ends. ``extend_lease``, ``release_item`` and ``delay_item`` are
    ``ChangeMessageVisibility``; ``attempts`` is SQS's receive count (plus
    the claims of the item's earlier copies). Delays: ``DelaySeconds`` at
    creation (up to 900 s, and never cut short), the visibility timeout for
    ``delay_item``. No priority, no order. Counts are SQS's approximate
    counters. ``oldest_ready_age`` is None: SQS has it only as a CloudWatch
    metric (``ApproximateAgeOfOldestMessage``), not a queue attribute.

    Tokens are receipt handles, so any process can settle a claim; SQS
    refuses a stale handle's visibility changes, but reports a stale delete
    as done, so only the backend that saw the newer claim answers False.
    After its own ``delay_item`` the holder may still make every call; after
    its own release (or its lease's end) it may delete and release, but SQS
    cannot hide a visible message again, so ``extend_lease`` and
    ``delay_item`` return False (``settle_after_release`` is False). SQS
    hides a message at most 12 h from its receive: a longer extension or
    delay of a claim made here is cut to what is left, with a warning.

    Failures and holds (``hold``): a message cannot change, so ``fail_item``
    sends a copy carrying the error (delayed as asked, or to the lease's end,
    counted as leased) and ``hold_item`` one to the queue's held queue; then
    the claimed message is deleted. Two calls: a crash between them leaves
    the item twice, never lost, and the claim ends either way. Only the
    backend object that received a message has the body to copy:
    ``hold_item`` of another's claim is refused, ``fail_item`` of one only
    delays it, with a warning. Retry delays past SQS's 900 s go in steps
    (``bridge-not-before``). Held items: ``sqs_held.py``.

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
    Two standard SQS queues per bridge queue: the queue, and ``<queue>-held``,
    its RedrivePolicy dead-letter target; names too long or not plain are
    hashed (``sqs_layout.py``). A message's body is the payload when it is
    text SQS accepts, else base64; the item's id, creation, attempts, last
    error and hold ride in message attributes (``sqs_messages.py``), which
    an item's first message does without. In memory, each backend object
    remembers the latest claim of the last 100,000 items it received.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import final

from bridge.backends import sqs_held
from bridge.backends.sqs_claims import Claim, Claims, State, fence, replace, send_on
from bridge.backends.sqs_client import MAX_VISIBILITY, SqsClient, client_args
from bridge.backends.sqs_layout import SqsLayout
from bridge.backends.sqs_messages import (
    MAX_MESSAGE_DELAY,
    Message,
    copy_of,
    not_before,
    stored,
)
from bridge.contract import Backend, Capabilities
from bridge.errors import (
    BackendError,
    ConfigurationError,
    MissingDependencyError,
    UnsupportedOperationError,
)
from bridge.items import ItemCounts, ItemId, QueueItem, StoredItem

log = logging.getLogger(__name__)

MAX_CREATE_DELAY = MAX_MESSAGE_DELAY
"""SQS's longest DelaySeconds."""
_BATCH = 10
_REFRESH_CHECK = 3600.0
"""How often a backend object asks whether a queue's held messages need sending again."""

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
    hold=True,
)
"""A creation delay cannot be cut short (``cancel_delays``), and a released
message cannot be hidden again (``settle_after_release``)."""


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
        try:  # boto3 reads its configuration here (AWS_PROFILE, ~/.aws/config)
            arguments = client_args(url, region, endpoint_url, is_secure, boto3)
        except botocore.exceptions.BotoCoreError as exc:
            raise ConfigurationError(f"{self.url}: {exc}") from exc
        arguments["config"] = botocore.config.Config(
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"max_attempts": 2, "mode": "standard"},
        )
        self._client = SqsClient(boto3, botocore.exceptions, arguments, self.url, wait_time)
        self._layout = SqsLayout(self._client, queue_prefix)
        self._lock = threading.RLock()
        self._claims = Claims()
        self._refresh_checked: dict[str, float] = {}

    # -- queue set-up -----------------------------------------------------------

    def create_queue(self, name: str) -> None:
        with self._calling("create_queue"):
            self._layout.ensure_queue(name)

    def delete_queue(self, name: str) -> None:
        """PurgeQueue of the queue and its held queue: they stay (with their policies)."""
        with self._calling("delete_queue"):
            for claim in self._claims.of(name):
                claim.state = "ended"
            for queue_url in (self._layout.queue_url(name), self._layout.held_url(name)):
                if queue_url is not None:
                    self._client.purge(queue_url)

    # -- items -------------------------------------------------------------------

    def create_items(
        self, name: str, payloads: Sequence[bytes], delay: float, priority: int
    ) -> list[ItemId]:
        with self._calling("create_items"):
            queue_url = self._layout.ensure_queue(name)
            return list(self._client.create(queue_url, list(payloads), delay))

    def counts(self, name: str) -> ItemCounts:
        """SQS's counters, moved between leased and delayed by what this backend knows."""
        with self._calling("counts"):
            queue_url = self._layout.queue_url(name)
            if queue_url is None:
                return ItemCounts(0, 0, 0)
            self._return_due(name)
            visible, in_flight, delayed = self._client.counters(queue_url)
            held_url = self._layout.held_url(name)
            held = sum(self._client.counters(held_url)) if held_url else 0
            # SQS counts a delay_item as in flight, a failure's copy as delayed.
            delayed_here, waiting_here = self._claims.hidden_here(name, time.time())
            to_delayed = min(delayed_here, in_flight) - min(waiting_here, delayed)
            return ItemCounts(visible, in_flight - to_delayed, delayed + to_delayed, held)

    def oldest_ready_age(self, name: str) -> float | None:
        """None: SQS keeps ``ApproximateAgeOfOldestMessage`` in CloudWatch, not the queue.

        Alert on that CloudWatch metric instead; receiving messages to find
        the oldest would count as receives and cut into their attempts.
        """
        return None

    def claim_items(self, name: str, count: int, lease_time: float) -> list[StoredItem]:
        with self._calling("claim_items"):
            queue_url = self._layout.queue_url(name)
            if queue_url is None:
                return []
            self._return_due(name)
            claimed: dict[str, StoredItem] = {}  # a standard queue may repeat a message
            early: list[Message] = []
            while len(claimed) < count:
                sent = time.time()
                hidden = math.ceil(lease_time)
                wanted = min(_BATCH, count - len(claimed))
                messages = self._client.receive(queue_url, wanted, hidden)
                if not messages:
                    break
                for message in messages:
                    if not_before(message) > sent:
                        early.append(message)
                        continue
                    looks = self._claims.looks(message["MessageId"])
                    item = stored(message, sent + lease_time, looks)
                    claimed[str(item.item_id)] = item
                    self._claims.remember(str(item.item_id), Claim(name, item, sent, sent + hidden))
            if early:
                send_on(self._client, queue_url, early)
            return list(claimed.values())

    def delete_items(self, name: str, items: Sequence[QueueItem]) -> int:
        with self._calling("delete_items"):
            queue_url = self._layout.queue_url(name)
            held = [item for item in items if not self._claims.lost(name, item)]
            if queue_url is None or not held:
                return 0
            deleted = self._client.delete(queue_url, [item.token for item in held])
            for position in deleted:
                item = held[position]
                claim = self._claims.mine(item)
                if claim is None:  # another process's claim: later calls here answer False
                    row = StoredItem(
                        item.item_id, b"", item.created, 0.0, item.attempts, 0, item.token
                    )
                    claim = Claim(name, row, 0.0, 0.0)
                    self._claims.remember(str(item.item_id), claim)
                claim.state = "ended"
            return len(deleted)

    def release_item(self, name: str, item: QueueItem) -> bool:
        return self._set_visibility("release_item", name, item, 0.0, "visible") is not None

    def delay_item(self, name: str, item: QueueItem, delay: float) -> float | None:
        return self._set_visibility("delay_item", name, item, delay, "delayed")

    def extend_lease(self, name: str, item: QueueItem, lease_time: float) -> float | None:
        return self._set_visibility("extend_lease", name, item, lease_time, "leased")

    def fail_item(
        self, name: str, item: QueueItem, error: str, delay: float | None
    ) -> float | None:
        """A copy carrying the error replaces the message, hidden ``delay`` s or for the lease.

        Two calls (send, delete), three when the lease is about to end. The
        claim ends: the copy has no receipt handle until someone receives it.
        """
        with self._calling("fail_item"):
            queue_url = self._layout.queue_url(name)
            if queue_url is None or self._claims.lost(name, item):
                return None
            claim = self._claims.mine(item)
            now = time.time()
            if claim is None:
                return self._fail_elsewhere(name, item, delay, now)
            seconds = delay
            if seconds is None:  # the rest of the lease, if it is still hidden
                hidden = claim.state in ("leased", "delayed")
                seconds = max(claim.item.expire - now, 0.0) if hidden else 0.0
            if not fence(self._client, queue_url, claim, now):
                return None
            row = claim.item
            copy = copy_of(row, attempts=row.attempts, error=error, delay=seconds)
            replace(self._client, queue_url, queue_url, claim, copy)
            claim.item = row._replace(expire=now + seconds, last_error=error)
            claim.state = "waiting" if delay is None and seconds else "ended"
            return now + seconds

    def garbage_collection(self, name: str) -> None:
        """End the leases and delays held here that are due (SQS would wait for the second).

        At most hourly, also send again the held messages near SQS's
        retention (:func:`sqs_held.refresh_if_due`); a failure there, such as
        a role without ``sqs:TagQueue``, is logged, not raised.
        """
        with self._calling("garbage_collection"):
            self._return_due(name)
        now = time.monotonic()
        if now - self._refresh_checked.get(name, -_REFRESH_CHECK) >= _REFRESH_CHECK:
            self._refresh_checked[name] = now
            try:
                with self._calling("garbage_collection"):
                    sqs_held.refresh_if_due(self._layout, name)
            except BackendError as exc:
                log.warning("held items of %r on %s not refreshed: %s", name, self.url, exc)

    # -- holding -------------------------------------------------------------------

    def hold_item(self, name: str, item: QueueItem, reason: str, error: str | None) -> bool:
        with self._calling("hold_item"):
            queue_url = self._layout.queue_url(name)
            if queue_url is None or self._claims.lost(name, item):
                return False
            claim = self._claims.mine(item)
            if claim is None:
                raise UnsupportedOperationError(
                    f"hold_item on {self.url}: item {item.item_id!r} was claimed through "
                    "another backend object; only the one that received the message has "
                    "the body a hold copies to the held queue: hold it there"
                )
            now = time.time()
            if not fence(self._client, queue_url, claim, now):
                return False
            held_url = self._layout.ensure_held(name)
            sqs_held.hold(self._client, queue_url, held_url, claim, reason, error, now)
            return True

    def held_items(self, name: str, limit: int) -> list[StoredItem]:
        with self._calling("held_items"):
            return sqs_held.listed(self._layout, name, limit)

    def kick(self, name: str, limit: int | None) -> int:
        with self._calling("kick"):
            return self._kicked(sqs_held.act(self._layout, name, sqs_held.oldest(limit), kick=True))

    def kick_item(self, name: str, item_id: ItemId) -> bool:
        with self._calling("kick_item"):
            return (
                self._kicked(sqs_held.act(self._layout, name, sqs_held.one(item_id), kick=True))
                == 1
            )

    def delete_held(self, name: str, limit: int | None) -> int:
        with self._calling("delete_held"):
            return len(sqs_held.act(self._layout, name, sqs_held.oldest(limit), kick=False))

    def _kicked(self, item_ids: list[str]) -> int:
        # A kick restarts attempts: an old claim recorded here would make the next look stale.
        for item_id in item_ids:
            self._claims.forget(item_id)
        return len(item_ids)

    # -- inspection and administration ----------------------------------------------

    def queue_names(self) -> dict[str, int]:
        """Every queue under the ``queue_prefix`` with items (all the account's without one)."""
        with self._calling("queue_names"):
            counts = {name: self.counts(name).total for name in list(self._layout.queues())}
            return {name: count for name, count in counts.items() if count}

    def peek(self, name: str, limit: int) -> list[StoredItem]:
        """Visible messages, received with a zero visibility timeout, then claims held here."""
        with self._calling("peek"):
            queue_url = self._layout.queue_url(name)
            if queue_url is None or limit == 0:
                return []
            self._return_due(name)
            seen: dict[str, StoredItem] = {}
            while len(seen) < limit:
                messages = self._client.receive(queue_url, min(_BATCH, limit - len(seen)), 0)
                fresh = [m for m in messages if m["MessageId"] not in seen]
                for message in messages:  # SQS counts every receive: discount the looks
                    self._claims.looked(message["MessageId"])
                for message in fresh:
                    looks = self._claims.looks(message["MessageId"])
                    seen[message["MessageId"]] = stored(message, 0.0, looks)._replace(token="")
                if not fresh:
                    break
            hidden = self._claims.hidden_items(name, time.time())
            return (list(seen.values()) + hidden)[:limit]

    def release_all(self, name: str) -> int:
        """Make visible every item claimed or delayed here, and end every claim made here.

        Other processes' claims are SQS's to end: no call lists them. Copies
        ``fail_item`` delayed to the end of a lease stay delayed (SQS cannot
        cut a DelaySeconds short).
        """
        with self._calling("release_all"):
            queue_url = self._layout.queue_url(name)
            now = time.time()
            freed = 0
            for claim in self._claims.of(name):
                if claim.state in ("ended", "waiting"):
                    claim.state = "ended"
                    continue
                hidden = claim.state != "visible" and now < claim.hidden_until
                if queue_url is not None and hidden:  # past the lease too, to the second
                    shown = self._client.change_visibility(queue_url, claim.item.token, 0)
                    if shown and claim.item.expire > now:
                        freed += 1
                claim.state = "ended"
            return freed

    def close(self) -> None:
        with self._lock, self._client.translating("close"):
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
            queue_url = self._layout.queue_url(name)
            if queue_url is None or self._claims.lost(name, item):
                return None
            claim = self._claims.mine(item)
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

    def _reach(self, operation: str, claim: Claim, seconds: float) -> float | None:
        """:meth:`Claim.reach`, with a warning when SQS's 12 h cut the time short."""
        reach = claim.reach(seconds, time.time())
        if reach is not None and reach < seconds:
            log.warning(
                "%s on %s: SQS hides a received message at most %d s in all, so item %s is "
                "hidden %d s instead of %g s",
                operation,
                self.url,
                MAX_VISIBILITY,
                claim.item.item_id,
                reach,
                seconds,
            )
        return reach

    def _fail_elsewhere(
        self, name: str, item: QueueItem, delay: float | None, now: float
    ) -> float | None:
        """``fail_item`` of another object's claim: no body to copy, so only the delay."""
        log.warning(
            "fail_item on %s: item %s was claimed through another backend object, which "
            "alone has the body a copy needs; its error is not kept",
            self.url,
            item.item_id,
        )
        seconds = max(item.expire - now, 0.0) if delay is None else delay
        return self._set_visibility("fail_item", name, item, seconds, "delayed")

    def _return_due(self, name: str) -> None:
        """Make visible now what this backend knows is due, where SQS would wait for the second.

        Leases held here that ran out (their holder may still delete them until
        they are claimed again) and items delayed here whose delay has passed.
        """
        now = time.time()
        queue_url = self._layout.urls.get(name)
        if queue_url is None:
            return
        for claim in self._claims.of(name):
            if claim.state not in ("leased", "delayed") or claim.item.expire > now:
                continue
            if now < claim.hidden_until:
                self._client.change_visibility(queue_url, claim.item.token, 0)
            claim.item = claim.item._replace(expire=0.0)
            claim.state = "visible"

    @contextmanager
    def _calling(self, operation: str) -> Iterator[None]:
        """Serialize calls; boto3's errors become bridge errors naming the endpoint."""
        with self._lock, self._client.translating(operation):
            yield
