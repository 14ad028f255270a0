"""The push side of the daemon: the listener, the poll trigger and WebSub upkeep, wired to the pipeline.

Everything a push can do is ``poll(feed)`` of a feed named in the config; the URLs a ping
carries are only compared with configured feeds, never fetched.
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from collections.abc import Callable, Iterable
from http.server import ThreadingHTTPServer

from autopublish.config import Config
from autopublish.feeds import canonical_link
from autopublish.push import xmlrpc
from autopublish.push.listener import start_listener
from autopublish.push.trigger import PollTrigger
from autopublish.push.websub import WebSub
from autopublish.store import Store

log = logging.getLogger(__name__)


def matching_feeds(urls: Iterable[str], config: Config, store: Store) -> list[str]:
    """Enabled feeds whose URL, declared home page or declared self URL is one of ``urls`` (compared canonically)."""
    wanted = {canonical_link(url) for url in urls if url}
    found = []
    for feed in config.feeds.values():
        if not feed.enabled:
            continue
        known = {canonical_link(feed.url)}
        links = store.push_feed(feed.name)
        if links is not None:
            known.update(canonical_link(u) for u in (links.home, links.self_url) if u)
        if known & wanted:
            found.append(feed.name)
    return found


class PushService:
    """``config``/``store`` are read at each use, so a reloaded config applies at once."""

    def __init__(self, config: Callable[[], Config], store: Callable[[], Store], poll: Callable[[str], object], *,
                 maintain_every: float = 30.0, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.store = store
        self.trigger = PollTrigger(poll, gap=config().push.coalesce)
        self.websub = WebSub(store, config, clock=clock)
        self.maintain_every = maintain_every
        self._stop = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._listening = ""  # the [push] listen address the server is bound to
        self._upkeep: threading.Thread | None = None

    # --- life cycle ------------------------------------------------------------------------
    def start(self) -> None:
        address = self.config().push.listen
        if not address:
            return
        self._server, self._listening = start_listener(address, self), address
        self._start_threads()

    def _start_threads(self) -> None:
        if self._upkeep is None:
            self.trigger.start()
            self._upkeep = threading.Thread(target=self._maintain_loop, name="websub-upkeep", daemon=True)
            self._upkeep.start()

    def apply(self, config: Config) -> None:
        """A reloaded config: a new ``coalesce`` gap applies to the next pushes, a new ``listen`` moves the listener.

        The old address is let go first (the new one may be the same port on another interface); if the
        new one cannot be bound, the old one is taken back and the error says why.
        """
        self.trigger.gap = config.push.coalesce
        address = config.push.listen or ""
        if address == self._listening:
            return
        old, self._server = self._server, None
        if old is not None:
            old.shutdown()
            old.server_close()
        try:
            if address:
                self._server = start_listener(address, self)
        except OSError as exc:
            log.error("[push] listen = \"%s\" cannot be used (%s); %s", address, exc.strerror or type(exc).__name__,
                      f"push stays on {self._listening}" if self._listening else "push stays off")
            address = self._listening
            try:
                self._server = start_listener(address, self) if address else None
            except OSError:  # someone took the old address meanwhile
                log.error("[push] listen = \"%s\" cannot be taken back either; push is off until the config is fixed", address)
                address = ""
        if address != self._listening:
            log.info("Push listener %s", f"now on {address}" if address else "stopped ([push] listen was removed)")
        self._listening = address
        if address:
            self._start_threads()

    @property
    def address(self) -> tuple[str, int]:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        self.trigger.stop()

    def _maintain_loop(self) -> None:
        self._stop.wait(min(5.0, self.maintain_every))  # the daemon's first poll records the hubs first
        while not self._stop.is_set():
            try:
                self.websub.maintain()
            except Exception as exc:  # upkeep retries at its next pass; polling goes on regardless
                log.error("WebSub upkeep failed (%s); it will run again", type(exc).__name__)
            self._stop.wait(self.maintain_every)

    def max_body(self) -> int:
        return self.config().settings.max_feed_size

    # --- what the listener calls --------------------------------------------------------------
    def ping(self, body: bytes) -> bytes:
        """An XML-RPC answer to a ping; the same answer whether or not it named a configured feed."""
        try:
            ping = xmlrpc.read_ping(body)
        except xmlrpc.PingError as exc:
            return xmlrpc.fault(exc)
        for feed in matching_feeds(ping.urls, self.config(), self.store()):
            log.info("Feed %s: an update ping (%s) asks for a poll now", feed, ping.method, extra={"feed": feed})
            self.store().note_push(feed, "ping")
            self.trigger.request(feed)
        return xmlrpc.thanks()

    def hook(self, feed: str, authorization: str) -> tuple[int, str]:
        token = self.config().push.token
        if token is None:
            return 404, "The hook is off: set [push] token"
        scheme, _, given = authorization.partition(" ")
        expected = token.reveal().encode()
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
            return 401, "A valid Authorization: Bearer token is required"
        config = self.config()
        if feed not in config.feeds or not config.feeds[feed].enabled:
            return 404, "No enabled feed has that name"
        log.info("Feed %s: a hook asks for a poll now", feed, extra={"feed": feed})
        self.store().note_push(feed, "hook")
        self.trigger.request(feed)
        return 202, "The feed will be polled now"

    def websub_verify(self, feed: str, params: dict[str, str]) -> tuple[int, bytes]:
        return self.websub.verify(feed, params)

    def websub_deliver(self, feed: str, body: bytes, signature: str) -> int:
        status, poll = self.websub.accept(feed, body, signature)
        if poll:
            log.info("Feed %s: its WebSub hub pushed an update; polling it now", feed, extra={"feed": feed})
            self.store().note_push(feed, "websub")
            self.trigger.request(feed)
        return status
