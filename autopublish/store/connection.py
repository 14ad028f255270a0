"""Connection and transactions: one engine for SQLite or PostgreSQL, errors in plain words.

SQLite: WAL, ``synchronous = FULL`` (a claim is on disk before the post leaves) and
``BEGIN IMMEDIATE`` for writes; one connection shared under a lock, as a single process
is the only writer. PostgreSQL: a connection pool, READ COMMITTED, and the claims and
leases are conditional updates, so several nodes can share it.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Table, create_engine, event
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

from autopublish.errors import StateError
from autopublish.filemodes import private_dir, private_file

SQLITE_FILENAME = "state.db"


def engine_url(location: str | Path) -> str:
    """A SQLAlchemy URL for a state directory (SQLite) or a ``postgresql://`` address (psycopg 3)."""
    if isinstance(location, Path):
        return f"sqlite:///{location / SQLITE_FILENAME}"
    if location.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + location.split("://", 1)[1]
    return location


def redact_url(url: str) -> str:
    """The address with its password masked, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(the configured database address)"


class Database:
    """The engine, transactions, and translation of driver errors into StateError."""

    def __init__(self, location: str | Path, *, create: bool = True) -> None:
        url = engine_url(location)
        self.shown = redact_url(url)
        self.path: Path | None = None
        self.state_dir: Path | None = None
        try:
            parsed = make_url(url)
        except ArgumentError:
            raise StateError("The database setting is not a database address; write it like "
                             "\"postgresql://user:${DB_PASSWORD}@host:5432/autopublish\"") from None
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        if self.is_sqlite:
            self.path = Path(parsed.database or "")
            self.state_dir = self.path.parent
            self.shown = str(self.path)
            if not self.path.exists() and not create:
                raise StateError(f"There is no state database at {self.path}; run autopublish once to create it")
            try:
                private_dir(self.state_dir)  # 0700; the database 0600 (its WAL files take its mode)
                private_file(self.path)
            except OSError as exc:
                raise StateError(f"The state directory {self.state_dir} cannot be used ({exc.strerror}); "
                                 "check its permissions and free space") from None
            self.engine: Engine = create_engine(url, poolclass=StaticPool,
                                                connect_args={"check_same_thread": False, "timeout": 15.0})
            event.listen(self.engine, "connect", _sqlite_connect)
            event.listen(self.engine, "begin", _sqlite_begin)
            self._lock: threading.RLock | None = threading.RLock()
        else:
            if parsed.get_backend_name() != "postgresql":
                raise StateError(f"The database {self.shown} is not supported; use SQLite (the default) or a postgresql:// address")
            try:
                self.engine = create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10,
                                            connect_args={"connect_timeout": 10, "application_name": "autopublish"})
            except (NoSuchModuleError, ImportError):
                raise StateError("PostgreSQL support is missing; reinstall autopublish (pip install .) to get psycopg") from None
            self._lock = None
        self._batch = threading.local()  # the connection of this thread's open batch(), if any

    def close(self) -> None:
        with self._guard():  # SQLite: one connection for every thread; never closed under another thread's statement (SIGSEGV)
            self.engine.dispose()

    def _guard(self) -> AbstractContextManager[Any]:
        return self._lock if self._lock is not None else nullcontext()

    def _joined(self) -> Connection | None:
        return getattr(self._batch, "conn", None)

    def in_batch(self) -> bool:
        """This thread has a batch() open: its reads and writes are one transaction."""
        return self._joined() is not None

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Many writes in ONE transaction (one commit; on SQLite one fsync): every tx() and read() of
        this thread inside joins it. On SQLite it holds the store's lock throughout, so keep network
        calls out of it; another thread's claim waits for it, then commits on its own, durably."""
        if self._joined() is not None:
            yield
            return
        with self.tx() as conn:
            self._batch.conn = conn
            try:
                yield
            finally:
                self._batch.conn = None

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """Inside batch(): on an exception, undo only the writes made in this block (then re-raise)."""
        conn = self._joined()
        if conn is None:
            yield
            return
        with conn.begin_nested():
            yield

    @contextmanager
    def tx(self) -> Iterator[Connection]:
        """One write transaction: committed when the block ends, rolled back on any error."""
        joined = self._joined()
        if joined is not None:
            with self._translated():
                yield joined  # an error propagates to batch(), which rolls everything back
            return
        with self._guard(), self._translated(), self.engine.connect() as conn:
            conn = conn.execution_options(autopublish_write=True)
            with conn.begin():
                yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read: one snapshot on SQLite, autocommit on PostgreSQL (inside batch(): its transaction)."""
        joined = self._joined()
        if joined is not None:
            with self._translated():
                yield joined
            return
        with self._guard(), self._translated(), self.engine.connect() as conn:
            yield conn if self.is_sqlite else conn.execution_options(isolation_level="AUTOCOMMIT")

    @contextmanager
    def _translated(self) -> Iterator[None]:
        """A driver error as one plain sentence (StateError)."""
        try:
            yield
        except DBAPIError as exc:
            raise self.translate(exc) from None

    # --- dialect differences, in one place ------------------------------------------------
    def insert(self, table: Table) -> Any:
        """An INSERT that knows ON CONFLICT (both dialects spell it the same in SQLAlchemy)."""
        if self.is_sqlite:
            return sqlite.insert(table)
        from sqlalchemy.dialects import postgresql  # loaded only by a node that uses PostgreSQL

        return postgresql.insert(table)

    def insert_ignore(self, table: Table) -> Any:
        return self.insert(table).on_conflict_do_nothing()

    def translate(self, exc: BaseException) -> StateError:
        original = getattr(exc, "orig", exc)
        text = str(original).lower()
        if self.is_sqlite:
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
            return StateError(f"The state database {self.path} failed ({first_line(original)})")
        if (isinstance(exc, DBAPIError) and exc.connection_invalidated) or "connect" in text or "terminat" in text or "closed" in text:
            return StateError(f"The database {self.shown} cannot be reached ({first_line(original)}); "
                              "publishing waits until it answers again. Check that PostgreSQL runs and the address and password are right")
        if "read-only" in text or "permission denied" in text:
            return StateError(f"The database {self.shown} refused a write ({first_line(original)}); check the user's rights")
        if "disk full" in text or "no space" in text:
            return StateError(f"The disk of the database {self.shown} is full; publishing stopped so that no post is lost")
        return StateError(f"The database {self.shown} failed ({first_line(original)})")


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _sqlite_connect(dbapi_connection: sqlite3.Connection, _record: object) -> None:
    dbapi_connection.isolation_level = None  # we issue BEGIN ourselves (see _sqlite_begin)
    # cache_size: 1 MB of pages instead of SQLite's 2 MB; the operating system caches the file as well,
    # and the daemon's own memory is what runs on small machines (issue 13: at most 80 MB with 1,000 feeds)
    for pragma in ("busy_timeout = 15000", "journal_mode = WAL", "synchronous = FULL", "foreign_keys = ON", "cache_size = -1024"):
        dbapi_connection.execute(f"PRAGMA {pragma}")


def _sqlite_begin(conn: Connection) -> None:
    """Writes take the write lock up front (BEGIN IMMEDIATE): no deadlock-prone lock upgrades."""
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("autopublish_write") else "BEGIN")


__all__ = ["Database", "SQLAlchemyError", "engine_url", "redact_url"]
