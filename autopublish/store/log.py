"""The publish log (append-only events) and the editors' page queries over it.

Kept cheap with 100,000+ rows: pages are LIMIT/OFFSET over primary keys or indexed
columns, and "is there a next page" is answered by fetching one row more, never COUNT(*).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, delete, func, select

from autopublish.store import schema as t
from autopublish.store.channels import ChannelStore
from autopublish.store.deliveries import DeliveryStore, delivery_select
from autopublish.store.rows import ArticleLine, DeliveryRow

e, a, d = t.events.c, t.articles.c, t.deliveries.c


def like(text: str) -> str:
    """A LIKE pattern matching ``text`` anywhere, with its own wildcards escaped (escape character: backslash)."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


class LogStore(ChannelStore, DeliveryStore):
    def events(self, *, since: float | None = None, channel: str | None = None, feed: str | None = None,
               status: str | None = None, kinds: tuple[str, ...] | None = None, limit: int = 1000, offset: int = 0,
               search: str | None = None, until: float | None = None) -> list[dict[str, Any]]:
        where: list[ColumnElement[bool]] = []
        if since is not None:
            where.append(e.at >= since)
        if until is not None:
            where.append(e.at < until)
        if channel:
            where.append(e.channel == channel)
        if feed:
            where.append((e.feed == feed) | (a.feed == feed))
        if status:
            where.append(e.status == status)
        if kinds:
            where.append(e.kind.in_(kinds))
        if search:
            pattern = like(search)
            where.append(a.title.ilike(pattern, escape="\\") | e.message.ilike(pattern, escape="\\"))
        query = (
            select(e.id, e.at, e.kind, e.status, e.delivery_id, e.channel,
                   func.coalesce(func.nullif(e.feed, ""), a.feed, "").label("feed"), e.message, e.actor,
                   a.title, a.link, d.post_url, d.status.label("delivery_status"), d.needs_editor)
            .select_from(t.events.outerjoin(t.articles, a.id == e.article_id).outerjoin(t.deliveries, d.id == e.delivery_id))
            .where(*where).order_by(e.at.desc(), e.id.desc()).limit(limit).offset(offset)
        )
        with self.db.read() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def log_event_once(self, kind: str, message: str, *, feed: str = "", **fields: Any) -> bool:
        """Log an event unless the same kind, feed and message is already in the log; True if logged."""
        with self.db.tx() as conn:
            if conn.execute(select(e.id).where(e.kind == kind, e.feed == feed, e.message == message).limit(1)).first():
                return False
            self._event(conn, kind, message, feed=feed, **fields)
            return True

    def failed_checks(self, delivery_id: int) -> tuple[int, float | None]:
        """(read-backs that failed in a row, when the doubt began) from the delivery's own events.

        The doubt began at the latest event that was not a failed check (the crash, the
        lost answer); None when the delivery has no events.
        """
        query = select(e.kind, e.at).where(e.delivery_id == delivery_id).order_by(e.id.desc()).limit(200)
        with self.db.read() as conn:
            rows = conn.execute(query).all()
        count = 0
        for kind, at in rows:
            if kind != "check_failed":
                return count, float(at)
            count += 1
        return count, None

    def prune_events(self, older_than: float) -> int:
        with self.db.tx() as conn:
            return int(conn.execute(delete(t.events).where(e.at < older_than)).rowcount)

    def queue_page(self, statuses: tuple[str, ...], *, now: float, limit: int, offset: int) -> tuple[list[DeliveryRow], bool]:
        """Deliveries in these statuses, the next to go out first (no time means ``now``); and whether more follow."""
        query = (delivery_select().where(d.status.in_(statuses)).order_by(func.coalesce(d.next_attempt_at, now), d.id)
                 .limit(limit + 1).offset(offset))
        with self.db.read() as conn:
            rows = [DeliveryRow(*r) for r in conn.execute(query)]
        return rows[:limit], len(rows) > limit

    def article_page(self, *, channel: str = "", feed: str = "", status: str = "", since: float | None = None,
                     until: float | None = None, search: str = "", limit: int, offset: int) -> tuple[list[ArticleLine], bool]:
        """Articles that have deliveries, newest first, each with all its deliveries; and whether more follow."""
        inner: list[ColumnElement[bool]] = []
        if channel:
            inner.append(d.channel == channel)
        if status:
            inner.append(d.status == status)
        if since is not None:
            inner.append(d.created_at >= since)
        if until is not None:
            inner.append(d.created_at < until)
        # A non-correlated IN (...) is materialised once, then the articles are walked
        # newest first by primary key and the walk stops after LIMIT rows.
        where: list[ColumnElement[bool]] = [a.id.in_(select(d.article_id).where(*inner))]
        if feed:
            where.append(a.feed == feed)
        if search:
            where.append(a.title.ilike(like(search), escape="\\"))
        query = (select(a.id, a.feed, a.title, a.link, a.published, a.first_seen_at).where(*where)
                 .order_by(a.id.desc()).limit(limit + 1).offset(offset))
        with self.db.read() as conn:
            rows = conn.execute(query).all()
            more = len(rows) > limit
            lines = [ArticleLine(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows[:limit]]
            if lines:
                by_id = {line.id: line for line in lines}
                for r in conn.execute(delivery_select().where(d.article_id.in_(list(by_id))).order_by(d.channel, d.generation, d.id)):
                    row = DeliveryRow(*r)
                    by_id[row.article_id].deliveries.append(row)
        return lines, more
