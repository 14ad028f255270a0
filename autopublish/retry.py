"""Pure policy: the outcome of one attempt -> the delivery's next state and time.

No I/O and no clock of its own: ``now`` and a random number in [0, 1) are passed in,
so backoff is computed and asserted in tests, never slept.
"""

from __future__ import annotations

from dataclasses import dataclass

from autopublish.durations import format_duration
from autopublish.errors import (
    AuthError,
    PermanentError,
    PublishError,
    RateLimitedError,
    TransientError,
    UncertainError,
)
from autopublish.models import DeliveryStatus


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_tries: int = 8
    give_up_after: float = 2 * 86400.0  # seconds since the first try
    base: float = 60.0
    cap: float = 6 * 3600.0
    jitter: float = 0.25  # up to +25 %
    reconcile_after: float = 60.0  # let the platform's read side catch up before looking


@dataclass(frozen=True, slots=True)
class Decision:
    status: DeliveryStatus
    next_attempt_at: float | None
    message: str
    pause_channel: bool = False
    needs_editor: bool = False


def backoff(tries: int, policy: RetryPolicy, rand: float) -> float:
    """Exponential backoff with jitter: base * 2^(tries-1), capped, plus up to ``jitter``."""
    delay = min(policy.cap, policy.base * (2.0 ** max(0, tries - 1)))
    return delay * (1.0 + policy.jitter * rand)


def decide(
    error: PublishError,
    *,
    tries: int,
    first_try_at: float | None,
    now: float,
    policy: RetryPolicy,
    rand: float,
    idempotent: bool,
    can_read_back: bool,
) -> Decision:
    """What to do after ``error`` on try number ``tries``."""
    age = now - (first_try_at if first_try_at is not None else now)
    if isinstance(error, AuthError):
        return Decision(DeliveryStatus.HELD, None, f"Held: {error.message}", pause_channel=True)
    if isinstance(error, PermanentError):
        return Decision(DeliveryStatus.FAILED, None, f"Failed: {error.message}")
    if isinstance(error, UncertainError):
        # Read back first even where the platform drops repeats: its memory of keys can be
        # short (Mastodon keeps an Idempotency-Key for one hour).
        if can_read_back:
            return Decision(DeliveryStatus.UNCERTAIN, now + policy.reconcile_after,
                            f"Not sure it was posted: {error.message}. autopublish will check the platform before trying again")
        if idempotent:
            delay = backoff(tries, policy, rand)
            return _retry_or_give_up(error, tries, age, now, delay, policy, prefix="Not sure it went out; the platform drops repeats, so it will be sent again")
        return Decision(DeliveryStatus.UNCERTAIN, None,
                        f"Not sure it was posted: {error.message}. This platform cannot be checked automatically; "
                        "an editor must look and mark it posted or not posted", needs_editor=True)
    if isinstance(error, RateLimitedError):
        wait = error.retry_after if error.retry_after and error.retry_after > 0 else backoff(tries, policy, rand)
        wait = wait * (1.0 + 0.05 * rand)
        if age + wait > policy.give_up_after:
            return Decision(DeliveryStatus.FAILED, None, f"Failed: still rate-limited after {format_duration(age)}: {error.message}")
        return Decision(DeliveryStatus.WAITING, now + wait, f"Rate-limited: {error.message}; next try in {format_duration(wait)}")
    if isinstance(error, TransientError):
        return _retry_or_give_up(error, tries, age, now, backoff(tries, policy, rand), policy, prefix=error.message)
    # A PublishError outside the tree: treat like an unknown outcome, never as safe to repeat.
    return Decision(DeliveryStatus.UNCERTAIN, None, f"Not sure it was posted: {error.message}", needs_editor=True)


def _retry_or_give_up(error: PublishError, tries: int, age: float, now: float, delay: float, policy: RetryPolicy, *, prefix: str) -> Decision:
    if tries >= policy.max_tries:
        return Decision(DeliveryStatus.FAILED, None, f"Failed after {tries} tries: {error.message}")
    if age + delay > policy.give_up_after:
        return Decision(DeliveryStatus.FAILED, None, f"Failed: gave up after {format_duration(age)} of tries: {error.message}")
    return Decision(DeliveryStatus.WAITING, now + delay, f"{prefix}; next try in {format_duration(delay)}")
