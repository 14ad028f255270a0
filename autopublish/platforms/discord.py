"""Discord: a channel webhook posts the article as a message with an embed.

Call: ``POST {webhook_url}?wait=true`` with JSON ``{content, embeds, allowed_mentions}``;
``wait=true`` makes Discord answer with the saved message (its id and channel) instead of
204. https://discord.com/developers/docs/resources/webhook#execute-webhook

Length: ``content`` holds at most 2000 characters (code points, Python's ``len``). The
embed (title linking to the article, summary, image by URL) is the link card, so the
link need not be in the text; when it is, it is wrapped in ``<...>`` (Discord's way to
stop a second, automatic preview of the same link) if that still fits.

The webhook URL carries the webhook's token: it is a secret, and no URL ever reaches an
error message or a log line. Mentions are never parsed (``allowed_mentions.parse = []``):
an article saying "@everyone" pings nobody.

No read-back: a webhook can fetch a message only by the id the POST returned, and an
uncertain delivery has no id; listing a channel needs a bot token. So an uncertain
delivery waits for an editor. No idempotency key (Execute Webhook has no nonce).
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar, NoReturn

import requests
from pydantic import ConfigDict, field_validator

from autopublish.errors import AuthError, PermanentError, PublishError, RateLimitedError, UncertainError
from autopublish.models import Health, HealthLevel, Post, PostLimits, Receipt
from autopublish.platforms.base import PlatformOptions, Publisher, PublisherEnv, json_object, parse_retry_after
from autopublish.secrets import Secret, SecretRef

log = logging.getLogger(__name__)

CONTENT_LIMIT = 2000
TITLE_LIMIT = 256
DESCRIPTION_LIMIT = 4096
DEFAULT_RETRY_AFTER = 5.0


class DiscordOptions(PlatformOptions):
    """``[channels.NAME]`` keys for ``platform = "discord"``."""

    model_config = ConfigDict(hide_input_in_errors=True)

    webhook_url: SecretRef
    username: str | None = None  # overrides the webhook's name on each message
    avatar_url: str | None = None
    embed: bool = True  # the article as a card: title with link, summary, image

    @field_validator("webhook_url")
    @classmethod
    def _check_url(cls, value: Secret) -> Secret:
        if not value.reveal().strip().startswith(("https://", "http://")):
            raise ValueError(
                "must be the webhook's full URL (https://discord.com/api/webhooks/<id>/<token>): in Discord open "
                "the channel's settings, Integrations > Webhooks, and use Copy Webhook URL"
            )
        return value

    @field_validator("username")
    @classmethod
    def _check_username(cls, value: str | None) -> str | None:
        if value is not None and not 1 <= len(value) <= 80:
            raise ValueError("must be 1 to 80 characters long")
        if value is not None and ("discord" in value.lower() or "clyde" in value.lower()):
            raise ValueError('Discord refuses webhook names containing "discord" or "clyde"')
        return value


class DiscordPublisher(Publisher[DiscordOptions]):
    name = "discord"
    label = "Discord"
    Options = DiscordOptions
    limits = PostLimits(max_length=CONTENT_LIMIT, images=True, link_card=True)
    idempotent: ClassVar[bool] = False  # Execute Webhook has no idempotency key or nonce
    can_read_back: ClassVar[bool] = False  # webhooks cannot list messages; an uncertain delivery has no id
    default_template = "{title}\n{link}"  # the embed carries the summary and the image
    rate_limit_wait: ClassVar[float] = DEFAULT_RETRY_AFTER  # a 429 with no retry_after, Retry-After or Reset-After

    def __init__(self, channel: str, options: DiscordOptions, env: PublisherEnv) -> None:
        super().__init__(channel, options, env)
        self._guild_id: str | None = None

    def current_limits(self) -> PostLimits:
        return PostLimits(max_length=CONTENT_LIMIT, images=True, link_card=self.options.embed)

    def count(self, text: str) -> int:
        """Discord's content limit is in characters (code points)."""
        return len(text)

    @property
    def _url(self) -> str:
        return self.options.webhook_url.reveal().strip().rstrip("/")

    # --- publish ----------------------------------------------------------------
    def publish(self, post: Post) -> Receipt:
        """Execute the webhook once with ``wait=true``. Raises a PublishError subclass."""
        payload = self._payload(post)
        self._learn_guild()
        log.debug("Discord: executing the webhook", extra={"channel": self.channel, "platform": self.name, "article_key": post.article.key})
        response = self.request("POST", self._url, writes=True, what="Discord", params={"wait": "true"}, json=payload)
        if response.status_code == 204:  # only without wait=true; posted, but Discord gave no id
            return Receipt(remote_id=post.key)
        if response.status_code >= 300:
            self._raise_for(response, writes=True)
        message = self.read_json(response, writes=True, what="Discord")
        if not isinstance(message, dict) or not message.get("id"):
            raise self.error(UncertainError, "Discord answered in an unexpected way; the post may have been published", code=response.status_code)
        message_id, channel_id = str(message["id"]), str(message.get("channel_id") or "")
        guild = str(message.get("guild_id") or self._guild_id or "")
        url = f"https://discord.com/channels/{guild}/{channel_id}/{message_id}" if guild and channel_id else None
        return Receipt(remote_id=message_id, url=url)

    def _payload(self, post: Post) -> dict[str, Any]:
        content = post.text.strip()
        length = self.count(content)
        if length > CONTENT_LIMIT:
            raise self.error(
                PermanentError,
                f"The post is {length} characters long and Discord allows {CONTENT_LIMIT}; shorten the channel's template",
                code="too_long",
            )
        embed = self._embed(post) if self.options.embed else None
        link = post.link or post.article.link
        if embed and link and "url" in embed and link in content:
            wrapped = content.replace(link, f"<{link}>")
            if self.count(wrapped) <= CONTENT_LIMIT:
                content = wrapped  # the embed is the preview; <link> stops Discord adding another
        payload: dict[str, Any] = {"allowed_mentions": {"parse": []}}
        if content:
            payload["content"] = content
        if embed:
            payload["embeds"] = [embed]
        if not content and not embed:
            raise self.error(PermanentError, "The post has no text and no link card; Discord refuses empty messages", code="empty")
        if self.options.username:
            payload["username"] = self.options.username
        if self.options.avatar_url:
            payload["avatar_url"] = self.options.avatar_url
        return payload

    def _embed(self, post: Post) -> dict[str, Any] | None:
        """The article card: title (linking to it), summary, image, time; None if nothing to show."""
        link = post.link or post.article.link
        if not link and not post.image:
            return None
        embed: dict[str, Any] = {}
        title = _shorten(post.title or post.article.title, TITLE_LIMIT)
        if title:
            embed["title"] = title
        if link:
            embed["url"] = link
        description = _shorten(post.description or post.article.summary, DESCRIPTION_LIMIT)
        if description:
            embed["description"] = description
        if post.image:
            embed["image"] = {"url": post.image}
        if post.article.published:
            embed["timestamp"] = post.article.published.isoformat()
        return embed

    def _learn_guild(self) -> None:
        """Best effort, once: the server id for message links (GET the webhook; never fails publish)."""
        if self._guild_id is not None:
            return
        try:
            hook = self._get_webhook()
        except PublishError:
            return
        self._guild_id = str(hook.get("guild_id") or "")

    def _get_webhook(self) -> dict[str, Any]:
        response = self.request("GET", self._url, writes=False, what="Discord")
        if response.status_code >= 300:
            self._raise_for(response, writes=False)
        hook = self.read_json(response, writes=False, what="Discord")
        return hook if isinstance(hook, dict) else {}

    # --- check ------------------------------------------------------------------
    def check(self) -> Health:
        """GET the webhook: it exists, and which channel it posts to."""
        hook = self._get_webhook()
        self._guild_id = str(hook.get("guild_id") or "")
        name = hook.get("name") or "(unnamed)"
        return Health(
            HealthLevel.OK,
            f"Posting through the webhook \u201c{name}\u201d to channel {hook.get('channel_id', '?')}",
            (f"server {hook.get('guild_id', '?')}",),
        )

    # --- errors -------------------------------------------------------------------
    def _raise_for(self, response: requests.Response, *, writes: bool) -> NoReturn:
        raise self.classify(response, writes=writes, what="Discord")

    def refine(self, response: requests.Response, *, writes: bool, what: str, detail: str) -> PublishError | None:
        """Discord's own codes: deleted webhooks (10015, 50027), body-level retry_after, form errors."""
        status = response.status_code
        body = json_object(response)
        code = body.get("code")
        text = str(body.get("message") or f"HTTP {status}")
        if status == 429:
            return self._rate_limited(response, body)
        if status in (401, 404) or code in (10015, 50027):
            return self.error(
                AuthError,
                "Discord says the webhook was deleted or its URL is wrong; create a new webhook in the channel's "
                f"settings (Integrations > Webhooks), put its URL in .env as {self._url_name()} and run: "
                f"autopublish resume {self.channel}",
                code=code or status,
                detail=text,
            )
        if status == 403:
            return self.error(
                AuthError,
                f"Discord refused the webhook permission to post ({text}); check the channel's permissions for "
                f"the webhook and run: autopublish resume {self.channel}",
                code=code or status,
                detail=text,
            )
        if status >= 500 or status == 408:
            return None
        detail = _form_errors(body.get("errors"))
        return self.error(
            PermanentError,
            f"Discord refused the post: {text}{f' ({detail})' if detail else ''}",
            code=code or status,
            detail=detail or text,
        )

    def _rate_limited(self, response: requests.Response, body: dict[str, Any]) -> RateLimitedError:
        """Discord's wait: the body's float ``retry_after``, else Retry-After, else X-RateLimit-Reset-After."""
        value = body.get("retry_after")
        seconds = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
        if seconds is None:
            seconds = parse_retry_after(response.headers.get("Retry-After"), self.env.now())
        if seconds is None:
            seconds = parse_retry_after(response.headers.get("X-RateLimit-Reset-After"), self.env.now())
        scope = "a global rate limit" if body.get("global") else "this webhook's rate limit"
        return self.rate_limited(response, what="Discord", wait=seconds, code=429,
                                 detail=f"{scope}: {body.get('message') or 'HTTP 429'}")

    def _url_name(self) -> str:
        return self.options.webhook_url.env_name or "DISCORD_WEBHOOK_URL"

    # --- corrections and takedowns ----------------------------------------------------------
    can_edit: ClassVar[bool] = True
    can_delete: ClassVar[bool] = True

    def _message_url(self, receipt: Receipt, verb: str) -> str:
        if not receipt.remote_id.isdigit():  # posted without wait=true: Discord gave no message id
            link = f": {receipt.url}" if receipt.url else ""
            raise self.error(PermanentError, f"Discord gave no id for this message, so autopublish cannot {verb} it; do it by hand{link}",
                             code="no_message_id")
        return f"{self._url}/messages/{receipt.remote_id}"

    def edit(self, receipt: Receipt, post: Post) -> Receipt:
        """PATCH {webhook_url}/messages/{id} with the new content and embed (name and avatar cannot change)."""
        payload = self._payload(post)
        payload.pop("username", None)
        payload.pop("avatar_url", None)
        response = self.request("PATCH", self._message_url(receipt, "update"), writes=True, what="Discord", json=payload)
        if response.status_code == 404 and _error_code(response) == UNKNOWN_MESSAGE:
            raise self.error(PermanentError, "The message is no longer in the Discord channel, so it cannot be updated", code=UNKNOWN_MESSAGE)
        if response.status_code >= 300:
            self._raise_for(response, writes=True)
        return receipt

    def delete(self, receipt: Receipt) -> None:
        """DELETE {webhook_url}/messages/{id}; Unknown Message (10008) means already gone."""
        response = self.request("DELETE", self._message_url(receipt, "delete"), writes=True, what="Discord")
        if response.status_code < 300 or (response.status_code == 404 and _error_code(response) == UNKNOWN_MESSAGE):
            return
        self._raise_for(response, writes=True)


UNKNOWN_MESSAGE = 10008  # discord.com/developers/docs/topics/opcodes-and-status-codes#json


def _error_code(response: requests.Response) -> object:
    return json_object(response).get("code")


def _shorten(text: str, limit: int) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "\u2026"


def _form_errors(errors: Any, path: str = "") -> str:
    """Discord's nested ``errors`` object as "embeds.0.title: message; ..."."""
    if not isinstance(errors, dict):
        return ""
    found: list[str] = []
    for key, value in errors.items():
        if key == "_errors" and isinstance(value, list):
            found.extend(f"{path or 'body'}: {item.get('message', '')}" for item in value if isinstance(item, dict))
        elif isinstance(value, dict):
            sub = _form_errors(value, f"{path}.{key}" if path else str(key))
            if sub:
                found.append(sub)
    return "; ".join(found)
