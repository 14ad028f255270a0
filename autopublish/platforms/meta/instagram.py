"""Instagram (a professional account through the Graph API): container, then ``media_publish``.

Instagram has no text-only posts and its content publishing takes JPEG images only
(developers.facebook.com/docs/instagram-platform/content-publishing: "JPEG is the only
image format supported"). Before a container is made, the article's image is downloaded
far enough to read its first bytes: anything but a JPEG (by its bytes, never its URL or
Content-Type) fails the delivery with a plain reason instead of a container that can only
end in ERROR. The two steps themselves are in containers.py.

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
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import urlsplit

import regex
import requests

from autopublish.errors import AddressRefusedError, FetchError, PermanentError, TransientError
from autopublish.models import Health, HealthLevel, Post, PostLimits
from autopublish.platforms.base import BaseUrl, count_utf16, transport_failure
from autopublish.platforms.meta.containers import ContainerOptions, ContainerPublisher
from autopublish.platforms.meta.graph import any_link_matches, links_in

log = logging.getLogger(__name__)

MAX_CAPTION = 2200
MAX_HASHTAGS = 30
HASHTAG = regex.compile(r"(?<![\p{L}\p{M}\p{N}_#&/])#[\p{L}\p{M}\p{N}_]+")
NO_IMAGE = "Instagram needs an image and this article has none"
JPEG_MAGIC = b"\xff\xd8\xff"
MAGIC = (  # first bytes -> the name an editor knows
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF8", "GIF"),
    (b"RIFF", "WebP"),
    (b"BM", "BMP"),
    (b"<", "web page"),
)


def image_kind(head: bytes) -> str:
    """What the first bytes of a file say it is: "JPEG", "PNG", ... or "unknown"."""
    if head.startswith(JPEG_MAGIC):
        return "JPEG"
    if head[4:12] in (b"ftypavif", b"ftypheic", b"ftypmif1"):
        return "AVIF/HEIC"
    stripped = head.lstrip()
    for magic, name in MAGIC:
        if stripped.startswith(magic):
            return name
    return "unknown"


def describe_kind(kind: str) -> str:
    return {"unknown": "not a JPEG", "web page": "a web page, not an image"}.get(kind, f"a {kind}")


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


class InstagramOptions(ContainerOptions):
    api_base: BaseUrl = "https://graph.facebook.com"
    api_version: str = "v23.0"


class InstagramPublisher(ContainerPublisher):
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
    read_permission = "instagram_basic and pages_read_engagement"
    quota_path = "content_publishing_limit"
    media_path = "media"
    container_edge = "media"
    publish_edge = "media_publish"
    status_field = "status_code"

    @property
    def publish_permission(self) -> str:  # type: ignore[override]
        """Instagram Login (graph.instagram.com) names the permission differently."""
        host = urlsplit(str(self.options.api_base)).hostname or ""
        return "instagram_business_content_publish" if host == "graph.instagram.com" else "instagram_content_publish"

    def count(self, text: str) -> int:
        return count_utf16(text)

    def caption(self, post: Post) -> str:
        """The caption sent for ``post``: its text with hashtags past the 30th dropped."""
        return limit_hashtags(post.text)

    # --- the container ---------------------------------------------------------------
    def prepare(self, post: Post) -> None:
        """An image is required and must be a JPEG; the caption must fit. PermanentError otherwise."""
        if not post.image:
            raise self.error(PermanentError, NO_IMAGE, code="no_image")
        length = self.count(self.caption(post))
        if length > MAX_CAPTION:
            raise self.error(PermanentError, f"The caption is {length} characters long, over Instagram's limit of {MAX_CAPTION}", code="too_long")
        kind = self.image_type(post.image, origin=post.source_origin)
        if kind != "JPEG":
            raise self.error(
                PermanentError,
                f"Instagram takes JPEG images only, and this article's image is {describe_kind(kind)}; "
                "use a JPEG as the article's featured image to post it to Instagram",
                code="not_jpeg",
            )

    def image_type(self, url: str, *, origin: str | None = None) -> str:
        """The image's type read from its first bytes, through the guarded fetcher (public
        addresses only, except the ``origin`` of the feed that named the image).

        Raises PermanentError when the address is refused or its server refuses the image
        for good (4xx), TransientError when it cannot be downloaded now.
        """
        what = "the article's image"
        try:
            with self.env.fetcher.open(url, allowed_origin=origin, timeout=self.env.timeout, deadline=self.env.timeout[1],
                                       max_redirects=5) as fetched:
                response = fetched.response
                if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
                    raise self.error(PermanentError, f"The article's image cannot be downloaded (HTTP {response.status_code})", code="image_missing")
                if response.status_code != 200:
                    raise self.error(TransientError, f"The article's image answered HTTP {response.status_code}; will try again later",
                                     code="image_unavailable")
                head = next(response.iter_content(16), b"")
        except AddressRefusedError as exc:
            raise self.error(PermanentError, f"The address of {what} may not be fetched: {exc.message}", code="image_refused") from None
        except FetchError as exc:
            raise self.error(TransientError, f"Could not download {what} to check its type ({exc.message}); will try again later") from None
        except requests.RequestException as exc:
            cls = PermanentError if transport_failure(exc) == "bad_address" else TransientError
            text = f"The address of {what} is not valid" if cls is PermanentError else f"Could not download {what} to check its type; will try again later"
            raise self.error(cls, text, detail=type(exc).__name__) from None
        return image_kind(head)

    def create(self, post: Post, *, text_only: bool) -> tuple[str, bool]:
        caption = self.caption(post)
        if caption != post.text:
            log.info("%s: dropped hashtags past the %dth from the caption", self.channel, MAX_HASHTAGS)
        data = {"image_url": post.image, "caption": caption, "alt_text": post.alt_text or None}
        return self.create_container(data), False

    # --- read-back --------------------------------------------------------------------
    def read_back_fields(self) -> str:
        return "id,caption,permalink,timestamp"

    def matches(self, item: Mapping[str, Any], post: Post) -> bool:
        """The caption carries the article link, or is the same caption."""
        wanted = [link for link in (post.link, post.article.link) if link]
        text = str(item.get("caption") or "")
        caption = self.caption(post).strip()
        return any_link_matches(links_in(text), wanted) or bool(caption and text.strip() == caption)

    # --- check ------------------------------------------------------------------------
    def check(self) -> Health:
        body = self.graph_get(self.user_path(), {"fields": "username,name"}, what="Instagram (account)")
        username = str(body.get("username") or "?")
        name = str(body.get("name") or "").strip()
        summary = f"Posting as @{username}" + (f" ({name})" if name else "")
        quota, details = self.quota_details()
        settles, missing = self.doubt_check()
        level = HealthLevel.WARNING if quota is not None and quota.exhausted else HealthLevel.OK
        return Health(level, summary, tuple(details), settles_doubts=settles, missing_permission=missing)
