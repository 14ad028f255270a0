"""Push: the links a feed declares (home page, WebSub hub, self URL), when pings last asked, WebSub subscriptions."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from sqlalchemy import delete, select, update

from autopublish.store import schema as t
from autopublish.store.base import StoreBase
from autopublish.store.rows import PushFeedRow, WebSubRow

pf, ws = t.push_feeds.c, t.websub_subscriptions.c
PUSH_COLUMNS = {"ping": "last_ping_at", "hook": "last_hook_at", "websub": "last_websub_at"}


class PushStore(StoreBase):
    def record_feed_links(self, feed: str, *, home: str, hub: str, self_url: str) -> None:
        """The home page, WebSub hub and self URL a feed declared at its last successful poll."""
        statement = self.db.insert(t.push_feeds).values(feed=feed, home=home, hub=hub, self_url=self_url, links_at=self.now())
        statement = statement.on_conflict_do_update(index_elements=[pf.feed], set_={
            "home": statement.excluded.home, "hub": statement.excluded.hub, "self_url": statement.excluded.self_url,
            "links_at": statement.excluded.links_at})
        with self.db.tx() as conn:
            conn.execute(statement)

    def note_push(self, feed: str, kind: str) -> None:
        """Remember when a ping, hook call or WebSub delivery last asked for ``feed`` (kind: ping, hook, websub)."""
        column = PUSH_COLUMNS[kind]
        with self.db.tx() as conn:
            conn.execute(self.db.insert_ignore(t.push_feeds).values(feed=feed))
            conn.execute(update(t.push_feeds).where(pf.feed == feed).values({column: self.now()}))

    def push_feed(self, feed: str) -> PushFeedRow | None:
        with self.db.read() as conn:
            row = conn.execute(select(t.push_feeds).where(pf.feed == feed)).first()
        return PushFeedRow(**_mapping(row)) if row else None

    def push_feeds(self) -> list[PushFeedRow]:
        with self.db.read() as conn:
            return [PushFeedRow(**_mapping(row)) for row in conn.execute(select(t.push_feeds).order_by(pf.feed))]

    def websub_subscription(self, feed: str) -> WebSubRow | None:
        with self.db.read() as conn:
            row = conn.execute(select(t.websub_subscriptions).where(ws.feed == feed)).first()
        return WebSubRow(**_mapping(row)) if row else None

    def websub_subscriptions(self) -> list[WebSubRow]:
        with self.db.read() as conn:
            return [WebSubRow(**_mapping(row)) for row in conn.execute(select(t.websub_subscriptions).order_by(ws.feed))]

    def save_websub(self, row: WebSubRow) -> None:
        data = asdict(row)
        statement = self.db.insert(t.websub_subscriptions).values(**data)
        statement = statement.on_conflict_do_update(index_elements=[ws.feed],
                                                    set_={name: statement.excluded[name] for name in data if name != "feed"})
        with self.db.tx() as conn:
            conn.execute(statement)

    def delete_websub(self, feed: str) -> None:
        with self.db.tx() as conn:
            conn.execute(delete(t.websub_subscriptions).where(ws.feed == feed))


def _mapping(row: Any) -> dict[str, Any]:
    return dict(row._mapping)
