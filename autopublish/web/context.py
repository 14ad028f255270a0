"""What the editors' page works with, built once by ``create_app`` and read by the views.

Views are module-level functions of one Blueprint; they reach the config, the store and
the rest through ``web()`` (the running app's WebContext) instead of a closure.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app

from autopublish.config import Config
from autopublish.secrets import Redactor
from autopublish.store import Store
from autopublish.web.sessions import SessionBook
from autopublish.web.throttle import LoginThrottle
from autopublish.web.users import UserDirectory

EXTENSION = "autopublish_web"


@dataclass
class WebContext:
    config: Config
    store: Store
    redactor: Redactor
    clock: Callable[[], float]
    zone: ZoneInfo
    refresh: int
    users: UserDirectory
    sessions: SessionBook
    throttle: LoginThrottle
    publisher_cache: dict[str, Any] = field(default_factory=dict)
    publisher_lock: threading.Lock = field(default_factory=threading.Lock)

    def publishers(self) -> dict[str, Any]:
        """The channels' publishers (for previews), built on first use."""
        with self.publisher_lock:
            if not self.publisher_cache:
                from autopublish.app import build_publishers, platform_session

                self.publisher_cache.update(build_publishers(self.config, platform_session(), clock=self.clock))
            return self.publisher_cache


def web() -> WebContext:
    """The running app's context (inside a request or app context)."""
    context: WebContext = current_app.extensions[EXTENSION]
    return context
