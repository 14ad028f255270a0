"""Per feed: is it pushed (and how) or polled? For `autopublish check` and the editors' page."""

from __future__ import annotations

import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from autopublish.config import Config
from autopublish.durations import format_duration
from autopublish.errors import StateError
from autopublish.store import Store

RECENT = 30 * 86400.0  # a ping or hook call seen within this long counts as "pushed"


@dataclass(frozen=True, slots=True)
class PushStatus:
    feed: str
    poll_interval: float
    listening: bool
    websub_hub: str = ""  # host of the hub whose subscription is active
    lease_until: float | None = None
    websub_problem: str = ""  # why a hub the feed declares is not pushing (polled meanwhile)
    last_ping_at: float | None = None
    last_hook_at: float | None = None

    @property
    def pushed(self) -> bool:
        return bool(self.websub_hub or self.last_ping_at or self.last_hook_at)

    def ways(self) -> list[str]:
        return [way for way, on in (("websub", self.websub_hub), ("ping", self.last_ping_at), ("hook", self.last_hook_at)) if on]

    def sentence(self) -> str:
        """One plain English line."""
        every = format_duration(self.poll_interval)
        parts = []
        if self.websub_hub:
            parts.append(f"WebSub via {self.websub_hub} (lease until {_when(self.lease_until)})")
        if self.last_ping_at:
            parts.append(f"update pings (last {_when(self.last_ping_at)})")
        if self.last_hook_at:
            parts.append(f"a hook (last {_when(self.last_hook_at)})")
        if parts:
            text = f"pushed by {' and '.join(parts)}; also polled every {every}"
        elif not self.listening:
            text = f"polled every {every} (the push listener is off)"
        else:
            text = f"polled every {every} (no ping, hook call or WebSub delivery yet)"
        if self.websub_problem:
            text += f"; WebSub is not working ({self.websub_problem}), so polling carries it"
        return text


def push_status(config: Config, store: Store | None, feed: str, now: float | None = None) -> PushStatus:
    now = time.time() if now is None else now
    settings = config.feeds[feed]
    links = store.push_feed(feed) if store is not None else None
    row = store.websub_subscription(feed) if store is not None else None
    hub, until, problem = "", None, ""
    if row is not None:
        if row.state == "active" and row.lease_expires_at is not None and row.lease_expires_at > now:
            hub, until = urlsplit(row.hub).hostname or row.hub, row.lease_expires_at
        elif row.state in ("failing", "denied"):
            problem = row.last_error or "the hub does not answer"
        elif row.state == "active":
            problem = "the lease ran out and was not renewed yet"
    ping = links.last_ping_at if links and links.last_ping_at and now - links.last_ping_at < RECENT else None
    hook = links.last_hook_at if links and links.last_hook_at and now - links.last_hook_at < RECENT else None
    return PushStatus(feed, settings.poll_interval, bool(config.push.listen), hub, until, problem, ping, hook)


def _when(moment: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(moment)) if moment else "-"


def feed_sentences(config: Config) -> dict[str, str]:
    """feed -> how it is read, from the state database when there is one (for `autopublish check`)."""
    try:
        store: Store | None = Store.for_config(config, create=False)
    except StateError:
        store = None
    try:
        return {name: push_status(config, store, name).sentence() for name in config.feeds}
    finally:
        if store is not None:
            store.close()
