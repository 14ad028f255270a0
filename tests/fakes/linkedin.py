"""A loopback LinkedIn REST API: /rest/posts, the image upload flow, read-back, ACLs.

Speaks LinkedIn's shapes: 426 NONEXISTENT_VERSION when ``LinkedIn-Version`` is missing,
older than twelve months or not yet released (the window moves with ``clock``), 201 with an empty body and the URN in ``x-restli-id``, 422 DUPLICATE_POST
naming the existing URN, 401/403/429 in LinkedIn's error envelope. Like LinkedIn, it
publishes commentary in the "little" text format: the published text is cut at the
first unescaped reserved character (what LinkedIn does silently, with a 201).
"""

from __future__ import annotations

import itertools
import re
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from tests.contract import CANARY, ContractCase
from tests.fakes.base import FakeServer, Request, Response

RESERVED = set("\\|{}@[]()<>#*_~")
ORGANIZATION = "urn:li:organization:12345"


def render_little(commentary: str) -> str:
    """The text LinkedIn shows for little-format ``commentary`` (cut at a stray reserved char)."""
    out: list[str] = []
    i = 0
    while i < len(commentary):
        ch = commentary[i]
        if ch == "\\":
            if i + 1 >= len(commentary):
                break
            out.append(commentary[i + 1])
            i += 2
            continue
        if ch == "#":
            tag = re.match(r"#\w+", commentary[i:])
            if tag and (i == 0 or commentary[i - 1].isspace()):
                out.append(tag.group(0))
                i += len(tag.group(0))
                continue
            break
        if ch == "@":
            mention = re.match(r"@\[([^\]]*)\]\((urn:li:(?:person|organization):\w+)\)", commentary[i:])
            if mention:
                out.append(mention.group(1))
                i += len(mention.group(0))
                continue
            break
        if ch in RESERVED:
            break
        out.append(ch)
        i += 1
    return "".join(out)


class LinkedInFake(FakeServer):
    """LinkedIn for one member token that administers one organization."""

    def __init__(self, *, token: str = "li-token", organization: str = ORGANIZATION, lifetime: float = 300.0) -> None:
        super().__init__(lifetime)
        self.token = token
        self.organization = organization
        self.clock: Callable[[], float] = time.time  # "today", for the version window
        self.scopes = {"w_organization_social", "r_organization_social", "r_organization_admin"}
        self.role = "ADMINISTRATOR"
        self.posts: list[dict[str, Any]] = []  # newest last
        self.deleted: list[dict[str, Any]] = []
        self.images: dict[str, dict[str, Any]] = {}  # urn -> {"upload": token, "data": bytes | None}
        self.overrides: list[Response] = []  # answered instead of the next publish request
        self._ids = itertools.count(7300000000000000001)

    def answer_next_publish(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        """Answer the next POST /rest/posts with this JSON (nothing is posted)."""
        self.overrides.append(Response.json_body(status, body, headers))

    def grant(self, scopes: set[str] | tuple[str, ...] | list[str]) -> None:
        """The member token holds exactly these OAuth permissions from now on."""
        with self.lock:
            self.scopes = set(scopes)

    def version_window(self) -> tuple[str, str]:
        """(oldest, newest) LinkedIn-Version served today."""
        # marketing/versioning: each monthly version is served for (at least) one year; a later month does not exist yet.
        today = datetime.fromtimestamp(self.clock(), UTC)
        months = today.year * 12 + today.month - 1
        oldest = months - 12
        return f"{oldest // 12:04d}{oldest % 12 + 1:02d}", f"{today.year:04d}{today.month:02d}"

    def _denied(self, resource: str) -> Response:
        return self._error(403, f"Not enough permissions to access: {resource}", code="ACCESS_DENIED")

    # --- FakeServer hooks ------------------------------------------------------------
    def is_publish(self, request: Request) -> bool:
        return request.method == "POST" and request.path == "/rest/posts"

    def error_response(self, kind: str, request: Request) -> Response:
        if kind == "rate_limit":
            return self._error(429, "Resource level throttle APPLICATION DAY limit for calls to this resource is reached.")
        if kind == "auth":
            return self._error(401, "The token used in the request has expired", code="EXPIRED_ACCESS_TOKEN", service=65602)
        if kind == "bad_request":
            return self._input_error(400, "/commentary", "INVALID_VALUE", "Invalid value for field commentary")
        return self._error(500, "Internal Server Error")

    def route(self, request: Request) -> Response:
        if request.path.startswith("/dms-uploads/"):
            return self._receive_upload(request)
        if not request.path.startswith("/rest/"):
            return self._error(404, "Not Found")
        version = request.header("linkedin-version")
        if not version:
            return self._error(426, "A version must be present. Please specify a version by adding the LinkedIn-Version header.", code="VERSION_MISSING")
        oldest, newest = self.version_window()
        if not re.fullmatch(r"\d{6}", version) or not oldest <= version <= newest:
            return self._error(426, f"Requested version {version} is not active", code="NONEXISTENT_VERSION")
        if request.header("authorization") != f"Bearer {self.token}":
            return self._error(401, "Invalid access token", code="INVALID_ACCESS_TOKEN", service=65600)
        if request.header("x-restli-protocol-version") != "2.0.0":
            return self._error(400, "Rest.li protocol version 2.0.0 is required for this resource")
        if request.method == "POST" and request.path == "/rest/posts":
            return self.overrides.pop(0) if self.overrides else self._create(request)
        if request.method == "POST" and request.path == "/rest/images" and request.query.get("action") == ["initializeUpload"]:
            return self._initialize_upload(request)
        if request.path.startswith("/rest/posts/") and request.method in ("POST", "DELETE"):
            return self._change(request, unquote(request.path[len("/rest/posts/"):]))
        if request.method == "GET" and request.path == "/rest/posts" and request.query.get("q") == ["author"]:
            # posts-api "Find Posts by Authors": needs r_organization_social (w_organization_social only writes).
            if "r_organization_social" not in self.scopes:
                return self._denied("partnerApiPostsExternal.FINDER-author.20251001")
            return self._find_by_author(request)
        if request.method == "GET" and request.path == "/rest/organizationAcls" and request.query.get("q") == ["roleAssignee"]:
            # organization-access-control-by-role: r_organization_admin or rw_organization_admin.
            if not self.scopes & {"r_organization_admin", "rw_organization_admin"}:
                return self._denied("organizationAcls.FINDER-roleAssignee.20251001")
            element = {"organization": self.organization, "role": self.role, "roleAssignee": "urn:li:person:AbC123", "state": "APPROVED"}
            return Response.json_body(200, {"elements": [element], "paging": {"start": 0, "count": 10, "links": []}})
        if request.method == "GET" and request.path == f"/rest/organizations/{self.organization.rsplit(':', 1)[1]}":
            # organization-lookup-api: an administered organization needs r_organization_admin or rw_organization_admin (stricter reading).
            if not self.scopes & {"r_organization_admin", "rw_organization_admin"}:
                return self._denied("organizations.GET.20251001")
            organization = {"id": int(self.organization.rsplit(":", 1)[1]), "localizedName": "Jakarta Berketahanan", "vanityName": "jakarta-berketahanan"}
            return Response.json_body(200, organization)
        return self._error(404, f"No virtual resource found for {request.method} {request.path}", code="NOT_FOUND")

    # --- endpoints ----------------------------------------------------------------------
    def _change(self, request: Request, urn: str) -> Response:
        # posts-api "Update Posts": POST /rest/posts/{encoded urn}, X-RestLi-Method: PARTIAL_UPDATE,
        # {"patch": {"$set": {...}}}; only commentary (and a few ad fields) may change; 204 on success.
        # posts-api "Delete Posts": DELETE with X-RestLi-Method: DELETE; "Post deletions are idempotent":
        # a post already deleted answers 204 too. Both need w_organization_social for a Page's post.
        if "w_organization_social" not in self.scopes:
            return self._denied("partnerApiPostsExternal.PARTIAL_UPDATE.20251001")
        found = next((p for p in self.posts if p["id"] == urn), None)
        method = request.header("x-restli-method").upper()
        if request.method == "DELETE":
            if method != "DELETE":
                return self._error(400, "X-RestLi-Method header DELETE is required")
            if found is not None:
                self.posts.remove(found)
                self.deleted.append(found)
            return Response(204)
        if method != "PARTIAL_UPDATE":
            return self._error(400, "X-RestLi-Method header PARTIAL_UPDATE is required for a partial update")
        if found is None:
            return self._error(404, f"Post {urn} does not exist", code="NOT_FOUND")
        patch = ((request.json or {}).get("patch") or {}).get("$set") if isinstance(request.json, dict) else None
        if not isinstance(patch, dict) or not patch:
            return self._input_error(422, "/patch", "MISSING_FIELD", "Field /patch/$set is required")
        unknown = set(patch) - {"commentary", "contentCallToActionLabel", "contentLandingPage", "lifecycleState", "adContext"}
        if unknown:
            return self._input_error(422, f"/patch/$set/{min(unknown)}", "UNPROCESSABLE_FIELD", "This field cannot be updated")
        commentary = patch.get("commentary")
        if commentary is not None:
            if not isinstance(commentary, str) or len(render_little(commentary).encode("utf-16-le")) // 2 > 3000:
                return self._input_error(422, "/commentary", "MAX_LENGTH_EXCEEDED", "Commentary is longer than 3000 characters")
            found.update(commentary=commentary, published_text=render_little(commentary), lastModifiedAt=int(time.time() * 1000))
        return Response(204)

    def _create(self, request: Request) -> Response:
        # posts-api "Create a Post" for an organization: w_organization_social.
        if "w_organization_social" not in self.scopes:
            return self._error(403, "Not enough permissions to access: partnerApiPostsExternal.CREATE.20251001", code="ACCESS_DENIED")
        body = request.json if isinstance(request.json, dict) else {}
        if body.get("author") != self.organization:
            return self._error(403, f"Not enough permissions to post as {body.get('author')}", code="ACCESS_DENIED")
        for field, expected in (("visibility", "PUBLIC"), ("lifecycleState", "PUBLISHED")):
            if body.get(field) != expected:
                return self._input_error(422, f"/{field}", "INVALID_VALUE", f"Invalid value for field {field}")
        distribution = body.get("distribution") or {}
        if distribution.get("feedDistribution") != "MAIN_FEED":
            return self._input_error(422, "/distribution/feedDistribution", "MISSING_FIELD", "Field /distribution/feedDistribution is required")
        commentary = body.get("commentary")
        if not isinstance(commentary, str):
            return self._input_error(422, "/commentary", "MISSING_FIELD", "Field /commentary is required")
        article = (body.get("content") or {}).get("article")
        if body.get("content") is not None:
            if not isinstance(article, dict) or not article.get("source") or not article.get("title"):
                return self._input_error(422, "/content/article/source", "MISSING_FIELD", "Field /content/article/source is required")
            thumbnail = article.get("thumbnail")
            if thumbnail is not None and (thumbnail not in self.images or self.images[thumbnail]["data"] is None):
                return self._input_error(400, "/content/article/thumbnail", "INVALID_URN", f"Image {thumbnail} is not available")
        shown = render_little(commentary)
        if len(shown.encode("utf-16-le")) // 2 > 3000:
            return self._input_error(422, "/commentary", "MAX_LENGTH_EXCEEDED", "Commentary is longer than 3000 characters")
        for existing in self.posts:
            # Like LinkedIn: the same text (and card link) again; a new thumbnail upload does not matter.
            same_link = ((existing.get("content") or {}).get("article") or {}).get("source") == (article or {}).get("source")
            if existing["commentary"] == commentary and same_link:
                message = f"com.linkedin.content.common.exception.BadRequestResponseException: Content is a duplicate of {existing['id']}"
                return Response.json_body(422, {
                    "errorDetailType": "com.linkedin.common.error.BadRequest",
                    "message": message,
                    "errorDetails": {"inputErrors": [{"description": "Duplicate post is detected", "input": {}, "code": "DUPLICATE_POST"}]},
                    "status": 422,
                })
        urn = f"urn:li:share:{next(self._ids)}"
        now = int(time.time() * 1000)
        record = {
            "id": urn,
            "author": body["author"],
            "commentary": commentary,
            "published_text": shown,
            "visibility": "PUBLIC",
            "lifecycleState": "PUBLISHED",
            "createdAt": now,
            "publishedAt": now,
            "lastModifiedAt": now,
            "isReshareDisabledByAuthor": body.get("isReshareDisabledByAuthor", False),
            "distribution": distribution,
        }
        if body.get("content") is not None:
            record["content"] = body["content"]
        self.posts.append(record)
        return Response(201, b"", {"x-restli-id": urn, "x-linkedin-id": urn})

    def _initialize_upload(self, request: Request) -> Response:
        if "w_organization_social" not in self.scopes:
            return self._error(403, "Not enough permissions to access: images.ACTION.20251001", code="ACCESS_DENIED")
        owner = ((request.json or {}).get("initializeUploadRequest") or {}).get("owner")
        if owner != self.organization:
            return self._input_error(422, "/initializeUploadRequest/owner", "INVALID_URN", "Invalid owner")
        urn = f"urn:li:image:D4D10AQ{secrets.token_hex(6)}"
        upload = secrets.token_urlsafe(12)
        self.images[urn] = {"upload": upload, "data": None}
        value = {"uploadUrlExpiresAt": int(time.time() * 1000) + 3_600_000, "uploadUrl": f"{self.url}/dms-uploads/{upload}?ca=vector_feedshare", "image": urn}
        return Response.json_body(200, {"value": value})

    def _receive_upload(self, request: Request) -> Response:
        if request.method != "PUT":
            return self._error(405, "Method not allowed")
        if request.header("authorization") != f"Bearer {self.token}":
            return self._error(401, "Invalid access token", code="INVALID_ACCESS_TOKEN", service=65600)
        upload = request.path.rsplit("/", 1)[1]
        for image in self.images.values():
            if image["upload"] == upload:
                if not request.body.startswith((b"\x89PNG", b"\xff\xd8", b"GIF8")):
                    return self._error(400, "Unsupported image format")
                image["data"] = request.body
                return Response(201, b"")
        return self._error(404, "Upload not found")

    def _find_by_author(self, request: Request) -> Response:
        author = request.query.get("author", [""])[0]
        count = int(request.query.get("count", ["10"])[0])
        mine = [p for p in reversed(self.posts) if p["author"] == author][: min(count, 100)]
        elements = [{k: v for k, v in p.items() if k != "published_text"} for p in mine]
        return Response.json_body(200, {"elements": elements, "paging": {"start": 0, "count": count, "links": []}})

    # --- envelopes ----------------------------------------------------------------------
    def _error(self, status: int, message: str, *, code: str | None = None, service: int | None = None) -> Response:
        body: dict[str, Any] = {"status": status, "message": message}
        if code:
            body["code"] = code
        if service:
            body["serviceErrorCode"] = service
        return Response.json_body(status, body)

    def _input_error(self, status: int, path: str, code: str, description: str) -> Response:
        return Response.json_body(status, {
            "errorDetailType": "com.linkedin.common.error.BadRequest",
            "message": f"com.linkedin.content.common.exception.BadRequestResponseException: {description}",
            "errorDetails": {"inputErrors": [{"description": description, "input": {"inputPath": {"fieldPath": path}}, "code": code}]},
            "status": status,
        })


TOKEN = f"{CANARY}-linkedin"


def channel_options(fake: FakeServer) -> dict[str, Any]:
    """The channel's keys exactly as an admin writes them in TOML."""
    return {"api_base": fake.url, "organization": ORGANIZATION, "access_token": "${LINKEDIN_TOKEN}"}


# README: w_organization_social posts; r_organization_social reads posts back to settle doubts.
MINIMAL_SCOPES = ("w_organization_social", "r_organization_social")


CONTRACT = ContractCase(
    platform="linkedin",
    make_fake=lambda: LinkedInFake(token=TOKEN),
    options=channel_options,
    env={"LINKEDIN_TOKEN": TOKEN},
    posts=lambda fake: len(fake.posts),  # type: ignore[attr-defined]
    minimal_scopes=MINIMAL_SCOPES,
)
