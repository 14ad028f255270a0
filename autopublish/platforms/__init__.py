"""The platform registry: platform name -> "module:Class", imported only when used.

Explicit and greppable; a platform's module (and its libraries) is imported only when
a channel uses it. The core never imports a platform module directly.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from autopublish.platforms.base import Publisher

PUBLISHERS: dict[str, str] = {
    "outbox": "autopublish.platforms.outbox:OutboxPublisher",
    "facebook": "autopublish.platforms.meta.facebook:FacebookPublisher",
    "mastodon": "autopublish.platforms.mastodon:MastodonPublisher",
    "bluesky": "autopublish.platforms.bluesky:BlueskyPublisher",
    "telegram": "autopublish.platforms.telegram:TelegramPublisher",
    "discord": "autopublish.platforms.discord:DiscordPublisher",
    "slack": "autopublish.platforms.slack:SlackPublisher",
    "webhook": "autopublish.platforms.webhook:WebhookPublisher",
    "x": "autopublish.platforms.x:XPublisher",
    "linkedin": "autopublish.platforms.linkedin:LinkedInPublisher",
    "threads": "autopublish.platforms.meta.threads:ThreadsPublisher",
    "instagram": "autopublish.platforms.meta.instagram:InstagramPublisher",
}


def publisher_class(platform: str) -> type[Publisher[Any]]:
    """The Publisher class registered for ``platform``; KeyError if there is none."""
    module_name, _, class_name = PUBLISHERS[platform].partition(":")
    module = importlib.import_module(module_name)
    cls = getattr(module, class_name)
    from autopublish.platforms.base import Publisher  # only once a platform module is loaded anyway

    if not (isinstance(cls, type) and issubclass(cls, Publisher)):
        raise TypeError(f"{PUBLISHERS[platform]} is not a Publisher")
    return cls


def available_platforms() -> list[str]:
    """Registered platforms whose module can be imported here."""
    names = []
    for name in PUBLISHERS:
        try:
            publisher_class(name)
        except (ImportError, AttributeError):
            continue
        names.append(name)
    return names
