"""Articles and deliveries: record new articles, claim, transition, the editors' actions.

Claim, then post, then mark: a delivery is set to ``sending`` (with the claiming node)
and COMMITTED before the publish call leaves, and marked after it. Every claim and
transition is a conditional update, so two nodes (or a node and an editor) can never
both win. ``UNIQUE(channel, article_id, generation)`` makes the database itself refuse
a second delivery of an article to a channel (an editor's re-post is a new generation).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    bindparam,
    case,
    func,
    or_,
    select,
    text,
    update,
)

from autopublish.errors import StateError
from autopublish.messages import Message, code_of, msg
from autopublish.models import Article, DeliveryStatus
from autopublish.store import schema as t
from autopublish.store.feeds import FeedStore
from autopublish.store.rows import (
    REPOSTABLE,
    RESOLVABLE_AS_POSTED,
    RETRYABLE,
    SKIPPABLE,
    DeliveryRow,
    article_from_json,
    article_to_json,
)

d, a = t.deliveries.c, t.articles.c
DELIVERY_COLUMNS = (d.id, d.article_id, d.channel, d.status, d.tries, d.next_attempt_at, d.first_try_at, d.reason, d.post_url,
                    d.remote_id, d.needs_editor, d.created_at, d.updated_at, d.sent_at, d.generation, d.repost_of,
                    a.feed, a.title, a.link, a.published, d.progress)
OLDEST_FIRST = (func.coalesce(a.published, a.first_seen_at), d.id)
OPEN = (DeliveryStatus.QUEUED, DeliveryStatus.WAITING)
ARTICLES_LOCK = 4412032  # PostgreSQL advisory lock: one node records new articles at a time


def _chunks(values: list[str], size: int = 500) -> list[list[str]]:
    """Bounded IN lists (each database caps the number of parameters)."""
    return [values[i:i + size] for i in range(0, len(values), size)]


# known_keys' lookups, built once; the lists go in as expanding parameters (a literal list is coerced value by value)
_KEYS_SEEN = select(a.key).where(a.feed == bindparam("feed"), a.key.in_(bindparam("keys", expanding=True)))
_LINKS_SEEN = select(a.canonical).where(a.canonical.in_(bindparam("links", expanding=True)))


def delivery_select() -> Select[Any]:
    return select(*DELIVERY_COLUMNS).select_from(t.deliveries.join(t.articles, a.id == d.article_id))


class DeliveryStore(FeedStore):
    # --- articles -------------------------------------------------------------------------
    def known_article(self, feed: str, key: str, canonical: str) -> int | None:
        """The id of an article already seen: same feed and key, or the same canonical link anywhere."""
        with self.db.read() as conn:
            found = conn.execute(select(a.id).where(a.feed == feed, a.key == key)).scalar()
            if found is None and canonical:
                found = conn.execute(select(a.id).where(a.canonical == canonical).order_by(a.id).limit(1)).scalar()
        return int(found) if found is not None else None

    def known_keys(self, feed: str, keys: list[str], canonicals: list[str]) -> tuple[set[str], set[str]]:
        """known_article for a whole feed at once: (keys of ``feed`` already seen, canonical links seen anywhere)."""
        with self.db.read() as conn:
            return self._known_keys(conn, feed, keys, canonicals)

    def _known_keys(self, conn: Connection, feed: str, keys: list[str], canonicals: list[str]) -> tuple[set[str], set[str]]:
        seen_keys: set[str] = set()
        seen_links: set[str] = set()
        for part in _chunks(keys):
            seen_keys.update(r[0] for r in conn.execute(_KEYS_SEEN, {"feed": feed, "keys": part}))
        for part in _chunks([c for c in canonicals if c]):
            seen_links.update(r[0] for r in conn.execute(_LINKS_SEEN, {"links": part}))
        return seen_keys, seen_links

    def article(self, article_id: int) -> Article:
        with self.db.read() as conn:
            data = conn.execute(select(a.data).where(a.id == article_id)).scalar()
        if data is None:
            raise StateError(f"Article {article_id} is not in the state database")
        return article_from_json(data)

    def record_articles(self, feed: str, items: list[tuple[Article, str, list[tuple[str, str, str | Message]]]],
                        summary: str | Message = "", *, baseline: str | Message | None = None,
                        known: tuple[set[str], set[str]] | None = None, delays: Mapping[str, float] | None = None) -> list[int]:
        """Store new articles and their deliveries in ONE transaction.

        ``items``: (article, canonical link, [(channel, status, reason), ...]). An article
        already stored (by feed+key or canonical link) is skipped, so a crash between polls,
        or two nodes, can never queue an article twice. ``baseline``: this is the feed's
        first poll; if another node recorded it already, nothing is written. ``known``: what
        known_keys returned earlier in the same batch(); on SQLite the batch has held the write
        lock since then, so nothing can have been added and the lookup is not made twice.
        ``delays``: a channel named there gets its queued deliveries due that many seconds from now.
        """
        created: list[int] = []
        with self.db.tx() as conn:
            if not self.db.is_sqlite:  # the canonical-link check spans feeds: one recorder at a time
                conn.execute(text(f"SELECT pg_advisory_xact_lock({ARTICLES_LOCK})"))
            if baseline is not None and not self._mark_baseline(conn, feed, baseline):
                return []
            # one lookup for the whole list, then the ones added by this call
            if known is not None and self.db.is_sqlite and self.db.in_batch():
                known_keys, known_links = set(known[0]), set(known[1])
            else:
                known_keys, known_links = self._known_keys(conn, feed, [item[0].key for item in items], [item[1] for item in items])
            quiet: list[tuple[Article, str]] = []  # new articles without deliveries: inserted together, in order
            for article, canonical, deliveries in items:
                if article.key in known_keys or (canonical and canonical in known_links):
                    continue
                known_keys.add(article.key)
                if canonical:
                    known_links.add(canonical)
                if not deliveries:
                    quiet.append((article, canonical))
                    continue
                self._add_articles(conn, quiet)
                quiet = []
                article_id = self._add_article(conn, article, canonical)
                for channel, status, reason in deliveries:
                    delivery_id = self._insert_delivery(conn, article_id, channel, status, reason, delay=(delays or {}).get(channel, 0.0))
                    if delivery_id:
                        created.append(delivery_id)
                        self._event(conn, "queued" if status == DeliveryStatus.QUEUED else status, reason or msg("queued"),
                                    status=status, delivery_id=delivery_id, article_id=article_id, channel=channel, feed=feed)
            self._add_articles(conn, quiet)
            if summary:
                self._event(conn, "poll", summary, feed=feed, status="ok")
        return created

    def _add_articles(self, conn: Connection, articles: list[tuple[Article, str]]) -> None:
        """_add_article for several articles in one executemany (no ids needed: they get no deliveries)."""
        if not articles:
            return
        now = self.now()
        conn.execute(t.articles.insert(), [
            {"feed": art.feed, "key": art.key, "canonical": canonical, "link": art.link, "title": art.title,
             "published": art.published.timestamp() if art.published else None, "first_seen_at": now, "data": article_to_json(art)}
            for art, canonical in articles])

    def _add_article(self, conn: Connection, article: Article, canonical: str) -> int:
        published = article.published.timestamp() if article.published else None
        return int(conn.execute(t.articles.insert().values(
            feed=article.feed, key=article.key, canonical=canonical, link=article.link, title=article.title, published=published,
            first_seen_at=self.now(), data=article_to_json(article)).returning(a.id)).scalar_one())

    def _insert_delivery(self, conn: Connection, article_id: int, channel: str, status: str, reason: str | Message,
                         generation: int = 0, repost_of: int | None = None, delay: float = 0.0) -> int | None:
        now = self.now()
        # Rows held by the flood guard wait for an editor, not for a channel to resume.
        needs_editor = int(status == DeliveryStatus.HELD)
        code, params = code_of(reason)
        inserted = conn.execute(self.db.insert_ignore(t.deliveries).values(
            article_id=article_id, channel=channel, generation=generation, repost_of=repost_of, status=status, reason=str(reason),
            reason_code=code, reason_params=params,
            next_attempt_at=now + delay if status == DeliveryStatus.QUEUED else None, created_at=now, updated_at=now,
            needs_editor=needs_editor).returning(d.id)).scalar()
        return int(inserted) if inserted else None

    # --- reading deliveries -----------------------------------------------------------------
    def _rows(self, *where: ColumnElement[bool], limit: int | None = None) -> list[DeliveryRow]:
        query = delivery_select().where(*where).order_by(*OLDEST_FIRST)
        if limit:
            query = query.limit(limit)
        with self.db.read() as conn:
            return [DeliveryRow(*r) for r in conn.execute(query)]

    def delivery(self, delivery_id: int) -> DeliveryRow | None:
        rows = self._rows(d.id == delivery_id)
        return rows[0] if rows else None

    def due_deliveries(self, now: float, channels: list[str] | None = None) -> list[DeliveryRow]:
        """Queued and waiting deliveries whose time has come, oldest article first.

        PostgreSQL: rows another node is claiming right now are skipped (FOR UPDATE SKIP LOCKED),
        never waited for.
        """
        where: list[ColumnElement[bool]] = [d.status.in_(OPEN), or_(d.next_attempt_at.is_(None), d.next_attempt_at <= now)]
        if channels is not None:
            where.append(d.channel.in_(channels))
        query = delivery_select().where(*where).order_by(*OLDEST_FIRST)
        if self.db.is_sqlite:
            with self.db.read() as conn:
                return [DeliveryRow(*r) for r in conn.execute(query)]
        with self.db.tx() as conn:
            return [DeliveryRow(*r) for r in conn.execute(query.with_for_update(skip_locked=True, of=t.deliveries))]

    def due_channels(self, now: float) -> list[str]:
        """Channels with a due delivery (a plain read: which rows to take is decided under the channel lease)."""
        query = select(d.channel).where(d.status.in_(OPEN), or_(d.next_attempt_at.is_(None), d.next_attempt_at <= now)).distinct()
        with self.db.read() as conn:
            return sorted(r[0] for r in conn.execute(query))

    def deliveries_with_status(self, *statuses: str, channel: str | None = None) -> list[DeliveryRow]:
        where: list[ColumnElement[bool]] = [d.status.in_(statuses)]
        if channel:
            where.append(d.channel == channel)
        return self._rows(*where)

    def counts_by_status(self) -> dict[str, int]:
        with self.db.read() as conn:
            return {r[0]: int(r[1]) for r in conn.execute(select(d.status, func.count()).group_by(d.status))}

    def counts_by_channel(self, since: float | None = None) -> dict[str, dict[str, int]]:
        """Per channel, how many deliveries are in each status (changed since ``since``, if given)."""
        query = select(d.channel, d.status, func.count()).group_by(d.channel, d.status)
        if since is not None:
            query = query.where(d.updated_at >= since)
        out: dict[str, dict[str, int]] = {}
        with self.db.read() as conn:
            for channel, status, number in conn.execute(query):
                out.setdefault(channel, {})[status] = int(number)
        return out

    def recent_sent(self, channel: str, limit: int) -> list[float]:
        """Times of the channel's last ``limit`` posts, newest first."""
        with self.db.read() as conn:
            rows = conn.execute(select(d.sent_at).where(d.channel == channel, d.sent_at.is_not(None)).order_by(d.sent_at.desc()).limit(limit))
            return [float(r[0]) for r in rows]

    # --- claims and transitions ----------------------------------------------------------------
    def claim(self, delivery_id: int, key_note: str = "") -> bool:
        """queued/waiting -> sending by this node, committed before the network call. False if someone else moved it."""
        now = self.now()
        with self.db.tx() as conn:
            if not self.db.is_sqlite:
                # a row another node is claiming this instant is skipped, not waited for
                free = conn.execute(select(d.id).where(d.id == delivery_id, d.status.in_(OPEN)).with_for_update(skip_locked=True)).first()
                if free is None:
                    return False
            claimed = conn.execute(update(t.deliveries).where(d.id == delivery_id, d.status.in_(OPEN)).values(
                status=DeliveryStatus.SENDING, tries=d.tries + 1, first_try_at=func.coalesce(d.first_try_at, now), updated_at=now,
                claimed_by=self.node_id).returning(d.channel, d.article_id, d.tries)).first()
            if claimed is None:
                return False
            self._alive(conn)  # a claim is never left by a node the others cannot see
            self._event(conn, "sending", msg("sending", tries=int(claimed.tries)), status="sending", delivery_id=delivery_id,
                        article_id=claimed.article_id, channel=claimed.channel)
        return True

    def transition(
        self,
        delivery_id: int,
        status: str,
        message: str | Message,
        *,
        expect: tuple[str, ...] | None = None,
        next_attempt_at: float | None = None,
        post_url: str | None = None,
        remote_id: str | None = None,
        needs_editor: bool | None = None,
        actor: str = "autopublish",
        kind: str | None = None,
        reset_tries: bool = False,
        sent_text: str | None = None,
        progress: str | None = None,
        uncount_try: bool = False,
    ) -> bool:
        """Move a delivery to ``status`` and log why, in one transaction.

        ``expect``: the move happens only from these statuses (False otherwise), so an
        editor's action, the daemon and other nodes can never overwrite each other's outcome.
        """
        with self.db.tx() as conn:
            return self._transition(conn, delivery_id, status, message, expect=expect, next_attempt_at=next_attempt_at, post_url=post_url,
                                    remote_id=remote_id, needs_editor=needs_editor, actor=actor, kind=kind, reset_tries=reset_tries,
                                    sent_text=sent_text, progress=progress, uncount_try=uncount_try)

    def _transition(self, conn: Connection, delivery_id: int, status: str, message: str | Message, *,
                    expect: tuple[str, ...] | None = None, next_attempt_at: float | None = None, post_url: str | None = None,
                    remote_id: str | None = None, needs_editor: bool | None = None, actor: str = "autopublish", kind: str | None = None,
                    reset_tries: bool = False, claimed_by: str | None = None, sent_text: str | None = None,
                    progress: str | None = None, uncount_try: bool = False) -> bool:
        now = self.now()
        code, params = code_of(message)
        values: dict[str, Any] = {"status": status, "reason": str(message), "updated_at": now, "next_attempt_at": next_attempt_at,
                                  "reason_code": code, "reason_params": params}
        if sent_text is not None:
            values["sent_text"] = sent_text
        if progress is not None:  # kept until replaced: a later try continues what this one prepared
            values["progress"] = progress or None
        if uncount_try:
            values["tries"] = case((d.tries > 0, d.tries - 1), else_=0)
        if post_url is not None:
            values["post_url"] = post_url
        if remote_id is not None:
            values["remote_id"] = remote_id
        if needs_editor is not None:
            values["needs_editor"] = int(needs_editor)
        if status == DeliveryStatus.SENT:
            values["sent_at"] = now
        if reset_tries:
            values["tries"] = 0
            values["first_try_at"] = None
        where: list[ColumnElement[bool]] = [d.id == delivery_id]
        if expect is not None:
            where.append(d.status.in_(expect))
        if claimed_by is not None:
            where.append(d.claimed_by == claimed_by)
        row = conn.execute(update(t.deliveries).where(*where).values(**values).returning(d.channel, d.article_id)).first()
        if row is None:
            return False
        if status == DeliveryStatus.SENT:
            self._touch_channel(conn, row.channel, last_success_at=now)
        elif status in (DeliveryStatus.FAILED, DeliveryStatus.WAITING, DeliveryStatus.UNCERTAIN):
            self._touch_channel(conn, row.channel, last_failure_at=now)
        self._event(conn, kind or status, message, status=status, delivery_id=delivery_id, article_id=row.article_id,
                    channel=row.channel, actor=actor)
        return True

    def _touch_channel(self, conn: Connection, name: str, **values: Any) -> None:
        conn.execute(self.db.insert_ignore(t.channels).values(name=name))
        conn.execute(update(t.channels).where(t.channels.c.name == name).values(**values))

    def defer(self, delivery_id: int, until: float, reason: str | Message) -> None:
        """Move a queued delivery's next time without a state change (pacing); no log event."""
        code, params = code_of(reason)
        with self.db.tx() as conn:
            conn.execute(update(t.deliveries).where(d.id == delivery_id, d.status.in_(OPEN)).values(
                next_attempt_at=until, reason=str(reason), reason_code=code, reason_params=params))

    # --- editors' actions -----------------------------------------------------------------
    def retry(self, delivery_id: int, actor: str) -> bool:
        """Back to the queue now, tries reset. Never from ``uncertain``: that could post twice."""
        return self.transition(delivery_id, DeliveryStatus.QUEUED, msg("retry", actor=actor), next_attempt_at=self.now(),
                               needs_editor=False, actor=actor, kind="retry", reset_tries=True, expect=RETRYABLE)

    def skip(self, delivery_id: int, actor: str) -> bool:
        """Never post this delivery."""
        return self.transition(delivery_id, DeliveryStatus.SKIPPED, msg("skip", actor=actor), needs_editor=False, actor=actor,
                               kind="skip", expect=SKIPPABLE)

    def resolve(self, delivery_id: int, *, posted_url: str | None, actor: str) -> bool:
        """An editor settles a delivery: posted (with its URL), or not posted (send it)."""
        if posted_url is not None:
            return self.transition(delivery_id, DeliveryStatus.SENT, msg("resolved_posted", actor=actor), post_url=posted_url,
                                   needs_editor=False, actor=actor, kind="resolved", expect=RESOLVABLE_AS_POSTED)
        return self.transition(delivery_id, DeliveryStatus.QUEUED, msg("resolved_not_posted", actor=actor),
                               next_attempt_at=self.now(), needs_editor=False, actor=actor, kind="resolved",
                               expect=(DeliveryStatus.UNCERTAIN,))

    def repost(self, delivery_id: int, actor: str) -> int | None:
        """A deliberate re-post by an editor: a new generation that points at the old row.

        None (nothing queued) unless the delivery is finished (``REPOSTABLE``) and no other
        generation for its article and channel is still pending.
        """
        with self.db.tx() as conn:
            row = conn.execute(select(d.article_id, d.channel, d.status).where(d.id == delivery_id)).first()
            if row is None or row.status not in REPOSTABLE:
                return None
            if conn.execute(select(d.id).where(d.article_id == row.article_id, d.channel == row.channel,
                                               d.status.not_in(REPOSTABLE)).limit(1)).first():
                return None
            top = conn.execute(select(func.max(d.generation)).where(d.article_id == row.article_id, d.channel == row.channel)).scalar()
            new_id = self._insert_delivery(conn, row.article_id, row.channel, DeliveryStatus.QUEUED, msg("repost_queued", actor=actor),
                                           generation=int(top or 0) + 1, repost_of=delivery_id)
            if new_id:
                self._event(conn, "repost", msg("repost", id=delivery_id), status="queued", delivery_id=new_id,
                            article_id=row.article_id, channel=row.channel, actor=actor)
            return new_id
