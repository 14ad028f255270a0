"""Mastodon: one status per article on one account of one instance.

Calls (https://docs.joinmastodon.org/methods/):
    GET  /api/v2/instance                      the instance's own limits (cached per publisher)
    POST /api/v2/media                         the article image with its alt text
    GET  /api/v1/media/:id                     while the image is still processing (bounded)
    POST /api/v1/statuses                      the post, with ``Idempotency-Key: <post.key>``
    GET  /api/v1/apps/verify_credentials       check: the token works (no scope), its scopes on 4.3+
    GET  /api/v1/accounts/verify_credentials   the account, only where the token has read:accounts
    GET  /api/v1/accounts/lookup?acct=         the account by name: public, called without the token
    GET  /api/v1/accounts/:id/statuses         read-back: the account's recent statuses (read:statuses)

Permissions: posting needs ``write:statuses`` (and ``write:media`` for images); settling
a post in doubt needs ``read:statuses`` plus the account's id, which comes from an
earlier post's answer (remembered in the state directory), from the ``account`` key
(looked up publicly), or from ``verify_credentials`` where the token has ``read:accounts``.
A read-back refused for want of a scope is CannotCheckError: the channel keeps posting.

Idempotency: Mastodon remembers an ``Idempotency-Key`` per account for one hour and
answers a repeat with the status it already created, so a retry of the same post.key
within the hour cannot post twice. That is why a 5xx to the create call is a
TransientError here, not Uncertain. A read timeout or dropped connection stays
Uncertain, so the core reconciles by reading back (can_read_back) instead of relying on
the one-hour window; where it cannot read back, the core resends with the same key
while Mastodon still remembers it (``idempotency_window``).

The content warning counts toward the limit together with the text (Mastodon's
StatusLengthValidator), so ``current_limits`` leaves the text what the warning does not use.

Length: graphemes, every http(s) URL counting ``characters_reserved_per_url`` (23) and a
remote mention ``@user@domain`` counting only ``@user``, up to ``max_characters`` (500)
- both read from the instance once known. ``count_status()`` is the same rule as a
plain function, for ``autopublish count --platform mastodon`` without any network.

Images: Mastodon 4+ processes images synchronously (200). A 202 means "still
processing": publish asks ``GET /api/v1/media/:id`` at most ``MEDIA_POLLS`` times, back to
back and without sleeping; if the image is still not ready it posts without it (with a
warning) rather than wait or fail - a status referring to unprocessed media is refused
with 422.
"""

from __future__ import annotations

import hashlib
import html
import json
import logging
import os
import re
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

import requests
from pydantic import AliasChoices, Field, field_validator

from autopublish.errors import AuthError, CannotCheckError, PermanentError, PublishError, TransientError, UncertainError
from autopublish.models import Health, HealthLevel, Post, PostLimits, Receipt
from autopublish.platforms.base import (
    URL_PATTERN,
    BaseUrl,
    PlatformOptions,
    Publisher,
    count_graphemes,
    link_key,
    seconds_until_iso,
)
from autopublish.secrets import SecretRef

log = logging.getLogger(__name__)

DEFAULT_MAX_CHARACTERS = 500
DEFAULT_URL_LENGTH = 23
DEFAULT_RATE_LIMIT_WAIT = 300.0  # Mastodon's window is 5 minutes
MEDIA_POLLS = 3
READ_BACK_LIMIT = 40  # the API's maximum page size
MAX_IMAGE_BYTES = 16 * 1024 * 1024  # Mastodon's default image_size_limit

# A remote mention counts only its local part: "@user@example.social" counts as "@user".
_REMOTE_MENTION = re.compile(r"(?<![\w/])@(\w+)@[\w.-]+\w", re.UNICODE)
_HREF = re.compile(r"""href=["']([^"']+)["']""")


def count_status(
    text: str,
    *,
    url_length: int = DEFAULT_URL_LENGTH,
) -> int:
    """Mastodon's length of ``text``: graphemes, each URL ``url_length``, remote mentions local part only."""
    text = _REMOTE_MENTION.sub(lambda m: "@" + m.group(1), text)
    total, last = 0, 0
    for match in URL_PATTERN.finditer(text):
        total += count_graphemes(text[last : match.start()]) + url_length
        last = match.end()
    return total + count_graphemes(text[last:])


class MastodonOptions(PlatformOptions):
    """``[channels.NAME]`` keys for ``platform = "mastodon"``."""

    instance: BaseUrl = Field(description="The instance's address, e.g. https://mastodon.social")
    access_token: SecretRef
    visibility: Literal["public", "unlisted", "private", "direct"] = "public"
    language: str | None = None  # ISO 639 code; default: the article's language
    content_warning: str = Field(
        default="", validation_alias=AliasChoices("content_warning", "spoiler_text")
    )
    sensitive: bool = False
    # The account's name ("bot" or "@bot@mastodon.social"): lets autopublish find the account
    # to read back without the read:accounts scope. Optional: an earlier post also tells it.
    account: str | None = None

    @field_validator("language")
    @classmethod
    def _language_code(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        if not re.fullmatch(r"[A-Za-z]{2,3}", value):
            raise ValueError('must be an ISO 639 language code like "id" or "en"')
        return value.lower()

    @field_validator("content_warning")
    @classmethod
    def _short_warning(cls, value: str) -> str:
        if count_graphemes(value) > 100:
            raise ValueError("is too long; keep the content warning to a short phrase (under 100 characters)")
        return value


class MastodonPublisher(Publisher[MastodonOptions]):
    """Posts statuses to one Mastodon account. See the module docstring for the contract."""

    name = "mastodon"
    label = "Mastodon"
    Options = MastodonOptions
    limits = PostLimits(max_length=DEFAULT_MAX_CHARACTERS, url_length=DEFAULT_URL_LENGTH, images=True, link_card=False)
    idempotent: ClassVar[bool] = True  # Idempotency-Key (one hour, per account)
    can_read_back: ClassVar[bool] = True
    idempotency_window: ClassVar[float | None] = 3600.0  # methods/statuses.md: keys are kept for 1 hour
    default_template = "{title}\n\n{summary}\n\n{link}\n\n{hashtags}"
    rate_limit_wait: ClassVar[float] = DEFAULT_RATE_LIMIT_WAIT  # a 429 without X-RateLimit-Reset or Retry-After

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._limits: PostLimits | None = None
        self._account: dict[str, Any] | None = None


    @property
    def host(self) -> str:
        return urlsplit(self.options.instance).netloc

    # --- length ------------------------------------------------------------------
    def current_limits(self) -> PostLimits:
        """The instance's limits once fetched (by publish or check), else the default 500/23,
        less what the content warning uses: Mastodon counts the warning and the text together."""
        limits = self._limits or self.limits
        warning = self.options.content_warning
        if not warning:
            return limits
        used = count_status(warning, url_length=limits.url_length or DEFAULT_URL_LENGTH)
        return replace(limits, max_length=max(0, limits.max_length - used))

    def count(self, text: str) -> int:
        limits = self.current_limits()
        return count_status(text, url_length=limits.url_length or DEFAULT_URL_LENGTH)

    def load_limits(self) -> PostLimits:
        """Fetch and cache the instance's limits; on any failure keep the defaults (no error)."""
        if self._limits is not None:
            return self.current_limits()
        for path in ("/api/v2/instance", "/api/v1/instance"):
            try:
                response = self.request("GET", self.options.instance + path, writes=False, what=f"Mastodon instance {self.host}")
            except PublishError:
                return self.current_limits()
            if response.status_code == 404:
                continue  # Mastodon before 4.0 has only v1
            if response.status_code != 200:
                return self.current_limits()
            try:
                data = response.json()
            except ValueError:
                return self.current_limits()
            limits = _limits_from_instance(data)
            if limits is not None:
                self._limits = limits
                return self.current_limits()
        return self.current_limits()

    # --- publish -------------------------------------------------------------------
    def publish(self, post: Post) -> Receipt:
        """Post one status. Raises AuthError, RateLimitedError, PermanentError, TransientError
        or UncertainError (timeout/dropped connection after sending)."""
        limits = self.load_limits()
        length = self.count(post.text)
        if length > limits.max_length:
            # Fitted to the default before the instance's own (lower) limit was known;
            # a later attempt is fitted to the now-cached limit.
            left = " (what the content warning leaves of it)" if self.options.content_warning else ""
            raise self.error(
                TransientError,
                f"The post is {length} characters, over this Mastodon instance's limit of {limits.max_length}{left}; "
                "it will be shortened and sent again",
                code="too_long",
            )
        if not post.text.strip() and not post.image:
            raise self.error(PermanentError, "The post is empty; check the channel's template", code="empty")
        media_id = self._upload_image(post) if post.image else None
        data: list[tuple[str, str]] = [
            ("status", post.text),
            ("visibility", self.options.visibility),
        ]
        data.extend(self._status_fields(post))
        if media_id:
            data.append(("media_ids[]", media_id))
        response = self.request(
            "POST",
            self.options.instance + "/api/v1/statuses",
            writes=True,
            what=f"Mastodon ({self.host})",
            data=data,
            headers={**self._auth(), "Idempotency-Key": idempotency_key(post.key)},
        )
        if 200 <= response.status_code < 300:
            status = self.read_json(response, writes=True, what=f"Mastodon ({self.host})")
            if not isinstance(status, dict) or not status.get("id"):
                raise self.error(UncertainError, f"Mastodon ({self.host}) answered without a status id; the post may have been published")
            account = status.get("account")
            if isinstance(account, dict) and account.get("id"):
                self._remember_account(account)
            return Receipt(remote_id=str(status["id"]), url=status.get("url") or status.get("uri"))
        raise self._status_error(response, creating=True)

    def _upload_image(self, post: Post) -> str | None:
        """Upload post.image with its alt text; the media id, or None to post without it."""
        assert post.image
        image = self.fetch_image(post.image, origin=post.source_origin, max_bytes=MAX_IMAGE_BYTES)
        if image is None:
            return None
        response = self.request(
            "POST",
            self.options.instance + "/api/v2/media",
            writes=False,  # a media upload is not a post; an unattached upload is discarded
            what=f"Mastodon ({self.host}) media upload",
            files={"file": (image.name, image.data, image.content_type)},
            data={"description": post.alt_text[:1500]} if post.alt_text else {},
            headers=self._auth(),
        )
        if response.status_code in (401, 403, 429) or response.status_code >= 500:
            raise self._status_error(response, creating=False)
        if response.status_code not in (200, 202):
            log.warning("Mastodon refused the article image (HTTP %s); posting without it", response.status_code, extra={"channel": self.channel})
            return None
        media = self.read_json(response, writes=False, what=f"Mastodon ({self.host}) media upload")
        media_id = str(media.get("id", "")) if isinstance(media, dict) else ""
        if not media_id:
            return None
        if response.status_code == 200 and media.get("url"):
            return media_id
        for _ in range(MEDIA_POLLS):  # bounded, no sleeping: see the module docstring
            polled = self.request("GET", f"{self.options.instance}/api/v1/media/{media_id}", writes=False, what=f"Mastodon ({self.host})", headers=self._auth())
            if polled.status_code == 200:
                return media_id
            if polled.status_code != 206:
                break
        log.warning("Mastodon is still processing the article image; posting without it", extra={"channel": self.channel})
        return None

    # --- read-back ---------------------------------------------------------------------
    def find_existing(self, post: Post) -> Receipt | None:
        """The newest of the account's last 40 statuses that links to the article, else None.

        CannotCheckError when the token may not read the account back (see the module docstring).
        """
        account_id = self._account_id()
        response = self.request(
            "GET",
            f"{self.options.instance}/api/v1/accounts/{account_id}/statuses",
            writes=False,
            what=f"Mastodon ({self.host})",
            params={"limit": READ_BACK_LIMIT, "exclude_replies": "true", "exclude_reblogs": "true"},
            headers=self._auth(),  # with the token: statuses that are not public show too
        )
        if response.status_code == 403:
            raise self._cannot_check("read:statuses", response)
        if response.status_code != 200:
            raise self._status_error(response, creating=False)
        statuses = self.read_json(response, writes=False, what=f"Mastodon ({self.host})")
        wanted = {link_key(link) for link in (post.link, post.article.link) if link}
        for status in statuses if isinstance(statuses, list) else []:
            if isinstance(status, dict) and wanted & _links_of(status):
                return Receipt(remote_id=str(status["id"]), url=status.get("url") or status.get("uri"))
        return None

    # --- check --------------------------------------------------------------------------
    def check(self) -> Health:
        """Whether the token can post (``apps/verify_credentials``: any valid token) and settle doubts.

        A token without read:accounts is not broken: it posts; only the account's name may be unknown.
        """
        response = self.request("GET", self.options.instance + "/api/v1/apps/verify_credentials", writes=False,
                                what=f"Mastodon ({self.host})", headers=self._auth())
        if response.status_code != 200:
            error = self._status_error(response, creating=False)
            if isinstance(error, AuthError):
                raise error
            return Health(HealthLevel.ERROR, error.message)
        app = self.read_json(response, writes=False, what=f"Mastodon ({self.host})")
        scopes = {str(s) for s in app.get("scopes") or []} if isinstance(app, dict) else set()
        limits = self.load_limits()
        details: list[str] = []
        if scopes and not _grants(scopes, "write:statuses"):
            return Health(HealthLevel.ERROR, f"The Mastodon token on {self.host} may not post: it lacks write:statuses; "
                          "create a token with write:statuses, write:media and read:statuses", settles_doubts=False)
        if scopes and not _grants(scopes, "write:media"):
            details.append("The token lacks write:media: posts go out without their images")
        settles, missing, name = self._can_settle(scopes)
        who = f"@{name}" if name else "the token's account"
        if not settles:
            why = f"the token lacks {missing}" if missing.startswith("read:") else missing
            if missing == "read:accounts":
                why += ' (or set account = "yourname" in the channel, or let one post go out first)'
            details.append(f"Posts in doubt are resent with the same key for an hour; after that an editor must check them: {why}")
        return Health(
            HealthLevel.OK,
            f"Posting as {who} on instance {self.host} (limit {limits.max_length} characters)",
            details=tuple(details),
            settles_doubts=settles,
            missing_permission=missing if missing.startswith("read:") else "",
        )

    def _can_settle(self, scopes: set[str]) -> tuple[bool, str, str]:
        """(can read back, what is missing, the account's name) by trying the read-back's own calls."""
        try:
            account_id = self._account_id()
        except CannotCheckError as exc:
            return False, exc.missing_permission, ""
        except PublishError:
            return False, "the account could not be found", ""
        name = str((self._account or {}).get("acct") or (self._account or {}).get("username") or "")
        if scopes and not _grants(scopes, "read:statuses"):
            return False, "read:statuses", name
        response = self.request("GET", f"{self.options.instance}/api/v1/accounts/{account_id}/statuses", writes=False,
                                what=f"Mastodon ({self.host})", params={"limit": 1}, headers=self._auth())
        if response.status_code == 403:
            return False, "read:statuses", name
        return response.status_code == 200, "" if response.status_code == 200 else f"reading statuses answered HTTP {response.status_code}", name

    # --- helpers --------------------------------------------------------------------------
    def _auth(self) -> dict[str, str]:
        return {"Authorization": "Bearer " + self.options.access_token.reveal()}

    def _account_id(self) -> str:
        """The account's id: the ``account`` key (looked up), else remembered from a post, else read:accounts.

        The key wins over the memory: after a token for another account, a stale id would
        find nothing and the post would be sent again.
        """
        if self._account is not None:
            return str(self._account["id"])
        if self.options.account:
            return str(self._lookup(self.options.account)["id"])
        self._account = self._remembered_account()
        if self._account is not None:
            return str(self._account["id"])
        response = self.request("GET", self.options.instance + "/api/v1/accounts/verify_credentials", writes=False,
                                what=f"Mastodon ({self.host})", headers=self._auth())
        if response.status_code == 403:
            raise self._cannot_check("read:accounts", response, hint=' (or set account = "yourname" in the channel)')
        if response.status_code != 200:
            raise self._status_error(response, creating=False)
        account = self.read_json(response, writes=False, what=f"Mastodon ({self.host})")
        if not isinstance(account, dict) or not account.get("id"):
            raise self.error(TransientError, f"Mastodon ({self.host}) answered without the account; will try again later")
        self._remember_account(account)
        return str(account["id"])

    def _lookup(self, acct: str) -> dict[str, Any]:
        """``accounts/lookup`` without the token: public, while with one it would need read:accounts."""
        response = self.request("GET", self.options.instance + "/api/v1/accounts/lookup", writes=False,
                                what=f"Mastodon ({self.host})", params={"acct": acct.strip().lstrip("@")})
        if response.status_code == 404:
            raise self.error(PermanentError, f"Mastodon ({self.host}) knows no account {acct}; check the channel's account key", code=404)
        if response.status_code != 200:
            raise self._status_error(response, creating=False)
        account = self.read_json(response, writes=False, what=f"Mastodon ({self.host})")
        if not isinstance(account, dict) or not account.get("id"):
            raise self.error(TransientError, f"Mastodon ({self.host}) answered the account lookup without an id; will try again later")
        self._remember_account(account)
        return account

    def _memory_path(self) -> Path:
        return Path(self.env.state_dir) / f"mastodon-account-{re.sub(r'[^A-Za-z0-9_.-]', '_', self.channel)}.json"

    def _remembered_account(self) -> dict[str, Any] | None:
        """The account an earlier run learnt for this channel and instance (not a secret), or None."""
        try:
            data = json.loads(self._memory_path().read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if isinstance(data, dict) and data.get("instance") == self.options.instance and data.get("id"):
            return {"id": str(data["id"]), "acct": str(data.get("acct") or "")}
        return None

    def _remember_account(self, account: dict[str, Any]) -> None:
        known = self._account
        self._account = account
        if known is not None and str(known.get("id")) == str(account["id"]) and self._memory_path().exists():
            return  # nothing new: no write per post
        remembered = {"instance": self.options.instance, "id": str(account["id"]), "acct": str(account.get("acct") or account.get("username") or "")}
        path = self._memory_path()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_suffix(".tmp")
            temporary.write_text(json.dumps(remembered), encoding="utf-8")
            os.replace(temporary, path)
        except OSError as exc:
            log.warning("Mastodon: could not remember the account id (%s)", type(exc).__name__, extra={"channel": self.channel})

    def _cannot_check(self, scope: str, response: Any, *, hint: str = "") -> CannotCheckError:
        return CannotCheckError(
            f"Mastodon ({self.host}) would not let the token read the account back: it lacks {scope}{hint}; posting is not affected",
            missing_permission=scope, platform=self.name, channel=self.channel, code=response.status_code, detail=_error_text(response),
        )

    def _status_fields(self, post: Post) -> list[tuple[str, str]]:
        """The language, content warning and sensitive flag a new or edited status carries."""
        fields: list[tuple[str, str]] = []
        language = self.options.language or _language_of(post.article.language)
        if language:
            fields.append(("language", language))
        if self.options.content_warning:
            fields.append(("spoiler_text", self.options.content_warning))
        if self.options.sensitive:
            fields.append(("sensitive", "true"))
        return fields

    def _status_error(self, response: requests.Response, *, creating: bool) -> PublishError:
        """Map an HTTP error answer to the core's vocabulary (never echoing secrets).

        A 5xx is transient even after a create: the Idempotency-Key makes a retry of the same
        post safe (module docstring), so the shared classifier's default applies.
        """
        return self.classify(response, writes=creating, what=f"Mastodon ({self.host})", detail=_error_text(response))

    def auth_fix(self) -> str:
        """After a 401 (a revoked or mistyped token) or 403 (a missing scope, a disabled account)."""
        token_name = self.options.access_token.env_name or "MASTODON_TOKEN"
        return (f"the token may be invalid, revoked or lack a permission, or the account be disabled; create a new token "
                f"(Preferences > Development) with write:statuses, write:media and read:statuses, put it in .env as "
                f"{token_name} and run: autopublish resume {self.channel}")

    def refine(self, response: requests.Response, *, writes: bool, what: str, detail: str) -> PublishError | None:
        """Mastodon's own answers: its rate-limit reset, validation (422), an unknown account; 401/403 take ``auth_fix``."""
        status, text, creating = response.status_code, detail, writes
        if status == 429:  # api/rate-limits.md: X-RateLimit-Reset is an ISO 8601 time
            wait = seconds_until_iso(response.headers.get("X-RateLimit-Reset"), self.env.now())
            return self.rate_limited(response, what=what, wait=wait or None, code=status, detail=text)  # else Retry-After, else 5 minutes
        if status in (401, 403) or status >= 500 or status == 408:
            return None
        if status == 422:
            return self.error(PermanentError, f"Mastodon ({self.host}) refused the post: {text or 'validation failed'}", code=status, detail=text)
        if status == 404 and not creating:
            return self.error(
                PermanentError, f"Mastodon ({self.host}) does not know this account or address; check the channel's instance", code=status, detail=text
            )
        return self.error(PermanentError, f"Mastodon ({self.host}) refused the request (HTTP {status}); check the channel's instance "
                                          f"address", code=status, detail=text)


    # --- corrections and takedowns --------------------------------------------------------
    can_edit: ClassVar[bool] = True
    can_delete: ClassVar[bool] = True

    def edit(self, receipt: Receipt, post: Post) -> Receipt:
        """PUT /api/v1/statuses/:id with the new text (write:statuses). Without media_ids the
        status keeps its attachments (Mastodon replaces media only when media_ids is sent)."""
        data: list[tuple[str, str]] = [("status", post.text)]
        data.extend(self._status_fields(post))
        response = self.request("PUT", f"{self.options.instance}/api/v1/statuses/{receipt.remote_id}", writes=True,
                                what=f"Mastodon ({self.host})", data=data, headers=self._auth())
        if response.status_code == 404:
            raise self.error(PermanentError, f"The post is no longer on Mastodon ({self.host}), so it cannot be updated", code=404)
        if not 200 <= response.status_code < 300:
            raise self._status_error(response, creating=True)
        status = self.read_json(response, writes=True, what=f"Mastodon ({self.host})")
        url = status.get("url") or status.get("uri") if isinstance(status, dict) else None
        return Receipt(receipt.remote_id, url or receipt.url)

    def delete(self, receipt: Receipt) -> None:
        """DELETE /api/v1/statuses/:id (write:statuses); 404: already gone."""
        response = self.request("DELETE", f"{self.options.instance}/api/v1/statuses/{receipt.remote_id}", writes=True,
                                what=f"Mastodon ({self.host})", headers=self._auth())
        if response.status_code == 404 or 200 <= response.status_code < 300:
            return
        raise self._status_error(response, creating=True)


def _grants(scopes: set[str], scope: str) -> bool:
    """True when ``scopes`` include ``scope`` or its parent ("read" covers "read:statuses")."""
    return scope in scopes or scope.split(":", 1)[0] in scopes


def idempotency_key(key: str) -> str:
    """post.key as an HTTP header value (printable ASCII), else a digest of it."""
    if key and len(key) <= 200 and all(33 <= ord(c) < 127 for c in key):
        return key
    return "ap-" + hashlib.sha256(key.encode("utf-8")).hexdigest()


def _language_of(tag: str) -> str | None:
    """'id', 'en-US', 'zh_CN' -> ISO 639 code, or None."""
    code = re.split(r"[-_]", tag.strip(), maxsplit=1)[0].lower() if tag else ""
    return code if re.fullmatch(r"[a-z]{2,3}", code) else None


def _limits_from_instance(data: Any) -> PostLimits | None:
    """PostLimits from a v2 or v1 instance entity, or None if it says nothing usable."""
    if not isinstance(data, dict):
        return None
    statuses = (data.get("configuration") or {}).get("statuses") or {}
    max_chars = statuses.get("max_characters") or data.get("max_toot_chars")
    url_length = statuses.get("characters_reserved_per_url", DEFAULT_URL_LENGTH)
    if not isinstance(max_chars, int) or max_chars <= 0:
        return None
    if not isinstance(url_length, int) or url_length < 0:
        url_length = DEFAULT_URL_LENGTH
    return replace(MastodonPublisher.limits, max_length=max_chars, url_length=url_length)


def _error_text(response: Any) -> str:
    """The ``error`` of a Mastodon error body, shortened; "" when there is none."""
    try:
        body = response.json()
    except ValueError:
        return ""
    text = body.get("error", "") if isinstance(body, dict) else ""
    return str(text)[:200]


def _links_of(status: dict[str, Any]) -> set[str]:
    """Every link a status carries: its card and the hrefs in its HTML content."""
    links = {link_key(html.unescape(href)) for href in _HREF.findall(status.get("content") or "")}
    card = status.get("card")
    if isinstance(card, dict) and card.get("url"):
        links.add(link_key(card["url"]))
    return links
