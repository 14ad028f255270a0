"""Feeds: poll bookkeeping, the poll lease (one node polls a due feed per interval), the baseline."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, and_, case, or_, select, update

from autopublish.messages import Message, msg
from autopublish.store import schema as t
from autopublish.store.base import StoreBase
from autopublish.store.rows import FeedRow

_FEED_COLUMNS = (t.feeds.c.name, t.feeds.c.etag, t.feeds.c.last_modified, t.feeds.c.fetched_at, t.feeds.c.body_hash,
                 t.feeds.c.baseline_at, t.feeds.c.last_poll_at, t.feeds.c.last_ok_at, t.feeds.c.last_error,
                 t.feeds.c.failing_since, t.feeds.c.polls, t.feeds.c.title)


def _feed_row(row: Any) -> FeedRow:
    return FeedRow(*row)


class FeedStore(StoreBase):
    def feed(self, name: str) -> FeedRow | None:
        with self.db.read() as conn:
            row = conn.execute(select(*_FEED_COLUMNS).where(t.feeds.c.name == name)).first()
        return _feed_row(row) if row else None

    def feeds(self) -> list[FeedRow]:
        with self.db.read() as conn:
            return [_feed_row(r) for r in conn.execute(select(*_FEED_COLUMNS).order_by(t.feeds.c.name))]

    def _ensure_feed(self, conn: Connection, name: str, url: str) -> None:
        conn.execute(self.db.insert_ignore(t.feeds).values(name=name, url=url))
        conn.execute(update(t.feeds).where(t.feeds.c.name == name, t.feeds.c.url != url).values(url=url))

    def ensure_feed(self, name: str, url: str) -> FeedRow:
        with self.db.tx() as conn:
            self._ensure_feed(conn, name, url)
        row = self.feed(name)
        assert row is not None
        return row

    def lease_feed(self, name: str, url: str, *, ttl: float, every: float | None = None) -> FeedRow | None:
        """Take the feed's poll lease for ``ttl`` seconds; its current row, or None when another node has it.

        ``every``: also None unless the last poll (by any node) started at least that long ago,
        so N nodes poll a feed about once per interval, not N times.
        """
        now = self.now()
        f = t.feeds.c
        free = or_(f.lease_node.is_(None), f.lease_node == self.node_id, f.lease_until.is_(None), f.lease_until < now)
        condition = and_(f.name == name, free)
        if every is not None:
            condition = and_(condition, or_(f.lease_at.is_(None), f.lease_at <= now - every))
        with self.db.tx() as conn:
            self._ensure_feed(conn, name, url)
            taken = conn.execute(update(t.feeds).where(condition).values(lease_node=self.node_id, lease_until=now + ttl, lease_at=now))
            if taken.rowcount != 1:
                return None
            row = conn.execute(select(*_FEED_COLUMNS).where(f.name == name)).first()
        assert row is not None
        return _feed_row(row)

    def _release(self) -> dict[str, Any]:
        """Column values that give the poll lease back, if this node still holds it."""
        mine = t.feeds.c.lease_node == self.node_id
        return {"lease_node": case((mine, None), else_=t.feeds.c.lease_node),
                "lease_until": case((mine, None), else_=t.feeds.c.lease_until)}

    def release_feed(self, name: str) -> None:
        with self.db.tx() as conn:
            conn.execute(update(t.feeds).where(t.feeds.c.name == name).values(**self._release()))

    def _was_failing(self, conn: Connection, name: str) -> tuple[float | None, str | None] | None:
        row = conn.execute(select(t.feeds.c.failing_since, t.feeds.c.last_error).where(t.feeds.c.name == name)).first()
        return (row[0], row[1]) if row else None

    def record_poll_ok(self, name: str, *, etag: str | None, last_modified: str | None, fetched_at: float | None,
                       body_hash: str | None, title: str | None, warning: str = "") -> None:
        now = self.now()
        f = t.feeds.c
        with self.db.tx() as conn:
            previous = self._was_failing(conn, name)
            conn.execute(update(t.feeds).where(f.name == name).values(
                etag=etag, last_modified=last_modified, fetched_at=fetched_at, body_hash=body_hash, last_poll_at=now, last_ok_at=now,
                last_error=warning or None, failing_since=None, polls=f.polls + 1,
                title=title if title is not None else f.title, **self._release()))
            if previous is not None and previous[0] is not None:
                self._event(conn, "feed_ok", msg("feed_ok"), feed=name, status="ok")

    def record_poll_unchanged(self, name: str, *, fetched_at: float | None) -> None:
        now = self.now()
        f = t.feeds.c
        with self.db.tx() as conn:
            previous = self._was_failing(conn, name)
            conn.execute(update(t.feeds).where(f.name == name).values(
                fetched_at=fetched_at if fetched_at is not None else f.fetched_at, last_poll_at=now, last_ok_at=now,
                last_error=None, failing_since=None, polls=f.polls + 1, **self._release()))
            if previous is not None and previous[0] is not None:
                self._event(conn, "feed_ok", msg("feed_ok"), feed=name, status="ok")

    def record_poll_error(self, name: str, message: str) -> None:
        now = self.now()
        f = t.feeds.c
        with self.db.tx() as conn:
            previous = self._was_failing(conn, name)
            first = previous is None or previous[0] is None
            conn.execute(update(t.feeds).where(f.name == name).values(
                last_poll_at=now, last_error=message, failing_since=case((f.failing_since.is_(None), now), else_=f.failing_since),
                polls=f.polls + 1, **self._release()))
            if first or (previous is not None and previous[1] != message):
                self._event(conn, "feed_error", msg("feed_error", detail=message), feed=name, status="error")

    def mark_baseline(self, name: str, message: str | Message) -> bool:
        """Record the feed's first poll; False if another node already did (then nothing is written)."""
        with self.db.tx() as conn:
            return self._mark_baseline(conn, name, message)

    def _mark_baseline(self, conn: Connection, name: str, message: str | Message) -> bool:
        done = conn.execute(update(t.feeds).where(t.feeds.c.name == name, t.feeds.c.baseline_at.is_(None)).values(baseline_at=self.now()))
        if done.rowcount != 1:
            return False
        self._event(conn, "baseline", message, feed=name, status="seen")
        return True
