"""X (Twitter) API v2: one post per article, signed with OAuth 1.0a user context.

- Publish: ``POST /2/tweets`` (JSON), the article image first uploaded with
  ``POST /2/media/upload`` (multipart ``media`` + ``media_category=tweet_image``).
- Length: twitter-text v3 weighted length (autopublish.platforms.twitter_text), max 280.
- Not idempotent. X refuses an identical text with 403 "duplicate content": that is a
  hint an earlier attempt landed, so it is Uncertain and settled by reading back the
  account's posts (``GET /2/users/me``, ``GET /2/users/:id/tweets``) and matching the
  article link against ``entities.urls[].expanded_url`` (X rewrites links to t.co).
- Errors are RFC 7807 problem JSON; 429 carries ``x-rate-limit-reset`` (epoch seconds).
- Tiers: on the Free plan reading an account's posts is allowed once per 15 minutes and
  100 posts a month, and posting 17 times per 24 hours. The adapter honours
  ``x-rate-limit-*`` and the 24-hour caps (``x-app-limit-24hour-*``,
  ``x-user-limit-24hour-*``): once a window is used up it waits for its reset without
  spending a request, reads back only the last few posts, and takes the account id from
  the access token (``<user id>-...``) instead of calling ``/2/users/me``. A 403
  ``client-forbidden`` on a read is CannotCheckError: the channel keeps posting.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import logging
import secrets
import unicodedata
from typing import Any, ClassVar
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

import requests

from autopublish.errors import AuthError, CannotCheckError, PermanentError, PublishError, RateLimitedError, TransientError, UncertainError
from autopublish.models import Health, HealthLevel, Post, PostLimits, Receipt
from autopublish.platforms import twitter_text
from autopublish.platforms.base import BaseUrl, PlatformOptions, Publisher, json_object, link_key, seconds_until_epoch
from autopublish.platforms.images import fit_image
from autopublish.secrets import SecretRef

log = logging.getLogger(__name__)

DEFAULT_RATE_LIMIT_WAIT = 15 * 60.0  # X's windows are 15 minutes
READ_BACK_COUNT = 10  # Free reads 100 posts a month: only the latest few, where a post in doubt is
READ_ACCESS = "X API access to read the account's posts (GET /2/users/:id/tweets; the app must be in a Project)"
MAX_IMAGE_BYTES = 5 * 1024 * 1024  # X media upload: images at most 5 MB; larger ones are downscaled


class XOptions(PlatformOptions):
    """``[channels.NAME]`` keys for ``platform = "x"`` (the four OAuth 1.0a user-context secrets)."""

    api_base: BaseUrl = "https://api.x.com"
    consumer_key: SecretRef
    consumer_secret: SecretRef
    access_token: SecretRef
    access_token_secret: SecretRef


def percent_encode(value: str) -> str:
    """RFC 5849 section 3.6: UTF-8, then percent-encode all but unreserved characters."""
    return quote(value, safe="~")


def oauth1_signature(
    method: str, url: str, params: list[tuple[str, str]], consumer_secret: str, token_secret: str
) -> str:
    """The HMAC-SHA1 signature (base64) of a request, per RFC 5849 section 3.4.

    ``url`` may carry a query; its parameters are signed with ``params`` (the oauth_*
    parameters and any form fields; JSON and multipart bodies are not signed).
    """
    parts = urlsplit(url)
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    port = parts.port
    netloc = host if port is None or (scheme, port) in (("http", 80), ("https", 443)) else f"{host}:{port}"
    base_url = urlunsplit((scheme, netloc, parts.path or "/", "", ""))
    pairs = [(percent_encode(k), percent_encode(v)) for k, v in [*parse_qsl(parts.query, keep_blank_values=True), *params]]
    normalized = "&".join(f"{k}={v}" for k, v in sorted(pairs))
    base = "&".join((method.upper(), percent_encode(base_url), percent_encode(normalized)))
    key = f"{percent_encode(consumer_secret)}&{percent_encode(token_secret)}"
    digest = hmac.new(key.encode(), base.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


class XPublisher(Publisher[XOptions]):
    name = "x"
    label = "X"
    Options = XOptions
    limits = PostLimits(max_length=twitter_text.MAX_WEIGHTED_LENGTH, url_length=twitter_text.TRANSFORMED_URL_LENGTH, images=True, link_card=False)
    idempotent: ClassVar[bool] = False
    can_read_back: ClassVar[bool] = True
    default_template = "{title}\n\n{link}\n\n{hashtags}"
    rate_limit_wait: ClassVar[float] = DEFAULT_RATE_LIMIT_WAIT  # a 429 without a usable x-rate-limit-reset

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._user_id: str | None = None
        self._read_blocked_until = 0.0  # epoch seconds: the read window is used up until then
        self._post_blocked_until = 0.0  # epoch seconds: a 24-hour posting cap is reached until then


    def count(self, text: str) -> int:
        """X's weighted length (twitter-text v3)."""
        return twitter_text.weighted_length(text)

    # --- publish -------------------------------------------------------------------
    def publish(self, post: Post) -> Receipt:
        """One attempt at ``POST /2/tweets``; the image is uploaded first when there is one."""
        length = self.count(post.text)
        if not post.text.strip():
            raise self.error(PermanentError, "The post is empty; X needs some text", code="empty")
        if length > twitter_text.MAX_WEIGHTED_LENGTH:
            raise self.error(
                PermanentError,
                f"The post is {length} long by X's count, over X's limit of {twitter_text.MAX_WEIGHTED_LENGTH}; shorten the template",
                code="too_long",
            )
        self._still_blocked(self._post_blocked_until, "X's 24-hour posting cap is reached")
        body: dict[str, Any] = {"text": post.text}
        media_id = self._upload_image(post) if post.image else None
        if media_id:
            body["media"] = {"media_ids": [media_id]}
        url = f"{self.options.api_base}/2/tweets"
        response = self.request("POST", url, writes=True, what="X", json=body, headers=self._sign("POST", url))
        self._post_blocked_until = max(self._post_blocked_until, _day_cap_reset(response) or 0.0)
        if response.status_code != 201 and response.status_code != 200:
            raise self._failure(response, writes=True)
        data = self.read_json(response, writes=True, what="X")
        post_id = data.get("data", {}).get("id") if isinstance(data, dict) else None
        if not isinstance(post_id, str) or not post_id:
            raise self.error(UncertainError, "X accepted the post but did not say its id; it may have been published", code=response.status_code)
        return self._receipt(post_id)

    def _upload_image(self, post: Post) -> str | None:
        """Upload the article image; None (post without it) when it cannot be had.

        Auth and rate-limit answers still stop the publish: nothing was posted yet.
        """
        assert post.image is not None
        image = self.fetch_image(post.image, origin=post.source_origin)
        if image is not None:
            image = fit_image(image, MAX_IMAGE_BYTES, label=self.label, channel=self.channel)
        if image is None:
            return None
        url = f"{self.options.api_base}/2/media/upload"
        files = {"media": ("image", image.data, image.content_type)}
        data = {"media_category": "tweet_image", "media_type": image.content_type}
        try:
            response = self.request("POST", url, writes=False, what="X's media upload", files=files, data=data, headers=self._sign("POST", url))
            if response.status_code >= 300:
                raise self._failure(response, writes=False, what="X's media upload")
            body = self.read_json(response, writes=False, what="X's media upload")
        except (AuthError, RateLimitedError):
            raise
        except PublishError as exc:
            log.warning("X: the image upload failed (%s); posting without it", exc.message, extra={"channel": self.channel})
            return None
        media = body.get("data", body) if isinstance(body, dict) else {}
        media_id = (media.get("id") or media.get("media_id_string")) if isinstance(media, dict) else None
        return str(media_id) if media_id else None

    # --- read-back ---------------------------------------------------------------------
    def find_existing(self, post: Post) -> Receipt | None:
        """The account's recent post that carries the article link (or the same text), if any."""
        self._still_blocked(self._read_blocked_until, "X's limit on reading the account's posts is used up")
        user_id = self._user_id or _user_of_token(self.options.access_token.reveal()) or str(self._me()["id"])
        url = f"{self.options.api_base}/2/users/{quote(user_id)}/tweets"
        params = {
            "max_results": str(READ_BACK_COUNT),
            "exclude": "replies,retweets",
            "tweet.fields": "created_at,entities",
        }
        response = self.request("GET", url, writes=False, what="X", params=params, headers=self._sign("GET", url, params))
        if response.headers.get("x-rate-limit-remaining") == "0":
            reset = _epoch(response.headers.get("x-rate-limit-reset"))
            self._read_blocked_until = max(self._read_blocked_until, reset or self.env.now().timestamp() + DEFAULT_RATE_LIMIT_WAIT)
        if response.status_code == 403:
            problem = json_object(response)
            raise CannotCheckError(
                f"X would not let the app read the account's posts back ({problem.get('title') or 'forbidden'}); posting is not affected",
                missing_permission=READ_ACCESS, platform=self.name, channel=self.channel, code=403, detail=str(problem.get("detail") or ""),
            )
        if response.status_code != 200:
            raise self._failure(response, writes=False)
        data = self.read_json(response, writes=False)
        wanted = {link_key(link) for link in (post.link, post.article.link) if link}
        text = _without_urls(post.text)
        text_links = {link_key(post.text[s:e]) for s, e in twitter_text.url_spans(post.text)}
        for item in data.get("data", []) if isinstance(data, dict) else []:
            urls = (item.get("entities") or {}).get("urls") or []
            expanded = {link_key(u.get(k, "")) for u in urls for k in ("expanded_url", "unwound_url") if u.get(k)}
            # The article link, or the same words with the same links (a template without the link).
            same_text = _without_urls(html.unescape(item.get("text", ""))) == text and text_links <= expanded
            if wanted & expanded or same_text:
                return self._receipt(str(item["id"]))
        return None

    def check(self) -> Health:
        """``GET /2/users/me``: which account the keys post as."""
        me = self._me()
        username = me.get("username", "")
        return Health(
            HealthLevel.OK,
            f"Posting as @{username}" + (f" ({me['name']})" if me.get("name") else ""),
            details=(
                "X does not tell apps when OAuth 1.0a tokens expire; they last until revoked or regenerated",
                "Posts in doubt are settled by reading the account's latest posts back; on X's Free plan that is allowed once "
                "per 15 minutes and 100 posts a month, and autopublish waits for those limits",
            ),
            settles_doubts=True,  # /2/users/me answered: the app is in a Project and may read (not spent on a probe: Free reads are scarce)
        )

    def _still_blocked(self, until: float, what: str) -> None:
        """RateLimitedError, without spending a request, while a used-up window has not reset."""
        wait = until - self.env.now().timestamp()
        if wait > 0:
            raise self.error(RateLimitedError, f"{what}; will try again after it resets", retry_after=wait, code=429)

    def _me(self) -> dict[str, Any]:
        url = f"{self.options.api_base}/2/users/me"
        response = self.request("GET", url, writes=False, what="X", headers=self._sign("GET", url))
        if response.status_code != 200:
            raise self._failure(response, writes=False)
        data = self.read_json(response, writes=False)
        me = data.get("data") if isinstance(data, dict) else None
        if not isinstance(me, dict) or not me.get("id"):
            raise self.error(TransientError, "X answered the account lookup without an account id; will try again later")
        self._user_id = str(me["id"])
        return me

    # --- helpers -------------------------------------------------------------------------
    def _receipt(self, post_id: str) -> Receipt:
        return Receipt(remote_id=post_id, url=f"https://x.com/i/web/status/{post_id}")

    def _sign(self, method: str, url: str, query: dict[str, str] | None = None) -> dict[str, str]:
        """The ``Authorization: OAuth ...`` header for one request (query params signed too)."""
        oauth = {
            "oauth_consumer_key": self.options.consumer_key.reveal(),
            "oauth_nonce": secrets.token_hex(16),
            "oauth_signature_method": "HMAC-SHA1",
            "oauth_timestamp": str(int(self.env.now().timestamp())),
            "oauth_token": self.options.access_token.reveal(),
            "oauth_version": "1.0",
        }
        params = [*oauth.items(), *(query or {}).items()]
        oauth["oauth_signature"] = oauth1_signature(
            method, url, params, self.options.consumer_secret.reveal(), self.options.access_token_secret.reveal()
        )
        header = ", ".join(f'{percent_encode(k)}="{percent_encode(v)}"' for k, v in sorted(oauth.items()))
        return {"Authorization": f"OAuth {header}"}

    def _failure(self, response: requests.Response, *, writes: bool, what: str = "X") -> PublishError:
        """Map an X error answer (problem JSON) to the core's vocabulary."""
        problem = json_object(response)
        return self.classify(response, writes=writes, what=what, detail=str(problem.get("detail") or problem.get("title") or ""))

    def auth_fix(self) -> str:
        """After a 401: the keys or access token were revoked or regenerated."""
        return ("the keys or access token were revoked or regenerated; create new ones in the X developer portal, put them in .env as "
                f"{self._env_names()} and run: autopublish resume {self.channel}")

    def refine(self, response: requests.Response, *, writes: bool, what: str, detail: str) -> PublishError | None:
        """X's own codes: rate windows and day caps, credits, duplicates, app permissions (401 takes ``auth_fix``)."""
        status = response.status_code
        problem = json_object(response)
        kind = str(problem.get("type") or "")
        resume = f"autopublish resume {self.channel}"
        if status == 429:
            wait = seconds_until_epoch(response.headers.get("x-rate-limit-reset"), self.env.now())
            day_reset = _day_cap_reset(response)
            if day_reset is not None:  # a 24-hour cap, not the 15-minute window
                wait = max(wait or 0.0, day_reset - self.env.now().timestamp())
                self._post_blocked_until = max(self._post_blocked_until, day_reset) if writes else self._post_blocked_until
            capped = kind.endswith("/usage-capped")  # the monthly usage cap, not a short window
            return self.rate_limited(response, what=f"{what} (monthly usage cap reached)" if capped else what,
                                     wait=wait or 0.0, code=status, detail=detail)  # 0: X's 15-minute window
        if status == 402 or kind.endswith("/credits") or problem.get("title") == "CreditsDepleted":
            return self.error(
                AuthError,
                "X says the account's API credits are used up; add credits in the X developer portal, then run: " + resume,
                code=status,
                detail=detail,
            )
        if status == 403:
            if "duplicate" in detail.lower():
                return self.error(
                    UncertainError,
                    "X refused the post as a duplicate of one already on the account; an earlier attempt may have published it",
                    code="duplicate",
                    detail=detail,
                )
            if kind.endswith("/client-forbidden"):
                return self.error(
                    AuthError,
                    "X says the app may not use the API: it must be attached to a Project with an API plan (Free or above) "
                    f"in the X developer portal; fix that, then run: {resume}",
                    code=status,
                    detail=detail,
                )
            if "permission" in detail.lower() or "oauth1" in detail.lower():
                return self.error(
                    AuthError,
                    "X says the app is not allowed to post; set the app's permissions to Read and Write in the X developer portal, "
                    f"regenerate the access token and secret, put them in .env and run: {resume}",
                    code=status,
                    detail=detail,
                )
            return self.error(PermanentError, f"X refused the post: {detail or 'forbidden'}", code=status, detail=detail)
        if status == 400:
            reason = _first_error_message(problem) or detail or "invalid request"
            return self.error(PermanentError, f"X refused the post as invalid: {reason}", code=status, detail=detail)
        if status == 404:
            return self.error(PermanentError, f"{what} answered HTTP 404; check api_base in the channel's config", code=status, detail=detail)
        return None

    def _env_names(self) -> str:
        names = [
            secret.env_name
            for secret in (self.options.consumer_key, self.options.consumer_secret, self.options.access_token, self.options.access_token_secret)
            if secret.env_name
        ]
        return ", ".join(names) if names else "the channel's four X secrets"


    # --- takedowns (X posts cannot be edited through the API) ------------------------------
    can_delete: ClassVar[bool] = True

    def delete(self, receipt: Receipt) -> None:
        """``DELETE /2/tweets/:id`` (signed like a post); a 404 means already gone."""
        url = f"{self.options.api_base}/2/tweets/{receipt.remote_id}"
        response = self.request("DELETE", url, writes=True, what="X", headers=self._sign("DELETE", url))
        if response.status_code == 404:
            return
        if response.status_code != 200:
            raise self._failure(response, writes=True)
        data = self.read_json(response, writes=True, what="X")
        deleted = data.get("data", {}).get("deleted") if isinstance(data, dict) else None
        if deleted is not True:
            raise self.error(PermanentError, f"X did not delete the post; remove it by hand: {receipt.url or receipt.remote_id}", code="not_deleted")


def _user_of_token(token: str) -> str | None:
    """The account id an OAuth 1.0a access token starts with ("2244994945-..."), if it does."""
    head = token.split("-", 1)[0]
    return head if head.isdigit() and "-" in token else None


def _epoch(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


def _day_cap_reset(response: requests.Response) -> float | None:
    """When a used-up 24-hour cap (app or user) resets, epoch seconds; None if none is used up."""
    resets = [
        _epoch(response.headers.get(f"x-{who}-limit-24hour-reset"))
        for who in ("app", "user")
        if response.headers.get(f"x-{who}-limit-24hour-remaining") == "0"
    ]
    found = [r for r in resets if r is not None]
    return max(found) if found else None


def _first_error_message(problem: dict[str, Any]) -> str:
    errors = problem.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        return str(errors[0].get("message") or "")
    return ""


def _without_urls(text: str) -> str:
    """Text with its URLs removed and whitespace collapsed (X rewrites URLs to t.co)."""
    spans = twitter_text.url_spans(text)
    pieces, last = [], 0
    for start, end in spans:
        pieces.append(text[last:start])
        last = end
    pieces.append(text[last:])
    return " ".join(unicodedata.normalize("NFC", "".join(pieces)).split())
