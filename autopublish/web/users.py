"""The ``[[web.users]]`` accounts, re-read when the config file changes, so edits apply without a restart.

Each request looks at the config file's modification time, size and inode (one stat call);
when they changed, the config is loaded again. An edited config that does not validate
keeps the accounts as they were, and the problem is logged (``autopublish check`` says what).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

from autopublish.config import Config, WebUserModel
from autopublish.errors import ConfigError
from autopublish.web.passwords import dummy_hash_like

log = logging.getLogger(__name__)

Signature = tuple[int, int, int] | None


def _signature(path: Path | None) -> Signature:
    if path is None:
        return None
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size, stat.st_ino


class UserDirectory:
    """Accounts by name. ``loader`` reloads the config; without one the accounts are fixed."""

    def __init__(self, config: Config, loader: Callable[[], Config] | None = None,
                 on_change: Callable[[dict[str, WebUserModel], dict[str, WebUserModel]], None] | None = None) -> None:
        self.path = None if config.embedded or loader is None else config.path
        self.loader = loader
        self.on_change = on_change
        self._lock = threading.Lock()
        self._signature = _signature(self.path)
        self._users = {user.name: user for user in config.web.users}
        self.dummy_hash = self._dummy(self._users)

    @staticmethod
    def _dummy(users: dict[str, WebUserModel]) -> str:
        first = next(iter(users.values()), None)
        return dummy_hash_like(first.password_hash if first else None)

    def get(self, name: str) -> WebUserModel | None:
        return self._users.get(name)

    def __bool__(self) -> bool:
        return bool(self._users)

    def refresh(self) -> None:
        """Re-read the accounts if the config file changed since the last look."""
        if self.loader is None or _signature(self.path) == self._signature:
            return
        with self._lock:
            signature = _signature(self.path)
            if signature == self._signature:
                return
            self._signature = signature
            try:
                config = self.loader()
            except ConfigError as exc:
                log.error("web: the edited config was not applied; the accounts stay as they were. %s", exc.message)
                return
            users = {user.name: user for user in config.web.users}
            if users == self._users:
                return
            old, self._users = self._users, users
            if [u.password_hash for u in old.values()][:1] != [u.password_hash for u in users.values()][:1]:
                self.dummy_hash = self._dummy(users)
            log.info("web: accounts reloaded from %s: %s", self.path, ", ".join(users) or "none")
        if self.on_change is not None:
            self.on_change(old, users)
