"""A loopback Telegram Bot API: /bot<token>/<method>, the ok/result envelope, HTML parsing.

Speaks what the adapter relies on: methods routed case-insensitively, parameters from
the query string, form, multipart or JSON, ``{"ok": false, "error_code", "description",
"parameters"}`` errors with the matching HTTP status, ``parameters.retry_after`` on 429,
``parameters.migrate_to_chat_id`` for a group that became a supergroup, and an HTML
entity parser that refuses unescaped ``<`` and ``&`` like Telegram's "can't parse
entities". Lengths are checked after parsing, in UTF-16 code units.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import partial
from typing import Any

from tests.contract import CANARY, ContractCase
from tests.fakes.base import FakeServer, Request, Response

CHANNEL: dict[str, Any] = {"id": -1001234567890, "title": "Example News", "username": "examplechannel", "type": "channel"}
OLD_GROUP_ID = -400111
SUPERGROUP: dict[str, Any] = {"id": -1009876543210, "title": "Example Group", "type": "supergroup"}

ALLOWED_TAGS = {
    "b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span",
    "tg-spoiler", "a", "code", "pre", "blockquote", "tg-emoji",
}  # fmt: skip
_PATH = re.compile(r"^/bot([^/]+)/([A-Za-z]+)$")
_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9-]*)((?:\s+[A-Za-z-]+(?:\s*=\s*(?:\"[^\"]*\"|'[^']*'|[^\s>]+))?)*)\s*>")
_ENTITY = re.compile(r"&(lt|gt|amp|quot|#[0-9]+|#x[0-9A-Fa-f]+);")
_ENTITY_TEXT = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}


class ParseError(Exception):
    pass


@dataclass(frozen=True)
class _Field:
    """A message's text field as the Bot API checks it: after entity parsing, in UTF-16 code units."""

    name: str
    limit: int
    too_long: str
    holds: str  # the message part an edit of this field needs: a text message's text, a photo's caption
    may_be_empty: bool


# sendMessage/editMessageText "text": 1-4096 characters after entities parsing (core.telegram.org/bots/api#sendmessage).
TEXT = _Field("text", 4096, "Bad Request: message is too long", "text", may_be_empty=False)
# sendPhoto/editMessageCaption "caption": 0-1024 characters after entities parsing (core.telegram.org/bots/api#sendphoto).
CAPTION = _Field("caption", 1024, "Bad Request: message caption is too long", "photo", may_be_empty=True)


def utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def parse_html(text: str) -> str:
    """The text Telegram shows for ``text`` in HTML parse mode; ParseError like Telegram's."""
    out: list[str] = []
    stack: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        offset = len(text[:i].encode("utf-8"))
        if char == "<":
            match = _TAG.match(text, i)
            if not match:
                raise ParseError(f"Unexpected end name token at byte offset {offset}")
            closing, name = match.group(1) == "/", match.group(2).lower()
            if name not in ALLOWED_TAGS:
                raise ParseError(f'Unsupported start tag "{name}" at byte offset {offset}')
            if closing:
                if not stack or stack[-1] != name:
                    raise ParseError(f'Unmatched end tag at byte offset {offset}, expected "</{stack[-1] if stack else ""}>", found "</{name}>"')
                stack.pop()
            else:
                stack.append(name)
            i = match.end()
        elif char == "&":
            match = _ENTITY.match(text, i)
            if not match:
                raise ParseError(f"Can't find end of the entity starting at byte offset {offset}")
            entity = match.group(1)
            if entity.startswith("#x"):
                out.append(chr(int(entity[2:], 16)))
            elif entity.startswith("#"):
                out.append(chr(int(entity[1:])))
            else:
                out.append(_ENTITY_TEXT[entity])
            i = match.end()
        else:
            out.append(char)
            i += 1
    if stack:
        raise ParseError(f'Can\'t find end tag corresponding to start tag "{stack[-1]}"')
    return "".join(out)


def _error(status: int, description: str, parameters: dict[str, Any] | None = None) -> Response:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if parameters:
        body["parameters"] = parameters
    return Response.json_body(status, body)


class TelegramFake(FakeServer):
    """Holds one channel (@examplechannel), a migrated group and a supergroup."""

    def __init__(self, token: str = CANARY, lifetime: float = 300.0) -> None:
        super().__init__(lifetime)
        self.token = token
        self.bot = {"id": 7000000001, "is_bot": True, "first_name": "Autopublish", "username": "autopublish_test_bot"}
        self.chats: dict[int, dict[str, Any]] = {CHANNEL["id"]: dict(CHANNEL), SUPERGROUP["id"]: dict(SUPERGROUP)}
        self.migrated: dict[int, int] = {OLD_GROUP_ID: SUPERGROUP["id"]}
        self.member: dict[str, Any] = {"status": "administrator", "can_post_messages": True}
        self.kicked = False
        self.messages: list[dict[str, Any]] = []
        self._next_id = 380

    def is_publish(self, request: Request) -> bool:
        match = _PATH.match(request.path)
        return match is not None and match.group(2).lower() in ("sendmessage", "sendphoto")

    # --- routing -----------------------------------------------------------------
    def route(self, request: Request) -> Response:
        match = _PATH.match(request.path)
        if not match:
            return _error(404, "Not Found")
        token, method = match.group(1), match.group(2).lower()
        if token != self.token:
            return _error(401, "Unauthorized")
        if method == "getme":
            return self._ok(self.bot)
        handler = {"getchat": self._get_chat, "getchatmember": self._get_member, "sendmessage": self._send_message, "sendphoto": self._send_photo,
                   "editmessagetext": partial(self._edit, field=TEXT), "editmessagecaption": partial(self._edit, field=CAPTION),
                   "deletemessage": self._delete_message}.get(method)
        if handler is None:
            return _error(404, "Not Found: method not found")
        chat = self._find_chat(request)
        if isinstance(chat, Response):
            return chat
        return handler(request, chat)

    def _find_chat(self, request: Request) -> dict[str, Any] | Response:
        raw = request.param("chat_id")
        if not raw:
            return _error(400, "Bad Request: chat_id is empty")
        raw = raw.strip('"')
        if raw.startswith("@"):
            for chat in self.chats.values():
                if str(chat.get("username", "")).lower() == raw[1:].lower():
                    return chat
            return _error(400, "Bad Request: chat not found")
        try:
            chat_id = int(raw)
        except ValueError:
            return _error(400, "Bad Request: chat not found")
        if chat_id in self.migrated:
            return _error(400, "Bad Request: group chat was upgraded to a supergroup chat", {"migrate_to_chat_id": self.migrated[chat_id]})
        if chat_id not in self.chats:
            return _error(400, "Bad Request: chat not found")
        return self.chats[chat_id]

    def _get_chat(self, request: Request, chat: dict[str, Any]) -> Response:
        return self._ok(chat)

    def _get_member(self, request: Request, chat: dict[str, Any]) -> Response:
        status = {"status": "kicked"} if self.kicked else self.member
        return self._ok({"user": self.bot, **status})

    def _send_message(self, request: Request, chat: dict[str, Any]) -> Response:
        if self.kicked:
            return _error(403, "Forbidden: bot was kicked from the channel chat")
        text = self._checked(request, TEXT)
        if isinstance(text, Response):
            return text
        preview = request.param("link_preview_options")
        message = self._store(request, chat, text=text, link_preview_options=json.loads(preview) if preview else None)
        return self._ok(message)

    def _send_photo(self, request: Request, chat: dict[str, Any]) -> Response:
        if self.kicked:
            return _error(403, "Forbidden: bot was kicked from the channel chat")
        photo = request.param("photo") or ""
        if not photo.startswith(f"{self.url}/_image/"):
            return _error(400, "Bad Request: wrong file identifier/HTTP URL specified")
        if "missing" in photo:
            return _error(400, "Bad Request: failed to get HTTP URL content")
        if "huge" in photo:  # Bot API "Sending files": 5 MB max for photos sent by URL; this one stands for a larger file
            return _error(400, "Bad Request: can't upload file by URL")
        caption = self._checked(request, CAPTION)
        if isinstance(caption, Response):
            return caption
        message = self._store(request, chat, caption=caption, photo=photo)
        return self._ok(message)

    # --- editing and deleting (core.telegram.org/bots/api#updating-messages) ---------
    def _message(self, request: Request, chat: dict[str, Any]) -> dict[str, Any] | Response:
        raw = request.param("message_id") or ""
        found = next((m for m in self.messages if str(m["message_id"]) == raw.strip('"') and m["chat_id"] == chat["id"]), None)
        return found if found is not None else _error(400, "Bad Request: message to edit not found")

    def _edit(self, request: Request, chat: dict[str, Any], *, field: _Field) -> Response:
        """editMessageText or editMessageCaption: the new ``field`` of a message that has one."""
        message = self._message(request, chat)
        if isinstance(message, Response):
            return message
        # editMessageText edits text messages only; a photo's caption needs editMessageCaption.
        if field.holds not in message:
            return _error(400, f"Bad Request: there is no {field.name} in the message to edit")
        value = self._checked(request, field)  # the length limits hold for edits too
        if isinstance(value, Response):
            return value
        if value == message.get(field.name):  # the Bot API refuses an edit that changes nothing
            return _error(400, "Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current "
                               "content and reply markup of the message")
        message.update({field.name: value, "raw": request.param(field.name), "edited": True})
        return self._ok({"message_id": message["message_id"], "chat": chat, "date": 1785000000, "edit_date": 1785000100, field.name: value})

    def _delete_message(self, request: Request, chat: dict[str, Any]) -> Response:
        # deleteMessage: True on success; a message already deleted answers 400 "message to delete not found".
        if self.kicked:
            return _error(403, "Forbidden: bot was kicked from the channel chat")
        message = self._message(request, chat)
        if isinstance(message, Response):
            return _error(400, "Bad Request: message to delete not found")
        self.messages.remove(message)
        return self._ok(True)

    # --- helpers -------------------------------------------------------------------
    def _checked(self, request: Request, field: _Field) -> str | Response:
        """The parsed ``field``, or Telegram's refusal of it (can't parse entities, empty, too long)."""
        value = self._parsed(request, field.name)
        if isinstance(value, Response):
            return value
        if not field.may_be_empty and not value.strip():
            return _error(400, "Bad Request: message text is empty")
        if utf16_length(value) > field.limit:
            return _error(400, field.too_long)
        return value

    def _parsed(self, request: Request, name: str) -> str | Response:
        raw = request.param(name) or ""
        if (request.param("parse_mode") or "").upper() != "HTML":
            return raw
        try:
            return parse_html(raw)
        except ParseError as exc:
            return _error(400, f"Bad Request: can't parse entities: {exc}")

    def _store(self, request: Request, chat: dict[str, Any], **fields: Any) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {
            "message_id": self._next_id,
            "sender_chat": chat,
            "chat": chat,
            "date": 1785000000 + self._next_id,
        }
        record = {"message_id": self._next_id, "chat_id": chat["id"], "raw": request.param("text") or request.param("caption"), **fields}
        self.messages.append(record)
        if "photo" in fields:
            message["photo"] = [{"file_id": f"AgAC{self._next_id}", "file_unique_id": f"AQAD{self._next_id}", "width": 1, "height": 1, "file_size": 70}]
            if fields.get("caption"):
                message["caption"] = fields["caption"]
        else:
            message["text"] = fields["text"]
        return message

    def _ok(self, result: Any) -> Response:
        return Response.json_body(200, {"ok": True, "result": result})

    def error_response(self, kind: str, request: Request) -> Response:
        if kind == "rate_limit":
            return _error(429, "Too Many Requests: retry after 35", {"retry_after": 35})
        if kind == "auth":
            return _error(401, "Unauthorized")
        if kind == "bad_request":
            is_photo = request.path.lower().endswith("/sendphoto")
            return _error(400, "Bad Request: message caption is too long" if is_photo else "Bad Request: message is too long")
        return _error(500, "Internal Server Error")


CONTRACT = ContractCase(
    platform="telegram",
    make_fake=TelegramFake,
    options=lambda fake: {"api_base": fake.url, "bot_token": "${TELEGRAM_BOT_TOKEN}", "chat": "@examplechannel"},
    env={"TELEGRAM_BOT_TOKEN": CANARY},
    posts=lambda fake: len(fake.messages),  # type: ignore[attr-defined]
)
