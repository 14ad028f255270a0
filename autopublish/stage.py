"""What the pipeline's parts (intake, delivery, health) share: the state the Pipeline facade sets up.

Each part is a mixin over ``Stage``; ``autopublish.pipeline.Pipeline`` puts them together.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol

from autopublish.config import Config
from autopublish.errors import StateError
from autopublish.feeds import FetchLimits
from autopublish.lanes import Lanes
from autopublish.messages import Message
from autopublish.models import Article
from autopublish.netguard import GuardedFetcher, Origin
from autopublish.platforms.base import Publisher
from autopublish.retry import RetryPolicy
from autopublish.secrets import Redactor
from autopublish.store import Store


class Notifier(Protocol):
    """Where open problems go (admins' alert channels, e-mail). Never blocks publishing."""

    def problem(self, key: str, message: str | Message) -> None: ...

    def resolved(self, key: str, message: str | Message) -> None: ...


class Silent:
    def problem(self, key: str, message: str | Message) -> None:
        return None

    def resolved(self, key: str, message: str | Message) -> None:
        return None


class Stage:
    """The attributes every part reads (set in ``Pipeline.__init__``) and the alerts held until a batch commits."""

    config: Config
    store: Store
    publishers: dict[str, Publisher[Any]]
    fetcher: GuardedFetcher
    redact: Redactor
    clock: Callable[[], float]
    rand: Callable[[], float]
    notifier: Notifier
    policy: RetryPolicy
    fetch_limits: FetchLimits
    lock: threading.RLock
    poll_seconds: dict[str, float]
    lanes: Lanes
    lane_errors: list[StateError]
    _held: threading.local  # .alerts: this thread's notifications held until its batch commits

    def _notify(self, notify: Callable[[], None]) -> None:
        held: list[Callable[[], None]] | None = getattr(self._held, "alerts", None)
        if held is not None:
            held.append(notify)
        else:
            notify()

    def lease_ttl(self) -> float:
        """How long a feed or channel lease lasts without renewal: longer than any fetch or publish takes."""
        s = self.config.settings
        return max(s.fetch_deadline, 4 * s.publish_timeout) + 60.0

    def source_origin(self, article: Article) -> str | None:
        """The origin of the feed that carried ``article``: URLs from its data may be fetched there."""
        feed = self.config.feeds.get(article.feed)
        origin = Origin.of(feed.url) if feed is not None else None
        return str(origin) if origin is not None else None
