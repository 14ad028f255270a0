"""A loopback X API v2: OAuth 1.0a verification, /2/tweets, /2/media/upload, read-back.

Speaks X's shapes: 201 ``{"data": {"id", "text", "edit_history_tweet_ids"}}`` on create
(links rewritten to t.co, text HTML-escaped as X returns it), RFC 7807 problem JSON
errors, ``x-rate-limit-*`` headers on every response, 403 "duplicate content" for an
identical text, 400 for a weighted length over 280, 401 for a bad OAuth signature.
The signature check is written independently of the adapter (RFC 5849 section 3.4).

Access levels (``grant()``): the app's permission ("read", "write") and its API plan
("tier:free", "tier:basic", "tier:none" for an app outside a Project). On Free it enforces
X's documented caps: reading an account's posts once per 15 minutes and 100 posts a
month, 17 posts per 24 hours (``x-user-limit-24hour-*`` / ``x-app-limit-24hour-*``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import itertools
import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, unquote

from autopublish.platforms import twitter_text
from tests.contract import CANARY, ContractCase
from tests.fakes.base import FakeServer, Request, Response

PROBLEM = "application/problem+json"


def _enc(value: str) -> str:
    return quote(value, safe="-._~")


class XFake(FakeServer):
    """X API v2 for one user account."""

    def __init__(
        self,
        *,
        consumer_key: str = "ck",
        consumer_secret: str = "cs",
        access_token: str = "2244994945-at",
        access_token_secret: str = "ats",
        lifetime: float = 300.0,
    ) -> None:
        super().__init__(lifetime)
        self.consumer_key, self.consumer_secret = consumer_key, consumer_secret
        self.access_token, self.access_token_secret = access_token, access_token_secret
        self.user = {"id": "2244994945", "name": "Jakarta Berketahanan", "username": "jktberketahanan"}
        self.posts: list[dict[str, Any]] = []  # newest last
        self.deleted: list[dict[str, Any]] = []
        self.media: dict[str, bytes] = {}
        self.rejected_signatures = 0
        self.overrides: list[Response] = []  # answered instead of the next publish request
        self._ids = itertools.count(1900000000000000123)
        self._media_ids = itertools.count(1900000000000000001)
        self._seen_nonces: set[str] = set()
        self.permissions: set[str] = {"read", "write"}
        self.tier = "pro"  # "pro": no caps the tests meet; "free": the Free plan's caps; "none": not enrolled
        self.clock: Callable[[], float] = time.time
        self.timeline_calls: list[float] = []  # when GET /2/users/:id/tweets answered (Free: 1 per 15 minutes)
        self.posts_read = 0  # this month (Free: 100)
        self.created_at: list[float] = []  # when each post was made (Free: 17 per 24 hours)

    def grant(self, scopes: set[str] | tuple[str, ...] | list[str]) -> None:
        """The app's permission ("read", "write") and plan ("tier:free", "tier:basic", "tier:none")."""
        with self.lock:
            self.permissions = {s for s in scopes if not s.startswith("tier:")}
            tiers = [s.split(":", 1)[1] for s in scopes if s.startswith("tier:")]
            self.tier = tiers[0] if tiers else "pro"

    # --- scripting beyond the base kinds ------------------------------------------
    def answer_next_publish(self, status: int, problem: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        """Answer the next POST /2/tweets with this problem JSON (nothing is posted)."""
        self.overrides.append(Response(status, problem, {"Content-Type": PROBLEM, **(headers or {})}))

    # --- FakeServer hooks ------------------------------------------------------------
    def is_publish(self, request: Request) -> bool:
        return request.method == "POST" and request.path == "/2/tweets"

    def error_response(self, kind: str, request: Request) -> Response:
        if kind == "rate_limit":
            return self._problem(429, "Too Many Requests", "Too Many Requests", remaining=0)
        if kind == "auth":
            return self._problem(401, "Unauthorized", "Unauthorized")
        if kind == "bad_request":
            body = {
                "errors": [{"parameters": {"text": [""]}, "message": "The `text` query parameter value [] is not valid"}],
                "title": "Invalid Request",
                "detail": "One or more parameters to your request was invalid.",
                "type": "https://api.twitter.com/2/problems/invalid-request",
            }
            return Response(400, body, {"Content-Type": PROBLEM, **self._limits()})
        return self._problem(503, "Service Unavailable", "Service Unavailable")

    def route(self, request: Request) -> Response:
        if not self._verify(request):
            self.rejected_signatures += 1
            return self._problem(401, "Unauthorized", "Unauthorized")
        if self.tier == "none":
            # docs.x.com, "client-forbidden": an app not attached to a Project may not call v2 endpoints.
            return self._forbidden("client-forbidden", "Client Forbidden",
                                   "When authenticating requests to the Twitter API v2 endpoints, you must use keys and tokens from a Twitter developer "
                                   "App that is attached to a Project.")
        if self.is_publish(request) and "write" not in self.permissions:
            # docs.x.com app permissions: posting needs "Read and write" (oauth1-permissions problem otherwise).
            return self._forbidden("oauth1-permissions", "Forbidden",
                                   "Your client app is not configured with the appropriate oauth1 app permissions for this endpoint.")
        if self.is_publish(request):
            if self.overrides:
                response = self.overrides.pop(0)
                response.headers = {**self._limits(), **response.headers}
                return response
            return self._create(request)
        if request.method == "POST" and request.path == "/2/media/upload":
            return self._upload(request)
        match = re.fullmatch(r"/2/tweets/(\d+)", request.path)
        if request.method == "DELETE" and match:
            if "write" not in self.permissions:  # docs.x.com: DELETE /2/tweets/:id needs tweet.write ("Read and write")
                return self._forbidden("oauth1-permissions", "Forbidden",
                                       "Your client app is not configured with the appropriate oauth1 app permissions for this endpoint.")
            found = next((p for p in self.posts if p["id"] == match.group(1)), None)
            if found is None:  # stricter than unclear docs: a post already gone is a 404 problem
                return self._problem(404, "Not Found Error", "Could not find tweet with id: [" + match.group(1) + "].")
            self.posts.remove(found)
            self.deleted.append(found)
            return self._json(200, {"data": {"deleted": True}})  # docs.x.com: {"data": {"deleted": true}}
        if request.method == "GET" and request.path == "/2/users/me":
            return self._json(200, {"data": dict(self.user)})
        if request.method == "GET" and request.path == f"/2/users/{self.user['id']}/tweets":
            if self.tier == "free":
                now = self.clock()
                recent = [t for t in self.timeline_calls if now - t < 900]
                if recent:  # docs.x.com rate limits, Free: GET /2/users/:id/tweets 1 request / 15 min per user
                    return self._problem(429, "Too Many Requests", "Too Many Requests", remaining=0, limit=1, reset=recent[0] + 900)
                if self.posts_read >= 100:  # docs.x.com Free plan: 100 posts read per month
                    body = {"title": "UsageCapExceeded", "detail": "Usage cap exceeded: Monthly product cap",
                            "type": "https://api.twitter.com/2/problems/usage-capped", "status": 429}
                    return Response(429, body, {"Content-Type": PROBLEM, **self._limits(0)})
                self.timeline_calls.append(now)
                answer = self._timeline(request)
                answer.headers.update(self._limits(0, limit=1, reset=now + 900))
                return answer
            return self._timeline(request)
        return self._problem(404, "Not Found Error", "Could not find the requested resource.")

    # --- endpoints ----------------------------------------------------------------------
    def _create(self, request: Request) -> Response:
        if self.tier == "free":
            now = self.clock()
            today = [t for t in self.created_at if now - t < 86400]
            if len(today) >= 17:  # docs.x.com Free: 17 posts per 24 hours, signalled by the 24-hour headers
                problem = self._problem(429, "Too Many Requests", "Too Many Requests")
                problem.headers.update(self._day_limits(0, today[0] + 86400))
                return problem
        body = request.json if isinstance(request.json, dict) else None
        text = body.get("text") if body else None
        if not isinstance(text, str) or not text.strip():
            return self.error_response("bad_request", request)
        if twitter_text.weighted_length(text) > twitter_text.MAX_WEIGHTED_LENGTH:
            problem = {
                "errors": [{"parameters": {"text": [text]}, "message": "The `text` parameter is too long."}],
                "title": "Invalid Request",
                "detail": "One or more parameters to your request was invalid.",
                "type": "https://api.twitter.com/2/problems/invalid-request",
            }
            return Response(400, problem, {"Content-Type": PROBLEM, **self._limits()})
        if any(p["source_text"] == text for p in self.posts):
            return self._problem(403, "Forbidden", "You are not allowed to create a Tweet with duplicate content.")
        media_ids = ((body.get("media") or {}).get("media_ids")) or []
        if any(m not in self.media for m in media_ids):
            return self._problem(400, "Invalid Request", "One or more parameters to your request was invalid.")
        post_id = str(next(self._ids))
        shown, urls = self._rewrite(text)
        if media_ids:
            link = f"https://t.co/m{post_id[-6:]}"
            urls.append({
                "start": len(shown) + 1, "end": len(shown) + 1 + len(link), "url": link,
                "expanded_url": f"https://x.com/{self.user['username']}/status/{post_id}/photo/1",
                "display_url": "pic.x.com/abc", "media_key": f"3_{media_ids[0]}",
            })
            shown = f"{shown} {link}"
        record = {
            "id": post_id,
            "text": html.escape(shown, quote=False),
            "source_text": text,
            "media_ids": list(media_ids),
            "urls": urls,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
        }
        self.posts.append(record)
        self.created_at.append(self.clock())
        data = {"id": post_id, "text": record["text"], "edit_history_tweet_ids": [post_id]}
        response = self._json(201, {"data": data})
        if self.tier == "free":
            today = [t for t in self.created_at if self.clock() - t < 86400]
            response.headers.update(self._day_limits(17 - len(today), today[0] + 86400))
        return response

    def _upload(self, request: Request) -> Response:
        if "media" not in request.files or request.form.get("media_category", [""])[0] != "tweet_image":
            return self._problem(400, "Invalid Request", "One or more parameters to your request was invalid.")
        data = request.files["media"][1]
        if not data.startswith(b"\x89PNG") and not data.startswith(b"\xff\xd8"):
            return self._problem(400, "Invalid Request", "media type unrecognized.")
        if len(data) > 5 * 1024 * 1024:  # X media upload: images at most 5 MB (platform-apis.md, X "Image")
            return self._problem(400, "Invalid Request", "File size exceeds 5242880 bytes.")
        media_id = str(next(self._media_ids))
        self.media[media_id] = data
        body = {"data": {
            "id": media_id, "media_key": f"3_{media_id}", "size": len(data), "expires_after_secs": 86400,
            "image": {"image_type": "image/png", "w": 1, "h": 1},
        }}
        return self._json(200, body)

    def _timeline(self, request: Request) -> Response:
        count = int(request.query.get("max_results", ["10"])[0])
        if not 5 <= count <= 100:
            return self._problem(400, "Invalid Request", "The `max_results` query parameter value is not between 5 and 100")
        fields = request.query.get("tweet.fields", [""])[0].split(",")
        items = []
        for post in reversed(self.posts[-count:] if count < len(self.posts) else self.posts):
            item: dict[str, Any] = {"id": post["id"], "text": post["text"], "edit_history_tweet_ids": [post["id"]]}
            if "created_at" in fields:
                item["created_at"] = post["created_at"]
            if "entities" in fields and post["urls"]:
                item["entities"] = {"urls": post["urls"]}
            items.append(item)
        self.posts_read += len(items)
        if not items:
            return self._json(200, {"meta": {"result_count": 0}})
        meta = {"result_count": len(items), "newest_id": items[0]["id"], "oldest_id": items[-1]["id"]}
        return self._json(200, {"data": items, "meta": meta})

    # --- helpers ------------------------------------------------------------------------
    def _rewrite(self, text: str) -> tuple[str, list[dict[str, Any]]]:
        """X's t.co wrapping: every URL becomes https://t.co/..., with its entity."""
        pieces, urls, last = [], [], 0
        for index, (start, end) in enumerate(twitter_text.url_spans(text)):
            pieces.append(text[last:start])
            short = f"https://t.co/x{len(self.posts)}u{index}"
            expanded = text[start:end]
            if not expanded.lower().startswith(("http://", "https://")):
                expanded = "http://" + expanded
            at = len("".join(pieces))
            urls.append({"start": at, "end": at + len(short), "url": short, "expanded_url": expanded, "display_url": expanded.split("://", 1)[1][:24]})
            pieces.append(short)
            last = end
        pieces.append(text[last:])
        return "".join(pieces), urls

    def _verify(self, request: Request) -> bool:
        """Check the OAuth 1.0a HMAC-SHA1 signature with the account's four secrets."""
        header = request.header("authorization")
        if not header.startswith("OAuth "):
            return False
        oauth: dict[str, str] = {}
        for item in header[6:].split(","):
            name, _, value = item.strip().partition("=")
            oauth[unquote(name)] = unquote(value.strip('"'))
        if oauth.get("oauth_consumer_key") != self.consumer_key or oauth.get("oauth_token") != self.access_token:
            return False
        if oauth.get("oauth_signature_method") != "HMAC-SHA1" or oauth.get("oauth_version", "1.0") != "1.0":
            return False
        try:
            skew = abs(int(oauth.get("oauth_timestamp", "0")) - time.time())
        except ValueError:
            return False
        nonce = oauth.get("oauth_nonce", "")
        if skew > 300 or not nonce or nonce in self._seen_nonces:
            return False
        params = [(k, v) for k, v in oauth.items() if k != "oauth_signature"]
        params += [(k, v) for k, values in request.query.items() for v in values]
        if request.header("content-type").startswith("application/x-www-form-urlencoded"):
            params += [(k, v) for k, values in request.form.items() for v in values]
        encoded = sorted((_enc(k), _enc(v)) for k, v in params)
        base_url = f"http://{request.header('host').lower()}{request.path}"
        base = "&".join([request.method, _enc(base_url), _enc("&".join(f"{k}={v}" for k, v in encoded))])
        key = _enc(self.consumer_secret) + "&" + _enc(self.access_token_secret)
        expected = base64.b64encode(hmac.new(key.encode(), base.encode(), hashlib.sha1).digest()).decode()
        if not hmac.compare_digest(expected, oauth.get("oauth_signature", "")):
            return False
        self._seen_nonces.add(nonce)
        return True

    def _limits(self, remaining: int = 299, *, limit: int = 300, reset: float | None = None) -> dict[str, str]:
        return {
            "x-rate-limit-limit": str(limit),
            "x-rate-limit-remaining": str(remaining),
            "x-rate-limit-reset": str(int(reset if reset is not None else self.clock() + 900)),
        }

    def _day_limits(self, remaining: int, reset: float) -> dict[str, str]:
        values = {"limit": "17", "remaining": str(max(0, remaining)), "reset": str(int(reset))}
        return {f"x-{who}-limit-24hour-{k}": v for who in ("app", "user") for k, v in values.items()}

    def _forbidden(self, kind: str, title: str, detail: str) -> Response:
        body = {"title": title, "detail": detail, "type": f"https://api.twitter.com/2/problems/{kind}", "status": 403,
                "reason": kind, "registration_url": "https://developer.x.com/en/portal/dashboard"}
        return Response(403, body, {"Content-Type": PROBLEM})

    def _json(self, status: int, data: Any) -> Response:
        return Response.json_body(status, data, self._limits())

    def _problem(self, status: int, title: str, detail: str, *, remaining: int = 299, limit: int = 300, reset: float | None = None) -> Response:
        body = {"title": title, "detail": detail, "type": "about:blank", "status": status}
        return Response(status, body, {"Content-Type": PROBLEM, **self._limits(remaining, limit=limit, reset=reset)})


SECRETS = {
    "X_CONSUMER_KEY": f"{CANARY}-ck",
    "X_CONSUMER_SECRET": f"{CANARY}-cs",
    "X_ACCESS_TOKEN": f"2244994945-{CANARY}-at",
    "X_ACCESS_TOKEN_SECRET": f"{CANARY}-ats",
}


def make_fake() -> XFake:
    return XFake(
        consumer_key=SECRETS["X_CONSUMER_KEY"],
        consumer_secret=SECRETS["X_CONSUMER_SECRET"],
        access_token=SECRETS["X_ACCESS_TOKEN"],
        access_token_secret=SECRETS["X_ACCESS_TOKEN_SECRET"],
    )


def channel_options(fake: FakeServer) -> dict[str, Any]:
    """The channel's keys exactly as an admin writes them in TOML."""
    return {
        "api_base": fake.url,
        "consumer_key": "${X_CONSUMER_KEY}",
        "consumer_secret": "${X_CONSUMER_SECRET}",
        "access_token": "${X_ACCESS_TOKEN}",
        "access_token_secret": "${X_ACCESS_TOKEN_SECRET}",
    }


# README: an app with "Read and write" permission on the Free plan posts and settles doubts.
MINIMAL_SCOPES = ("read", "write", "tier:free")

CONTRACT = ContractCase(
    platform="x",
    make_fake=make_fake,
    options=channel_options,
    env=dict(SECRETS),
    posts=lambda fake: len(fake.posts),  # type: ignore[attr-defined]
    minimal_scopes=MINIMAL_SCOPES,
)
