"""Shared plumbing for Meta's Graph-style publishing APIs (Threads and Instagram).

Both platforms publish in two steps (create a container, then ``*_publish`` it), answer
errors in the Graph envelope ``{"error": {"message", "type", "code", "error_subcode",
"is_transient", "fbtrace_id"}}`` (classify on the code, not the HTTP status), count a
24-hour publishing quota, and take the token as an ``access_token`` parameter.

Token carriage: POSTs put ``access_token`` in the form body, never in the URL; GETs have
no body, so the token travels in the query string, as Meta documents. No URL is ever put
into a log line or an error message here, and Meta's own error text is scrubbed of the
token before it is kept. (urllib3 logs request lines at DEBUG: the CLI keeps HTTP client
loggers at WARNING and the redaction filter masks ``access_token=`` values.)

Container creation has no public effect (an unpublished container expires after 24 h),
so only the ``*_publish`` step can make a failure Uncertain.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import urlsplit

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
from autopublish.models import Receipt
from autopublish.platforms.base import URL_PATTERN, PlatformOptions, Publisher
from autopublish.secrets import SecretRef

log = logging.getLogger(__name__)

DEFAULT_CALL_LIMIT_WAIT = 600.0  # seconds; Meta's call-rate errors come without a time
DEFAULT_QUOTA_WAIT = 3600.0  # seconds; when the end of the 24 h window cannot be read
MIN_QUOTA_WAIT = 60.0
QUOTA_WINDOW = 86400  # seconds; both platforms count posts over a moving 24 h
READ_BACK_LIMIT = 50  # newest posts read when settling an uncertain delivery

TOKEN_CODES = frozenset({190, 102})  # token expired / invalid / session
RATE_LIMIT_CODES = frozenset({4, 17, 32, 341, 613, 80001, 80002, 80004, 80005, 80006, 80008, 80014})
QUOTA_CODES = frozenset({9})  # Instagram "max posts reached" (subcode 2207042)
QUOTA_SUBCODES = frozenset({2207042})
TRANSIENT_CODES = frozenset({1, 2, -1, -2})
# Subcodes that say "not published, do it again with a new container".
NOT_APPLIED_SUBCODES = frozenset({2207003, 2207020, 2207027, 2207032})
POSTING_TOO_FAST = (368, 1390008)
SPAM_SUBCODES = frozenset({2207051})  # "restricted to protect the community": not retried
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S%z"  # "2026-08-01T10:15:00+0000"
VERSION = re.compile(r"^v\d+\.\d+$")
ACCOUNT_ID = re.compile(r"^(?:\d+|me)$")


# --- option validators shared by the Threads and Instagram options ------------------
def validate_api_base(value: str) -> str:
    value = value.strip().rstrip("/")
    if not re.match(r"^https?://[^/\s]+$", value):
        raise ValueError('must be the API address without a path, like "https://graph.threads.net" or "https://graph.facebook.com"')
    return value


def validate_account_id(value: object) -> str:
    text = str(value).strip()
    if not ACCOUNT_ID.match(text):
        raise ValueError('must be the numeric account id, like "17841400000000000"')
    return text


def validate_version(value: str) -> str:
    value = value.strip()
    if not VERSION.match(value):
        raise ValueError('must be an API version like "v1.0" or "v23.0"')
    return value


class MetaGraphOptions(PlatformOptions):
    """The keys Threads and Instagram share; each sets its own api_base and api_version default."""

    api_base: str
    api_version: str
    user_id: str
    access_token: SecretRef

    check_base = field_validator("api_base")(validate_api_base)
    check_user = field_validator("user_id", mode="before")(validate_account_id)
    check_version = field_validator("api_version")(validate_version)


@dataclass(frozen=True, slots=True)
class GraphError:
    """The Graph error envelope, with the token already scrubbed from ``message``."""

    status: int
    message: str
    type: str = ""
    code: int | None = None
    subcode: int | None = None
    transient: bool = False
    trace: str = ""

    @classmethod
    def from_body(cls, status: int, body: Mapping[str, Any], token: str) -> GraphError:
        error = body.get("error")
        if not isinstance(error, Mapping):
            error = {}
        message = str(error.get("error_user_msg") or error.get("message") or "").strip()
        if token:
            message = message.replace(token, "***")
        return cls(
            status=status,
            message=message[:300],
            type=str(error.get("type") or ""),
            code=as_int(error.get("code")),
            subcode=as_int(error.get("error_subcode")),
            transient=error.get("is_transient") is True,
            trace=str(error.get("fbtrace_id") or ""),
        )

    @property
    def detail(self) -> str:
        """Codes and trace id for the error's ``detail`` attribute (no secrets)."""
        parts = [f"HTTP {self.status}"]
        if self.code is not None:
            parts.append(f"code {self.code}" + (f"/{self.subcode}" if self.subcode is not None else ""))
        if self.type:
            parts.append(self.type)
        if self.trace:
            parts.append(f"fbtrace_id {self.trace}")
        return ", ".join(parts)


@dataclass(frozen=True, slots=True)
class Quota:
    """A publishing quota: ``used`` of ``total`` posts in the last ``window`` seconds."""

    used: int
    total: int
    window: int = QUOTA_WINDOW

    @property
    def exhausted(self) -> bool:
        return self.total > 0 and self.used >= self.total

    def describe(self) -> str:
        hours = max(1, round(self.window / 3600))
        return f"{self.used} of {self.total} posts used in the last {hours} hours"


def as_int(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, str, bytes)):
        return None
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        return None


def usage_wait(headers: Mapping[str, str]) -> float | None:
    """Seconds until access returns, from X-Business-Use-Case-Usage / X-App-Usage / X-Page-Usage.

    Graph gives ``estimated_time_to_regain_access`` in minutes; the largest one wins.
    """
    minutes: list[float] = []
    for name in ("X-Business-Use-Case-Usage", "X-App-Usage", "X-Page-Usage", "X-Ad-Account-Usage"):
        raw = headers.get(name)
        if not raw:
            continue
        try:
            data = json.loads(raw)
        except ValueError:
            continue
        minutes.extend(_regain_minutes(data))
    positive = [m for m in minutes if m > 0]
    return max(positive) * 60.0 if positive else None


def _regain_minutes(data: object) -> Iterable[float]:
    if isinstance(data, dict):
        for key, value in data.items():
            if key == "estimated_time_to_regain_access":
                try:
                    yield float(value)
                except (TypeError, ValueError):
                    pass
            else:
                yield from _regain_minutes(value)
    elif isinstance(data, list):
        for value in data:
            yield from _regain_minutes(value)


def log_usage(headers: Mapping[str, str], label: str) -> None:
    """Log (at DEBUG, WARNING past 80%) how much of Meta's call budget ``X-App-Usage`` says is used."""
    raw = headers.get("x-app-usage")
    if not raw:
        return
    try:
        data = json.loads(raw)
        highest = max(float(v) for v in data.values())
    except (ValueError, TypeError, AttributeError):
        return
    level = logging.WARNING if highest >= 80 else logging.DEBUG
    log.log(level, "%s call budget is %.0f%% used", label, highest)


def parse_timestamp(value: object) -> datetime | None:
    """A Graph timestamp ("2026-08-01T10:15:00+0000") as an aware datetime."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.strptime(value, TIMESTAMP_FORMAT)
    except ValueError:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None


def normalise_link(url: str) -> str:
    """A URL reduced for comparison: lower-case scheme and host, no trailing slash or fragment."""
    url = url.strip().rstrip(".,;:!?)")
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    query = f"?{parts.query}" if parts.query else ""
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{path}{query}"


def mentions_link(text: str, link: str) -> bool:
    """True when ``text`` contains ``link`` (compared after normalising both)."""
    if not text or not link:
        return False
    wanted = normalise_link(link)
    return any(normalise_link(m.group(0)) == wanted for m in URL_PATTERN.finditer(text))


class MetaGraphPublisher(Publisher[MetaGraphOptions]):
    """Base of the Threads and Instagram adapters: Graph requests and error translation.

    Subclasses set the class data below and have options with ``api_base``,
    ``api_version``, ``user_id`` and ``access_token``.
    """

    token_env_default: ClassVar[str]  # the .env name shown to admins when the config hides it
    publish_permission: ClassVar[str]  # the permission the token needs to publish
    token_help: ClassVar[str]  # how an admin gets a new token, as a verb phrase
    quota_path: ClassVar[str]  # "{user_id}/..._publishing_limit"
    media_path: ClassVar[str]  # "{user_id}/..." listing the account's posts

    # --- addresses and credentials ------------------------------------------------
    def graph_url(self, path: str) -> str:
        options = self.options
        return f"{str(options.api_base).rstrip('/')}/{options.api_version}/{path.lstrip('/')}"

    def token(self) -> str:
        options = self.options
        return options.access_token.reveal()

    def token_env_name(self) -> str:
        options = self.options
        return getattr(options.access_token, "env_name", "") or self.token_env_default

    def user_path(self, suffix: str = "") -> str:
        options = self.options
        return f"{options.user_id}/{suffix}" if suffix else str(options.user_id)

    # --- requests -----------------------------------------------------------------
    def graph_get(self, path: str, params: Mapping[str, Any], *, what: str) -> dict[str, Any]:
        """GET a Graph object; raises Transient/RateLimited/Auth/Permanent errors."""
        query = {**params, "access_token": self.token()}
        response = self.request("GET", self.graph_url(path), writes=False, what=what, params=query)
        return self.graph_answer(response, publishes=False, what=what)

    def graph_post(self, path: str, data: Mapping[str, Any], *, publishes: bool, what: str) -> dict[str, Any]:
        """POST a form with the token in the body.

        ``publishes``: this call may make the post public, so a failure after sending is
        Uncertain; otherwise (container creation) it is Transient.
        """
        body = {**{k: v for k, v in data.items() if v is not None}, "access_token": self.token()}
        response = self.request("POST", self.graph_url(path), writes=publishes, what=what, data=body)
        return self.graph_answer(response, publishes=publishes, what=what)

    def graph_answer(self, response: requests.Response, *, publishes: bool, what: str) -> dict[str, Any]:
        """The JSON object of a Graph answer, or the error the envelope or status means."""
        log_usage(response.headers, self.label)
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, Mapping) and isinstance(body.get("error"), Mapping):
            error = GraphError.from_body(response.status_code, body, self.token())
            raise self.graph_error(error, response.headers, publishes=publishes, what=what)
        status = response.status_code
        if status < 300 and not isinstance(body, dict):
            if publishes:
                raise self.error(
                    UncertainError,
                    f"{what} answered with a body that could not be read; the post may have been published",
                    code=status,
                )
            raise self.error(TransientError, f"{what} answered with a body that could not be read; will try again later", code=status)
        if status >= 300 or not isinstance(body, dict):
            raise self.graph_error(GraphError(status=status, message=""), response.headers, publishes=publishes, what=what)
        return body

    # --- errors ---------------------------------------------------------------------
    def graph_error(self, error: GraphError, headers: Mapping[str, str], *, publishes: bool, what: str) -> PublishError:
        """Translate one Graph error into the core's vocabulary (never echoing the token)."""
        code, sub = error.code, error.subcode
        kwargs: dict[str, Any] = {"code": code if code is not None else error.status, "detail": error.detail}
        resume = f"autopublish resume {self.channel}"
        if code in TOKEN_CODES or (code is None and error.status == 401):
            return self.error(
                AuthError,
                f"{self.label} says {self._token_problem(sub)}; {self.token_help}, put it in .env as "
                f"{self.token_env_name()} and run: {resume}",
                **kwargs,
            )
        if code == 10 or (code is not None and 200 <= code <= 299) or (code is None and error.status == 403):
            return self.error(
                AuthError,
                f"{self.label} says the access token lacks the {self.publish_permission} permission; "
                f"grant it to the app, {self.token_help} with it, put it in .env as {self.token_env_name()} "
                f"and run: {resume}",
                **kwargs,
            )
        if sub in SPAM_SUBCODES:
            return self.error(
                PermanentError,
                f"{self.label} blocked the post as possible spam; an admin should check the account in the {self.label} app",
                **kwargs,
            )
        if code in QUOTA_CODES or sub in QUOTA_SUBCODES:
            return self.error(
                RateLimitedError,
                f"{self.label} says this account has reached its limit of posts for the last 24 hours; "
                "will try again when the window frees",
                retry_after=self.quota_wait(),
                **kwargs,
            )
        if code in RATE_LIMIT_CODES or (code, sub) == POSTING_TOO_FAST or (code is None and error.status == 429):
            return self.error(
                RateLimitedError,
                f"{self.label} says too many requests were made; will try again later",
                retry_after=usage_wait(headers) or DEFAULT_CALL_LIMIT_WAIT,
                **kwargs,
            )
        if sub in NOT_APPLIED_SUBCODES:
            return self.error(TransientError, f"{what} failed for a passing reason; nothing was published; will try again later", **kwargs)
        server_side = error.status >= 500 or code in TRANSIENT_CODES or error.transient
        if publishes and server_side:
            return self.error(
                UncertainError,
                f"{what} failed with a server error after receiving the post; it may have been published",
                **kwargs,
            )
        if server_side:
            return self.error(TransientError, f"{what} failed with a server error; nothing was published; will try again later", **kwargs)
        reason = f": {error.message}" if error.message else f" (HTTP {error.status})"
        return self.error(PermanentError, f"{self.label} refused the post{reason}", **kwargs)

    @staticmethod
    def _token_problem(subcode: int | None) -> str:
        return {
            463: "the access token expired",
            460: "the access token stopped working because the account password changed",
            458: "the app was removed from the account",
            459: "the account is locked until its owner logs in",
            464: "the account is not confirmed",
        }.get(subcode or 0, "the access token expired or is no longer valid")

    # --- publishing quota -----------------------------------------------------------
    def read_quota(self) -> Quota | None:
        """The account's publishing quota, or None when the answer has no usable numbers."""
        body = self.graph_get(self.user_path(self.quota_path), {"fields": "quota_usage,config"}, what=f"{self.label} (publishing limit)")
        data = body.get("data")
        entry = data[0] if isinstance(data, list) and data and isinstance(data[0], Mapping) else None
        if entry is None:
            return None
        raw_config = entry.get("config")
        config: Mapping[str, Any] = raw_config if isinstance(raw_config, Mapping) else {}
        used, total = as_int(entry.get("quota_usage")), as_int(config.get("quota_total"))
        if used is None or total is None:
            return None
        return Quota(used=used, total=total, window=as_int(config.get("quota_duration")) or QUOTA_WINDOW)

    def ensure_quota(self) -> Quota | None:
        """Read the quota before posting; RateLimitedError when it is used up.

        A quota read that fails for a lasting reason is logged and ignored (the publish
        endpoint enforces the quota anyway); auth, rate-limit and passing failures raise.
        """
        try:
            quota = self.read_quota()
        except AuthError:
            raise
        except PermanentError as exc:
            log.warning("%s: could not read the publishing limit (%s); posting anyway", self.channel, exc.detail)
            return None
        if quota is not None and quota.exhausted:
            raise self.error(
                RateLimitedError,
                f"{self.label} allows {quota.total} posts per 24 hours and this account has used them all; "
                "will try again when the window frees",
                retry_after=self.quota_wait(quota.window),
                code="quota",
                detail=quota.describe(),
            )
        return quota

    def quota_wait(self, window: int = QUOTA_WINDOW) -> float:
        """Seconds until the oldest post of the moving window leaves it (a default when unknown)."""
        now = self.env.now()
        since = int((now - timedelta(seconds=window)).timestamp())
        try:
            body = self.graph_get(
                self.user_path(self.media_path),
                {"fields": "id,timestamp", "since": since, "limit": 100},
                what=f"{self.label} (recent posts)",
            )
        except PublishError:
            return DEFAULT_QUOTA_WAIT
        data = body.get("data")
        items: list[Any] = data if isinstance(data, list) else []
        times = [t for t in (parse_timestamp(i.get("timestamp")) for i in items if isinstance(i, Mapping)) if t]
        times = [t for t in times if (now - t).total_seconds() < window]
        if not times or len(items) >= 100:
            return DEFAULT_QUOTA_WAIT  # nothing seen, or more than one page: the oldest is unknown
        return max(MIN_QUOTA_WAIT, (min(times) + timedelta(seconds=window) - now).total_seconds())

    # --- read-back ------------------------------------------------------------------
    def recent_media(self, fields: str) -> list[Mapping[str, Any]]:
        """The account's newest posts (one page; Meta's ``paging.next`` carries the token)."""
        body = self.graph_get(self.user_path(self.media_path), {"fields": fields, "limit": READ_BACK_LIMIT}, what=f"{self.label} (recent posts)")
        data = body.get("data")
        return [item for item in data if isinstance(item, Mapping)] if isinstance(data, list) else []

    # --- the two steps of a post: a container, then publishing it -------------------------
    def create_container(self, data: Mapping[str, Any], *, edge: str) -> str:
        """A new (unpublished, never public) container; Transient if Graph gives no id."""
        answer = self.graph_post(self.user_path(edge), data, publishes=False, what=f"{self.label} (preparing the post)")
        container = answer.get("id")
        if not isinstance(container, (str, int)) or not str(container):
            raise self.error(TransientError, f"{self.label} did not say the id of the prepared post; nothing was published; will try again later")
        return str(container)

    def publish_container(self, container: str, *, edge: str) -> Receipt:
        """Publish a ready container: the one call that can put a post online (so Uncertain on doubt)."""
        answer = self.graph_post(self.user_path(edge), {"creation_id": container}, publishes=True, what=f"{self.label} (publishing the post)")
        media_id = answer.get("id")
        if not isinstance(media_id, (str, int)) or not str(media_id):
            raise self.error(UncertainError, f"{self.label} accepted the post but did not say its id; it may have been published")
        return Receipt(remote_id=str(media_id), url=self.permalink(str(media_id)))

    def permalink(self, media_id: str) -> str | None:
        """The public URL of a published post, or None if it cannot be read now (logged)."""
        try:
            body = self.graph_get(media_id, {"fields": "id,permalink"}, what=f"{self.label} (permalink)")
        except PublishError as exc:
            log.warning("%s: published %s but could not read its permalink (%s)", self.channel, media_id, exc.message)
            return None
        value = body.get("permalink")
        return value if isinstance(value, str) and value.startswith("http") else None
