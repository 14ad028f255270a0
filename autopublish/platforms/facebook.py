"""Facebook Pages: publish to a Page's feed through facebook-sdk's GraphAPI, made safe.

facebook-sdk 3.1.0 (the user's choice) builds paths and parses Graph's JSON; everything
it gets wrong for an unattended daemon is fixed underneath it by ``GraphTransport``,
the object handed to ``GraphAPI(session=...)``:

- the base URL: facebook-sdk's fixed ``https://graph.facebook.com/`` prefix is rewritten
  to the configured ``api_base`` (tests point it at a loopback fake);
- the version: ``GraphAPI`` rejects two-digit versions in its constructor, so it is built
  without one and ``.version`` is set afterwards from the validated option;
- timeouts: every call gets the channel's (connect, read) timeouts;
- secrecy: facebook-sdk puts ``access_token`` in the query string of GETs, where
  exception texts and urllib3's DEBUG request lines would show it. The transport moves
  it to an ``Authorization: OAuth`` header; POSTs keep it in the form body. Calls whose
  parameters are themselves secrets (debug_token's ``input_token``) go through Graph's
  batch endpoint, in a POST body. No URL ever reaches a log line or an error message;
  requests' exceptions (whose text holds the URL) are translated, never chained;
- HTTP status: facebook-sdk ignores it (a 500 with a JSON body is "success", an HTML
  error page a vague "Maintype" error). The transport records every status and refuses
  any answer facebook-sdk would misread.

Graph's errors are classified on ``error.code``/``error_subcode`` (plus the recorded
status and usage headers) once, in ``FacebookPublisher._graph_error``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, ClassVar, Literal, TypeVar
from urllib.parse import parse_qs, urlsplit, urlunsplit

import requests
from pydantic import field_validator

from autopublish.errors import (
    AuthError,
    PermanentError,
    PublishError,
    RateLimitedError,
    TransientError,
    UncertainError,
)
from autopublish.models import Health, HealthLevel, Post, PostLimits, Receipt
from autopublish.platforms.base import URL_PATTERN, PlatformOptions, Publisher, PublisherEnv, transport_failure
from autopublish.platforms.meta_graph import as_int, usage_wait
from autopublish.secrets import Redactor, SecretRef

with warnings.catch_warnings():
    # facebook-sdk 3.1.0 has a non-raw regex literal ("\d"): a Deprecation/SyntaxWarning
    # when its source is compiled, an ImportError under -W error.
    warnings.simplefilter("ignore", DeprecationWarning)
    warnings.simplefilter("ignore", SyntaxWarning)
    import facebook as facebook  # re-exported for connect_facebook

log = logging.getLogger(__name__)

SDK_GRAPH_URL = "https://graph.facebook.com/"  # facebook.FACEBOOK_GRAPH_URL, the prefix we rewrite
DEFAULT_API_BASE = "https://graph.facebook.com"
DEFAULT_API_VERSION = "v23.0"
MAX_MESSAGE = 63206  # characters in a Page post's message
PHOTO_LINK_RESERVE = 2050  # room kept in photo mode for "\n\n" + the article link
EXPIRY_WARNING = timedelta(days=7)
REQUIRED_SCOPES = ("pages_manage_posts", "pages_read_engagement")

DEFAULT_RATE_WAIT = 15 * 60.0  # seconds, when throttled and the usage headers say nothing
LONG_BLOCK_WAIT = 6 * 3600.0  # seconds, for 368 "temporarily blocked / posting too fast"
TRANSIENT_CODES = frozenset({1, 2})
RATE_CODES = frozenset({4, 17, 32, 341, 613})
LONG_BLOCK_CODES = frozenset({368})
LONG_BLOCK_SUBCODES = frozenset({1390008})
TOKEN_CODES = frozenset({190, 102})
TOKEN_SUBCODES = frozenset({458, 459, 460, 463, 464, 467, 492})
PERMISSION_CODES = frozenset({10, *range(200, 300)})
DUPLICATE_CODE = 506
BAD_IMAGE_CODE = 324

VERSION_PATTERN = re.compile(r"^v\d{2}\.\d$")
PAGE_ID_PATTERN = re.compile(r"^\d{1,32}$")
PERMISSION_PATTERN = re.compile(r"\b(pages_[a-z_]+|publish_[a-z_]+|business_management|read_insights)\b")
EXPIRED_ON = re.compile(r"expired on (?:[A-Za-z]+, )?(\d{1,2})-([A-Za-z]{3})-(\d{2,4}) (\d{1,2}):(\d{2}):(\d{2}) ?([A-Z]{2,4})?")
ZONES = {"PST": -8, "PDT": -7, "UTC": 0, "GMT": 0}
MONTHS = {m: i for i, m in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1)}

T = TypeVar("T")


# --- options --------------------------------------------------------------------------
def validate_api_version(value: object) -> str:
    """``"v23.0"`` (a leading v is added to ``"23.0"``); ValueError with the fix otherwise."""
    text = str(value).strip()
    if re.fullmatch(r"\d{2}\.\d", text):
        text = "v" + text
    if not VERSION_PATTERN.match(text):
        raise ValueError(
            f'api_version must look like "{DEFAULT_API_VERSION}" (v, two-digit major, dot, minor); got {str(value)!r}'
        )
    return text


def validate_api_base(value: object) -> str:
    text = str(value).strip().rstrip("/")
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ValueError(f'api_base must be an http(s) address like "{DEFAULT_API_BASE}"')
    return text


class FacebookOptions(PlatformOptions):
    """``[channels.NAME]`` keys for a Facebook Page."""

    page_id: str
    access_token: SecretRef
    api_base: str = DEFAULT_API_BASE
    api_version: str = DEFAULT_API_VERSION
    post_as: Literal["link", "photo", "text"] = "link"
    rescrape: bool = True
    app_secret: SecretRef | None = None  # optional: adds appsecret_proof to every call
    read_back_limit: int = 25  # newest posts read to settle an uncertain delivery

    @field_validator("page_id", mode="before")
    @classmethod
    def _page_id(cls, value: object) -> str:
        text = str(value).strip()
        if not PAGE_ID_PATTERN.match(text):
            raise ValueError(
                "page_id must be the Page's numeric id (Page > About > Page transparency, "
                "or printed by: autopublish connect facebook)"
            )
        return text

    @field_validator("api_version", mode="before")
    @classmethod
    def _version(cls, value: object) -> str:
        return validate_api_version(value)

    @field_validator("api_base", mode="before")
    @classmethod
    def _base(cls, value: object) -> str:
        return validate_api_base(value)

    @field_validator("read_back_limit")
    @classmethod
    def _limit(cls, value: int) -> int:
        if not 1 <= value <= 100:
            raise ValueError("read_back_limit must be between 1 and 100")
        return value


# --- the transport under facebook-sdk ----------------------------------------------
class GraphTransportError(Exception):
    """The request failed below HTTP. ``sent`` is False only when it surely never left.

    Carries no text from requests (it holds the URL, and so the token).
    """

    def __init__(self, kind: str, name: str) -> None:
        super().__init__(kind)
        self.kind = kind  # "unreachable" | "no_answer" | "bad_address" | "other"
        self.name = name
        self.sent = kind not in ("unreachable", "bad_address")


class GraphResponseError(Exception):
    """An answer facebook-sdk would misread: not JSON, unparsable, or an error status
    without Graph's error envelope (an HTML 5xx page, a proxy error)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"HTTP {status}: {reason}")
        self.status = status
        self.reason = reason


def _classify_transport(exc: requests.RequestException) -> GraphTransportError:
    return GraphTransportError(transport_failure(exc), type(exc).__name__)


class GraphTransport:
    """What facebook-sdk calls ``session``: forwards to the shared requests.Session.

    Rewrites the Graph prefix to ``api_base``, adds timeouts, keeps tokens out of URLs
    (query ``access_token`` -> Authorization header; ``appsecret_proof`` added when an app
    secret is set), records the last status and headers, and raises GraphTransportError /
    GraphResponseError instead of handing facebook-sdk something it would misread.
    """

    def __init__(
        self,
        session: requests.Session,
        *,
        api_base: str,
        timeout: tuple[float, float],
        app_secret: str | None = None,
    ) -> None:
        self.session = session
        self.api_base = api_base.rstrip("/") + "/"
        self.timeout = timeout
        self.app_secret = app_secret
        self.last_status: int | None = None
        self.last_headers: Mapping[str, str] = {}

    def _proof(self, token: str) -> str:
        assert self.app_secret is not None
        return hmac.new(self.app_secret.encode(), token.encode(), hashlib.sha256).hexdigest()

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        if url.startswith(SDK_GRAPH_URL):
            url = self.api_base + url[len(SDK_GRAPH_URL) :]
        params = dict(kwargs.pop("params", None) or {})
        data = kwargs.pop("data", None)
        headers = dict(kwargs.pop("headers", None) or {})
        token = params.pop("access_token", None)
        if token:
            headers["Authorization"] = f"OAuth {token}"
            if self.app_secret:
                params["appsecret_proof"] = self._proof(token)
        if isinstance(data, dict) and data.get("access_token") and self.app_secret:
            data = {**data, "appsecret_proof": self._proof(str(data["access_token"]))}
        kwargs.pop("timeout", None)
        kwargs.pop("proxies", None)  # the shared session's own proxy settings apply
        if not kwargs.get("files"):
            kwargs.pop("files", None)
        self.last_status, self.last_headers = None, {}
        failure: GraphTransportError | None = None
        try:
            response = self.session.request(
                method, url, params=params or None, data=data, headers=headers,
                timeout=self.timeout, allow_redirects=False, **kwargs,
            )
        except requests.RequestException as exc:
            failure = _classify_transport(exc)
        if failure is not None:
            raise failure  # outside the except block: the URL-bearing exception is not chained
        self.last_status, self.last_headers = response.status_code, response.headers
        self._vet(response)
        return response

    @staticmethod
    def _vet(response: requests.Response) -> None:
        """Refuse answers facebook-sdk would turn into success, KeyError or vague errors."""
        ctype = response.headers.get("Content-Type", "")
        status = response.status_code
        if "json" not in ctype.lower():
            raise GraphResponseError(status, "the answer was not JSON")
        try:
            body = json.loads(response.content or b"null")
        except ValueError:
            raise GraphResponseError(status, "the JSON could not be read") from None
        if status >= 300 and not (isinstance(body, dict) and isinstance(body.get("error"), dict)):
            raise GraphResponseError(status, "an error status without Graph's error details")


class GraphClient:
    """facebook-sdk's GraphAPI over a GraphTransport, for the adapter and ``connect``."""

    def __init__(
        self,
        session: requests.Session,
        *,
        api_base: str,
        api_version: str,
        access_token: str | None,
        timeout: tuple[float, float],
        app_secret: str | None = None,
    ) -> None:
        self.transport = GraphTransport(session, api_base=api_base, timeout=timeout, app_secret=app_secret)
        # No version= here: GraphAPI.__init__ only accepts "2.8".."3.1"; paths use .version.
        self.graph = facebook.GraphAPI(access_token=access_token, timeout=timeout, session=self.transport)
        self.graph.version = validate_api_version(api_version)

    @property
    def version(self) -> str:
        return str(self.graph.version)

    def get(self, path: str, **params: str) -> Any:
        """GET ``/{version}/{path}`` (the token travels in a header)."""
        return self.graph.request(f"{self.version}/{path}", args=dict(params))

    def post(self, path: str, **fields: str) -> Any:
        """POST form fields to ``/{version}/{path}`` (the token travels in the body)."""
        return self.graph.request(f"{self.version}/{path}", post_args=dict(fields), method="POST")

    def batch_get(self, relative_url: str) -> tuple[int, Any]:
        """One GET through Graph's batch endpoint, so its query (a secret) rides in a POST body.

        Returns (HTTP code of the inner call, its parsed body or None).
        """
        answer = self.graph.request(
            f"{self.version}/",
            post_args={"batch": json.dumps([{"method": "GET", "relative_url": relative_url}]), "include_headers": "false"},
            method="POST",
        )
        if not isinstance(answer, list) or not answer or not isinstance(answer[0], dict):
            raise GraphResponseError(self.transport.last_status or 0, "the batch answer could not be read")
        item = answer[0]
        try:
            body = json.loads(item.get("body") or "null")
        except (TypeError, ValueError):
            body = None
        return int(item.get("code") or 0), body


# --- Graph error details -------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class GraphFault:
    """Graph's error envelope, read once."""

    code: int | None
    subcode: int | None
    message: str
    type: str
    fbtrace_id: str
    is_transient: bool

    @classmethod
    def from_result(cls, result: object) -> GraphFault:
        error = result.get("error") if isinstance(result, dict) else None
        if not isinstance(error, dict):
            error = {}
        return cls(
            code=as_int(error.get("code")),
            subcode=as_int(error.get("error_subcode")),
            message=str(error.get("message") or ""),
            type=str(error.get("type") or ""),
            fbtrace_id=str(error.get("fbtrace_id") or ""),
            is_transient=bool(error.get("is_transient")),
        )

    def detail(self, redact: Callable[[str], str]) -> str:
        code = f"{self.code}" + (f"/{self.subcode}" if self.subcode else "")
        trace = f" fbtrace_id={self.fbtrace_id}" if self.fbtrace_id else ""
        return redact(f"Graph error {code}{trace}: {self.message[:300]}")


def expiry_from_message(message: str) -> datetime | None:
    """The date in "Session has expired on Saturday, 14-Nov-26 04:00:00 PST.", as aware UTC."""
    match = EXPIRED_ON.search(message)
    if not match:
        return None
    day, month, year, hour, minute, second, zone = match.groups()
    month_no = MONTHS.get(month.lower())
    if month_no is None:
        return None
    full_year = int(year) + (2000 if len(year) == 2 else 0)
    offset = timezone(timedelta(hours=ZONES.get(zone or "UTC", 0)))
    try:
        when = datetime(full_year, month_no, int(day), int(hour), int(minute), int(second), tzinfo=offset)
    except ValueError:
        return None
    return when.astimezone(UTC)


def normalise_link(url: str) -> str:
    """Compare links loosely: no scheme, lower-case host without www., no trailing slash or fragment."""
    parts = urlsplit(url.strip())
    host = parts.netloc.lower().removeprefix("www.")
    path = parts.path.rstrip("/")
    return urlunsplit(("", host, path, parts.query, "")).lstrip("/")


def unshim(url: str) -> str:
    """Facebook's l.facebook.com/l.php?u=<target> redirect -> the target."""
    parts = urlsplit(url)
    if parts.netloc.lower().endswith("facebook.com") and parts.path.startswith("/l.php"):
        target = parse_qs(parts.query).get("u")
        if target:
            return target[0]
    return url


def permalink(remote_id: str) -> str:
    page, _, post = remote_id.partition("_")
    if post:
        return f"https://www.facebook.com/{page}/posts/{post}"
    return f"https://www.facebook.com/{remote_id}"


def format_day(when: datetime) -> str:
    return f"{when.day} {when.strftime('%B %Y')}"


# --- the publisher -------------------------------------------------------------------
class FacebookPublisher(Publisher[FacebookOptions]):
    """A Facebook Page, posting as the Page with a Page access token.

    Not idempotent (Graph has no idempotency key; 506 only catches identical consecutive
    text), but reads back: find_existing looks for the article's link in the Page's
    newest published posts.
    """

    name = "facebook"
    label = "Facebook"
    Options = FacebookOptions
    limits = PostLimits(max_length=MAX_MESSAGE, images=True, link_card=True)
    idempotent: ClassVar[bool] = False
    can_read_back: ClassVar[bool] = True
    default_template = "{title}\n\n{summary}"

    def __init__(self, channel: str, options: FacebookOptions, env: PublisherEnv) -> None:
        super().__init__(channel, options, env)
        token = options.access_token.reveal()
        secret = options.app_secret.reveal() if options.app_secret else None
        self._redact = Redactor([v for v in (token, secret) if v])
        self.client = GraphClient(
            env.session,
            api_base=options.api_base,
            api_version=options.api_version,
            access_token=token,
            timeout=env.timeout,
            app_secret=secret,
        )

    # --- length ----------------------------------------------------------------------
    def count(self, text: str) -> int:
        """Characters (code points): never fewer than graphemes, so always on the safe side."""
        return len(text)

    def current_limits(self) -> PostLimits:
        if self.options.post_as == "photo":  # the link is appended to the caption
            return PostLimits(max_length=MAX_MESSAGE - PHOTO_LINK_RESERVE, images=True, link_card=False)
        if self.options.post_as == "text":
            return PostLimits(max_length=MAX_MESSAGE, images=False, link_card=False)
        return self.limits

    # --- publish -----------------------------------------------------------------------
    def publish(self, post: Post) -> Receipt:
        """One post on the Page (plus an optional link re-scrape, whose failure is ignored)."""
        link = post.link or post.article.link
        mode = self.options.post_as
        if mode == "photo" and not post.image:
            mode = "link"  # an article without an image still gets its link card
        if mode == "photo":
            caption = post.text
            if link and link not in caption:
                caption = f"{caption}\n\n{link}" if caption else link
            self._check_length(caption)
            receipt = self._post_photo(post.image or "", caption)
            if receipt is not None:
                return receipt
            mode = "link"  # Facebook could not fetch the image: nothing was posted
        if mode == "text":
            if not post.text.strip():
                raise self.error(PermanentError, "The post for Facebook is empty; check the channel's template")
            self._check_length(post.text)
            return self._post_feed(message=post.text)
        self._check_length(post.text)
        if self.options.rescrape and link:
            self._rescrape(link)
        fields = {"link": link}
        if post.text:
            fields["message"] = post.text
        return self._post_feed(**fields)

    def _check_length(self, text: str) -> None:
        if self.count(text) > MAX_MESSAGE:
            raise self.error(
                PermanentError,
                f"The post is {self.count(text)} characters long; Facebook allows {MAX_MESSAGE}",
            )

    def _post_feed(self, **fields: str) -> Receipt:
        answer = self._call(lambda g: g.put_object(self.options.page_id, "feed", **fields), writes=True)
        remote_id = self._answer_id(answer, "id")
        return Receipt(remote_id=remote_id, url=permalink(remote_id))

    def _post_photo(self, image: str, caption: str) -> Receipt | None:
        """The photo post's receipt, or None when Facebook could not use the image."""
        try:
            answer = self._call(
                lambda g: g.put_object(self.options.page_id, "photos", url=image, caption=caption, published="true"),
                writes=True,
            )
        except PermanentError as exc:
            if exc.code == BAD_IMAGE_CODE:
                log.warning(
                    "Facebook could not use the article's image; posting the link instead",
                    extra={"channel": self.channel, "platform": self.name},
                )
                return None
            raise
        remote_id = self._answer_id(answer, "post_id", fallback="id")
        return Receipt(remote_id=remote_id, url=permalink(remote_id))

    def _answer_id(self, answer: object, key: str, fallback: str | None = None) -> str:
        value = answer.get(key) if isinstance(answer, dict) else None
        if not value and fallback and isinstance(answer, dict):
            value = answer.get(fallback)
        if not value:
            raise self.error(
                UncertainError,
                "Facebook accepted the post but did not say which post it made; it may have been published",
            )
        return str(value)

    def _rescrape(self, link: str) -> None:
        """Ask Facebook to re-read the article's og: tags; a failure never blocks the post."""
        try:
            self._call(lambda g: g.request(f"{g.version}/", post_args={"id": link, "scrape": "true"}), writes=False)
        except PublishError as exc:
            log.warning(
                "Facebook could not refresh the link preview (%s, code %s); posting anyway",
                type(exc).__name__,
                exc.code,
                extra={"channel": self.channel, "platform": self.name},
            )

    # --- read back ----------------------------------------------------------------------
    def find_existing(self, post: Post) -> Receipt | None:
        """The Page's newest published post that carries the article's link (or exact text)."""
        fields = "id,message,permalink_url,created_time,attachments{url,unshimmed_url}"
        answer = self._call(
            lambda g: g.get_connections(
                self.options.page_id, "published_posts", fields=fields, limit=str(self.options.read_back_limit)
            ),
            writes=False,
        )
        items = answer.get("data") if isinstance(answer, dict) else None
        if not isinstance(items, list):
            raise self.error(TransientError, "Facebook's list of the Page's posts could not be read; will try again later")
        wanted = {normalise_link(u) for u in (post.link, post.article.link) if u}
        for item in items:
            if isinstance(item, dict) and item.get("id") and self._matches(item, wanted, post.text):
                remote_id = str(item["id"])
                return Receipt(remote_id=remote_id, url=str(item.get("permalink_url") or permalink(remote_id)))
        return None

    @staticmethod
    def _matches(item: dict[str, Any], wanted: set[str], text: str) -> bool:
        message = str(item.get("message") or "")
        links = [m.group(0).rstrip(".,;:!?)") for m in URL_PATTERN.finditer(message)]
        attachments = item.get("attachments")
        for attachment in (attachments.get("data") or []) if isinstance(attachments, dict) else []:
            if isinstance(attachment, dict):
                links += [unshim(str(attachment[k])) for k in ("unshimmed_url", "url") if attachment.get(k)]
        if item.get("link"):
            links.append(unshim(str(item["link"])))
        if wanted and any(normalise_link(link) in wanted for link in links):
            return True
        return bool(text.strip()) and message.strip() == text.strip()

    # --- check --------------------------------------------------------------------------
    def check(self) -> Health:
        """The Page's name, and the token's validity, type, scopes and expiry (debug_token)."""
        page = self._call(lambda g: g.get_object(self.options.page_id, fields="name"), writes=False)
        name = page.get("name") if isinstance(page, dict) else None
        where = f"the Page {name!r} ({self.options.page_id})" if name else f"the Page {self.options.page_id}"
        served = self.client.transport.last_headers.get("facebook-api-version", "")
        details: list[str] = []
        level = HealthLevel.OK
        if served and served != self.options.api_version:
            level = HealthLevel.WARNING
            details.append(
                f"Facebook answered with API {served} although {self.options.api_version} is configured "
                f"(that version has expired); set api_version = \"{served}\""
            )
        token = self.options.access_token.reveal()
        status, body = self._call(lambda g: self.client.batch_get(f"debug_token?input_token={token}"), writes=False)
        data = body.get("data") if isinstance(body, dict) else None
        if status != 200 or not isinstance(data, dict):
            fault = GraphFault.from_result(body)
            if fault.code in TOKEN_CODES:
                raise self._token_error(fault)
            details.append("Facebook did not say when the token expires or which permissions it has")
            return Health(HealthLevel.WARNING, f"Can post to {where}", tuple(details))
        return self._token_health(data, where, level, details)

    def _token_health(self, data: dict[str, Any], where: str, level: HealthLevel, details: list[str]) -> Health:
        env_name = self.options.access_token.env_name or "the Page token"
        fix = f"create a new Page token with: autopublish connect facebook (it writes {env_name} to .env)"
        if not data.get("is_valid", False):
            return Health(HealthLevel.ERROR, f"Facebook says the token in {env_name} is not valid; {fix}", tuple(details))
        kind = str(data.get("type") or "").upper()
        if kind and kind != "PAGE":
            return Health(HealthLevel.ERROR, f"The token in {env_name} is a {kind.lower()} token, not a Page token; {fix}", tuple(details))
        profile = str(data.get("profile_id") or "")
        if profile and profile != self.options.page_id:
            return Health(
                HealthLevel.ERROR,
                f"The token in {env_name} belongs to the Page {profile}, not to page_id {self.options.page_id}; {fix}",
                tuple(details),
            )
        scopes = {str(s) for s in data.get("scopes") or []}
        missing = [s for s in REQUIRED_SCOPES if s not in scopes]
        if "pages_manage_posts" in missing:
            return Health(HealthLevel.ERROR, f"The Page token lacks the permission pages_manage_posts, needed to post; {fix}", tuple(details))
        if missing:
            level = HealthLevel.WARNING
            details.append(f"The Page token lacks {', '.join(missing)}: uncertain posts cannot be checked by reading the Page back")
        expires_at = self._epoch(data.get("expires_at"))
        data_expires = self._epoch(data.get("data_access_expires_at"))
        now = self.env.now()
        soonest = min((t for t in (expires_at, data_expires) if t is not None), default=None)
        if soonest is not None and soonest <= now:
            return Health(HealthLevel.ERROR, f"The Page token expired on {format_day(soonest)}; {fix}", tuple(details), expires_at=soonest)
        if soonest is not None and soonest - now <= EXPIRY_WARNING:
            level = HealthLevel.WARNING
            details.append(f"The Page token expires on {format_day(soonest)}; {fix} before then")
        elif expires_at is None:
            details.append("The Page token does not expire")
        else:
            details.append(f"The Page token expires on {format_day(expires_at)}")
        summary = f"Can post to {where} as the Page"
        return Health(level, summary, tuple(details), expires_at=soonest)

    @staticmethod
    def _epoch(value: object) -> datetime | None:
        seconds = as_int(value)
        if not seconds:  # 0 or absent: never
            return None
        return datetime.fromtimestamp(seconds, UTC)

    # --- one Graph call, errors translated once --------------------------------------------
    def _call(self, fn: Callable[[facebook.GraphAPI], T], *, writes: bool) -> T:
        """Run one facebook-sdk call; every failure leaves as a PublishError, unchained."""
        failure: PublishError | None = None
        try:
            return fn(self.client.graph)
        except PublishError:
            raise
        except facebook.GraphAPIError as exc:
            failure = self._graph_error(GraphFault.from_result(exc.result), writes=writes)
        except GraphResponseError as exc:
            failure = self._response_error(exc, writes=writes)
        except GraphTransportError as exc:
            failure = self._transport_failure(exc, writes=writes)
        except Exception as exc:  # facebook-sdk tripping over an answer: after sending, never "success"
            cls = UncertainError if writes else TransientError
            text = "may have been published" if writes else "will try again later"
            failure = self.error(cls, f"Facebook's answer could not be understood; the post {text}", detail=type(exc).__name__)
        raise failure

    def _transport_failure(self, exc: GraphTransportError, *, writes: bool) -> PublishError:
        if exc.kind == "unreachable":
            return self.error(TransientError, "Could not reach Facebook; will try again later", detail=exc.name)
        if exc.kind == "bad_address":
            return self.error(PermanentError, "The api_base configured for Facebook is not a valid address", detail=exc.name)
        if writes:
            return self.error(
                UncertainError,
                "Facebook did not answer after receiving the post; it may have been published",
                detail=exc.name,
            )
        return self.error(TransientError, "Facebook did not answer in time; will try again later", detail=exc.name)

    def _response_error(self, exc: GraphResponseError, *, writes: bool) -> PublishError:
        status = exc.status
        if writes and (status >= 500 or status < 300):
            return self.error(
                UncertainError,
                f"Facebook answered HTTP {status} in a form that could not be read; the post may have been published",
                code=status,
                detail=exc.reason,
            )
        if status >= 500 or status == 429 or status < 300:
            return self.error(TransientError, f"Facebook answered HTTP {status} ({exc.reason}); will try again later", code=status, detail=exc.reason)
        return self.error(PermanentError, f"Facebook refused the request with HTTP {status} ({exc.reason})", code=status, detail=exc.reason)

    def _graph_error(self, fault: GraphFault, *, writes: bool) -> PublishError:
        """Graph's error envelope -> the core's vocabulary (classified on code and subcode)."""
        code, sub = fault.code, fault.subcode
        status = self.client.transport.last_status or 0
        headers = self.client.transport.last_headers
        detail = fault.detail(self._redact)
        if code in TOKEN_CODES or sub in TOKEN_SUBCODES:
            return self._token_error(fault)
        if code in PERMISSION_CODES:
            return self._permission_error(fault, writes=writes)
        if code in LONG_BLOCK_CODES or sub in LONG_BLOCK_SUBCODES:
            wait = max(usage_wait(headers) or 0.0, LONG_BLOCK_WAIT)
            return self.error(
                RateLimitedError,
                f"Facebook has temporarily blocked posting to this Page (too many posts); will try again in about {round(wait / 3600)} hours",
                retry_after=wait, code=code, detail=detail,
            )
        if code in RATE_CODES or (code is not None and 80000 <= code <= 80099):
            wait = usage_wait(headers) or DEFAULT_RATE_WAIT
            return self.error(
                RateLimitedError,
                f"Facebook says this app or Page made too many calls; will try again in about {max(1, round(wait / 60))} minutes",
                retry_after=wait, code=code, detail=detail,
            )
        if code == DUPLICATE_CODE:
            return self.error(
                UncertainError,
                "Facebook refused the post as a duplicate of a recent one; it may already have been published",
                code=code, detail=detail,
            )
        if writes and status >= 500:
            return self.error(
                UncertainError,
                f"Facebook failed (HTTP {status}) while receiving the post; it may have been published",
                code=code, detail=detail,
            )
        if code in TRANSIENT_CODES or fault.is_transient or status >= 500:
            return self.error(TransientError, "Facebook had a temporary problem; will try again later", code=code, detail=detail)
        if code == BAD_IMAGE_CODE:
            return self.error(PermanentError, "Facebook could not use the article's image", code=code, detail=detail)
        if code == 100 and sub == 33:
            return self.error(
                PermanentError,
                f"Facebook says the Page {self.options.page_id} does not exist or the token cannot reach it; check page_id in the channel's config",
                code=code, detail=detail,
            )
        if code == 1609005:
            return self.error(PermanentError, "Facebook could not read the article's link to build its preview", code=code, detail=detail)
        return self.error(PermanentError, f"Facebook refused the request (error {code})", code=code, detail=detail)

    def _token_error(self, fault: GraphFault) -> AuthError:
        env_name = self.options.access_token.env_name or "FACEBOOK_PAGE_TOKEN"
        fix = (
            f"create a new Page token (autopublish connect facebook), put it in .env as {env_name} "
            f"and run: autopublish resume {self.channel}"
        )
        expires_at = expiry_from_message(fault.message)
        reasons = {
            458: "the app was removed from the account that created it",
            459: "the account that created it must log in at facebook.com to clear a security check",
            460: "the password of the account that created it was changed",
            464: "the account that created it is not confirmed",
            492: "the account that created it no longer manages the Page",
        }
        if expires_at is not None:
            message = f"Facebook says the Page token expired on {format_day(expires_at)}; {fix}"
        elif fault.subcode == 463 or "expired" in fault.message.lower():
            message = f"Facebook says the Page token has expired; {fix}"
        elif fault.subcode in reasons:
            message = f"Facebook says the Page token is no longer valid because {reasons[fault.subcode]}; {fix}"
        else:
            message = f"Facebook says the Page token is invalid or was revoked; {fix}"
        error = self.error(AuthError, message, code=fault.code, detail=fault.detail(self._redact))
        assert isinstance(error, AuthError)
        error.expires_at = expires_at
        return error

    def _permission_error(self, fault: GraphFault, *, writes: bool) -> AuthError:
        named = list(dict.fromkeys(PERMISSION_PATTERN.findall(fault.message)))
        if not named:
            named = ["pages_manage_posts"] if writes else ["pages_read_engagement"]
        perms = " and ".join(named)
        env_name = self.options.access_token.env_name or "FACEBOOK_PAGE_TOKEN"
        noun = "permission" if len(named) == 1 else "permissions"
        message = (
            f"Facebook says this needs the {perms} {noun}, which the Page token lacks; create a new Page token "
            f"with {noun} granted (autopublish connect facebook), put it in .env as {env_name} "
            f"and run: autopublish resume {self.channel}"
        )
        error = self.error(AuthError, message, code=fault.code, detail=fault.detail(self._redact))
        assert isinstance(error, AuthError)
        return error

