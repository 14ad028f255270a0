"""Read-only queries behind the editors' page, over the Store's connection.

Kept cheap with 100,000+ rows: pages are LIMIT/OFFSET over primary keys or indexed
columns, and "is there a next page" is answered by fetching one row more, never COUNT(*).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from autopublish.state import DeliveryRow, Store

# The columns of autopublish.state.DeliveryRow, in its order.
DELIVERY_COLUMNS = (
    "d.id, d.article_id, d.channel, d.status, d.tries, d.next_attempt_at, d.first_try_at, d.reason, d.post_url, d.remote_id, "
    "d.needs_editor, d.created_at, d.updated_at, d.sent_at, d.generation, d.repost_of, a.feed, a.title, a.link, a.published"
)


@dataclass(frozen=True, slots=True)
class LogFilter:
    channel: str = ""
    feed: str = ""
    status: str = ""
    since: float | None = None
    until: float | None = None
    search: str = ""


@dataclass(slots=True)
class ArticleLine:
    id: int
    feed: str
    title: str
    link: str
    published: float | None
    first_seen_at: float
    deliveries: list[DeliveryRow] = field(default_factory=list)


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def article_page(store: Store, filters: LogFilter, *, limit: int, offset: int) -> tuple[list[ArticleLine], bool]:
    """Articles that have deliveries, newest first, each with all its deliveries; and whether more follow."""
    inner: list[str] = []
    params: list[Any] = []
    if filters.channel:
        inner.append("channel = ?")
        params.append(filters.channel)
    if filters.status:
        inner.append("status = ?")
        params.append(filters.status)
    if filters.since is not None:
        inner.append("created_at >= ?")
        params.append(filters.since)
    if filters.until is not None:
        inner.append("created_at < ?")
        params.append(filters.until)
    # A non-correlated IN (...) is materialised once by SQLite, then the articles are
    # walked newest first by primary key and the walk stops after LIMIT rows.
    where = [f"a.id IN (SELECT article_id FROM deliveries{' WHERE ' + ' AND '.join(inner) if inner else ''})"]
    if filters.feed:
        where.append("a.feed = ?")
        params.append(filters.feed)
    if filters.search:
        where.append("a.title LIKE ? ESCAPE '\\'")
        params.append(_like(filters.search))
    sql = (f"SELECT a.id, a.feed, a.title, a.link, a.published, a.first_seen_at FROM articles a WHERE {' AND '.join(where)} "
           "ORDER BY a.id DESC LIMIT ? OFFSET ?")
    params.extend([limit + 1, offset])
    rows = store.query(sql, tuple(params))
    more = len(rows) > limit
    lines = [ArticleLine(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows[:limit]]
    if lines:
        by_id = {line.id: line for line in lines}
        marks = ",".join("?" * len(by_id))
        for r in store.query(f"SELECT {DELIVERY_COLUMNS} FROM deliveries d JOIN articles a ON a.id = d.article_id "
                             f"WHERE d.article_id IN ({marks}) ORDER BY d.channel, d.generation, d.id", tuple(by_id)):
            row = DeliveryRow(*r)
            by_id[row.article_id].deliveries.append(row)
    return lines, more


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
    out: dict[str, dict[str, int]] = {}
    for channel, status, number in store.query(
            "SELECT channel, status, COUNT(*) FROM deliveries WHERE updated_at >= ? GROUP BY channel, status", (since,)):
        out.setdefault(channel, {})[status] = int(number)
    return out
