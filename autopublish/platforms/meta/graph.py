"""Meta's Graph error envelope and the one code table Facebook, Threads and Instagram read.

Graph answers errors as ``{"error": {"message", "type", "code", "error_subcode",
"is_transient", "error_user_msg", "fbtrace_id"}}``, usually with HTTP 400 even for rate
limits, so errors are classified on ``code``/``error_subcode`` first and the HTTP status
second (developers.facebook.com/docs/graph-api/guides/error-handling). ``classify`` is the
only place that knows what a code means; ``graph_publisher.GraphPublisher.refine`` turns the
resulting ``Kind`` into plain sentences for all three adapters (each names its own token).

Decisions taken here on purpose (each pinned by a test in tests/platforms/test_meta_graph.py):

- 368 is a rate limit only with subcode 1390008 ("posting too fast"); any other 368 is a
  policy block, held for a person (Meta: "deemed abusive or otherwise disallowed").
- A token subcode (458, 459, 460, 463, 464, 467, 492) means a dead token whatever the code
  beside it: pausing a channel keeps its queue, failing a post would lose it.
- Codes 1 and 2 (and ``is_transient``) after a write may have been applied: uncertain.
- 368/1390008 waits at least 6 hours on all three platforms (or longer if the usage headers say so).
- Links are compared with ``feeds.canonical_link`` (scheme, ``www.``, trailing slash,
  fragment and tracking parameters ignored), so a site that moved from http to https
  still finds its earlier post.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from enum import StrEnum
from urllib.parse import parse_qs, urlsplit

from autopublish.feeds import canonical_link
from autopublish.platforms.base import URL_PATTERN


class Kind(StrEnum):
    """What a Graph error means, in the core's terms."""

    TOKEN = "token"  # the token is dead: pause the channel
    PERMISSION = "permission"  # a permission is missing
    RATE_LIMIT = "rate_limit"  # call-rate throttling (usage headers say how long)
    POSTING_TOO_FAST = "posting_too_fast"  # 368/1390008: a long temporary block
    POLICY_BLOCK = "policy_block"  # 368 otherwise: held for a person
    QUOTA = "quota"  # the 24 h publishing quota (Instagram code 9 / 2207042)
    SPAM = "spam"  # 2207051: restricted to protect the community
    NOT_READY = "not_ready"  # the container is not ready yet: same container, later
    CONTAINER_GONE = "container_gone"  # the container expired: make a new one
    RETRY_FRESH = "retry_fresh"  # nothing published; a new attempt may work (download timeout ...)
    DUPLICATE = "duplicate"  # 506: the same text was just posted (maybe by us)
    SERVER = "server"  # an outage or a transient failure: uncertain after a write
    BAD_IMAGE = "bad_image"  # the image could not be used
    OTHER = "other"  # anything else: permanent


TOKEN_CODES = frozenset({190, 102})
# Subcodes of "Authentication and authorization" errors (error-handling guide).
TOKEN_SUBCODES = frozenset({458, 459, 460, 463, 464, 467, 492})
PERMISSION_CODES = frozenset({10, *range(200, 300)})
RATE_CODES = frozenset({4, 17, 32, 341, 613})  # plus 80000-80099, the business use case limits
POSTING_TOO_FAST = 1390008
POLICY_CODE = 368
QUOTA_CODES = frozenset({9})
QUOTA_SUBCODES = frozenset({2207042})
SPAM_SUBCODES = frozenset({2207051})
# Threads: publishing too early answers 24/4279009 "The media with id ... cannot be found"
# (developers.facebook.com/docs/threads/troubleshooting); Instagram: 9007/2207027 "not ready".
NOT_READY = frozenset({(24, 4279009)})
NOT_READY_SUBCODES = frozenset({2207027})
CONTAINER_GONE_SUBCODES = frozenset({2207020})  # "the media has expired"
RETRY_FRESH_SUBCODES = frozenset({2207003, 2207032})  # media download timed out, creating the media failed
SERVER_CODES = frozenset({1, 2, -1, -2})
DUPLICATE_CODE = 506
BAD_IMAGE_CODES = frozenset({324})
BAD_IMAGE_SUBCODES = frozenset({2207004, 2207052, 2207083})  # too large, cannot fetch, unsupported type

TOKEN_REASONS = {
    458: "the app was removed from the account that created it",
    459: "the account that created it must log in to clear a security check",
    460: "the password of the account that created it was changed",
    463: "it expired",
    464: "the account that created it is not confirmed",
    467: "it is no longer valid",
    492: "the account that created it no longer has access",
}


def as_int(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        return int(value)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class GraphError:
    """Graph's error envelope, read once; ``message`` has the given secrets masked."""

    status: int
    message: str = ""
    type: str = ""
    code: int | None = None
    subcode: int | None = None
    transient: bool = False
    trace: str = ""
    user_message: str = ""

    @classmethod
    def from_body(cls, status: int, body: object, secrets: Iterable[str] = ()) -> GraphError:
        error = body.get("error") if isinstance(body, Mapping) else None
        if not isinstance(error, Mapping):
            error = {}

        def clean(text: object) -> str:
            out = str(text or "").strip()
            for secret in secrets:
                if secret:
                    out = out.replace(secret, "***")
            return out[:300]

        return cls(
            status=status,
            message=clean(error.get("message") or error.get("error_msg")),
            type=str(error.get("type") or ""),
            code=as_int(error.get("code")),
            subcode=as_int(error.get("error_subcode")),
            transient=error.get("is_transient") is True,
            trace=str(error.get("fbtrace_id") or ""),
            user_message=clean(error.get("error_user_msg")),
        )

    @property
    def detail(self) -> str:
        """Codes and trace id for an error's ``detail`` attribute (no secrets)."""
        parts = [f"HTTP {self.status}"] if self.status else []
        if self.code is not None:
            parts.append(f"code {self.code}" + (f"/{self.subcode}" if self.subcode is not None else ""))
        if self.type:
            parts.append(self.type)
        if self.trace:
            parts.append(f"fbtrace_id {self.trace}")
        if self.message:
            parts.append(self.message)
        return ", ".join(parts)

    @property
    def reason(self) -> str:
        """The platform's own words for a person: the user message, else the message."""
        return self.user_message or self.message


def classify(error: GraphError) -> Kind:
    """The one Graph code table (see the module docstring for the deliberate choices)."""
    code, sub, status = error.code, error.subcode, error.status
    if code in TOKEN_CODES or sub in TOKEN_SUBCODES or (code is None and status == 401):
        return Kind.TOKEN
    if code in PERMISSION_CODES or (code is None and status == 403):
        return Kind.PERMISSION
    if sub in SPAM_SUBCODES:
        return Kind.SPAM
    if code == POLICY_CODE:
        return Kind.POSTING_TOO_FAST if sub == POSTING_TOO_FAST else Kind.POLICY_BLOCK
    if code in QUOTA_CODES or sub in QUOTA_SUBCODES:
        return Kind.QUOTA
    if code in RATE_CODES or (code is not None and 80000 <= code <= 80099) or (code is None and status == 429):
        return Kind.RATE_LIMIT
    if (code, sub) in NOT_READY or sub in NOT_READY_SUBCODES:
        return Kind.NOT_READY
    if sub in CONTAINER_GONE_SUBCODES:
        return Kind.CONTAINER_GONE
    if sub in RETRY_FRESH_SUBCODES:
        return Kind.RETRY_FRESH
    if code == DUPLICATE_CODE:
        return Kind.DUPLICATE
    if code in BAD_IMAGE_CODES or sub in BAD_IMAGE_SUBCODES:
        return Kind.BAD_IMAGE
    if code in SERVER_CODES or error.transient or status >= 500:
        return Kind.SERVER
    return Kind.OTHER


def token_problem(subcode: int | None) -> str:
    """Why a token stopped working, as the end of "the token is no longer valid because ..."."""
    return TOKEN_REASONS.get(subcode or 0, "it expired or was revoked")


# --- usage headers ---------------------------------------------------------------------
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


# --- times -----------------------------------------------------------------------------
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S%z"  # "2026-08-01T10:15:00+0000"
EXPIRED_ON = re.compile(r"expired on (?:[A-Za-z]+, )?(\d{1,2})-([A-Za-z]{3})-(\d{2,4}) (\d{1,2}):(\d{2}):(\d{2}) ?([A-Z]{2,4})?")
ZONES = {"PST": -8, "PDT": -7, "UTC": 0, "GMT": 0}
MONTHS = {m: i for i, m in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1)}


def parse_timestamp(value: object) -> datetime | None:
    """A Graph timestamp ("2026-08-01T10:15:00+0000") as an aware datetime."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.strptime(value, TIMESTAMP_FORMAT)
    except ValueError:
        try:
            return datetime.fromisoformat(value)  # 3.11+ reads a trailing Z
        except ValueError:
            return None


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


def format_day(when: datetime) -> str:
    return f"{when.day} {when.strftime('%B %Y')}"


# --- links -----------------------------------------------------------------------------
def unshim(url: str) -> str:
    """Facebook's l.facebook.com/l.php?u=<target> redirect -> the target."""
    parts = urlsplit(url)
    if parts.netloc.lower().endswith("facebook.com") and parts.path.startswith("/l.php"):
        target = parse_qs(parts.query).get("u")
        if target:
            return target[0]
    return url


def link_key(url: str) -> str:
    """The key two links are compared on: ``feeds.canonical_link`` of the unshimmed URL."""
    return canonical_link(unshim(url.strip().rstrip(".,;:!?)")))


def links_in(text: str) -> list[str]:
    return [m.group(0) for m in URL_PATTERN.finditer(text or "")]


def any_link_matches(candidates: Iterable[str], wanted: Iterable[str]) -> bool:
    """True when one of ``candidates`` is the same article link as one of ``wanted``."""
    keys = {link_key(w) for w in wanted if w}
    return bool(keys) and any(link_key(c) in keys for c in candidates if c)


def mentions_link(text: str, link: str) -> bool:
    """True when ``text`` contains ``link`` (compared as canonical links)."""
    return any_link_matches(links_in(text), [link])

