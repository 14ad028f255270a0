"""A loopback Bluesky PDS: sessions, blobs, app.bsky.feed.post records.

Speaks XRPC as the reference PDS does (bluesky-social/atproto): ``/xrpc/<NSID>``,
``{"error": Name, "message": ...}`` envelopes, JWT-shaped tokens with ``exp`` (no
didDoc, so clients stay on this server), 400 ExpiredToken for an expired access token,
refresh tokens that rotate, ``RateLimit-*`` headers (reset in epoch seconds), and a
second record at an existing rkey refused with a generic 500, as the reference PDS's
repository tree does ("There is already a value at key").

Stricter than the real PDS on purpose: every facet must cover exactly the text it
claims (a link facet its URL or the app's shortened form of it, a tag facet ``#tag``)
at valid UTF-8 byte offsets, so wrong offsets fail loudly in tests.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import re
import secrets
import time
from typing import Any
from urllib.parse import urlsplit

import regex

from tests.contract import CANARY, ContractCase
from tests.fakes.base import CannedReplies, Request, Response

# Bluesky "Rate Limits" (docs.bsky.app/docs/advanced-guides/rate-limits): createSession is
# rate limited by handle, 30 per 5 minutes and 300 per day: (limit, window in seconds).
LOGIN_LIMITS = ((30, 300), (300, 86400))
TID = re.compile(r"^[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}$")
POST = "app.bsky.feed.post"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_jwt(claims: dict[str, Any]) -> str:
    """A JWT-shaped token (header.payload.signature); the signature is random bytes."""
    header = _b64(json.dumps({"typ": "at+jwt", "alg": "ES256K"}).encode())
    return f"{header}.{_b64(json.dumps(claims).encode())}.{_b64(secrets.token_bytes(32))}"


class FakeBluesky(CannedReplies):
    """One account on one PDS. The app password is ``password``."""

    def __init__(
        self,
        password: str = CANARY,
        *,
        handle: str = "berita.bsky.social",
        access_ttl: float = 7200.0,
        lifetime: float = 300.0,
    ) -> None:
        super().__init__(lifetime=lifetime)
        self.password = password
        self.handle = handle
        self.did = "did:plc:abcd1234efgh5678ijkl"
        self.access_ttl = access_ttl
        self.access_tokens: dict[str, float] = {}  # token -> exp (epoch seconds)
        self.expired: set[str] = set()
        self.refresh_tokens: set[str] = set()
        self.records: dict[str, dict[str, Any]] = {}  # rkey -> {"uri","cid","value"}
        self.blobs: dict[str, bytes] = {}
        self.deleted: list[str] = []  # rkeys removed by deleteRecord
        self.logins = 0
        self.login_times: list[float] = []  # accepted createSession calls, for LOGIN_LIMITS
        self.refreshes = 0
        self.takedown = False
        self._seq = itertools.count(1)

    # --- switches for tests --------------------------------------------------------
    @property
    def posts(self) -> int:
        return len(self.records)

    def expire_access_tokens(self) -> None:
        """From now on every access token issued so far answers 400 ExpiredToken."""
        with self.lock:
            self.expired.update(self.access_tokens)

    def revoke_refresh_tokens(self) -> None:
        with self.lock:
            self.refresh_tokens.clear()

    # --- FakeServer -----------------------------------------------------------------
    def is_publish(self, request: Request) -> bool:
        return request.method == "POST" and request.path == "/xrpc/com.atproto.repo.createRecord"

    def error_response(self, kind: str, request: Request) -> Response:
        if kind == "rate_limit":
            return self._error(429, "RateLimitExceeded", "Rate Limit Exceeded", remaining=0)
        if kind == "auth":
            return self._error(401, "AuthenticationRequired", "Authentication Required")
        if kind == "bad_request":
            return self._error(400, "InvalidRequest", "Invalid app.bsky.feed.post record: Record/text must not be longer than 300 graphemes")
        return self._error(500, "InternalServerError", "Internal Server Error")

    def route(self, request: Request) -> Response:
        canned = self._canned(request)
        if canned is not None:
            return canned
        if not request.path.startswith("/xrpc/"):
            return Response(404, "Not Found", {"Content-Type": "text/plain"})
        nsid = request.path[len("/xrpc/") :]
        handler = {
            ("POST", "com.atproto.server.createSession"): self._create_session,
            ("POST", "com.atproto.server.refreshSession"): self._refresh_session,
            ("GET", "com.atproto.server.getSession"): self._get_session,
            ("POST", "com.atproto.repo.uploadBlob"): self._upload_blob,
            ("POST", "com.atproto.repo.createRecord"): self._create_record,
            ("GET", "com.atproto.repo.getRecord"): self._get_record,
            ("POST", "com.atproto.repo.deleteRecord"): self._delete_record,
            ("GET", "com.atproto.repo.listRecords"): self._list_records,
        }.get((request.method, nsid))
        if handler is None:
            return self._error(501, "MethodNotImplemented", "Method Not Implemented")
        return handler(request)

    # --- responses --------------------------------------------------------------------
    def _headers(self, remaining: int = 4990) -> dict[str, str]:
        return {
            "RateLimit-Limit": "5000",
            "RateLimit-Remaining": str(remaining),
            "RateLimit-Reset": str(int(time.time()) + 300),
            "RateLimit-Policy": "5000;w=3600",
        }

    def _error(self, status: int, name: str, message: str, *, remaining: int = 4990) -> Response:
        return Response.json_body(status, {"error": name, "message": message}, self._headers(remaining))

    def _ok(self, data: Any) -> Response:
        return Response.json_body(200, data, self._headers())

    # --- auth ---------------------------------------------------------------------------
    def _new_session(self) -> dict[str, Any]:
        now = int(time.time())
        access = make_jwt({"scope": "com.atproto.appPass", "sub": self.did, "iat": now, "exp": now + int(self.access_ttl), "aud": "did:web:127.0.0.1"})
        refresh = make_jwt({"scope": "com.atproto.refresh", "sub": self.did, "iat": now, "exp": now + 90 * 86400, "jti": secrets.token_hex(8)})
        self.access_tokens[access] = now + self.access_ttl
        self.refresh_tokens.add(refresh)
        return {
            "did": self.did,
            "handle": self.handle,
            "accessJwt": access,
            "refreshJwt": refresh,
            "email": "ops@example.go.id",
            "emailConfirmed": True,
            "active": True,
        }

    def _bearer(self, request: Request) -> str | None:
        value = request.header("authorization")
        return value[len("Bearer ") :] if value.startswith("Bearer ") else None

    def _check_access(self, request: Request) -> Response | None:
        token = self._bearer(request)
        if token is None:
            return self._error(401, "AuthMissing", "Authentication Required")
        if self.takedown:
            return self._error(400, "AccountTakedown", "Account has been taken down")
        if token not in self.access_tokens:
            return self._error(400, "InvalidToken", "Token could not be verified")
        if token in self.expired or self.access_tokens[token] < time.time():
            return self._error(400, "ExpiredToken", "Token has expired")
        return None

    def _create_session(self, request: Request) -> Response:
        now = time.time()
        for limit, window in LOGIN_LIMITS:  # see LOGIN_LIMITS: checked before the password, per handle
            recent = [t for t in self.login_times if t > now - window]
            if len(recent) >= limit:
                headers = {"RateLimit-Limit": str(limit), "RateLimit-Remaining": "0",
                           "RateLimit-Reset": str(int(min(recent) + window) + 1), "RateLimit-Policy": f"{limit};w={window}"}
                return Response.json_body(429, {"error": "RateLimitExceeded", "message": "Rate Limit Exceeded"}, headers)
        self.login_times.append(now)
        body = request.json if isinstance(request.json, dict) else {}
        if body.get("identifier") not in (self.handle, self.did) or body.get("password") != self.password:
            return self._error(401, "AuthenticationRequired", "Invalid identifier or password")
        if self.takedown:
            return self._error(401, "AccountTakedown", "Account has been taken down")
        self.logins += 1
        return self._ok(self._new_session())

    def _refresh_session(self, request: Request) -> Response:
        token = self._bearer(request)
        if token is None:
            return self._error(401, "AuthMissing", "Authentication Required")
        if token not in self.refresh_tokens:
            return self._error(400, "ExpiredToken", "Token has been revoked")
        self.refresh_tokens.discard(token)  # refresh tokens rotate
        self.refreshes += 1
        return self._ok(self._new_session())

    def _get_session(self, request: Request) -> Response:
        refused = self._check_access(request)
        if refused:
            return refused
        return self._ok({"did": self.did, "handle": self.handle, "email": "ops@example.go.id", "emailConfirmed": True, "active": True})

    # --- repo ---------------------------------------------------------------------------
    def _upload_blob(self, request: Request) -> Response:
        refused = self._check_access(request)
        if refused:
            return refused
        if not request.body:
            return self._error(400, "InvalidRequest", "Request body is empty")
        if len(request.body) > 1_000_000 * 50:
            return self._error(413, "PayloadTooLarge", "request entity too large")
        cid = "bafkrei" + hashlib.sha256(request.body).hexdigest()[:52]
        self.blobs[cid] = request.body
        mime = request.header("content-type", "application/octet-stream")
        return self._ok({"blob": {"$type": "blob", "ref": {"$link": cid}, "mimeType": mime, "size": len(request.body)}})

    def _write_to_own_repo(self, request: Request) -> tuple[dict[str, Any], Response | None]:
        """A record write's JSON body, or the refusal: it needs the account's access token and names its own repo."""
        # lexicons com.atproto.repo.createRecord / deleteRecord: "repo: The handle or DID of the repo (aka, current account)";
        # a PDS refuses a repo it does not host ("Could not find repo").
        refused = self._check_access(request)
        if refused:
            return {}, refused
        body = request.json if isinstance(request.json, dict) else {}
        if body.get("repo") not in (self.did, self.handle):
            return body, self._error(400, "InvalidRequest", f"Could not find repo: {body.get('repo')}")
        return body, None

    def _create_record(self, request: Request) -> Response:
        body, refused = self._write_to_own_repo(request)
        if refused:
            return refused
        if body.get("collection") != POST:
            return self._error(400, "InvalidRequest", "Invalid collection")
        rkey = body.get("rkey") or _tid()
        if not TID.match(str(rkey)):
            return self._error(400, "InvalidRequest", "Invalid record key")
        record = body.get("record")
        problem = validate_post(record, self.blobs) if isinstance(record, dict) else "Record must be an object"
        if problem:
            return self._error(400, "InvalidRequest", f"Invalid app.bsky.feed.post record: {problem}")
        if rkey in self.records:
            # The reference PDS: MST.add throws "There is already a value at key" -> generic 500.
            return self._error(500, "InternalServerError", "Internal Server Error")
        uri = f"at://{self.did}/{POST}/{rkey}"
        cid = "bafyrei" + hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:52]
        self.records[rkey] = {"uri": uri, "cid": cid, "value": record}
        rev = _tid()
        return self._ok({"uri": uri, "cid": cid, "commit": {"cid": "bafyreicommit" + rev, "rev": rev}, "validationStatus": "valid"})

    def _delete_record(self, request: Request) -> Response:
        # lexicon com.atproto.repo.deleteRecord: "Delete a repository record, or ensure it doesn't exist"
        # (so a record already gone is a success); needs the account's own access token.
        body, refused = self._write_to_own_repo(request)
        if refused:
            return refused
        if body.get("collection") != POST or not TID.match(str(body.get("rkey") or "")):
            return self._error(400, "InvalidRequest", "Invalid collection or record key")
        if self.records.pop(str(body["rkey"]), None) is not None:
            self.deleted.append(str(body["rkey"]))
        rev = _tid()
        return self._ok({"commit": {"cid": "bafyreicommit" + rev, "rev": rev}})

    def _get_record(self, request: Request) -> Response:
        repo, collection, rkey = (request.param(n) for n in ("repo", "collection", "rkey"))
        if repo not in (self.did, self.handle):
            return self._error(400, "InvalidRequest", f"Could not find repo: {repo}")
        found = self.records.get(str(rkey)) if collection == POST else None
        if found is None:
            return self._error(400, "RecordNotFound", f"Could not locate record: at://{self.did}/{collection}/{rkey}")
        return self._ok(found)

    def _list_records(self, request: Request) -> Response:
        repo, collection = request.param("repo"), request.param("collection")
        if repo not in (self.did, self.handle):
            return self._error(400, "InvalidRequest", f"Could not find repo: {repo}")
        limit = max(1, min(int(request.param("limit", "50") or 50), 100))
        cursor = request.param("cursor")
        reverse = request.param("reverse") == "true"
        keys = sorted(self.records, reverse=not reverse) if collection == POST else []
        if cursor:
            keys = [k for k in keys if (k > cursor if reverse else k < cursor)]
        page = keys[:limit]
        body: dict[str, Any] = {"records": [self.records[k] for k in page]}
        if len(keys) > limit:
            body["cursor"] = page[-1]
        return self._ok(body)


def validate_post(record: dict[str, Any], blobs: dict[str, bytes]) -> str:
    """What is wrong with an app.bsky.feed.post record, or "" (lexicon rules, facets strictly)."""
    if record.get("$type") != POST:
        return "Record/$type must be app.bsky.feed.post"
    text = record.get("text")
    if not isinstance(text, str):
        return "Record must have the property \"text\""
    if len(regex.findall(r"\X", text)) > 300:
        return "Record/text must not be longer than 300 graphemes"
    data = text.encode("utf-8")
    if len(data) > 3000:
        return "Record/text must not be longer than 3000 characters"
    if not isinstance(record.get("createdAt"), str) or not re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$", record["createdAt"]):
        return "Record/createdAt must be an valid atproto datetime"
    langs = record.get("langs", [])
    if not isinstance(langs, list) or len(langs) > 3:
        return "Record/langs must not have more than 3 elements"
    for i, facet in enumerate(record.get("facets", [])):
        problem = _facet_problem(facet, data)
        if problem:
            return f"Record/facets/{i}: {problem}"
    embed = record.get("embed")
    if embed is not None:
        return _embed_problem(embed, blobs)
    return ""


def _facet_problem(facet: Any, data: bytes) -> str:
    index = facet.get("index", {}) if isinstance(facet, dict) else {}
    start, end = index.get("byteStart"), index.get("byteEnd")
    if not isinstance(start, int) or not isinstance(end, int) or not 0 <= start < end <= len(data):
        return f"byte range {start}..{end} is outside the text ({len(data)} bytes)"
    try:
        covered = data[start:end].decode("utf-8")
    except UnicodeDecodeError:
        return f"byte range {start}..{end} splits a character"
    features = facet.get("features") or []
    if len(features) != 1 or not isinstance(features[0], dict):
        return "must have one feature"
    feature = features[0]
    kind = feature.get("$type")
    if kind == "app.bsky.richtext.facet#link":
        uri = str(feature.get("uri", ""))
        parts = urlsplit(uri)
        bare = uri.split("://", 1)[-1]
        bare = bare[4:] if bare.startswith("www.") else bare
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return f"link {uri!r} is not a URL"
        shown_ok = covered in (uri, bare) or (covered.endswith("...") and bare.startswith(covered[:-3]))
        if not shown_ok:
            return f"link facet covers {covered!r}, not its URL {uri!r}"
        return ""
    if kind == "app.bsky.richtext.facet#tag":
        tag = str(feature.get("tag", ""))
        if covered not in ("#" + tag, "＃" + tag):
            return f"tag facet covers {covered!r}, not #{tag}"
        if len(tag.encode()) > 640 or len(regex.findall(r"\X", tag)) > 64:
            return "tag is too long"
        return ""
    if kind == "app.bsky.richtext.facet#mention":
        return "" if str(feature.get("did", "")).startswith("did:") else "mention needs a did"
    return f"unknown facet feature {kind!r}"


def _embed_problem(embed: Any, blobs: dict[str, bytes]) -> str:
    kind = embed.get("$type") if isinstance(embed, dict) else None
    if kind == "app.bsky.embed.external":
        external = embed.get("external") or {}
        for key in ("uri", "title", "description"):
            if not isinstance(external.get(key), str):
                return f"Record/embed/external must have the property \"{key}\""
        thumb = external.get("thumb")
        if thumb is not None:
            return _blob_problem(thumb, blobs, 1_000_000)
        return ""
    if kind == "app.bsky.embed.images":
        images = embed.get("images") or []
        if not 1 <= len(images) <= 4:
            return "Record/embed/images must have 1 to 4 images"
        for image in images:
            if not isinstance(image.get("alt"), str):
                return "Record/embed/images/0 must have the property \"alt\""
            problem = _blob_problem(image.get("image"), blobs, 2_000_000)
            if problem:
                return problem
        return ""
    return f"Record/embed has an unknown type {kind!r}"


def _blob_problem(blob: Any, blobs: dict[str, bytes], limit: int) -> str:
    cid = ((blob or {}).get("ref") or {}).get("$link") if isinstance(blob, dict) else None
    if cid not in blobs:
        return f"Could not find blob: {cid}"
    if len(blobs[cid]) > limit:
        return "BlobTooLarge"
    if not str(blob.get("mimeType", "")).startswith("image/"):
        return "Wrong type of blob"
    return ""


_S32 = "234567abcdefghijklmnopqrstuvwxyz"
_counter = itertools.count()


def _tid() -> str:
    value = (int(time.time() * 1_000_000) << 10) | (next(_counter) & 0x3FF)
    return "".join(_S32[(value >> (5 * i)) & 31] for i in reversed(range(13)))


CONTRACT = ContractCase(
    platform="bluesky",
    make_fake=lambda: FakeBluesky(),
    options=lambda fake: {
        "service": fake.url,
        "handle": "berita.bsky.social",
        "app_password": "${BLUESKY_APP_PASSWORD}",
    },
    env={"BLUESKY_APP_PASSWORD": CANARY},
    posts=lambda fake: fake.posts,  # type: ignore[attr-defined]
)
