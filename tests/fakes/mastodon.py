"""A loopback Mastodon instance: statuses, media, instance limits, Idempotency-Key.

Speaks the real paths and shapes (docs.joinmastodon.org): form or JSON bodies,
``media_ids[]``, ``{"error": "..."}`` envelopes, ISO-8601 ``X-RateLimit-Reset``, media
that may stay "processing" (202 on upload, 206 on GET) for a while, link cards that
appear only on later reads (Mastodon fetches them after posting).

Like Mastodon it checks each endpoint's OAuth scope (``grant()`` sets what the token
holds; a parent scope such as ``read`` covers ``read:statuses``), counts the content
warning together with the text, and remembers an Idempotency-Key for one hour only.
"""

from __future__ import annotations

import html
import itertools
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import regex

from tests.contract import CANARY, ContractCase
from tests.fakes.base import CannedReplies, Request, Response

URL = re.compile(r"https?://[^\s<>\"']+")


def _graphemes(text: str) -> int:
    return len(regex.findall(r"\X", text))


class FakeMastodon(CannedReplies):
    """One account (``@bot``) on one instance; the token is ``token``."""

    def __init__(self, token: str = CANARY, *, max_characters: int = 500, url_length: int = 23, lifetime: float = 300.0) -> None:
        super().__init__(lifetime=lifetime)
        self.token = token
        self.max_characters = max_characters
        self.url_length = url_length
        self.account_id = "109000000000000042"
        self.statuses: list[dict[str, Any]] = []  # oldest first
        self.deleted: list[dict[str, Any]] = []  # statuses removed by DELETE
        self.media: dict[str, dict[str, Any]] = {}
        self.idempotency: dict[str, tuple[str, float]] = {}  # key -> (status id, when first seen)
        self.clock: Callable[[], float] = time.time  # tests move it to let keys expire
        self.scopes: set[str] = {"read", "write"}  # what the token was granted
        self.processing_polls = 0  # a new upload stays "processing" for this many GETs
        self.revoked = False
        self._ids = itertools.count(113900000000000001)

    # --- helpers for tests -------------------------------------------------------
    def grant(self, scopes: set[str] | tuple[str, ...] | list[str]) -> None:
        """The token holds exactly these OAuth scopes from now on."""
        with self.lock:
            self.scopes = set(scopes)

    def _has(self, scope: str) -> bool:
        # docs.joinmastodon.org/api/oauth-scopes: "read" and "write" include every read:* / write:* scope.
        return scope in self.scopes or scope.split(":", 1)[0] in self.scopes

    def _outside_scopes(self) -> Response:
        # methods/accounts.md (and every method page): a token without the scope gets 403 with this error.
        return self._error(403, "This action is outside the authorized scopes")

    @property
    def posts(self) -> int:
        return len(self.statuses)

    def _rate_headers(self) -> dict[str, str]:
        reset = datetime.now(UTC) + timedelta(minutes=5)
        return {
            "X-RateLimit-Limit": "300",
            "X-RateLimit-Remaining": "216",
            "X-RateLimit-Reset": reset.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        }

    def _error(self, status: int, text: str, headers: dict[str, str] | None = None) -> Response:
        return Response.json_body(status, {"error": text}, {**self._rate_headers(), **(headers or {})})

    def _ok(self, data: Any, status: int = 200) -> Response:
        return Response.json_body(status, data, self._rate_headers())

    # --- FakeServer --------------------------------------------------------------
    def is_publish(self, request: Request) -> bool:
        return request.method == "POST" and request.path == "/api/v1/statuses"

    def error_response(self, kind: str, request: Request) -> Response:
        if kind == "rate_limit":
            return self._error(429, "Too many requests", {"X-RateLimit-Remaining": "0"})
        if kind == "auth":
            return Response.json_body(401, {"error": "The access token is invalid"}, {"WWW-Authenticate": 'Bearer realm="Doorkeeper", error="invalid_token"'})
        if kind == "bad_request":
            return self._error(422, "Validation failed: Text can't be blank")
        return Response(503, "<html><body>Service Unavailable</body></html>", {"Content-Type": "text/html"})

    def route(self, request: Request) -> Response:
        path, method = request.path, request.method
        canned = self._canned(request)
        if canned is not None:
            return canned
        if method == "GET" and path in ("/api/v2/instance", "/api/v1/instance"):
            return self._instance(path)
        has_token = bool(request.header("authorization"))
        if has_token and not self._authorized(request):
            return Response.json_body(401, {"error": "The access token is invalid"})
        # methods/accounts.md: lookup and an account's statuses are public; "authorize_if_got_token!":
        # called WITH a token, lookup needs read:accounts and statuses need read:statuses.
        if method == "GET" and path == "/api/v1/accounts/lookup":
            if has_token and not self._has("read:accounts"):
                return self._outside_scopes()
            return self._lookup(request)
        match = re.fullmatch(r"/api/v1/accounts/(\d+)/statuses", path)
        if method == "GET" and match:
            if has_token and not self._has("read:statuses"):
                return self._outside_scopes()
            return self._list_statuses(request, match.group(1))
        if not has_token:
            return Response.json_body(401, {"error": "The access token is invalid"})
        if method == "GET" and path == "/api/v1/apps/verify_credentials":
            # methods/apps.md: any valid token, no scope; 4.3+ lists the token's scopes.
            return self._ok({"name": "autopublish", "website": None, "scopes": sorted(self.scopes)})
        if method == "GET" and path == "/api/v1/accounts/verify_credentials":
            # methods/accounts.md: "User token + read:accounts" (or "profile" since 4.3).
            if not (self._has("read:accounts") or "profile" in self.scopes):
                return self._outside_scopes()
            return self._ok(self._account())
        if method == "POST" and path == "/api/v2/media":
            if not self._has("write:media"):  # methods/media.md: "User token + write:media"
                return self._outside_scopes()
            return self._upload(request)
        match = re.fullmatch(r"/api/v1/media/(\d+)", path)
        if method == "GET" and match:
            if not self._has("write:media"):  # methods/media.md: GET media/:id needs write:media
                return self._outside_scopes()
            return self._get_media(match.group(1))
        if method == "POST" and path == "/api/v1/statuses":
            if not self._has("write:statuses"):  # methods/statuses.md: "User token + write:statuses"
                return self._outside_scopes()
            return self._create_status(request)
        match = re.fullmatch(r"/api/v1/statuses/(\d+)", path)
        if match and method in ("PUT", "DELETE"):
            if not self._has("write:statuses"):  # methods/statuses.md: edit and delete need "User token + write:statuses"
                return self._outside_scopes()
            return self._edit_status(request, match.group(1)) if method == "PUT" else self._delete_status(match.group(1))
        return self._error(404, "Record not found")

    # --- endpoints ---------------------------------------------------------------
    def _authorized(self, request: Request) -> bool:
        return not self.revoked and request.header("authorization") == f"Bearer {self.token}"

    def _lookup(self, request: Request) -> Response:
        acct = (request.param("acct") or "").lstrip("@")
        name, _, domain = acct.partition("@")
        if name != "bot" or (domain and domain != request.header("host")):
            return self._error(404, "Record not found")
        return self._ok(self._account())

    def _account(self) -> dict[str, Any]:
        return {"id": self.account_id, "username": "bot", "acct": "bot", "display_name": "Berita Bot", "url": f"{self.url}/@bot"}

    def _instance(self, path: str) -> Response:
        statuses = {"max_characters": self.max_characters, "max_media_attachments": 4, "characters_reserved_per_url": self.url_length}
        if path.startswith("/api/v1"):
            return self._ok({"uri": "127.0.0.1", "title": "Fake", "max_toot_chars": self.max_characters, "configuration": {"statuses": statuses}})
        return self._ok({
            "domain": "127.0.0.1",
            "title": "Fake Mastodon",
            "version": "4.3.0",
            "configuration": {
                "urls": {"streaming": "wss://127.0.0.1"},
                "statuses": statuses,
                "media_attachments": {"image_size_limit": 16777216, "description_limit": 1500, "supported_mime_types": ["image/png", "image/jpeg"]},
            },
        })

    def _upload(self, request: Request) -> Response:
        if "file" not in request.files:
            return self._error(422, "Validation failed: File can't be blank")
        filename, data = request.files["file"]
        if not data.startswith(b"\x89PNG") and not data.startswith(b"\xff\xd8"):
            return self._error(422, "Validation failed: File content type is invalid")
        media_id = str(next(self._ids))
        processing = self.processing_polls
        media = {
            "id": media_id,
            "type": "image",
            "url": None if processing else f"{self.url}/system/media/{media_id}/original/{filename}",
            "preview_url": f"{self.url}/system/media/{media_id}/small/{filename}",
            "description": (request.form.get("description") or [None])[0],
            "meta": {"original": {"width": 1, "height": 1, "size": "1x1", "aspect": 1.0}},
            "_polls_left": processing,
        }
        self.media[media_id] = media
        return self._ok(_public(media), 202 if processing else 200)

    def _get_media(self, media_id: str) -> Response:
        media = self.media.get(media_id)
        if media is None:
            return self._error(404, "Record not found")
        if media["_polls_left"] > 0:
            media["_polls_left"] -= 1
            if media["_polls_left"] > 0:
                return self._ok(_public(media), 206)
        media["url"] = f"{self.url}/system/media/{media_id}/original/image.png"
        return self._ok(_public(media))

    def _create_status(self, request: Request) -> Response:
        key = request.header("idempotency-key")
        remembered = self.idempotency.get(key) if key else None
        # methods/statuses.md: an Idempotency-Key is remembered for 1 hour; after that a repeat posts again.
        if remembered is not None and self.clock() - remembered[1] < 3600:
            status = next(s for s in self.statuses if s["id"] == remembered[0])
            return self._ok(_public(status))
        params = _params(request)
        text = params.get("status", "")
        media_ids = params.get("media_ids", [])
        if isinstance(text, list) or not isinstance(media_ids, list):
            return self._error(422, "Validation failed: Status is invalid")
        if not text.strip() and not media_ids:
            return self._error(422, "Validation failed: Text can't be blank")
        spoiler = params.get("spoiler_text") or ""
        # StatusLengthValidator: the content warning and the text count together against the limit.
        if self.count(spoiler if isinstance(spoiler, str) else "") + self.count(text) > self.max_characters:
            return self._error(422, f"Validation failed: Text character limit of {self.max_characters} exceeded")
        visibility = params.get("visibility") or "public"
        if visibility not in ("public", "unlisted", "private", "direct"):
            return self._error(422, "Validation failed: Visibility is not included in the list")
        attachments = []
        for media_id in media_ids:
            media = self.media.get(str(media_id))
            if media is None:
                return self._error(422, "Validation failed: Media attachments are invalid")
            if media["url"] is None:
                return self._error(422, "Cannot attach files that have not finished processing. Try again in a moment!")
            attachments.append(_public(media))
        status_id = str(next(self._ids))
        status = {
            "id": status_id,
            "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "visibility": visibility,
            "language": params.get("language"),
            "spoiler_text": params.get("spoiler_text") or "",
            "sensitive": str(params.get("sensitive", "")).lower() == "true",
            "uri": f"{self.url}/users/bot/statuses/{status_id}",
            "url": f"{self.url}/@bot/{status_id}",
            "content": _html(text),
            "text": text,
            "media_attachments": attachments,
            "card": None,
            "account": self._account(),
            "application": {"name": "autopublish", "website": None},
            "_idempotency_key": key,
        }
        self.statuses.append(status)
        if key:
            self.idempotency[key] = (status_id, self.clock())
        return self._ok(_public(status))

    def _edit_status(self, request: Request, status_id: str) -> Response:
        # methods/statuses.md#edit (3.5.0+): PUT replaces text, spoiler_text, sensitive, language;
        # media_ids[] replaces the attachments only when sent; an unknown or deleted status is 404.
        status = next((s for s in self.statuses if s["id"] == status_id), None)
        if status is None:
            return self._error(404, "Record not found")
        params = _params(request)
        text = params.get("status", "")
        if not isinstance(text, str) or (not text.strip() and not status["media_attachments"]):
            return self._error(422, "Validation failed: Text can't be blank")
        spoiler = params.get("spoiler_text") or ""
        if self.count(spoiler if isinstance(spoiler, str) else "") + self.count(text) > self.max_characters:
            return self._error(422, f"Validation failed: Text character limit of {self.max_characters} exceeded")
        status.setdefault("_history", []).append(status["text"])
        status.update({"text": text, "content": _html(text), "spoiler_text": spoiler if isinstance(spoiler, str) else "",
                       "edited_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")})
        if "media_ids" in params:
            status["media_attachments"] = [_public(self.media[str(m)]) for m in params["media_ids"] if str(m) in self.media]
        return self._ok(_public(status))

    def _delete_status(self, status_id: str) -> Response:
        # methods/statuses.md#delete: 200 with the deleted status (its source text); unknown or already deleted: 404.
        status = next((s for s in self.statuses if s["id"] == status_id), None)
        if status is None:
            return self._error(404, "Record not found")
        self.statuses.remove(status)
        self.deleted.append(status)
        return self._ok(_public(status))

    def _list_statuses(self, request: Request, account_id: str) -> Response:
        if account_id != self.account_id:
            return self._error(404, "Record not found")
        limit = min(int(request.param("limit", "20") or 20), 40)
        page = []
        for status in reversed(self.statuses):
            links = URL.findall(status["text"])
            # Mastodon fetches the card after posting; later reads show it.
            shown = {**status, "card": {"url": links[0], "title": "", "type": "link"} if links else None}
            page.append(_public(shown))
        return self._ok(page[:limit])

    def count(self, text: str) -> int:
        """Mastodon's StatusLengthValidator, independently: URLs count url_length."""
        text = re.sub(r"(?<![\w/])@(\w+)@[\w.-]+\w", r"@\1", text)
        return _graphemes(URL.sub("x" * self.url_length, text))


def _params(request: Request) -> dict[str, Any]:
    """Status parameters from a form (``media_ids[]``) or a JSON body (``media_ids``)."""
    if isinstance(request.json, dict):
        return dict(request.json)
    params: dict[str, Any] = {}
    for name, values in request.form.items():
        if name.endswith("[]"):
            params[name[:-2]] = values
        else:
            params[name] = values[-1] if len(values) == 1 else values
    return params


def _html(text: str) -> str:
    """Roughly how Mastodon renders plain text: paragraphs, <br />, linked URLs."""
    def link(match: re.Match[str]) -> str:
        url = match.group(0)
        return f'<a href="{html.escape(url)}" rel="nofollow noopener" target="_blank">{html.escape(url)}</a>'

    paragraphs = []
    for block in text.split("\n\n"):
        escaped = URL.sub(lambda m: "\0" + m.group(0) + "\0", block)
        parts = escaped.split("\0")
        rendered = "".join(link(URL.match(p)) if i % 2 else html.escape(p) for i, p in enumerate(parts))  # type: ignore[arg-type]
        paragraphs.append("<p>" + rendered.replace("\n", "<br />") + "</p>")
    return "".join(paragraphs)


def _public(entity: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in entity.items() if not k.startswith("_") and k != "text"}


# The README's scopes: enough to post and to settle doubts (docs: api/oauth-scopes).
MINIMAL_SCOPES = ("write:statuses", "write:media", "read:statuses")

CONTRACT = ContractCase(
    platform="mastodon",
    make_fake=lambda: FakeMastodon(),
    options=lambda fake: {"instance": fake.url, "access_token": "${MASTODON_TOKEN}", "visibility": "public"},
    minimal_scopes=MINIMAL_SCOPES,
    env={"MASTODON_TOKEN": CANARY},
    posts=lambda fake: fake.posts,  # type: ignore[attr-defined]
)
