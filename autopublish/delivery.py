"""Delivery: due deliveries -> publish -> record, one lane per channel; settling posts in doubt."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from autopublish.config import ChannelConfig
from autopublish.errors import AuthError, NotReadyError, PublishError, StateError, UncertainError
from autopublish.messages import Message, msg
from autopublish.models import Article, DeliveryStatus, Post, Receipt
from autopublish.pacing import next_allowed
from autopublish.platforms.base import Publisher
from autopublish.render import FitError, article_values, fit
from autopublish.retry import decide, decide_check, resend_is_safe
from autopublish.stage import Stage
from autopublish.store import DeliveryRow

log = logging.getLogger("autopublish.pipeline")


@dataclass
class SweepResult:
    sent: int = 0
    failed: int = 0
    waiting: int = 0
    uncertain: int = 0
    held: int = 0
    reconciled: int = 0
    outcomes: list[str] = field(default_factory=list)


def delivery_key(delivery_id: int, channel: str, article_key: str) -> str:
    """Stable per delivery: the idempotency key / marker a platform sees on every try."""
    digest = hashlib.sha256(f"{channel}\x00{article_key}".encode()).hexdigest()[:10]
    return f"ap-{delivery_id}-{digest}"


def build_post(article: Article, channel: ChannelConfig, publisher: Publisher[Any], key: str, tz: str = "UTC", *,
               source_origin: str | None = None) -> Post:
    """The post ``channel`` will publish for ``article``, fitted to the platform. FitError if impossible."""
    limits = publisher.current_limits()
    values = article_values(article, tz)
    text = fit(channel.template, values, limits.max_length, publisher.count)
    description = values["summary"]
    if len(description) > 300:
        description = description[:299].rsplit(" ", 1)[0] + "…"
    return Post(
        channel=channel.name,
        key=key,
        text=text,
        article=article,
        link=article.link or None,
        image=article.image if limits.images else None,
        alt_text=article.image_alt or article.title,
        title=article.title,
        description=description,
        source_origin=source_origin,
    )


class Delivery(Stage):
    def deliver_due(self, stop: threading.Event | None = None, *, wait: bool = True) -> SweepResult:
        """Send every due delivery once (oldest first, within pacing); settle uncertain ones.

        Each channel's work runs on its own lane, so a hanging platform delays only its own
        channel; a channel whose lane is still busy from an earlier sweep is left for the
        next one. ``wait=False`` (the daemon) returns at once; the result then counts nothing.
        """
        with self.lock:
            # own claims on a channel whose lane is idle lost their answer (the store failed after the post)
            for delivery_id in self.store.settle_own_claims(except_channels=self.lanes.in_flight()):
                log.warning("Delivery %s was posted but its outcome could not be recorded; it is now uncertain and will be checked",
                            delivery_id)
            for delivery_id in self.store.recover_dead_nodes():
                log.warning("Delivery %s was being posted by a node that stopped answering; it is now uncertain and will be checked",
                            delivery_id)
            self._hold_paused_channels()
            now = self.clock()
            due: dict[str, None] = {}  # channels with work, in the order of their oldest due delivery
            for row in self.store.due_deliveries(now):
                due.setdefault(row.channel)
            for row in self.store.deliveries_with_status(DeliveryStatus.UNCERTAIN):
                if not row.needs_editor and (row.next_attempt_at is None or row.next_attempt_at <= now):
                    due.setdefault(row.channel)
            started: list[tuple[threading.Thread, SweepResult]] = []
            for channel in due:
                result = SweepResult()
                thread = self.lanes.start(channel, self._lane_job(channel, result, stop))
                if thread is not None:
                    started.append((thread, result))
        total = SweepResult()
        if wait:
            for thread, result in started:
                thread.join()
                for name in ("sent", "failed", "waiting", "uncertain", "held", "reconciled"):
                    setattr(total, name, getattr(total, name) + getattr(result, name))
                total.outcomes.extend(result.outcomes)
            self.raise_lane_error()
        return total

    def raise_lane_error(self) -> None:
        """Re-raise, once, a store failure that stopped a lane (the store failing stops publishing)."""
        if self.lane_errors:
            error = self.lane_errors[0]
            self.lane_errors.clear()
            raise error

    def _lane_job(self, channel: str, result: SweepResult, stop: threading.Event | None) -> Callable[[], None]:
        def run() -> None:
            try:
                self._sweep_channel(channel, result, stop)
            except StateError as exc:  # the store failed: the caller (or the daemon's next tick) must see it
                self.lane_errors.append(exc)
            except Exception as exc:  # a lane must not die silently; the next sweep tries again
                log.error("Delivering to channel %s stopped (%s); it will go on at the next sweep", channel,
                          getattr(exc, "message", type(exc).__name__), extra={"channel": channel})
        return run

    def _sweep_channel(self, channel: str, result: SweepResult, stop: threading.Event | None) -> None:
        """One channel's doubts and due posts, under its lease: one node at a time posts for a channel,
        so its order and pacing hold across nodes. (SQLite has one node, whose lane is enough.)"""
        shared, ttl = not self.store.single_node, self.lease_ttl()
        if shared and not self.store.lease_channel(channel, ttl):
            return  # another node posts for this channel now
        try:
            leased = time.monotonic()
            self._reconcile_due(result, stop, channel=channel)
            # read after settling doubts: one found missing is due again in this same sweep
            for row in self.store.due_deliveries(self.clock(), channels=[channel]):
                if stop is not None and stop.is_set():
                    break
                if shared and time.monotonic() - leased > ttl / 3:
                    if not self.store.lease_channel(channel, ttl):
                        return
                    leased = time.monotonic()
                if not self._deliver(row, result):
                    return  # never skip ahead of a row we could not claim: the channel's order holds
        finally:
            if shared:
                self.store.release_channel(channel)

    def _hold_paused_channels(self) -> None:
        """Hold queued deliveries of paused channels, visibly, until the channel is resumed.

        A channel resumed since its pause alert (by an editor or admin) closes that alert.
        """
        for name in self.config.channels:
            channel = self.store.channel(name)
            if not channel.paused:
                self.notifier.resolved(f"paused:{name}", msg("alert_resumed", channel=name))
                continue
            if channel.paused_by != "autopublish":
                continue  # paused on purpose by an editor: no reminders
            # paused by a failure: the admins are reminded every `repeat` until someone acts
            self.notifier.problem(f"paused:{name}", msg("alert_paused", channel=name, detail=channel.paused_reason))
            for row in self.store.deliveries_with_status(DeliveryStatus.QUEUED, DeliveryStatus.WAITING, channel=name):
                self.store.transition(row.id, DeliveryStatus.HELD, msg("held_paused", detail=channel.paused_reason),
                                      expect=(DeliveryStatus.QUEUED, DeliveryStatus.WAITING))

    def _deliver(self, row: DeliveryRow, result: SweepResult) -> bool:
        """Try to post ``row``; False only when its claim was lost (another node or an editor moved it)."""
        channel = self.config.channels.get(row.channel)
        publisher = self.publishers.get(row.channel)
        if channel is None or publisher is None:
            return True  # a channel removed from the config keeps its history and its queue
        now = self.clock()
        state = self.store.channel(row.channel)
        if state.paused:
            self.store.transition(row.id, DeliveryStatus.HELD, msg("held_paused", detail=state.paused_reason),
                                  expect=(DeliveryStatus.QUEUED, DeliveryStatus.WAITING))
            result.held += 1
            return True
        kind, target_id = self.store.delivery_action(row.id)
        if kind != "post":
            self._deliver_action(row, kind, target_id, channel, publisher, result)
            return True
        wait_until = self._pacing(channel, now)
        if wait_until is not None:
            self.store.defer(row.id, wait_until, msg("pacing", time_at=wait_until))
            return True
        article = self.store.article(row.article_id)
        key = delivery_key(row.id, row.channel, article.key)
        try:
            post = build_post(article, channel, publisher, key, self.config.settings.timezone, source_origin=self.source_origin(article))
        except FitError as exc:
            self.store.transition(row.id, DeliveryStatus.FAILED, msg("failed_fit", detail=str(exc)), expect=(DeliveryStatus.QUEUED, DeliveryStatus.WAITING))
            result.failed += 1
            return True
        if row.progress:  # what an earlier try prepared on the platform (a media container)
            post = replace(post, progress=row.progress)
        if not self.store.claim(row.id):
            return False
        tries = row.tries + 1
        extra = {"channel": row.channel, "delivery": row.id, "feed": row.feed, "article": article.key}
        publisher.take_notes()
        try:
            receipt = publisher.publish(post)
        except PublishError as exc:
            publisher.take_notes()
            self._record_failure(row, exc, tries, publisher, result, extra)
            return True
        except Exception as exc:  # after the request may have left: never treat as safe to repeat
            log.error("Unexpected error while posting to %s (%s)", row.channel, type(exc).__name__, extra=extra)
            error = UncertainError("an unexpected error happened while posting", platform=publisher.name, channel=row.channel)
            self._record_failure(row, error, tries, publisher, result, extra)
            return True
        notes = publisher.take_notes()
        self._record_sent(row.id, receipt, publisher, msg("posted_notes", detail=self.redact("; ".join(notes))) if notes else msg("posted"),
                          sent_text=post.text)
        log.info("Posted %r to %s", article.title, row.channel, extra=extra)
        result.sent += 1
        return True

    def _record_sent(self, delivery_id: int, receipt: Receipt, publisher: Publisher[Any], message: Message, actor: str = "autopublish",
                     sent_text: str | None = None) -> None:
        self.store.transition(delivery_id, DeliveryStatus.SENT, message, post_url=receipt.url or "", remote_id=receipt.remote_id,
                              needs_editor=False, actor=actor, sent_text=sent_text)
        self.notifier.resolved(f"failing:{publisher.channel}", msg("alert_posting_again", channel=publisher.channel))

    def _record_failure(self, row: DeliveryRow, exc: PublishError, tries: int, publisher: Publisher[Any], result: SweepResult,
                        extra: dict[str, object], *, repeatable: bool = False) -> None:
        """``repeatable``: sending it again cannot double anything (an edit, a delete)."""
        now = self.clock()
        current = self.store.delivery(row.id)
        first_try = current.first_try_at if current else now
        decision = decide(exc, tries=tries, first_try_at=first_try, now=now, policy=self.policy, rand=self.rand(),
                          idempotent=publisher.idempotent or repeatable, can_read_back=publisher.can_read_back and not repeatable)
        decision = replace(decision, message=decision.message.mapped(self.redact))
        progress = exc.progress if isinstance(exc, NotReadyError) else None
        self.store.transition(row.id, decision.status, decision.message, next_attempt_at=decision.next_attempt_at,
                              needs_editor=decision.needs_editor, expect=(DeliveryStatus.SENDING,), progress=progress,
                              uncount_try=not decision.count_try)
        log.log(logging.WARNING if decision.count_try else logging.INFO, "Channel %s: %s", row.channel, decision.message, extra=extra)
        if decision.pause_channel:
            self._pause(row.channel, exc)
        if decision.status == DeliveryStatus.FAILED:
            result.failed += 1
            self.notifier.problem(f"failed:{row.id}", msg("alert_failed", channel=row.channel, title=row.title, reason=str(decision.message),
                                                            detail=decision.message.params.get("detail", "")))
        elif decision.status == DeliveryStatus.UNCERTAIN:
            result.uncertain += 1
            if decision.needs_editor:
                self.notifier.problem(f"uncertain:{row.id}", msg("alert_uncertain", channel=row.channel, title=row.title,
                                                                    reason=str(decision.message), detail=decision.message.params.get("detail", "")))
        elif decision.status == DeliveryStatus.HELD:
            result.held += 1
            if decision.needs_editor:  # refused by the platform's policy: one alert per channel
                self.notifier.problem(f"held:{row.channel}", msg("alert_held", channel=row.channel, title=row.title,
                                                                  reason=str(decision.message), detail=decision.message.params.get("detail", "")))
        else:
            result.waiting += 1

    def _pause(self, channel: str, exc: PublishError) -> None:
        reason = self.redact(exc.message)
        if self.store.pause_channel(channel, msg("paused_by_platform", detail=reason, platform=exc.platform)):
            log.error("Channel %s paused: %s", channel, reason, extra={"channel": channel})
        self.notifier.problem(f"paused:{channel}", msg("alert_paused", channel=channel, detail=reason))
        if isinstance(exc, AuthError) and isinstance(exc.expires_at, datetime):
            self.store.set_token_expiry(channel, exc.expires_at.timestamp())

    def _pacing(self, channel: ChannelConfig, now: float) -> float | None:
        pacing = channel.pacing
        if not (pacing.max_per_hour or pacing.max_per_day or pacing.min_gap or pacing.quiet_hours):
            return None
        need = max(pacing.max_per_hour or 0, pacing.max_per_day or 0, 1)
        recent = self.store.recent_sent(channel.name, need)
        in_hour = [t for t in recent if now - t < 3600]
        in_day = [t for t in recent if now - t < 86400]
        oldest_hour = in_hour[pacing.max_per_hour - 1] if pacing.max_per_hour and len(in_hour) >= pacing.max_per_hour else None
        oldest_day = in_day[pacing.max_per_day - 1] if pacing.max_per_day and len(in_day) >= pacing.max_per_day else None
        return next_allowed(pacing, now, sent_last_hour=len(in_hour), sent_last_day=len(in_day),
                            last_sent_at=recent[0] if recent else None, oldest_in_hour=oldest_hour, oldest_in_day=oldest_day)

    def _deliver_action(self, row: DeliveryRow, kind: str, target_id: int | None, channel: ChannelConfig, publisher: Publisher[Any],
                        result: SweepResult) -> None:
        """Send one edit or delete of a live post: claimed before, recorded after, like a post."""
        pending = (DeliveryStatus.QUEUED, DeliveryStatus.WAITING)
        target = self.store.delivery(target_id) if target_id is not None else None
        if target is None or target.status != DeliveryStatus.SENT or not target.remote_id or (kind == "edit" and self.store.taken_down(target.id)):
            self.store.transition(row.id, DeliveryStatus.SKIPPED, msg("skipped_not_live"), expect=pending)
            return
        able = publisher.edits_with(publisher.options) if kind == "edit" else publisher.deletes_with(publisher.options)
        if not able:
            link = f": {target.post_url}" if target.post_url else ""
            self.store.transition(row.id, DeliveryStatus.SKIPPED, msg(f"skipped_cannot_{kind}", platform=publisher.label, link=link),
                                  expect=pending)
            return
        article = self.store.article(row.article_id)
        post: Post | None = None
        if kind == "edit":
            wait_until = self._pacing(channel, self.clock())
            if wait_until is not None:
                self.store.defer(row.id, wait_until, msg("pacing", time_at=wait_until))
                return
            try:
                post = build_post(article, channel, publisher, delivery_key(target.id, row.channel, article.key), self.config.settings.timezone,
                                  source_origin=self.source_origin(article))
            except FitError as exc:
                self.store.transition(row.id, DeliveryStatus.FAILED, msg("failed_fit", detail=str(exc)), expect=pending)
                result.failed += 1
                return
        if not self.store.claim(row.id):
            return
        extra = {"channel": row.channel, "delivery": row.id, "feed": row.feed, "article": article.key}
        live = Receipt(target.remote_id, target.post_url or None)
        try:
            if post is not None:
                receipt = publisher.edit(live, post)
            else:
                publisher.delete(live)
                receipt = live
        except PublishError as exc:
            self._record_failure(row, exc, row.tries + 1, publisher, result, extra, repeatable=True)
            return
        except Exception as exc:
            log.error("Unexpected error while changing a post on %s (%s)", row.channel, type(exc).__name__, extra=extra)
            error = UncertainError("an unexpected error happened while changing the post", platform=publisher.name, channel=row.channel)
            self._record_failure(row, error, row.tries + 1, publisher, result, extra, repeatable=True)
            return
        message = msg("updated_in_place") if post is not None else msg("deleted_from", platform=publisher.label)
        self._record_sent(row.id, Receipt(receipt.remote_id or live.remote_id, receipt.url or live.url), publisher, message)
        log.info("%s: %r on %s", message, article.title, row.channel, extra=extra)
        result.sent += 1

    # --- reconciling ------------------------------------------------------------------------
    def _reconcile_due(self, result: SweepResult, stop: threading.Event | None, channel: str | None = None) -> None:
        now = self.clock()
        for row in self.store.deliveries_with_status(DeliveryStatus.UNCERTAIN, channel=channel):
            if stop is not None and stop.is_set():
                return
            if row.needs_editor or (row.next_attempt_at is not None and row.next_attempt_at > now):
                continue
            self._reconcile(row, result)

    def _reconcile(self, row: DeliveryRow, result: SweepResult) -> None:
        if self.store.delivery_action(row.id)[0] != "post":  # an edit or a delete can simply be sent again
            self.store.transition(row.id, DeliveryStatus.WAITING, msg("resend_repeatable"),
                                  next_attempt_at=self.clock(), expect=(DeliveryStatus.UNCERTAIN,))
            result.reconciled += 1
            return
        channel = self.config.channels.get(row.channel)
        publisher = self.publishers.get(row.channel)
        if channel is None or publisher is None or self.store.channel(row.channel).paused:
            return
        article = self.store.article(row.article_id)
        key = delivery_key(row.id, row.channel, article.key)
        try:
            post = build_post(article, channel, publisher, key, self.config.settings.timezone, source_origin=self.source_origin(article))
            found = publisher.find_existing(post)
        except NotImplementedError:
            if publisher.idempotent:
                self.store.transition(row.id, DeliveryStatus.WAITING, msg("resend_idempotent"),
                                      next_attempt_at=self.clock(), expect=(DeliveryStatus.UNCERTAIN,))
                return
            self.store.transition(row.id, DeliveryStatus.UNCERTAIN, msg("uncertain_platform_no_check", platform=publisher.label),
                                  needs_editor=True, expect=(DeliveryStatus.UNCERTAIN,))
            self.notifier.problem(f"uncertain:{row.id}", msg("alert_uncertain_plain", channel=row.channel, title=row.title))
            return
        except FitError:
            found = None
        except PublishError as exc:  # a refused read-back never pauses the channel: only posting can
            self._check_failed(row, exc, publisher)
            return
        if found is not None and row.repost_of is not None:
            original = self.store.delivery(row.repost_of)
            if original is not None and original.remote_id and original.remote_id == found.remote_id:
                found = None  # that is the earlier post this re-post was asked to repeat
        if found is not None:
            self._record_sent(row.id, found, publisher, msg("posted_found"))
            result.reconciled += 1
        else:
            self.store.transition(row.id, DeliveryStatus.WAITING, msg("not_found"),
                                  next_attempt_at=self.clock(), expect=(DeliveryStatus.UNCERTAIN,))
            result.reconciled += 1

    def _check_failed(self, row: DeliveryRow, exc: PublishError, publisher: Publisher[Any]) -> None:
        """Reading back failed: resend while the platform drops repeats, else check again later or hand to an editor."""
        now = self.clock()
        extra = {"channel": row.channel, "delivery": row.id, "feed": row.feed}
        window = publisher.idempotency_window if publisher.idempotent else None
        if resend_is_safe(window, row.first_try_at, now, self.policy):
            message = msg("resend_after_check_failed", platform=publisher.label, detail=self.redact(exc.message))
            self.store.transition(row.id, DeliveryStatus.WAITING, message, next_attempt_at=now, expect=(DeliveryStatus.UNCERTAIN,))
            log.info("Channel %s: %s", row.channel, message, extra=extra)
            return
        checks, since = self.store.failed_checks(row.id)
        decision = decide_check(exc, checks=checks + 1, doubt_since=since if since is not None else now, now=now,
                                policy=self.policy, rand=self.rand())
        decision = replace(decision, message=decision.message.mapped(self.redact))
        self.store.transition(row.id, decision.status, decision.message, next_attempt_at=decision.next_attempt_at,
                              needs_editor=decision.needs_editor, expect=(DeliveryStatus.UNCERTAIN,), kind="check_failed")
        log.warning("Channel %s: %s", row.channel, decision.message, extra=extra)
        if decision.needs_editor:
            self.notifier.problem(f"uncertain:{row.id}", msg("alert_uncertain", channel=row.channel, title=row.title,
                                                                    reason=str(decision.message), detail=decision.message.params.get("detail", "")))
