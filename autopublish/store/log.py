"""The publish log (append-only events) and the editors' page queries over it.

Kept cheap with 100,000+ rows: pages are LIMIT/OFFSET over primary keys or indexed
columns, and "is there a next page" is answered by fetching one row more, never COUNT(*).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Integer, cast, delete, func, select

from autopublish.messages import Message
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
                   func.coalesce(func.nullif(e.feed, ""), a.feed, "").label("feed"), e.message, e.actor, e.code, e.params, e.article_id,
                   a.title, a.link, d.post_url, d.status.label("delivery_status"), d.needs_editor)
            .select_from(t.events.outerjoin(t.articles, a.id == e.article_id).outerjoin(t.deliveries, d.id == e.delivery_id))
            .where(*where).order_by(e.at.desc(), e.id.desc()).limit(limit).offset(offset)
        )
        with self.db.read() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def log_event_once(self, kind: str, message: str | Message, *, feed: str = "", **fields: Any) -> bool:
        """Log an event unless the same kind, feed and message is already in the log; True if logged."""
        with self.db.tx() as conn:
            if conn.execute(select(e.id).where(e.kind == kind, e.feed == feed, e.message == str(message)).limit(1)).first():
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

    # --- one article's story, the month at a glance ------------------------------------------------
    def delivery_extras(self, delivery_id: int) -> tuple[str | None, str | None, str | None]:
        """(reason code, its parameters as JSON, the post's text as sent) of one delivery."""
        with self.db.read() as conn:
            row = conn.execute(select(d.reason_code, d.reason_params, d.sent_text).where(d.id == delivery_id)).first()
        return (row[0], row[1], row[2]) if row else (None, None, None)

    def article_summary(self, article_id: int) -> dict[str, Any] | None:
        with self.db.read() as conn:
            row = conn.execute(select(a.id, a.feed, a.key, a.title, a.link, a.published, a.first_seen_at).where(a.id == article_id)).first()
        return dict(row._mapping) if row else None

    def article_deliveries(self, article_id: int) -> list[DeliveryRow]:
        query = delivery_select().where(d.article_id == article_id).order_by(d.channel, d.generation, d.id)
        with self.db.read() as conn:
            return [DeliveryRow(*r) for r in conn.execute(query)]

    def article_events(self, article_id: int, limit: int = 2000) -> list[dict[str, Any]]:
        """Every event of one article (its deliveries' too), oldest first."""
        mine = select(d.id).where(d.article_id == article_id)
        query = (select(e.id, e.at, e.kind, e.status, e.delivery_id, e.channel, e.feed, e.message, e.actor, e.code, e.params)
                 .where((e.article_id == article_id) | e.delivery_id.in_(mine)).order_by(e.at, e.id).limit(limit))
        with self.db.read() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def daily_outcomes(self, since: float) -> list[tuple[str, int, str, int]]:
        """(channel, day number counted from ``since`` in 86400 s steps, outcome, count): posts sent,
        and failures and holds as logged, since ``since``."""
        sent_day = (cast(d.sent_at - since, Integer) // 86400).label("day")  # integer division on both databases
        bad_day = (cast(e.at - since, Integer) // 86400).label("day")
        with self.db.read() as conn:
            sent = conn.execute(select(d.channel, sent_day, func.count()).where(d.sent_at >= since).group_by(d.channel, sent_day)).all()
            bad = conn.execute(select(e.channel, bad_day, e.status, func.count())
                               .where(e.at >= since, e.channel != "", e.status.in_(("failed", "held")))
                               .group_by(e.channel, bad_day, e.status)).all()
        return [(r[0], int(r[1]), "sent", int(r[2])) for r in sent] + [(r[0], int(r[1]), r[2], int(r[3])) for r in bad]

    def publish_delays(self, since: float) -> dict[str, list[float]]:
        """Per channel, seconds from the site's publish time to the post, for first posts sent since ``since``, sorted."""
        delay = (d.sent_at - a.published).label("delay")
        query = (select(d.channel, delay).select_from(t.deliveries.join(t.articles, a.id == d.article_id))
                 .where(d.sent_at >= since, a.published.is_not(None), d.generation == 0).order_by(d.channel, delay))
        out: dict[str, list[float]] = {}
        with self.db.read() as conn:
            for channel, seconds in conn.execute(query):
                out.setdefault(channel, []).append(max(0.0, float(seconds)))
        return out

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
