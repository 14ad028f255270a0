"""What every part of the store shares: the database, the clock, this node's id, the log writer."""

from __future__ import annotations

import os
import secrets
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from autopublish.clock import NodeClock
from autopublish.messages import Message, code_of
from autopublish.store import schema as t
from autopublish.store.connection import Database


def new_node_id() -> str:
    """Unique per process start: host, pid and a random tail (a restarted process is a new node)."""
    return f"{socket.gethostname()[:40]}-{os.getpid()}-{secrets.token_hex(3)}"


class StoreBase:
    db: Database
    clock: Callable[[], float]
    node_id: str
    dead_after: float

    def __init__(self, db: Database, *, clock: Callable[[], float] = time.time, dead_after: float = 30.0) -> None:
        self.db = db
        self.clock = clock
        self.node_id = new_node_id()
        self.dead_after = dead_after  # a node whose heartbeat is older than this is dead
        self.path: Path | None = db.path
        self.state_dir: Path | None = db.state_dir

    @property
    def single_node(self) -> bool:
        """SQLite is owned by one process (the state-directory lock); PostgreSQL is shared by nodes."""
        return self.db.is_sqlite

    def now(self) -> float:
        return float(self.clock())

    def _prepared(self, name: str, build: Callable[[], Any]) -> Any:
        """``build()``'s statement (values go in as parameters when it runs), made once per store:
        for a statement that differs by dialect (ON CONFLICT) and so cannot be a module constant."""
        statements: dict[str, Any] = self.__dict__.setdefault("_statements", {})
        statement = statements.get(name)
        if statement is None:
            statement = statements[name] = build()
        return statement

    def _event(self, conn: Connection, kind: str, message: str | Message, *, status: str = "", delivery_id: int | None = None,
               article_id: int | None = None, channel: str = "", feed: str = "", actor: str = "autopublish") -> None:
        code, params = code_of(message)
        conn.execute(t.events.insert(), {"at": self.now(), "kind": kind, "status": status, "delivery_id": delivery_id, "article_id": article_id,
                                         "channel": channel, "feed": feed, "message": str(message), "actor": actor, "code": code,
                                         "params": params})

    def _alive(self, conn: Connection) -> None:
        """This node is alive (it is claiming now): its row exists and its heartbeat is fresh."""
        now, offset = self.now(), self.clock_offset()
        statement = self.db.insert(t.nodes).values(id=self.node_id, host=socket.gethostname()[:100], pid=os.getpid(), started_at=now,
                                                   heartbeat_at=now, stopped_at=None, clock_offset=offset)
        conn.execute(statement.on_conflict_do_update(index_elements=[t.nodes.c.id],
                                                     set_={"heartbeat_at": now, "stopped_at": None, "clock_offset": offset}))

    def clock_offset(self) -> float:
        """How far this node's machine clock is behind the database's (see clock.py); 0 for a clock that is not a NodeClock."""
        return self.clock.offset if isinstance(self.clock, NodeClock) else 0.0

    def log_event(self, kind: str, message: str | Message, **fields: Any) -> None:
        with self.db.tx() as conn:
            self._event(conn, kind, message, **fields)
