"""Poll a feed, pick new articles, deliver them to channels, record every outcome.

The order of operations is what makes "never twice, never lost" hold:
new articles and their deliveries are stored in one transaction; a delivery is
claimed (committed as ``sending``) before its publish call and marked after it;
anything left ``sending`` by a crash becomes ``uncertain`` and is settled by reading
the platform back, or by an editor: never by posting again blindly.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import random
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Protocol
from urllib.parse import urlsplit

from autopublish.config import ChannelConfig, Config, FeedConfig
from autopublish.corrections import detect_edit
from autopublish.errors import AuthError, FeedError, NotReadyError, PublishError, StateError, UncertainError
from autopublish.feeds import FetchLimits, FetchResult, FetchState, ParsedFeed, canonical_link, feed_links, fetch_feed, parse_feed
from autopublish.lanes import Lanes
from autopublish.messages import Message, msg
from autopublish.models import (
    Article,
    DeliveryStatus,
    Health,
    HealthLevel,
    Post,
    Receipt,
)
from autopublish.netguard import GuardedFetcher, Origin
from autopublish.pacing import next_allowed
from autopublish.platforms.base import Publisher
from autopublish.render import FitError, article_values, fit
from autopublish.retry import RetryPolicy, decide, decide_check, resend_is_safe
from autopublish.secrets import Redactor
from autopublish.store import DeliveryRow, FeedRow, Store

log = logging.getLogger(__name__)

TOKEN_WARNING_DAYS = 7
_UNDATED = datetime.min.replace(tzinfo=UTC)
PER_HOST = 2  # feed fetches at once to one host (scheme://host:port), to be polite to shared hosting
BATCH_SIZE = 50  # polls recorded per transaction
BATCH_SECONDS = 1.0  # ... or whatever has arrived after this long


class Notifier(Protocol):
    """Where open problems go (admins' alert channels, e-mail). Never blocks publishing."""

    def problem(self, key: str, message: str | Message) -> None: ...

    def resolved(self, key: str, message: str | Message) -> None: ...


class _Silent:
    def problem(self, key: str, message: str | Message) -> None:
        return None

    def resolved(self, key: str, message: str | Message) -> None:
        return None


@dataclass
class PollResult:
    feed: str
    ok: bool
    new: int = 0
    queued: int = 0
    message: str = ""
    changed: bool = True
    skipped: bool = False  # another node polls it now, or polled it within the interval


@dataclass
class _Fetched:
    """What one fetch-and-parse (on a pool thread, no store writes) brings back."""

    feed: FeedConfig
    row: FeedRow
    state: FetchState | None = None
    parsed: ParsedFeed | None = None  # None: unchanged (304 or the same bytes)
    link_header: str = ""
    error: str = ""
    seconds: float = 0.0


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


def build_post(article: Article, channel: ChannelConfig, publisher: Publisher, key: str, tz: str = "UTC", *,
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


def channel_filter_reason(article: Article, channel: ChannelConfig, now: float) -> Message | None:
    """Why ``channel``'s rules keep ``article`` off it, or None if it goes."""
    labels = {label.casefold() for label in article.labels}
    if channel.include_categories and not labels & {c.casefold() for c in channel.include_categories}:
        return msg("skipped_categories", categories=", ".join(channel.include_categories))
    excluded = labels & {c.casefold() for c in channel.exclude_categories}
    if excluded:
        return msg("skipped_excluded_category", categories=", ".join(sorted(excluded)))
    haystack = f"{article.title}\n{article.summary}\n{article.content}".casefold()
    if channel.include_keywords and not any(k.casefold() in haystack for k in channel.include_keywords):
        return msg("skipped_keywords", keywords=", ".join(channel.include_keywords))
    for keyword in channel.exclude_keywords:
        if keyword.casefold() in haystack:
            return msg("skipped_excluded_keyword", keyword=keyword)
    if channel.max_age and article.published and now - article.published.timestamp() > channel.max_age:
        return msg("skipped_max_age", max_age_seconds=channel.max_age)
    return None


class Pipeline:
    """The core loop, driven by the scheduler (daemon) or by ``run --once``."""

    def __init__(
        self,
        config: Config,
        store: Store,
        publishers: dict[str, Publisher],
        fetcher: GuardedFetcher,
        *,
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
        notifier: Notifier | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.publishers = publishers
        self.fetcher = fetcher
        self.redact = Redactor(config.secret_values())  # platform and feed texts are stored only after this
        self.clock = clock
        self.rand = rand
        self.notifier: Notifier = notifier or _Silent()
        s = config.settings
        self.policy = RetryPolicy(max_tries=s.max_tries, give_up_after=s.give_up_after, base=s.retry_base, cap=s.retry_cap,
                                  reconcile_after=s.reconcile_after, check_give_up_after=s.reconcile_give_up_after)
        self.fetch_limits = FetchLimits(timeout=(min(10.0, s.fetch_timeout), s.fetch_timeout), deadline=s.fetch_deadline,
                                        max_bytes=s.max_feed_size, max_redirects=s.max_redirects)
        self.lock = threading.RLock()  # one poll cycle or sweep dispatch at a time
        self.poll_seconds: dict[str, float] = {}  # the last poll's duration per feed, for /metrics
        self.lanes = Lanes()  # one delivery lane per channel; a reload hands it to the new pipeline
        self.lane_errors: list[StateError] = []
        self._later: list[Callable[[], None]] | None = None  # notifications held until a batch commits

    # --- start-up -----------------------------------------------------------------------
    def recover(self) -> list[int]:
        """Turn claims left by a crash (SQLite) or by dead nodes (PostgreSQL) into uncertain deliveries."""
        ids = self.store.recover_interrupted()
        for delivery_id in ids:
            log.warning("Delivery %s was interrupted mid-post; it is now uncertain and will be checked", delivery_id)
        return ids

    def _lease_ttl(self) -> float:
        """How long a feed or channel lease lasts without renewal: longer than any fetch or publish takes."""
        s = self.config.settings
        return max(s.fetch_deadline, 4 * s.publish_timeout) + 60.0

    def source_origin(self, article: Article) -> str | None:
        """The origin of the feed that carried ``article``: URLs from its data may be fetched there."""
        feed = self.config.feeds.get(article.feed)
        origin = Origin.of(feed.url) if feed is not None else None
        return str(origin) if origin is not None else None

    # --- polling ------------------------------------------------------------------------
    def poll_all(self, stop: threading.Event | None = None) -> list[PollResult]:
        return self.poll_many([feed.name for feed in self.config.feeds.values() if feed.enabled], stop)

    def poll_feed(self, name: str, *, every: float | None = None) -> PollResult:
        return self.poll_many([name], every=None if every is None else {name: every})[0]

    def poll_many(self, names: list[str], stop: threading.Event | None = None, *, every: dict[str, float] | None = None) -> list[PollResult]:
        """Poll these feeds: up to ``fetch_concurrency`` fetches at once, at most PER_HOST per host.

        Fetching and parsing run on a pool; recording runs here, BATCH_SIZE polls per
        transaction. A feed's articles and deliveries are written in the same transaction
        as its new validators and body hash, so a crash can never mark a body seen whose
        articles were not stored.

        Each feed is polled under its lease (one node at a time); ``every``: a feed named there
        is skipped if any node polled it less than that long ago, so N nodes poll it about once
        per interval.
        """
        with self.lock:
            feeds = [self.config.feeds[name] for name in dict.fromkeys(names)]
            skipped: list[PollResult] = []
            rows: dict[str, FeedRow] = {}
            with self.store.batch():
                for feed in feeds:
                    interval = (every or {}).get(feed.name)
                    # tolerate the scheduler's one-second tick jitter, never more than a quarter interval
                    gap = None if interval is None else max(0.0, interval - min(0.5, interval / 4))
                    row = self.store.lease_feed(feed.name, feed.display_url, ttl=self._lease_ttl(), every=gap)
                    if row is None:
                        skipped.append(PollResult(feed.name, True, changed=False, skipped=True, message="polled by another node"))
                    else:
                        rows[feed.name] = row
            leased = [feed for feed in feeds if feed.name in rows]
            results: list[PollResult] = []
            try:
                if len(leased) <= 1:
                    results = [self._record_all([self._fetch_and_parse(feed, rows[feed.name])])[0] for feed in leased]
                else:
                    results = self._poll_pool(leased, rows, stop)
            finally:
                # a recorded poll gave its lease back; give back the others (stopped, or the store failed)
                recorded = {r.feed for r in results}
                with contextlib.suppress(StateError):
                    for feed in leased:
                        if feed.name not in recorded:
                            self.store.release_feed(feed.name)
            return results + skipped

    def _poll_pool(self, feeds: list[FeedConfig], rows: dict[str, FeedRow], stop: threading.Event | None) -> list[PollResult]:
        limit = self.config.settings.fetch_concurrency
        pending: deque[FeedConfig] = deque(feeds)
        parked: dict[str, deque[FeedConfig]] = {}  # feeds waiting for a free slot on their host
        active: Counter[str] = Counter()
        in_flight: dict[Future[_Fetched], str] = {}
        results: list[PollResult] = []
        ready: list[_Fetched] = []
        first_ready = 0.0
        with ThreadPoolExecutor(max_workers=limit, thread_name_prefix="fetch") as pool:
            while pending or in_flight:
                while pending and len(in_flight) < limit and not (stop is not None and stop.is_set()):
                    feed = pending.popleft()
                    host = _host(feed.url)
                    if active[host] >= PER_HOST:
                        parked.setdefault(host, deque()).append(feed)
                        continue
                    active[host] += 1
                    in_flight[pool.submit(self._fetch_and_parse, feed, rows[feed.name])] = host
                if not in_flight:
                    break  # stopped
                done, _ = wait(in_flight, timeout=BATCH_SECONDS, return_when=FIRST_COMPLETED)
                for future in done:
                    host = in_flight.pop(future)
                    active[host] -= 1
                    if parked.get(host):
                        pending.appendleft(parked[host].popleft())
                    if not ready:
                        first_ready = time.monotonic()
                    ready.append(future.result())
                if ready and (len(ready) >= BATCH_SIZE or not in_flight or time.monotonic() - first_ready >= BATCH_SECONDS):
                    results.extend(self._record_all(ready))
                    ready = []
        if ready:
            results.extend(self._record_all(ready))
        return results

    def _fetch_and_parse(self, feed: FeedConfig, row: FeedRow) -> _Fetched:
        """The network and CPU part of a poll; thread-safe, touches nothing shared but the session."""
        started = time.monotonic()
        outcome = _Fetched(feed, row)
        state = FetchState(row.etag, row.last_modified, row.fetched_at, row.body_hash) if row.polls else None
        try:
            fetched: FetchResult = fetch_feed(self.fetcher, feed.url, state, self.fetch_limits, clock=self.clock)
            outcome.state, outcome.link_header = fetched.state, fetched.link_header
            if fetched.body is not None:
                outcome.parsed = parse_feed(fetched.body, feed=feed.name, content_type=fetched.content_type, url=fetched.url)
        except FeedError as exc:
            outcome.error = self.redact(exc.message)
        except Exception as exc:  # a bug or hostile input: fail this feed, never the cycle, the tick or the run
            outcome.error = _unexpected(feed.name, exc)
        outcome.seconds = time.monotonic() - started
        return outcome

    def _record_all(self, outcomes: list[_Fetched]) -> list[PollResult]:
        """Record polls in one transaction; alerts go out after it commits."""
        self._later = []
        try:
            with self.store.batch():
                results = [self._record_one(outcome) for outcome in outcomes]
            later = self._later
        finally:
            self._later = None
        for notify in later:
            notify()
        return results

    def _notify(self, notify: Callable[[], None]) -> None:
        if self._later is not None:
            self._later.append(notify)
        else:
            notify()

    def _record_one(self, outcome: _Fetched) -> PollResult:
        """Record one poll inside the batch; an unexpected error undoes only this feed's writes and fails only it."""
        try:
            with self.store.savepoint():
                return self._record(outcome)
        except StateError:
            raise
        except Exception as exc:  # a bug or hostile input: fail this feed, never the tick or the run
            message = _unexpected(outcome.feed.name, exc)
            self.store.record_poll_error(outcome.feed.name, message)
            self._feed_failing(outcome.feed.name)
            return PollResult(outcome.feed.name, False, message=message)

    def _record(self, outcome: _Fetched) -> PollResult:
        feed, row = outcome.feed, outcome.row
        self.poll_seconds[feed.name] = outcome.seconds
        if outcome.error or outcome.state is None:
            message = outcome.error or "The feed could not be read"
            self.store.record_poll_error(feed.name, message)
            log.warning("Feed %s: %s", feed.name, message, extra={"feed": feed.name})
            self._feed_failing(feed.name)
            return PollResult(feed.name, False, message=message)
        state, parsed = outcome.state, outcome.parsed
        if parsed is None:
            self.store.record_poll_unchanged(feed.name, fetched_at=state.fetched_at)
            self._feed_recovered(feed.name, row.failing_since)
            return PollResult(feed.name, True, changed=False, message="unchanged")
        for skipped in parsed.skipped:
            text = f"An entry of the feed was skipped: {skipped}"
            if self.store.log_event_once("bad_entry", text, feed=feed.name, status="warning"):
                log.warning("Feed %s: %s", feed.name, text, extra={"feed": feed.name})
        if parsed.warning:
            log.info("Feed %s: %s", feed.name, parsed.warning, extra={"feed": feed.name})
        links = feed_links(parsed, outcome.link_header)  # push: pings name the home page; WebSub needs hub and self
        self.store.record_feed_links(feed.name, home=links.home, hub=links.hub, self_url=links.self_url)
        result = self._take_new(feed, parsed.articles, baseline=row.baseline_at is None)
        self.store.record_poll_ok(feed.name, etag=state.etag, last_modified=state.last_modified,
                                  fetched_at=state.fetched_at, body_hash=state.body_hash, title=parsed.title or None,
                                  warning=parsed.warning)
        self._feed_recovered(feed.name, row.failing_since)
        return result

    def _feed_failing(self, name: str) -> None:
        row = self.store.feed(name)
        if row is None or row.failing_since is None:
            return
        down_for = self.clock() - row.failing_since
        if down_for >= self.config.settings.feed_down_after:
            message = msg("alert_feed_down", feed=name, down_seconds=round(down_for), detail=row.last_error or "")
            self._notify(lambda: self.notifier.problem(f"feed:{name}", message))

    def _feed_recovered(self, name: str, failing_since: float | None) -> None:
        if failing_since is not None:
            self._notify(lambda: self.notifier.resolved(f"feed:{name}", msg("alert_feed_ok", feed=name)))

    def _take_new(self, feed: FeedConfig, articles: list[Article], *, baseline: bool) -> PollResult:
        now = self.clock()
        new: list[tuple[Article, str]] = []
        seen_keys: set[str] = set()
        candidates: list[tuple[Article, str]] = []
        for article in articles:
            canonical = canonical_link(article.link) if article.link else ""
            marker = canonical or article.key
            if article.key in seen_keys or marker in seen_keys:
                continue
            seen_keys.update({article.key, marker})
            candidates.append((article, canonical))
        known_keys, known_links = self.store.known_keys(feed.name, [a.key for a, _ in candidates], [c for _, c in candidates])
        for article, canonical in candidates:
            if article.key not in known_keys and not (canonical and canonical in known_links):
                new.append((article, canonical))
            elif not baseline:
                detect_edit(self.store, self.config, feed.name, article)
        # oldest first: by date where given; undated entries keep the feed's order reversed
        # (feeds list newest first), and a stable sort keeps ties that way too
        new.reverse()
        new.sort(key=lambda item: item[0].published or _UNDATED)
        if baseline:
            return self._baseline(feed, new, now)
        flood = len(new) > self.config.settings.flood_threshold
        items = [(article, canonical, self._deliveries_for(feed, article, now, flood=flood, count=len(new))) for article, canonical in new]
        queued = _count_queued(items)
        summary = msg("poll_new", count=len(new), queued=queued) if new else ""
        self.store.record_articles(feed.name, items, summary=summary)
        if flood:
            count, threshold = len(new), self.config.settings.flood_threshold
            self._notify(lambda: self.notifier.problem(f"flood:{feed.name}", msg("alert_flood", feed=feed.name, count=count, threshold=threshold)))
        return PollResult(feed.name, True, new=len(new), queued=queued)

    def _too_old(self, feed: FeedConfig, article: Article, now: float) -> bool:
        """Published more than the feed's max_age before it was first seen."""
        return feed.max_age is not None and article.published is not None and now - article.published.timestamp() > feed.max_age

    def _deliveries_for(self, feed: FeedConfig, article: Article, now: float, *, flood: bool = False,
                        count: int = 0) -> list[tuple[str, str, str | Message]]:
        """(channel, first status, reason) for each enabled channel of ``feed``."""
        too_old = self._too_old(feed, article, now)
        deliveries = []
        for channel_name in feed.channels:
            channel = self.config.channels.get(channel_name)
            if channel is not None and channel.enabled:
                deliveries.append((channel_name, *self._first_status(article, channel, now, too_old=too_old, flood=flood, count=count, feed=feed)))
        return deliveries

    def _first_status(self, article: Article, channel: ChannelConfig, now: float, *, too_old: bool, flood: bool, count: int,
                      feed: FeedConfig) -> tuple[str, Message]:
        if too_old:
            return DeliveryStatus.SKIPPED, msg("skipped_too_old", max_age_seconds=feed.max_age or 0)
        reason = channel_filter_reason(article, channel, now)
        if reason:
            return DeliveryStatus.SKIPPED, reason
        publisher = self.publishers.get(channel.name)
        if publisher is not None and publisher.current_limits().image_required and not article.image:
            return DeliveryStatus.SKIPPED, msg("skipped_needs_image", platform=publisher.label)
        if flood:
            return DeliveryStatus.HELD, msg("held_flood", count=count, threshold=self.config.settings.flood_threshold)
        return DeliveryStatus.QUEUED, msg("queued")

    def _baseline(self, feed: FeedConfig, new: list[tuple[Article, str]], now: float) -> PollResult:
        mode = feed.first_run
        chosen: set[int] = set()
        if mode == "all":
            chosen = set(range(len(new)))
        elif mode.startswith("latest:"):
            count = int(mode.split(":", 1)[1])
            chosen = set(range(max(0, len(new) - count), len(new)))
        # Entries not chosen, or too old at first sight, are recorded as seen with no delivery.
        items = [
            (article, canonical, self._deliveries_for(feed, article, now) if index in chosen and not self._too_old(feed, article, now) else [])
            for index, (article, canonical) in enumerate(new)
        ]
        queued = _count_queued(items)
        # one transaction: the articles and the baseline mark (written once, even when nodes start together)
        self.store.record_articles(feed.name, items, baseline=msg("baseline", count=len(new), queued=queued, mode=mode))
        return PollResult(feed.name, True, new=len(new), queued=queued, message="baseline")

    # --- delivering ---------------------------------------------------------------------
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
        shared, ttl = not self.store.single_node, self._lease_ttl()
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

    def _record_sent(self, delivery_id: int, receipt: Receipt, publisher: Publisher, message: Message, actor: str = "autopublish",
                     sent_text: str | None = None) -> None:
        self.store.transition(delivery_id, DeliveryStatus.SENT, message, post_url=receipt.url or "", remote_id=receipt.remote_id,
                              needs_editor=False, actor=actor, sent_text=sent_text)
        self.notifier.resolved(f"failing:{publisher.channel}", msg("alert_posting_again", channel=publisher.channel))

    def _record_failure(self, row: DeliveryRow, exc: PublishError, tries: int, publisher: Publisher, result: SweepResult,
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

    def _deliver_action(self, row: DeliveryRow, kind: str, target_id: int | None, channel: ChannelConfig, publisher: Publisher,
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
        except Exception as exc:  # noqa: BLE001 - the request may have left; an edit or delete is safe to send again
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

    def _check_failed(self, row: DeliveryRow, exc: PublishError, publisher: Publisher) -> None:
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

    # --- articles withdrawn from the site (optional) -------------------------------------------
    def check_removed(self) -> list[int]:
        """Ask the site for each article with live posts; a 404 or 410 alerts the editors (``watch_removed``).

        Returns the ids of the articles that answered 404/410. Network failures say nothing:
        only the site's own "not found"/"gone" counts.
        """
        settings = self.config.settings
        if not settings.watch_removed:
            return []
        gone: list[int] = []
        for article_id, feed, link, title in self.store.live_articles(self.clock() - settings.watch_removed_for):
            if not link.startswith(("http://", "https://")):
                continue
            feed_config = self.config.feeds.get(feed)
            origin = Origin.of(feed_config.url) if feed_config is not None else None
            try:
                with self.fetcher.open(link, allowed_origin=origin, timeout=(5.0, 10.0), deadline=20.0) as fetched:
                    status = fetched.response.status_code
            except Exception as exc:  # noqa: BLE001 - a failed look says nothing about the article
                log.info("Could not check whether %s is still on the site (%s)", link, type(exc).__name__)
                continue
            key = f"removed:{article_id}"
            if status in (404, 410):
                gone.append(article_id)
                where = self.retract_address(article_id)
                message = msg("alert_removed", title=title, status=status, link=link, where=where).mapped(self.redact)
                self.notifier.problem(key, message)  # the alerter also writes it to the publish log
            elif status < 400:
                self.notifier.resolved(key, msg("alert_removed_back", title=title))
        return gone

    def retract_address(self, article_id: int) -> str:
        """Where an editor confirms "take down everywhere" for the article."""
        web = self.config.web
        base = web.public_url or f"http://{web.host}:{web.port}"
        return f"{base.rstrip('/')}/articles/{article_id}/retract"

    # --- channel health ----------------------------------------------------------------------
    def check_channels(self) -> dict[str, Health]:
        """Ask every channel for its health; record token expiry and warn when it is near."""
        report: dict[str, Health] = {}
        for name, publisher in self.publishers.items():
            if self.lanes.busy(name):
                continue  # posting right now (a publisher is used by one thread at a time); checked next time
            try:
                health = publisher.check()
            except AuthError as exc:
                health = Health(HealthLevel.ERROR, exc.message)
            except PublishError as exc:
                health = Health(HealthLevel.WARNING, f"Could not check: {exc.message}")
            except Exception as exc:  # a check must never take the daemon down
                health = Health(HealthLevel.WARNING, f"Could not check ({type(exc).__name__})")
            report[name] = health
            if health.settles_doubts is False:
                missing = f"; the token lacks {health.missing_permission}" if health.missing_permission else ""
                log.info("Channel %s: posts in doubt cannot be settled automatically%s; an editor checks them (posting is not affected)",
                         name, missing, extra={"channel": name})
            if health.expires_at is not None:
                expires = health.expires_at.timestamp()
                self.store.set_token_expiry(name, expires)
                left = expires - self.clock()
                if left < TOKEN_WARNING_DAYS * 86400:
                    said = msg("token_expiring", channel=name, date=f"{health.expires_at:%Y-%m-%d}", left_seconds=round(max(0, left)))
                    message = str(said)
                    if self.store.open_alert(f"expiry-log:{name}", message, 86400):
                        self.store.log_event("token_expiring", said, channel=name, status="warning")
                    self.notifier.problem(f"expiry:{name}", said)
                else:
                    self.notifier.resolved(f"expiry:{name}", msg("alert_renewed", channel=name))
        return report


def _unexpected(feed: str, exc: Exception) -> str:
    message = (f"The feed could not be read because of an unexpected error ({type(exc).__name__}); "
               "the other feeds go on. Report this if it persists")
    log.error("Feed %s: %s", feed, message, extra={"feed": feed}, exc_info=log.isEnabledFor(logging.DEBUG))
    return message


def _host(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.lower()}"


def _count_queued(items: list[tuple[Article, str, list[tuple[str, str, str | Message]]]]) -> int:
    return sum(status == DeliveryStatus.QUEUED for _article, _canonical, deliveries in items for _channel, status, _reason in deliveries)
