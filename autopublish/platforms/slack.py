"""Slack: an incoming webhook posts the article to one channel as Block Kit blocks.

Call: ``POST {webhook_url}`` with JSON ``{text, blocks, unfurl_links, unfurl_media}``.
https://api.slack.com/messaging/webhooks. The answer is the plain-text body ``ok``, or a
plain-text error such as ``invalid_payload`` / ``no_service`` / ``channel_is_archived``.

Blocks: a section with the post text in mrkdwn (``&``, ``<``, ``>`` escaped, so feed text
can never become a link, mention or ``<!channel>``), then a context line linking the
article when the text does not already hold the link, then an image block with the
article image and its alt text. ``text`` carries the same words for notifications.

Length: a section's text may hold 3000 characters, counted by Slack on the escaped
string; ``count`` is the UTF-16 length of the escaped text (an "&" counts 5), a safe
reading of Slack's rule.

The webhook URL is a secret and never reaches an error message or a log line.
No message id comes back and a webhook cannot read the channel: no read-back and no
idempotency, so an uncertain delivery waits for an editor. The receipt's remote id is
the delivery key.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar, NoReturn

import requests
from pydantic import ConfigDict, field_validator, model_validator

from autopublish.errors import AuthError, PermanentError, PublishError, UncertainError
from autopublish.models import Health, HealthLevel, Post, PostLimits, Receipt
from autopublish.platforms.base import BaseUrl, PlatformOptions, Publisher, count_utf16
from autopublish.secrets import Secret, SecretRef

log = logging.getLogger(__name__)

SECTION_LIMIT = 3000  # a section block's text
ALT_TEXT_LIMIT = 2000
DEFAULT_RETRY_AFTER = 30.0

# Plain-text error bodies that mean "this webhook cannot post any more": pause the channel.
_AUTH_PROBLEMS: dict[str, str] = {
    "invalid_token": "the webhook's token is not valid",
    "no_service": "the webhook was removed or disabled",
    "no_service_id": "the webhook was removed or disabled",
    "no_team": "the workspace of the webhook no longer exists",
    "team_disabled": "the workspace of the webhook is disabled",
    "channel_not_found": "the webhook's channel no longer exists",
    "channel_is_archived": "the webhook's channel is archived",
    "action_prohibited": "a workspace admin has restricted posting to the channel",
    "posting_to_general_channel_denied": "only admins may post in the workspace's general channel",
}

# Web API errors (``{"ok": false, "error": ...}``) that no retry can fix: pause the channel.
_BOT_AUTH_PROBLEMS: dict[str, str] = {
    "invalid_auth": "the token is not valid",
    "not_authed": "no token was accepted",
    "token_revoked": "the token was revoked",
    "token_expired": "the token expired",
    "account_inactive": "the bot's account is deactivated",
    "missing_scope": "the token lacks the chat:write scope",
    "not_in_channel": "the bot is not a member of the channel (invite it)",
    "channel_not_found": "the channel_id names no channel the bot can see",
    "is_archived": "the channel is archived",
    "restricted_action": "a workspace admin has restricted posting to the channel",
}


def escape_mrkdwn(text: str) -> str:
    """Slack's three control characters, escaped (the only ones Slack decodes)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _link_target(url: str) -> str:
    """A URL safe inside ``<url|label>``: the delimiters percent-encoded, & escaped."""
    return url.replace("|", "%7C").replace("<", "%3C").replace(">", "%3E").replace("&", "&amp;")


class SlackOptions(PlatformOptions):
    """``[channels.NAME]`` keys for ``platform = "slack"``."""

    model_config = ConfigDict(hide_input_in_errors=True)

    webhook_url: SecretRef | None = None
    unfurl_links: bool = False  # our blocks already show the article; Slack's own card would repeat it
    images: bool = True  # an image block with the article image
    # Instead of a webhook: a bot token (xoxb-, scope chat:write) and the channel's id posts
    # with chat.postMessage, so posts can later be updated (chat.update) and deleted (chat.delete).
    bot_token: SecretRef | None = None
    channel_id: str | None = None
    api_base: BaseUrl = "https://slack.com"

    @model_validator(mode="after")
    def _one_way_in(self) -> SlackOptions:
        if (self.webhook_url is None) == (self.bot_token is None):
            raise ValueError("set either webhook_url (an incoming webhook) or bot_token with channel_id (a Slack app's bot)")
        if self.bot_token is not None and not (self.channel_id or "").strip():
            raise ValueError('bot_token needs channel_id, the id of the Slack channel to post in (like "C0123456789")')
        return self

    @field_validator("webhook_url")
    @classmethod
    def _check_url(cls, value: Secret | None) -> Secret | None:
        if value is not None and not value.reveal().strip().startswith(("https://", "http://")):
            raise ValueError(
                "must be the incoming webhook's full URL (https://hooks.slack.com/services/...), "
                "from your Slack app's Incoming Webhooks page"
            )
        return value


class SlackPublisher(Publisher[SlackOptions]):
    name = "slack"
    label = "Slack"
    Options = SlackOptions
    limits = PostLimits(max_length=SECTION_LIMIT, images=True, link_card=False)
    idempotent: ClassVar[bool] = False
    can_read_back: ClassVar[bool] = False  # a webhook returns no id and cannot read the channel
    default_template = "*{title}*\n\n{summary}\n\n{link}"

    def count(self, text: str) -> int:
        """UTF-16 length of the text as sent (after mrkdwn escaping)."""
        return count_utf16(escape_mrkdwn(text))

    @property
    def _url(self) -> str:
        return self.options.webhook_url.reveal().strip() if self.options.webhook_url is not None else ""

    # --- publish ----------------------------------------------------------------
    def publish(self, post: Post) -> Receipt:
        """POST once; if Slack refuses the blocks with an image (400 invalid_blocks: nothing was
        posted), once more without the image. With a bot token: chat.postMessage."""
        if self.options.bot_token is not None:
            return self._post_message(post)
        payload = self.payload(post, with_image=self.options.images)
        try:
            return self._send(payload, post)
        except PermanentError as exc:
            # Slack answers invalid_blocks when it cannot fetch an image_url.
            if isinstance(exc, AuthError) or exc.code != "invalid_blocks" or not _has_image(payload):
                raise
            log.warning(
                "Slack refused the message with the article image (%s); posting it without the image",
                exc.code,
                extra={"channel": self.channel, "platform": self.name, "article_key": post.article.key},
            )
        return self._send(self.payload(post, with_image=False), post)

    def payload(self, post: Post, *, with_image: bool) -> dict[str, Any]:
        """The JSON body: fallback text and blocks. Raises PermanentError when over the limit."""
        text = escape_mrkdwn(post.text.strip())
        length = self.count(post.text.strip())
        if length > SECTION_LIMIT:
            raise self.error(
                PermanentError,
                f"The post is {length} characters long once escaped and Slack allows {SECTION_LIMIT}; shorten the channel's template",
                code="too_long",
            )
        if not text:
            raise self.error(PermanentError, "The post has no text; Slack refuses empty messages", code="no_text")
        blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]
        link = post.link or post.article.link
        if link and link not in post.text:
            label = escape_mrkdwn((post.title or post.article.title or link).replace("|", "\u2223"))[:300]
            blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"<{_link_target(link)}|{label}>"}]})
        if with_image and post.image:
            alt = post.alt_text or post.article.image_alt or post.title or post.article.title or "Article image"
            blocks.append({"type": "image", "image_url": post.image, "alt_text": alt[:ALT_TEXT_LIMIT]})
        return {
            "text": text,
            "blocks": blocks,
            "unfurl_links": self.options.unfurl_links,
            "unfurl_media": self.options.unfurl_links,
        }

    def _send(self, payload: dict[str, Any], post: Post) -> Receipt:
        log.debug("Slack: posting to the webhook", extra={"channel": self.channel, "platform": self.name, "article_key": post.article.key})
        response = self.request("POST", self._url, writes=True, what="Slack", json=payload)
        body = _body(response)
        if response.status_code < 300:
            if body == "ok":
                return Receipt(remote_id=post.key)
            raise self.error(
                UncertainError,
                "Slack answered in an unexpected way; the post may have been published",
                code=response.status_code,
                detail=body[:100],
            )
        self._raise_for(response, body, writes=True)

    # --- check ------------------------------------------------------------------
    def check(self) -> Health:
        """POST an empty message, which Slack refuses without posting: a 400 proves the URL is live.

        Slack has no read call for incoming webhooks; a removed webhook answers 403/404/410.
        With a bot token: auth.test.
        """
        if self.options.bot_token is not None:
            self._api("auth.test", {}, writes=False)
            return Health(HealthLevel.OK, f"Slack accepts the bot token; posts go to channel {self.options.channel_id}, and can be updated and deleted")
        response = self.request("POST", self._url, writes=False, what="Slack", json={})
        body = _body(response)
        if response.status_code == 400:
            return Health(HealthLevel.OK, "Slack knows this webhook (checked with an empty message, which Slack refuses without posting)")
        if response.status_code < 300:
            return Health(HealthLevel.WARNING, "Slack accepted an empty message; the webhook URL may not be a Slack incoming webhook")
        self._raise_for(response, body, writes=False)

    # --- errors -------------------------------------------------------------------
    rate_limit_wait: ClassVar[float] = DEFAULT_RETRY_AFTER  # a 429 without Retry-After

    def _raise_for(self, response: requests.Response, body: str, *, writes: bool) -> NoReturn:
        raise self.classify(response, writes=writes, what="Slack", detail=body, code=body or response.status_code)

    def refine(self, response: requests.Response, *, writes: bool, what: str, detail: str) -> PublishError | None:
        """Slack's own answers: its plain-text error words, a removed webhook (404/410)."""
        status, body = response.status_code, detail
        if status == 429 or body == "ratelimited":  # the Web API's ok:false "ratelimited" too
            return self.rate_limited(response, what=what, code=429, detail=body[:100])  # Retry-After, else 30 s
        problem = _AUTH_PROBLEMS.get(body)
        if problem or status in (401, 403, 404, 410):
            problem = problem or f"the webhook was refused (HTTP {status})"
            return self.error(
                AuthError,
                f"Slack says {problem}; fix it in Slack (or create a new incoming webhook, put its URL in .env as "
                f"{self._url_name()}) and run: autopublish resume {self.channel}",
                code=body or status,
                detail=f"HTTP {status}",
            )
        if status >= 500 or status == 408:
            return None
        return self.error(PermanentError, f"Slack refused the post ({body or f'HTTP {status}'})", code=body or status)

    def _url_name(self) -> str:
        return (self.options.webhook_url.env_name if self.options.webhook_url is not None else None) or "SLACK_WEBHOOK_URL"

    # --- bot token: chat.postMessage / chat.update / chat.delete (api.slack.com/methods) -------------
    can_edit: ClassVar[bool] = True  # with a bot token only; see edits_with
    can_delete: ClassVar[bool] = True

    @classmethod
    def edits_with(cls, options: PlatformOptions) -> bool:
        return isinstance(options, SlackOptions) and options.bot_token is not None

    @classmethod
    def deletes_with(cls, options: PlatformOptions) -> bool:
        return isinstance(options, SlackOptions) and options.bot_token is not None

    def _post_message(self, post: Post) -> Receipt:
        payload = self.payload(post, with_image=self.options.images)
        try:
            answer = self._api("chat.postMessage", {"channel": self.options.channel_id, **payload}, writes=True)
        except PermanentError as exc:
            if isinstance(exc, AuthError) or exc.code != "invalid_blocks" or not _has_image(payload):
                raise
            log.warning("Slack refused the message with the article image (%s); posting it without the image", exc.code,
                        extra={"channel": self.channel, "platform": self.name, "article_key": post.article.key})
            answer = self._api("chat.postMessage", {"channel": self.options.channel_id, **self.payload(post, with_image=False)}, writes=True)
        ts, channel = answer.get("ts"), answer.get("channel") or self.options.channel_id
        if not isinstance(ts, str) or not ts:
            raise self.error(UncertainError, "Slack answered without the message's timestamp; the post may have been published", code="no_ts")
        return Receipt(remote_id=f"{channel}/{ts}")

    def _message_ref(self, receipt: Receipt, verb: str) -> dict[str, str]:
        channel, _, ts = receipt.remote_id.rpartition("/")
        if self.options.bot_token is None or not channel or not ts:
            raise self.error(PermanentError, f"This Slack message was posted through an incoming webhook, which cannot {verb} it; "
                             "do it by hand in Slack", code="webhook_message")
        return {"channel": channel, "ts": ts}

    def edit(self, receipt: Receipt, post: Post) -> Receipt:
        """chat.update with the new text and blocks (bot token; a message posted by the same bot)."""
        ref = self._message_ref(receipt, "update")
        payload = self.payload(post, with_image=self.options.images)
        payload.pop("unfurl_links", None)
        payload.pop("unfurl_media", None)
        try:
            self._api("chat.update", {**ref, **payload}, writes=True)
        except PermanentError as exc:
            if exc.code == "message_not_found":
                raise self.error(PermanentError, "The message is no longer in the Slack channel, so it cannot be updated", code=exc.code) from None
            raise
        return receipt

    def delete(self, receipt: Receipt) -> None:
        """chat.delete; message_not_found means already gone."""
        try:
            self._api("chat.delete", self._message_ref(receipt, "delete"), writes=True)
        except PermanentError as exc:
            if exc.code != "message_not_found" or isinstance(exc, AuthError):
                raise

    def _api(self, method: str, body: dict[str, Any], *, writes: bool) -> dict[str, Any]:
        """One Web API call; the answer when ``ok`` is true, else a mapped error (the token never shown)."""
        assert self.options.bot_token is not None
        response = self.request("POST", f"{self.options.api_base}/api/{method}", writes=writes, what="Slack", json=body,
                                headers={"Authorization": f"Bearer {self.options.bot_token.reveal()}"})
        if response.status_code == 429:
            self._raise_for(response, "ratelimited", writes=writes)
        if response.status_code >= 500:
            self._raise_for(response, "", writes=writes)
        answer = self.read_json(response, writes=writes, what="Slack")
        if not isinstance(answer, dict):
            answer = {}
        if answer.get("ok") is True:
            return answer
        error = str(answer.get("error") or f"HTTP {response.status_code}")
        if error in _BOT_AUTH_PROBLEMS:
            name = self.options.bot_token.env_name or "SLACK_BOT_TOKEN"
            raise self.error(AuthError, f"Slack refused the bot token: {_BOT_AUTH_PROBLEMS[error]}; fix it in Slack (a new token goes in "
                             f".env as {name}) and run: autopublish resume {self.channel}", code=error)
        if error == "ratelimited":
            self._raise_for(response, error, writes=writes)
        raise self.error(PermanentError, f"Slack refused the request ({error})", code=error)


def _body(response: requests.Response) -> str:
    """Slack's plain-text answer, trimmed; "" when it is not short text."""
    try:
        text = response.content.decode("utf-8").strip()
    except UnicodeDecodeError:
        return ""
    return text if len(text) <= 200 and "<" not in text else ""


def _has_image(payload: dict[str, Any]) -> bool:
    return any(block.get("type") == "image" for block in payload.get("blocks", []))
