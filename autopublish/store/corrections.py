"""Corrections and takedowns: edits and deletes of live posts are deliveries too (kind, target_id)."""

from __future__ import annotations

from sqlalchemy import bindparam, select, update

from autopublish.models import Article, DeliveryStatus
from autopublish.store import schema as t
from autopublish.store.deliveries import DELIVERY_COLUMNS, DeliveryStore, _chunks, delivery_select
from autopublish.store.rows import (
    PENDING,
    DeliveryRow,
    article_from_json,
    article_to_json,
)

d, a = t.deliveries.c, t.articles.c
_GONE = ("failed", "skipped")
# What every known article of a changed feed runs (corrections.detect_edit), built once with parameters.
_STORED = select(a.id, a.data).where(a.feed == bindparam("p_feed"), a.key == bindparam("p_key"))
_STORED_MANY = select(a.key, a.id, a.data).where(a.feed == bindparam("p_feed"), a.key.in_(bindparam("p_keys", expanding=True)))
_ACTIONS = delivery_select().add_columns(d.kind, d.target_id).where(d.article_id == bindparam("p_article")).order_by(d.id)
_UPDATE_ARTICLE = update(t.articles).where(a.id == bindparam("p_article")).values(data=bindparam("p_data"), title=bindparam("p_title"))


class CorrectionStore(DeliveryStore):
    def delivery_action(self, delivery_id: int) -> tuple[str, int | None]:
        """(kind, target delivery id): ("post", None) for a post, ("edit"/"delete", id of the post) otherwise."""
        with self.db.read() as conn:
            row = conn.execute(select(d.kind, d.target_id).where(d.id == delivery_id)).first()
        if row is None:
            return "post", None
        return str(row[0] or "post"), (int(row[1]) if row[1] is not None else None)

    def stored_article(self, feed: str, key: str) -> tuple[int, Article] | None:
        """The article stored under this feed and key, with its id."""
        with self.db.read() as conn:
            row = conn.execute(_STORED, {"p_feed": feed, "p_key": key}).first()
        return (int(row[0]), article_from_json(row[1])) if row else None

    def stored_articles(self, feed: str, keys: list[str]) -> dict[str, tuple[int, Article]]:
        """stored_article for several keys of one feed at once: {key: (id, article)} for those stored."""
        found: dict[str, tuple[int, Article]] = {}
        with self.db.read() as conn:
            for part in _chunks(keys):
                found.update((r[0], (int(r[1]), article_from_json(r[2]))) for r in conn.execute(_STORED_MANY, {"p_feed": feed, "p_keys": part}))
        return found

    def article_actions(self, article_id: int) -> list[tuple[DeliveryRow, str, int | None]]:
        """Every delivery of an article with its kind and target, oldest first."""
        with self.db.read() as conn:
            rows = conn.execute(_ACTIONS, {"p_article": article_id}).all()
        size = len(DELIVERY_COLUMNS)
        return [(DeliveryRow(*r[:size]), str(r[size]), r[size + 1]) for r in rows]

    def taken_down(self, post_id: int) -> bool:
        """A delete of this post went out (or is on its way and not given up)."""
        with self.db.read() as conn:
            return conn.execute(select(d.id).where(d.kind == "delete", d.target_id == post_id, d.status.not_in(_GONE)).limit(1)).first() is not None

    def find_article(self, ref: str) -> int | None:
        """An article by the delivery number ``log`` shows (#12 or 12) or by its link."""
        ref = ref.strip()
        with self.db.read() as conn:
            if ref.lstrip("#").isdigit():
                found = conn.execute(select(d.article_id).where(d.id == int(ref.lstrip("#")))).scalar()
            else:
                found = conn.execute(select(a.id).where((a.link == ref) | (a.canonical == ref)).order_by(a.id).limit(1)).scalar()
        return int(found) if found is not None else None

    def update_article(self, article_id: int, article: Article, message: str) -> None:
        """Keep the site's corrected text (later posts and edits use it) and log the edit."""
        with self.db.tx() as conn:
            conn.execute(_UPDATE_ARTICLE, {"p_article": article_id, "p_data": article_to_json(article), "p_title": article.title})
            if message:
                self._event(conn, "edited", message, status="edited", article_id=article_id, feed=article.feed)

    def note(self, kind: str, message: str, *, delivery_id: int | None = None, article_id: int | None = None, channel: str = "",
             status: str = "", actor: str = "autopublish") -> None:
        """One line in the publish log about a delivery or an article, without a state change."""
        with self.db.tx() as conn:
            self._event(conn, kind, message, status=status, delivery_id=delivery_id, article_id=article_id, channel=channel, actor=actor)

    def queue_action(self, target_id: int, kind: str, reason: str, actor: str = "autopublish") -> int | None:
        """Queue an edit or a delete of the post delivery ``target_id``, in one transaction.

        A newer edit replaces one still pending. A delete is queued once: None when one is
        already on its way or done (so a repeated retract adds nothing).
        """
        now = self.now()
        with self.db.tx() as conn:
            target = conn.execute(select(d.article_id, d.channel).where(d.id == target_id)).first()
            if target is None:
                return None
            if kind == "delete":
                if conn.execute(select(d.id).where(d.kind == "delete", d.target_id == target_id, d.status.not_in(_GONE)).limit(1)).first():
                    return None
                replaced = "Skipped: the post is being taken down"
            else:
                replaced = "Replaced by a newer edit of the article"
            pending = [r[0] for r in conn.execute(select(d.id).where(d.target_id == target_id, d.kind == "edit", d.status.in_(PENDING)))]
            for pending_id in pending:
                conn.execute(update(t.deliveries).where(d.id == pending_id).values(status=DeliveryStatus.SKIPPED, reason=replaced,
                                                                                   updated_at=now, next_attempt_at=None))
                self._event(conn, "skip", replaced, status="skipped", delivery_id=pending_id, article_id=target.article_id,
                            channel=target.channel, actor=actor)
            top = conn.execute(select(d.generation).where(d.article_id == target.article_id, d.channel == target.channel)
                               .order_by(d.generation.desc()).limit(1)).scalar()
            new_id = self._insert_delivery(conn, target.article_id, target.channel, DeliveryStatus.QUEUED, reason,
                                           generation=int(top or 0) + 1)
            if new_id is None:
                return None
            conn.execute(update(t.deliveries).where(d.id == new_id).values(kind=kind, target_id=target_id))
            self._event(conn, kind, reason, status="queued", delivery_id=new_id, article_id=target.article_id, channel=target.channel,
                        actor=actor)
            return new_id

    def live_articles(self, since: float) -> list[tuple[int, str, str, str]]:
        """(article id, feed, link, title) of articles with a post live since ``since`` and not taken down."""
        x = t.deliveries.alias("x")
        gone = select(x.c.id).where(x.c.kind == "delete", x.c.target_id == d.id, x.c.status.not_in(_GONE)).exists()
        query = (select(a.id, a.feed, a.link, a.title).distinct().select_from(t.deliveries.join(t.articles, a.id == d.article_id))
                 .where(d.kind == "post", d.status == DeliveryStatus.SENT, d.sent_at >= since, ~gone).order_by(a.id))
        with self.db.read() as conn:
            return [(int(r[0]), str(r[1]), str(r[2]), str(r[3])) for r in conn.execute(query)]
