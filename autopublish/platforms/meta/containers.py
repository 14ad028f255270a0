"""Two-step publishing, shared by Threads and Instagram: a media container, then ``*_publish``.

Meta prepares a container before it can be published: "wait on average 30 seconds", then
read its status "no more than once a minute, for no more than 5 minutes"; publishing
early answers code 24 / subcode 4279009 ("The media with id ... cannot be found"), and an
unpublished container expires after 24 hours (developers.facebook.com/docs/threads/posts,
/troubleshooting). Readiness comes with time, so a publisher never waits in a loop:

1. First attempt: checks, quota, create the container, then ``NotReadyError`` carrying
   ``progress`` (container id, creation time, renewals). The core stores it on the
   delivery and asks again after ``container_wait``; no sweep or channel is held up.
2. Next attempts (``Post.progress`` set): ONE status read of that same container.
   FINISHED -> publish it. IN_PROGRESS (or 24/4279009 from the publish call) -> not yet,
   ask again after ``container_poll``. PUBLISHED -> it went out: read the receipt back.
   EXPIRED, ERROR, gone, or IN_PROGRESS past ``container_timeout`` -> a new container,
   at most ``MAX_RENEWALS`` times, then a permanent failure naming the reason.

Container creation has no public effect, so only the ``*_publish`` call can make a
failure Uncertain. The token travels in the form body of POSTs; GETs have no body, so
it goes in the query string, as Meta documents. No URL is ever put into a log line or an
error message, and Meta's own text is scrubbed of the token before it is kept.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Annotated, Any, ClassVar

import requests
from pydantic import BeforeValidator, field_validator

from autopublish.durations import format_duration, parse_duration
from autopublish.errors import AuthError, NotReadyError, PermanentError, PublishError, RateLimitedError, TransientError, UncertainError
from autopublish.models import Post, Receipt
from autopublish.platforms.base import BaseUrl, PlatformOptions
from autopublish.platforms.meta.graph import GraphError, Kind, as_int, parse_timestamp
from autopublish.platforms.meta.graph_publisher import GraphPublisher
from autopublish.secrets import SecretRef

log = logging.getLogger(__name__)

DEFAULT_QUOTA_WAIT = 3600.0  # seconds; when the end of the 24 h window cannot be read
MIN_QUOTA_WAIT = 60.0
QUOTA_WINDOW = 86400  # seconds; both platforms count posts over a moving 24 h
READ_BACK_LIMIT = 50  # newest posts read when settling an uncertain delivery
MAX_RENEWALS = 2  # new containers after the first one expired or failed (3 in all)
CONTAINER_GONE = "container_gone"  # code of the error that says "make a new container"

Seconds = Annotated[float, BeforeValidator(parse_duration)]


# --- option validators shared by the Threads and Instagram options ------------------
def validate_account_id(value: object) -> str:
    text = str(value).strip()
    if not (text.isdigit() or text == "me"):
        raise ValueError('must be the numeric account id, like "17841400000000000"')
    return text


def validate_version(value: str) -> str:
    value = value.strip()
    if not re.match(r"^v\d+\.\d+$", value):
        raise ValueError('must be an API version like "v1.0" or "v23.0"')
    return value


class ContainerOptions(PlatformOptions):
    """The keys Threads and Instagram share; each sets its own api_base and api_version default.

    ``container_wait``/``container_poll``/``container_timeout`` follow Meta's advice (30 s,
    once a minute, 5 minutes); lower them only against a test server.
    """

    api_base: BaseUrl
    api_version: str
    user_id: str
    access_token: SecretRef
    container_wait: Seconds = 30.0
    container_poll: Seconds = 60.0
    container_timeout: Seconds = 300.0

    check_user = field_validator("user_id", mode="before")(validate_account_id)
    check_version = field_validator("api_version")(validate_version)

    @field_validator("container_wait", "container_poll", "container_timeout")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("must be a positive duration, like \"30s\"")
        return value


@dataclass(frozen=True, slots=True)
class Progress:
    """A prepared container, as stored on the delivery between attempts."""

    container: str
    created: float  # epoch seconds
    renewals: int = 0  # containers made before this one for the same delivery
    text_only: bool = False  # Threads: the image could not be used, go on without it

    def dump(self) -> str:
        return json.dumps({"container": self.container, "created": round(self.created), "renewals": self.renewals,
                           "text_only": self.text_only}, separators=(",", ":"))

    @classmethod
    def load(cls, raw: str | None) -> Progress | None:
        """The stored progress, or None when there is none or it cannot be read (start afresh:
        an unpublished container has no public effect)."""
        if not raw:
            return None
        try:
            data = json.loads(raw)
            container = str(data["container"])
            created = float(data["created"])
        except (ValueError, KeyError, TypeError):
            return None
        if not container.isdigit():
            return None
        return cls(container, created, int(data.get("renewals") or 0), bool(data.get("text_only")))


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


class ContainerPublisher(GraphPublisher[ContainerOptions]):
    """Base of the Threads and Instagram adapters: Graph requests, errors and the two steps."""

    token_env_default: ClassVar[str]  # the .env name shown to admins when the config hides it
    publish_permission: ClassVar[str]  # the permission the token needs to publish
    token_help: ClassVar[str]  # how an admin gets a new token, as a verb phrase
    quota_path: ClassVar[str]  # "..._publishing_limit"
    media_path: ClassVar[str]  # the edge listing the account's posts
    container_edge: ClassVar[str]  # where containers are created
    publish_edge: ClassVar[str]  # where a container is published
    status_field: ClassVar[str]  # "status" (Threads) or "status_code" (Instagram)
    rate_limit_wait: ClassVar[float] = 600.0  # seconds; Meta's call-rate errors come without a time

    # --- for subclasses -----------------------------------------------------------
    def prepare(self, post: Post) -> None:
        """Checks before a container is made (length, image type); PermanentError if it cannot go."""

    def create(self, post: Post, *, text_only: bool) -> tuple[str, bool]:
        """Create the container for ``post``: (its id, whether it is text only)."""
        raise NotImplementedError

    def matches(self, item: Mapping[str, Any], post: Post) -> bool:
        """True when a listed post is ``post`` (for read-back)."""
        raise NotImplementedError

    def read_back_fields(self) -> str:
        raise NotImplementedError

    # --- addresses and credentials ------------------------------------------------
    def graph_url(self, path: str) -> str:
        options = self.options
        return f"{str(options.api_base).rstrip('/')}/{options.api_version}/{path.lstrip('/')}"

    def token(self) -> str:
        return self.options.access_token.reveal()

    def token_env_name(self) -> str:
        return getattr(self.options.access_token, "env_name", "") or self.token_env_default

    def user_path(self, suffix: str = "") -> str:
        user = self.options.user_id
        return f"{user}/{suffix}" if suffix else str(user)

    # --- the two steps ------------------------------------------------------------
    def publish(self, post: Post) -> Receipt:
        """One step of a post: prepare a container, or check (and publish) the prepared one.

        Raises NotReadyError (with progress) while the container is being prepared,
        PermanentError for a post that cannot go, RateLimitedError when the 24 h quota is
        used up, UncertainError when the ``*_publish`` call may have gone through.
        """
        progress = Progress.load(post.progress)
        if progress is None:
            return self._start(post, renewals=0, text_only=False)
        return self._continue(post, progress)

    def _start(self, post: Post, *, renewals: int, text_only: bool) -> Receipt:
        self.prepare(post)
        self.ensure_quota()
        container, text_only = self.create(post, text_only=text_only)
        progress = Progress(container, self.env.now().timestamp(), renewals, text_only)
        wait = self.options.container_wait
        raise self.not_ready(progress, f"{self.label} is preparing the post; it will be published once ready", wait)

    def _continue(self, post: Post, progress: Progress) -> Receipt:
        try:
            fields = {"fields": f"id,{self.status_field},error_message,status"}
            body = self.graph_get(progress.container, fields, what=f"{self.label} (checking the prepared post)")
        except PermanentError as exc:
            if isinstance(exc, AuthError):
                raise
            return self._renew(post, progress, "the prepared post could no longer be found")
        status = str(body.get(self.status_field) or "").upper()
        if status == "FINISHED":
            return self._publish_ready(post, progress)
        if status == "PUBLISHED":
            return self._already_published(post, progress)
        if status == "EXPIRED":
            return self._renew(post, progress, "the prepared post expired before it was published")
        if status == "ERROR":
            return self.container_failed(post, progress, self.error_reason(body))
        age = self.env.now().timestamp() - progress.created
        if age >= self.options.container_timeout:
            return self._renew(post, progress, f"the post was still being prepared after {format_duration(age)}")
        wait = self.options.container_poll
        raise self.not_ready(progress, f"{self.label} is still preparing the post", wait)

    def _publish_ready(self, post: Post, progress: Progress) -> Receipt:
        try:
            return self.publish_container(progress.container)
        except NotReadyError:
            wait = self.options.container_poll
            raise self.not_ready(progress, f"{self.label} says the post is not ready to publish yet", wait) from None
        except TransientError as exc:
            if exc.code == CONTAINER_GONE:
                return self._renew(post, progress, "the prepared post expired before it was published")
            raise

    def _already_published(self, post: Post, progress: Progress) -> Receipt:
        """The container says PUBLISHED: an earlier attempt's publish went through.

        Meta's word settles it: the post is online. Its receipt comes from the read-back;
        if the post is not among the newest ones yet, the container id stands in for it
        (sent, without a link) rather than leaving the delivery in doubt.
        """
        receipt = self.find_existing(replace(post, progress=None))
        if receipt is not None:
            return receipt
        log.warning("%s: %s says the post was published but it is not among the newest posts; recorded without its link",
                    self.channel, self.label)
        return Receipt(remote_id=progress.container, url=None)

    def container_failed(self, post: Post, progress: Progress, reason: str) -> Receipt:
        """The container ended in ERROR: a new one, a bounded number of times."""
        return self._renew(post, progress, f"{self.label} could not prepare the post: {reason}")

    def _renew(self, post: Post, progress: Progress, reason: str, *, text_only: bool | None = None) -> Receipt:
        if progress.renewals >= MAX_RENEWALS:
            raise self.error(PermanentError, f"{reason}; gave up after {progress.renewals + 1} attempts to prepare it", code="container")
        log.info("%s: %s; preparing it again", self.channel, reason)
        return self._start(post, renewals=progress.renewals + 1, text_only=progress.text_only if text_only is None else text_only)

    def not_ready(self, progress: Progress, message: str, wait: float) -> NotReadyError:
        return NotReadyError(message, retry_after=wait, progress=progress.dump(), platform=self.name, channel=self.channel,
                             code="not_ready", detail=f"container {progress.container}")

    @staticmethod
    def error_reason(body: Mapping[str, Any]) -> str:
        return str(body.get("error_message") or body.get("status") or "no reason given")[:200]

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
        """The JSON object of a Graph answer, or the error the envelope or status means (through ``classify``)."""
        log_usage(response.headers, self.label)
        try:
            body = response.json()
        except ValueError:
            body = None
        status = response.status_code
        if status >= 300 or (isinstance(body, Mapping) and isinstance(body.get("error"), Mapping)):
            raise self.classify(response, writes=publishes, what=what)
        if not isinstance(body, dict):
            if publishes:
                raise self.error(UncertainError, f"{what} answered with a body that could not be read; the post may have been published", code=status)
            raise self.error(TransientError, f"{what} answered with a body that could not be read; will try again later", code=status)
        return body

    # --- errors ---------------------------------------------------------------------
    def secrets(self) -> list[str]:
        return [self.token()]

    def new_token(self, granting: str = "") -> str:
        if not granting:
            return self.token_help
        pronoun = "them" if granting.endswith("s") else "it"
        return f"grant {pronoun} to the app, {self.token_help} with {pronoun}"

    def needed_permissions(self, *, writes: bool) -> list[str]:
        # Container creation does not write (no public effect) and still needs the publishing permission.
        return [self.publish_permission]

    def refine_graph(self, fault: GraphError, kind: Kind, response: requests.Response, *, writes: bool, what: str) -> PublishError | None:
        """The container's own errors (not ready, expired, a passing failure) and the 24 h publishing quota."""
        fields = self.fault_fields(fault)
        if kind is Kind.QUOTA:
            return self.error(
                RateLimitedError,
                f"{self.label} says this account has reached its limit of posts for the last 24 hours; will try again when the window frees",
                retry_after=self.quota_wait(), **fields,
            )
        if kind is Kind.NOT_READY:
            return NotReadyError(f"{what}: the post is not ready to publish yet", retry_after=self.options.container_poll, progress="",
                                 platform=self.name, channel=self.channel, **fields)
        if kind is Kind.CONTAINER_GONE:
            return self.error(TransientError, f"{what}: the prepared post expired; nothing was published", code=CONTAINER_GONE,
                              detail=fields["detail"])
        if kind is Kind.RETRY_FRESH:
            return self.error(TransientError, f"{what} failed for a passing reason; nothing was published; will try again later", **fields)
        return None

    # --- publishing quota -----------------------------------------------------------
    def quota_details(self) -> tuple[Quota | None, list[str]]:
        """The publishing limit and the check's lines about it; a failed read is a line, not an error (auth still raises)."""
        try:
            quota = self.read_quota()
        except (TransientError, PermanentError) as exc:
            if isinstance(exc, AuthError):
                raise
            return None, [f"Could not read the publishing limit: {exc.message}"]
        return quota, ([f"Publishing limit: {quota.describe()}"] if quota is not None else [])

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
        """Read the quota before preparing a post; RateLimitedError when it is used up.

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
                f"{self.label} allows {quota.total} posts per 24 hours and this account has used them all; will try again when the window frees",
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
            query = {"fields": "id,timestamp", "since": since, "limit": 100}
            body = self.graph_get(self.user_path(self.media_path), query, what=f"{self.label} (recent posts)")
        except PublishError:
            return DEFAULT_QUOTA_WAIT
        raw_items = body.get("data")
        items: list[Any] = raw_items if isinstance(raw_items, list) else []
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

    read_permission: ClassVar[str]  # what reading the account's posts back needs, in Meta's words

    def doubt_check(self) -> tuple[bool | None, str]:
        """For ``check``: can a post in doubt be settled by reading the account back? (one read)

        (True, ""), (False, the missing permission), or (None, "") when the read failed otherwise.
        """
        try:
            self.graph_get(self.user_path(self.media_path), {"fields": "id", "limit": 1}, what=f"{self.label} (recent posts)")
        except AuthError:
            return False, self.read_permission
        except PublishError:
            return None, ""
        return True, ""

    def find_existing(self, post: Post) -> Receipt | None:
        """The newest post that is ``post`` (its article link, or the same text), or None.

        A refused permission raises errors.CannotCheckError (the channel keeps posting; an editor
        settles this one).
        """
        try:
            items = self.recent_media(self.read_back_fields())
        except AuthError as exc:
            raise self.cannot_check(exc, self.read_permission) from None
        for item in items:
            if self.matches(item, post):
                permalink = item.get("permalink")
                return Receipt(remote_id=str(item.get("id")), url=permalink if isinstance(permalink, str) else None)
        return None

    # --- the two Graph calls of a post --------------------------------------------------
    def create_container(self, data: Mapping[str, Any]) -> str:
        """A new (unpublished, never public) container; Transient if Graph gives no id."""
        answer = self.graph_post(self.user_path(self.container_edge), data, publishes=False, what=f"{self.label} (preparing the post)")
        container = answer.get("id")
        if not isinstance(container, (str, int)) or not str(container):
            raise self.error(TransientError, f"{self.label} did not say the id of the prepared post; nothing was published; will try again later")
        return str(container)

    def publish_container(self, container: str) -> Receipt:
        """Publish a ready container: the one call that can put a post online (so Uncertain on doubt)."""
        answer = self.graph_post(self.user_path(self.publish_edge), {"creation_id": container}, publishes=True, what=f"{self.label} (publishing the post)")
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
