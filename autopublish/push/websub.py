"""The W3C WebSub subscriber (https://www.w3.org/TR/websub/).

Hub and topic come from the feed itself, recorded at its last successful poll (HTTP Link
header first, then atom:link rel="hub"/"self", W3C WebSub §4). Each subscription's secret
is derived from the push token and a random nonce, so no secret is ever stored. A delivery
is only a signal: it makes autopublish poll that configured feed at once (coalesced), it
never makes it fetch anything else. While a hub fails, the feed is simply polled.

The hub's address is feed data, so the (un)subscription POST goes through the same address
rules as every other fetch from feed data (autopublish.netguard): public addresses, the
feed's own origin, or hosts listed in ``[settings] allow_private_hosts``; the connection is
pinned to the checked address, no redirect is followed, and a deadline bounds it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from urllib.parse import quote, urlsplit

import requests

from autopublish.config import Config
from autopublish.errors import AddressRefusedError, FetchError
from autopublish.feeds import USER_AGENT
from autopublish.netguard import (
    Deadline,
    GuardedFetcher,
    Origin,
    PinnedAdapter,
    Resolver,
    system_resolver,
)
from autopublish.store import Store, WebSubRow

log = logging.getLogger(__name__)

VERIFY_WAIT = 120.0  # a hub that accepted a request but never verified it is retried after this
DENIED_RETRY = 86400.0
MAX_BACKOFF = 6 * 3600.0
UPKEEP_TASK = "websub-upkeep"
UPKEEP_LEASE = 600.0  # seconds; renewed before each hub request, which has its own 20 s deadline
UNSUBSCRIBE_TRIES = 5  # then the row is dropped; the hub's lease ends the subscription anyway
SIGNATURES = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha384": hashlib.sha384, "sha512": hashlib.sha512}  # W3C WebSub §7.1


def callback_url(public_url: str, feed: str) -> str:
    return f"{public_url.rstrip('/')}/websub/{quote(feed, safe='')}"


def sends_secret(hub: str) -> bool:
    """W3C WebSub §5.1: hub.secret SHOULD only be sent over HTTPS; loopback never leaves the machine."""
    parts = urlsplit(hub)
    return parts.scheme == "https" or (parts.hostname or "") in ("127.0.0.1", "::1", "localhost")


class WebSub:
    def __init__(self, store: Callable[[], Store], config: Callable[[], Config], *, clock: Callable[[], float] = time.time,
                 resolver: Resolver = system_resolver) -> None:
        self._store = store
        self._config = config
        self.clock = clock
        self.resolver = resolver
        self.lock = threading.RLock()  # callbacks (listener threads) and maintenance share the rows

    # --- secrets ---------------------------------------------------------------------------
    def secret(self, row: WebSubRow) -> str | None:
        token = self._config().push.token
        if token is None or not sends_secret(row.hub):
            return None
        message = f"websub\x00{row.feed}\x00{row.topic}\x00{row.nonce}".encode()
        return hmac.new(token.reveal().encode(), message, hashlib.sha256).hexdigest()  # 64 bytes, under the 200 allowed (§5.1)

    # --- maintenance: subscribe, renew, unsubscribe --------------------------------------------
    def wanted(self) -> dict[str, tuple[str, str]]:
        """feed -> (hub, topic) for every enabled feed that declares a hub, when WebSub is on."""
        config, store = self._config(), self._store()
        push = config.push
        if not (push.listen and push.public_url and push.websub and push.token is not None):
            return {}
        found = {}
        for feed in config.feeds.values():
            links = store.push_feed(feed.name) if feed.enabled else None
            if links is not None and links.hub:
                found[feed.name] = (links.hub, links.self_url or feed.url)
        return found

    def maintain(self) -> None:
        """One pass: unsubscribe what left the config, subscribe what is new, renew what is near its lease's end.

        One node at a time keeps the subscriptions (a task lease): two nodes asking the same hub at
        once would overwrite each other's pending request and fail its verification. The lease is
        renewed before each hub request, so a pass longer than UPKEEP_LEASE (hundreds of slow hubs)
        never overlaps another node's; a pass whose lease was taken over stops.
        """
        store = self._store()
        if not store.lease_task(UPKEEP_TASK, UPKEEP_LEASE):
            return  # another node keeps them now; callbacks still work on every node (the rows are shared)
        try:
            self._maintain()
        finally:
            store.release_task(UPKEEP_TASK)

    def _maintain(self) -> None:
        wanted, store, now = self.wanted(), self._store(), self.clock()
        public_url = self._config().push.public_url or ""
        for row in store.websub_subscriptions():
            moved = bool(row.callback) and row.callback != callback_url(public_url, row.feed)  # public_url was changed
            if row.feed not in wanted or (row.hub, row.topic) != wanted[row.feed] or moved:
                if not self._still_ours():
                    return
                self._leave(row, now, replaced=row.feed in wanted)
        for feed, (hub, topic) in wanted.items():
            existing = store.websub_subscription(feed)
            if existing is not None and not self._due(existing, now):
                continue
            if not self._still_ours():
                return
            row = existing or WebSubRow(feed=feed, hub=hub, topic=topic, callback="", nonce=secrets.token_hex(16), state="subscribing")
            self._request(row, "subscribe")

    def _still_ours(self) -> bool:
        """Renew the upkeep lease; False if another node holds it (ours ran out), which ends this pass."""
        if self._store().lease_task(UPKEEP_TASK, UPKEEP_LEASE):
            return True
        log.warning("WebSub: another node took over the subscriptions' upkeep; this pass stops")
        return False

    def _due(self, row: WebSubRow, now: float) -> bool:
        if row.next_attempt_at is not None and now < row.next_attempt_at:
            return False
        if row.state == "active" and not row.pending and row.lease_expires_at is not None:
            lease = row.lease_seconds or 0.0
            return now >= row.lease_expires_at - min(0.2 * lease, 86400.0)  # renew in the last fifth of the lease
        return True  # new, failing, denied a while ago, or a request the hub never verified

    def _leave(self, row: WebSubRow, now: float, *, replaced: bool) -> None:
        if replaced:  # the feed now names another hub or topic: tell the old hub once, then start afresh
            self._send(row, "unsubscribe")
            self._store().delete_websub(row.feed)
            return
        if row.state == "unsubscribing" and row.next_attempt_at is not None and now < row.next_attempt_at:
            return
        if row.state == "unsubscribing" and row.failures >= UNSUBSCRIBE_TRIES:
            self._store().delete_websub(row.feed)
            return
        retried = row.state == "unsubscribing"  # asked before, never confirmed: counts toward giving up
        self._request(replace(row, state="unsubscribing", failures=row.failures + (1 if retried else 0)), "unsubscribe")

    def _request(self, row: WebSubRow, mode: str) -> None:
        """Record the pending request first (a hub may verify before it answers), then send it."""
        config, store, now = self._config(), self._store(), self.clock()
        callback = callback_url(config.push.public_url or "", row.feed)
        lease = config.push.lease
        with self.lock:
            row = replace(row, callback=callback, pending=mode, requested_at=now, next_attempt_at=now + VERIFY_WAIT,
                          lease_seconds=row.lease_seconds if row.state == "active" else lease)
            store.save_websub(row)
        problem = self._send(row, mode, lease=lease)
        with self.lock:
            current = store.websub_subscription(row.feed)
            if current is None or problem is None:
                if problem is None:
                    log.info("WebSub: asked %s to %s feed %s", urlsplit(row.hub).hostname, mode, row.feed)
                return
            failures = current.failures + 1
            backoff = min(MAX_BACKOFF, 30.0 * 2 ** min(failures, 12))
            state = current.state if current.state in ("active", "unsubscribing") else "failing"
            store.save_websub(replace(current, state=state, pending="", failures=failures, next_attempt_at=now + backoff, last_error=problem))
            log.warning("WebSub: the hub of feed %s failed (%s); the feed is polled meanwhile", row.feed, problem)

    def _send(self, row: WebSubRow, mode: str, *, lease: float | None = None) -> str | None:
        """POST a (un)subscription request to the hub (W3C WebSub §5.1); a plain reason on failure, else None."""
        data = {"hub.callback": row.callback or callback_url(self._config().push.public_url or "", row.feed), "hub.mode": mode,
                "hub.topic": row.topic}
        if mode == "subscribe":
            if lease:
                data["hub.lease_seconds"] = str(int(lease))
            secret = self.secret(row)
            if secret:
                data["hub.secret"] = secret
        status = self._post(row, data)
        if isinstance(status, str):
            return status
        if not 200 <= status < 300:  # §5.1.2: 202 Accepted; anything else is a refusal
            return f"the hub answered HTTP {status}"
        return None

    def _post(self, row: WebSubRow, data: dict[str, str]) -> int | str:
        """POST ``data`` to the hub under the feed-data address rules: the HTTP status, or a plain reason."""
        config = self._config()
        feed = config.feeds.get(row.feed)
        fetcher = GuardedFetcher(allow_private_hosts=config.settings.allow_private_hosts, resolver=self.resolver, user_agent=USER_AGENT)
        try:
            address = fetcher.pin(row.hub, allowed_origin=Origin.of(feed.url) if feed is not None else None)
            prepared = requests.Request("POST", row.hub, data=data, headers={"User-Agent": USER_AGENT}).prepare()
        except AddressRefusedError as exc:
            return f"the hub's address is refused: {exc.message}"
        except FetchError as exc:
            return f"the hub could not be reached: {exc.message}"
        except requests.RequestException:
            return "the hub's address is not a valid URL"
        prepared.headers["Host"] = urlsplit(prepared.url or row.hub).netloc.rsplit("@", 1)[-1]
        watch = Deadline(20.0)
        adapter = PinnedAdapter(address, watch)
        try:
            response = adapter.send(prepared, stream=True, timeout=(5.0, 10.0), verify=fetcher.verify, proxies={})
            response.close()  # the body is not needed; never read what a hub sends
            return int(response.status_code)
        except requests.RequestException as exc:
            return f"the hub could not be reached ({type(exc).__name__})"
        finally:
            adapter.close()
            watch.close()

    # --- the callback ---------------------------------------------------------------------------
    def verify(self, feed: str, params: Mapping[str, str]) -> tuple[int, bytes]:
        """Answer a hub's verification of intent (§5.3) or denial (§5.2): (HTTP status, body)."""
        store = self._store()
        mode, topic = params.get("hub.mode", ""), params.get("hub.topic", "")
        with self.lock:
            row = store.websub_subscription(feed)
            if row is None or topic != row.topic:
                return 404, b""
            if mode == "denied":  # §5.2: the hub refused; poll meanwhile, ask again later
                reason = params.get("hub.reason", "")[:200]
                store.save_websub(replace(row, state="denied", pending="", next_attempt_at=self.clock() + DENIED_RETRY,
                                          last_error=f"the hub refused the subscription{': ' + reason if reason else ''}"))
                log.warning("WebSub: the hub refused the subscription of feed %s", feed)
                return 200, b""
            challenge = params.get("hub.challenge", "")
            # §5.3.1: confirm that topic and mode correspond to a request we are waiting for
            if not challenge or not row.pending or mode != row.pending:
                return 404, b""
            if mode == "unsubscribe":
                store.delete_websub(feed)
                log.info("WebSub: unsubscribed feed %s", feed)
                return 200, challenge.encode()
            lease = row.lease_seconds or self._config().push.lease
            try:
                lease = float(int(params.get("hub.lease_seconds", "")))
            except ValueError:
                pass
            now = self.clock()
            store.save_websub(replace(row, state="active", pending="", lease_seconds=lease, lease_expires_at=now + lease, verified_at=now,
                                      failures=0, next_attempt_at=None, last_error=""))
            log.info("WebSub: feed %s is pushed by its hub (lease %d s)", feed, int(lease))
            return 200, challenge.encode()

    def accept(self, feed: str, body: bytes, signature: str) -> tuple[int, bool]:
        """A content distribution (§7): (HTTP status, whether to poll the feed now).

        With a secret, a missing or wrong X-Hub-Signature is ignored locally but still
        acknowledged with 2xx (§7.1 allows it, and it gives a forger nothing to probe).
        """
        row = self._store().websub_subscription(feed)
        if row is None or row.state == "unsubscribing" or feed not in self._config().feeds:
            return 410, False  # §7: 410 Gone tells the hub this subscription is over
        secret = self.secret(row)
        if secret is None:
            return 202, True
        method, _, given = signature.partition("=")
        digest = SIGNATURES.get(method.strip().lower())
        if digest is None or not given:
            log.warning("WebSub: a delivery for feed %s had no valid X-Hub-Signature; ignored", feed)
            return 202, False
        expected = hmac.new(secret.encode(), body, digest).hexdigest()
        if not hmac.compare_digest(expected, given.strip().lower()):
            log.warning("WebSub: a delivery for feed %s had a wrong X-Hub-Signature; ignored", feed)
            return 202, False
        return 202, True
