"""``autopublish count``: a platform's own length of a text, without credentials."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import requests

from autopublish.errors import AutopublishError
from autopublish.platforms import PUBLISHERS, publisher_class
from autopublish.platforms.base import PublisherEnv


def count_for(platform: str, text: str, *, instance: str | None = None) -> tuple[int, int]:
    """(length, limit) of ``text`` on ``platform``; Mastodon uses 500/23 unless ``instance`` is given."""
    if platform not in PUBLISHERS:
        raise AutopublishError(f"Unknown platform {platform!r}; known platforms: {', '.join(PUBLISHERS)}")
    cls = publisher_class(platform)
    publisher = cls.__new__(cls)
    publisher.channel = "count"
    publisher.env = PublisherEnv(session=requests.Session(), state_dir=Path("."), now=lambda: datetime.now(UTC))
    publisher.options = None  # type: ignore[assignment]
    refine = getattr(cls, "limits_for_instance", None)
    if instance and callable(refine):
        limits = refine(publisher.env.session, instance)
        publisher.__dict__["current_limits"] = lambda: limits
    elif hasattr(cls, "offline_limits"):
        limits = cls.offline_limits()  # type: ignore[attr-defined]
        publisher.__dict__["current_limits"] = lambda: limits
    else:
        publisher.__dict__["current_limits"] = lambda: cls.limits
    return publisher.count(text), publisher.current_limits().max_length
