"""A loopback Threads API (graph.threads.net), and the Graph-style base the Instagram fake shares.

Speaks Meta's Graph conventions: versioned paths (``/v1.0/...``), the token as
``access_token`` in the query, form or JSON body (or an ``Authorization: OAuth|Bearer``
header), JSON answers with ``Content-Type: application/json; charset=UTF-8``, errors in
the ``{"error": {...}}`` envelope (classified by code, HTTP status secondary), a 24 h
publishing quota, and a listing of published media with permalinks. ``paging.next``
embeds the token, as Meta's does.

What it enforces, as the real service does (each rule cites its source where it is coded):
containers are ready only with TIME (``ready_after`` seconds after creation on the fake's
clock, which tests move with ``advance()``), publishing earlier is refused with Meta's "not
found / not ready" error, containers expire after 24 h, and every endpoint needs its
documented permissions (``grant()``).
"""

from __future__ import annotations

import itertools
import json
import re
import string
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import regex

from tests.contract import CANARY, ContractCase
from tests.fakes.base import FakeServer, Request, Response

VERSION_PREFIX = re.compile(r"^/v\d+\.\d+(?=/)")
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S+0000"


def graph_error(
    status: int,
    message: str,
    code: int,
    *,
    subcode: int | None = None,
    kind: str = "OAuthException",
    transient: bool = False,
    headers: dict[str, str] | None = None,
) -> Response:
    error: dict[str, Any] = {"message": message, "type": kind, "code": code, "is_transient": transient, "fbtrace_id": "AbCdEfGh123"}
    if subcode is not None:
        error["error_subcode"] = subcode
    return Response.json_body(status, {"error": error}, headers)


def shortcode(number: int) -> str:
    alphabet = string.ascii_letters + string.digits + "-_"
    out = ""
    number += 10**9
    while number:
        number, rest = divmod(number, len(alphabet))
        out += alphabet[rest]
    return out


class MetaGraphFake(FakeServer):
    """Graph-style plumbing: token check, path parsing, containers, quota, listings."""

    api_version = "v1.0"
    container_status_field = "status"  # Instagram's is "status_code"
    publish_edge = "threads_publish"
    container_edge = "threads"
    media_edge = "threads"
    quota_edge = "threads_publishing_limit"
    default_quota = 250

    def __init__(self, *, token: str = CANARY, user_id: str = "17890000000000000", username: str = "jakartaberketahanan", lifetime: float = 120.0) -> None:
        super().__init__(lifetime=lifetime)
        self.token = token
        self.user_id = user_id
        self.username = username
        self.containers: dict[str, dict[str, Any]] = {}
        self.media: list[dict[str, Any]] = []  # oldest first
        self.quota_total = self.default_quota
        self.quota_used = 0
        # Meta: "wait on average 30 seconds" before a container can be published (threads/posts).
        self.ready_after = 30.0
        self.offset = 0.0  # seconds added to the real clock by advance()
        self.status_reads: list[tuple[str, float]] = []  # (container id, fake time) of each status read
        self.scopes: set[str] = set(self.all_scopes)
        self.image_fails = False  # image containers end in ERROR (the image cannot be fetched)
        self.permalink_fails = False  # GET of a media object's permalink answers a server error
        self.injected: list[tuple[Callable[[Request], bool], Response]] = []
        self._ids = itertools.count(1)

    # Permissions per endpoint (overridden per platform): edge -> scopes a token must hold.
    all_scopes: tuple[str, ...] = ("threads_basic", "threads_content_publish")
    write_scopes: frozenset[str] = frozenset({"threads_basic", "threads_content_publish"})
    read_scopes: frozenset[str] = frozenset({"threads_basic"})

    def now(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        """Move the fake's clock on (containers get older; nothing else changes)."""
        with self.lock:
            self.offset += max(0.0, seconds)

    def grant(self, scopes: set[str] | tuple[str, ...] | list[str]) -> None:
        with self.lock:
            self.scopes = set(scopes)

    def lacks(self, needed: frozenset[str]) -> Response | None:
        """The permission error for a token without ``needed`` (Graph: code 10, "Application does
        not have permission for this action"), or None."""
        missing = sorted(needed - self.scopes)
        if not missing:
            return None
        return graph_error(403, f"(#10) Application does not have permission for this action (needs {', '.join(missing)})", 10)

    def inject(self, response: Response, when: Callable[[Request], bool]) -> None:
        """Answer the next request matching ``when`` with ``response`` (any Graph error)."""
        with self.lock:
            self.injected.append((when, response))

    # --- helpers ----------------------------------------------------------------------
    def new_id(self, base: int) -> str:
        return str(base + next(self._ids))

    def answer(self, data: Any, status: int = 200) -> Response:
        return Response.json_body(status, data, {"facebook-api-version": self.api_version})

    def token_of(self, request: Request) -> str | None:
        token = request.param("access_token")
        if token:
            return token
        header = request.header("authorization")
        for scheme in ("OAuth ", "Bearer "):
            if header.startswith(scheme):
                return header[len(scheme) :].strip()
        return None

    def fields(self, request: Request) -> list[str]:
        return [f for f in (request.param("fields") or "id").split(",") if f]

    @staticmethod
    def pick(item: dict[str, Any], fields: list[str]) -> dict[str, Any]:
        out = {"id": item["id"]}
        out.update({f: item[f] for f in fields if f in item and item[f] is not None})
        return out

    def timestamp(self) -> str:
        return datetime.now(UTC).strftime(TIMESTAMP_FORMAT)

    def add_media(self, text: str, *, timestamp: str | None = None, **extra: Any) -> dict[str, Any]:
        """Record a published post (also used by tests to seed the account)."""
        media_id = self.new_id(18000000000000000)
        item = {"id": media_id, "timestamp": timestamp or self.timestamp(), "permalink": self.permalink_for(media_id), **extra}
        item[self.text_field] = text
        self.media.append(item)
        return item

    text_field = "text"

    def permalink_for(self, media_id: str) -> str:
        return f"https://www.threads.net/@{self.username}/post/{shortcode(int(media_id) % 10**9)}"

    # --- routing ----------------------------------------------------------------------
    def is_publish(self, request: Request) -> bool:
        return request.method == "POST" and request.path.rstrip("/").endswith("_publish")

    def route(self, request: Request) -> Response:
        for entry in self.injected:
            if entry[0](request):
                self.injected.remove(entry)
                return entry[1]
        if self.token_of(request) != self.token:
            return graph_error(400, "Invalid OAuth access token - Cannot parse access token", 190)
        parts = VERSION_PREFIX.sub("", request.path).strip("/").split("/")
        if len(parts) == 2 and parts[0] in (self.user_id, "me"):
            edge = parts[1]
            if request.method == "POST" and edge == self.container_edge:
                return self.lacks(self.write_scopes) or self.create_container(request)
            if request.method == "POST" and edge == self.publish_edge:
                return self.lacks(self.write_scopes) or self.publish_container(request)
            if request.method == "GET" and edge == self.quota_edge:
                return self.lacks(self.write_scopes) or self.answer(
                    {"data": [{"quota_usage": self.quota_used, "config": {"quota_total": self.quota_total, "quota_duration": 86400}}]})
            if request.method == "GET" and edge == self.media_edge:
                return self.lacks(self.read_scopes) or self.list_media(request)
        if len(parts) == 1 and request.method == "GET":
            return self.lacks(self.read_scopes) or self.get_object(parts[0], request)
        if len(parts) == 1 and request.method == "DELETE" and self.delete_scopes:
            return self.delete_media(parts[0])
        return graph_error(400, "Unsupported request - method type or path not supported", 100, subcode=33, kind="GraphMethodException")

    delete_scopes: frozenset[str] = frozenset()  # where the platform lets a post be deleted (Threads)

    def delete_media(self, media_id: str) -> Response:
        # Threads "Delete posts": DELETE /{threads-media-id} with threads_basic + threads_delete;
        # {"success": true, "deleted_id": ...}; an id that is not (or no longer) there: #100/33.
        missing = sorted(self.delete_scopes - set(getattr(self, "scopes", self.delete_scopes)))
        if missing:
            return graph_error(403, f"(#10) Application does not have permission for this action (needs {', '.join(missing)})", 10)
        for item in self.media:
            if item["id"] == media_id:
                self.media.remove(item)
                return self.answer({"success": True, "deleted_id": media_id})
        return graph_error(400, f"Unsupported delete request. Object with ID '{media_id}' does not exist", 100, subcode=33, kind="GraphMethodException")

    def get_object(self, object_id: str, request: Request) -> Response:
        fields = self.fields(request)
        if object_id in (self.user_id, "me"):
            return self.answer(self.pick(self.profile(), fields))
        if object_id in self.containers:
            container = self.containers[object_id]
            self.update(container)
            self.status_reads.append((object_id, self.now()))
            return self.answer(self.pick(container, fields))
        for item in self.media:
            if item["id"] == object_id:
                if self.permalink_fails:
                    return graph_error(500, "An unexpected error has occurred. Please retry your request later.", 2, transient=True)
                return self.answer(self.pick(item, fields))
        return graph_error(400, f"Unsupported get request. Object with ID '{object_id}' does not exist", 100, subcode=33, kind="GraphMethodException")

    def profile(self) -> dict[str, Any]:
        return {"id": self.user_id, "username": self.username, "name": "Jakarta Berketahanan"}

    def list_media(self, request: Request) -> Response:
        fields = self.fields(request)
        limit = int(request.param("limit") or 25)
        since = request.param("since")
        items = list(reversed(self.media))
        if since:
            floor = int(since)
            items = [i for i in items if datetime.strptime(i["timestamp"], TIMESTAMP_FORMAT).replace(tzinfo=UTC).timestamp() >= floor]
        page = [self.pick(i, fields) for i in items[:limit]]
        body: dict[str, Any] = {"data": page}
        if len(items) > limit:
            body["paging"] = {"next": f"{self.url}/{self.api_version}/{self.user_id}/{self.media_edge}?access_token={self.token}&limit={limit}&after=QVFI"}
        return self.answer(body)

    # --- containers -------------------------------------------------------------------
    def set_status(self, container: dict[str, Any], status: str) -> None:
        container[self.container_status_field] = status

    def status_of(self, container: dict[str, Any]) -> str:
        return container[self.container_status_field]

    def update(self, container: dict[str, Any]) -> None:
        """Move a container on with time: ready ``ready_after`` seconds after creation (ERROR if
        its image cannot be used); EXPIRED 24 h after creation if unpublished (threads/posts:
        "containers expire after 24 hours")."""
        age = self.now() - container["created"]
        status = self.status_of(container)
        if status in ("IN_PROGRESS", "FINISHED") and age >= 86400:
            self.set_status(container, "EXPIRED")
        elif status == "IN_PROGRESS" and age >= self.ready_after:
            if container.get("image_url") and self.image_fails:
                self.set_status(container, "ERROR")
                container["error_message"] = "The media could not be fetched from this URI"
            else:
                self.set_status(container, "FINISHED")

    def new_container(self, fields: dict[str, Any]) -> Response:
        container_id = self.new_id(17890000000000000)
        container = {"id": container_id, "created": self.now(), **fields}
        self.set_status(container, "IN_PROGRESS")
        self.containers[container_id] = container
        return self.answer({"id": container_id})

    def not_ready(self, container_id: str) -> Response:
        # Threads, publishing before the container is FINISHED: 400, code 24, subcode 4279009,
        # "The media with id ... cannot be found", is_transient false (threads/troubleshooting).
        return graph_error(400, f"The media with id {container_id} cannot be found", 24, subcode=4279009, kind="THApiException")

    def publish_container(self, request: Request) -> Response:
        container_id = request.param("creation_id") or ""
        container = self.containers.get(container_id)
        if container is None:
            return graph_error(400, f"The media with id {container_id} cannot be found", 24, subcode=4279009, kind="THApiException")
        self.update(container)
        if self.status_of(container) == "PUBLISHED":
            return graph_error(400, "The media has already been published", 100, subcode=2207008)
        if self.status_of(container) == "EXPIRED":
            return graph_error(400, "The media has expired", -2, subcode=2207020)
        if self.status_of(container) != "FINISHED":
            return self.not_ready(container_id)
        if self.quota_used >= self.quota_total:
            return graph_error(400, "You reached the maximum number of posts that can be published in 24 hours", 9, subcode=2207042)
        self.quota_used += 1
        self.set_status(container, "PUBLISHED")
        item = self.published_item(container)
        return self.answer({"id": item["id"]})

    # --- for subclasses -----------------------------------------------------------------
    def create_container(self, request: Request) -> Response:
        raise NotImplementedError

    def published_item(self, container: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    # --- scripted faults, in Meta's envelope ----------------------------------------------
    def error_response(self, kind: str, request: Request) -> Response:
        if kind == "rate_limit":
            usage = json.dumps({self.user_id: [{"type": "pages", "call_count": 100, "total_cputime": 30, "total_time": 40,
                                                "estimated_time_to_regain_access": 5}]})
            headers = {"x-business-use-case-usage": usage, "x-app-usage": '{"call_count":100,"total_cputime":30,"total_time":40}'}
            return graph_error(400, "(#4) Application request limit reached", 4, transient=True, headers=headers)
        if kind == "auth":
            return graph_error(400, "Error validating access token: Session has expired on Friday, 27-Nov-26 08:00:00 PST.", 190, subcode=463)
        if kind == "bad_request":
            return graph_error(400, "(#100) Invalid parameter", 100, kind="THApiException")
        if kind == "server_error":
            return graph_error(500, "An unexpected error has occurred. Please retry your request later.", 2, transient=True)
        raise ValueError(kind)


GRAPHEME = regex.compile(r"\X")
EMOJI = regex.compile(r"\p{Extended_Pictographic}|\p{Regional_Indicator}")


def documented_length(text: str) -> int:
    """Threads' documented rule: 500 characters, an emoji counting its UTF-8 bytes."""
    return sum(len(g.encode()) if EMOJI.search(g) else 1 for g in GRAPHEME.findall(text))


class ThreadsFake(MetaGraphFake):
    """graph.threads.net: /{uid}/threads, /{uid}/threads_publish, /{uid}/threads_publishing_limit, /me."""

    delete_scopes = frozenset({"threads_basic", "threads_delete"})

    def create_container(self, request: Request) -> Response:
        media_type = (request.param("media_type") or "").upper()
        text = request.param("text") or ""
        if media_type not in ("TEXT", "IMAGE"):
            return graph_error(400, "The parameter media_type is required", 100, kind="THApiException")
        if documented_length(text) > 500:
            return graph_error(400, "Param text must be at most 500 characters long.", 100, kind="THApiException")
        if media_type == "TEXT":
            if not text:
                return graph_error(400, "The parameter text is required for TEXT posts", 100, kind="THApiException")
            if request.param("image_url"):
                return graph_error(400, "image_url is not allowed for TEXT posts", 100, kind="THApiException")
            return self.new_container({"media_type": "TEXT", "text": text, "link_attachment_url": request.param("link_attachment")})
        if not request.param("image_url"):
            return graph_error(400, "The parameter image_url is required for IMAGE posts", 100, kind="THApiException")
        if request.param("link_attachment"):
            return graph_error(400, "link_attachment is only allowed for TEXT posts", 100, kind="THApiException")
        return self.new_container(
            {"media_type": "IMAGE", "text": text, "image_url": request.param("image_url"), "alt_text": request.param("alt_text")},
        )

    def published_item(self, container: dict[str, Any]) -> dict[str, Any]:
        return self.add_media(
            container.get("text") or "",
            media_type=container["media_type"],
            link_attachment_url=container.get("link_attachment_url"),
            alt_text=container.get("alt_text"),
            username=self.username,
        )


CONTRACT = ContractCase(
    platform="threads",
    make_fake=ThreadsFake,
    options=lambda fake: {"api_base": fake.url, "user_id": fake.user_id, "access_token": "${THREADS_TOKEN}"},  # type: ignore[attr-defined]
    env={"THREADS_TOKEN": CANARY},
    posts=lambda fake: len(fake.media),  # type: ignore[attr-defined]
    # Threads posting guide: threads_basic + threads_content_publish to post; reading the
    # account's threads back needs threads_basic only.
    minimal_scopes=("threads_basic", "threads_content_publish"),
)
