"""FakeGraph: a loopback Facebook Graph API for one Page (and the user who manages it).

Speaks the documented paths with or without a ``/vNN.N`` prefix; takes the token from an
``Authorization: OAuth|Bearer`` header, the form, JSON or the query; answers Graph's
success bodies and its error envelope, always as ``application/json; charset=UTF-8``
(except the scripted "server_error", an HTML 500 page as a proxy would send), with a
``facebook-api-version`` header. Supports the batch endpoint (one level), debug_token,
/me/accounts and the fb_exchange_token exchange used by ``autopublish connect facebook``.

Switches: ``expire_token()`` (every call answers 190/463 until ``reset_token()``),
``missing_permission`` ("pages_manage_posts" or "pages_read_engagement"),
``fail_next(code=..., ...)`` for any Graph error, plus the base's scripted faults.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from tests.contract import CANARY, ContractCase
from tests.fakes.base import FakeServer, Request, Response

VERSION_PREFIX = re.compile(r"^/(v\d+\.\d+)(/.*)?$")
EXPIRED_MESSAGE = (
    "Error validating access token: Session has expired on Saturday, 14-Nov-26 04:00:00 PST. "
    "The current time is Monday, 16-Nov-26 09:12:40 PST."
)
HTML_500 = (
    "<!DOCTYPE html><html><head><title>Facebook | Error</title></head>"
    "<body><h1>Sorry, something went wrong.</h1><p>We're working on it.</p></body></html>"
)


@dataclass
class _QueuedError:
    when: Callable[[Request], bool]
    response: Response
    times: int


def graph_error(
    status: int,
    code: int,
    message: str,
    *,
    subcode: int | None = None,
    type: str = "OAuthException",
    headers: dict[str, str] | None = None,
    is_transient: bool | None = None,
) -> Response:
    """Graph's error envelope."""
    error: dict[str, Any] = {"message": message, "type": type, "code": code, "fbtrace_id": "AbCdEfGh123"}
    if subcode is not None:
        error["error_subcode"] = subcode
    if is_transient is not None:
        error["is_transient"] = is_transient
    return Response.json_body(status, {"error": error}, headers)


def _split_fields(spec: str) -> list[str]:
    """Top-level names of a Graph ``fields`` spec: "id,attachments{url,unshimmed_url}" -> [id, attachments]."""
    names, depth, current = [], 0, ""
    for char in spec:
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
        elif char == "," and depth == 0:
            names.append(current.strip())
            current = ""
            continue
        if depth == 0 and char not in "{}":
            current += char
    if current.strip():
        names.append(current.strip())
    return [n for n in names if n]


class FakeGraph(FakeServer):
    """One Page, its Page token, the admin who manages it and the app used to connect."""

    def __init__(
        self,
        *,
        page_id: str = "1122334455",
        page_name: str = "Jakarta Berketahanan",
        page_token: str = CANARY,
        lifetime: float = 300.0,
    ) -> None:
        super().__init__(lifetime)
        self.page_id = page_id
        self.page_name = page_name
        self.page_token = page_token
        self.posts: list[dict[str, Any]] = []
        self.deleted_posts: list[dict[str, Any]] = []  # removed by DELETE /{post-id}  # newest last
        self.scrapes: list[str] = []
        self.token_expired = False
        self.missing_permission: str | None = None
        self.rate_limit_style = "buc"  # "buc": code 32 + X-Business-Use-Case-Usage; "app": code 4 + X-App-Usage
        self.served_version: str | None = None  # answer as another version (an expired one was asked for)
        self.app_secret_for_proof: str | None = None  # when set, every call must carry a valid appsecret_proof
        # debug_token facts about the Page token
        self.token_type = "PAGE"
        self.token_scopes = ["pages_show_list", "pages_read_engagement", "pages_manage_posts"]
        self.token_expires_at = 0  # epoch seconds; 0 = never
        self.data_access_expires_at = 0
        # connect: the app, the admin's tokens, the Pages they manage
        self.app_id = "4400112233"
        self.app_secret = "fake-app-secret-9d8c7b"
        self.user_token = "short-lived-user-token-77aa"
        self.long_user_token = "long-lived-user-token-88bb"
        self.accounts: list[dict[str, Any]] = [
            {
                "id": "2233445566",
                "name": "Balai Kota Jakarta",
                "access_token": "other-page-token-2233",
                "category": "Government organization",
                "tasks": ["ANALYZE", "CREATE_CONTENT", "MODERATE"],
            },
            {
                "id": page_id,
                "name": page_name,
                "access_token": page_token,
                "category": "Government organization",
                "tasks": ["ANALYZE", "ADVERTISE", "MODERATE", "CREATE_CONTENT", "MANAGE"],
            },
        ]
        self._queued: list[_QueuedError] = []
        self._ids = itertools.count(555666777888001)

    # --- switches ---------------------------------------------------------------------
    def expire_token(self) -> None:
        with self.lock:
            self.token_expired = True

    def reset_token(self) -> None:
        with self.lock:
            self.token_expired = False

    def fail_next(
        self,
        *,
        code: int,
        message: str = "",
        subcode: int | None = None,
        status: int = 400,
        headers: dict[str, str] | None = None,
        is_transient: bool | None = None,
        when: Callable[[Request], bool] | None = None,
        times: int = 1,
    ) -> None:
        """The next matching request (default: a publish) gets this Graph error, and nothing happens."""
        response = graph_error(status, code, message or f"(#{code}) Fake error", subcode=subcode, headers=headers, is_transient=is_transient)
        with self.lock:
            self._queued.append(_QueuedError(when or self.is_publish, response, times))

    def answer_next(self, response: Response, *, when: Callable[[Request], bool] | None = None, times: int = 1) -> None:
        """The next matching request (default: a publish) gets exactly this answer, and nothing happens."""
        with self.lock:
            self._queued.append(_QueuedError(when or self.is_publish, response, times))

    @property
    def feed_posts(self) -> list[dict[str, Any]]:
        return [p for p in self.posts if p["kind"] == "feed"]

    @property
    def photo_posts(self) -> list[dict[str, Any]]:
        return [p for p in self.posts if p["kind"] == "photo"]

    # --- FakeServer hooks ---------------------------------------------------------------
    def is_publish(self, request: Request) -> bool:
        rest = self._rest(request.path)[1]
        return request.method == "POST" and rest in (f"/{self.page_id}/feed", f"/{self.page_id}/photos")

    def error_response(self, kind: str, request: Request) -> Response:
        version = self._rest(request.path)[0]
        if kind == "rate_limit":
            if self.rate_limit_style == "app":
                usage = {"call_count": 100, "total_cputime": 12, "total_time": 30}
                response = graph_error(403, 4, "(#4) Application request limit reached", headers={"X-App-Usage": json.dumps(usage)}, is_transient=True)
            else:
                usage = {self.page_id: [{"type": "pages", "call_count": 100, "total_cputime": 20, "total_time": 20, "estimated_time_to_regain_access": 19}]}
                response = graph_error(400, 32, "(#32) Page request limit reached", headers={"X-Business-Use-Case-Usage": json.dumps(usage)}, is_transient=True)
        elif kind == "auth":
            response = graph_error(400, 190, EXPIRED_MESSAGE, subcode=463)
        elif kind == "bad_request":
            response = graph_error(400, 100, "(#100) Invalid parameter", type="GraphMethodException")
        else:  # server_error: what a proxy in front of Graph sends
            response = Response(500, HTML_500, {"Content-Type": "text/html; charset=utf-8"})
        return self._versioned(response, version)

    def route(self, request: Request) -> Response:
        version, rest = self._rest(request.path)
        for queued in list(self._queued):
            if queued.when(request):
                queued.times -= 1
                if queued.times <= 0:
                    self._queued.remove(queued)
                return self._versioned(queued.response, version)
        return self._versioned(self._dispatch(request, rest), version)

    # --- dispatch ---------------------------------------------------------------------
    @staticmethod
    def _rest(path: str) -> tuple[str, str]:
        match = VERSION_PREFIX.match(path)
        if match:
            return match.group(1), match.group(2) or "/"
        return "", path or "/"

    def _versioned(self, response: Response, version: str) -> Response:
        response.headers = {**response.headers, "facebook-api-version": self.served_version or version or "v23.0"}
        return response

    @staticmethod
    def token_of(request: Request) -> str | None:
        auth = request.header("authorization")
        for scheme in ("OAuth ", "Bearer "):
            if auth.startswith(scheme):
                return auth[len(scheme):].strip()
        return request.param("access_token")

    def _dispatch(self, request: Request, rest: str) -> Response:
        page = f"/{self.page_id}"
        method = request.method
        if rest == "/oauth/access_token":
            return self._exchange(request)
        token = self.token_of(request)
        if not token:
            return graph_error(400, 104, "An access token is required to request this resource.")
        if self.token_expired and token in (self.page_token, self.long_user_token, self.user_token):
            return graph_error(400, 190, EXPIRED_MESSAGE, subcode=463)
        if self.app_secret_for_proof is not None:
            proof = hmac.new(self.app_secret_for_proof.encode(), token.encode(), hashlib.sha256).hexdigest()
            if request.param("appsecret_proof") != proof:
                return graph_error(400, 100, "Invalid appsecret_proof provided in the API argument", type="GraphMethodException")
        if rest in ("/", "") and method == "POST" and request.param("batch") is not None:
            return self._batch(request, token)
        if rest in ("/", "") and method == "POST" and request.param("scrape") == "true":
            return self._scrape(request, token)
        if rest == "/debug_token":
            return self._debug(request, token)
        if rest == "/me/accounts" and method == "GET":
            return self._me_accounts(request, token)
        if token != self.page_token:
            return graph_error(400, 190, "Invalid OAuth access token - Cannot parse access token")
        if rest == page and method == "GET":
            fields = _split_fields(request.param("fields") or "name")
            body = {"id": self.page_id}
            if "name" in fields:
                body["name"] = self.page_name
            return Response.json_body(200, body)
        if rest == f"{page}/feed" and method == "POST":
            return self._create_feed(request)
        if rest == f"{page}/photos" and method == "POST":
            return self._create_photo(request)
        if rest in (f"{page}/published_posts", f"{page}/posts", f"{page}/feed") and method == "GET":
            return self._list_posts(request, token)
        post = next((p for p in self.posts if rest == f"/{p['id']}"), None)
        if post is not None and method in ("POST", "DELETE"):
            return self._change_post(request, post)
        return graph_error(
            400, 100,
            f"Unsupported {method.lower()} request. Object with ID '{rest.strip('/')}' does not exist, cannot be loaded due to missing permissions, or does "
            f"not support this operation.",
            subcode=33, type="GraphMethodException",
        )

    # --- endpoints --------------------------------------------------------------------
    def grant(self, scopes: set[str] | tuple[str, ...] | list[str]) -> None:
        with self.lock:
            self.token_scopes = list(scopes)

    def _lacks(self, permission: str) -> bool:
        return permission == self.missing_permission or permission not in self.token_scopes

    def _cannot_post(self) -> Response | None:
        # Page feed/photos reference: posting needs pages_manage_posts AND pages_read_engagement.
        if self._lacks("pages_manage_posts") or self._lacks("pages_read_engagement"):
            return graph_error(403, 200, "(#200) If posting to a page, requires both pages_read_engagement and pages_manage_posts as an admin with sufficient "
                                         "administrative permission")
        return None

    def _create_feed(self, request: Request) -> Response:
        refused = self._cannot_post()
        if refused is not None:
            return refused
        message, link = request.param("message"), request.param("link")
        if not message and not link:
            return graph_error(400, 100, "(#100) Missing message or attachment")
        if message and len(message) > 63206:
            return graph_error(400, 100, "(#100) The message is too long")
        return Response.json_body(200, {"id": self._store("feed", message=message or "", link=link)["id"]})

    def _create_photo(self, request: Request) -> Response:
        refused = self._cannot_post()
        if refused is not None:
            return refused
        url = request.param("url")
        if not url and "source" not in request.files:
            return graph_error(400, 324, "(#324) Requires upload file")
        if url and (not url.startswith(("http://", "https://")) or "/missing/" in url):
            return graph_error(400, 324, "(#324) Missing or invalid image file")
        caption = request.param("caption") or request.param("message") or ""
        photo_id = str(next(self._ids))
        post = self._store("photo", message=caption, link=None, image=url, photo_id=photo_id)
        return Response.json_body(200, {"id": photo_id, "post_id": post["id"]})

    def _change_post(self, request: Request, post: dict[str, Any]) -> Response:
        # Page post reference: "Updating" is POST /{page-post-id} with message, "Deleting" is
        # DELETE /{page-post-id}; both need pages_manage_posts (with pages_read_engagement) and
        # answer {"success": true}. A deleted post's id then gets the #100/33 "does not exist" error.
        refused = self._cannot_post()
        if refused is not None:
            return refused
        if request.method == "DELETE":
            self.posts.remove(post)
            self.deleted_posts.append(post)
            return Response.json_body(200, {"success": True})
        message = request.param("message")
        if message is None:
            return graph_error(400, 100, "(#100) Param message must be non-empty")
        if len(message) > 63206:
            return graph_error(400, 100, "(#100) The message is too long")
        post.setdefault("history", []).append(post.get("message", ""))
        post["message"] = message
        return Response.json_body(200, {"success": True})

    def _store(self, kind: str, **fields: Any) -> dict[str, Any]:
        number = str(next(self._ids))
        post = {
            "id": f"{self.page_id}_{number}",
            "kind": kind,
            "created_time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S+0000"),
            "permalink_url": f"https://www.facebook.com/{self.page_id}/posts/{number}",
            **fields,
        }
        self.posts.append(post)
        return post

    def _list_posts(self, request: Request, token: str) -> Response:
        # Page published_posts reference: a Page token with pages_read_engagement.
        if self._lacks("pages_read_engagement"):
            return graph_error(403, 10, "(#10) This endpoint requires the 'pages_read_engagement' permission or the 'Page Public Content Access' feature.")
        fields = _split_fields(request.param("fields") or "id,message,created_time")
        if "link" in fields:  # Post.link went away in v3.3; asking for it is an error
            return graph_error(400, 12, "(#12) deprecate_post_aggregated_fields_for_attachement is deprecated for versions v3.3 and higher")
        limit = int(request.param("limit") or 25)
        items = []
        for post in reversed(self.posts):
            item: dict[str, Any] = {"id": post["id"]}
            if "message" in fields and post.get("message"):
                item["message"] = post["message"]
            if "created_time" in fields:
                item["created_time"] = post["created_time"]
            if "permalink_url" in fields:
                item["permalink_url"] = post["permalink_url"]
            if "attachments" in fields:
                if post.get("link"):
                    shim = "https://l.facebook.com/l.php?u=" + quote(post["link"], safe="") + "&h=AT0fake"
                    item["attachments"] = {"data": [{"url": shim, "unshimmed_url": post["link"], "type": "share"}]}
                elif post.get("photo_id"):
                    item["attachments"] = {"data": [{"url": f"https://www.facebook.com/photo.php?fbid={post['photo_id']}", "type": "photo"}]}
            items.append(item)
        page = items[:limit]
        paging = {"cursors": {"before": "QVFIUbefore", "after": "QVFIUafter"}}
        if len(items) > limit:  # Graph's next link carries the token: clients must never log or follow it blindly
            paging["next"] = f"{self.url}/v23.0/{self.page_id}/published_posts?access_token={token}&limit={limit}&after=QVFIUafter"
        return Response.json_body(200, {"data": page, "paging": paging})

    def _scrape(self, request: Request, token: str) -> Response:
        if token != self.page_token:
            return graph_error(400, 190, "Invalid OAuth access token - Cannot parse access token")
        url = request.param("id") or ""
        self.scrapes.append(url)
        scraped = {"url": url, "type": "article", "title": "Scraped title", "id": "9988776655", "updated_time": "2026-11-27T08:31:00+0000"}
        return Response.json_body(200, scraped)

    def _debug(self, request: Request, token: str) -> Response:
        app_token = f"{self.app_id}|{self.app_secret}"
        if token == self.page_token or token.startswith(f"{self.app_id}|"):
            if token != app_token:
                # debug_token reference: "an app access token, or a user access token that is an owner
                # or developer of the app"; anything else (a Page token, a wrong secret) answers #100.
                return graph_error(400, 100, "(#100) You must provide an app access token, or a user access token that is an owner or developer of the "
                                             "app", type="OAuthException")
        elif token != self.long_user_token:
            return graph_error(400, 190, "Invalid OAuth access token - Cannot parse access token")
        input_token = request.param("input_token")
        if not input_token:
            return graph_error(400, 100, "(#100) The parameter input_token is required")
        if input_token != self.page_token:
            return Response.json_body(200, {"data": {"is_valid": False, "scopes": [], "error": {"code": 190, "message": "Invalid OAuth access token."}}})
        data: dict[str, Any] = {
            "app_id": self.app_id,
            "type": self.token_type,
            "application": "CrossPoster",
            "data_access_expires_at": self.data_access_expires_at,
            "expires_at": self.token_expires_at,
            "is_valid": not self.token_expired,
            "issued_at": 1780000000,
            "profile_id": self.page_id,
            "scopes": list(self.token_scopes),
            "granular_scopes": [{"scope": s, "target_ids": [self.page_id]} for s in self.token_scopes if s.startswith("pages_")],
            "user_id": "998877665544",
        }
        return Response.json_body(200, {"data": data})

    def _me_accounts(self, request: Request, token: str) -> Response:
        if token not in (self.long_user_token, self.user_token):
            return graph_error(400, 190, "Invalid OAuth access token - Cannot parse access token")
        limit = int(request.param("limit") or 25)
        start = int(request.param("after") or 0)
        chunk = self.accounts[start : start + limit]
        fields = _split_fields(request.param("fields") or "id,name")
        data = [{k: v for k, v in account.items() if k in fields or k == "id"} for account in chunk]
        paging: dict[str, Any] = {"cursors": {"before": str(start), "after": str(start + len(chunk))}}
        if start + len(chunk) < len(self.accounts):
            paging["next"] = f"{self.url}/v23.0/me/accounts?access_token={token}&limit={limit}&after={start + len(chunk)}"
        return Response.json_body(200, {"data": data, "paging": paging})

    def _exchange(self, request: Request) -> Response:
        if request.param("grant_type") != "fb_exchange_token":
            return graph_error(400, 100, "Unsupported grant_type")
        if request.param("client_id") != self.app_id:
            return graph_error(400, 101, "Error validating application. Cannot get application info due to a system error.")
        if request.param("client_secret") != self.app_secret:
            return graph_error(400, 1, "Error validating client secret.")
        if request.param("fb_exchange_token") != self.user_token:
            return graph_error(400, 190, "Error validating access token: The session has been invalidated because the user changed their password or Facebook "
                                         "has changed the session for security reasons.", subcode=460)
        if self.token_expired:
            return graph_error(400, 190, EXPIRED_MESSAGE, subcode=463)
        return Response.json_body(200, {"access_token": self.long_user_token, "token_type": "bearer", "expires_in": 5183944})

    def _batch(self, request: Request, token: str) -> Response:
        try:
            items = json.loads(request.param("batch") or "[]")
        except ValueError:
            return graph_error(400, 100, "(#100) The batch parameter must be a JSON array")
        answers: list[dict[str, Any] | None] = []
        for item in items:
            split = urlsplit("/" + str(item.get("relative_url", "")).lstrip("/"))
            sub = Request(
                method=str(item.get("method", "GET")).upper(),
                path=split.path,
                query=parse_qs(split.query, keep_blank_values=True),
                headers={},
                body=b"",
                form={"access_token": [token], "appsecret_proof": [request.param("appsecret_proof") or ""]},
            )
            _version, rest = self._rest(sub.path)
            response = self._dispatch(sub, rest)
            body = response.body if isinstance(response.body, (bytes, str)) else json.dumps(response.body)
            answers.append({
                "code": response.status,
                "headers": [{"name": k, "value": v} for k, v in response.headers.items()],
                "body": body.decode() if isinstance(body, bytes) else body,
            })
        return Response.json_body(200, answers)


CONTRACT = ContractCase(
    platform="facebook",
    make_fake=FakeGraph,
    options=lambda fake: {
        "page_id": fake.page_id,  # type: ignore[attr-defined]
        "access_token": "${FACEBOOK_PAGE_TOKEN}",
        "api_base": fake.url,
        "api_version": "v23.0",
        "post_as": "link",
        "rescrape": True,
    },
    env={"FACEBOOK_PAGE_TOKEN": CANARY},
    posts=lambda fake: len(fake.posts),  # type: ignore[attr-defined]
    # Posting needs pages_manage_posts + pages_read_engagement, which also reads the Page back.
    minimal_scopes=("pages_manage_posts", "pages_read_engagement"),
)
