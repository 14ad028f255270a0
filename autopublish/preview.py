"""``preview``: the posts autopublish would make for a feed's newest articles, publishing nothing.

It goes through the pipeline's own steps (the same fetch limits, the same first status of
a new delivery, the same ``build_post``), so what it shows is what a poll would queue.
Nothing is read from or written to the store.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from autopublish.config import Config, FeedConfig
from autopublish.delivery import build_post
from autopublish.errors import FeedError
from autopublish.feeds import fetch_feed, parse_feed
from autopublish.intake import fetch_limits, first_status, too_old
from autopublish.models import Article, DeliveryStatus, Post
from autopublish.netguard import GuardedFetcher, Origin
from autopublish.platforms.base import Publisher
from autopublish.render import FitError


@dataclass
class PostPreview:
    """One article on one channel: the post, or why there would be none."""

    channel: str
    label: str
    article: Article
    post: Post | None = None
    skipped: str = ""  # the channel's rules keep the article off it
    unfit: str = ""  # the text cannot be fitted to the platform's limit
    length: int = 0
    max_length: int = 0


@dataclass
class FeedPreview:
    feed: str
    title: str = ""
    articles: int = 0
    error: str = ""  # the feed could not be fetched or read
    posts: list[PostPreview] = field(default_factory=list)


def preview_feed(config: Config, feed: FeedConfig, publishers: dict[str, Publisher[Any]], fetcher: GuardedFetcher, *,
                 channel_name: str | None = None, limit: int = 3, clock: Callable[[], float] = time.time) -> FeedPreview:
    """The posts the newest ``limit`` articles of ``feed`` would become on its channels (or on ``channel_name`` only)."""
    try:
        fetched = fetch_feed(fetcher, feed.url, None, fetch_limits(config.settings), clock=clock)
        parsed = parse_feed(fetched.body or b"", feed=feed.name, content_type=fetched.content_type, url=fetched.url)
    except FeedError as exc:
        return FeedPreview(feed.name, error=exc.message)
    result = FeedPreview(feed.name, title=parsed.title or feed.display_url, articles=len(parsed.articles))
    origin = Origin.of(feed.url)
    now = clock()
    for article in parsed.articles[:limit]:
        old = too_old(feed, article, now)
        for name in feed.channels:
            if channel_name and name != channel_name:
                continue
            channel, publisher = config.channels[name], publishers[name]
            shown = PostPreview(name, publisher.label, article)
            result.posts.append(shown)
            status, reason = first_status(article, channel, publisher, now, feed=feed, old=old)
            if status == DeliveryStatus.SKIPPED:
                shown.skipped = str(reason)
                continue
            try:
                shown.post = build_post(article, channel, publisher, "preview", config.settings.timezone,
                                        source_origin=str(origin) if origin is not None else None)
            except FitError as exc:
                shown.unfit = str(exc)
                continue
            shown.length, shown.max_length = publisher.count(shown.post.text), publisher.current_limits().max_length
    return result


def preview_lines(preview: FeedPreview) -> Iterator[str]:
    """The preview as the command line prints it."""
    if preview.error:
        yield f"Feed {preview.feed}: {preview.error}"
        return
    yield f"Feed {preview.feed}: {preview.title} ({preview.articles} articles)"
    for shown in preview.posts:
        yield f"\n--- {shown.channel} ({shown.label}) · {shown.article.title}"
        if shown.skipped:
            yield shown.skipped
        elif shown.unfit:
            yield f"Cannot fit: {shown.unfit}"
        elif shown.post is not None:
            yield shown.post.text
            yield (f"[length {shown.length} of {shown.max_length}; link: {shown.post.link or '-'}; "
                   f"image: {shown.post.image or '-'}]")
