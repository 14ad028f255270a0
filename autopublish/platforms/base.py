"""The adapter seam: one Publisher subclass per platform, one error vocabulary.

A publisher makes exactly ONE attempt per call. It never sleeps, loops, retries or
touches the store; the core schedules retries from the errors it raises
(see autopublish.errors). It takes its base URL from its options so tests can point
it at a loopback fake, and it receives its HTTP session instead of building one.
"""

from __future__ import annotations

import email.utils
import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, ClassVar, Generic, TypeVar
from urllib.parse import urlsplit

import regex
import requests
from pydantic import AfterValidator, BaseModel, ConfigDict

from autopublish.errors import AddressRefusedError, AuthError, FetchError, PermanentError, PublishError, RateLimitedError, TransientError, UncertainError
from autopublish.feeds import canonical_link
from autopublish.models import Health, HealthLevel, Post, PostLimits, Receipt
from autopublish.netguard import GuardedFetcher, read_capped

log = logging.getLogger(__name__)

URL_PATTERN = re.compile(r"https?://[^\s<>\"']+")


def check_base_url(value: str) -> str:
    """An API's address: http(s) and a host, no path, query or fragment (adapters append the documented paths)."""
    value = value.strip().rstrip("/")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError('must be an http(s) address, like "https://api.example.com"')
    if parts.path or parts.query or parts.fragment:
        raise ValueError('must be only the address, like "https://api.example.com" (no path)')
    return value


# The one option type for every adapter's API base address (api_base, instance, service).
BaseUrl = Annotated[str, AfterValidator(check_base_url)]


def link_key(url: str) -> str:
    """The key a read-back link is compared on: ``feeds.canonical_link``; a bare domain counts as http."""
    url = url.strip()
    if url and "://" not in url:
        url = "http://" + url  # platforms may show a link without its scheme
    return canonical_link(url)


def same_link(first: str, second: str) -> bool:
    """True when two links name the same article (scheme, www., trailing slash, tracking ignored)."""
    return bool(first.strip()) and link_key(first) == link_key(second)


class PlatformOptions(BaseModel):
    """Base of each platform's own config keys (``[channels.NAME]`` minus the common keys).

    Secret keys are typed ``SecretRef`` (autopublish.secrets) and must be written
    ``"${NAME}"`` in the config. Unknown keys are refused.
    """

    # hide_input_in_errors: a token pasted literally into the config must not be echoed back.
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True, hide_input_in_errors=True)


@dataclass(frozen=True, slots=True)
class PublisherEnv:
    """What a publisher gets from the composition root."""

    session: requests.Session
    state_dir: Path
    timeout: tuple[float, float] = (5.0, 30.0)  # (connect, read) seconds
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    # Every URL taken from feed data (article images) is fetched through this, never the session.
    fetcher: GuardedFetcher = field(default_factory=GuardedFetcher)


def count_graphemes(text: str) -> int:
    return len(regex.findall(r"\X", text))


def count_utf16(text: str) -> int:
    """Length in UTF-16 code units (how JavaScript and Java backends count: an emoji is 2)."""
    return len(text.encode("utf-16-le")) // 2


@dataclass(frozen=True, slots=True)
class ImageFile:
    """An article image downloaded for upload."""

    data: bytes
    content_type: str
    name: str


DEFAULT_MAX_IMAGE_BYTES = 16 * 1024 * 1024


def transport_failure(exc: BaseException) -> str:
    """What a requests exception says about the request, in one word.

    "unreachable": it never left (refused, connect timeout); "no_answer": it left and no
    answer came (read timeout, dropped connection); "bad_address"; "other".
    """
    if isinstance(exc, requests.ConnectTimeout) or is_refused(exc):
        return "unreachable"
    if isinstance(exc, (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema)):
        return "bad_address"
    if isinstance(exc, (requests.ReadTimeout, requests.ConnectionError, requests.exceptions.ChunkedEncodingError)):
        return "no_answer"
    return "other"


OptionsT = TypeVar("OptionsT", bound=PlatformOptions)
ErrorT = TypeVar("ErrorT", bound=PublishError)
DEFAULT_RATE_LIMIT_WAIT = 300.0  # seconds, when a 429 says nothing about when to come back


class Publisher(ABC, Generic[OptionsT]):
    """One platform. Subclasses set the class data and implement publish/check.

    Declared as ``class MastodonPublisher(Publisher[MastodonOptions])`` so that
    ``self.options`` has the platform's own keys.
    """

    name: ClassVar[str]
    label: ClassVar[str]  # the platform's name as people write it: "Facebook"
    Options: ClassVar[type[PlatformOptions]] = PlatformOptions
    limits: ClassVar[PostLimits]
    idempotent: ClassVar[bool] = False  # a retry with the same Post.key cannot post twice
    can_read_back: ClassVar[bool] = False  # find_existing can settle an uncertain delivery
    # Seconds the platform remembers Post.key and drops a repeat (Mastodon: 3600); None: unbounded or unknown.
    idempotency_window: ClassVar[float | None] = None
    default_template: ClassVar[str] = "{title}\n\n{summary}\n\n{link}"
    can_edit: ClassVar[bool] = False  # edit() changes a live post's text in place
    can_delete: ClassVar[bool] = False  # delete() removes a live post

    def __init__(self, channel: str, options: OptionsT, env: PublisherEnv) -> None:
        self.channel = channel
        self.options: OptionsT = options
        self.env = env
        self._notes: list[str] = []

    # --- length -----------------------------------------------------------------
    def current_limits(self) -> PostLimits:
        """The limits to fit posts to; an adapter may refine them (a Mastodon instance's own)."""
        return self.limits

    def load_limits(self) -> PostLimits:
        """Ask the platform for its own limits where it has them (one request); never raises."""
        return self.current_limits()

    def count(self, text: str) -> int:
        """The platform's own length of ``text``: graphemes, each URL counting url_length if set."""
        url_length = self.current_limits().url_length
        if url_length is None:
            return count_graphemes(text)
        total, last = 0, 0
        for match in URL_PATTERN.finditer(text):
            total += count_graphemes(text[last : match.start()]) + url_length
            last = match.end()
        return total + count_graphemes(text[last:])

    # --- the three calls ---------------------------------------------------------
    @abstractmethod
    def publish(self, post: Post) -> Receipt:
        """Make exactly one attempt. Raises a PublishError subclass on failure."""

    def find_existing(self, post: Post) -> Receipt | None:
        """Read the account back: the receipt of ``post`` if it was published, else None.

        Raises NotImplementedError where the platform cannot tell; TransientError (or
        RateLimitedError) when the read-back itself failed and may work later;
        CannotCheckError when the token may post but not read the account back.
        """
        raise NotImplementedError

    def check(self) -> Health:
        """A cheap authenticated call for ``autopublish check``."""
        return Health(HealthLevel.OK, f"{self.label}: nothing to check")

    @classmethod
    def edits_with(cls, options: PlatformOptions) -> bool:
        """``can_edit`` for a channel with these options (Slack edits only with a bot token)."""
        return cls.can_edit

    @classmethod
    def deletes_with(cls, options: PlatformOptions) -> bool:
        """``can_delete`` for a channel with these options."""
        return cls.can_delete

    def edit(self, receipt: Receipt, post: Post) -> Receipt:
        """Replace the text of the live post ``receipt`` with ``post.text`` (one attempt; safe to repeat).

        Only where ``can_edit``; raises the same errors as publish.
        """
        raise NotImplementedError

    def delete(self, receipt: Receipt) -> None:
        """Remove the live post ``receipt`` (one attempt). Already gone (404) counts as done.

        Only where ``can_delete``; raises the same errors as publish.
        """
        raise NotImplementedError

    # --- helpers for subclasses --------------------------------------------------
    def error(self, cls: type[ErrorT], message: str, **kwargs: Any) -> ErrorT:
        return cls(message, platform=self.name, channel=self.channel, **kwargs)

    # --- the one HTTP-answer classifier --------------------------------------------
    rate_limit_wait: ClassVar[float] = DEFAULT_RATE_LIMIT_WAIT  # a 429 without a usable wait

    def auth_fix(self) -> str:
        """What the admin does after a 401/403 (the adapter's own words)."""
        return f"check the channel's credentials in .env, then run: autopublish resume {self.channel}"

    def refine(self, response: requests.Response, *, writes: bool, what: str, detail: str) -> PublishError | None:
        """The adapter's own reading of an error answer; None takes the default of ``classify``."""
        return None

    def refusal(self, response: requests.Response, *, what: str, status: int, detail: str) -> str:
        """The sentence for an answer the shared rules call permanent (an adapter may use its own words)."""
        return f"{what} answered HTTP {status}: {detail or 'no reason given'}"

    def rate_limited(
        self, response: requests.Response, *, what: str = "", wait: float | None = None, code: str | int | None = 429, detail: str = ""
    ) -> RateLimitedError:
        """Too many requests: ``wait`` is the platform's own (a body field, a reset header), else Retry-After, else ``rate_limit_wait``."""
        if wait is None:
            wait = parse_retry_after(response.headers.get("Retry-After"), self.env.now())
        seconds = wait if wait and wait > 0 else self.rate_limit_wait
        return self.error(RateLimitedError, f"{what or self.label} asked us to slow down; will try again in {_duration(seconds)}",
                          retry_after=seconds, code=code, detail=detail)

    def auth_refused(self, status: int, *, what: str = "", code: str | int | None = None, detail: str = "") -> AuthError:
        """The credentials were refused: pause the channel with ``auth_fix()``."""
        return self.error(AuthError, f"{what or self.label} refused the channel's credentials (HTTP {status}); {self.auth_fix()}",
                          code=status if code is None else code, detail=detail)

    def server_error(self, status: int, *, writes: bool, what: str = "", detail: str = "", code: str | int | None = None) -> PublishError:
        """A server-side failure: uncertain after a non-idempotent write (it may have posted), transient otherwise.

        ``status`` below 500: the platform said so in its body (Graph's codes 1 and 2, ``is_transient``).
        """
        uncertain = writes and not self.idempotent  # an idempotent retry cannot post twice
        cls: type[PublishError] = UncertainError if uncertain else TransientError
        tail = "it may have been published" if uncertain else "will try again later"
        said = f"answered HTTP {status} (a server error)" if status >= 500 else "had a temporary problem"
        return self.error(cls, f"{what or self.label} {said}; {tail}", code=status if code is None else code, detail=detail)

    def classify(
        self,
        response: requests.Response,
        *,
        writes: bool,
        what: str = "",
        detail: str = "",
        code: str | int | None = None,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> PublishError:
        """Map an HTTP error answer to the core's vocabulary: ``refine()`` first, then the shared rules.

        429 rate limited (``retry_after``, else Retry-After); 401/403 auth with ``auth_fix()``; 408
        transient; 5xx uncertain after a write (it may have posted) unless the adapter is
        ``idempotent``, transient otherwise; anything else permanent, in ``refusal()``'s words.
        ``status``: the status the platform means when its body says another than HTTP's (Telegram's
        ``error_code`` in an ``ok: false`` answer sent with HTTP 200). ``code`` defaults to it.
        """
        what = what or self.label
        refined = self.refine(response, writes=writes, what=what, detail=detail)
        if refined is not None:
            return refined
        status = response.status_code if status is None else status
        code = status if code is None else code
        if status == 429:
            return self.rate_limited(response, what=what, wait=retry_after, code=code, detail=detail)
        if status in (401, 403):
            return self.auth_refused(status, what=what, code=code, detail=detail)
        if status == 408:
            return self.error(TransientError, f"{what} answered HTTP 408 (request timeout); will try again later", code=code, detail=detail)
        if status >= 500:
            return self.server_error(status, writes=writes, what=what, detail=detail, code=code)
        return self.error(PermanentError, self.refusal(response, what=what, status=status, detail=detail), code=code, detail=detail)

    def request(
        self,
        method: str,
        url: str,
        *,
        writes: bool,
        what: str = "",
        **kwargs: Any,
    ) -> requests.Response:
        """Send one HTTP request with the channel's timeouts; translate transport failures.

        ``writes``: the request may create a post. A failure after the request left
        (read timeout, dropped connection) is then Uncertain; for reads it is Transient.
        The raised message never contains the URL (it may carry a token).
        """
        kwargs.setdefault("timeout", self.env.timeout)
        kwargs.setdefault("allow_redirects", False)
        what = what or f"{self.label}"
        try:
            return self.env.session.request(method, url, **kwargs)
        except requests.RequestException as exc:
            raise self.transport_error(exc, writes=writes, what=what) from None

    def transport_error(self, exc: BaseException, *, writes: bool, what: str) -> PublishError:
        """Map a requests exception to the core's vocabulary (never echoing its text)."""
        return self.transport_failed(transport_failure(exc), type(exc).__name__, writes=writes, what=what)

    def transport_failed(self, kind: str, detail: str, *, writes: bool, what: str) -> PublishError:
        """The error for a ``transport_failure`` kind; ``detail`` names the exception's type."""
        if kind == "unreachable":
            return self.error(TransientError, f"Could not reach {what}; will try again later", detail=detail)
        if kind == "bad_address":
            return self.error(PermanentError, f"The address configured for {what} is not valid", detail=detail)
        if kind == "no_answer":
            if writes:
                return self.error(UncertainError, f"{what} did not answer after receiving the post; it may have been published", detail=detail)
            return self.error(TransientError, f"{what} did not answer in time; will try again later", detail=detail)
        if writes:
            return self.error(UncertainError, f"{what} failed in an unexpected way after sending; it may have been published", detail=detail)
        return self.error(TransientError, f"{what} failed in an unexpected way; will try again later", detail=detail)

    def fetch_image(self, url: str, *, origin: str | None = None, max_bytes: int = DEFAULT_MAX_IMAGE_BYTES) -> ImageFile | None:
        """Download the article image for upload; None when it cannot be used.

        Never raises: a refused, missing, slow or oversized image never stops a post. The
        download goes through the guarded fetcher (public addresses only, except the
        ``origin`` of the feed that named the image), within the publish timeout as one
        overall deadline and ``max_bytes``. Why an image was left out is logged and kept
        as a note (``take_notes``) for the publish log.
        """
        try:
            with self.env.fetcher.open(url, allowed_origin=origin, timeout=self.env.timeout, deadline=self.env.timeout[1],
                                       max_redirects=5) as fetched:
                response = fetched.response
                ctype = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
                if response.status_code != 200 or not ctype.startswith("image/"):
                    return self._without_image(f"its address answered HTTP {response.status_code} ({ctype or 'no type'})")
                declared = response.headers.get("Content-Length", "")
                if declared.isdigit() and int(declared) > max_bytes:
                    return self._without_image(f"it is larger than {max_bytes} bytes")
                data = read_capped(fetched, max_bytes)
                final_url = fetched.url
        except AddressRefusedError as exc:
            return self._without_image(exc.message)
        except FetchError as exc:
            return self._without_image(exc.message)
        except requests.RequestException as exc:
            return self._without_image(f"it could not be downloaded ({type(exc).__name__})")
        if not data:
            return self._without_image("it is empty")
        name = urlsplit(final_url).path.rsplit("/", 1)[-1] or "image"
        return ImageFile(data, ctype, name)

    def _without_image(self, reason: str) -> ImageFile | None:
        """None, after logging why the image is left out and keeping that as a note for the publish log."""
        log.warning("%s: the article image is left out: %s; posting without it", self.label, reason, extra={"channel": self.channel})
        self._notes.append(f"posted without its image: {reason}")
        return None

    def take_notes(self) -> list[str]:
        """Plain-words notes about the last attempt (an image left out, and why); cleared on reading."""
        notes, self._notes[:] = list(self._notes), []
        return notes

    def read_json(self, response: requests.Response, *, writes: bool, what: str = "") -> Any:
        """The JSON body of a response; an unreadable body after a write is Uncertain."""
        try:
            return response.json()
        except ValueError:
            what = what or self.label
            if writes and response.status_code < 300:
                raise self.error(
                    UncertainError,
                    f"{what} answered with a body that could not be read; the post may have been published",
                    code=response.status_code,
                ) from None
            cls: type[PublishError]
            if writes and response.status_code >= 500:
                cls = UncertainError
            elif response.status_code >= 500 or response.status_code == 429:
                cls = TransientError
            else:
                cls = PermanentError
            raise self.error(cls, f"{what} answered HTTP {response.status_code} with a body that could not be read", code=response.status_code) from None


def json_object(response: requests.Response) -> dict[str, Any]:
    """The JSON object in an answer's body; {} when there is none (an error page, an empty or a list body)."""
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def is_refused(exc: BaseException) -> bool:
    """True when the connection was never made (so the request never left)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        name = type(current).__name__
        if name in {"NewConnectionError", "ConnectionRefusedError", "NameResolutionError", "ConnectTimeoutError", "gaierror"}:
            return True
        if isinstance(current, ConnectionRefusedError):
            return True
        nxt = getattr(current, "reason", None)
        if not isinstance(nxt, BaseException):
            nxt = current.__cause__ or current.__context__
        if not isinstance(nxt, BaseException) and current.args and isinstance(current.args[0], BaseException):
            nxt = current.args[0]
        current = nxt
    return False


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After value (seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def _duration(seconds: float) -> str:
    """A wait in words: "35 seconds", "about 15 minutes", "about 6 hours"."""
    if seconds < 120:
        return f"{seconds:.0f} seconds"
    if seconds < 2 * 3600:
        return f"about {round(seconds / 60)} minutes"
    return f"about {round(seconds / 3600)} hours"


def seconds_until_epoch(value: str | None, now: datetime) -> float | None:
    """Seconds until a reset time given as epoch seconds (X, Discord, Bluesky headers)."""
    if not value:
        return None
    try:
        return max(0.0, float(value) - now.timestamp())
    except ValueError:
        return None


def seconds_until_iso(value: str | None, now: datetime) -> float | None:
    """Seconds until a reset time given as ISO 8601 (Mastodon's X-RateLimit-Reset)."""
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())
