"""A loopback Slack incoming webhook: POST JSON, ``ok`` or a plain-text error.

Checks Block Kit the way the adapter uses it (section text 3000 max, image blocks need
``image_url`` Slack can fetch and ``alt_text``), and renders each message's mrkdwn the
way Slack shows it (``<url|label>`` links, ``&lt; &gt; &amp;`` decoded) and records
the mentions it would fire (``<!channel>``, ``<@U123>``), so tests see what readers see.
"""

from __future__ import annotations

import re
from typing import Any

from tests.contract import CANARY, ContractCase
from tests.fakes.base import FakeServer, Request, Response

TEAM, HOOK = "T0000000001", "B0000000001"
_PATH = re.compile(r"^/services/([^/]+)/([^/]+)/([^/]+)/?$")
_TOKEN = re.compile(r"<([^<>|]+)(?:\|([^<>]*))?>")


def render_mrkdwn(text: str) -> tuple[str, list[str]]:
    """(what Slack shows, the mentions it fires) for a mrkdwn string."""
    mentions: list[str] = []

    def token(match: re.Match[str]) -> str:
        target, label = match.group(1), match.group(2)
        if target.startswith(("!", "@", "#")):
            mentions.append(target)
        return label if label is not None else target

    shown = _TOKEN.sub(token, text)  # tokens first: an escaped &lt; can never open one
    return shown.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&"), mentions


def _text(status: int, body: str, headers: dict[str, str] | None = None) -> Response:
    return Response(status, body.encode(), {"Content-Type": "text/plain; charset=utf-8", **(headers or {})})


class SlackFake(FakeServer):
    newest: SlackFake | None = None  # the last one started: the contract's env points at it

    def __init__(self, token: str = CANARY, lifetime: float = 300.0) -> None:
        super().__init__(lifetime)
        self.token = token
        self.removed = False
        self.archived = False
        self.messages: list[dict[str, Any]] = []
        # The Web API side: a bot token with its scopes, member of one channel.
        self.bot_token = f"xoxb-{token}"
        self.bot_scopes = {"chat:write"}
        self.channel_id = "C0AUTOPUB01"
        self._ts = 1785000000

    def start(self, port: int = 0) -> SlackFake:
        super().start(port)
        SlackFake.newest = self
        return self

    @property
    def webhook_url(self) -> str:
        return f"{self.url}/services/{TEAM}/{HOOK}/{self.token}"

    def route(self, request: Request) -> Response:
        if request.path.startswith("/api/"):
            return self._web_api(request, request.path[len("/api/"):])
        match = _PATH.match(request.path)
        if request.method != "POST":
            return _text(405, "invalid_method")
        if not match or match.group(1) != TEAM or match.group(2) != HOOK or self.removed:
            return _text(404, "no_service")
        if match.group(3) != self.token:
            return _text(403, "invalid_token")
        if self.archived:
            return _text(410, "channel_is_archived")
        data = request.json
        if not isinstance(data, dict):
            return _text(400, "invalid_payload")
        text, blocks = data.get("text"), data.get("blocks")
        if not text and not blocks:
            return _text(400, "no_text")
        problem = self._check_blocks(blocks or [])
        if problem:
            return _text(400, problem)
        shown, mentions = _shown(blocks or [])
        self.messages.append({"payload": data, "shown": shown, "mentions": mentions})
        return _text(200, "ok")

    # --- Web API (api.slack.com/methods): HTTP 200 with {"ok": false, "error"} for refusals ------------
    def _web_api(self, request: Request, method: str) -> Response:
        if request.method != "POST":
            return _api_error("invalid_request")
        if request.header("authorization") != f"Bearer {self.bot_token}":
            return _api_error("invalid_auth")
        if method == "auth.test":
            return Response.json_body(200, {"ok": True, "team": "Jakarta", "team_id": TEAM, "user": "autopublish", "bot_id": "B0BOT00001"})
        handler = {"chat.postMessage": self._post_message, "chat.update": self._update, "chat.delete": self._delete}.get(method)
        if handler is None:
            return _api_error("unknown_method")
        if "chat:write" not in self.bot_scopes:  # chat.postMessage/update/delete: "Required scopes: chat:write"
            return Response.json_body(200, {"ok": False, "error": "missing_scope", "needed": "chat:write", "provided": ",".join(sorted(self.bot_scopes))})
        data = request.json if isinstance(request.json, dict) else {}
        if data.get("channel") != self.channel_id:
            return _api_error("channel_not_found")
        if self.archived:
            return _api_error("is_archived")
        return handler(data)

    def _find(self, data: dict[str, Any]) -> dict[str, Any] | None:
        return next((m for m in self.messages if m.get("ts") == data.get("ts")), None)

    def _render(self, data: dict[str, Any]) -> Response | tuple[list[str], list[str]]:
        text, blocks = data.get("text"), data.get("blocks")
        if not text and not blocks:
            return _api_error("no_text")
        problem = self._check_blocks(blocks or [])
        if problem:
            return _api_error(problem)
        return _shown(blocks or [])

    def _post_message(self, data: dict[str, Any]) -> Response:
        rendered = self._render(data)
        if isinstance(rendered, Response):
            return rendered
        self._ts += 1
        ts = f"{self._ts}.000100"
        self.messages.append({"payload": data, "shown": rendered[0], "mentions": rendered[1], "ts": ts})
        return Response.json_body(200, {"ok": True, "channel": self.channel_id, "ts": ts, "message": {"type": "message", "text": data.get("text"), "ts": ts}})

    def _update(self, data: dict[str, Any]) -> Response:
        # chat.update: the message by channel + ts; message_not_found once deleted; only the app's own messages.
        message = self._find(data)
        if message is None:
            return _api_error("message_not_found")
        rendered = self._render(data)
        if isinstance(rendered, Response):
            return rendered
        message.update(payload=data, shown=rendered[0], mentions=rendered[1], edited=True)
        return Response.json_body(200, {"ok": True, "channel": self.channel_id, "ts": data["ts"], "text": data.get("text")})

    def _delete(self, data: dict[str, Any]) -> Response:
        # chat.delete: message_not_found when it is already gone.
        message = self._find(data)
        if message is None:
            return _api_error("message_not_found")
        self.messages.remove(message)
        return Response.json_body(200, {"ok": True, "channel": self.channel_id, "ts": data["ts"]})

    def _check_blocks(self, blocks: Any) -> str:
        if not isinstance(blocks, list) or len(blocks) > 50:
            return "invalid_blocks"
        for block in blocks:
            kind = block.get("type") if isinstance(block, dict) else None
            if kind == "section":
                text = (block.get("text") or {}).get("text", "")
                if not text or len(text) > 3000:
                    return "invalid_blocks"
            elif kind == "context":
                if not block.get("elements") or len(block["elements"]) > 10:
                    return "invalid_blocks"
            elif kind == "image":
                url, alt = block.get("image_url", ""), block.get("alt_text", "")
                if not alt or len(alt) > 2000:
                    return "invalid_blocks"
                if not url.startswith(f"{self.url}/_image/") or "missing" in url:
                    return "invalid_blocks"  # Slack could not download the image
            else:
                return "invalid_blocks"
        return ""

    retry_after = "30"  # seconds in a 429's Retry-After

    def error_response(self, kind: str, request: Request) -> Response:
        if kind == "rate_limit" and request.path.startswith("/api/"):
            # docs.slack.dev/apis/web-api/rate-limits: HTTP 429 with Retry-After, error "ratelimited"
            return Response.json_body(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": self.retry_after})
        if kind == "rate_limit":
            return _text(429, "rate_limited", {"Retry-After": self.retry_after})
        if kind == "auth":
            return _text(404, "no_service")
        if kind == "bad_request":
            return _text(400, "invalid_payload")
        return _text(500, "rollup_error")


def _api_error(error: str) -> Response:
    return Response.json_body(200, {"ok": False, "error": error})


def _shown(blocks: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """(what Slack shows of each mrkdwn piece, the mentions they fire) for a message's blocks."""
    shown: list[str] = []
    mentions: list[str] = []
    for block in blocks:
        for piece in _mrkdwn_of(block):
            words, fired = render_mrkdwn(piece)
            shown.append(words)
            mentions.extend(fired)
    return shown, mentions


def _mrkdwn_of(block: dict[str, Any]) -> list[str]:
    if block.get("type") == "section":
        return [block["text"]["text"]]
    if block.get("type") == "context":
        return [e.get("text", "") for e in block["elements"] if e.get("type") == "mrkdwn"]
    return []


class _LiveEnv(dict[str, str]):
    """SLACK_WEBHOOK_URL is the newest fake's URL (its port changes per test); the token is the canary."""

    def get(self, key: str, default: Any = None) -> Any:
        if key == "SLACK_WEBHOOK_URL" and SlackFake.newest is not None:
            return SlackFake.newest.webhook_url
        return super().get(key, default)


CONTRACT = ContractCase(
    platform="slack",
    make_fake=SlackFake,
    options=lambda fake: {"webhook_url": "${SLACK_WEBHOOK_URL}"},
    env=_LiveEnv(SLACK_WEBHOOK_URL=CANARY),
    posts=lambda fake: len(fake.messages),  # type: ignore[attr-defined]
)
