"""One daemon per state directory: an exclusive flock on the state directory itself.

The lock is held on an open descriptor of the directory, not on a file in it, so
deleting ``autopublish.lock`` (which only records the holder's process id, for the
message) does not let a second daemon in. The kernel releases the lock when the process
dies, so a crash never leaves a stale lock.

Several nodes sharing one PostgreSQL store (the scale-out design) coordinate through the
database instead; ``instance_lock`` is where such a store will return ``NoLock``.
"""

from __future__ import annotations

import fcntl
import os
from contextlib import AbstractContextManager
from pathlib import Path

from autopublish.errors import AutopublishError
from autopublish.filemodes import private_dir


class AlreadyRunningError(AutopublishError):
    """Another autopublish holds the state directory."""


class StateLock:
    PID_FILE = "autopublish.lock"

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.path = state_dir / self.PID_FILE
        self._fd: int | None = None

    def acquire(self) -> StateLock:
        private_dir(self.state_dir)
        fd = os.open(self.state_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise AlreadyRunningError(
                f"Another autopublish is already running with the state directory {self.state_dir} (process {self._holder()}); "
                "stop it first, or use a different state_dir"
            ) from None
        self._fd = fd
        self._write_pid()
        return self

    def _holder(self) -> str:
        try:
            return self.path.read_text(encoding="utf-8").strip() or "unknown"
        except OSError:
            return "unknown"

    def _write_pid(self) -> None:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(f"{os.getpid()}\n")
        except OSError:
            pass  # the pid file is only for the message; the lock is the directory's

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> StateLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


class NoLock(AbstractContextManager[None]):
    """For stores that let several daemons work together (they coordinate in the database)."""

    def __exit__(self, *exc: object) -> None:
        return None


def instance_lock(state_dir: Path, *, shared_database: bool = False) -> AbstractContextManager[object]:
    """The lock a daemon or ``run --once`` holds while it works: the directory lock for SQLite in
    ``state_dir``; none for a shared PostgreSQL, where the nodes coordinate in the database."""
    return NoLock() if shared_database else StateLock(state_dir)
