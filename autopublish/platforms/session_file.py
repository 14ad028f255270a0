"""A platform login kept between runs: one JSON file in the state directory, mode 0600.

Short-lived processes (``autopublish run --once`` from cron) would otherwise log in on
every run, and some logins are tightly limited (Bluesky's createSession: 30 per 5 minutes,
300 a day). The file holds tokens, so it lives in a 0700 folder, is created 0600 and
replaced atomically, and its content is never logged. A damaged or unreadable file counts
as no file (the adapter logs in again); a file that cannot be written only costs a login.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

FILE_MODE = 0o600
DIR_MODE = 0o700


class SessionFile:
    """``<state_dir>/sessions/<platform>-<channel>.json``."""

    def __init__(self, state_dir: Path, platform: str, channel: str) -> None:
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{platform}-{channel}")
        self.path = state_dir / "sessions" / f"{safe}.json"

    def load(self) -> dict[str, Any] | None:
        """The saved fields, or None when there is no usable file."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning("The saved login in %s could not be read (%s); logging in again", self.path, type(exc).__name__)
            return None
        return data if isinstance(data, dict) else None

    def save(self, data: dict[str, Any]) -> None:
        """Write atomically with mode 0600; a failure is logged (without the content) and ignored."""
        temporary = self.path.with_name(self.path.name + ".tmp")
        try:
            self.path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                os.fchmod(handle.fileno(), FILE_MODE)  # a leftover temporary file may have had another mode
                handle.write(json.dumps(data))
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.path)
        except OSError as exc:
            log.warning("The login could not be saved in %s (%s); the next run logs in again", self.path, type(exc).__name__)

    def clear(self) -> None:
        try:
            self.path.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("The saved login in %s could not be removed (%s)", self.path, type(exc).__name__)
