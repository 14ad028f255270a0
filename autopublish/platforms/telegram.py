"""Telegram: a bot posts to a channel (or group) through the Bot API.

Calls: ``POST {api_base}/bot<token>/sendMessage`` (text with a link preview) or
``sendPhoto`` (the article image by URL, the text as its caption), JSON bodies, HTML
parse mode. https://core.telegram.org/bots/api

Length: Telegram counts text after entity parsing, and its entity offsets are UTF-16
code units, so ``count`` is the UTF-16 length of the plain text (we only escape it, so
the parsed text is exactly ``post.text``). Limits are 4096 for a message and 1024 for
a photo caption. The channel is fitted to 4096 (``photo = "auto"``, the default): a
post whose text fits 1024 goes out as a photo with a caption, a longer one as a text
message whose link preview shows the article's own card (usually the same image).
``photo = "always"`` fits every post to 1024 so the image is always sent;
``photo = "never"`` always sends text with a link preview.

The bot token is part of every URL path: no URL ever reaches an error message or a
log line (``Publisher.request`` raises our own messages, ``from None``).

No read-back: a bot cannot read a channel's history, so an uncertain delivery waits
for an editor. No idempotency key either.
"""

from __future__ import annotations

import html
import logging
import re
from typing import Any, ClassVar, Literal

import requests
from pydantic import ConfigDict, field_validator

from autopublish.errors import AuthError, PermanentError, PublishError, UncertainError
from autopublish.models import Health, HealthLevel, Post, PostLimits, Receipt
from autopublish.platforms.base import BaseUrl, PlatformOptions, Publisher, PublisherEnv, count_utf16, json_object
from autopublish.secrets import SecretRef

log = logging.getLogger(__name__)

MESSAGE_LIMIT = 4096  # sendMessage text, after entity parsing
CAPTION_LIMIT = 1024  # sendPhoto caption, after entity parsing
DEFAULT_RETRY_AFTER = 30.0

_USERNAME = re.compile(r"^@[A-Za-z][A-Za-z0-9_]{3,31}$")
_NUMERIC = re.compile(r"^-?\d+$")

# 400 descriptions that mean "this photo cannot be used" (the text itself would go). Telegram
# fetches a photo given by URL itself (Bot API, "Sending files": at most 5 MB by URL); when it
# cannot, it answers "can't upload file by URL", "wrong file identifier/HTTP URL specified" or
# "failed to get HTTP URL content" (../shared/reference/platform-apis.md §14): post the text.
_PHOTO_PROBLEMS = (
    "wrong file identifier",
    "http url",
    "upload file by url",
    "web page content",
    "image_process_failed",
    "photo_invalid",
    "wrong remote file",
    "file is too big",
    "send photos",
)
# 400 descriptions that mean "the bot may not post here": pause the channel.
_RIGHTS_PROBLEMS = ("not enough rights", "need administrator rights", "chat_write_forbidden", "have no rights")


class TelegramOptions(PlatformOptions):
    """``[channels.NAME]`` keys for ``platform = "telegram"``."""

    model_config = ConfigDict(hide_input_in_errors=True)  # a token pasted into the config stays out of errors

    api_base: BaseUrl = "https://api.telegram.org"
    bot_token: SecretRef
    chat: str
    photo: Literal["auto", "always", "never"] = "auto"
    link_preview: bool = True
    disable_notification: bool = False

    @field_validator("chat", mode="before")
    @classmethod
    def _check_chat(cls, value: object) -> str:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise ValueError('must be the channel\'s public @username (like "@examplechannel") or its numeric id')
        value = value.strip()
        if _NUMERIC.match(value) or _USERNAME.match(value):
            return value
        if re.match(r"^[A-Za-z][A-Za-z0-9_]{3,31}$", value):
            raise ValueError(f'a channel username starts with @: write chat = "@{value}"')
        raise ValueError(
            'must be the channel\'s public @username (like "@examplechannel") or its numeric id '
            '(like "-1001234567890", shown by forwarding a channel post to @userinfobot)'
        )


class _Migrated(Exception):
    """The group became a supergroup with a new id (Telegram's migrate_to_chat_id)."""

    def __init__(self, new_chat: str) -> None:
        super().__init__(new_chat)
        self.new_chat = new_chat


class _PhotoRefused(Exception):
    """sendPhoto was refused for a reason that is the photo's, not the text's."""


class TelegramPublisher(Publisher[TelegramOptions]):
    name = "telegram"
    label = "Telegram"
    Options = TelegramOptions
    limits = PostLimits(max_length=MESSAGE_LIMIT, images=True, link_card=False)
    idempotent: ClassVar[bool] = False  # the Bot API has no idempotency key
    can_read_back: ClassVar[bool] = False  # bots cannot read a channel's history
    default_template = "{title}\n\n{summary}\n\n{link}\n\n{hashtags}"
    rate_limit_wait: ClassVar[float] = DEFAULT_RETRY_AFTER  # a 429 without retry_after or Retry-After

    def __init__(self, channel: str, options: TelegramOptions, env: PublisherEnv) -> None:
        super().__init__(channel, options, env)
        self.chat = options.chat  # may change when Telegram says the group migrated

    # --- length -----------------------------------------------------------------
    def current_limits(self) -> PostLimits:
        if self.options.photo == "always":
            return PostLimits(max_length=CAPTION_LIMIT, images=True, link_card=False)
        return self.limits

    def count(self, text: str) -> int:
        """UTF-16 code units: how Telegram measures text after entity parsing."""
        return count_utf16(text)

    # --- publish ----------------------------------------------------------------
    def publish(self, post: Post) -> Receipt:
        """Send one message (or photo with caption). Raises a PublishError subclass."""
        length = self.count(post.text)
        if length > MESSAGE_LIMIT:
            raise self.error(
                PermanentError,
                f"The post is {length} characters long and Telegram allows {MESSAGE_LIMIT}; shorten the channel's template",
                code="too_long",
            )
        if not post.text.strip():
            raise self.error(PermanentError, "The post has no text; Telegram refuses empty messages", code="empty")
        if post.image and self.options.photo != "never" and length <= CAPTION_LIMIT:
            try:
                return self._send_following_migration("sendPhoto", self._photo_payload(post))
            except _PhotoRefused as exc:
                log.warning(
                    "Telegram could not use the article image (%s); posting the text with a link preview instead",
                    exc,
                    extra={"channel": self.channel, "platform": self.name, "article_key": post.article.key},
                )
        return self._send_following_migration("sendMessage", self._message_payload(post))

    def _message_payload(self, post: Post) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "text": html.escape(post.text, quote=False),
            "parse_mode": "HTML",
            "disable_notification": self.options.disable_notification,
        }
        link = post.link or post.article.link
        if not self.options.link_preview:
            payload["link_preview_options"] = {"is_disabled": True}
        elif link:
            payload["link_preview_options"] = {"is_disabled": False, "url": link, "prefer_large_media": True}
        return payload

    def _photo_payload(self, post: Post) -> dict[str, Any]:
        return {
            "photo": post.image,
            "caption": html.escape(post.text, quote=False),
            "parse_mode": "HTML",
            "disable_notification": self.options.disable_notification,
        }

    def _send_following_migration(self, method: str, payload: dict[str, Any]) -> Receipt:
        """One send; if the group migrated (nothing was posted), the same send to the new id."""
        try:
            return self._receipt(self._call(method, {"chat_id": self._chat_id(), **payload}, writes=True))
        except _Migrated as moved:
            self._follow(moved)
        try:
            return self._receipt(self._call(method, {"chat_id": self._chat_id(), **payload}, writes=True))
        except _Migrated:
            raise self.error(
                PermanentError,
                "Telegram keeps saying the group moved to a new id; set `chat` to the group's current id",
                code="migrated",
            ) from None

    def _follow(self, moved: _Migrated) -> None:
        log.warning(
            "Telegram says the group %s became a supergroup with id %s; posting there now. "
            'Update the config: chat = "%s" in [channels.%s]',
            self.chat,
            moved.new_chat,
            moved.new_chat,
            self.channel,
            extra={"channel": self.channel, "platform": self.name},
        )
        self.chat = moved.new_chat

    def _chat_id(self) -> int | str:
        return int(self.chat) if _NUMERIC.match(self.chat) else self.chat

    def _receipt(self, result: Any) -> Receipt:
        if not isinstance(result, dict) or "message_id" not in result:
            raise self.error(
                UncertainError,
                "Telegram answered in an unexpected way; the post may have been published",
                code="no_message_id",
            )
        message_id = str(result["message_id"])
        chat: dict[str, Any] = result["chat"] if isinstance(result.get("chat"), dict) else {}
        username = chat.get("username")
        chat_id = str(chat.get("id", ""))
        url = None
        if username:
            url = f"https://t.me/{username}/{message_id}"
        elif chat_id.startswith("-100"):
            url = f"https://t.me/c/{chat_id[4:]}/{message_id}"  # private channel/supergroup link
        return Receipt(remote_id=message_id, url=url)

    # --- check ------------------------------------------------------------------
    def check(self) -> Health:
        """getMe, getChat and getChatMember: the token works and the bot may post in the chat."""
        me = self._call("getMe", {}, writes=False)
        bot = f"@{me.get('username', '?')}"
        try:
            chat = self._call("getChat", {"chat_id": self._chat_id()}, writes=False)
        except _Migrated as moved:
            return Health(
                HealthLevel.WARNING,
                f'The group became a supergroup; set chat = "{moved.new_chat}" in [channels.{self.channel}]',
            )
        title = chat.get("title") or chat.get("username") or self.chat
        kind = chat.get("type", "")
        details = (f"chat id {chat.get('id')}, type {kind}",)
        try:
            member = self._call("getChatMember", {"chat_id": self._chat_id(), "user_id": me.get("id")}, writes=False)
        except _Migrated:
            member = {}
        problem = _posting_problem(member, kind)
        if problem:
            return Health(HealthLevel.ERROR, f"{bot} {problem} in {title}; fix that in the chat's admin settings", details)
        return Health(HealthLevel.OK, f"Posting as {bot} to {title}", details)

    # --- the one HTTP call ---------------------------------------------------------
    def _call(self, method: str, payload: dict[str, Any], *, writes: bool) -> Any:
        """POST one Bot API method; the ``result`` on success, else a mapped error.

        Raises _Migrated (nothing applied) and, for sendPhoto, _PhotoRefused.
        """
        url = f"{self.options.api_base}/bot{self.options.bot_token.reveal()}/{method}"
        log.debug("Telegram %s to %s", method, self.chat, extra={"channel": self.channel, "platform": self.name})
        response = self.request("POST", url, writes=writes, what="Telegram", json=payload)
        body = self.read_json(response, writes=writes, what="Telegram")
        if not isinstance(body, dict):
            body = {}
        if response.status_code < 300 and body.get("ok") is True:
            return body.get("result")
        if response.status_code < 300 and "ok" not in body and writes:
            raise self.error(
                UncertainError,
                "Telegram answered in an unexpected way; the post may have been published",
                code=response.status_code,
            )
        code, description, params = _envelope(response.status_code, body)
        if params.get("migrate_to_chat_id") is not None:
            raise _Migrated(str(params["migrate_to_chat_id"]))
        wait = params.get("retry_after")
        if method == "sendPhoto" and code == 400 and wait is None and any(p in description.lower() for p in _PHOTO_PROBLEMS):
            raise _PhotoRefused(description)
        raise self.classify(
            response,
            writes=writes,
            what="Telegram",
            detail=description,
            status=429 if wait is not None else code,  # a retry_after parameter is a rate limit whatever the code
            retry_after=float(wait) if isinstance(wait, (int, float)) and not isinstance(wait, bool) else None,
        )

    def refine(self, response: requests.Response, *, writes: bool, what: str, detail: str) -> PublishError | None:
        """Telegram's own answers: a bad token (401, or 404 for the token's path), missing rights, an unknown chat."""
        code, description, params = _envelope(response.status_code, json_object(response))
        lowered = description.lower()
        if params.get("retry_after") is not None:
            return None  # a rate limit, whatever the code
        if code in (401, 404):
            return self.error(
                AuthError,
                f"Telegram says the bot token is not valid (revoked or mistyped); get the token from @BotFather, "
                f"put it in .env as {self._token_name()} and run: autopublish resume {self.channel}",
                code=code,
                detail=description,
            )
        if code == 403 or (code == 400 and any(p in lowered for p in _RIGHTS_PROBLEMS)):
            return self.error(
                AuthError,
                f"Telegram says the bot may not post to {self.chat} ({description}); add the bot to the chat as an "
                f"administrator allowed to post messages and run: autopublish resume {self.channel}",
                code=code,
                detail=description,
            )
        if code == 400 and "chat not found" in lowered:
            return self.error(
                AuthError,
                f"Telegram cannot find the chat {self.chat}; check `chat` in [channels.{self.channel}] (a public "
                f"@username or the numeric id), make sure the bot is a member, and run: autopublish resume {self.channel}",
                code=code,
                detail=description,
            )
        return None

    def refusal(self, response: requests.Response, *, what: str, status: int, detail: str) -> str:
        return f"Telegram refused the post: {detail}"

    def _token_name(self) -> str:
        return self.options.bot_token.env_name or "TELEGRAM_BOT_TOKEN"


    # --- corrections and takedowns ----------------------------------------------------------
    can_edit: ClassVar[bool] = True
    can_delete: ClassVar[bool] = True

    def edit(self, receipt: Receipt, post: Post) -> Receipt:
        """editMessageText, or editMessageCaption for a photo post (the Bot API tells which by refusing).

        "message is not modified" means the text is already the new one: done.
        """
        ids = {"chat_id": self._chat_id(), "message_id": int(receipt.remote_id)}
        try:
            payload = self._message_payload(post)
            payload.pop("disable_notification", None)
            self._call("editMessageText", {**ids, **payload}, writes=True)
        except PermanentError as exc:
            detail = exc.detail.lower()
            if "not modified" in detail:
                return receipt
            if "no text in the message" not in detail:
                raise self._edit_problem(exc) from None
            try:
                self._call("editMessageCaption", {**ids, "caption": html.escape(post.text, quote=False), "parse_mode": "HTML"}, writes=True)
            except PermanentError as caption_exc:
                if "not modified" in caption_exc.detail.lower():
                    return receipt
                raise self._edit_problem(caption_exc) from None
        return receipt

    def delete(self, receipt: Receipt) -> None:
        """deleteMessage; "message to delete not found" means already gone."""
        try:
            self._call("deleteMessage", {"chat_id": self._chat_id(), "message_id": int(receipt.remote_id)}, writes=True)
        except PermanentError as exc:
            detail = exc.detail.lower()
            if isinstance(exc, AuthError):
                raise
            if "not found" in detail and "chat not found" not in detail:
                return
            if "can't be deleted" in detail:
                raise self.error(PermanentError, f"Telegram will not let the bot delete this message ({exc.detail}); remove it by hand"
                                 + (f": {receipt.url}" if receipt.url else ""), code=exc.code, detail=exc.detail) from None
            raise

    def _edit_problem(self, exc: PermanentError) -> PublishError:
        if isinstance(exc, AuthError):
            return exc
        if "not found" in exc.detail.lower() and "chat not found" not in exc.detail.lower():
            return self.error(PermanentError, "The message is no longer in the Telegram chat, so it cannot be updated", code=exc.code, detail=exc.detail)
        return self.error(PermanentError, f"Telegram refused the update: {exc.detail}", code=exc.code, detail=exc.detail)


def _envelope(status: int, body: dict[str, Any]) -> tuple[int, str, dict[str, Any]]:
    """(error_code, description, parameters) of a Bot API ``ok: false`` answer; the HTTP status when the body has no code."""
    code = body.get("error_code")
    params = body.get("parameters")
    return (
        code if isinstance(code, int) and not isinstance(code, bool) else status,
        str(body.get("description") or f"HTTP {status}"),
        params if isinstance(params, dict) else {},
    )


def _posting_problem(member: Any, chat_type: str) -> str:
    """Why the bot cannot post, from a ChatMember object; "" when it can."""
    if not isinstance(member, dict) or not member:
        return ""
    status = member.get("status")
    if status == "creator":
        return ""
    if status in ("left", "kicked"):
        return "is not a member"
    if chat_type == "channel":
        if status != "administrator":
            return "is not an administrator"
        if member.get("can_post_messages") is False:
            return "is an administrator without the right to post messages"
        return ""
    if status == "restricted" and member.get("can_send_messages") is False:
        return "is not allowed to send messages"
    return ""
