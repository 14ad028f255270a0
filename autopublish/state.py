"""SQLite store: the only source of truth for "was this posted".

Claim, then post, then mark: a delivery is set to ``sending`` and COMMITTED before the
publish call leaves, and marked after it. Every state change appends an event to the
publish log in the same transaction. ``UNIQUE(channel, article_id, generation)`` makes
the database itself refuse a second delivery of an article to a channel (a deliberate
re-post by an editor is a new generation that points at the old row).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import Any

from autopublish.errors import StateError
from autopublish.filemodes import private_dir, private_file
from autopublish.messages import Message, code_of, msg
from autopublish.models import Article, DeliveryStatus

SCHEMA_VERSION = 1

# What an editor may do from which state (the CLI and the web page share these).
RETRYABLE = (DeliveryStatus.FAILED, DeliveryStatus.HELD, DeliveryStatus.WAITING, DeliveryStatus.SKIPPED)
SKIPPABLE = (DeliveryStatus.QUEUED, DeliveryStatus.WAITING, DeliveryStatus.HELD, DeliveryStatus.FAILED, DeliveryStatus.UNCERTAIN)
RESOLVABLE_AS_POSTED = (DeliveryStatus.UNCERTAIN, DeliveryStatus.FAILED, DeliveryStatus.HELD, DeliveryStatus.WAITING)
# A re-post starts only from a finished delivery, and only while no delivery of the same article
# to the same channel is still on its way (else a stale page could queue the article twice).
REPOSTABLE = (DeliveryStatus.SENT, DeliveryStatus.FAILED, DeliveryStatus.SKIPPED)

PENDING = ("queued", "waiting", "held")
# Additive steps for databases made before a column existed: (name, table, column, DDL).
# Each runs once, when the column is missing; older autopublish versions ignore the column.
MIGRATIONS = (
    ("delivery progress", "deliveries", "progress", "ALTER TABLE deliveries ADD COLUMN progress TEXT"),
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS feeds (
    name TEXT PRIMARY KEY,
    url TEXT NOT NULL DEFAULT '',
    etag TEXT, last_modified TEXT, fetched_at REAL, body_hash TEXT,
    baseline_at REAL,
    last_poll_at REAL, last_ok_at REAL, last_error TEXT, failing_since REAL,
    polls INTEGER NOT NULL DEFAULT 0, title TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS articles (
    id INTEGER PRIMARY KEY,
    feed TEXT NOT NULL,
    key TEXT NOT NULL,
    canonical TEXT NOT NULL,
    link TEXT NOT NULL,
    title TEXT NOT NULL,
    published REAL,
    first_seen_at REAL NOT NULL,
    data TEXT NOT NULL,
    UNIQUE (feed, key)
);
CREATE INDEX IF NOT EXISTS articles_canonical ON articles (canonical);
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY,
    article_id INTEGER NOT NULL REFERENCES articles (id),
    channel TEXT NOT NULL,
    generation INTEGER NOT NULL DEFAULT 0,
    repost_of INTEGER REFERENCES deliveries (id),
    status TEXT NOT NULL,
    tries INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL,
    first_try_at REAL,
    reason TEXT NOT NULL DEFAULT '',
    post_url TEXT, remote_id TEXT,
    needs_editor INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    sent_at REAL,
    progress TEXT,
    UNIQUE (channel, article_id, generation)
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (status, next_attempt_at);
CREATE INDEX IF NOT EXISTS deliveries_channel ON deliveries (channel, status);
CREATE INDEX IF NOT EXISTS deliveries_article ON deliveries (article_id);
CREATE INDEX IF NOT EXISTS deliveries_sent ON deliveries (channel, sent_at);
CREATE TABLE IF NOT EXISTS channels (
    name TEXT PRIMARY KEY,
    paused INTEGER NOT NULL DEFAULT 0,
    paused_reason TEXT NOT NULL DEFAULT '',
    paused_at REAL,
    paused_by TEXT NOT NULL DEFAULT '',
    token_expires_at REAL,
    last_success_at REAL,
    last_failure_at REAL
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT '',
    delivery_id INTEGER,
    article_id INTEGER,
    channel TEXT NOT NULL DEFAULT '',
    feed TEXT NOT NULL DEFAULT '',
    message TEXT NOT NULL DEFAULT '',
    actor TEXT NOT NULL DEFAULT 'autopublish'
);
CREATE INDEX IF NOT EXISTS events_at ON events (at);
CREATE INDEX IF NOT EXISTS events_delivery ON events (delivery_id);
CREATE TABLE IF NOT EXISTS alerts (
    key TEXT PRIMARY KEY,
    opened_at REAL NOT NULL,
    last_sent_at REAL,
    message TEXT NOT NULL,
    resolved_at REAL
);
CREATE TABLE IF NOT EXISTS web_sessions (
    id_hash TEXT PRIMARY KEY,
    user TEXT NOT NULL,
    created_at REAL NOT NULL,
    last_seen_at REAL NOT NULL,
    fingerprint TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS web_sessions_user ON web_sessions (user);
"""

# Columns added after a table was first released: (table, column, type). Nullable, so an older
# database gains them on open and older rows simply have none.
ADDED_COLUMNS = (
    ("events", "code", "TEXT"),  # message code (autopublish.messages) of ``message``
    ("events", "params", "TEXT"),  # its parameters, JSON
    ("deliveries", "reason_code", "TEXT"),
    ("deliveries", "reason_params", "TEXT"),
    ("deliveries", "sent_text", "TEXT"),  # the post's text exactly as sent
    ("channels", "paused_code", "TEXT"),
    ("channels", "paused_params", "TEXT"),
    # issue 16: "post", or "edit"/"delete" of the post delivery named by target_id
    ("deliveries", "kind", "TEXT NOT NULL DEFAULT 'post'"),
    ("deliveries", "target_id", "INTEGER REFERENCES deliveries (id)"),
)


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    id: int
    article_id: int
    channel: str
    status: str
    tries: int
    next_attempt_at: float | None
    first_try_at: float | None
    reason: str
    post_url: str | None
    remote_id: str | None
    needs_editor: bool
    created_at: float
    updated_at: float
    sent_at: float | None
    generation: int
    repost_of: int | None
    feed: str = ""
    title: str = ""
    link: str = ""
    published: float | None = None
    progress: str | None = None  # what the platform is preparing for this delivery (a container)


@dataclass(frozen=True, slots=True)
class FeedRow:
    name: str
    etag: str | None
    last_modified: str | None
    fetched_at: float | None
    body_hash: str | None
    baseline_at: float | None
    last_poll_at: float | None
    last_ok_at: float | None
    last_error: str | None
    failing_since: float | None
    polls: int
    title: str


@dataclass(frozen=True, slots=True)
class ChannelRow:
    name: str
    paused: bool
    paused_reason: str
    paused_at: float | None
    paused_by: str
    token_expires_at: float | None
    last_success_at: float | None
    last_failure_at: float | None


@dataclass(frozen=True, slots=True)
class WebSessionRow:
    id_hash: str
    user: str
    created_at: float
    last_seen_at: float
    fingerprint: str


_ARTICLE_FIELDS = tuple(f.name for f in fields(Article))


def article_to_json(article: Article) -> str:
    # a shallow copy: an Article holds only strings, tuples of strings and datetimes (asdict deep-copies, 3x slower)
    data = {name: getattr(article, name) for name in _ARTICLE_FIELDS}
    for key in ("published", "updated"):
        if data[key] is not None:
            data[key] = data[key].isoformat()
    return json.dumps(data, ensure_ascii=False)


def article_from_json(text: str) -> Article:
    data = json.loads(text)
    for key in ("published", "updated"):
        if data.get(key):
            data[key] = datetime.fromisoformat(data[key])
    data["categories"] = tuple(data.get("categories", ()))
    data["tags"] = tuple(data.get("tags", ()))
    return Article(**data)


class Store:
    """One SQLite database in the state directory. Thread-safe through one lock."""

    FILENAME = "state.db"

    def __init__(self, state_dir: Path, *, clock: Callable[[], float] = time.time, create: bool = True) -> None:
        self.state_dir = state_dir
        self.path = state_dir / self.FILENAME
        self.clock = clock
        self._lock = threading.RLock()
        self._batch_depth = 0  # > 0 while batch() holds one open transaction (and the lock)
        if not self.path.exists() and not create:
            raise StateError(f"There is no state database at {self.path}; run autopublish once to create it")
        try:
            private_dir(state_dir)
            private_file(self.path)
            self.db = sqlite3.connect(self.path, timeout=15.0, isolation_level=None, check_same_thread=False)
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA busy_timeout = 15000")
            self.db.execute("PRAGMA journal_mode = WAL")
            self.db.execute("PRAGMA synchronous = FULL")
            self.db.execute("PRAGMA foreign_keys = ON")
            self._check_integrity()
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise self._translate(exc) from None
        except OSError as exc:
            raise StateError(f"The state directory {state_dir} cannot be used ({exc.strerror}); check its permissions and free space") from None

    def close(self) -> None:
        with self._lock:
            self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- plumbing ---------------------------------------------------------------------
    def _translate(self, exc: sqlite3.Error) -> StateError:
        text = str(exc).lower()
        if "full" in text:
            return StateError(f"The disk holding {self.path} is full; publishing stopped so that no post is lost. Free some space, then restart")
        if "not a database" in text or "malformed" in text or "corrupt" in text:
            return StateError(
                f"The state database {self.path} is damaged; publishing stopped. Restore it from a backup "
                "(autopublish backup makes one); autopublish will not start from an empty database, because that would post every article again"
            )
        if "locked" in text or "busy" in text:
            return StateError(f"The state database {self.path} stayed locked by another process; try again")
        if "readonly" in text or "read-only" in text or "unable to open" in text:
            return StateError(f"The state database {self.path} cannot be written; check the permissions of {self.state_dir}")
        return StateError(f"The state database {self.path} failed ({exc})")

    def _check_integrity(self) -> None:
        row = self.db.execute("PRAGMA quick_check").fetchone()
        if row is None or row[0] != "ok":
            raise sqlite3.DatabaseError("database disk image is malformed")

    def _migrate(self) -> None:
        for _name, table, column, ddl in MIGRATIONS:  # before the schema: its indexes may use new columns
            if self.db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).fetchone():
                columns = {row[1] for row in self.db.execute(f"PRAGMA table_info({table})")}
                if column not in columns:
                    self.db.execute(ddl)
        for statement in SCHEMA.split(";"):
            if statement.strip():
                self.db.execute(statement)
        for table, column, kind in ADDED_COLUMNS:
            present = {r[1] for r in self.db.execute(f"PRAGMA table_info({table})")}
            if column not in present:
                self.db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
        row = self.db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is None:
            self.db.execute("INSERT INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        elif int(row[0]) > SCHEMA_VERSION:
            raise StateError(f"The state database {self.path} was written by a newer autopublish; upgrade autopublish")

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE ... COMMIT) under the store's lock.

        Inside batch() (same thread: the batch holds the lock) it joins the batch's transaction.
        """
        with self._lock:
            if self._batch_depth:
                yield self.db  # an error propagates to batch(), which rolls everything back
                return
            try:
                self.db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise self._translate(exc) from None
            try:
                yield self.db
                self.db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise self._translate(exc) from None
            except BaseException:
                self._rollback()
                raise

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Many writes in ONE transaction (one commit, one fsync): every tx() inside joins it.

        Holds the store's lock throughout, so keep network calls out of it; a claim made by
        another thread waits for the batch and is then committed on its own, durably.
        """
        with self._lock:
            if self._batch_depth:
                self._batch_depth += 1
                try:
                    yield
                finally:
                    self._batch_depth -= 1
                return
            with self.tx():
                self._batch_depth = 1
                try:
                    yield
                finally:
                    self._batch_depth = 0

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """Inside batch(): on an exception, undo only the writes made in this block (then re-raise)."""
        with self._lock:
            if not self._batch_depth:
                yield
                return
            self.db.execute("SAVEPOINT part")
            try:
                yield
            except BaseException:
                self.db.execute("ROLLBACK TO part")
                self.db.execute("RELEASE part")
                raise
            self.db.execute("RELEASE part")

    def _rollback(self) -> None:
        try:
            self.db.execute("ROLLBACK")
        except sqlite3.Error:
            pass

    def query(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            try:
                return self.db.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise self._translate(exc) from None

    def now(self) -> float:
        return float(self.clock())

    def _event(self, db: sqlite3.Connection, kind: str, message: str | Message, *, status: str = "", delivery_id: int | None = None,
               article_id: int | None = None, channel: str = "", feed: str = "", actor: str = "autopublish") -> None:
        code, params = code_of(message)
        db.execute(
            "INSERT INTO events (at, kind, status, delivery_id, article_id, channel, feed, message, actor, code, params) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (self.now(), kind, status, delivery_id, article_id, channel, feed, str(message), actor, code, params),
        )

    def log_event(self, kind: str, message: str | Message, **fields: Any) -> None:
        with self.tx() as db:
            self._event(db, kind, message, **fields)

    def log_event_once(self, kind: str, message: str | Message, *, feed: str = "", **fields: Any) -> bool:
        """Log an event unless the same kind, feed and message is already in the log; True if logged."""
        with self.tx() as db:
            if db.execute("SELECT 1 FROM events WHERE kind = ? AND feed = ? AND message = ? LIMIT 1", (kind, feed, str(message))).fetchone():
                return False
            self._event(db, kind, message, feed=feed, **fields)
            return True

    # --- feeds ----------------------------------------------------------------------
    def feed(self, name: str) -> FeedRow | None:
        rows = self.query(
            "SELECT name, etag, last_modified, fetched_at, body_hash, baseline_at, last_poll_at, last_ok_at, last_error, failing_since, polls, title FROM "
            "feeds WHERE name = ?",
            (name,),
        )
        return FeedRow(*rows[0]) if rows else None

    def feeds(self) -> list[FeedRow]:
        rows = self.query("SELECT name, etag, last_modified, fetched_at, body_hash, baseline_at, last_poll_at, last_ok_at, last_error, failing_since, polls, "
                          "title FROM feeds ORDER BY name")
        return [FeedRow(*r) for r in rows]

    def ensure_feed(self, name: str, url: str) -> FeedRow:
        with self.tx() as db:
            db.execute("INSERT OR IGNORE INTO feeds (name, url) VALUES (?, ?)", (name, url))
            db.execute("UPDATE feeds SET url = ? WHERE name = ?", (url, name))
        row = self.feed(name)
        assert row is not None
        return row

    def record_poll_ok(self, name: str, *, etag: str | None, last_modified: str | None, fetched_at: float | None,
                       body_hash: str | None, title: str | None, warning: str = "") -> None:
        now = self.now()
        with self.tx() as db:
            previous = db.execute("SELECT failing_since, last_error FROM feeds WHERE name = ?", (name,)).fetchone()
            db.execute(
                "UPDATE feeds SET etag = ?, last_modified = ?, fetched_at = ?, body_hash = ?, last_poll_at = ?, last_ok_at = ?, "
                "last_error = ?, failing_since = NULL, polls = polls + 1, title = COALESCE(?, title) WHERE name = ?",
                (etag, last_modified, fetched_at, body_hash, now, now, warning or None, title, name),
            )
            if previous is not None and previous["failing_since"] is not None:
                self._event(db, "feed_ok", msg("feed_ok"), feed=name, status="ok")

    def record_poll_unchanged(self, name: str, *, fetched_at: float | None) -> None:
        now = self.now()
        with self.tx() as db:
            previous = db.execute("SELECT failing_since FROM feeds WHERE name = ?", (name,)).fetchone()
            db.execute("UPDATE feeds SET fetched_at = COALESCE(?, fetched_at), last_poll_at = ?, last_ok_at = ?, last_error = NULL, "
                       "failing_since = NULL, polls = polls + 1 WHERE name = ?",
                       (fetched_at, now, now, name))
            if previous is not None and previous["failing_since"] is not None:
                self._event(db, "feed_ok", msg("feed_ok"), feed=name, status="ok")

    def record_poll_error(self, name: str, message: str) -> None:
        now = self.now()
        with self.tx() as db:
            row = db.execute("SELECT failing_since, last_error FROM feeds WHERE name = ?", (name,)).fetchone()
            first = row is None or row["failing_since"] is None
            db.execute("UPDATE feeds SET last_poll_at = ?, last_error = ?, failing_since = COALESCE(failing_since, ?), polls = polls + 1 WHERE name = ?",
                       (now, message, now, name))
            if first or (row is not None and row["last_error"] != message):
                self._event(db, "feed_error", msg("feed_error", detail=message), feed=name, status="error")

    def mark_baseline(self, name: str, message: str | Message) -> None:
        with self.tx() as db:
            db.execute("UPDATE feeds SET baseline_at = ? WHERE name = ?", (self.now(), name))
            self._event(db, "baseline", message, feed=name, status="seen")

    # --- articles -----------------------------------------------------------------------
    def known_article(self, feed: str, key: str, canonical: str) -> int | None:
        """The id of an article already seen: same feed and key, or the same canonical link anywhere."""
        rows = self.query("SELECT id FROM articles WHERE feed = ? AND key = ?", (feed, key))
        if rows:
            return int(rows[0][0])
        if canonical:
            rows = self.query("SELECT id FROM articles WHERE canonical = ? ORDER BY id LIMIT 1", (canonical,))
            if rows:
                return int(rows[0][0])
        return None

    def known_keys(self, feed: str, keys: list[str], canonicals: list[str]) -> tuple[set[str], set[str]]:
        """known_article for a whole feed in one query: (keys of ``feed`` already seen, canonical links seen anywhere)."""
        rows = self.query(
            "SELECT key, '' FROM articles WHERE feed = ? AND key IN (SELECT value FROM json_each(?)) "
            "UNION ALL SELECT '', canonical FROM articles WHERE canonical IN (SELECT value FROM json_each(?))",
            (feed, json.dumps(keys), json.dumps([c for c in canonicals if c])),
        )
        return {r[0] for r in rows if r[0]}, {r[1] for r in rows if r[1]}

    def article(self, article_id: int) -> Article:
        rows = self.query("SELECT data FROM articles WHERE id = ?", (article_id,))
        if not rows:
            raise StateError(f"Article {article_id} is not in the state database")
        return article_from_json(rows[0][0])

    def add_article(self, db: sqlite3.Connection, article: Article, canonical: str) -> int:
        published = article.published.timestamp() if article.published else None
        cursor = db.execute(
            "INSERT INTO articles (feed, key, canonical, link, title, published, first_seen_at, data) VALUES (?,?,?,?,?,?,?,?)",
            (article.feed, article.key, canonical, article.link, article.title, published, self.now(), article_to_json(article)),
        )
        return int(cursor.lastrowid or 0)

    def record_articles(self, feed: str, items: list[tuple[Article, str, list[tuple[str, str, str | Message]]]],
                        summary: str | Message = "") -> list[int]:
        """Store new articles and their deliveries in ONE transaction.

        ``items``: (article, canonical link, [(channel, status, reason), ...]). An
        article already stored (by feed+key or canonical link) is skipped, so a
        crash between polls can never queue an article twice.
        """
        created: list[int] = []
        with self.tx() as db:
            # one lookup for the whole list, then the ones added by this call
            known_keys, known_links = self.known_keys(feed, [a.key for a, _c, _d in items], [c for _a, c, _d in items])
            for article, canonical, deliveries in items:
                if article.key in known_keys or (canonical and canonical in known_links):
                    continue
                known_keys.add(article.key)
                if canonical:
                    known_links.add(canonical)
                article_id = self.add_article(db, article, canonical)
                for channel, status, reason in deliveries:
                    delivery_id = self._insert_delivery(db, article_id, channel, status, reason)
                    if delivery_id:
                        created.append(delivery_id)
                        self._event(db, "queued" if status == DeliveryStatus.QUEUED else status, reason or msg("queued"),
                                    status=status, delivery_id=delivery_id, article_id=article_id, channel=channel, feed=feed)
            if summary:
                self._event(db, "poll", summary, feed=feed, status="ok")
        return created

    def _insert_delivery(self, db: sqlite3.Connection, article_id: int, channel: str, status: str, reason: str | Message,
                         generation: int = 0, repost_of: int | None = None) -> int | None:
        now = self.now()
        # Rows held by the flood guard wait for an editor, not for a channel to resume.
        needs_editor = int(status == DeliveryStatus.HELD)
        code, params = code_of(reason)
        cursor = db.execute(
            "INSERT OR IGNORE INTO deliveries (article_id, channel, generation, repost_of, status, reason, next_attempt_at, created_at, updated_at, "
            "needs_editor, reason_code, reason_params) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (article_id, channel, generation, repost_of, status, str(reason), now if status == DeliveryStatus.QUEUED else None, now, now,
             needs_editor, code, params),
        )
        return int(cursor.lastrowid) if cursor.rowcount == 1 and cursor.lastrowid else None

    # --- deliveries -------------------------------------------------------------------------
    _DELIVERY_COLUMNS = (
        "d.id, d.article_id, d.channel, d.status, d.tries, d.next_attempt_at, d.first_try_at, d.reason, d.post_url, d.remote_id, "
        "d.needs_editor, d.created_at, d.updated_at, d.sent_at, d.generation, d.repost_of, a.feed, a.title, a.link, a.published, "
        "d.progress"
    )

    def _rows(self, where: str, params: tuple[Any, ...] = (), order: str = "COALESCE(a.published, a.first_seen_at), d.id",
              limit: int | None = None) -> list[DeliveryRow]:
        sql = f"SELECT {self._DELIVERY_COLUMNS} FROM deliveries d JOIN articles a ON a.id = d.article_id WHERE {where} ORDER BY {order}"
        if limit:
            sql += f" LIMIT {int(limit)}"
        return [DeliveryRow(*r) for r in self.query(sql, params)]

    def delivery(self, delivery_id: int) -> DeliveryRow | None:
        rows = self._rows("d.id = ?", (delivery_id,))
        return rows[0] if rows else None

    def due_deliveries(self, now: float, channels: list[str] | None = None) -> list[DeliveryRow]:
        """Queued and waiting deliveries whose time has come, oldest article first."""
        where = "d.status IN ('queued', 'waiting') AND (d.next_attempt_at IS NULL OR d.next_attempt_at <= ?)"
        params: tuple[Any, ...] = (now,)
        if channels is not None:
            where += f" AND d.channel IN ({','.join('?' * len(channels))})"
            params += tuple(channels)
        return self._rows(where, params)

    def deliveries_with_status(self, *statuses: str, channel: str | None = None) -> list[DeliveryRow]:
        where = f"d.status IN ({','.join('?' * len(statuses))})"
        params: tuple[Any, ...] = tuple(statuses)
        if channel:
            where += " AND d.channel = ?"
            params += (channel,)
        return self._rows(where, params)

    def claim(self, delivery_id: int, key_note: str = "") -> bool:
        """queued/waiting -> sending, committed before the network call. False if someone else moved it."""
        now = self.now()
        with self.tx() as db:
            cursor = db.execute(
                "UPDATE deliveries SET status = 'sending', tries = tries + 1, first_try_at = COALESCE(first_try_at, ?), updated_at = ? "
                "WHERE id = ? AND status IN ('queued', 'waiting')",
                (now, now, delivery_id),
            )
            if cursor.rowcount != 1:
                return False
            row = db.execute("SELECT channel, article_id, tries FROM deliveries WHERE id = ?", (delivery_id,)).fetchone()
            self._event(db, "sending", msg("sending", tries=int(row["tries"])), status="sending", delivery_id=delivery_id,
                        article_id=row["article_id"], channel=row["channel"])
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
        editor's action and the daemon can never overwrite each other's outcome.
        """
        now = self.now()
        with self.tx() as db:
            row = db.execute("SELECT status, channel, article_id FROM deliveries WHERE id = ?", (delivery_id,)).fetchone()
            if row is None or (expect is not None and row["status"] not in expect):
                return False
            code, code_params = code_of(message)
            sets = ["status = ?", "reason = ?", "updated_at = ?", "next_attempt_at = ?", "reason_code = ?", "reason_params = ?"]
            params: list[Any] = [status, str(message), now, next_attempt_at, code, code_params]
            if sent_text is not None:
                sets.append("sent_text = ?")
                params.append(sent_text)
            if post_url is not None:
                sets.append("post_url = ?")
                params.append(post_url)
            if remote_id is not None:
                sets.append("remote_id = ?")
                params.append(remote_id)
            if needs_editor is not None:
                sets.append("needs_editor = ?")
                params.append(int(needs_editor))
            if status == DeliveryStatus.SENT:
                sets.append("sent_at = ?")
                params.append(now)
            if progress is not None:  # kept until replaced: a later try continues what this one prepared
                sets.append("progress = ?")
                params.append(progress or None)
            if uncount_try:
                sets.append("tries = MAX(0, tries - 1)")
            if reset_tries:
                sets.append("tries = 0")
                sets.append("first_try_at = NULL")
            params.append(delivery_id)
            db.execute(f"UPDATE deliveries SET {', '.join(sets)} WHERE id = ?", params)
            if status == DeliveryStatus.SENT:
                db.execute("INSERT OR IGNORE INTO channels (name) VALUES (?)", (row["channel"],))
                db.execute("UPDATE channels SET last_success_at = ? WHERE name = ?", (now, row["channel"]))
            elif status in (DeliveryStatus.FAILED, DeliveryStatus.WAITING, DeliveryStatus.UNCERTAIN):
                db.execute("INSERT OR IGNORE INTO channels (name) VALUES (?)", (row["channel"],))
                db.execute("UPDATE channels SET last_failure_at = ? WHERE name = ?", (now, row["channel"]))
            self._event(db, kind or status, message, status=status, delivery_id=delivery_id, article_id=row["article_id"],
                        channel=row["channel"], actor=actor)
        return True

    def failed_checks(self, delivery_id: int) -> tuple[int, float | None]:
        """(read-backs that failed in a row, when the doubt began) from the delivery's own events.

        The doubt began at the latest event that was not a failed check (the crash, the
        lost answer); None when the delivery has no events.
        """
        rows = self.query("SELECT kind, at FROM events WHERE delivery_id = ? ORDER BY id DESC LIMIT 200", (delivery_id,))
        count = 0
        for row in rows:
            if row["kind"] != "check_failed":
                return count, float(row["at"])
            count += 1
        return count, None

    def recover_interrupted(self) -> list[int]:
        """At start-up: every ``sending`` row was interrupted mid-post and becomes ``uncertain``."""
        ids = [r.id for r in self.deliveries_with_status(DeliveryStatus.SENDING)]
        for delivery_id in ids:
            self.transition(
                delivery_id, DeliveryStatus.UNCERTAIN,
                msg("interrupted"),
                expect=(DeliveryStatus.SENDING,), kind="interrupted",
            )
        return ids

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
        with self.tx() as db:
            row = db.execute("SELECT article_id, channel, status FROM deliveries WHERE id = ?", (delivery_id,)).fetchone()
            if row is None or row["status"] not in REPOSTABLE:
                return None
            marks = ",".join("?" * len(REPOSTABLE))
            pending = db.execute(f"SELECT 1 FROM deliveries WHERE article_id = ? AND channel = ? AND status NOT IN ({marks}) LIMIT 1",
                                 (row["article_id"], row["channel"], *REPOSTABLE)).fetchone()
            if pending:
                return None
            top = db.execute("SELECT MAX(generation) FROM deliveries WHERE article_id = ? AND channel = ?", (row["article_id"], row["channel"])).fetchone()[0]
            new_id = self._insert_delivery(db, row["article_id"], row["channel"], DeliveryStatus.QUEUED, msg("repost_queued", actor=actor),
                                           generation=int(top or 0) + 1, repost_of=delivery_id)
            if new_id:
                self._event(db, "repost", msg("repost", id=delivery_id), status="queued", delivery_id=new_id,
                            article_id=row["article_id"], channel=row["channel"], actor=actor)
            return new_id

    def counts_by_status(self) -> dict[str, int]:
        return {r[0]: int(r[1]) for r in self.query("SELECT status, COUNT(*) FROM deliveries GROUP BY status")}

    def recent_sent(self, channel: str, limit: int) -> list[float]:
        """Times of the channel's last ``limit`` posts, newest first."""
        rows = self.query("SELECT sent_at FROM deliveries WHERE channel = ? AND sent_at IS NOT NULL ORDER BY sent_at DESC LIMIT ?", (channel, limit))
        return [float(r[0]) for r in rows]

    def defer(self, delivery_id: int, until: float, reason: str | Message) -> None:
        """Move a queued delivery's next time without a state change (pacing); no log event."""
        code, params = code_of(reason)
        with self.tx() as db:
            db.execute("UPDATE deliveries SET next_attempt_at = ?, reason = ?, reason_code = ?, reason_params = ? "
                       "WHERE id = ? AND status IN ('queued', 'waiting')", (until, str(reason), code, params, delivery_id))

    # --- channels ---------------------------------------------------------------------------
    def channel(self, name: str) -> ChannelRow:
        rows = self.query("SELECT name, paused, paused_reason, paused_at, paused_by, token_expires_at, last_success_at, last_failure_at FROM channels WHERE "
                          "name = ?", (name,))
        if not rows:
            return ChannelRow(name, False, "", None, "", None, None, None)
        r = rows[0]
        return ChannelRow(r[0], bool(r[1]), r[2], r[3], r[4], r[5], r[6], r[7])

    def pause_channel(self, name: str, reason: str | Message, actor: str = "autopublish") -> bool:
        """Pause a channel; its queue is kept. False if it was already paused."""
        code, params = code_of(reason)
        with self.tx() as db:
            db.execute("INSERT OR IGNORE INTO channels (name) VALUES (?)", (name,))
            cursor = db.execute("UPDATE channels SET paused = 1, paused_reason = ?, paused_at = ?, paused_by = ?, paused_code = ?, paused_params = ? "
                                "WHERE name = ? AND paused = 0", (str(reason), self.now(), actor, code, params, name))
            if cursor.rowcount:
                self._event(db, "paused", reason, channel=name, status="paused", actor=actor)
            return bool(cursor.rowcount)

    def resume_channel(self, name: str, actor: str = "autopublish") -> int:
        """Unpause; held deliveries of the channel go back to the queue. Returns how many."""
        now = self.now()
        with self.tx() as db:
            db.execute("INSERT OR IGNORE INTO channels (name) VALUES (?)", (name,))
            db.execute("UPDATE channels SET paused = 0, paused_reason = '', paused_at = NULL, paused_by = '', paused_code = NULL, paused_params = NULL "
                       "WHERE name = ?", (name,))
            rows = db.execute("SELECT id, article_id FROM deliveries WHERE channel = ? AND status = 'held' AND needs_editor = 0", (name,)).fetchall()
            for row in rows:
                back = msg("resumed_row")
                db.execute("UPDATE deliveries SET status = 'queued', reason = ?, reason_code = ?, reason_params = ?, next_attempt_at = ?, updated_at = ? "
                           "WHERE id = ?", (str(back), *code_of(back), now, now, row["id"]))
            self._event(db, "resumed", msg("resumed", count=len(rows)), channel=name, status="active", actor=actor)
            return len(rows)

    def set_token_expiry(self, name: str, expires_at: float | None) -> None:
        with self.tx() as db:
            db.execute("INSERT OR IGNORE INTO channels (name) VALUES (?)", (name,))
            db.execute("UPDATE channels SET token_expires_at = ? WHERE name = ?", (expires_at, name))

    # --- the publish log --------------------------------------------------------------------
    def events(self, *, since: float | None = None, channel: str | None = None, feed: str | None = None,
               status: str | None = None, kinds: tuple[str, ...] | None = None, limit: int = 1000, offset: int = 0,
               search: str | None = None, until: float | None = None) -> list[dict[str, Any]]:
        where = ["1=1"]
        params: list[Any] = []
        if since is not None:
            where.append("e.at >= ?")
            params.append(since)
        if until is not None:
            where.append("e.at < ?")
            params.append(until)
        if channel:
            where.append("e.channel = ?")
            params.append(channel)
        if feed:
            where.append("(e.feed = ? OR a.feed = ?)")
            params.extend([feed, feed])
        if status:
            where.append("e.status = ?")
            params.append(status)
        if kinds:
            where.append(f"e.kind IN ({','.join('?' * len(kinds))})")
            params.extend(kinds)
        if search:
            where.append("(a.title LIKE ? OR e.message LIKE ?)")
            params.extend([f"%{search}%", f"%{search}%"])
        sql = (
            "SELECT e.id, e.at, e.kind, e.status, e.delivery_id, e.channel, COALESCE(NULLIF(e.feed, ''), a.feed, '') AS feed, e.message, e.actor, e.code, "
            "e.params, e.article_id, "
            "a.title, a.link, d.post_url, d.status AS delivery_status, d.needs_editor "
            "FROM events e LEFT JOIN articles a ON a.id = e.article_id LEFT JOIN deliveries d ON d.id = e.delivery_id "
            f"WHERE {' AND '.join(where)} ORDER BY e.at DESC, e.id DESC LIMIT ? OFFSET ?"
        )
        params.extend([limit, offset])
        return [dict(r) for r in self.query(sql, tuple(params))]

    def prune_events(self, older_than: float) -> int:
        with self.tx() as db:
            cursor = db.execute("DELETE FROM events WHERE at < ?", (older_than,))
            return cursor.rowcount

    # --- alerts ---------------------------------------------------------------------------
    def open_alert(self, key: str, message: str, repeat: float) -> bool:
        """Record an open problem; True when an alert should be sent now (new, or repeat elapsed)."""
        now = self.now()
        with self.tx() as db:
            row = db.execute("SELECT last_sent_at, resolved_at FROM alerts WHERE key = ?", (key,)).fetchone()
            if row is None or row["resolved_at"] is not None:
                db.execute("INSERT OR REPLACE INTO alerts (key, opened_at, last_sent_at, message, resolved_at) VALUES (?,?,?,?,NULL)", (key, now, now, message))
                return True
            if row["last_sent_at"] is None or now - row["last_sent_at"] >= repeat:
                db.execute("UPDATE alerts SET last_sent_at = ?, message = ? WHERE key = ?", (now, message, key))
                return True
            return False

    def resolve_alert(self, key: str) -> bool:
        """Close an open problem; True if it was open (so a 'resolved' message is due)."""
        with self.tx() as db:
            cursor = db.execute("UPDATE alerts SET resolved_at = ? WHERE key = ? AND resolved_at IS NULL", (self.now(), key))
            return bool(cursor.rowcount)

    def alert_due(self, key: str, repeat: float) -> bool:
        """True when ``open_alert`` would send: the problem is new, or ``repeat`` has passed."""
        rows = self.query("SELECT last_sent_at, resolved_at FROM alerts WHERE key = ?", (key,))
        if not rows or rows[0]["resolved_at"] is not None or rows[0]["last_sent_at"] is None:
            return True
        return bool(self.now() - float(rows[0]["last_sent_at"]) >= repeat)

    def alert_is_open(self, key: str) -> bool:
        return bool(self.query("SELECT 1 FROM alerts WHERE key = ? AND resolved_at IS NULL", (key,)))

    # --- backup -----------------------------------------------------------------------------
    def backup(self, target: Path) -> None:
        """A consistent copy while the daemon runs (SQLite's online backup API)."""
        private_dir(target.parent)
        private_file(target)
        with self._lock:
            try:
                destination = sqlite3.connect(target)
                with destination:
                    self.db.backup(destination)
                destination.close()
            except sqlite3.Error as exc:
                raise self._translate(exc) from None

    # --- editors' page sessions ---------------------------------------------------------------
    # One row per signed-in browser. ``id_hash`` is a hash of the id the cookie carries (the id
    # itself is never stored); ``fingerprint`` is a keyed hash of the password hash the user
    # signed in with, so a changed password ends the session. Times come from the caller.
    def create_web_session(self, id_hash: str, user: str, fingerprint: str, now: float) -> None:
        with self.tx() as db:
            db.execute("INSERT INTO web_sessions (id_hash, user, created_at, last_seen_at, fingerprint) VALUES (?,?,?,?,?)",
                       (id_hash, user, now, now, fingerprint))

    def web_session(self, id_hash: str) -> WebSessionRow | None:
        rows = self.query("SELECT id_hash, user, created_at, last_seen_at, fingerprint FROM web_sessions WHERE id_hash = ?", (id_hash,))
        return WebSessionRow(*rows[0]) if rows else None

    def touch_web_session(self, id_hash: str, now: float) -> None:
        with self.tx() as db:
            db.execute("UPDATE web_sessions SET last_seen_at = ? WHERE id_hash = ?", (now, id_hash))

    def end_web_session(self, id_hash: str) -> bool:
        with self.tx() as db:
            return bool(db.execute("DELETE FROM web_sessions WHERE id_hash = ?", (id_hash,)).rowcount)

    def end_web_sessions(self, user: str, *, except_fingerprint: str | None = None) -> int:
        """End a user's sessions (all, or those not signed in with the password ``except_fingerprint`` stands for)."""
        with self.tx() as db:
            return db.execute("DELETE FROM web_sessions WHERE user = ? AND fingerprint != ?", (user, except_fingerprint or "")).rowcount

    def web_sessions(self) -> list[WebSessionRow]:
        """Every stored session, oldest first."""
        rows = self.query("SELECT id_hash, user, created_at, last_seen_at, fingerprint FROM web_sessions ORDER BY created_at, user")
        return [WebSessionRow(*r) for r in rows]

    def prune_web_sessions(self, *, seen_before: float, created_before: float) -> int:
        """Drop sessions idle since ``seen_before`` or begun before ``created_before``."""
        with self.tx() as db:
            return db.execute("DELETE FROM web_sessions WHERE last_seen_at < ? OR created_at < ?", (seen_before, created_before)).rowcount

    # --- the editors' queue page ---------------------------------------------------------------
    def queue_page(self, statuses: tuple[str, ...], *, now: float, limit: int, offset: int) -> tuple[list[DeliveryRow], bool]:
        """Deliveries in these statuses, the next to go out first (no time means ``now``); and whether more follow."""
        marks = ",".join("?" * len(statuses))
        rows = self.query(f"SELECT {self._DELIVERY_COLUMNS} FROM deliveries d JOIN articles a ON a.id = d.article_id "
                          f"WHERE d.status IN ({marks}) ORDER BY COALESCE(d.next_attempt_at, ?), d.id LIMIT ? OFFSET ?",
                          (*statuses, now, limit + 1, offset))
        return [DeliveryRow(*r) for r in rows[:limit]], len(rows) > limit

    # --- messages in the reader's language, one article's story, the month at a glance --------------
    def delivery_extras(self, delivery_id: int) -> tuple[str | None, str | None, str | None]:
        """(reason code, its parameters as JSON, the post's text as sent) of one delivery."""
        rows = self.query("SELECT reason_code, reason_params, sent_text FROM deliveries WHERE id = ?", (delivery_id,))
        return (rows[0][0], rows[0][1], rows[0][2]) if rows else (None, None, None)

    def channel_pause_code(self, name: str) -> tuple[str | None, str | None]:
        """(code, parameters as JSON) of why a channel is paused."""
        rows = self.query("SELECT paused_code, paused_params FROM channels WHERE name = ?", (name,))
        return (rows[0][0], rows[0][1]) if rows else (None, None)

    def article_summary(self, article_id: int) -> dict[str, Any] | None:
        rows = self.query("SELECT id, feed, key, title, link, published, first_seen_at FROM articles WHERE id = ?", (article_id,))
        return dict(rows[0]) if rows else None

    def article_deliveries(self, article_id: int) -> list[DeliveryRow]:
        return self._rows("d.article_id = ?", (article_id,), order="d.channel, d.generation, d.id")

    def article_events(self, article_id: int, limit: int = 2000) -> list[dict[str, Any]]:
        """Every event of one article (its deliveries' too), oldest first."""
        rows = self.query(
            "SELECT e.id, e.at, e.kind, e.status, e.delivery_id, e.channel, e.feed, e.message, e.actor, e.code, e.params FROM events e "
            "WHERE e.article_id = ? OR e.delivery_id IN (SELECT id FROM deliveries WHERE article_id = ?) ORDER BY e.at, e.id LIMIT ?",
            (article_id, article_id, limit))
        return [dict(r) for r in rows]

    def daily_outcomes(self, since: float) -> list[tuple[str, int, str, int]]:
        """(channel, day number counted from ``since`` in 86400 s steps, outcome, count): posts sent,
        and failures and holds as logged, since ``since``."""
        sent = self.query("SELECT channel, CAST((sent_at - ?) / 86400 AS INTEGER) AS day, COUNT(*) FROM deliveries "
                          "WHERE sent_at >= ? GROUP BY channel, day", (since, since))
        bad = self.query("SELECT channel, CAST((at - ?) / 86400 AS INTEGER) AS day, status, COUNT(*) FROM events "
                         "WHERE at >= ? AND channel != '' AND status IN ('failed', 'held') GROUP BY channel, day, status", (since, since))
        return [(r[0], int(r[1]), "sent", int(r[2])) for r in sent] + [(r[0], int(r[1]), r[2], int(r[3])) for r in bad]

    def publish_delays(self, since: float) -> dict[str, list[float]]:
        """Per channel, seconds from the site's publish time to the post, for first posts sent since ``since``, sorted."""
        out: dict[str, list[float]] = {}
        for channel, delay in self.query(
                "SELECT d.channel, d.sent_at - a.published FROM deliveries d JOIN articles a ON a.id = d.article_id "
                "WHERE d.sent_at >= ? AND a.published IS NOT NULL AND d.generation = 0 ORDER BY 1, 2", (since,)):
            out.setdefault(channel, []).append(max(0.0, float(delay)))
        return out

    # --- push: feed links, pings and WebSub subscriptions (additive; see autopublish/push/) ---------------
    def _push_tables(self) -> None:
        """Create the push tables on first use (additive: older databases simply gain them)."""
        if getattr(self, "_push_ready", False):
            return
        with self._lock:
            try:
                for statement in PUSH_SCHEMA.split(";"):
                    if statement.strip():
                        self.db.execute(statement)
            except sqlite3.Error as exc:
                raise self._translate(exc) from None
            self._push_ready = True

    def record_feed_links(self, feed: str, *, home: str, hub: str, self_url: str) -> None:
        """The home page, WebSub hub and self URL a feed declared at its last successful poll."""
        self._push_tables()
        with self.tx() as db:
            db.execute("INSERT INTO push_feeds (feed, home, hub, self_url, links_at) VALUES (?,?,?,?,?) "
                       "ON CONFLICT (feed) DO UPDATE SET home = excluded.home, hub = excluded.hub, self_url = excluded.self_url, "
                       "links_at = excluded.links_at", (feed, home, hub, self_url, self.now()))

    def note_push(self, feed: str, kind: str) -> None:
        """Remember when a ping, hook call or WebSub delivery last asked for ``feed`` (kind: ping, hook, websub)."""
        column = {"ping": "last_ping_at", "hook": "last_hook_at", "websub": "last_websub_at"}[kind]
        self._push_tables()
        with self.tx() as db:
            db.execute("INSERT INTO push_feeds (feed) VALUES (?) ON CONFLICT (feed) DO NOTHING", (feed,))
            db.execute(f"UPDATE push_feeds SET {column} = ? WHERE feed = ?", (self.now(), feed))

    def push_feed(self, feed: str) -> PushFeedRow | None:
        self._push_tables()
        rows = self.query("SELECT * FROM push_feeds WHERE feed = ?", (feed,))
        return PushFeedRow(**dict(rows[0])) if rows else None

    def push_feeds(self) -> list[PushFeedRow]:
        self._push_tables()
        return [PushFeedRow(**dict(row)) for row in self.query("SELECT * FROM push_feeds ORDER BY feed")]

    def websub_subscription(self, feed: str) -> WebSubRow | None:
        self._push_tables()
        rows = self.query("SELECT * FROM websub_subscriptions WHERE feed = ?", (feed,))
        return WebSubRow(**dict(rows[0])) if rows else None

    def websub_subscriptions(self) -> list[WebSubRow]:
        self._push_tables()
        return [WebSubRow(**dict(row)) for row in self.query("SELECT * FROM websub_subscriptions ORDER BY feed")]

    def save_websub(self, row: WebSubRow) -> None:
        self._push_tables()
        data = asdict(row)
        columns = ", ".join(data)
        updates = ", ".join(f"{name} = excluded.{name}" for name in data if name != "feed")
        with self.tx() as db:
            db.execute(f"INSERT INTO websub_subscriptions ({columns}) VALUES ({', '.join('?' for _ in data)}) "
                       f"ON CONFLICT (feed) DO UPDATE SET {updates}", tuple(data.values()))

    def delete_websub(self, feed: str) -> None:
        self._push_tables()
        with self.tx() as db:
            db.execute("DELETE FROM websub_subscriptions WHERE feed = ?", (feed,))

    # --- corrections and takedowns (issue 16) -------------------------------------------------
    def delivery_action(self, delivery_id: int) -> tuple[str, int | None]:
        """(kind, target delivery id): ("post", None) for a post, ("edit"/"delete", id of the post) otherwise."""
        rows = self.query("SELECT kind, target_id FROM deliveries WHERE id = ?", (delivery_id,))
        if not rows:
            return "post", None
        return str(rows[0][0] or "post"), (int(rows[0][1]) if rows[0][1] is not None else None)

    def stored_article(self, feed: str, key: str) -> tuple[int, Article] | None:
        """The article stored under this feed and key, with its id."""
        rows = self.query("SELECT id, data FROM articles WHERE feed = ? AND key = ?", (feed, key))
        return (int(rows[0][0]), article_from_json(rows[0][1])) if rows else None

    def article_actions(self, article_id: int) -> list[tuple[DeliveryRow, str, int | None]]:
        """Every delivery of an article with its kind and target, oldest first."""
        rows = self._rows("d.article_id = ?", (article_id,), order="d.id")
        kinds = {int(r[0]): (str(r[1]), r[2]) for r in self.query("SELECT id, kind, target_id FROM deliveries WHERE article_id = ?", (article_id,))}
        return [(row, kinds[row.id][0], kinds[row.id][1]) for row in rows]

    def taken_down(self, post_id: int) -> bool:
        """A delete of this post went out (or is on its way and not given up)."""
        rows = self.query("SELECT 1 FROM deliveries WHERE kind = 'delete' AND target_id = ? AND status NOT IN ('failed', 'skipped')", (post_id,))
        return bool(rows)

    def find_article(self, ref: str) -> int | None:
        """An article by the delivery number ``log`` shows (#12 or 12) or by its link."""
        ref = ref.strip()
        if ref.lstrip("#").isdigit():
            rows = self.query("SELECT article_id FROM deliveries WHERE id = ?", (int(ref.lstrip("#")),))
            return int(rows[0][0]) if rows else None
        rows = self.query("SELECT id FROM articles WHERE link = ? OR canonical = ? ORDER BY id LIMIT 1", (ref, ref))
        return int(rows[0][0]) if rows else None

    def update_article(self, article_id: int, article: Article, message: str) -> None:
        """Keep the site's corrected text (later posts and edits use it) and log the edit."""
        with self.tx() as db:
            db.execute("UPDATE articles SET data = ?, title = ? WHERE id = ?", (article_to_json(article), article.title, article_id))
            if message:
                self._event(db, "edited", message, status="edited", article_id=article_id, feed=article.feed)

    def note(self, kind: str, message: str, *, delivery_id: int | None = None, article_id: int | None = None, channel: str = "",
             status: str = "", actor: str = "autopublish") -> None:
        """One line in the publish log about a delivery or an article, without a state change."""
        with self.tx() as db:
            self._event(db, kind, message, status=status, delivery_id=delivery_id, article_id=article_id, channel=channel, actor=actor)

    def queue_action(self, target_id: int, kind: str, reason: str, actor: str = "autopublish") -> int | None:
        """Queue an edit or a delete of the post delivery ``target_id``, in one transaction.

        A newer edit replaces one still pending. A delete is queued once: None when one is
        already on its way or done (so a repeated retract adds nothing).
        """
        now = self.now()
        with self.tx() as db:
            target = db.execute("SELECT article_id, channel FROM deliveries WHERE id = ?", (target_id,)).fetchone()
            if target is None:
                return None
            marks = ",".join("?" * len(PENDING))
            if kind == "delete":
                if db.execute("SELECT 1 FROM deliveries WHERE kind = 'delete' AND target_id = ? AND status NOT IN ('failed', 'skipped')",
                              (target_id,)).fetchone():
                    return None
                pending = db.execute(f"SELECT id FROM deliveries WHERE target_id = ? AND kind = 'edit' AND status IN ({marks})",
                                     (target_id, *PENDING)).fetchall()
                replaced = "Skipped: the post is being taken down"
            else:
                pending = db.execute(f"SELECT id FROM deliveries WHERE target_id = ? AND kind = 'edit' AND status IN ({marks})",
                                     (target_id, *PENDING)).fetchall()
                replaced = "Replaced by a newer edit of the article"
            for row in pending:
                db.execute("UPDATE deliveries SET status = 'skipped', reason = ?, updated_at = ?, next_attempt_at = NULL WHERE id = ?",
                           (replaced, now, row["id"]))
                self._event(db, "skip", replaced, status="skipped", delivery_id=row["id"], article_id=target["article_id"],
                            channel=target["channel"], actor=actor)
            top = db.execute("SELECT MAX(generation) FROM deliveries WHERE article_id = ? AND channel = ?",
                             (target["article_id"], target["channel"])).fetchone()[0]
            new_id = self._insert_delivery(db, target["article_id"], target["channel"], DeliveryStatus.QUEUED, reason,
                                           generation=int(top or 0) + 1)
            if new_id is None:
                return None
            db.execute("UPDATE deliveries SET kind = ?, target_id = ? WHERE id = ?", (kind, target_id, new_id))
            self._event(db, kind, reason, status="queued", delivery_id=new_id, article_id=target["article_id"],
                        channel=target["channel"], actor=actor)
            return new_id

    def live_articles(self, since: float) -> list[tuple[int, str, str, str]]:
        """(article id, feed, link, title) of articles with a post live since ``since`` and not taken down."""
        rows = self.query(
            "SELECT DISTINCT a.id, a.feed, a.link, a.title FROM deliveries d JOIN articles a ON a.id = d.article_id "
            "WHERE d.kind = 'post' AND d.status = 'sent' AND d.sent_at >= ? AND NOT EXISTS (SELECT 1 FROM deliveries x "
            "WHERE x.kind = 'delete' AND x.target_id = d.id AND x.status NOT IN ('failed', 'skipped')) ORDER BY a.id",
            (since,))
        return [(int(r[0]), str(r[1]), str(r[2]), str(r[3])) for r in rows]


PUSH_SCHEMA = """
CREATE TABLE IF NOT EXISTS push_feeds (
    feed TEXT PRIMARY KEY,
    home TEXT NOT NULL DEFAULT '', hub TEXT NOT NULL DEFAULT '', self_url TEXT NOT NULL DEFAULT '',
    links_at REAL, last_ping_at REAL, last_hook_at REAL, last_websub_at REAL
);
CREATE TABLE IF NOT EXISTS websub_subscriptions (
    feed TEXT PRIMARY KEY,
    hub TEXT NOT NULL,
    topic TEXT NOT NULL,
    callback TEXT NOT NULL,
    nonce TEXT NOT NULL,
    state TEXT NOT NULL,
    pending TEXT NOT NULL DEFAULT '',
    lease_seconds REAL,
    lease_expires_at REAL,
    requested_at REAL,
    verified_at REAL,
    failures INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL,
    last_error TEXT NOT NULL DEFAULT ''
);
"""


@dataclass(frozen=True, slots=True)
class PushFeedRow:
    feed: str
    home: str = ""
    hub: str = ""
    self_url: str = ""
    links_at: float | None = None
    last_ping_at: float | None = None
    last_hook_at: float | None = None
    last_websub_at: float | None = None


@dataclass(frozen=True, slots=True)
class WebSubRow:
    """One WebSub subscription. ``state``: subscribing, active, denied, failing, unsubscribing.
    ``pending`` is the mode (subscribe / unsubscribe) whose verification we await, else "".
    The secret is never stored: it is derived from the push token and ``nonce``."""

    feed: str
    hub: str
    topic: str
    callback: str
    nonce: str
    state: str
    pending: str = ""
    lease_seconds: float | None = None
    lease_expires_at: float | None = None
    requested_at: float | None = None
    verified_at: float | None = None
    failures: int = 0
    next_attempt_at: float | None = None
    last_error: str = ""
