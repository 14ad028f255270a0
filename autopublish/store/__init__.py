"""The store: the only source of truth for "was this posted", on SQLite (one node) or PostgreSQL (several).

Split by concern: ``connection`` (engine, transactions, errors), ``migrations`` (Alembic),
``feeds``, ``deliveries`` (articles, claims, editors' actions), ``channels`` (pause,
leases), ``log`` (the publish log and the editors' page), ``alerts``, ``sessions`` (the
editors' page sign-ins), ``push`` (feed links, WebSub) and ``nodes`` (heartbeats, settling a dead node's claims). Every SQL statement lives here.
``signins`` keeps the sign-in throttle's counts, shared by every web process.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Self

from sqlalchemy import text

from autopublish.clock import NodeClock
from autopublish.errors import StateError
from autopublish.filemodes import private_dir, private_file
from autopublish.store import migrations
from autopublish.store.alerts import AlertStore
from autopublish.store.connection import Database, redact_url
from autopublish.store.corrections import CorrectionStore
from autopublish.store.log import LogStore
from autopublish.store.nodes import NodeStore
from autopublish.store.push import PushStore
from autopublish.store.rows import (
    PENDING,
    REPOSTABLE,
    RESOLVABLE_AS_POSTED,
    RETRYABLE,
    SKIPPABLE,
    ArticleLine,
    ChannelRow,
    DeliveryRow,
    FeedRow,
    NodeRow,
    PushFeedRow,
    WebSessionRow,
    WebSubRow,
    article_from_json,
    article_to_json,
)
from autopublish.store.sessions import SessionStore
from autopublish.store.signins import SignInStore

__all__ = [
    "PENDING", "REPOSTABLE",
    "RESOLVABLE_AS_POSTED", "RETRYABLE", "SKIPPABLE", "ArticleLine", "ChannelRow", "DeliveryRow", "FeedRow", "NodeRow", "PushFeedRow",
    "Store", "WebSessionRow", "WebSubRow",
    "article_from_json", "article_to_json", "redact_url",
]


class Store(NodeStore, LogStore, CorrectionStore, AlertStore, SessionStore, SignInStore, PushStore):
    """One database: a state directory (SQLite, the default) or a ``postgresql://`` address.

    ``migrate``: bring an older schema up to date on open. Default: SQLite yes (one process
    owns it); PostgreSQL no: a node refuses an old schema and asks for ``autopublish db upgrade``.
    """

    FILENAME = "state.db"

    def __init__(self, location: Path | str, *, clock: Callable[[], float] | None = None, create: bool = True,
                 migrate: bool | None = None, dead_after: float = 30.0) -> None:
        """``clock``: the time source; by default a NodeClock, set to the database's clock on PostgreSQL."""
        db = Database(location, create=create)
        super().__init__(db, clock=NodeClock() if clock is None else clock, dead_after=dead_after)
        try:
            if db.is_sqlite:
                self._check_integrity()
            migrations.check(db, migrate=db.is_sqlite if migrate is None else migrate)
            self.align_clock(tries=3)  # before this node writes a time; the first reading may wait for a connection
        except BaseException:
            db.close()
            raise

    @classmethod
    def for_config(cls, config: object, *, clock: Callable[[], float] | None = None, migrate: bool | None = None,
                   create: bool = True) -> Store:
        """The store a config names: [settings] database, else SQLite in state_dir."""
        from autopublish.config import Config

        assert isinstance(config, Config)
        database = config.database
        location: Path | str = database.reveal() if database is not None else config.state_dir
        return cls(location, clock=clock, migrate=migrate, create=create, dead_after=3 * config.settings.heartbeat)

    @property
    def shown(self) -> str:
        """Where the data lives, for messages (a password is never shown)."""
        return self.db.shown

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_integrity(self) -> None:
        with self.db.read() as conn:
            row = conn.exec_driver_sql("PRAGMA quick_check").first()
        if row is None or row[0] != "ok":
            raise StateError(f"The state database {self.path} is damaged; publishing stopped. Restore it from a backup "
                             "(autopublish backup makes one); autopublish will not start from an empty database, because that would post every article again")

    def batch(self) -> AbstractContextManager[None]:
        """Many writes in one transaction (see Database.batch)."""
        return self.db.batch()

    def savepoint(self) -> AbstractContextManager[None]:
        """Inside batch(): undo only this block's writes on an exception."""
        return self.db.savepoint()

    def ping(self) -> None:
        """Raise StateError unless the database answers."""
        with self.db.read() as conn:
            conn.execute(text("SELECT 1"))

    def backup(self, target: Path) -> None:
        """A consistent copy while the daemon runs (SQLite's online backup API)."""
        if not self.db.is_sqlite:
            raise StateError("autopublish backup copies the SQLite state database; back up PostgreSQL with its own tools (pg_dump)")
        private_dir(target.parent)
        private_file(target)
        with self.db.read() as conn:
            source = conn.connection.driver_connection
            assert isinstance(source, sqlite3.Connection)
            try:
                destination = sqlite3.connect(target)
                with destination:
                    source.backup(destination)
                destination.close()
            except sqlite3.Error as exc:
                raise self.db.translate(exc) from None
