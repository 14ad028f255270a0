"""Channels: pause and resume (the queue is kept), token expiry, and the channel lease.

The lease makes one node at a time post for a channel, so its order and pacing hold
across nodes; it expires, so a dead node's channels are taken over.
"""

from __future__ import annotations

from sqlalchemy import delete, select, update

from autopublish.messages import Message, code_of, msg
from autopublish.models import DeliveryStatus
from autopublish.store import schema as t
from autopublish.store.deliveries import DeliveryStore
from autopublish.store.rows import ChannelRow

c, d, lease = t.channels.c, t.deliveries.c, t.channel_leases.c

# Jobs lease a name in the channels' lease table; a channel name has letters, digits, - and _ only,
# so a name with this prefix is never a channel's.
TASK_PREFIX = "task:"


class ChannelStore(DeliveryStore):
    def channel(self, name: str) -> ChannelRow:
        with self.db.read() as conn:
            r = conn.execute(select(c.name, c.paused, c.paused_reason, c.paused_at, c.paused_by, c.token_expires_at, c.last_success_at,
                                    c.last_failure_at).where(c.name == name)).first()
        if r is None:
            return ChannelRow(name, False, "", None, "", None, None, None)
        return ChannelRow(r[0], bool(r[1]), r[2], r[3], r[4], r[5], r[6], r[7])

    def pause_channel(self, name: str, reason: str | Message, actor: str = "autopublish") -> bool:
        """Pause a channel; its queue is kept. False if it was already paused."""
        code, params = code_of(reason)
        with self.db.tx() as conn:
            conn.execute(self.db.insert_ignore(t.channels).values(name=name))
            done = conn.execute(update(t.channels).where(c.name == name, c.paused == 0).values(
                paused=1, paused_reason=str(reason), paused_at=self.now(), paused_by=actor, paused_code=code, paused_params=params))
            if done.rowcount:
                self._event(conn, "paused", reason, channel=name, status="paused", actor=actor)
            return bool(done.rowcount)

    def resume_channel(self, name: str, actor: str = "autopublish") -> int:
        """Unpause; held deliveries of the channel go back to the queue. Returns how many."""
        now = self.now()
        with self.db.tx() as conn:
            conn.execute(self.db.insert_ignore(t.channels).values(name=name))
            conn.execute(update(t.channels).where(c.name == name).values(paused=0, paused_reason="", paused_at=None, paused_by="",
                                                                        paused_code=None, paused_params=None))
            back = msg("resumed_row")
            code, params = code_of(back)
            moved = conn.execute(update(t.deliveries).where(d.channel == name, d.status == DeliveryStatus.HELD, d.needs_editor == 0).values(
                status=DeliveryStatus.QUEUED, reason=str(back), reason_code=code, reason_params=params, next_attempt_at=now,
                updated_at=now).returning(d.id)).all()
            self._event(conn, "resumed", msg("resumed", count=len(moved)), channel=name, status="active", actor=actor)
            return len(moved)

    def channel_pause_code(self, name: str) -> tuple[str | None, str | None]:
        """(code, parameters as JSON) of why a channel is paused."""
        with self.db.read() as conn:
            row = conn.execute(select(c.paused_code, c.paused_params).where(c.name == name)).first()
        return (row[0], row[1]) if row else (None, None)

    def set_token_expiry(self, name: str, expires_at: float | None) -> None:
        with self.db.tx() as conn:
            self._touch_channel(conn, name, token_expires_at=expires_at)

    # --- the channel lease ------------------------------------------------------------------
    def lease_task(self, name: str, ttl: float) -> bool:
        """Take or renew a node-wide job that one node at a time runs (WebSub upkeep), like a channel lease."""
        return self.lease_channel(TASK_PREFIX + name, ttl)

    def release_task(self, name: str) -> None:
        self.release_channel(TASK_PREFIX + name)

    def lease_channel(self, name: str, ttl: float) -> bool:
        """Take or renew the right to post for ``name`` for ``ttl`` seconds; False while another live node holds it."""
        now = self.now()
        statement = self.db.insert(t.channel_leases).values(channel=name, node=self.node_id, expires_at=now + ttl)
        statement = statement.on_conflict_do_update(
            index_elements=[lease.channel],
            set_={"node": statement.excluded.node, "expires_at": statement.excluded.expires_at},
            where=(lease.node == self.node_id) | (lease.expires_at < now),
        ).returning(lease.node)
        with self.db.tx() as conn:
            return conn.execute(statement).first() is not None

    def release_channel(self, name: str) -> None:
        with self.db.tx() as conn:
            conn.execute(delete(t.channel_leases).where(lease.channel == name, lease.node == self.node_id))
