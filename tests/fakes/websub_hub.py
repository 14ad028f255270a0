"""A loopback WebSub hub that follows the W3C WebSub Recommendation (https://www.w3.org/TR/websub/).

Rules it enforces, each from the spec:
- §5.1: a subscription request is a form POST with hub.callback, hub.mode and hub.topic (all
  required); hub.lease_seconds and hub.secret are optional; hub.secret MUST be under 200 bytes.
- §5.1.2: an accepted request is answered 202 Accepted; a bad one 4xx.
- §5.3: the hub verifies intent with a GET to the callback carrying hub.mode, hub.topic,
  hub.challenge and (for subscribe) hub.lease_seconds; the subscriber must answer 2xx with the
  challenge as the body, else the request is not carried out.
- §5.2: a refused subscription is a GET with hub.mode=denied, hub.topic and hub.reason.
- §7: content goes as a POST of the topic's new body to each verified callback, with Link headers
  rel="hub" and rel="self"; §7.1: with a secret, X-Hub-Signature: sha256=<HMAC of the body>.
  A 410 answer ends the subscription (§7).
- §5.1 / §5.3: the hub may grant a shorter lease than asked; the subscriber must renew before it ends.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass

import requests

from tests.fakes.base import FakeServer, Request, Response


@dataclass
class Subscription:
    callback: str
    topic: str
    secret: str | None
    lease_seconds: int
    expires_at: float


class FakeHub(FakeServer):
    def __init__(self, *, max_lease: int = 864000, lifetime: float = 300.0) -> None:
        super().__init__(lifetime=lifetime)
        self.max_lease = max_lease
        self.subscriptions: dict[tuple[str, str], Subscription] = {}
        self.verifications: list[tuple[str, int, str]] = []  # (mode, status, echoed correctly?)
        self.accepted: list[dict[str, str]] = []  # every accepted request's form, in order

    @property
    def hub_url(self) -> str:
        return f"{self.url}/hub"

    def error_response(self, kind: str, request: Request) -> Response:
        return Response({"rate_limit": 429, "auth": 403, "bad_request": 400}.get(kind, 503), b"hub unavailable")

    def route(self, request: Request) -> Response:
        if request.path != "/hub" or request.method != "POST":
            return Response(404, b"not found")
        form = {k: v[0] for k, v in request.form.items()}
        for name in ("hub.callback", "hub.mode", "hub.topic"):  # §5.1: REQUIRED
            if not form.get(name):
                return Response(400, f"{name} is required".encode())
        if form["hub.mode"] not in ("subscribe", "unsubscribe"):
            return Response(400, b"hub.mode must be subscribe or unsubscribe")
        if len(form.get("hub.secret", "").encode()) >= 200:  # §5.1: MUST be less than 200 bytes
            return Response(400, b"hub.secret is too long")
        self.accepted.append(form)
        threading.Thread(target=self._verify, args=(form,), daemon=True).start()  # §5.3: verify asynchronously
        return Response(202, b"")  # §5.1.2

    def _verify(self, form: dict[str, str]) -> None:
        time.sleep(0.05)
        mode, topic, callback = form["hub.mode"], form["hub.topic"], form["hub.callback"]
        challenge = secrets.token_urlsafe(24)
        params = {"hub.mode": mode, "hub.topic": topic, "hub.challenge": challenge}
        lease = min(int(form.get("hub.lease_seconds") or self.max_lease), self.max_lease)
        if mode == "subscribe":
            params["hub.lease_seconds"] = str(lease)
        try:
            answer = requests.get(callback, params=params, timeout=5)
        except requests.RequestException:
            self.verifications.append((mode, 0, "unreachable"))
            return
        echoed = 200 <= answer.status_code < 300 and answer.text == challenge
        self.verifications.append((mode, answer.status_code, "echoed" if echoed else "wrong"))
        if not echoed:
            return  # §5.3: not verified, nothing changes
        with self.lock:
            if mode == "subscribe":
                self.subscriptions[(callback, topic)] = Subscription(callback, topic, form.get("hub.secret"), lease, time.time() + lease)
            else:
                self.subscriptions.pop((callback, topic), None)

    def probe(self, callback: str, mode: str, topic: str, challenge: str = "x", lease: int = 60) -> requests.Response:
        """A verification request of our own making (for requests the subscriber never made)."""
        return requests.get(callback, params={"hub.mode": mode, "hub.topic": topic, "hub.challenge": challenge,
                                              "hub.lease_seconds": str(lease)}, timeout=5)

    def deny(self, callback: str, topic: str, reason: str) -> requests.Response:
        """§5.2: tell the subscriber its subscription was refused."""
        with self.lock:
            self.subscriptions.pop((callback, topic), None)
        return requests.get(callback, params={"hub.mode": "denied", "hub.topic": topic, "hub.reason": reason}, timeout=5)

    def distribute(self, topic: str, body: bytes, content_type: str = "application/rss+xml", *, signature: str | None = None) -> list[int]:
        """§7: POST ``body`` to every verified subscriber of ``topic``; ``signature`` overrides the computed one."""
        with self.lock:
            targets = [s for s in self.subscriptions.values() if s.topic == topic and s.expires_at > time.time()]
        statuses = []
        for sub in targets:
            headers = {"Content-Type": content_type, "Link": f'<{self.hub_url}>; rel="hub", <{topic}>; rel="self"'}
            if signature is not None:
                if signature:
                    headers["X-Hub-Signature"] = signature
            elif sub.secret:
                headers["X-Hub-Signature"] = "sha256=" + hmac.new(sub.secret.encode(), body, hashlib.sha256).hexdigest()
            answer = requests.post(sub.callback, data=body, headers=headers, timeout=5)
            if answer.status_code == 410:  # §7: the subscriber ended it
                with self.lock:
                    self.subscriptions.pop((sub.callback, sub.topic), None)
            statuses.append(answer.status_code)
        return statuses
