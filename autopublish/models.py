"""Plain data passed between the edges and the core: Article, Post, Receipt, Health, Delivery."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


@dataclass(frozen=True, slots=True)
class Article:
    """One normalised feed entry. Text fields are plain text (HTML removed, entities decoded)."""

    feed: str
    key: str  # entry id/guid, else the normalised link
    link: str
    title: str
    summary: str = ""
    content: str = ""
    author: str = ""
    categories: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    published: datetime | None = None  # aware UTC
    updated: datetime | None = None  # aware UTC
    image: str | None = None
    image_alt: str = ""
    feed_title: str = ""
    language: str = ""

    @property
    def labels(self) -> tuple[str, ...]:
        """Categories then tags, without repeats, in feed order."""
        seen: dict[str, None] = {}
        for name in (*self.categories, *self.tags):
            if name and name.casefold() not in {s.casefold() for s in seen}:
                seen[name] = None
        return tuple(seen)


@dataclass(frozen=True, slots=True)
class PostLimits:
    """What the core must know about a platform to fit a post.

    ``max_length`` is measured with the publisher's own ``count``. ``link_in_text`` says
    whether the link must appear in the text for readers to see it (False where the
    platform shows a separate card from ``Post.link``).
    """

    max_length: int
    url_length: int | None = None  # every URL counts this many, where the platform says so
    images: bool = True
    link_card: bool = False  # the platform builds its own preview card from Post.link
    image_required: bool = False
    max_hashtags: int | None = None


@dataclass(frozen=True, slots=True)
class Post:
    """What one channel will publish for one article; ``text`` is already within the limit."""

    channel: str
    key: str  # stable per delivery: idempotency key, marker, record key seed
    text: str
    article: Article
    link: str | None = None
    image: str | None = None
    alt_text: str = ""
    title: str = ""
    description: str = ""  # for link cards: the article summary, shortened
    progress: str | None = None  # what an earlier attempt prepared (NotReadyError.progress), handed back
    # The origin (scheme://host:port) of the feed that carried the article: URLs from its
    # data may be fetched there even when it is an internal address (autopublish.netguard).
    source_origin: str | None = None


@dataclass(frozen=True, slots=True)
class Receipt:
    """A platform's answer to a successful publish."""

    remote_id: str
    url: str | None = None


class HealthLevel(StrEnum):
    OK = "ok"
    WARNING = "warning"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class Health:
    """The answer of ``Publisher.check``: plain-words lines for admins."""

    level: HealthLevel
    summary: str
    details: tuple[str, ...] = ()
    expires_at: datetime | None = None  # credentials expiry, where the platform tells
    # Can a post in doubt (crash mid-post, lost answer) be settled without an editor?
    # None: the adapter does not say; False: ``missing_permission`` says what would allow it.
    settles_doubts: bool | None = None
    missing_permission: str = ""


class DeliveryStatus(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    WAITING = "waiting"  # transient failure, next try at next_attempt_at
    UNCERTAIN = "uncertain"  # may have been published; reconcile or an editor decides
    HELD = "held"  # channel paused, flood guard, pacing: visible, kept, not sent
    FAILED = "failed"
    SKIPPED = "skipped"

