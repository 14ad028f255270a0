"""Editors' page sessions: one row per signed-in browser.

``id_hash`` is a hash of the id the cookie carries (the id itself is never stored);
``fingerprint`` is a keyed hash of the password hash the user signed in with, so a
changed password ends the session. Times come from the caller.
"""

from __future__ import annotations

from sqlalchemy import delete, select, update

from autopublish.store import schema as t
from autopublish.store.base import StoreBase
from autopublish.store.rows import WebSessionRow

w = t.web_sessions.c
_COLUMNS = (w.id_hash, w.user, w.created_at, w.last_seen_at, w.fingerprint)


class SessionStore(StoreBase):
    def create_web_session(self, id_hash: str, user: str, fingerprint: str, now: float) -> None:
        with self.db.tx() as conn:
            conn.execute(t.web_sessions.insert().values(id_hash=id_hash, user=user, created_at=now, last_seen_at=now, fingerprint=fingerprint))

    def web_session(self, id_hash: str) -> WebSessionRow | None:
        with self.db.read() as conn:
            row = conn.execute(select(*_COLUMNS).where(w.id_hash == id_hash)).first()
        return WebSessionRow(row[0], row[1], row[2], row[3], row[4]) if row else None

    def touch_web_session(self, id_hash: str, now: float) -> None:
        with self.db.tx() as conn:
            conn.execute(update(t.web_sessions).where(w.id_hash == id_hash).values(last_seen_at=now))

    def end_web_session(self, id_hash: str) -> bool:
        with self.db.tx() as conn:
            return bool(conn.execute(delete(t.web_sessions).where(w.id_hash == id_hash)).rowcount)

    def end_web_sessions(self, user: str, *, except_fingerprint: str | None = None) -> int:
        """End a user's sessions (all, or those not signed in with the password ``except_fingerprint`` stands for)."""
        with self.db.tx() as conn:
            return int(conn.execute(delete(t.web_sessions).where(w.user == user, w.fingerprint != (except_fingerprint or ""))).rowcount)

    def web_sessions(self) -> list[WebSessionRow]:
        """Every stored session, oldest first."""
        with self.db.read() as conn:
            rows = conn.execute(select(*_COLUMNS).order_by(w.created_at, w.user)).all()
        return [WebSessionRow(r[0], r[1], r[2], r[3], r[4]) for r in rows]

    def prune_web_sessions(self, *, seen_before: float, created_before: float) -> int:
        """Drop sessions idle since ``seen_before`` or begun before ``created_before``."""
        with self.db.tx() as conn:
            return int(conn.execute(delete(t.web_sessions).where((w.last_seen_at < seen_before) | (w.created_at < created_before))).rowcount)
