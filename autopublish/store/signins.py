"""Sign-in attempt counts, shared by every web process on one database (the editors' page throttle).

One row per (kind, key): kind is "address" or "account", key the address (an IPv6 /64) or
the casefolded account name; never a password. The policy (how long to wait after how many
failures) is the caller's; this module makes counting atomic across processes.

A reservation is one write transaction. On PostgreSQL each of its rows is taken by an upsert
whose no-op update locks the row (``INSERT ... ON CONFLICT DO UPDATE ... RETURNING``), in a fixed
order so two reservations never deadlock; a parallel reservation of the same key waits until
this one commits, then sees its count. On SQLite the write transaction (``BEGIN IMMEDIATE``)
serialises every writer, in this process and in others.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from sqlalchemy import Connection, Select, delete, func, select, tuple_, update

from autopublish.store import schema as t
from autopublish.store.base import StoreBase

a = t.sign_in_attempts.c


class _Refused(Exception):
    """Raised inside the reservation's transaction to roll it back: nothing is counted."""

    def __init__(self, wait: float) -> None:
        super().__init__(wait)
        self.wait = wait


class SignInStore(StoreBase):
    def reserve_sign_in(self, keys: Iterable[tuple[str, str]], *, now: float, delay: Callable[[str, int], float],
                        forget_after: float) -> float:
        """Count one attempt against every (kind, key) at once, unless one of them must still wait.

        Returns 0.0 when the attempt was counted (each row's next allowed time set to
        ``now + delay(kind, failures)``), else the seconds until the latest of them allows
        one (nothing counted). A count quiet for ``forget_after`` seconds starts from zero.
        """
        ordered = sorted(set(keys))  # one lock order for every reservation: no deadlocks
        try:
            with self.db.tx() as conn:
                rows = [self._locked(conn, kind, key, now) for kind, key in ordered]
                counts = [(0, 0.0) if now - last > forget_after else (failures, not_before) for failures, not_before, last in rows]
                wait = max((not_before - now for _, not_before in counts), default=0.0)
                if wait > 0:
                    raise _Refused(wait)
                for (kind, key), (failures, _) in zip(ordered, counts, strict=True):
                    failures += 1
                    conn.execute(update(t.sign_in_attempts).where(a.kind == kind, a.key == key)
                                 .values(failures=failures, not_before=now + delay(kind, failures), last_at=now))
        except _Refused as refused:
            return refused.wait
        return 0.0

    def _locked(self, conn: Connection, kind: str, key: str, now: float) -> tuple[int, float, float]:
        """The row of (kind, key), created if missing, locked until the transaction ends."""
        statement = self.db.insert(t.sign_in_attempts).values(kind=kind, key=key, failures=0, not_before=0.0, last_at=now)
        statement = statement.on_conflict_do_update(index_elements=[a.kind, a.key], set_={"failures": a.failures})  # a no-op that locks the row
        row = conn.execute(statement.returning(a.failures, a.not_before, a.last_at)).one()
        return int(row[0]), float(row[1]), float(row[2])

    def clear_sign_in(self, keys: Iterable[tuple[str, str]]) -> None:
        """The sign-in succeeded: these counts start again."""
        with self.db.tx() as conn:
            for kind, key in sorted(set(keys)):  # one row at a time, in the reservations' lock order: no deadlock
                conn.execute(delete(t.sign_in_attempts).where(a.kind == kind, a.key == key))

    def sign_in_count(self, kind: str, key: str) -> tuple[int, float] | None:
        """(failures, next allowed time) of one count, or None."""
        with self.db.read() as conn:
            row = conn.execute(select(a.failures, a.not_before).where(a.kind == kind, a.key == key)).first()
        return (int(row[0]), float(row[1])) if row else None

    def prune_sign_ins(self, *, quiet_since: float, keep: int) -> int:
        """Forget counts with no attempt since ``quiet_since``; then, of a kind holding more than ``keep``, all
        but ``keep // 2``: first those that hold nobody back longest (earliest next allowed time), then the stalest,
        so a flood of new addresses cannot push out the long waits. Rows a reservation holds right now are left for
        the next time."""
        with self.db.tx() as conn:
            removed = self._delete(conn, select(a.kind, a.key).where(a.last_at < quiet_since))
            for kind, count in conn.execute(select(a.kind, func.count()).group_by(a.kind).having(func.count() > keep)).all():
                removed += self._delete(conn, select(a.kind, a.key).where(a.kind == kind)
                                        .order_by(a.not_before, a.last_at, a.key).limit(int(count) - keep // 2))
        return removed

    def _delete(self, conn: Connection, doomed: Select[tuple[str, str]]) -> int:
        if not self.db.is_sqlite:
            doomed = doomed.with_for_update(skip_locked=True)  # never wait for a reservation: no deadlock
        return int(conn.execute(delete(t.sign_in_attempts).where(tuple_(a.kind, a.key).in_(doomed))).rowcount)
