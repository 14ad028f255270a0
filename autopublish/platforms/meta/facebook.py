"""Facebook Pages: publish to a Page's feed through facebook-sdk (see ``sdk.py``).

Not idempotent (Graph has no idempotency key; 506 only catches identical consecutive
text), but reads back: ``find_existing`` looks for the article's link in the Page's newest
published posts. Graph's error answers go through ``Publisher.classify`` and the Meta adapters'
one ``refine`` (graph_publisher.py, reading the shared table in graph.py); only a missing Page
and an unreadable link have Facebook's own words here.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Literal, TypeVar

import requests
from pydantic import field_validator

from autopublish.errors import AuthError, PermanentError, PublishError, TransientError, UncertainError
from autopublish.models import Health, HealthLevel, Post, PostLimits, Receipt
from autopublish.platforms.base import BaseUrl, PlatformOptions, PublisherEnv
from autopublish.platforms.meta.graph import (
    GraphError,
    Kind,
    any_link_matches,
    as_int,
    format_day,
    links_in,
    unshim,
)
from autopublish.platforms.meta.graph import (
    classify as kind_of,
)
from autopublish.platforms.meta.graph_publisher import GraphPublisher
from autopublish.platforms.meta.sdk import (
    DEFAULT_API_BASE,
    DEFAULT_API_VERSION,
    GraphAPI,
    GraphAPIError,
    GraphClient,
    GraphResponseError,
    GraphTransportError,
    validate_api_version,
)
from autopublish.secrets import SecretRef

log = logging.getLogger(__name__)

MAX_MESSAGE = 63206  # characters in a Page post's message
PHOTO_LINK_RESERVE = 2050  # room kept in photo mode for "\n\n" + the article link
EXPIRY_WARNING = timedelta(days=7)
REQUIRED_SCOPES = ("pages_manage_posts", "pages_read_engagement")
DEFAULT_RATE_WAIT = 15 * 60.0  # seconds, when throttled and the usage headers say nothing
PAGE_ID_PATTERN = re.compile(r"^\d{1,32}$")
APP_ID_PATTERN = re.compile(r"^\d{1,32}$")
# debug_token answers #100 to a Page token: it needs the app's token (debug_token reference).
APP_TOKEN_NEEDED = 100
IMAGE_REFUSED = "image_refused"  # the code of the error that makes a photo post fall back to a link

T = TypeVar("T")


def permalink(remote_id: str) -> str:
    page, _, post = remote_id.partition("_")
    if post:
        return f"https://www.facebook.com/{page}/posts/{post}"
    return f"https://www.facebook.com/{remote_id}"


# --- options --------------------------------------------------------------------------
class FacebookOptions(PlatformOptions):
    """``[channels.NAME]`` keys for a Facebook Page."""

    page_id: str
    access_token: SecretRef
    api_base: BaseUrl = DEFAULT_API_BASE
    api_version: str = DEFAULT_API_VERSION
    post_as: Literal["link", "photo", "text"] = "link"
    rescrape: bool = True
    # The app's id and secret (optional): with both, ``check`` reads the token's expiry and
    # permissions through debug_token, which answers only to the app; the secret alone
    # adds appsecret_proof to every call.
    app_id: str | None = None
    app_secret: SecretRef | None = None
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

    @field_validator("app_id", mode="before")
    @classmethod
    def _app_id(cls, value: object) -> str | None:
        if value is None or str(value).strip() == "":
            return None
        text = str(value).strip()
        if not APP_ID_PATTERN.match(text):
            raise ValueError("app_id must be the Meta app's numeric id (shown at the top of the app's dashboard)")
        return text

    @field_validator("api_version", mode="before")
    @classmethod
    def _version(cls, value: object) -> str:
        return validate_api_version(value)

    @field_validator("read_back_limit")
    @classmethod
    def _limit(cls, value: int) -> int:
        if not 1 <= value <= 100:
            raise ValueError("read_back_limit must be between 1 and 100")
        return value



# --- the publisher -------------------------------------------------------------------
class FacebookPublisher(GraphPublisher[FacebookOptions]):
    """A Facebook Page, posting as the Page with a Page access token.

    Not idempotent (Graph has no idempotency key; 506 only catches identical consecutive
    text), but reads back: find_existing looks for the article's link in the Page's
    newest published posts.
    """

    name = "facebook"
    label = "Facebook"
    token_name = "Page token"
    account = "this Page"
    policy_check = "the Page's notifications at facebook.com"
    posts_of = "the Page's posts"
    Options = FacebookOptions
    limits = PostLimits(max_length=MAX_MESSAGE, images=True, link_card=True)
    idempotent: ClassVar[bool] = False
    rate_limit_wait: ClassVar[float] = DEFAULT_RATE_WAIT  # throttled, and the usage headers say nothing
    can_read_back: ClassVar[bool] = True
    default_template = "{title}\n\n{summary}"

    def __init__(self, channel: str, options: FacebookOptions, env: PublisherEnv) -> None:
        super().__init__(channel, options, env)
        token = options.access_token.reveal()
        secret = options.app_secret.reveal() if options.app_secret else None
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
                image=True,
            )
        except PermanentError as exc:
            if exc.code == IMAGE_REFUSED:
                log.warning(
                    "Facebook could not use the article's image (%s); posting the link instead",
                    exc.detail,
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
        try:
            answer = self._call(
                lambda g: g.get_connections(
                    self.options.page_id, "published_posts", fields=fields, limit=str(self.options.read_back_limit)
                ),
                writes=False,
            )
        except AuthError as exc:
            raise self.cannot_check(exc, "pages_read_engagement") from None
        items = answer.get("data") if isinstance(answer, dict) else None
        if not isinstance(items, list):
            raise self.error(TransientError, "Facebook's list of the Page's posts could not be read; will try again later")
        wanted = [u for u in (post.link, post.article.link) if u]
        for item in items:
            if isinstance(item, dict) and item.get("id") and self._matches(item, wanted, post.text):
                remote_id = str(item["id"])
                return Receipt(remote_id=remote_id, url=str(item.get("permalink_url") or permalink(remote_id)))
        return None

    @staticmethod
    def _matches(item: dict[str, Any], wanted: list[str], text: str) -> bool:
        message = str(item.get("message") or "")
        links = links_in(message)
        attachments = item.get("attachments")
        for attachment in (attachments.get("data") or []) if isinstance(attachments, dict) else []:
            if isinstance(attachment, dict):
                links += [unshim(str(attachment[k])) for k in ("unshimmed_url", "url") if attachment.get(k)]
        if item.get("link"):
            links.append(unshim(str(item["link"])))
        if any_link_matches(links, wanted):
            return True
        return bool(text.strip()) and message.strip() == text.strip()

    # --- check --------------------------------------------------------------------------
    def check(self) -> Health:
        """The Page's name; with the app's id and secret also the token's type, scopes and expiry.

        Facebook's debug_token answers only to the app (an app token ``app_id|app_secret``
        or an app developer's user token); with the Page token itself it answers #100. So
        without ``app_id`` and ``app_secret`` the check says plainly what it cannot know.
        """
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
        app_token = self._app_token()
        if app_token is None:
            details.append(
                "The token's expiry and permissions cannot be read: Facebook tells them only to the app. "
                "Add app_id and app_secret to this channel (autopublish connect facebook prints both) to check them"
            )
            return Health(level, f"Reached {where} with the Page token", tuple(details))
        token = self.options.access_token.reveal()
        status, body = self._call(lambda g: self.client.batch_get(f"debug_token?input_token={token}", token=app_token), writes=False)
        data = body.get("data") if isinstance(body, dict) else None
        if status != 200 or not isinstance(data, dict):
            fault = GraphError.from_body(status, body, self.secrets())
            kind = kind_of(fault)
            if fault.code == APP_TOKEN_NEEDED or kind in (Kind.TOKEN, Kind.PERMISSION):
                details.append(
                    "Facebook did not accept app_id and app_secret for reading the token's details "
                    "(copy both again from the app's Settings > Basic page); its expiry and permissions are unknown"
                )
                return Health(HealthLevel.WARNING, f"Reached {where} with the Page token", tuple(details))
            details.append("Facebook did not say when the token expires or which permissions it has")
            return Health(HealthLevel.WARNING, f"Reached {where} with the Page token", tuple(details))
        return self._token_health(data, where, level, details)

    def _app_token(self) -> str | None:
        if self.options.app_id and self.options.app_secret is not None:
            secret = self.options.app_secret.reveal()
            if secret:
                return f"{self.options.app_id}|{secret}"
        return None

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
        if missing:  # Facebook asks for both to post; pages_read_engagement also reads the Page back
            return Health(HealthLevel.ERROR, f"The Page token lacks {' and '.join(missing)}, needed to post; {fix}", tuple(details),
                          settles_doubts="pages_read_engagement" in scopes, missing_permission="" if "pages_read_engagement" in scopes
                          else "pages_read_engagement")
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
        return Health(level, f"Can post to {where} as the Page", tuple(details), expires_at=soonest, settles_doubts=True)

    @staticmethod
    def _epoch(value: object) -> datetime | None:
        seconds = as_int(value)
        if not seconds:  # 0 or absent: never
            return None
        return datetime.fromtimestamp(seconds, UTC)

    # --- one Graph call, errors translated once --------------------------------------------
    def _call(self, fn: Callable[[GraphAPI], T], *, writes: bool, image: bool = False) -> T:
        """Run one facebook-sdk call; every failure leaves as a PublishError, unchained.

        ``image``: the call posts a photo by URL, so a refused image is told apart
        (code IMAGE_REFUSED) and the caller can post the link instead.
        """
        failure: PublishError | None = None
        try:
            return fn(self.client.graph)
        except PublishError:
            raise
        except (GraphAPIError, GraphResponseError) as exc:
            failure = self._answer_error(writes=writes, image=image, reason=exc.reason if isinstance(exc, GraphResponseError) else "")
        except GraphTransportError as exc:
            failure = self.transport_failed(exc.kind, exc.name, writes=writes, what="Facebook")
        except Exception as exc:
            failure = self._not_understood(writes=writes, detail=type(exc).__name__)
        raise failure

    def _not_understood(self, *, writes: bool, detail: str = "", code: int | None = None) -> PublishError:
        cls = UncertainError if writes else TransientError
        text = "the post may have been published" if writes else "will try again later"
        return self.error(cls, f"Facebook's answer could not be understood; {text}", code=code, detail=detail)

    def _answer_error(self, *, writes: bool, image: bool, reason: str) -> PublishError:
        """The answer facebook-sdk refused (Graph's error envelope, or a body it would misread), through ``classify``."""
        response = self.client.transport.last_response
        if response is None:
            return self._not_understood(writes=writes, detail=reason)
        fault = self.graph_fault(response)
        if fault is None and response.status_code < 300:  # a success status whose body could not be read
            return self._not_understood(writes=writes, detail=reason, code=response.status_code)
        if image and fault is not None and (kind_of(fault) is Kind.BAD_IMAGE or (fault.code == 100 and fault.subcode != 33)):
            # The Page could not fetch or use the image (#324, or #100 on the url): nothing was posted.
            return self.error(PermanentError, "Facebook could not use the article's image", code=IMAGE_REFUSED, detail=self.redact(fault.detail))
        return self.classify(response, writes=writes, what="Facebook", detail=reason)

    def secrets(self) -> list[str]:
        token = self.options.access_token.reveal()
        secret = self.options.app_secret.reveal() if self.options.app_secret else ""
        return [v for v in (token, secret) if v]

    def token_env_name(self) -> str:
        return self.options.access_token.env_name or "FACEBOOK_PAGE_TOKEN"

    def new_token(self, granting: str = "") -> str:
        with_it = f" with {granting} granted" if granting else ""
        return f"create a new Page token{with_it} (autopublish connect facebook)"

    def needed_permissions(self, *, writes: bool) -> list[str]:
        return ["pages_manage_posts"] if writes else ["pages_read_engagement"]

    def refine_graph(self, fault: GraphError, kind: Kind, response: requests.Response, *, writes: bool, what: str) -> PublishError | None:
        """A Page that is not there (#100/33), a link Facebook could not read (#1609005)."""
        if fault.code == 100 and fault.subcode == 33:
            return self.error(
                PermanentError,
                f"Facebook says the Page {self.options.page_id} does not exist or the token cannot reach it; check page_id in the channel's config",
                **self.fault_fields(fault),
            )
        if fault.code == 1609005:
            return self.error(PermanentError, "Facebook could not read the article's link to build its preview", **self.fault_fields(fault))
        return None

    # --- corrections and takedowns ----------------------------------------------------------
    can_edit: ClassVar[bool] = True
    can_delete: ClassVar[bool] = True

    def edit(self, receipt: Receipt, post: Post) -> Receipt:
        """``POST /{page-post-id}`` with the new ``message`` (pages_manage_posts); the link card stays."""
        text = post.text
        link = post.link or post.article.link
        if self.options.post_as == "photo" and post.image and link and link not in text:
            text = f"{text}\n\n{link}" if text else link  # a photo post carries its link in the caption
        if not text.strip():
            raise self.error(PermanentError, "The corrected post for Facebook is empty; check the channel's template")
        self._check_length(text)
        try:
            self._call(lambda g: g.request(f"{g.version}/{receipt.remote_id}", post_args={"message": text}, method="POST"), writes=True)
        except PermanentError as exc:
            if _object_gone(exc):
                raise self.error(PermanentError, "The post is no longer on the Facebook Page, so it cannot be updated", code=exc.code) from None
            raise
        return receipt

    def delete(self, receipt: Receipt) -> None:
        """``DELETE /{page-post-id}``; "does not exist" (#100, subcode 33) means already gone."""
        try:
            self._call(lambda g: g.delete_object(receipt.remote_id), writes=True)
        except PermanentError as exc:
            if not _object_gone(exc):
                raise


def _object_gone(exc: PermanentError) -> bool:
    """Graph's "Object with ID ... does not exist" (#100, subcode 33): the post was deleted."""
    return not isinstance(exc, AuthError) and exc.code == 100 and "100/33" in (exc.detail or "")
