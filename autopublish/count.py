"""``autopublish count``: a platform's own length of a text, without credentials."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

from autopublish.errors import AutopublishError
from autopublish.platforms import PUBLISHERS, publisher_class
from autopublish.platforms.base import PublisherEnv
from autopublish.secrets import Secret


def _holds_secret(annotation: object) -> bool:
    return annotation is Secret or Secret in getattr(annotation, "__args__", ())


def count_for(platform: str, text: str, *, instance: str | None = None) -> tuple[int, int]:
    """(length, limit) of ``text`` on ``platform`` with its default options.

    Mastodon uses the default 500/23 rule unless ``instance`` is given; then it asks that
    instance for its own limits (one request; the defaults if it cannot be reached).
    """
    if platform not in PUBLISHERS:
        raise AutopublishError(f"Unknown platform {platform!r}; known platforms: {', '.join(PUBLISHERS)}")
    cls = publisher_class(platform)
    overrides: dict[str, str] = {}
    if instance:
        if "instance" not in cls.Options.model_fields:
            raise AutopublishError(f"--instance applies to Mastodon only, not to {platform}")
        overrides["instance"] = instance.rstrip("/")
    # Counting reads layout options (link shortening, photo mode), never credentials:
    # defaults where the platform has them, inert blanks for required keys, unvalidated.
    blanks: dict[str, Any] = {
        name: Secret("") if _holds_secret(field.annotation) else ""
        for name, field in cls.Options.model_fields.items()
        if field.is_required()
    }
    options = cls.Options.model_construct(**{**blanks, **overrides})
    env = PublisherEnv(session=requests.Session(), state_dir=Path("."), timeout=(5.0, 10.0), now=lambda: datetime.now(UTC))
    publisher = cls("count", options, env)
    limits = publisher.load_limits() if instance else publisher.current_limits()
    return publisher.count(text), limits.max_length
