"""What the store hands out: plain frozen rows, and the editors' allowed moves."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from datetime import datetime

import orjson

from autopublish.clock import SKEW_WARNING
from autopublish.models import Article, DeliveryStatus

PENDING = ("queued", "waiting", "held")
# A re-post starts only from a finished delivery, and only while no delivery of the same article
# to the same channel is still on its way (else a stale page could queue the article twice).
REPOSTABLE = (DeliveryStatus.SENT, DeliveryStatus.FAILED, DeliveryStatus.SKIPPED)

# What an editor may do from which state (the CLI and the web page share these).
RETRYABLE = (DeliveryStatus.FAILED, DeliveryStatus.HELD, DeliveryStatus.WAITING, DeliveryStatus.SKIPPED)
SKIPPABLE = (DeliveryStatus.QUEUED, DeliveryStatus.WAITING, DeliveryStatus.HELD, DeliveryStatus.FAILED, DeliveryStatus.UNCERTAIN)
RESOLVABLE_AS_POSTED = (DeliveryStatus.UNCERTAIN, DeliveryStatus.FAILED, DeliveryStatus.HELD, DeliveryStatus.WAITING)


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    id: int
    article_id: int
    channel: str
    status: str
    tries: int
    next_attempt_at: float | None
    first_try_at: float | None
    reason: str
    post_url: str | None
    remote_id: str | None
    needs_editor: bool
    created_at: float
    updated_at: float
    sent_at: float | None
    generation: int
    repost_of: int | None
    feed: str = ""
    title: str = ""
    link: str = ""
    published: float | None = None
    progress: str | None = None  # what the platform is preparing for this delivery (a container)


@dataclass(frozen=True, slots=True)
class FeedRow:
    name: str
    etag: str | None
    last_modified: str | None
    fetched_at: float | None
    body_hash: str | None
    baseline_at: float | None
    last_poll_at: float | None
    last_ok_at: float | None
    last_error: str | None
    failing_since: float | None
    polls: int
    title: str


@dataclass(frozen=True, slots=True)
class ChannelRow:
    name: str
    paused: bool
    paused_reason: str
    paused_at: float | None
    paused_by: str
    token_expires_at: float | None
    last_success_at: float | None
    last_failure_at: float | None


@dataclass(frozen=True, slots=True)
class WebSessionRow:
    id_hash: str
    user: str
    created_at: float
    last_seen_at: float
    fingerprint: str


@dataclass(frozen=True, slots=True)
class PushFeedRow:
    feed: str
    home: str = ""
    hub: str = ""
    self_url: str = ""
    links_at: float | None = None
    last_ping_at: float | None = None
    last_hook_at: float | None = None
    last_websub_at: float | None = None


@dataclass(frozen=True, slots=True)
class WebSubRow:
    """One WebSub subscription. ``state``: subscribing, active, denied, failing, unsubscribing.
    ``pending`` is the mode (subscribe / unsubscribe) whose verification we await, else "".
    The secret is never stored: it is derived from the push token and ``nonce``."""

    feed: str
    hub: str
    topic: str
    callback: str
    nonce: str
    state: str
    pending: str = ""
    lease_seconds: float | None = None
    lease_expires_at: float | None = None
    requested_at: float | None = None
    verified_at: float | None = None
    failures: int = 0
    next_attempt_at: float | None = None
    last_error: str = ""


@dataclass(frozen=True, slots=True)
class NodeRow:
    """One autopublish process sharing the database, and what it holds right now."""

    id: str
    host: str
    pid: int
    started_at: float
    heartbeat_at: float
    stopped_at: float | None
    alive: bool
    posting: tuple[int, ...] = ()
    channels: tuple[str, ...] = ()
    feeds: tuple[str, ...] = ()
    clock_offset: float = 0.0  # seconds the node's machine clock is behind the database's (negative: ahead); corrected

    @property
    def clock_is_off(self) -> bool:
        """Off by enough to tell the admins: the node corrects it, the machine's other programs do not."""
        return abs(self.clock_offset) >= SKEW_WARNING


@dataclass(slots=True)
class ArticleLine:
    """An article on the editors' page with all its deliveries."""

    id: int
    feed: str
    title: str
    link: str
    published: float | None
    first_seen_at: float
    deliveries: list[DeliveryRow] = field(default_factory=list)


_ARTICLE_FIELDS = tuple(f.name for f in fields(Article))


def article_to_json(article: Article) -> str:
    # a shallow copy: an Article holds only strings, tuples of strings and datetimes (asdict deep-copies, 3x slower)
    data = {name: getattr(article, name) for name in _ARTICLE_FIELDS}
    for key in ("published", "updated"):
        if data[key] is not None:
            data[key] = data[key].isoformat()
    try:
        return orjson.dumps(data).decode()
    except orjson.JSONEncodeError:  # a lone surrogate (a JSON Feed can escape one): written as an escape, as UTF-8 cannot hold it
        return json.dumps(data)


def article_from_json(text: str) -> Article:
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:  # an escaped lone surrogate, which orjson refuses
        data = json.loads(text)
    for key in ("published", "updated"):
        if data.get(key):
            data[key] = datetime.fromisoformat(data[key])
    data["categories"] = tuple(data.get("categories", ()))
    data["tags"] = tuple(data.get("tags", ()))
    return Article(**data)
