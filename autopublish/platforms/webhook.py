"""Generic webhook: POST each post as signed JSON to a URL the site owner runs.

Body (UTF-8 JSON, compact)::

    {"type": "article.published", "id": <delivery key>, "channel": ..., "text": ...,
     "link": ..., "image": ..., "alt_text": ...,
     "article": {"title", "link", "summary", "content", "author", "categories", "tags",
                 "published" (ISO 8601 or null), "image", "feed", "feed_title"}}

Headers, so a receiver can check who sent it and drop repeats:

- ``X-Autopublish-Delivery``: the delivery key, the same on every attempt for one post.
- ``X-Autopublish-Timestamp``: Unix seconds when this attempt was sent.
- ``X-Autopublish-Signature: sha256=<hex HMAC-SHA256(secret, exact body bytes)>``
  (the GitHub style; sent only when ``secret`` is set).
- Standard Webhooks (https://www.standardwebhooks.com/): ``webhook-id`` (= the delivery
  key), ``webhook-timestamp``, ``webhook-signature: v1,<base64 HMAC-SHA256(key,
  "<id>.<timestamp>.<body>")>``, where the key is the base64-decoded part of a
  ``whsec_...`` secret, else the secret's UTF-8 bytes. With a ``whsec_`` secret the
  Standard Webhooks libraries verify it as is.

Outcomes: any 2xx is posted (a JSON answer with ``id``/``url`` becomes the receipt);
429, and 503 with Retry-After, are rate limits; 408 is transient; 401/403 pause the
channel; other 4xx are permanent; other 5xx, timeouts and dropped connections are
uncertain. There is no read-back: a receiver that drops repeated
``X-Autopublish-Delivery`` ids makes re-sending safe, but autopublish cannot know that, so
an uncertain delivery waits for an editor.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
from collections.abc import Mapping
from typing import ClassVar
from urllib.parse import urlsplit

import requests
from pydantic import ConfigDict, Field, field_validator

from autopublish.errors import PermanentError, PublishError
from autopublish.models import Health, HealthLevel, Post, PostLimits, Receipt
from autopublish.platforms.base import PlatformOptions, Publisher, PublisherEnv, parse_retry_after
from autopublish.secrets import Secret, SecretRef

log = logging.getLogger(__name__)

DEFAULT_MAX_LENGTH = 100_000
DEFAULT_RETRY_AFTER = 60.0


class WebhookOptions(PlatformOptions):
    """``[channels.NAME]`` keys for ``platform = "webhook"``."""

    model_config = ConfigDict(hide_input_in_errors=True)

    url: str
    secret: SecretRef | None = None  # without it, requests are not signed
    max_length: int = Field(default=DEFAULT_MAX_LENGTH, ge=1)

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        value = value.strip()
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError('must be an http(s) address, like "https://example.org/hooks/articles"')
        return value

    @field_validator("secret")
    @classmethod
    def _check_secret(cls, value: Secret | None) -> Secret | None:
        if value is None:
            return None
        raw = value.reveal()
        if raw.startswith("whsec_"):
            try:
                base64.b64decode(raw[6:], validate=True)
            except (binascii.Error, ValueError):
                raise ValueError("a secret starting with whsec_ must continue with base64 (Standard Webhooks format)") from None
        elif len(raw) < 16:
            raise ValueError("is too short to sign with; use at least 16 random characters (for example: openssl rand -hex 32)")
        return value


def signature_headers(secret: str, delivery: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The signature headers for ``body``; receivers recompute them with the same secret."""
    plain = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    key = base64.b64decode(secret[6:]) if secret.startswith("whsec_") else secret.encode("utf-8")
    signed = f"{delivery}.{timestamp}.".encode() + body
    standard = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return {"X-Autopublish-Signature": f"sha256={plain}", "webhook-signature": f"v1,{standard}"}


class WebhookPublisher(Publisher[WebhookOptions]):
    name = "webhook"
    label = "Webhook"
    Options = WebhookOptions
    limits = PostLimits(max_length=DEFAULT_MAX_LENGTH, images=True, link_card=False)
    idempotent: ClassVar[bool] = False  # only the receiver can drop repeats; we cannot know it does
    can_read_back: ClassVar[bool] = False
    default_template = "{title}\n\n{summary}\n\n{link}"
    rate_limit_wait: ClassVar[float] = DEFAULT_RETRY_AFTER  # a 429 without Retry-After

    def __init__(self, channel: str, options: WebhookOptions, env: PublisherEnv) -> None:
        super().__init__(channel, options, env)
        self.host = urlsplit(options.url).hostname or "the receiver"

    def current_limits(self) -> PostLimits:
        return PostLimits(max_length=self.options.max_length, images=True, link_card=False)

    def count(self, text: str) -> int:
        return len(text)

    # --- publish ----------------------------------------------------------------
    def publish(self, post: Post) -> Receipt:
        """POST the post once. Raises a PublishError subclass."""
        if self.count(post.text) > self.options.max_length:
            raise self.error(
                PermanentError,
                f"The post is longer than max_length ({self.options.max_length}) for this webhook; shorten the template or raise max_length",
                code="too_long",
            )
        body = self.body(post)
        headers = self.headers(post.key, body)
        log.debug("Webhook: posting to %s", self.host, extra={"channel": self.channel, "platform": self.name, "article_key": post.article.key})
        response = self.request("POST", self.options.url, writes=True, what=f"The webhook receiver at {self.host}", data=body, headers=headers)
        if 200 <= response.status_code < 300:
            return self._receipt(response, post)
        raise self._error_for(response)

    def body(self, post: Post) -> bytes:
        """The exact bytes sent (and signed)."""
        article = post.article
        data = {
            "type": "article.published",
            "id": post.key,
            "channel": post.channel,
            "text": post.text,
            "link": post.link,
            "image": post.image,
            "alt_text": post.alt_text,
            "article": {
                "title": article.title,
                "link": article.link,
                "summary": article.summary,
                "content": article.content,
                "author": article.author,
                "categories": list(article.categories),
                "tags": list(article.tags),
                "published": article.published.isoformat() if article.published else None,
                "image": article.image,
                "feed": article.feed,
                "feed_title": article.feed_title,
            },
        }
        return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    def headers(self, delivery: str, body: bytes) -> dict[str, str]:
        timestamp = int(self.env.now().timestamp())
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "X-Autopublish-Delivery": delivery,
            "X-Autopublish-Timestamp": str(timestamp),
            "webhook-id": delivery,
            "webhook-timestamp": str(timestamp),
        }
        if self.options.secret is not None:
            headers.update(signature_headers(self.options.secret.reveal(), delivery, timestamp, body))
        return headers

    def _receipt(self, response: requests.Response, post: Post) -> Receipt:
        """Any 2xx is posted; an answer like {"id": ..., "url": ...} names the result."""
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            return Receipt(remote_id=post.key)
        remote = data.get("id")
        url = data.get("url")
        return Receipt(
            remote_id=str(remote) if isinstance(remote, (str, int)) and str(remote) else post.key,
            url=url if isinstance(url, str) and url.startswith(("http://", "https://")) else None,
        )

    # --- check ------------------------------------------------------------------
    def check(self) -> Health:
        """HEAD the URL: the receiver is reachable (nothing is posted)."""
        response = self.request("HEAD", self.options.url, writes=False, what=f"The webhook receiver at {self.host}")
        signed = "signed" if self.options.secret is not None else "NOT signed (no secret set)"
        status = response.status_code
        if status in (404, 410) or status >= 500:
            return Health(HealthLevel.WARNING, f"The webhook receiver at {self.host} answers HTTP {status}; check `url`")
        return Health(HealthLevel.OK, f"The webhook receiver at {self.host} answers (HTTP {status} to HEAD); posts are {signed}")

    # --- errors -------------------------------------------------------------------
    def _error_for(self, response: requests.Response) -> Exception:
        return self.classify(response, writes=True, what=f"The webhook receiver at {self.host}", detail=_short_text(response))

    def auth_fix(self) -> str:
        name = self.options.secret.env_name if self.options.secret is not None and self.options.secret.env_name else "the secret"
        return f"make sure {name} in .env matches the receiver's secret, then run: autopublish resume {self.channel}"

    def refine(self, response: requests.Response, *, writes: bool, what: str, detail: str) -> PublishError | None:
        """A 503 with Retry-After is a rate limit (RFC 9110 section 10.2.3); a redirect is a config mistake."""
        status = response.status_code
        if status == 429 or (status == 503 and parse_retry_after(response.headers.get("Retry-After"), self.env.now()) is not None):
            return self.rate_limited(response, what=what, code=status, detail=detail)  # Retry-After, else a minute
        if 300 <= status < 400:
            return self.error(
                PermanentError,
                f"{what} redirected the post (HTTP {status}); set `url` in [channels.{self.channel}] to the final address",
                code=status,
            )
        if 400 <= status < 500 and status not in (401, 403, 408):  # the receiver's body stays in the detail column
            return self.error(PermanentError, f"{what} refused the post (HTTP {status})", code=status, detail=detail)
        return None


    # --- corrections and takedowns ----------------------------------------------------------
    # The receiver gets {"type": "article.updated", ...the publish body..., "post_id"} or
    # {"type": "article.deleted", "id", "channel", "post_id", "url"}, signed like a post. The
    # delivery id names the change (the same on every try of it), so a receiver dropping
    # repeats still sees each new correction. 404/410 on a delete: already gone.
    can_edit: ClassVar[bool] = True
    can_delete: ClassVar[bool] = True

    def edit(self, receipt: Receipt, post: Post) -> Receipt:
        data = json.loads(self.body(post))
        digest = hashlib.sha256(post.text.encode("utf-8")).hexdigest()[:12]
        data.update(type="article.updated", id=f"{post.key}:updated:{digest}", post_id=receipt.remote_id)
        self._send_change(data, what="update")
        return receipt

    def delete(self, receipt: Receipt) -> None:
        data = {"type": "article.deleted", "id": f"{receipt.remote_id}:deleted", "channel": self.channel,
                "post_id": receipt.remote_id, "url": receipt.url}
        self._send_change(data, what="delete", gone_ok=True)

    def _send_change(self, data: Mapping[str, object], *, what: str, gone_ok: bool = False) -> None:
        body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        response = self.request("POST", self.options.url, writes=True, what=f"The webhook receiver at {self.host}", data=body,
                                headers=self.headers(str(data["id"]), body))
        if 200 <= response.status_code < 300 or (gone_ok and response.status_code in (404, 410)):
            return
        log.debug("Webhook: the receiver refused the %s", what, extra={"channel": self.channel, "platform": self.name})
        raise self._error_for(response)


def _short_text(response: requests.Response) -> str:
    """The start of the receiver's answer, for the log's detail column."""
    try:
        return response.content[:200].decode("utf-8", "replace")
    except requests.RequestException:
        return ""
