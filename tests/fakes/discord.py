"""A loopback Discord webhook: execute (204, or the message with wait=true), GET, GET-by-id.

Errors use Discord's ``{"message", "code"}`` envelope (400 50035 with nested ``errors``,
404 10015 Unknown Webhook, 401 50027 Invalid Webhook Token); a 429 carries a float
``retry_after`` in the body plus ``Retry-After`` and ``X-RateLimit-*`` headers.
Content, embed and total-embed limits are enforced like Discord's.
"""

from __future__ import annotations

import re
from typing import Any

from tests.contract import CANARY, ContractCase
from tests.fakes.base import FakeServer, Request, Response

WEBHOOK_ID = "1260000000000000005"
GUILD_ID = "1250000000000000001"
CHANNEL_ID = "1270000000000000009"
_PATH = re.compile(r"^/api(?:/v\d+)?/webhooks/(\d+)/([^/]+)(?:/messages/(\d+))?/?$")


def _error(status: int, message: str, code: int, errors: dict[str, Any] | None = None) -> Response:
    body: dict[str, Any] = {"message": message, "code": code}
    if errors:
        body["errors"] = errors
    return Response.json_body(status, body)


def _too_long(field: str, limit: int) -> Response:
    errors: dict[str, Any] = {}
    node = errors
    parts = field.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH", "message": f"Must be {limit} or fewer in length."}]}
    return _error(400, "Invalid Form Body", 50035, errors)


class DiscordFake(FakeServer):
    newest: DiscordFake | None = None  # the last one started: the contract's env points at it

    def __init__(self, token: str = CANARY, lifetime: float = 300.0) -> None:
        super().__init__(lifetime)
        self.token = token
        self.deleted = False
        self.messages: dict[str, dict[str, Any]] = {}
        self._next = 1280000000000000000

    def start(self, port: int = 0) -> DiscordFake:
        super().start(port)
        DiscordFake.newest = self
        return self

    @property
    def webhook_url(self) -> str:
        return f"{self.url}/api/webhooks/{WEBHOOK_ID}/{self.token}"

    def is_publish(self, request: Request) -> bool:
        return request.method == "POST" and _PATH.match(request.path) is not None

    def route(self, request: Request) -> Response:
        match = _PATH.match(request.path)
        if not match or match.group(1) != WEBHOOK_ID or self.deleted:
            return _error(404, "Unknown Webhook", 10015)
        if match.group(2) != self.token:
            return _error(401, "Invalid Webhook Token", 50027)
        message_id = match.group(3)
        if request.method == "GET" and message_id:
            found = self.messages.get(message_id)
            return Response.json_body(200, found) if found else _error(404, "Unknown Message", 10008)
        if request.method == "GET":
            return Response.json_body(200, self._webhook())
        if request.method == "POST" and not message_id:
            return self._execute(request)
        if request.method in ("PATCH", "DELETE") and message_id:
            found = self.messages.get(message_id)
            if found is None:  # docs: webhook#edit-webhook-message / #delete-webhook-message; error 10008
                return _error(404, "Unknown Message", 10008)
            if request.method == "DELETE":
                del self.messages[message_id]
                return Response(204)  # "Returns a 204 No Content response on success."
            return self._edit(request, found)
        return _error(405, "405: Method Not Allowed", 0)

    def _webhook(self) -> dict[str, Any]:
        return {
            "application_id": None, "avatar": None, "channel_id": CHANNEL_ID, "guild_id": GUILD_ID,
            "id": WEBHOOK_ID, "name": "Autopublish", "type": 1, "token": self.token,
        }  # fmt: skip

    def _execute(self, request: Request) -> Response:
        data = request.json
        if not isinstance(data, dict):
            return _error(400, "Cannot send an empty message", 50006)
        content = data.get("content") or ""
        embeds = data.get("embeds") or []
        if not content and not embeds:
            return _error(400, "Cannot send an empty message", 50006)
        if len(content) > 2000:
            return _too_long("content", 2000)
        if len(embeds) > 10:
            return _too_long("embeds", 10)
        total = 0
        for index, embed in enumerate(embeds):
            title, description = embed.get("title", ""), embed.get("description", "")
            if len(title) > 256:
                return _too_long(f"embeds.{index}.title", 256)
            if len(description) > 4096:
                return _too_long(f"embeds.{index}.description", 4096)
            image = (embed.get("image") or {}).get("url", "")
            if image and not image.startswith(("http://", "https://", "attachment://")):
                return _error(
                    400,
                    "Invalid Form Body",
                    50035,
                    {"embeds": {str(index): {"image": {"url": {"_errors": [{"code": "URL_TYPE_INVALID_URL", "message": "Not a well formed URL."}]}}}}},
                )
            total += len(title) + len(description)
        if total > 6000:
            return _error(400, "Invalid Form Body", 50035, {"embeds": {"_errors": [{"code": "MAX_EMBED_SIZE_EXCEEDED", "message": "Embed size exceeds maximum "
                                                                                                                                  "size of 6000"}]}})
        self._next += 1
        message_id = str(self._next)
        message: dict[str, Any] = {
            "id": message_id, "type": 0, "content": content, "channel_id": CHANNEL_ID,
            "author": {"id": WEBHOOK_ID, "username": data.get("username") or "Autopublish", "bot": True},
            "attachments": [], "embeds": [{"type": "rich", **e} for e in embeds], "mentions": [],
            "mention_roles": [], "pinned": False, "mention_everyone": False, "tts": False,
            "timestamp": "2026-11-27T08:30:00.000000+00:00", "edited_timestamp": None, "flags": 0,
            "components": [], "webhook_id": WEBHOOK_ID,
            "_allowed_mentions": data.get("allowed_mentions"),  # kept for tests, not Discord's
        }  # fmt: skip
        self.messages[message_id] = message
        if (request.query.get("wait") or ["false"])[0].lower() == "true":
            return Response.json_body(200, {k: v for k, v in message.items() if not k.startswith("_")})
        return Response(204)

    def _edit(self, request: Request, message: dict[str, Any]) -> Response:
        # docs: webhook#edit-webhook-message: JSON content/embeds/allowed_mentions, the same limits as
        # executing; fields left out are kept; answers with the edited message.
        data = request.json
        if not isinstance(data, dict):
            return _error(400, "Invalid Form Body", 50035)
        content = data.get("content", message["content"]) or ""
        embeds = data.get("embeds", message["embeds"]) or []
        if not content and not embeds:
            return _error(400, "Cannot send an empty message", 50006)
        if len(content) > 2000:
            return _too_long("content", 2000)
        message.update(content=content, embeds=[{"type": "rich", **e} for e in embeds], edited_timestamp="2026-11-27T09:30:00.000000+00:00")
        return Response.json_body(200, {k: v for k, v in message.items() if not k.startswith("_")})

    def error_response(self, kind: str, request: Request) -> Response:
        if kind == "rate_limit":
            headers = {
                "Retry-After": "2", "X-RateLimit-Limit": "5", "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset-After": "1.5", "X-RateLimit-Bucket": "a06de1", "X-RateLimit-Scope": "shared",
            }  # fmt: skip
            return Response.json_body(429, {"message": "You are being rate limited.", "retry_after": 1.5, "global": False}, headers)
        if kind == "auth":
            return _error(404, "Unknown Webhook", 10015)
        if kind == "bad_request":
            return _too_long("embeds.0.description", 4096)
        return _error(500, "500: Internal Server Error", 0)


class _LiveEnv(dict[str, str]):
    """DISCORD_WEBHOOK_URL is the newest fake's URL (its port changes per test); the token is the canary."""

    def get(self, key: str, default: Any = None) -> Any:
        if key == "DISCORD_WEBHOOK_URL" and DiscordFake.newest is not None:
            return DiscordFake.newest.webhook_url
        return super().get(key, default)


CONTRACT = ContractCase(
    platform="discord",
    make_fake=DiscordFake,
    options=lambda fake: {"webhook_url": "${DISCORD_WEBHOOK_URL}"},
    env=_LiveEnv(DISCORD_WEBHOOK_URL=CANARY),
    posts=lambda fake: len(fake.messages),  # type: ignore[attr-defined]
)
