"""What happens to an item whose worker fails: the failure policy, retries, holds.

A queue's :class:`FailurePolicy` says how many claims an item gets
(``max_attempts``) and how long it waits between failed attempts
(``retry``, a :class:`Backoff`; None waits for the lease to end, as Drupal
does). It comes from the queue's settings (:attr:`bridge.Queue.failure_policy`),
and a worker's own ``queue_worker(..., max_attempts=, retry=)`` wins over
them. :func:`settle_failure` applies it to one failed item, and so can a
loop of one's own; :func:`decide_failure` only decides, so that the runner
can send the decision in the same round trip as its next claim.

One failure costs one round trip: the error is stored with the item by
``fail_item`` (which also delays it when ``retry`` says so), or, on the last
attempt, the item is held by ``hold_item`` with that error. The success path
never reaches this module.

``attempts`` counts claims, so a worker killed mid-item uses one up too;
:func:`exhausted` tells the runner to hold an item claimed past
``max_attempts`` without running its worker again, which is how a poison
item that kills its process stops after ``max_attempts`` crashes.
"""

from __future__ import annotations

import enum
import logging
import math
import random
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Final, Literal

from bridge.contract import MAX_SECONDS
from bridge.errors import ConfigurationError, InvalidArgumentError
from bridge.items import Settlement

if TYPE_CHECKING:
    from bridge.items import QueueItem
    from bridge.queue import Queue

logger = logging.getLogger(__name__)

DEFAULT_MAX_ATTEMPTS: Final = 10
"""Claims an item gets before it is held, unless the queue or its worker says otherwise."""
TRACEBACK_FRAMES: Final = 5
"""The innermost frames kept in a stored error: where it broke, not how the runner got there."""

FailureOutcome = Literal["failed", "held", "lost"]
"""What :func:`settle_failure` did: error stored and the item comes back; set aside; or
nothing, because the caller's claim was lost to another claimer meanwhile."""


class HoldItem(Exception):
    """Raised by a worker: set the item aside at once, with this reason.

    A held item is never claimed again until someone kicks it (``bridge
    queue kick``); use it for an item no retry can fix (a bounced address, a
    deleted account). Raised ``from`` an exception, that exception is kept as
    the item's ``last_error``; otherwise the previous one stays.
    """

    def __init__(self, reason: str = "") -> None:
        super().__init__(reason)
        self.reason = str(reason)


class AttemptsExhausted(HoldItem):
    """The runner's own hold: an item claimed more often than ``max_attempts``.

    Its earlier claims ended without a stored outcome (the process died, or
    was killed), so its worker is not run again.
    """


class Unset(enum.Enum):
    """The type of :data:`UNSET`."""

    UNSET = "unset"


UNSET: Final = Unset.UNSET
"""A worker option left out, so the queue's setting applies (None means "no limit")."""


def _number(what: str, value: object, *, least: float, most: float = MAX_SECONDS) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidArgumentError(f"{what} must be a number, not {value!r}")
    number = float(value)
    if not (math.isfinite(number) and least <= number <= most):
        raise InvalidArgumentError(f"{what} must be from {least:g} to {most:g}, not {value!r}")
    return number


@dataclass(frozen=True)
class Backoff:
    """Delays between failed attempts: ``initial``, times ``factor`` each attempt, at most
    ``maximum`` seconds, each moved at random by up to ``jitter`` (a fraction) of itself.

    The jitter keeps items that failed together (a remote service down) from
    all coming back in the same second. A delay never exceeds ``maximum``.
    """

    initial: float = 10.0
    factor: float = 2.0
    maximum: float = 3600.0
    jitter: float = 0.1

    def __post_init__(self) -> None:
        initial = _number("Backoff initial", self.initial, least=0.0)
        factor = _number("Backoff factor", self.factor, least=1.0, most=1e6)
        maximum = _number("Backoff maximum", self.maximum, least=initial)
        jitter = _number("Backoff jitter", self.jitter, least=0.0, most=1.0)
        for field, value in (
            ("initial", initial),
            ("factor", factor),
            ("maximum", maximum),
            ("jitter", jitter),
        ):
            object.__setattr__(self, field, value)

    def base(self, attempt: int) -> float:
        """The delay after failed attempt ``attempt`` (1 for the first), before jitter."""
        try:
            delay = self.initial * self.factor ** (max(attempt, 1) - 1)
        except OverflowError:
            return self.maximum
        return min(delay, self.maximum)

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """The delay after failed attempt ``attempt``: :meth:`base` within the jitter."""
        base = self.base(attempt)
        if not self.jitter:
            return base
        spread = (rng or random).uniform(-self.jitter, self.jitter)
        return max(0.0, min(base * (1 + spread), self.maximum))

    @classmethod
    def from_setting(cls, value: object, what: str) -> Backoff | None:
        """A ``retry`` setting: None, a Backoff, or a mapping of its fields."""
        if value is None or isinstance(value, Backoff):
            return value
        if not isinstance(value, Mapping):
            raise ConfigurationError(
                f"{what}: retry must be a mapping such as "
                f'{{"initial": 10, "factor": 2, "maximum": 3600}} or null, not {value!r}'
            )
        unknown = set(value) - {"initial", "factor", "maximum", "jitter"}
        if unknown:
            raise ConfigurationError(
                f"{what}: retry has unknown keys {sorted(unknown)}; "
                "expected initial, factor, maximum, jitter"
            )
        try:
            return cls(**value)
        except InvalidArgumentError as exc:
            raise ConfigurationError(f"{what}: {exc}") from None


def check_max_attempts(value: object) -> int | None:
    """``max_attempts``: None (no limit, Drupal's way) or an int of 1 or more."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgumentError(
            f"max_attempts must be an int of 1 or more, or None for no limit, not {value!r}"
        )
    return value


@dataclass(frozen=True)
class FailurePolicy:
    """How many claims an item gets and how long a failed one waits.

    ``max_attempts``: the claim count at which a failure holds the item
    instead of storing the error and letting it come back; None never holds
    (Drupal's behaviour). ``retry``: the backoff after a failure; None
    leaves the item leased until its lease ends (Drupal's behaviour).
    """

    max_attempts: int | None = DEFAULT_MAX_ATTEMPTS
    retry: Backoff | None = None

    def __post_init__(self) -> None:
        check_max_attempts(self.max_attempts)
        if self.retry is not None and not isinstance(self.retry, Backoff):
            raise InvalidArgumentError(
                f"retry must be a bridge.Backoff or None, not {self.retry!r}"
            )

    @classmethod
    def from_options(cls, options: Mapping[str, Any], what: str) -> FailurePolicy:
        """The policy in a queue's settings (options ``max_attempts`` and ``retry``)."""
        max_attempts = options.get("max_attempts", DEFAULT_MAX_ATTEMPTS)
        try:
            check_max_attempts(max_attempts)
        except InvalidArgumentError as exc:
            raise ConfigurationError(f"{what}: {exc}") from None
        return cls(max_attempts, Backoff.from_setting(options.get("retry"), what))

    def overridden(
        self,
        max_attempts: int | Unset | None = UNSET,
        retry: Backoff | Unset | None = UNSET,
    ) -> FailurePolicy:
        """This policy with a worker's own settings, where the worker gives them."""
        changes: dict[str, Any] = {}
        if max_attempts is not UNSET:
            changes["max_attempts"] = max_attempts
        if retry is not UNSET:
            changes["retry"] = retry
        return replace(self, **changes) if changes else self


DEFAULT_POLICY: Final = FailurePolicy()


def exhausted(
    item: QueueItem, policy: FailurePolicy, queue: Queue | None = None
) -> AttemptsExhausted | None:
    """The hold for an item claimed past ``max_attempts``, or None if it may run.

    Such an item's earlier claims never settled: its process died mid-item.
    Given the item's ``queue``, a store whose kick keeps attempts counts
    ``max_attempts`` anew from each kick (:func:`attempts_allowed`).
    """
    most = policy.max_attempts
    if most is None or item.attempts <= most:
        return None
    kicks = times_kicked(queue, item) if queue is not None else 0
    if item.attempts <= attempts_allowed(most, kicks):
        return None
    return AttemptsExhausted(
        f"attempts exhausted: claimed {item.attempts} times, max_attempts is {most}"
        f"{_per_kick(kicks)}; "
        "the earlier claims ended without an outcome (the process died mid-item?)"
    )


def times_kicked(queue: Queue, item: QueueItem) -> int:
    """How often ``item`` was kicked back from held, where a kick keeps its attempts.

    0 where a kick resets them (``capabilities.kick_resets_attempts``): there
    ``attempts`` already counts from the last kick.
    """
    if queue.capabilities.kick_resets_attempts:
        return 0
    return queue.backend.times_kicked(queue.name, item)


def attempts_allowed(most: int, kicks: int) -> int:
    """The claims an item kicked ``kicks`` times may have had in all: ``most`` per kick.

    On a store whose kick keeps attempts (beanstalkd's reserve count), a
    kick cannot start the count again, so each kick adds ``max_attempts``
    to what the item may use: a kicked item gets at least ``max_attempts``
    more claims (one less if it was held for exhausted attempts, a claim
    that counted), and more if it was held early (``HoldItem``).
    """
    return most * (kicks + 1)


def _per_kick(kicks: int) -> str:
    if not kicks:
        return ""
    return (
        f" per kick (kicked {kicks} time{'s' if kicks != 1 else ''}; "
        "this store does not reset attempts)"
    )


def format_error(exc: BaseException) -> str:
    """The text stored as an item's ``last_error``: type and message on the first line,
    then the cause's, then the innermost frames of the traceback."""
    lines = [_one_line(exc)]
    cause = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    if cause is not None:
        lines.append(f"caused by {_one_line(cause)}")
    frames = traceback.extract_tb(exc.__traceback__)
    if frames:
        kept = frames[-TRACEBACK_FRAMES:]
        which = "" if len(kept) == len(frames) else f", innermost {len(kept)} of {len(frames)}"
        lines.append(f"Traceback (most recent call last{which}):")
        lines.extend(line.rstrip("\n") for line in traceback.format_list(kept))
    return "\n".join(lines)


def first_line(error: str | None) -> str:
    """The first line of a stored error: its type and message."""
    return "" if not error else error.split("\n", 1)[0]


def _one_line(exc: BaseException) -> str:
    kind = type(exc)
    name = kind.__qualname__
    if kind.__module__ not in ("builtins", "__main__"):
        name = f"{kind.__module__}.{name}"
    try:
        message = str(exc)
    except Exception:  # a broken __str__ must not lose the failure itself
        message = "<unprintable>"
    message = message.split("\n", 1)[0] + (" [...]" if "\n" in message else "")
    return f"{name}: {message}" if message else name


def feasible_delay(queue: Queue, item: QueueItem, seconds: float) -> float | None:
    """The delay to ask of the backend for ``seconds``; None when it can make none.

    A delay past the backend's longest is clamped to that longest, so the item
    still waits as long as the store allows. A backend without delays leaves
    the item leased until its lease ends, as Drupal does; a delay of 0 needs
    no delay support and comes back as 0.
    """
    capabilities = queue.capabilities
    if not capabilities.delay:
        if seconds == 0:
            return 0.0
        logger.warning(
            "Queue %s on %s cannot delay items; item %s stays leased until its lease "
            "ends instead of being delayed %g s.",
            queue.name,
            queue.backend.url,
            item.item_id,
            seconds,
        )
        return None
    most = (
        MAX_SECONDS if capabilities.max_delay is None else min(capabilities.max_delay, MAX_SECONDS)
    )
    if seconds > most:
        logger.warning(
            "Queue %s on %s delays items at most %g s; item %s is delayed that long "
            "instead of the %g s asked for.",
            queue.name,
            queue.backend.url,
            most,
            item.item_id,
            seconds,
        )
        return float(most)
    return seconds


def settle_failure(
    queue: Queue, item: QueueItem, exc: BaseException, policy: FailurePolicy | None = None
) -> FailureOutcome:
    """Apply ``policy`` (default: the queue's) to a claimed item whose processing raised ``exc``.

    :class:`HoldItem` holds the item at once. Any other exception is stored
    as the item's ``last_error``; on the item's last attempt it is held with
    that error, otherwise it comes back after the ``retry`` backoff, or when
    its lease ends without one. One round trip, one log line (WARNING for a
    failed attempt, ERROR for a hold). Returns what was done; ``"lost"``
    when the claim had been lost to another claimer, so nothing was written.
    """
    decided = decide_failure(queue, item, exc, policy)
    return decided.report(queue, queue.settle(decided.settlement))


@dataclass(frozen=True)
class FailureDecision:
    """What the failure policy decided for one item: the settlement to send, and how
    to log it once the store has answered (:meth:`report`)."""

    settlement: Settlement
    max_attempts: int | None

    @property
    def outcome(self) -> Literal["failed", "held"]:
        """What the item counts as if the settlement is done."""
        return "held" if self.settlement.action == "hold" else "failed"

    def report(self, queue: Queue, settled: bool) -> FailureOutcome:
        """Log what the store did (one line) and return it: ``failed``, ``held`` or ``lost``."""
        settlement, item = self.settlement, self.settlement.item
        if not settled:
            _log_lost(queue, item, self.outcome)
            return "lost"
        if settlement.action == "hold":
            _log_held(queue, item, settlement.reason, settlement.error)
            return "held"
        error, delay, most = settlement.error, settlement.delay, self.max_attempts
        logger.warning(
            "Queue %s: item %s failed attempt %d%s; %s: %s",
            queue.name,
            item.item_id,
            item.attempts,
            "" if most is None else f" of {most}",
            "waits for its lease to end" if delay is None else f"retried in {delay:.3g} s",
            first_line(error),
            extra={
                "queue": queue.name,
                "item_id": item.item_id,
                "attempt": item.attempts,
                "error": first_line(error),
                "retry_in": delay,
            },
        )
        return "failed"


def decide_failure(
    queue: Queue, item: QueueItem, exc: BaseException, policy: FailurePolicy | None = None
) -> FailureDecision:
    """What :func:`settle_failure` does for ``exc``, decided but not sent.

    A hold (:class:`HoldItem`, or the last of ``max_attempts``) or a failed
    attempt (``fail``, delayed by the ``retry`` backoff as far as the store
    can delay). Writes nothing; the only log line it may add is
    :func:`feasible_delay`'s, for a backoff the store cannot make.
    """
    policy = policy or queue.failure_policy
    most = policy.max_attempts
    if isinstance(exc, HoldItem):
        cause = exc.__cause__
        error = None if cause is None else format_error(cause)
        return FailureDecision(Settlement.hold(item, exc.reason or type(exc).__name__, error), most)
    error = format_error(exc)
    if most is not None and item.attempts >= most:
        kicks = times_kicked(queue, item)
        if item.attempts >= attempts_allowed(most, kicks):
            reason = f"failed on attempt {item.attempts} of max_attempts {most}{_per_kick(kicks)}"
            return FailureDecision(Settlement.hold(item, reason, error), most)
    delay = None
    if policy.retry is not None:
        delay = feasible_delay(queue, item, policy.retry.delay(item.attempts))
    return FailureDecision(Settlement.fail(item, error, delay), most)


def _log_held(queue: Queue, item: QueueItem, reason: str, error: str | None) -> None:
    shown = first_line(error if error is not None else item.last_error)
    logger.error(
        "Queue %s: held item %s after attempt %d: %s%s",
        queue.name,
        item.item_id,
        item.attempts,
        reason,
        f"; last error: {shown}" if shown else "",
        extra={
            "queue": queue.name,
            "item_id": item.item_id,
            "attempt": item.attempts,
            "hold_reason": reason,
            "error": shown,
        },
    )


def _log_lost(queue: Queue, item: QueueItem, outcome: str) -> None:
    logger.warning(
        "Lost the lease on item %s of queue %s before it could be %s; "
        "it is held by another claimer.",
        item.item_id,
        queue.name,
        outcome,
    )
