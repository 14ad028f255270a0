"""What the editors' page asks the store, in the page's own terms (filters and pages)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from autopublish.store import ArticleLine, DeliveryRow, Store


@dataclass(frozen=True, slots=True)
class LogFilter:
    channel: str = ""
    feed: str = ""
    status: str = ""
    since: float | None = None
    until: float | None = None
    search: str = ""


def article_page(store: Store, filters: LogFilter, *, limit: int, offset: int) -> tuple[list[ArticleLine], bool]:
    """Articles that have deliveries, newest first, each with all its deliveries; and whether more follow."""
    return store.article_page(channel=filters.channel, feed=filters.feed, status=filters.status, since=filters.since,
                              until=filters.until, search=filters.search, limit=limit, offset=offset)


def event_page(store: Store, filters: LogFilter, *, limit: int, offset: int) -> tuple[list[dict[str, Any]], bool]:
    """The append-only publish log (who did what), newest first; and whether more follow."""
    rows = store.events(since=filters.since, until=filters.until, channel=filters.channel or None, feed=filters.feed or None,
                        status=filters.status or None, search=filters.search or None, limit=limit + 1, offset=offset)
    return rows[:limit], len(rows) > limit


UPCOMING = ("queued", "sending", "waiting")
HELD = ("held", "uncertain")


def queue_page(store: Store, statuses: tuple[str, ...], *, now: float, limit: int, offset: int) -> tuple[list[DeliveryRow], bool]:
    """Deliveries in these statuses, the next to go out first; and whether more follow."""
    return store.queue_page(statuses, now=now, limit=limit, offset=offset)


def channel_counts(store: Store, since: float) -> dict[str, dict[str, int]]:
    """Per channel, how many deliveries reached each status since ``since``."""
    return store.counts_by_channel(since)
