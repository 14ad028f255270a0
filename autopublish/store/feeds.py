"""Feeds: poll bookkeeping, the poll lease (one node polls a due feed per interval), the baseline."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, bindparam, case, func, or_, select, update

from autopublish.messages import Message, msg
from autopublish.store import schema as t
from autopublish.store.base import StoreBase
from autopublish.store.rows import FeedRow

_FEED_COLUMNS = (t.feeds.c.name, t.feeds.c.etag, t.feeds.c.last_modified, t.feeds.c.fetched_at, t.feeds.c.body_hash,
                 t.feeds.c.baseline_at, t.feeds.c.last_poll_at, t.feeds.c.last_ok_at, t.feeds.c.last_error,
                 t.feeds.c.failing_since, t.feeds.c.polls, t.feeds.c.title)


def _feed_row(row: Any) -> FeedRow:
    return FeedRow(*row)


# The statements of every poll, built once with their values as parameters: building one with
# its values on each call cost SQLAlchemy more than running it (issue 13: 1,000 feeds a cycle).
_f = t.feeds.c
_ROW = select(*_FEED_COLUMNS).where(_f.name == bindparam("p_name"))
_WAS_FAILING = select(_f.failing_since, _f.last_error).where(_f.name == bindparam("p_name"))
_NEW_URL = update(t.feeds).where(_f.name == bindparam("p_name"), _f.url != bindparam("p_new_url")).values(url=bindparam("p_new_url"))
_FREE = or_(_f.lease_node.is_(None), _f.lease_node == bindparam("p_node"), _f.lease_until.is_(None), _f.lease_until < bindparam("p_now"))
_LEASE = update(t.feeds).where(_f.name == bindparam("p_name"), _FREE).values(
    lease_node=bindparam("p_node"), lease_until=bindparam("p_until"), lease_at=bindparam("p_now"), url=bindparam("p_url")
).returning(*_FEED_COLUMNS)
_LEASE_EVERY = _LEASE.where(or_(_f.lease_at.is_(None), _f.lease_at <= bindparam("p_since")))
_MINE = _f.lease_node == bindparam("p_node")
_RELEASE = {"lease_node": case((_MINE, None), else_=_f.lease_node), "lease_until": case((_MINE, None), else_=_f.lease_until)}
_POLL_OK = update(t.feeds).where(_f.name == bindparam("p_name")).values(
    etag=bindparam("p_etag"), last_modified=bindparam("p_last_modified"), fetched_at=bindparam("p_fetched_at"),
    body_hash=bindparam("p_body_hash"), last_poll_at=bindparam("p_now"), last_ok_at=bindparam("p_now"), last_error=bindparam("p_warning"),
    failing_since=None, polls=_f.polls + 1, title=func.coalesce(bindparam("p_title"), _f.title), **_RELEASE)
_POLL_UNCHANGED = update(t.feeds).where(_f.name == bindparam("p_name")).values(
    fetched_at=func.coalesce(bindparam("p_fetched_at"), _f.fetched_at), last_poll_at=bindparam("p_now"), last_ok_at=bindparam("p_now"),
    last_error=None, failing_since=None, polls=_f.polls + 1, **_RELEASE)
# A feed that was not failing needs no "feed_ok" event: one statement instead of a read and a write.
_POLL_OK_HEALTHY = _POLL_OK.where(_f.failing_since.is_(None))
_POLL_UNCHANGED_HEALTHY = _POLL_UNCHANGED.where(_f.failing_since.is_(None))
_BASELINE = update(t.feeds).where(_f.name == bindparam("p_name"), _f.baseline_at.is_(None)).values(baseline_at=bindparam("p_now"))


class FeedStore(StoreBase):
    def feed(self, name: str) -> FeedRow | None:
        with self.db.read() as conn:
            row = conn.execute(select(*_FEED_COLUMNS).where(t.feeds.c.name == name)).first()
        return _feed_row(row) if row else None

    def feeds(self) -> list[FeedRow]:
        with self.db.read() as conn:
            return [_feed_row(r) for r in conn.execute(select(*_FEED_COLUMNS).order_by(t.feeds.c.name))]

    def _ensure_feed(self, conn: Connection, name: str, url: str) -> None:
        conn.execute(self._prepared("new_feed", lambda: self.db.insert_ignore(t.feeds)), {"name": name, "url": url})
        conn.execute(_NEW_URL, {"p_name": name, "p_new_url": url})

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
        lease, params = _LEASE, {"p_name": name, "p_node": self.node_id, "p_now": now, "p_until": now + ttl, "p_url": url}
        if every is not None:
            lease, params["p_since"] = _LEASE_EVERY, now - every
        with self.db.tx() as conn:
            row = conn.execute(lease, params).first()
            if row is None:  # a new feed, or one leased elsewhere: add it, then try once more
                self._ensure_feed(conn, name, url)
                row = conn.execute(lease, params).first()
        return _feed_row(row) if row is not None else None

    def _release(self) -> dict[str, Any]:
        """Column values that give the poll lease back, if this node still holds it."""
        mine = t.feeds.c.lease_node == self.node_id
        return {"lease_node": case((mine, None), else_=t.feeds.c.lease_node),
                "lease_until": case((mine, None), else_=t.feeds.c.lease_until)}

    def release_feed(self, name: str) -> None:
        with self.db.tx() as conn:
            conn.execute(update(t.feeds).where(t.feeds.c.name == name).values(**self._release()))

    def _was_failing(self, conn: Connection, name: str) -> tuple[float | None, str | None] | None:
        row = conn.execute(_WAS_FAILING, {"p_name": name}).first()
        return (row[0], row[1]) if row else None

    def record_poll_ok(self, name: str, *, etag: str | None, last_modified: str | None, fetched_at: float | None,
                       body_hash: str | None, title: str | None, warning: str = "") -> None:
        params = {"p_name": name, "p_etag": etag, "p_last_modified": last_modified, "p_fetched_at": fetched_at, "p_body_hash": body_hash,
                  "p_now": self.now(), "p_warning": warning or None, "p_title": title, "p_node": self.node_id}
        self._record_polled(name, params, healthy=_POLL_OK_HEALTHY, recovering=_POLL_OK)

    def record_poll_unchanged(self, name: str, *, fetched_at: float | None) -> None:
        params = {"p_name": name, "p_fetched_at": fetched_at, "p_now": self.now(), "p_node": self.node_id}
        self._record_polled(name, params, healthy=_POLL_UNCHANGED_HEALTHY, recovering=_POLL_UNCHANGED)

    def _record_polled(self, name: str, params: dict[str, Any], *, healthy: Any, recovering: Any) -> None:
        """A good poll: one update for a feed that was healthy; else the full one, and "feed_ok" if it was failing."""
        with self.db.tx() as conn:
            if conn.execute(healthy, params).rowcount == 1:
                return
            previous = self._was_failing(conn, name)
            conn.execute(recovering, params)
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
        done = conn.execute(_BASELINE, {"p_name": name, "p_now": self.now()})
        if done.rowcount != 1:
            return False
        self._event(conn, "baseline", message, feed=name, status="seen")
        return True
