"""Instagram (a professional account through the Graph API): container, then ``media_publish``.

Instagram has no text-only posts: an article without an image is refused
(PermanentError; the core normally skips it first because ``image_required`` is set).
One publish call: read the publishing quota, create an image container with the caption
and alt text, read its ``status_code`` a few times without sleeping, ``media_publish``
it, then read its permalink. If the container is not FINISHED after those quick reads,
the attempt ends with TransientError: nothing was published, the container is left to
expire, and the core's next attempt creates a new one.

Caption: at most 2200 characters and 30 hashtags. Hashtags past the 30th are dropped
from the end of the caption before sending (a post with fewer tags beats no post; the
core also fits to ``max_hashtags``). Length is counted in UTF-16 code units (an emoji
counts 2, a ZWJ family 11): Meta does not document the unit, and this count is never
lower than the code-point or grapheme count, so a fitted caption is never refused.

Links in captions are not clickable, but the default template keeps the article link
there: it tells readers where the article is, and it is what read-back matches to settle
an uncertain publish (no marker is added, since a marker would be visible to readers).
"""

from __future__ import annotations

import logging
from typing import ClassVar
from urllib.parse import urlsplit

import regex

from autopublish.errors import AuthError, PermanentError, TransientError, UncertainError
from autopublish.models import Health, HealthLevel, Post, PostLimits, Receipt
from autopublish.platforms.base import count_utf16
from autopublish.platforms.meta_graph import (
    MetaGraphOptions,
    MetaGraphPublisher,
    mentions_link,
)

log = logging.getLogger(__name__)

MAX_CAPTION = 2200
MAX_HASHTAGS = 30
CONTAINER_POLLS = 3  # quick status reads of the container, no sleeping in between
HASHTAG = regex.compile(r"(?<![\p{L}\p{M}\p{N}_#&/])#[\p{L}\p{M}\p{N}_]+")
NO_IMAGE = "Instagram needs an image and this article has none"


def limit_hashtags(text: str, limit: int = MAX_HASHTAGS) -> str:
    """``text`` with every hashtag after the ``limit``-th removed (with the space before it)."""
    tags = list(HASHTAG.finditer(text))
    if len(tags) <= limit:
        return text
    for match in reversed(tags[limit:]):
        start = match.start()
        while start > 0 and text[start - 1] in " \t":
            start -= 1
        text = text[:start] + text[match.end() :]
    return "\n".join(line.rstrip() for line in text.split("\n")).rstrip()


class InstagramOptions(MetaGraphOptions):
    api_base: str = "https://graph.facebook.com"
    api_version: str = "v23.0"


class InstagramPublisher(MetaGraphPublisher):
    name = "instagram"
    label = "Instagram"
    Options = InstagramOptions
    limits = PostLimits(
        max_length=MAX_CAPTION,
        url_length=None,
        images=True,
        link_card=False,
        image_required=True,
        max_hashtags=MAX_HASHTAGS,
    )
    idempotent: ClassVar[bool] = False  # a new container published again is a second post
    can_read_back: ClassVar[bool] = True
    default_template = "{title}\n\n{summary}\n\n{link}\n\n{hashtags}"

    token_env_default = "INSTAGRAM_TOKEN"
    token_help = "create a new long-lived token for the Instagram account in the Meta app dashboard"
    quota_path = "content_publishing_limit"
    media_path = "media"

    @property
    def publish_permission(self) -> str:  # type: ignore[override]
        """Instagram Login (graph.instagram.com) names the permission differently."""
        options = self.options
        host = urlsplit(str(options.api_base)).hostname or ""
        return "instagram_business_content_publish" if host == "graph.instagram.com" else "instagram_content_publish"

    def count(self, text: str) -> int:
        return count_utf16(text)

    def caption(self, post: Post) -> str:
        """The caption sent for ``post``: its text with hashtags past the 30th dropped."""
        return limit_hashtags(post.text)

    # --- publish ----------------------------------------------------------------------
    def publish(self, post: Post) -> Receipt:
        """One attempt: quota, container, a few status reads, media_publish, permalink.

        Raises PermanentError for an article without an image or a caption over 2200,
        RateLimitedError when the 24 h quota is used up, TransientError when the container
        is not ready after a few quick reads (nothing published), UncertainError when
        media_publish may have gone through.
        """
        if not post.image:
            raise self.error(PermanentError, NO_IMAGE, code="no_image")
        caption = self.caption(post)
        if caption != post.text:
            log.info("%s: dropped hashtags past the %dth from the caption", self.channel, MAX_HASHTAGS)
        length = self.count(caption)
        if length > MAX_CAPTION:
            raise self.error(PermanentError, f"The caption is {length} characters long, over Instagram's limit of {MAX_CAPTION}", code="too_long")
        self.ensure_quota()
        container = self._create(post, caption)
        self._wait_ready(container)
        return self.publish_container(container, edge="media_publish")

    def _create(self, post: Post, caption: str) -> str:
        return self.create_container({"image_url": post.image, "caption": caption, "alt_text": post.alt_text or None}, edge="media")

    def _wait_ready(self, container: str) -> None:
        """Return when the container is FINISHED; raise otherwise (never sleeps).

        ERROR -> PermanentError (Instagram could not use the image); IN_PROGRESS after a
        few reads or EXPIRED -> TransientError; PUBLISHED (impossible for a new
        container) -> UncertainError.
        """
        code = ""
        for _ in range(CONTAINER_POLLS):
            body = self.graph_get(container, {"fields": "id,status_code,status"}, what="Instagram (checking the image)")
            code = str(body.get("status_code") or "").upper()
            if code == "FINISHED":
                return
            if code == "ERROR":
                reason = str(body.get("status") or "no reason given")[:200]
                raise self.error(PermanentError, f"Instagram could not use the article's image: {reason}", code="container_error")
            if code == "PUBLISHED":
                raise self.error(UncertainError, "Instagram says the prepared post is already published; it may be online")
            if code == "EXPIRED":
                break
        raise self.error(
            TransientError,
            "Instagram is still processing the image; nothing was published; will try again later",
            code=code or "unknown",
        )

    # --- read-back --------------------------------------------------------------------
    def find_existing(self, post: Post) -> Receipt | None:
        """The newest post whose caption carries the article link, or is the same caption."""
        links = [link for link in {post.link, post.article.link} if link]
        caption = self.caption(post).strip()
        for item in self.recent_media("id,caption,permalink,timestamp"):
            text = str(item.get("caption") or "")
            if any(mentions_link(text, link) for link in links) or (caption and text.strip() == caption):
                permalink = item.get("permalink")
                return Receipt(remote_id=str(item.get("id")), url=permalink if isinstance(permalink, str) else None)
        return None

    # --- check ------------------------------------------------------------------------
    def check(self) -> Health:
        body = self.graph_get(self.user_path(), {"fields": "username,name"}, what="Instagram (account)")
        username = str(body.get("username") or "?")
        name = str(body.get("name") or "").strip()
        summary = f"Posting as @{username}" + (f" ({name})" if name else "")
        details: list[str] = []
        try:
            quota = self.read_quota()
        except (TransientError, PermanentError) as exc:
            if isinstance(exc, AuthError):
                raise
            quota = None
            details.append(f"Could not read the publishing limit: {exc.message}")
        if quota is not None:
            details.append(f"Publishing limit: {quota.describe()}")
        level = HealthLevel.WARNING if quota is not None and quota.exhausted else HealthLevel.OK
        return Health(level, summary, tuple(details))
