"""Who is signed in, what they may do, and the CSRF token every form carries."""

from __future__ import annotations

import functools
import secrets
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from flask import abort, g, session

from autopublish.config import WebUserModel
from autopublish.web.context import web

LOGIN_WINDOW = 300.0  # seconds
LOGIN_MAX_FAILURES = 5


class LoginLimiter:
    """A small in-memory count of failed sign-ins per address (enough for one process)."""

    def __init__(self, clock: Callable[[], float], window: float = LOGIN_WINDOW, limit: int = LOGIN_MAX_FAILURES) -> None:
        self.clock = clock
        self.window = window
        self.limit = limit
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, address: str) -> deque[float]:
        times = self._failures.setdefault(address, deque())
        cutoff = self.clock() - self.window
        while times and times[0] < cutoff:
            times.popleft()
        return times

    def blocked(self, address: str) -> bool:
        with self._lock:
            return len(self._recent(address)) >= self.limit

    def failed(self, address: str) -> None:
        with self._lock:
            self._recent(address).append(self.clock())
            if len(self._failures) > 10_000:  # never grows without bound
                self._failures.clear()

    def succeeded(self, address: str) -> None:
        with self._lock:
            self._failures.pop(address, None)


def safe_next(target: str | None) -> str | None:
    """A same-site path to go back to after an action; anything else is ignored."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return None


def current_user() -> WebUserModel | None:
    name = session.get("user")
    return web().users.get(name) if isinstance(name, str) else None


def csrf_token() -> str:
    """This browser session's CSRF token, made on first use."""
    token = session.get("csrf")
    if not isinstance(token, str) or len(token) < 32:
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


def editor_only(func: Callable[..., Any]) -> Callable[..., Any]:
    """Refuse (403) a signed-in viewer."""
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if g.user is None or g.user.role != "editor":
            abort(403)
        return func(*args, **kwargs)

    return wrapper


def actor() -> str:
    """Who acted, as the publish log names them."""
    return f"web:{g.user.name}"
