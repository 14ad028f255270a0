"""Alerts: one open problem per key, raised once across all nodes (conditional upserts)."""

from __future__ import annotations

from sqlalchemy import case, select, update

from autopublish.store import schema as t
from autopublish.store.base import StoreBase

al = t.alerts.c


class AlertStore(StoreBase):
    def open_alert(self, key: str, message: str, repeat: float) -> bool:
        """Record an open problem; True for exactly one caller when an alert should be sent now (new, or repeat elapsed)."""
        now = self.now()
        statement = self.db.insert(t.alerts).values(key=key, opened_at=now, last_sent_at=now, message=message, resolved_at=None)
        reopened = al.resolved_at.is_not(None)
        statement = statement.on_conflict_do_update(
            index_elements=[al.key],
            set_={
                "opened_at": case((reopened, statement.excluded.opened_at), else_=al.opened_at),
                "last_sent_at": statement.excluded.last_sent_at,
                "message": statement.excluded.message,
                "resolved_at": None,
            },
            where=reopened | al.last_sent_at.is_(None) | (al.last_sent_at <= now - repeat),
        ).returning(al.key)
        with self.db.tx() as conn:
            return conn.execute(statement).first() is not None

    def resolve_alert(self, key: str) -> bool:
        """Close an open problem; True for exactly one caller if it was open (so a 'resolved' message is due)."""
        with self.db.tx() as conn:
            done = conn.execute(update(t.alerts).where(al.key == key, al.resolved_at.is_(None)).values(resolved_at=self.now()))
            return bool(done.rowcount)

    def alert_due(self, key: str, repeat: float) -> bool:
        """True when ``open_alert`` would send: the problem is new, or ``repeat`` has passed."""
        with self.db.read() as conn:
            row = conn.execute(select(al.last_sent_at, al.resolved_at).where(al.key == key)).first()
        if row is None or row.resolved_at is not None or row.last_sent_at is None:
            return True
        return bool(self.now() - float(row.last_sent_at) >= repeat)

    def alert_is_open(self, key: str) -> bool:
        with self.db.read() as conn:
            return conn.execute(select(al.key).where(al.key == key, al.resolved_at.is_(None))).first() is not None
