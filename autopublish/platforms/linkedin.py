"""LinkedIn Posts API: one organization post per article, with an article card.

- Publish: ``POST /rest/posts`` as the organization (headers ``LinkedIn-Version: YYYYMM``,
  ``X-Restli-Protocol-Version: 2.0.0``, Bearer token); the card's thumbnail is uploaded
  first (``POST /rest/images?action=initializeUpload``, then ``PUT`` to its uploadUrl).
  Success is 201 with an empty body and the post URN in ``x-restli-id``.
- Commentary is LinkedIn's "little" text format: the reserved characters
  ``\\ | { } @ [ ] ( ) < > # * _ ~`` are backslash-escaped (unescaped, LinkedIn silently
  cuts the post at the first one). ``#word`` hashtags stay hashtags.
- Not idempotent. LinkedIn refuses a repeat with 422 DUPLICATE_POST naming the post
  already on the Page: that post is the receipt (no read needed). Other doubts are
  settled by reading back ``GET /rest/posts?q=author``, which needs the
  ``r_organization_social`` permission (posting needs only ``w_organization_social``);
  without it the read-back is CannotCheckError and an editor checks.
- ``LinkedIn-Version``: LinkedIn serves each monthly version for about a year, so the
  default is computed from today's date (two months back), never a month that ages into
  426. ``version = "YYYYMM"`` in the channel pins one; a 426 names both fixes.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import quote

import requests
from pydantic import field_validator

from autopublish.errors import AuthError, CannotCheckError, PermanentError, PublishError, RateLimitedError, TransientError, UncertainError
from autopublish.models import Health, HealthLevel, Post, PostLimits, Receipt
from autopublish.platforms.base import BaseUrl, PlatformOptions, Publisher, count_utf16, json_object, link_key
from autopublish.secrets import SecretRef

log = logging.getLogger(__name__)

MAX_LENGTH = 3000
DEFAULT_RATE_LIMIT_WAIT = 3600.0  # LinkedIn's throttles are daily and say no reset time
READ_BACK_COUNT = 50
RESERVED = set("\\|{}@[]()<>#*_~")
_HASHTAG = re.compile(r"(?<!\S)#(?=\w)")
_ORGANIZATION = re.compile(r"^urn:li:organization:(\d+)$")
_VERSION = re.compile(r"^(20\d\d)(0[1-9]|1[0-2])$")


VERSION_MONTHS_BACK = 2  # a version LinkedIn has surely released, well inside its 12-month window


def default_version(today: datetime) -> str:
    """The ``LinkedIn-Version`` to send when none is pinned: YYYYMM, two months before ``today``."""
    months = today.year * 12 + (today.month - 1) - VERSION_MONTHS_BACK
    return f"{months // 12:04d}{months % 12 + 1:02d}"


def escape_little_text(text: str) -> str:
    """Backslash-escape LinkedIn's reserved characters, keeping ``#word`` hashtags.

    https://learn.microsoft.com/en-us/linkedin/marketing/community-management/shares/little-text-format
    """
    keep = {m.start() for m in _HASHTAG.finditer(text)}
    return "".join("\\" + ch if ch in RESERVED and i not in keep else ch for i, ch in enumerate(text))


class LinkedInOptions(PlatformOptions):
    """``[channels.NAME]`` keys for ``platform = "linkedin"``."""

    api_base: BaseUrl = "https://api.linkedin.com"
    organization: str
    access_token: SecretRef
    # Pin a LinkedIn-Version ("YYYYMM"); unset: a recent month computed from today's date.
    version: str | None = None

    @field_validator("organization", mode="before")
    @classmethod
    def _check_organization(cls, value: object) -> str:
        text = str(value).strip()
        if text.isdigit():
            text = f"urn:li:organization:{text}"
        if not _ORGANIZATION.match(text):
            raise ValueError(
                'organization must be the Page\'s URN, like "urn:li:organization:12345" '
                "(the number is in the Page's admin address: linkedin.com/company/12345/admin)"
            )
        return text

    @field_validator("version", mode="before")
    @classmethod
    def _check_version(cls, value: object) -> str | None:
        if value is None:
            return None
        text = str(value).strip()
        if not _VERSION.match(text):
            raise ValueError('version must be a LinkedIn API version written "YYYYMM", like "202510"')
        return text


class LinkedInPublisher(Publisher[LinkedInOptions]):
    name = "linkedin"
    label = "LinkedIn"
    Options = LinkedInOptions
    limits = PostLimits(max_length=MAX_LENGTH, images=True, link_card=True)
    idempotent: ClassVar[bool] = False
    can_read_back: ClassVar[bool] = True
    default_template = "{title}\n\n{summary}\n\n{hashtags}"
    rate_limit_wait: ClassVar[float] = DEFAULT_RATE_LIMIT_WAIT  # a 429 without Retry-After (daily throttles)

    @property
    def version(self) -> str:
        """The pinned version, else a recent one from today's date."""
        return self.options.version or default_version(self.env.now())

    def count(self, text: str) -> int:
        """LinkedIn's length: UTF-16 code units of the text before escaping."""
        return count_utf16(text)

    # --- publish -------------------------------------------------------------------
    def publish(self, post: Post) -> Receipt:
        """One attempt at ``POST /rest/posts``; the card thumbnail is uploaded first."""
        length = self.count(post.text)
        if length > MAX_LENGTH:
            raise self.error(PermanentError, f"The post is {length} characters, over LinkedIn's limit of {MAX_LENGTH}; shorten the template", code="too_long")
        body: dict[str, Any] = {
            "author": self.options.organization,
            "commentary": escape_little_text(post.text),
            "visibility": "PUBLIC",
            "distribution": {"feedDistribution": "MAIN_FEED", "targetEntities": [], "thirdPartyDistributionChannels": []},
            "lifecycleState": "PUBLISHED",
            "isReshareDisabledByAuthor": False,
        }
        link = post.link or None
        if link:
            article: dict[str, Any] = {"source": link, "title": post.title or post.article.title}
            if post.description:
                article["description"] = post.description
            thumbnail = self._upload_image(post) if post.image else None
            if thumbnail:
                article["thumbnail"] = thumbnail
            body["content"] = {"article": article}
        response = self.request("POST", f"{self.options.api_base}/rest/posts", writes=True, what="LinkedIn", json=body, headers=self._headers())
        if response.status_code not in (200, 201):
            failure = self._failure(response, writes=True)
            if failure.code == "DUPLICATE_POST" and failure.detail.startswith("urn:li:"):
                # LinkedIn names the post already on the Page with this content: that is this post.
                log.info("LinkedIn: the post is already on the Page (%s); recorded as posted", failure.detail, extra={"channel": self.channel})
                return self._receipt(failure.detail)
            raise failure
        urn = response.headers.get("x-restli-id") or response.headers.get("x-linkedin-id")
        if not urn:
            raise self.error(UncertainError, "LinkedIn accepted the post but did not say its id; it may have been published", code=response.status_code)
        return self._receipt(urn)

    def _upload_image(self, post: Post) -> str | None:
        """The image URN of the uploaded thumbnail; None (card without it) when it cannot be had.

        Auth and rate-limit answers still stop the publish: nothing was posted yet.
        """
        assert post.image is not None
        image = self.fetch_image(post.image, origin=post.source_origin)
        if image is None:
            return None
        try:
            init = self.request(
                "POST",
                f"{self.options.api_base}/rest/images",
                writes=False,
                what="LinkedIn's image upload",
                params={"action": "initializeUpload"},
                json={"initializeUploadRequest": {"owner": self.options.organization}},
                headers=self._headers(),
            )
            if init.status_code != 200:
                raise self._failure(init, writes=False, what="LinkedIn's image upload")
            value = (self.read_json(init, writes=False, what="LinkedIn's image upload") or {}).get("value") or {}
            upload_url, urn = value.get("uploadUrl"), value.get("image")
            if not upload_url or not urn:
                raise self.error(TransientError, "LinkedIn's image upload answered without an upload address")
            put = self.request(
                "PUT",
                upload_url,
                writes=False,
                what="LinkedIn's image upload",
                data=image.data,
                headers={"Authorization": f"Bearer {self.options.access_token.reveal()}", "Content-Type": image.content_type},
            )
            if put.status_code not in (200, 201):
                raise self._failure(put, writes=False, what="LinkedIn's image upload")
        except (AuthError, RateLimitedError):
            raise
        except PublishError as exc:
            log.warning("LinkedIn: the thumbnail upload failed (%s); posting without it", exc.message, extra={"channel": self.channel})
            return None
        return str(urn)

    # --- read-back ---------------------------------------------------------------------
    def find_existing(self, post: Post) -> Receipt | None:
        """The organization's recent post whose article card (or text) is this post's."""
        params = {"q": "author", "author": self.options.organization, "count": str(READ_BACK_COUNT), "sortBy": "LAST_MODIFIED"}
        headers = {**self._headers(), "X-RestLi-Method": "FINDER"}
        response = self.request("GET", f"{self.options.api_base}/rest/posts", writes=False, what="LinkedIn", params=params, headers=headers)
        if response.status_code == 403:
            raise CannotCheckError(
                "LinkedIn would not let the token read the Page's posts back: it lacks r_organization_social; posting is not affected",
                missing_permission="r_organization_social", platform=self.name, channel=self.channel, code=403,
                detail=str(json_object(response).get("message") or ""),
            )
        if response.status_code != 200:
            raise self._failure(response, writes=False)
        data = self.read_json(response, writes=False)
        wanted = {link_key(link) for link in (post.link, post.article.link) if link}
        commentary = escape_little_text(post.text)
        for element in data.get("elements", []) if isinstance(data, dict) else []:
            source = (((element.get("content") or {}).get("article") or {}).get("source")) or ""
            # A card's link decides; a post without a card is matched on its text.
            if (link_key(source) in wanted) if source else element.get("commentary") == commentary:
                return self._receipt(str(element["id"]))
        return None

    def check(self) -> Health:
        """The organization's name and the signed-in member's role on it."""
        org_id = _ORGANIZATION.match(self.options.organization).group(1)  # type: ignore[union-attr]
        note = "LinkedIn does not let apps read a token's expiry; member tokens last 60 days from sign-in, so renew before then"
        params = {"q": "roleAssignee", "state": "APPROVED"}
        response = self.request("GET", f"{self.options.api_base}/rest/organizationAcls", writes=False, what="LinkedIn", params=params, headers=self._headers())
        if response.status_code in (401, 426) or response.status_code >= 500:
            raise self._failure(response, writes=False)
        if response.status_code != 200:
            # organizationAcls needs r_organization_admin, which posting does not: not a broken token.
            settles = self._can_read_posts()
            return Health(
                HealthLevel.OK if response.status_code == 403 else HealthLevel.WARNING,
                f"LinkedIn would not list the member's Page roles (HTTP {response.status_code}; that needs r_organization_admin); "
                f"posting to {self.options.organization} is not checked until a post goes out",
                details=(self._doubts_note(settles), note),
                settles_doubts=settles, missing_permission="" if settles else "r_organization_social",
            )
        data = self.read_json(response, writes=False)
        roles = sorted(
            {str(e.get("role")) for e in (data.get("elements", []) if isinstance(data, dict) else []) if e.get("organization") == self.options.organization}
        )
        name = self._organization_name(org_id)
        page = f"{name} ({self.options.organization})" if name else self.options.organization
        if not roles:
            return Health(
                HealthLevel.ERROR,
                f"The signed-in LinkedIn member has no approved role on the Page {page}; a Page admin must make them an Administrator or Content admin",
                details=(note,),
            )
        settles = self._can_read_posts()
        version = f"API version {self.version}" + (" (pinned)" if self.options.version else " (a recent month, from today's date)")
        return Health(HealthLevel.OK, f"Posting to the LinkedIn Page {page} as {', '.join(roles)}",
                      details=(version, self._doubts_note(settles), note),
                      settles_doubts=settles, missing_permission="" if settles else "r_organization_social")

    @staticmethod
    def _doubts_note(settles: bool) -> str:
        if settles:
            return "Posts in doubt are settled by reading the Page's posts back (r_organization_social)"
        return ("The token lacks r_organization_social: posts in doubt cannot be checked automatically and go to an editor; "
                "add that permission to the app and sign in again")

    def _can_read_posts(self) -> bool:
        """One ``GET /rest/posts?q=author`` (count 1): may the token read the Page's posts back?"""
        params = {"q": "author", "author": self.options.organization, "count": "1"}
        headers = {**self._headers(), "X-RestLi-Method": "FINDER"}
        response = self.request("GET", f"{self.options.api_base}/rest/posts", writes=False, what="LinkedIn", params=params, headers=headers)
        return response.status_code == 200

    def _organization_name(self, org_id: str) -> str:
        """The Page's name, or "" where the token may not read it."""
        response = self.request("GET", f"{self.options.api_base}/rest/organizations/{org_id}", writes=False, what="LinkedIn", headers=self._headers())
        if response.status_code != 200:
            return ""
        data = self.read_json(response, writes=False)
        return str(data.get("localizedName") or "") if isinstance(data, dict) else ""

    # --- helpers -------------------------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.options.access_token.reveal()}",
            "LinkedIn-Version": self.version,
            "X-Restli-Protocol-Version": "2.0.0",
        }

    def _receipt(self, urn: str) -> Receipt:
        return Receipt(remote_id=urn, url=f"https://www.linkedin.com/feed/update/{quote(urn, safe=':')}/")

    def _failure(self, response: requests.Response, *, writes: bool, what: str = "LinkedIn") -> PublishError:
        """Map a LinkedIn error answer to the core's vocabulary."""
        return self.classify(response, writes=writes, what=what, detail=str(json_object(response).get("message") or ""))

    def refine(self, response: requests.Response, *, writes: bool, what: str, detail: str) -> PublishError | None:
        """LinkedIn's own codes: daily throttles, 60-day tokens, Page roles, retired versions, duplicates."""
        status = response.status_code
        body = json_object(response)
        code = str(body.get("code") or "")
        message = detail
        input_codes = {
            str(e.get("code"))
            for e in ((body.get("errorDetails") or {}).get("inputErrors") or [])
            if isinstance(e, dict)
        }
        token = self.options.access_token.env_name or "the channel's LinkedIn token"
        resume = f"autopublish resume {self.channel}"
        if status == 429:  # a daily app or member throttle: Retry-After if sent, else an hour
            return self.rate_limited(response, what=what, code=status, detail=message or "daily limit of calls reached")
        if status == 401:
            return self.error(
                AuthError,
                "LinkedIn says the access token expired or was revoked (LinkedIn tokens last 60 days); "
                f"sign in again to get a new token, put it in .env as {token} and run: {resume}",
                code=code or status,
                detail=message,
            )
        if status == 403:
            return self.error(
                AuthError,
                "LinkedIn refused: the token lacks the w_organization_social permission or the signed-in member is not an "
                f"Administrator or Content admin of the Page {self.options.organization}; fix that, put a new token in .env as {token} "
                f"and run: {resume}",
                code=code or status,
                detail=message,
            )
        if status == 426:
            fix = (f'remove version = "{self.options.version}" from the channel (autopublish then picks a recent month) or pin '
                   "a month from the last twelve" if self.options.version else
                   'pin a month from the last twelve with version = "YYYYMM" in the channel')
            return self.error(
                AuthError,
                f"LinkedIn no longer accepts API version {self.version} (it serves each version for about a year); {fix}, "
                f"then run: {resume}",
                code=code or status,
                detail=message,
            )
        if status == 422 and ("DUPLICATE_POST" in input_codes or "duplicate" in message.lower()):
            existing = re.search(r"urn:li:(?:share|ugcPost):\d+", message)
            return self.error(
                UncertainError,
                "LinkedIn refused the post as a duplicate of one already on the Page; an earlier attempt may have published it",
                code="DUPLICATE_POST",
                detail=existing.group(0) if existing else message,
            )
        if status >= 500 or status == 408:
            return None
        if status == 404:
            return self.error(PermanentError, f"{what} answered HTTP 404; check api_base and organization in the channel's config", code=status, detail=message)
        return self.error(PermanentError, f"LinkedIn refused the post: {_plain(message) or f'HTTP {status}'}", code=code or status, detail=message)


    # --- corrections and takedowns ----------------------------------------------------------
    can_edit: ClassVar[bool] = True
    can_delete: ClassVar[bool] = True

    def _post_url(self, receipt: Receipt) -> str:
        return f"{self.options.api_base}/rest/posts/{quote(receipt.remote_id, safe='')}"

    def edit(self, receipt: Receipt, post: Post) -> Receipt:
        """Partial update of the commentary: ``POST /rest/posts/{urn}`` with X-RestLi-Method PARTIAL_UPDATE
        and ``{"patch": {"$set": {"commentary": ...}}}`` (only the commentary of a post can change)."""
        length = self.count(post.text)
        if length > MAX_LENGTH:
            raise self.error(PermanentError, f"The post is {length} characters, over LinkedIn's limit of {MAX_LENGTH}; shorten the template", code="too_long")
        body = {"patch": {"$set": {"commentary": escape_little_text(post.text)}}}
        headers = {**self._headers(), "X-RestLi-Method": "PARTIAL_UPDATE"}
        response = self.request("POST", self._post_url(receipt), writes=True, what="LinkedIn", json=body, headers=headers)
        if response.status_code == 404:
            raise self.error(PermanentError, "The post is no longer on the LinkedIn Page, so it cannot be updated", code=404)
        if response.status_code >= 300:
            raise self._failure(response, writes=True)
        return receipt

    def delete(self, receipt: Receipt) -> None:
        """``DELETE /rest/posts/{urn}`` (X-RestLi-Method DELETE); deletes are idempotent, a 404 is also gone."""
        headers = {**self._headers(), "X-RestLi-Method": "DELETE"}
        response = self.request("DELETE", self._post_url(receipt), writes=True, what="LinkedIn", headers=headers)
        if response.status_code < 300 or response.status_code == 404:
            return
        raise self._failure(response, writes=True)


def _plain(message: str) -> str:
    """LinkedIn's message without the Java exception class prefix."""
    return re.sub(r"^[\w.]+Exception:\s*", "", message).strip()
