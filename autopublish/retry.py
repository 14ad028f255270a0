"""Pure policy: the outcome of one attempt -> the delivery's next state and time.

No I/O and no clock of its own: ``now`` and a random number in [0, 1) are passed in,
so backoff is computed and asserted in tests, never slept.
"""

from __future__ import annotations

from dataclasses import dataclass

from autopublish.errors import (
    AuthError,
    CannotCheckError,
    HeldError,
    NotReadyError,
    PermanentError,
    PublishError,
    RateLimitedError,
    TransientError,
    UncertainError,
)
from autopublish.messages import Message, msg
from autopublish.models import DeliveryStatus


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_tries: int = 8
    give_up_after: float = 2 * 86400.0  # seconds since the first try
    base: float = 60.0
    cap: float = 6 * 3600.0
    jitter: float = 0.25  # up to +25 %
    reconcile_after: float = 60.0  # let the platform's read side catch up before looking
    max_checks: int = 10  # failed read-backs of one doubt before an editor takes it
    check_give_up_after: float = 86400.0  # seconds a doubt may stay open before an editor takes it
    resend_margin: float = 300.0  # keep this far inside a platform's idempotency window


@dataclass(frozen=True, slots=True)
class Decision:
    status: DeliveryStatus
    next_attempt_at: float | None
    message: Message  # str() is the English text
    pause_channel: bool = False
    needs_editor: bool = False
    count_try: bool = True  # False: the attempt does not count toward max_tries (NotReadyError)


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
        return Decision(DeliveryStatus.HELD, None, msg("held_auth", detail=error.message, platform=error.platform), pause_channel=True)
    if isinstance(error, HeldError):
        return Decision(DeliveryStatus.HELD, None, msg("held_policy", detail=error.message, platform=error.platform), needs_editor=True)
    if isinstance(error, NotReadyError):
        # Not a failed try: the platform is preparing the post; only the age bound applies.
        wait = max(1.0, error.retry_after)
        if age + wait > policy.give_up_after:
            return Decision(DeliveryStatus.FAILED, None, msg("failed_not_ready", age_seconds=age, detail=error.message))
        return Decision(DeliveryStatus.WAITING, now + wait, msg("waiting_not_ready", wait_seconds=wait, detail=error.message), count_try=False)
    if isinstance(error, PermanentError):
        return Decision(DeliveryStatus.FAILED, None, msg("failed_permanent", detail=error.message))
    if isinstance(error, UncertainError):
        # Read back first even where the platform drops repeats: its memory of keys can be
        # short (Mastodon keeps an Idempotency-Key for one hour).
        if can_read_back:
            return Decision(DeliveryStatus.UNCERTAIN, now + policy.reconcile_after, msg("uncertain_will_check", detail=error.message))
        if idempotent:
            delay = backoff(tries, policy, rand)
            return _retry_or_give_up(error, tries, age, now, delay, policy, code="waiting_repeats_dropped")
        return Decision(DeliveryStatus.UNCERTAIN, None, msg("uncertain_no_check", detail=error.message), needs_editor=True)
    if isinstance(error, RateLimitedError):
        wait = error.retry_after if error.retry_after and error.retry_after > 0 else backoff(tries, policy, rand)
        wait = wait * (1.0 + 0.05 * rand)
        if age + wait > policy.give_up_after:
            return Decision(DeliveryStatus.FAILED, None, msg("failed_rate_limited", age_seconds=round(age), detail=error.message))
        return Decision(DeliveryStatus.WAITING, now + wait, msg("waiting_rate_limited", detail=error.message, wait_seconds=round(wait)))
    if isinstance(error, TransientError):
        return _retry_or_give_up(error, tries, age, now, backoff(tries, policy, rand), policy, code="waiting_transient")
    # A PublishError outside the tree: treat like an unknown outcome, never as safe to repeat.
    return Decision(DeliveryStatus.UNCERTAIN, None, msg("uncertain_unknown", detail=error.message), needs_editor=True)


def _retry_or_give_up(error: PublishError, tries: int, age: float, now: float, delay: float, policy: RetryPolicy, *, code: str) -> Decision:
    if tries >= policy.max_tries:
        return Decision(DeliveryStatus.FAILED, None, msg("failed_tries", tries=tries, detail=error.message))
    if age + delay > policy.give_up_after:
        return Decision(DeliveryStatus.FAILED, None, msg("failed_gave_up", age_seconds=round(age), detail=error.message))
    return Decision(DeliveryStatus.WAITING, now + delay, msg(code, detail=error.message, wait_seconds=round(delay)))


def decide_check(
    error: PublishError,
    *,
    checks: int,
    doubt_since: float,
    now: float,
    policy: RetryPolicy,
    rand: float,
) -> Decision:
    """What to do after reading the platform back failed for the ``checks``-th time in a row.

    A refused permission goes to an editor at once (the channel keeps posting); anything
    else is checked again later, exponentially spaced from ``reconcile_after`` (at least
    ``base``) and never
    sooner than the platform's retry-after, until ``max_checks`` or ``check_give_up_after``.
    """
    age = max(0.0, now - doubt_since)
    if isinstance(error, (CannotCheckError, AuthError)):
        missing = getattr(error, "missing_permission", "")
        said = msg("uncertain_no_read_back_needs", permission=missing, detail=error.message) if missing else \
            msg("uncertain_no_read_back", detail=error.message)
        return Decision(DeliveryStatus.UNCERTAIN, None, said, needs_editor=True)
    first = max(policy.reconcile_after, policy.base)  # reconcile_after may be 0 ("look at once"); backoff never is
    delay = min(policy.cap, first * (2 ** max(0, checks - 1))) * (1.0 + policy.jitter * rand)
    if isinstance(error, RateLimitedError) and error.retry_after and error.retry_after > delay:
        delay = error.retry_after * (1.0 + 0.05 * rand)
    if checks >= policy.max_checks or age + delay > policy.check_give_up_after:
        return Decision(DeliveryStatus.UNCERTAIN, None,
                        msg("uncertain_checks_exhausted", checks=checks, age_seconds=round(age), detail=error.message), needs_editor=True)
    return Decision(DeliveryStatus.UNCERTAIN, now + delay, msg("uncertain_check_again", detail=error.message, wait_seconds=round(delay)))


def resend_is_safe(window: float | None, first_try_at: float | None, now: float, policy: RetryPolicy) -> bool:
    """True while the platform still remembers the post's idempotency key.

    Counted from the first try: a post the platform created on any try was created no
    earlier, so its key is remembered at least until ``first_try_at + window``.
    """
    if not window or first_try_at is None:
        return False
    return now - first_try_at < window - policy.resend_margin
