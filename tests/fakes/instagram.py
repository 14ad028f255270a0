"""A loopback Instagram Graph API (graph.facebook.com/vXX.X/{ig-user-id}/...).

Containers from ``POST /{ig-user-id}/media`` (an image is required, and it must be a JPEG:
the fake fetches it, as Meta does) start IN_PROGRESS and become FINISHED with time
(``status_code``); ``media_publish`` refuses a container that is not FINISHED (code 9007 /
2207027) and a used-up quota (code 9 / 2207042). Shares the Graph plumbing of the Threads fake.
"""

from __future__ import annotations

import urllib.request
from typing import Any

import regex

from tests.contract import CANARY, ContractCase
from tests.fakes.base import TINY_JPEG, TINY_PNG, Request, Response
from tests.fakes.threads import MetaGraphFake, graph_error, shortcode

HASHTAG = regex.compile(r"(?<![\p{L}\p{M}\p{N}_#&/])#[\p{L}\p{M}\p{N}_]+")


class InstagramFake(MetaGraphFake):
    api_version = "v23.0"
    container_status_field = "status_code"
    publish_edge = "media_publish"
    container_edge = "media"
    media_edge = "media"
    quota_edge = "content_publishing_limit"
    default_quota = 100
    text_field = "caption"

    # Content publishing with Facebook Login: instagram_basic, instagram_content_publish and
    # pages_read_engagement to publish; instagram_basic + pages_read_engagement to read media
    # (instagram-platform/content-publishing, "Requirements"; ig-user/media reference).
    all_scopes = ("instagram_basic", "instagram_content_publish", "pages_read_engagement")
    write_scopes = frozenset({"instagram_basic", "instagram_content_publish", "pages_read_engagement"})
    read_scopes = frozenset({"instagram_basic", "pages_read_engagement"})

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("user_id", "17841400000000000")
        super().__init__(**kwargs)
        self.fetched: list[str] = []  # image URLs the fake downloaded, as Meta would

    def image_url(self, name: str = "kunjungan.jpg") -> str:
        """A JPEG this fake serves (Instagram takes nothing else)."""
        self.images.setdefault(name, (TINY_JPEG, "image/jpeg"))
        return f"{self.url}/_image/{name}"

    def fetch(self, url: str) -> bytes | None:
        """The image at ``url`` as Meta would download it (loopback only), or None."""
        self.fetched.append(url)
        if url.startswith(f"{self.url}/_image/"):
            return self.images.get(url[len(f"{self.url}/_image/"):], (TINY_PNG, "image/png"))[0]
        if not url.startswith(("http://127.0.0.1:", "http://[::1]:")):
            return None
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:  # loopback only, checked above
                return bytes(answer.read(1 << 20))
        except OSError:
            return None

    def permalink_for(self, media_id: str) -> str:
        return f"https://www.instagram.com/p/{shortcode(int(media_id) % 10**9)}/"

    def set_status(self, container: dict[str, Any], status: str) -> None:
        container["status_code"] = status
        container["status"] = {
            "IN_PROGRESS": "In Progress: Media is still being processed.",
            "FINISHED": "Finished: Media has been uploaded and it is ready to be published.",
            "PUBLISHED": "Published: Media has been published.",
            "ERROR": "Error: Media could not be fetched from the provided URI.",
            "EXPIRED": "Expired: Media was not published within 24 hours.",
        }[status]

    def profile(self) -> dict[str, Any]:
        return {"id": self.user_id, "username": self.username, "name": "Jakarta Berketahanan"}

    def create_container(self, request: Request) -> Response:
        image_url = request.param("image_url")
        caption = request.param("caption") or ""
        if not image_url:
            return graph_error(400, "(#100) The parameter image_url is required.", 100)
        if len(caption) > 2200:
            return graph_error(400, "The caption is too long.", 100, subcode=2207010)
        if len(HASHTAG.findall(caption)) > 30:
            return graph_error(400, "The caption has more than 30 hashtags.", 100, subcode=2207016)
        data = self.fetch(image_url)
        if data is None:
            return graph_error(400, "The media could not be fetched from this URI", 9004, subcode=2207052)
        if not data.startswith(b"\xff\xd8\xff"):
            # Content publishing: "JPEG is the only image format supported" (instagram-platform/content-publishing).
            return graph_error(400, "Only photo or video can be accepted as media type. The image format is not supported", 9004, subcode=2207083)
        return self.new_container({"media_type": "IMAGE", "caption": caption, "image_url": image_url, "alt_text": request.param("alt_text")})

    def not_ready(self, container_id: str) -> Response:
        # media_publish before the container is FINISHED: code 9007, subcode 2207027 "Media ID is
        # not available" (instagram-platform error codes).
        return graph_error(400, "Media ID is not available: the media is not ready for publishing, please wait for a moment", 9007, subcode=2207027)

    def error_response(self, kind: str, request: Request) -> Response:
        if kind == "rate_limit":  # Instagram's publishing quota
            return graph_error(400, "Application request limit reached", 9, subcode=2207042, transient=False)
        return super().error_response(kind, request)

    def published_item(self, container: dict[str, Any]) -> dict[str, Any]:
        return self.add_media(container.get("caption") or "", media_type="IMAGE", alt_text=container.get("alt_text"))


CONTRACT = ContractCase(
    platform="instagram",
    make_fake=InstagramFake,
    options=lambda fake: {"api_base": fake.url, "user_id": fake.user_id, "access_token": "${INSTAGRAM_TOKEN}"},  # type: ignore[attr-defined]
    env={"INSTAGRAM_TOKEN": CANARY},
    posts=lambda fake: len(fake.media),  # type: ignore[attr-defined]
    needs_image=True,
    minimal_scopes=("instagram_basic", "instagram_content_publish", "pages_read_engagement"),
)
