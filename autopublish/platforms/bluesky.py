"""Bluesky (AT Protocol) over plain requests: one app.bsky.feed.post record per article.

Calls (XRPC, https://<service>/xrpc/<NSID>):
    com.atproto.server.createSession    log in with the handle and an app password (cached)
    com.atproto.server.refreshSession   new tokens when the access token expired
    com.atproto.server.getSession       check()
    com.atproto.repo.uploadBlob         the card's thumbnail (or the image, without a link)
    com.atproto.repo.createRecord       the post, with a record key chosen by us
    com.atproto.repo.getRecord          read-back by that record key

Idempotency: the record key (rkey, a TID) is derived from post.key alone
(``record_key()``), so every attempt of one delivery writes to the same key. A PDS
refuses a second record at an existing key (the reference PDS's repository tree throws
"There is already a value at key", which reaches the client as a generic 500
InternalServerError). So when createRecord answers 5xx, publish reads the key back:
there -> success (an earlier attempt landed), absent -> TransientError (nothing was
applied, and a retry can still never make a second post). A retry can never double-post:
``idempotent = True``. The derived TID's timestamp is not the posting time (it is a hash
of the key, in early 2024); Bluesky orders feeds by createdAt, not by rkey.

Sessions: createSession is tightly rate-limited (30 per 5 minutes and 300 a day per
account, Bluesky "Rate Limits"), so the session is kept on the publisher AND saved in the
state directory (``session_file``, mode 0600), so that ``run --once`` from cron reuses it
across runs; it is renewed with refreshSession. An access token about to expire is
refreshed first, and a call answered 400 ExpiredToken/InvalidToken is refreshed and
repeated once (nothing was applied). A refresh token that was revoked falls back to one
new login.

Length: ``text`` may hold at most 300 graphemes AND 3000 UTF-8 bytes. ``count()`` returns
max(graphemes, ceil(bytes / 10)) of the text as it will be sent, so fitting to 300 keeps
both rules. URLs count in full on Bluesky, but like the official app we show a URL
shortened (``example.org/berita/myanm...``) with a link facet carrying the full address;
``count()`` measures that shortened form (option ``shorten_links``, default on).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import urlsplit

import regex
import requests
from pydantic import Field, field_validator

from autopublish.errors import AuthError, PermanentError, PublishError, TransientError, UncertainError
from autopublish.models import Health, HealthLevel, Post, PostLimits, Receipt
from autopublish.platforms.base import BaseUrl, PlatformOptions, Publisher, count_graphemes, json_object, seconds_until_epoch
from autopublish.platforms.images import fit_image
from autopublish.platforms.session_file import SessionFile
from autopublish.secrets import SecretRef

log = logging.getLogger(__name__)

POST_COLLECTION = "app.bsky.feed.post"
MAX_GRAPHEMES = 300
MAX_BYTES = 3000
MAX_THUMB_BYTES = 1_000_000
MAX_IMAGE_BYTES = 2_000_000
REFRESH_MARGIN_SECONDS = 60.0
AUTH_ERRORS = {"AuthenticationRequired", "AuthMissing", "AccountTakedown", "AccountDeactivated", "AuthFactorTokenRequired"}
TOKEN_ERRORS = {"ExpiredToken", "InvalidToken"}

_S32 = "234567abcdefghijklmnopqrstuvwxyz"  # base32-sortable, the TID alphabet
_TID_EPOCH_US = 1_704_067_200_000_000  # 2024-01-01T00:00:00Z in microseconds

# Bluesky's own link rule, simplified: http(s) URLs; trailing punctuation is not part of them.
_URL = re.compile(r"https?://[^\s<>\"']+")
_URL_TRAILING = ".,;:!?'\""
# A hashtag starts after a space or the text start, has a non-digit, non-punctuation
# character, and ends before a space; trailing punctuation is dropped (Bluesky's rule).
_TAG = regex.compile(
    r"(?:^|(?<=\s))[#＃]((?!\ufe0f)[^\s\u00AD\u2060\u200A\u200B\u200C\u200D\u20e2]*[^\d\s\p{P}\u00AD\u2060\u200A\u200B\u200C\u200D\u20e2]+[^\s\u00AD\u2060\u200A\u200B\u200C\u200D\u20e2]*)"
)
_TAG_TRAILING = regex.compile(r"\p{P}+$")


def record_key(key: str) -> str:
    """A TID (13 base32-sortable characters) derived from post.key alone: the same key, the same rkey."""
    digest = hashlib.sha256(b"autopublish:" + key.encode("utf-8")).digest()
    number = int.from_bytes(digest[:8], "big")
    micros = _TID_EPOCH_US + ((number >> 10) % (1 << 40))
    value = (micros << 10) | (number & 0x3FF)  # 53-bit time, 10-bit clock id, top bit 0
    return "".join(_S32[(value >> (5 * i)) & 31] for i in reversed(range(13)))


def short_url(url: str) -> str:
    """How the Bluesky app shows a link: host and path, the path cut at 13 characters + '...'."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return url
    path = ("" if parts.path == "/" else parts.path) + (f"?{parts.query}" if parts.query else "") + (f"#{parts.fragment}" if parts.fragment else "")
    host = parts.netloc[4:] if parts.netloc.startswith("www.") else parts.netloc
    return host + (path[:13] + "..." if len(path) > 15 else path)


@dataclass(frozen=True, slots=True)
class RichText:
    """Text as it will be sent, with facets at UTF-8 byte offsets."""

    text: str
    facets: list[dict[str, Any]]


def build_rich_text(text: str, *, shorten_links: bool = True) -> RichText:
    """Link facets (URLs, optionally shown shortened) and tag facets (#tag) for ``text``."""
    out: list[str] = []
    facets: list[dict[str, Any]] = []
    link_spans: list[tuple[int, int]] = []  # character spans in the output text
    position = 0  # bytes written so far
    chars = 0
    last = 0
    for match in _URL.finditer(text):
        uri = _trim_url(match.group(0))
        start, end = match.start(), match.start() + len(uri)
        if start < last:
            continue
        before = text[last:start]
        out.append(before)
        position += len(before.encode("utf-8"))
        chars += len(before)
        shown = short_url(uri) if shorten_links else uri
        out.append(shown)
        size = len(shown.encode("utf-8"))
        facets.append(_facet(position, position + size, {"$type": "app.bsky.richtext.facet#link", "uri": uri}))
        link_spans.append((chars, chars + len(shown)))
        position += size
        chars += len(shown)
        last = end
    out.append(text[last:])
    result = "".join(out)
    for match in _TAG.finditer(result):
        tag = _TAG_TRAILING.sub("", match.group(1))
        if not tag or count_graphemes(tag) > 64 or regex.fullmatch(r"[\d\p{P}]+", tag):
            continue
        start = match.start()
        end = match.start(1) + len(tag)
        if any(s < end and start < e for s, e in link_spans):
            continue
        byte_start = len(result[:start].encode("utf-8"))
        byte_end = byte_start + len(result[start:end].encode("utf-8"))
        facets.append(_facet(byte_start, byte_end, {"$type": "app.bsky.richtext.facet#tag", "tag": tag}))
    facets.sort(key=lambda f: f["index"]["byteStart"])
    return RichText(result, facets)


def count_post(text: str, *, shorten_links: bool = True) -> int:
    """Bluesky's length of ``text`` as sent: max(graphemes, ceil(UTF-8 bytes / 10)) against 300."""
    sent = build_rich_text(text, shorten_links=shorten_links).text
    return max(count_graphemes(sent), math.ceil(len(sent.encode("utf-8")) * MAX_GRAPHEMES / MAX_BYTES))


def _trim_url(url: str) -> str:
    url = url.rstrip(_URL_TRAILING)
    if url.endswith(")") and url.count("(") < url.count(")"):
        url = url[:-1]
    return url


def _facet(start: int, end: int, feature: dict[str, Any]) -> dict[str, Any]:
    return {"index": {"byteStart": start, "byteEnd": end}, "features": [feature]}


class BlueskyOptions(PlatformOptions):
    """``[channels.NAME]`` keys for ``platform = "bluesky"``."""

    service: BaseUrl = "https://bsky.social"
    handle: str
    app_password: SecretRef
    langs: list[str] | None = None  # default: the article's language
    link_card: bool = True  # an app.bsky.embed.external card for the article link
    shorten_links: bool = True
    description_length: int = Field(default=300, ge=0, le=1000)

    @field_validator("handle")
    @classmethod
    def _handle_shape(cls, value: str) -> str:
        value = value.strip().lstrip("@")
        if value.startswith("did:") or re.fullmatch(r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+", value):
            return value.lower() if not value.startswith("did:") else value
        raise ValueError('must be the account handle, like "example.bsky.social"')

    @field_validator("langs")
    @classmethod
    def _langs_shape(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        if len(value) > 3:
            raise ValueError("may name at most 3 languages")
        for lang in value:
            if not re.fullmatch(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*", lang):
                raise ValueError(f'"{lang}" is not a language tag like "id" or "en-US"')
        return value


@dataclass
class _Session:
    did: str
    handle: str
    access: str
    refresh: str
    access_expires: float | None  # epoch seconds, from the JWT


class BlueskyPublisher(Publisher[BlueskyOptions]):
    """Posts to one Bluesky account with an app password. See the module docstring."""

    name = "bluesky"
    label = "Bluesky"
    Options = BlueskyOptions
    limits = PostLimits(max_length=MAX_GRAPHEMES, url_length=None, images=True, link_card=True)
    idempotent: ClassVar[bool] = True  # rkey derived from post.key
    can_read_back: ClassVar[bool] = True
    default_template = "{title}\n\n{link}\n\n{hashtags}"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._session: _Session | None = None
        self._saved = SessionFile(self.env.state_dir, self.name, self.channel)


    def count(self, text: str) -> int:
        return count_post(text, shorten_links=self.options.shorten_links)

    # --- publish ---------------------------------------------------------------------
    def publish(self, post: Post) -> Receipt:
        """Create one post record at the rkey derived from post.key.

        Raises AuthError, RateLimitedError, PermanentError, TransientError, or
        UncertainError (timeout/dropped connection after sending; a retry is still safe).
        """
        rich = build_rich_text(post.text, shorten_links=self.options.shorten_links)
        graphemes, size = count_graphemes(rich.text), len(rich.text.encode("utf-8"))
        if graphemes > MAX_GRAPHEMES or size > MAX_BYTES:
            raise self.error(
                PermanentError,
                f"The post is {graphemes} characters ({size} bytes), over Bluesky's limit of "
                f"{MAX_GRAPHEMES} characters and {MAX_BYTES} bytes; shorten the channel's template",
                code="too_long",
            )
        session = self._ensure_session()
        rkey = record_key(post.key)
        record: dict[str, Any] = {
            "$type": POST_COLLECTION,
            "text": rich.text,
            "createdAt": _iso_millis(self.env.now()),
        }
        if rich.facets:
            record["facets"] = rich.facets
        langs = self.options.langs or _langs_of(post.article.language)
        if langs:
            record["langs"] = langs
        embed = self._embed(post)
        if embed:
            record["embed"] = embed
        if not rich.text.strip() and not embed:
            raise self.error(PermanentError, "The post is empty; check the channel's template", code="empty")
        body = {"repo": session.did, "collection": POST_COLLECTION, "rkey": rkey, "record": record}
        response = self._xrpc("POST", "com.atproto.repo.createRecord", writes=True, json=body)
        if 200 <= response.status_code < 300:
            data = self.read_json(response, writes=True, what="Bluesky")
            uri = data.get("uri") if isinstance(data, dict) else None
            return self._receipt(uri or f"at://{session.did}/{POST_COLLECTION}/{rkey}", rkey)
        if response.status_code >= 500:
            # A record already at our rkey surfaces as a 500; see the module docstring.
            try:
                existing = self._get_record(rkey)
            except PublishError:
                raise self.error(
                    UncertainError,
                    f"Bluesky had a server error (HTTP {response.status_code}) and could not be asked whether the post was saved",
                    code=response.status_code,
                ) from None
            if existing is not None:
                return existing
            raise self.error(
                TransientError,
                f"Bluesky had a server error (HTTP {response.status_code}); will try again later",
                code=response.status_code,
                detail=_error_of(response)[0],
            )
        raise self._xrpc_error(response)

    def _embed(self, post: Post) -> dict[str, Any] | None:
        """A link card for post.link (with the image as its thumbnail), else the image alone."""
        if self.options.link_card and post.link:
            external: dict[str, Any] = {
                "uri": post.link,
                "title": post.title or post.article.title,
                "description": _shorten(post.description or post.article.summary, self.options.description_length),
            }
            thumb = self._upload_image(post.image, MAX_THUMB_BYTES, post.source_origin) if post.image else None
            if thumb:
                external["thumb"] = thumb
            return {"$type": "app.bsky.embed.external", "external": external}
        if post.image:
            blob = self._upload_image(post.image, MAX_IMAGE_BYTES, post.source_origin)
            if blob:
                return {"$type": "app.bsky.embed.images", "images": [{"image": blob, "alt": post.alt_text or ""}]}
        return None

    def _upload_image(self, url: str, max_bytes: int, origin: str | None) -> dict[str, Any] | None:
        """Download the image (downscaled to ``max_bytes`` when over it) and upload it as a blob;
        None (with a warning) when it cannot be used."""
        image = self.fetch_image(url, origin=origin)
        if image is not None:
            image = fit_image(image, max_bytes, label=self.label, channel=self.channel)
        if image is None:
            return None
        response = self._xrpc("POST", "com.atproto.repo.uploadBlob", writes=False, data=image.data, content_type=image.content_type)
        if response.status_code == 200:
            data = self.read_json(response, writes=False, what="Bluesky")
            blob = data.get("blob") if isinstance(data, dict) else None
            if isinstance(blob, dict):
                return blob
        elif response.status_code in (400, 413):
            log.warning("Bluesky refused the article image (HTTP %s); posting without it", response.status_code, extra={"channel": self.channel})
            return None
        else:
            raise self._xrpc_error(response)
        return None

    # --- read-back --------------------------------------------------------------------
    def find_existing(self, post: Post) -> Receipt | None:
        """The post at the rkey derived from post.key, else None (exact, by construction)."""
        return self._get_record(record_key(post.key))

    def _get_record(self, rkey: str) -> Receipt | None:
        session = self._ensure_session()
        response = self._xrpc(
            "GET",
            "com.atproto.repo.getRecord",
            writes=False,
            params={"repo": session.did, "collection": POST_COLLECTION, "rkey": rkey},
        )
        if response.status_code == 200:
            data = self.read_json(response, writes=False, what="Bluesky")
            uri = data.get("uri") if isinstance(data, dict) else None
            return self._receipt(uri or f"at://{session.did}/{POST_COLLECTION}/{rkey}", rkey)
        name, _ = _error_of(response)
        if response.status_code == 400 and name == "RecordNotFound":
            return None
        raise self._xrpc_error(response)

    # --- check ------------------------------------------------------------------------
    def check(self) -> Health:
        try:
            self._ensure_session()
            response = self._xrpc("GET", "com.atproto.server.getSession", writes=False)
        except AuthError:
            raise
        except PublishError as exc:
            return Health(HealthLevel.ERROR, exc.message)
        if response.status_code != 200:
            raise self._xrpc_error(response)
        data = self.read_json(response, writes=False, what="Bluesky")
        handle = data.get("handle") if isinstance(data, dict) else None
        did = data.get("did") if isinstance(data, dict) else None
        host = urlsplit(self.options.service).netloc
        return Health(HealthLevel.OK, f"Posting as @{handle or self.options.handle} ({did}) on {host} (limit {MAX_GRAPHEMES} characters)")

    # --- sessions and calls -------------------------------------------------------------
    def _ensure_session(self) -> _Session:
        """The cached session (else the saved one, else a login); refreshes one about to expire."""
        if self._session is None:
            self._session = self._load_session() or self._login()
        elif self._session.access_expires is not None and self._session.access_expires - self.env.now().timestamp() < REFRESH_MARGIN_SECONDS:
            self._session = self._refresh(self._session)
        return self._session

    def _login(self) -> _Session:
        response = self.request(
            "POST",
            self._xrpc_url("com.atproto.server.createSession"),
            writes=False,
            what="Bluesky",
            json={"identifier": self.options.handle, "password": self.options.app_password.reveal()},
        )
        if response.status_code != 200:
            failure = self._xrpc_error(response)
            if type(failure) is PermanentError and response.status_code == 400:
                name, message = _error_of(response)
                failure = self.error(PermanentError, f"Bluesky refused the login for @{self.options.handle} ({message or name}); check the channel's "
                                                     "handle and service", code=failure.code, detail=failure.detail)
            raise failure
        return self._save_session(self._session_from(response))

    def _refresh(self, session: _Session) -> _Session:
        """New tokens from the refresh token; one new login if the refresh token is no longer valid."""
        response = self.request(
            "POST",
            self._xrpc_url("com.atproto.server.refreshSession"),
            writes=False,
            what="Bluesky",
            headers={"Authorization": f"Bearer {session.refresh}"},
        )
        if response.status_code == 200:
            return self._save_session(self._session_from(response))
        name, _ = _error_of(response)
        if name in TOKEN_ERRORS or response.status_code == 401:
            newer = self._load_session()
            if newer is not None and newer.refresh != session.refresh:
                return newer  # another process (the daemon, a cron run, `check`) refreshed the saved session meanwhile
            log.info("Bluesky refresh token no longer valid; logging in again", extra={"channel": self.channel})
            return self._login()
        raise self._xrpc_error(response)

    def _load_session(self) -> _Session | None:
        """The session saved by an earlier run for this service and handle, if any."""
        data = self._saved.load()
        if not data or data.get("service") != self.options.service or data.get("handle") != self.options.handle:
            return None
        try:
            expires = data.get("access_expires")
            return _Session(
                did=str(data["did"]),
                handle=str(data["session_handle"]),
                access=str(data["access"]),
                refresh=str(data["refresh"]),
                access_expires=float(expires) if isinstance(expires, (int, float)) else None,
            )
        except KeyError:
            return None

    def _save_session(self, session: _Session) -> _Session:
        self._saved.save({
            "service": self.options.service,
            "handle": self.options.handle,
            "did": session.did,
            "session_handle": session.handle,
            "access": session.access,
            "refresh": session.refresh,
            "access_expires": session.access_expires,
        })
        return session

    def _session_from(self, response: requests.Response) -> _Session:
        data = self.read_json(response, writes=False, what="Bluesky")
        try:
            return _Session(
                did=str(data["did"]),
                handle=str(data.get("handle") or self.options.handle),
                access=str(data["accessJwt"]),
                refresh=str(data["refreshJwt"]),
                access_expires=self._local_expiry(str(data["accessJwt"])),
            )
        except (KeyError, TypeError):
            raise self.error(TransientError, "Bluesky answered the login without a session; will try again later") from None

    def _local_expiry(self, token: str) -> float | None:
        """When the access token expires on our clock: now + (exp - iat), immune to clock skew."""
        claims = _jwt_claims(token)
        exp, iat = claims.get("exp"), claims.get("iat")
        if not isinstance(exp, (int, float)):
            return None
        if isinstance(iat, (int, float)) and exp > iat:
            return self.env.now().timestamp() + (exp - iat)
        return float(exp)

    def _xrpc(
        self,
        method: str,
        nsid: str,
        *,
        writes: bool,
        params: dict[str, str] | None = None,
        json: Any = None,
        data: bytes | None = None,
        content_type: str | None = None,
    ) -> requests.Response:
        """One authenticated XRPC call; an expired token is refreshed and the call repeated once."""
        for attempt in (1, 2):
            session = self._ensure_session()
            headers = {"Authorization": f"Bearer {session.access}"}
            if content_type:
                headers["Content-Type"] = content_type
            response = self.request(
                method, self._xrpc_url(nsid), writes=writes, what="Bluesky", params=params, json=json, data=data, headers=headers
            )
            name, _ = _error_of(response)
            if attempt == 1 and response.status_code in (400, 401) and name in TOKEN_ERRORS:
                # Refused before anything was applied: renew the tokens and ask once more.
                self._session = self._refresh(session)
                continue
            return response
        return response

    def _xrpc_url(self, nsid: str) -> str:
        return f"{self.options.service}/xrpc/{nsid}"

    def _receipt(self, uri: str, rkey: str) -> Receipt:
        handle = self._session.handle if self._session else self.options.handle
        return Receipt(remote_id=uri, url=f"https://bsky.app/profile/{handle}/post/{rkey}")

    # --- errors -----------------------------------------------------------------------
    def _xrpc_error(self, response: requests.Response) -> PublishError:
        """Map an XRPC error answer to the core's vocabulary (never echoing secrets).

        Passed as a read: createRecord's rkey makes any retry safe (``idempotent``), so a 5xx is transient.
        """
        name, message = _error_of(response)
        limited = name == "RateLimitExceeded" or response.status_code == 429
        return self.classify(
            response,
            writes=False,
            what="Bluesky",
            detail=f"{name}: {message}"[:200] if name else "",
            code=response.status_code if limited or response.status_code >= 500 or not name else name,
            status=429 if limited else None,
            retry_after=seconds_until_epoch(response.headers.get("RateLimit-Reset"), self.env.now()) or None,
        )

    def auth_fix(self) -> str:
        return f"the app password for @{self.options.handle} is wrong or was revoked: create a new app password {self._password_fix()}"

    def _password_fix(self) -> str:
        password = self.options.app_password.env_name or "BLUESKY_APP_PASSWORD"
        return f"(Settings > Privacy and security > App passwords), put it in .env as {password} and run: autopublish resume {self.channel}"

    def refine(self, response: requests.Response, *, writes: bool, what: str, detail: str) -> PublishError | None:
        """XRPC error names: a taken-down or deactivated account, a main password given, auth names on any status."""
        name, _ = _error_of(response)
        status = response.status_code
        resume = f"autopublish resume {self.channel}"
        if name == "RateLimitExceeded" or status == 429:
            return None
        if name == "AccountTakedown":
            return self.error(AuthError, f"Bluesky has taken down the account @{self.options.handle}; resolve it with Bluesky, then run: {resume}",
                              code=name, detail=detail)
        if name == "AccountDeactivated":
            return self.error(AuthError, f"The Bluesky account @{self.options.handle} is deactivated; reactivate it, then run: {resume}",
                              code=name, detail=detail)
        if name == "AuthFactorTokenRequired":
            return self.error(AuthError, "Bluesky asks for an email code, which means the main password was given; create an app password "
                                         f"{self._password_fix()}", code=name, detail=detail)
        if (name in AUTH_ERRORS or name in TOKEN_ERRORS) and status not in (401, 403, 429):
            return self.auth_refused(status, what=what, code=name, detail=detail)
        return None

    def refusal(self, response: requests.Response, *, what: str, status: int, detail: str) -> str:
        name, message = _error_of(response)
        return f"Bluesky refused the post: {message or name or f'HTTP {status}'}"[:300]

    # --- takedowns (a Bluesky post cannot be edited) -----------------------------------------
    can_delete: ClassVar[bool] = True

    def delete(self, receipt: Receipt) -> None:
        """``com.atproto.repo.deleteRecord`` for the post's rkey; a record already gone is a success."""
        session = self._ensure_session()
        rkey = receipt.remote_id.rstrip("/").rsplit("/", 1)[-1]
        body = {"repo": session.did, "collection": POST_COLLECTION, "rkey": rkey}
        response = self._xrpc("POST", "com.atproto.repo.deleteRecord", writes=True, json=body)
        if not 200 <= response.status_code < 300:
            raise self._xrpc_error(response)


def _error_of(response: requests.Response) -> tuple[str, str]:
    """(error name, message) of an XRPC error body; ("", "") when there is none."""
    if response.status_code < 400:
        return "", ""
    body = json_object(response)
    return str(body.get("error") or ""), str(body.get("message") or "")[:200]


def _jwt_claims(token: str) -> dict[str, Any]:
    """The claims of a JWT (read, not verified); {} when it is not one."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return {}
    return claims if isinstance(claims, dict) else {}


def _iso_millis(moment: datetime) -> str:
    """RFC 3339 in UTC with milliseconds, as Bluesky's own clients write createdAt."""
    moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _langs_of(tag: str) -> list[str] | None:
    tag = (tag or "").strip().replace("_", "-")
    return [tag] if re.fullmatch(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*", tag) else None


def _shorten(text: str, limit: int) -> str:
    clusters = regex.findall(r"\X", text or "")
    if len(clusters) <= limit:
        return text or ""
    return "".join(clusters[: max(0, limit - 1)]).rstrip() + "…"
