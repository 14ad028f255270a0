"""/healthz and /metrics (Prometheus text format) for the daemon, on a loopback port.

/healthz answers 200 while the scheduler runs and every feed's last poll is recent,
503 otherwise, with a short JSON reason. Metric values are read from the state store
at scrape time, so they always match the publish log.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily

if TYPE_CHECKING:
    from autopublish.scheduler import Daemon

log = logging.getLogger(__name__)


class StoreCollector:
    def __init__(self, daemon: Callable[[], Daemon]) -> None:
        self.daemon = daemon

    def collect(self) -> Any:
        pipeline = self.daemon().pipeline
        store = pipeline.store
        now = time.time()
        posts = GaugeMetricFamily("autopublish_posts", "Deliveries by channel and outcome", labels=["channel", "outcome"])
        for channel, statuses in store.counts_by_channel().items():
            for status, count in statuses.items():
                posts.add_metric([channel, status], count)
        yield posts
        depth = GaugeMetricFamily("autopublish_queue_depth", "Open deliveries by state", labels=["state"])
        counts = store.counts_by_status()
        for status in ("queued", "waiting", "held", "uncertain", "sending"):
            depth.add_metric([status], counts.get(status, 0))
        yield depth
        since = GaugeMetricFamily("autopublish_seconds_since_last_success", "Seconds since the channel last posted", labels=["channel"])
        expiry = GaugeMetricFamily("autopublish_token_expiry_seconds", "Seconds until the channel's credentials expire", labels=["channel"])
        for name in pipeline.config.channels:
            row = store.channel(name)
            if row.last_success_at:
                since.add_metric([name], now - row.last_success_at)
            if row.token_expires_at:
                expiry.add_metric([name], row.token_expires_at - now)
        yield since
        yield expiry
        polls = GaugeMetricFamily("autopublish_feed_polls", "Polls by feed", labels=["feed"])
        ok = GaugeMetricFamily("autopublish_feed_ok", "1 if the feed's last poll succeeded", labels=["feed"])
        age = GaugeMetricFamily("autopublish_feed_seconds_since_ok", "Seconds since the feed was last read", labels=["feed"])
        for feed in store.feeds():
            polls.add_metric([feed.name], feed.polls)
            ok.add_metric([feed.name], 0 if feed.failing_since else 1)
            if feed.last_ok_at:
                age.add_metric([feed.name], now - feed.last_ok_at)
        duration = GaugeMetricFamily("autopublish_feed_poll_seconds", "How long the feed's last poll took", labels=["feed"])
        for name, seconds in pipeline.poll_seconds.items():
            duration.add_metric([name], seconds)
        yield polls
        yield ok
        yield age
        yield duration


def health(daemon: Daemon) -> tuple[int, dict[str, Any]]:
    """(HTTP status, JSON body) for /healthz."""
    if not daemon.scheduler.running:
        return 503, {"status": "down", "reason": "the scheduler is not running"}
    if daemon.failed_state:
        return 503, {"status": "down", "reason": daemon.failed_state}
    config = daemon.pipeline.config
    now = time.time()
    stale = []
    for feed in config.feeds.values():
        row = daemon.pipeline.store.feed(feed.name)
        if row is None:
            continue
        limit = max(config.settings.feed_down_after, 3 * feed.poll_interval)
        last_good = row.last_ok_at if row.last_ok_at is not None else row.failing_since  # never read: failing since the first try
        if last_good is not None and now - last_good > limit:
            stale.append(feed.name)
    if stale:
        return 503, {"status": "degraded", "reason": f"no successful poll recently for: {', '.join(stale)}"}
    return 200, {"status": "ok"}


def start_metrics_server(address: str, daemon: Callable[[], Daemon]) -> ThreadingHTTPServer:
    host, _, port = address.rpartition(":")
    registry = CollectorRegistry()
    registry.register(StoreCollector(daemon))

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_GET(self) -> None:
            try:
                if self.path.startswith("/healthz"):
                    status, body = health(daemon())
                    payload, ctype = json.dumps(body).encode(), "application/json"
                elif self.path.startswith("/metrics"):
                    status, payload, ctype = 200, generate_latest(registry), "text/plain; version=0.0.4; charset=utf-8"
                else:
                    status, payload, ctype = 404, b"not found", "text/plain"
            except Exception as exc:
                status, payload, ctype = 503, json.dumps({"status": "down", "reason": type(exc).__name__}).encode(), "application/json"
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    server = ThreadingHTTPServer((host.strip("[]") or "127.0.0.1", int(port)), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    log.info("Health and metrics on http://%s/healthz and /metrics", address)
    return server
