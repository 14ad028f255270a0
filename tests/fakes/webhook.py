"""A loopback webhook receiver that checks signatures the way a careful receiver would.

Written from the documented contract (autopublish/platforms/webhook.py), not from the
adapter's code: it recomputes both the ``X-Autopublish-Signature`` (hex HMAC-SHA256 of
the raw body) and the Standard Webhooks ``webhook-signature`` (base64 HMAC of
"<id>.<timestamp>.<body>") and answers 401 when either is wrong or the timestamp is
more than five minutes off. ``dedupe = True`` makes it drop repeated delivery ids.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

from tests.contract import CANARY, ContractCase
from tests.fakes.base import FakeServer, Request, Response

PATH = "/hooks/articles"
TOLERANCE = 300


def verify(secret: str, request: Request, now: float | None = None) -> str:
    """"" if the request is signed correctly with ``secret``, else the reason."""
    delivery = request.header("webhook-id")
    stamp = request.header("webhook-timestamp")
    if not delivery or not stamp.isdigit() or delivery != request.header("x-autopublish-delivery"):
        return "missing or inconsistent delivery headers"
    if abs((now if now is not None else time.time()) - int(stamp)) > TOLERANCE:
        return "timestamp too far from now"
    expected = "sha256=" + hmac.new(secret.encode(), request.body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, request.header("x-autopublish-signature")):
        return "bad X-Autopublish-Signature"
    key = base64.b64decode(secret.removeprefix("whsec_")) if secret.startswith("whsec_") else secret.encode()
    mac = hmac.new(key, f"{delivery}.{stamp}.".encode() + request.body, hashlib.sha256).digest()
    wanted = base64.b64encode(mac).decode()
    offered = [part.split(",", 1)[1] for part in request.header("webhook-signature").split() if part.startswith("v1,")]
    if not any(hmac.compare_digest(wanted, sig) for sig in offered):
        return "bad webhook-signature"
    return ""


class WebhookFake(FakeServer):
    def __init__(self, secret: str | None = CANARY, lifetime: float = 300.0) -> None:
        super().__init__(lifetime)
        self.secret = secret
        self.dedupe = False
        self.reply: Response = Response(202)  # the answer to an accepted delivery
        self.refuse_with: Response | None = None  # answer every POST with this, storing nothing
        self.deliveries: list[dict[str, Any]] = []
        self.changes: list[dict[str, Any]] = []  # article.updated / article.deleted events received

    @property
    def hook_url(self) -> str:
        return f"{self.url}{PATH}"

    def is_publish(self, request: Request) -> bool:
        return request.method == "POST" and request.path == PATH

    def route(self, request: Request) -> Response:
        if request.path != PATH:
            return Response.json_body(404, {"error": "not found"})
        if request.method != "POST":
            return Response(405, b"", {"Allow": "POST"})
        if self.refuse_with is not None:
            return self.refuse_with
        if self.secret is not None:
            problem = verify(self.secret, request)
            if problem:
                return Response.json_body(401, {"error": problem})
        if request.json is None:
            return Response.json_body(400, {"error": "body is not JSON"})
        delivery = request.header("webhook-id")
        if self.dedupe and any(d["id"] == delivery for d in self.deliveries):
            return self.reply
        if request.json.get("type") in ("article.updated", "article.deleted"):
            # the documented change events (autopublish/platforms/webhook.py): they name the post they change
            known = {d["id"] for d in self.deliveries if d["json"].get("type") == "article.published"}
            if request.json.get("post_id") not in known:
                return Response.json_body(404, {"error": "unknown post"})
            self.changes.append({"id": delivery, "json": request.json})
            if request.json["type"] == "article.deleted":
                self.deliveries = [d for d in self.deliveries if d["id"] != request.json["post_id"]]
            return self.reply
        self.deliveries.append({"id": delivery, "json": request.json, "raw": request.body, "headers": request.headers})
        return self.reply

    def error_response(self, kind: str, request: Request) -> Response:
        if kind == "rate_limit":
            return Response.json_body(429, {"error": "slow down"}, {"Retry-After": "7"})
        if kind == "auth":
            return Response.json_body(401, {"error": "bad webhook-signature"})
        if kind == "bad_request":
            return Response.json_body(422, {"error": "missing field article.title"})
        return Response.json_body(500, {"error": "internal"})


CONTRACT = ContractCase(
    platform="webhook",
    make_fake=WebhookFake,
    options=lambda fake: {"url": fake.hook_url, "secret": "${WEBHOOK_SECRET}"},  # type: ignore[attr-defined]
    env={"WEBHOOK_SECRET": CANARY},
    posts=lambda fake: len(fake.deliveries),  # type: ignore[attr-defined]
)
