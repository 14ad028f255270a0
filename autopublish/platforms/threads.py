"""Threads (Meta's Threads API): a media container, then ``threads_publish``.

One publish call: read the publishing quota, create a TEXT container with the article
link as ``link_attachment`` (or an IMAGE container when the article has an image and the
text carries the link), check an image container's status a few times without sleeping,
publish it, then read the post's permalink. Nothing is stored: an uncertain publish is
settled by reading the account's newest posts back and matching the article link
(``link_attachment_url`` or a URL in the text) or the exact text.

Length: 500 "characters" where, per Meta's posts guide, an emoji counts as its UTF-8
byte length. Other characters are counted as code points, a deliberate over-count for
scripts with multi-code-point clusters (Hindi): Meta's exact unit is not documented, and
a post cut a little short beats a post refused. URLs count in full.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import regex

from autopublish.errors import AuthError, PermanentError, TransientError
from autopublish.models import Health, HealthLevel, Post, PostLimits, Receipt
from autopublish.platforms.base import URL_PATTERN
from autopublish.platforms.meta_graph import (
    MetaGraphOptions,
    MetaGraphPublisher,
    mentions_link,
    normalise_link,
)

log = logging.getLogger(__name__)

MAX_LENGTH = 500
MAX_LINKS = 5  # Threads refuses posts with more than 5 distinct links
CONTAINER_POLLS = 3  # quick status reads of an image container, no sleeping in between
EMOJI = regex.compile(r"\p{Extended_Pictographic}|\p{Regional_Indicator}|\u20e3")
GRAPHEME = regex.compile(r"\X")


def threads_length(text: str) -> int:
    """Threads' length of ``text``: emoji clusters by UTF-8 bytes, everything else by code points."""
    total = 0
    for cluster in GRAPHEME.findall(text):
        total += len(cluster.encode("utf-8")) if EMOJI.search(cluster) else len(cluster)
    return total


class ThreadsOptions(MetaGraphOptions):
    api_base: str = "https://graph.threads.net"
    api_version: str = "v1.0"


class ThreadsPublisher(MetaGraphPublisher):
    name = "threads"
    label = "Threads"
    Options = ThreadsOptions
    limits = PostLimits(max_length=MAX_LENGTH, url_length=None, images=True, link_card=True)
    idempotent: ClassVar[bool] = False  # a retried threads_publish of a new container posts again
    can_read_back: ClassVar[bool] = True
    default_template = "{title}\n\n{summary}\n\n{link}"

    token_env_default = "THREADS_TOKEN"
    publish_permission = "threads_content_publish"
    token_help = "create a new long-lived Threads token in the Meta app dashboard"
    quota_path = "threads_publishing_limit"
    media_path = "threads"

    def count(self, text: str) -> int:
        return threads_length(text)

    # --- publish ----------------------------------------------------------------------
    def publish(self, post: Post) -> Receipt:
        """One attempt: quota, container, (status), threads_publish, permalink.

        Raises PermanentError for text over 500 or more than 5 links, RateLimitedError when
        the 24 h quota is used up, TransientError when an image is still processing (nothing
        published; a new container is made next time) and UncertainError when
        threads_publish may have gone through.
        """
        self._check_text(post)
        self.ensure_quota()
        container = self._container(post)
        return self.publish_container(container, edge="threads_publish")

    def _check_text(self, post: Post) -> None:
        length = self.count(post.text)
        if length > MAX_LENGTH:
            raise self.error(PermanentError, f"The post is {length} characters long, over Threads' limit of {MAX_LENGTH}", code="too_long")
        links = {normalise_link(m.group(0)) for m in URL_PATTERN.finditer(post.text)}
        if post.link:
            links.add(normalise_link(post.link))
        if len(links) > MAX_LINKS:
            raise self.error(PermanentError, f"The post has {len(links)} links and Threads allows at most {MAX_LINKS}", code="too_many_links")

    def _container(self, post: Post) -> str:
        """Create a ready container; an image that Threads cannot use falls back to text."""
        if post.image and (not post.link or mentions_link(post.text, post.link)):
            try:
                container = self._create(post, image=True)
                if self._image_ready(container):
                    return container
            except AuthError:
                raise
            except PermanentError as exc:
                log.warning("%s: Threads refused the image (%s); posting without it", self.channel, exc.message)
        elif post.image:
            # An IMAGE post cannot carry link_attachment; the link card shows the article's image.
            log.debug("%s: the text has no link, so the post goes out as text with a link card", self.channel)
        return self._create(post, image=False)

    def _create(self, post: Post, *, image: bool) -> str:
        data: dict[str, Any] = {"text": post.text}
        if image:
            data.update(media_type="IMAGE", image_url=post.image, alt_text=post.alt_text or None)
        else:
            data.update(media_type="TEXT", link_attachment=post.link or None)
        return self.create_container(data, edge="threads")

    def _image_ready(self, container: str) -> bool:
        """True when FINISHED; False when Threads could not use the image (ERROR).

        Raises TransientError when still IN_PROGRESS after a few quick reads, or EXPIRED:
        nothing was published, and the core's next attempt creates a new container.
        """
        status = ""
        for _ in range(CONTAINER_POLLS):
            body = self.graph_get(container, {"fields": "id,status,error_message"}, what="Threads (checking the image)")
            status = str(body.get("status") or "").upper()
            if status in ("FINISHED", "PUBLISHED"):
                return True
            if status == "ERROR":
                log.warning("%s: Threads could not process the image: %s", self.channel, str(body.get("error_message") or "no reason given")[:200])
                return False
            if status == "EXPIRED":
                break
        raise self.error(
            TransientError,
            "Threads is still processing the image; nothing was published; will try again later",
            code=status or "unknown",
        )

    # --- read-back --------------------------------------------------------------------
    def find_existing(self, post: Post) -> Receipt | None:
        """The newest post carrying the article link (attachment or text), or the same text."""
        links = [link for link in {post.link, post.article.link} if link]
        wanted = {normalise_link(link) for link in links}
        for item in self.recent_media("id,permalink,text,link_attachment_url,timestamp"):
            text = str(item.get("text") or "")
            attached = str(item.get("link_attachment_url") or "")
            if (
                (attached and normalise_link(attached) in wanted)
                or any(mentions_link(text, link) for link in links)
                or (text.strip() and text.strip() == post.text.strip())
            ):
                permalink = item.get("permalink")
                return Receipt(remote_id=str(item.get("id")), url=permalink if isinstance(permalink, str) else None)
        return None

    # --- check ------------------------------------------------------------------------
    def check(self) -> Health:
        body = self.graph_get("me", {"fields": "id,username"}, what="Threads (account)")
        username = str(body.get("username") or "?")
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
        options = self.options
        account = str(body.get("id") or "")
        if options.user_id != "me" and account and account != options.user_id:
            return Health(
                HealthLevel.WARNING,
                f"The token belongs to @{username} (id {account}), not to the configured user_id {options.user_id}",
                tuple(details),
            )
        level = HealthLevel.WARNING if quota is not None and quota.exhausted else HealthLevel.OK
        return Health(level, f"Posting as @{username}", tuple(details))
