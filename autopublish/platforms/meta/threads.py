"""Threads (Meta's Threads API): a media container, then ``threads_publish`` (see containers.py).

First attempt: read the publishing quota and create a TEXT container with the article
link as ``link_attachment`` (or an IMAGE container when the article has an image and the
text carries the link); the core asks again once the container had time to be prepared.
An image Threads cannot use (creation refused, or the container ends in ERROR) falls
back to a text container. Nothing is stored by the adapter: an uncertain publish is
settled by reading the account's newest posts back and matching the article link
(``link_attachment_url`` or a URL in the text) or the exact text.

Length: 500 "characters" where, per Meta's posts guide, an emoji counts as its UTF-8
byte length. Other characters are counted as code points, a deliberate over-count for
scripts with multi-code-point clusters (Hindi): Meta's exact unit is not documented, and
a post cut a little short beats a post refused. URLs count in full.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, ClassVar

import regex

from autopublish.errors import AuthError, PermanentError
from autopublish.models import Health, HealthLevel, Post, PostLimits, Receipt
from autopublish.platforms.base import BaseUrl
from autopublish.platforms.meta.containers import ContainerOptions, ContainerPublisher, Progress
from autopublish.platforms.meta.graph import any_link_matches, link_key, links_in, mentions_link

log = logging.getLogger(__name__)

MAX_LENGTH = 500
MAX_LINKS = 5  # Threads refuses posts with more than 5 distinct links
EMOJI = regex.compile(r"\p{Extended_Pictographic}|\p{Regional_Indicator}|\u20e3")
GRAPHEME = regex.compile(r"\X")


def threads_length(text: str) -> int:
    """Threads' length of ``text``: emoji clusters by UTF-8 bytes, everything else by code points."""
    total = 0
    for cluster in GRAPHEME.findall(text):
        total += len(cluster.encode("utf-8")) if EMOJI.search(cluster) else len(cluster)
    return total


class ThreadsOptions(ContainerOptions):
    api_base: BaseUrl = "https://graph.threads.net"
    api_version: str = "v1.0"


class ThreadsPublisher(ContainerPublisher):
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
    read_permission = "threads_basic"
    quota_path = "threads_publishing_limit"
    media_path = "threads"
    container_edge = "threads"
    publish_edge = "threads_publish"
    status_field = "status"

    def count(self, text: str) -> int:
        return threads_length(text)

    # --- the container ---------------------------------------------------------------
    def prepare(self, post: Post) -> None:
        """Text over 500 or more than 5 links can never go: PermanentError before any request."""
        length = self.count(post.text)
        if length > MAX_LENGTH:
            raise self.error(PermanentError, f"The post is {length} characters long, over Threads' limit of {MAX_LENGTH}", code="too_long")
        links = {link_key(link) for link in links_in(post.text)}
        if post.link:
            links.add(link_key(post.link))
        if len(links) > MAX_LINKS:
            raise self.error(PermanentError, f"The post has {len(links)} links and Threads allows at most {MAX_LINKS}", code="too_many_links")

    def create(self, post: Post, *, text_only: bool) -> tuple[str, bool]:
        """An IMAGE container when the text carries the link (an IMAGE post cannot have a link
        card); otherwise, or when Threads refuses the image, a TEXT container."""
        if post.image and not text_only and (not post.link or mentions_link(post.text, post.link)):
            try:
                return self._create(post, image=True), False
            except AuthError:
                raise
            except PermanentError as exc:
                log.warning("%s: Threads refused the image (%s); posting without it", self.channel, exc.message)
        return self._create(post, image=False), True

    def _create(self, post: Post, *, image: bool) -> str:
        data: dict[str, Any] = {"text": post.text}
        if image:
            data.update(media_type="IMAGE", image_url=post.image, alt_text=post.alt_text or None)
        else:
            data.update(media_type="TEXT", link_attachment=post.link or None)
        return self.create_container(data)

    def container_failed(self, post: Post, progress: Progress, reason: str) -> Receipt:
        """An IMAGE container in ERROR (the image could not be fetched): go on as text."""
        if not progress.text_only:
            log.warning("%s: Threads could not process the image (%s); posting without it", self.channel, reason)
            return self._renew(post, progress, f"Threads could not process the image: {reason}", text_only=True)
        return super().container_failed(post, progress, reason)

    # --- read-back --------------------------------------------------------------------
    def read_back_fields(self) -> str:
        return "id,permalink,text,link_attachment_url,timestamp"

    def matches(self, item: Mapping[str, Any], post: Post) -> bool:
        """The article link (attachment or in the text), or the same text."""
        wanted = [link for link in (post.link, post.article.link) if link]
        text = str(item.get("text") or "")
        attached = str(item.get("link_attachment_url") or "")
        return (
            any_link_matches([attached, *links_in(text)], wanted)
            or bool(text.strip() and text.strip() == post.text.strip())
        )

    # --- check ------------------------------------------------------------------------
    def check(self) -> Health:
        body = self.graph_get("me", {"fields": "id,username"}, what="Threads (account)")
        username = str(body.get("username") or "?")
        quota, details = self.quota_details()
        settles, missing = self.doubt_check()
        options = self.options
        account = str(body.get("id") or "")
        if options.user_id != "me" and account and account != options.user_id:
            return Health(
                HealthLevel.WARNING,
                f"The token belongs to @{username} (id {account}), not to the configured user_id {options.user_id}",
                tuple(details),
            )
        level = HealthLevel.WARNING if quota is not None and quota.exhausted else HealthLevel.OK
        return Health(level, f"Posting as @{username}", tuple(details), settles_doubts=settles, missing_permission=missing)

    # --- takedowns (Threads posts cannot be edited through the API) ---------------------------
    can_delete: ClassVar[bool] = True

    def delete(self, receipt: Receipt) -> None:
        """``DELETE /{threads-media-id}`` (threads_basic + threads_delete); a post already gone is done."""
        what = "Threads (delete)"
        response = self.request("DELETE", self.graph_url(receipt.remote_id), writes=True, what=what, params={"access_token": self.token()})
        try:
            self.graph_answer(response, publishes=True, what=what)
        except AuthError as exc:
            if exc.code in (10, 200) or "permission" in exc.message:
                raise self.missing_permission(["threads_delete"], code=exc.code, detail=exc.detail) from None
            raise
        except PermanentError as exc:
            if response.status_code == 404 or (exc.code == 100 and "100/33" in (exc.detail or "")):
                return
            raise
