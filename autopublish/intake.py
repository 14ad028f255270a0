"""Intake: poll the feeds, pick the new articles, create their deliveries (one transaction per batch)."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from autopublish.config import ChannelConfig, FeedConfig, SettingsModel
from autopublish.corrections import detect_edit
from autopublish.errors import FeedError, StateError
from autopublish.feeds import FetchLimits, FetchResult, FetchState, ParsedFeed, canonical_link, feed_links, fetch_feed, parse_feed
from autopublish.health import FeedHealth
from autopublish.messages import Message, msg
from autopublish.models import Article, DeliveryStatus
from autopublish.platforms.base import Publisher
from autopublish.store import FeedRow

log = logging.getLogger("autopublish.pipeline")

_UNDATED = datetime.min.replace(tzinfo=UTC)
PER_HOST = 2  # feed fetches at once to one host (scheme://host:port), to be polite to shared hosting
BATCH_SIZE = 50  # polls recorded per transaction
BATCH_BYTES = 1024 * 1024  # ... or fewer, once the parsed feeds waiting hold this much feed (their articles are in memory)
BATCH_SECONDS = 1.0  # ... or whatever has arrived after this long
# One feed parsed at a time on the quick paths: parsing is CPU work under the GIL, so pool threads parsing
# together only contend for it (measured: the first 1,000-feed cycle about 8% faster than 16 parsing at
# once). The feedparser fallback, which can take seconds, runs outside it (see parse_feed).
_PARSING = threading.Lock()


class _FeedBug(Exception):
    """Recording one feed failed unexpectedly in a batch without savepoints: record the batch again with them."""


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
    size: int = 0  # bytes of feed parsed


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


def fetch_limits(settings: SettingsModel) -> FetchLimits:
    """How long and how much a feed fetch may take, from the settings."""
    return FetchLimits(timeout=(min(10.0, settings.fetch_timeout), settings.fetch_timeout), deadline=settings.fetch_deadline,
                       max_bytes=settings.max_feed_size, max_redirects=settings.max_redirects)


def too_old(feed: FeedConfig, article: Article, now: float) -> bool:
    """Published more than the feed's max_age before it was first seen (``now``)."""
    return feed.max_age is not None and article.published is not None and now - article.published.timestamp() > feed.max_age


def first_status(article: Article, channel: ChannelConfig, publisher: Publisher[Any] | None, now: float, *, feed: FeedConfig,
                 old: bool, flood: bool = False, count: int = 0, flood_threshold: int = 0) -> tuple[str, Message]:
    """The status (and its reason) a new article's delivery to ``channel`` starts with; ``old``: see ``too_old``."""
    if old:
        return DeliveryStatus.SKIPPED, msg("skipped_too_old", max_age_seconds=feed.max_age or 0)
    reason = channel_filter_reason(article, channel, now)
    if reason:
        return DeliveryStatus.SKIPPED, reason
    if publisher is not None and publisher.current_limits().image_required and not article.image:
        return DeliveryStatus.SKIPPED, msg("skipped_needs_image", platform=publisher.label)
    if flood:
        return DeliveryStatus.HELD, msg("held_flood", count=count, threshold=flood_threshold)
    if channel.pacing.delay:
        return DeliveryStatus.QUEUED, msg("queued_delayed", delay_seconds=channel.pacing.delay)
    return DeliveryStatus.QUEUED, msg("queued")


class Intake(FeedHealth):
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
                    row = self.store.lease_feed(feed.name, feed.display_url, ttl=self.lease_ttl(), every=gap)
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
        ready_bytes = 0
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
                    ready_bytes += ready[-1].size
                full = len(ready) >= BATCH_SIZE or ready_bytes >= BATCH_BYTES
                if ready and (full or not in_flight or time.monotonic() - first_ready >= BATCH_SECONDS):
                    results.extend(self._record_all(ready))
                    ready, ready_bytes = [], 0
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
                outcome.size = len(fetched.body)
                outcome.parsed = parse_feed(fetched.body, feed=feed.name, content_type=fetched.content_type, url=fetched.url,
                                            serial=_PARSING)
        except FeedError as exc:
            outcome.error = self.redact(exc.message)
        except Exception as exc:  # a bug or hostile input: fail this feed, never the cycle, the tick or the run
            outcome.error = _unexpected(feed.name, exc)
        outcome.seconds = time.monotonic() - started
        return outcome

    def _record_all(self, outcomes: list[_Fetched]) -> list[PollResult]:
        """Record polls in one transaction; alerts go out after it commits.

        The batch first runs without a savepoint per feed (two statements each, about a fifth of a
        new feed's store time). If one feed's recording fails unexpectedly, the whole batch is undone
        and recorded again with a savepoint per feed, so that only that feed fails.
        """
        try:
            return self._record_batch(outcomes, isolated=False)
        except _FeedBug:
            return self._record_batch(outcomes, isolated=True)

    def _record_batch(self, outcomes: list[_Fetched], *, isolated: bool) -> list[PollResult]:
        later: list[Callable[[], None]] = []
        self._held.alerts = later
        try:
            with self.store.batch():
                results = [self._record_one(outcome) if isolated else self._record_unisolated(outcome) for outcome in outcomes]
        finally:
            self._held.alerts = None
        for notify in later:
            notify()
        return results

    def _record_unisolated(self, outcome: _Fetched) -> PollResult:
        try:
            return self._record(outcome)
        except StateError:
            raise
        except Exception as exc:  # undo the batch (see _record_all)
            raise _FeedBug from exc

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
            text = msg("bad_entry", detail=skipped)
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
        known = known_keys, known_links = self.store.known_keys(feed.name, [a.key for a, _ in candidates], [c for _, c in candidates])
        # the known ones are checked for edits; their stored versions are read in one query
        stored = {} if baseline else self.store.stored_articles(feed.name, [a.key for a, _ in candidates if a.key in known_keys])
        for article, canonical in candidates:
            if article.key not in known_keys and not (canonical and canonical in known_links):
                new.append((article, canonical))
            elif not baseline:
                detect_edit(self.store, self.config, feed.name, article, stored)
        # oldest first: by date where given; undated entries keep the feed's order reversed
        # (feeds list newest first), and a stable sort keeps ties that way too
        new.reverse()
        new.sort(key=lambda item: item[0].published or _UNDATED)
        if baseline:
            return self._baseline(feed, new, now, known)
        flood = len(new) > self.config.settings.flood_threshold
        items = [(article, canonical, self._deliveries_for(feed, article, now, flood=flood, count=len(new))) for article, canonical in new]
        queued = _count_queued(items)
        summary = msg("poll_new", count=len(new), queued=queued) if new else ""
        self.store.record_articles(feed.name, items, summary=summary, known=known, delays=self._delays())
        if flood:
            count, threshold = len(new), self.config.settings.flood_threshold
            self._notify(lambda: self.notifier.problem(f"flood:{feed.name}", msg("alert_flood", feed=feed.name, count=count, threshold=threshold)))
        return PollResult(feed.name, True, new=len(new), queued=queued)

    def _delays(self) -> dict[str, float]:
        """Each channel's [pacing] delay, where it has one: its new posts are due that long after they are queued."""
        return {name: channel.pacing.delay for name, channel in self.config.channels.items() if channel.pacing.delay}

    def _too_old(self, feed: FeedConfig, article: Article, now: float) -> bool:
        return too_old(feed, article, now)

    def _deliveries_for(self, feed: FeedConfig, article: Article, now: float, *, flood: bool = False,
                        count: int = 0) -> list[tuple[str, str, str | Message]]:
        """(channel, first status, reason) for each enabled channel of ``feed``."""
        too_old = self._too_old(feed, article, now)
        deliveries: list[tuple[str, str, str | Message]] = []
        for channel_name in feed.channels:
            channel = self.config.channels.get(channel_name)
            if channel is not None and channel.enabled:
                deliveries.append((channel_name, *self._first_status(article, channel, now, too_old=too_old, flood=flood, count=count, feed=feed)))
        return deliveries

    def _first_status(self, article: Article, channel: ChannelConfig, now: float, *, too_old: bool, flood: bool, count: int,
                      feed: FeedConfig) -> tuple[str, Message]:
        return first_status(article, channel, self.publishers.get(channel.name), now, feed=feed, old=too_old, flood=flood, count=count,
                            flood_threshold=self.config.settings.flood_threshold)

    def _baseline(self, feed: FeedConfig, new: list[tuple[Article, str]], now: float, known: tuple[set[str], set[str]]) -> PollResult:
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
        self.store.record_articles(feed.name, items, baseline=msg("baseline", count=len(new), queued=queued, mode=mode), known=known,
                                   delays=self._delays())
        return PollResult(feed.name, True, new=len(new), queued=queued, message="baseline")


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
