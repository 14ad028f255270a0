"""Nodes: heartbeats, and settling what a dead node held.

A node's claims (deliveries it set to ``sending``) are touched by no one while its
heartbeat is fresh. Once the heartbeat is older than ``dead_after`` the node is dead:
in one transaction that locks its row (so a late heartbeat waits), its claims become
``uncertain`` (settled by reading the platform back, as after a crash) and its feed and
channel leases are freed. SQLite has one node; at start-up everything the previous
process left is settled the same way.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, and_, delete, func, not_, or_, select, update

from autopublish.clock import NodeClock
from autopublish.messages import msg
from autopublish.models import DeliveryStatus
from autopublish.store import schema as t
from autopublish.store.channels import TASK_PREFIX, ChannelStore
from autopublish.store.rows import NodeRow

n, d, f, lease = t.nodes.c, t.deliveries.c, t.feeds.c, t.channel_leases.c
INTERRUPTED = msg("interrupted")


class NodeStore(ChannelStore):
    def register_node(self) -> None:
        """Announce this node (or say it is alive again)."""
        with self.db.tx() as conn:
            self._alive(conn)

    def database_time(self) -> float | None:
        """The database's clock now (PostgreSQL); None on SQLite, whose one node keeps its own."""
        if self.single_node:
            return None
        with self.db.read() as conn:
            return float(conn.execute(select(func.extract("epoch", func.clock_timestamp()))).scalar_one())

    def align_clock(self, *, tries: int = 1) -> None:
        """Set this node's clock to the database's (see clock.py); a clock that is not a NodeClock (a test's) is left alone."""
        if isinstance(self.clock, NodeClock):
            self.clock.align(self.database_time, tries=tries)

    def heartbeat(self) -> None:
        with self.db.tx() as conn:
            beat = conn.execute(update(t.nodes).where(n.id == self.node_id).values(heartbeat_at=self.now(), stopped_at=None,
                                                                                  clock_offset=self.clock_offset()))
        if beat.rowcount == 0:
            self.register_node()

    def leave(self) -> None:
        """A clean stop: give back every lease now, so other nodes take over at once."""
        with self.db.tx() as conn:
            self._free_leases(conn, self.node_id)
            conn.execute(update(t.nodes).where(n.id == self.node_id).values(stopped_at=self.now()))

    def _free_leases(self, conn: Connection, node: str) -> None:
        conn.execute(delete(t.channel_leases).where(lease.node == node))
        conn.execute(update(t.feeds).where(f.lease_node == node).values(lease_node=None, lease_until=None))

    def recover_interrupted(self) -> list[int]:
        """At start-up: claims a crashed process left (SQLite: all; PostgreSQL: those of dead nodes) become ``uncertain``."""
        if not self.single_node:
            return self.recover_dead_nodes()
        with self.db.tx() as conn:
            ids = [r[0] for r in conn.execute(select(d.id).where(d.status == DeliveryStatus.SENDING, or_(
                d.claimed_by.is_(None), d.claimed_by != self.node_id)).order_by(d.id))]
            for delivery_id in ids:
                self._transition(conn, delivery_id, DeliveryStatus.UNCERTAIN, INTERRUPTED, expect=(DeliveryStatus.SENDING,), kind="interrupted")
            others = [r[0] for r in conn.execute(select(n.id).where(n.id != self.node_id, n.stopped_at.is_(None)))]
            for node in others:
                self._free_leases(conn, node)
            conn.execute(update(t.nodes).where(n.id.in_(others)).values(stopped_at=self.now()))
            conn.execute(delete(t.channel_leases).where(lease.node != self.node_id))
            conn.execute(update(t.feeds).where(f.lease_node != self.node_id).values(lease_node=None, lease_until=None))
        return ids

    def settle_own_claims(self, *, except_channels: Sequence[str] = ()) -> list[int]:
        """This node's ``sending`` rows on channels it posts nothing to right now (``except_channels`` are
        busy) lost their outcome (the database failed after the post): uncertain, to be checked, never left hanging."""
        with self.db.tx() as conn:
            ids = [r[0] for r in conn.execute(select(d.id).where(d.status == DeliveryStatus.SENDING, d.claimed_by == self.node_id,
                                                                 d.channel.not_in(list(except_channels))).order_by(d.id))]
            for delivery_id in ids:
                self._transition(conn, delivery_id, DeliveryStatus.UNCERTAIN,
                                 "The platform's answer could not be recorded; autopublish will check the platform before trying again",
                                 expect=(DeliveryStatus.SENDING,), kind="interrupted", claimed_by=self.node_id)
        return ids

    def recover_dead_nodes(self) -> list[int]:
        """Settle what dead nodes held: their claims become uncertain, their leases free. A live node is never touched."""
        if self.single_node:
            return []
        limit = self.now() - self.dead_after
        with self.db.read() as conn:
            claimers = {r[0] for r in conn.execute(select(d.claimed_by).where(d.status == DeliveryStatus.SENDING).distinct())}
            holders = {r[0] for r in conn.execute(select(lease.node).distinct())}
            holders |= {r[0] for r in conn.execute(select(f.lease_node).where(f.lease_node.is_not(None)).distinct())}
            # dead: stopped (a post may have been left hanging at shutdown) or silent for too long
            dead = {r[0] for r in conn.execute(select(n.id).where(or_(n.stopped_at.is_not(None), n.heartbeat_at < limit),
                                                                  n.id.in_([c for c in claimers | holders if c])))}
            known = {r[0] for r in conn.execute(select(n.id).where(n.id.in_([c for c in claimers if c])))} if claimers else set()
        suspects = dead | {c for c in claimers if c is None or c not in known}
        settled: list[int] = []
        for node in suspects:
            settled.extend(self._settle_node(node, limit))
        return settled

    def _settle_node(self, node: str | None, limit: float) -> list[int]:
        with self.db.tx() as conn:
            if node is not None:
                # Lock the node's row: a heartbeat arriving now waits, and a fresh one wins.
                row = conn.execute(select(n.id, n.heartbeat_at, n.stopped_at).where(n.id == node).with_for_update()).first()
                if row is not None and row.stopped_at is None and row.heartbeat_at >= limit:
                    return []
            owner = d.claimed_by.is_(None) if node is None else d.claimed_by == node
            ids = [r[0] for r in conn.execute(select(d.id).where(d.status == DeliveryStatus.SENDING, owner).order_by(d.id))]
            message = INTERRUPTED  # that node's autopublish stopped mid-post, as after a crash
            for delivery_id in ids:
                self._transition(conn, delivery_id, DeliveryStatus.UNCERTAIN, message, expect=(DeliveryStatus.SENDING,), kind="interrupted")
            if node is not None:
                self._free_leases(conn, node)
                conn.execute(update(t.nodes).where(n.id == node).values(stopped_at=self.now()))
        return ids

    def nodes(self, *, keep: float = 86400.0) -> list[NodeRow]:
        """Nodes seen within ``keep`` seconds, live ones first, with what each holds now."""
        now = self.now()
        with self.db.read() as conn:
            rows = conn.execute(select(n.id, n.host, n.pid, n.started_at, n.heartbeat_at, n.stopped_at, n.clock_offset)
                                .where(n.heartbeat_at >= now - keep).order_by(n.started_at)).all()
            posting: dict[str, list[int]] = {}
            for delivery_id, node in conn.execute(select(d.id, d.claimed_by).where(d.status == DeliveryStatus.SENDING).order_by(d.id)):
                posting.setdefault(node or "", []).append(int(delivery_id))
            channels: dict[str, list[str]] = {}
            for channel, node in conn.execute(select(lease.channel, lease.node).where(lease.expires_at >= now, not_(lease.channel.startswith(TASK_PREFIX)))
                                             .order_by(lease.channel)):
                channels.setdefault(node, []).append(channel)
            feeds: dict[str, list[str]] = {}
            for feed, node in conn.execute(select(f.name, f.lease_node).where(and_(f.lease_node.is_not(None), not_(f.lease_until < now)))
                                           .order_by(f.name)):
                feeds.setdefault(node, []).append(feed)
        out = [NodeRow(r.id, r.host, int(r.pid), r.started_at, r.heartbeat_at, r.stopped_at,
                       r.stopped_at is None and r.heartbeat_at >= now - self.dead_after,
                       tuple(posting.get(r.id, ())), tuple(channels.get(r.id, ())), tuple(feeds.get(r.id, ())), float(r.clock_offset))
               for r in rows]
        return sorted(out, key=lambda node: (not node.alive, -node.heartbeat_at))
