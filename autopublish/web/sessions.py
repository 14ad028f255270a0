"""Server-side sign-in sessions for the editors' page, kept in the store so they can be ended.

The browser's (signed) cookie carries only a random session id; the store keeps a hash of
it with the user, when it began, when it was last used and a fingerprint of the password
hash it was opened with. A session counts only while all of these hold: its row exists
(sign-out deletes it), its user is still in ``[[web.users]]``, with the same password hash,
it was used within the idle timeout and it began within the absolute lifetime.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable

from autopublish.config import WebUserModel
from autopublish.store import Store

log = logging.getLogger(__name__)


class SessionBook:
    def __init__(self, store: Store, key: bytes, clock: Callable[[], float], *, idle_timeout: float, lifetime: float) -> None:
        self.store = store
        self.key = key
        self.clock = clock
        self.idle_timeout = idle_timeout
        self.lifetime = lifetime
        # last_seen is written at most this often, so reading a page is not a write each time
        self.touch_every = min(60.0, idle_timeout / 10)

    @staticmethod
    def _id_hash(session_id: str) -> str:
        return hashlib.sha256(session_id.encode()).hexdigest()

    def fingerprint(self, user: WebUserModel) -> str:
        """Stands for the user's password hash without storing it (keyed, so it cannot be looked up)."""
        return hmac.new(self.key, b"autopublish-password:" + user.password_hash.encode(), hashlib.sha256).hexdigest()[:32]

    def start(self, user: WebUserModel) -> str:
        """A new session for ``user``; returns the id for the cookie. Expired sessions are swept on the way."""
        now = self.clock()
        self.store.prune_web_sessions(seen_before=now - self.idle_timeout, created_before=now - self.lifetime)
        session_id = secrets.token_urlsafe(32)
        self.store.create_web_session(self._id_hash(session_id), user.name, self.fingerprint(user), now)
        return session_id

    def resolve(self, session_id: object, users: Callable[[str], WebUserModel | None]) -> WebUserModel | None:
        """The signed-in user for this cookie's session id, or None (and the session ends) when it no longer counts."""
        if not isinstance(session_id, str) or not session_id:
            return None
        id_hash = self._id_hash(session_id)
        row = self.store.web_session(id_hash)
        if row is None:
            return None
        now = self.clock()
        user = users(row.user)
        why = ("the account was removed" if user is None
               else "the password changed" if not hmac.compare_digest(row.fingerprint, self.fingerprint(user))
               else "it was idle too long" if now - row.last_seen_at > self.idle_timeout
               else "it reached its lifetime" if now - row.created_at > self.lifetime
               else None)
        if why or user is None:
            self.store.end_web_session(id_hash)
            log.info("web: a session of %s ended: %s", row.user, why)
            return None
        if now - row.last_seen_at >= self.touch_every:
            self.store.touch_web_session(id_hash, now)
        return user

    def end(self, session_id: object) -> None:
        """Sign-out: this session stops counting at once."""
        if isinstance(session_id, str) and session_id:
            self.store.end_web_session(self._id_hash(session_id))

    def end_stale(self, user: WebUserModel | None, name: str) -> int:
        """After a config change: end ``name``'s sessions opened with another password (all of them if the user is gone)."""
        return self.store.end_web_sessions(name, except_fingerprint=self.fingerprint(user) if user else None)
