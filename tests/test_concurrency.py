"""Concurrency: one lane per channel, a bounded fetch pool with a per-host cap, batched store writes."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self

import pytest

from autopublish.app import open_app
from autopublish.config import load_config
from autopublish.errors import ConfigError
from autopublish.models import DeliveryStatus
from autopublish.store import Store
from tests.fakes.base import Response
from tests.fakes.feed_server import FeedServer, older_items, render_rss, seed_item
from tests.fakes.mastodon import FakeMastodon
from tests.helpers import outbox_lines, sqlite_of, write_config


def _until(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_a_hanging_platform_does_not_hold_up_another_channel(tmp_path):
    with FeedServer(older_items(3)) as site, FakeMastodon() as fake:
        fake.hang_seconds = 60.0  # until the fake stops: far longer than the bound below
        table = f'[channels.social]\nplatform = "mastodon"\ninstance = "{fake.url}"\naccess_token = "${{MASTODON_TOKEN}}"\n'
        config_path = write_config(tmp_path / "autopublish.toml", f"{site.url}/feed/", channels="social,outbox", extra=table,
                                   settings='publish_timeout = "2m"')
        app = open_app(load_config(config_path, {"MASTODON_TOKEN": "t0ken"}, cwd=tmp_path))
        app.pipeline.poll_all()  # baseline
        site.add(seed_item())
        app.pipeline.poll_all()
        fake.script("hang")  # the Mastodon post is taken, then no answer
        app.pipeline.deliver_due(wait=False)
        # "social" comes first in the due list; one loop would wait on it for minutes
        assert _until(lambda: len(outbox_lines(config_path)) == 1, 15.0), "the outbox post waited for the hanging platform"
        social = [r for r in app.store.deliveries_with_status(DeliveryStatus.SENDING) if r.channel == "social"]
        assert len(social) == 1  # still hanging on Mastodon while the outbox post went out
        # the outbox lane ends once its post is recorded; the social lane still hangs
        assert _until(lambda: not app.pipeline.lanes.busy("outbox"), 10.0) and app.pipeline.lanes.busy("social")
        app.pipeline.deliver_due(wait=False)  # a busy lane is never given a second post in flight
        assert app.pipeline.lanes.in_flight() == ["social"]
        fake.stop()  # the hang ends; the post stays recoverable (never marked failed-and-safe)
        assert app.pipeline.lanes.wait(30.0) == []
        row = app.store.delivery(social[0].id)
        assert row is not None and row.status in (DeliveryStatus.UNCERTAIN, DeliveryStatus.SENT)
        app.close()


class _SlowFeeds:
    """One loopback host serving /feed/N slowly, counting requests in flight at once."""

    def __init__(self, delay: float, body: bytes, *, gate: threading.Event | None = None) -> None:
        """``gate``: instead of ``delay``, answer once it is set (at most 10 s later)."""
        self.delay, self.body, self.gate = delay, body, gate
        self.active = 0
        self.peak = 0
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with outer.lock:
                    outer.active += 1
                    outer.peak = max(outer.peak, outer.active)
                if outer.gate is not None:
                    outer.gate.wait(10.0)
                else:
                    time.sleep(outer.delay)
                with outer.lock:
                    outer.active -= 1
                self.send_response(200)
                self.send_header("Content-Type", "application/rss+xml; charset=UTF-8")
                self.send_header("Content-Length", str(len(outer.body)))
                self.end_headers()
                self.wfile.write(outer.body)

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _many_feeds_config(tmp_path, hosts: list[str], per_host: int, concurrency: int):
    feeds = "".join(f'\n[feeds.f{h}{i}]\nurl = "{host}/feed/{i}"\nchannels = ["outbox"]\n'
                    for h, host in enumerate(hosts) for i in range(per_host))
    path = write_config(tmp_path / "autopublish.toml", f"{hosts[0]}/feed/", settings=f"fetch_concurrency = {concurrency}", extra=feeds)
    return load_config(path, {}, cwd=tmp_path)


@pytest.mark.parametrize("concurrency", [16, 1])
def test_polls_run_concurrently_within_the_pool_and_two_per_host(tmp_path, concurrency):
    body = render_rss(older_items(2))
    with _SlowFeeds(0.4, body) as a, _SlowFeeds(0.4, body) as b:
        app = open_app(_many_feeds_config(tmp_path, [a.url, b.url], 5, concurrency))
        results = app.pipeline.poll_all()
        assert len(results) == 11 and all(r.ok for r in results)  # the site feed + 5 on each host
        assert a.peak <= 2 and b.peak <= 2
        if concurrency == 1:
            assert a.peak == 1 and b.peak == 1 and a.peak + b.peak <= 2
        else:
            assert a.peak == 2 and b.peak == 2  # both hosts at once, each at its cap
        assert all(row.polls == 1 and row.baseline_at is not None for row in app.store.feeds())
        app.close()


def test_a_body_that_has_not_changed_is_never_parsed_again(tmp_path, monkeypatch):
    import autopublish.intake as pipeline_module

    parsed: list[str] = []
    real = pipeline_module.parse_feed
    monkeypatch.setattr(pipeline_module, "parse_feed", lambda body, **kw: parsed.append(kw["feed"]) or real(body, **kw))
    with FeedServer(older_items(3)) as site:
        # no validators at all, so every poll downloads the same bytes again
        site.override = Response(200, render_rss(older_items(3)), {"Content-Type": "application/rss+xml; charset=UTF-8"})
        app = open_app(load_config(write_config(tmp_path / "autopublish.toml", f"{site.url}/feed/"), {}, cwd=tmp_path))
        first, second = app.pipeline.poll_feed("site"), app.pipeline.poll_feed("site")
        assert first.changed and not second.changed and second.message == "unchanged"
        assert parsed == ["site"]
        app.close()


def test_a_feed_on_the_slow_parser_does_not_hold_up_the_other_feeds_parsing(tmp_path, monkeypatch):
    """Feed "site" needs feedparser (text/xml); while that parse runs, "quick" is fetched and parsed on the fast path."""
    import autopublish.feeds as feeds_module

    slow_started, quick_parsed = threading.Event(), threading.Event()
    seen: list[bool] = []
    real_slow, real_fast = feeds_module.parse_feed_slow, feeds_module.parse_fast

    def slow(body, **kw):
        slow_started.set()
        seen.append(quick_parsed.wait(10.0))  # bounded: with the parse lock held here, it would time out
        return real_slow(body, **kw)

    def fast(body, content_type=""):
        found = real_fast(body, content_type)
        if found is not None:
            quick_parsed.set()
        return found

    monkeypatch.setattr(feeds_module, "parse_feed_slow", slow)
    monkeypatch.setattr(feeds_module, "parse_fast", fast)
    with FeedServer(older_items(3)) as site, _SlowFeeds(0.0, render_rss(older_items(2)), gate=slow_started) as quick:
        # text/xml: RFC 3023's us-ascii default is feedparser's to apply, so the fast path declines it
        site.override = Response(200, render_rss(older_items(3)), {"Content-Type": "text/xml"})
        path = write_config(tmp_path / "autopublish.toml", f"{site.url}/feed/", extra=f'\n[feeds.quick]\nurl = "{quick.url}/feed/0"\nchannels = ["outbox"]\n')
        app = open_app(load_config(path, {}, cwd=tmp_path))
        results = {r.feed: r for r in app.pipeline.poll_all()}
        assert results["site"].ok and results["quick"].ok
        assert results["site"].new + results["quick"].new == 3  # the same posts in both feeds count once
        assert seen == [True]  # the quick feed was parsed while the slow parse was under way
        app.close()


def test_batch_is_one_transaction_and_tx_joins_it(tmp_path):
    store = Store(tmp_path / "queue")
    with pytest.raises(RuntimeError), store.batch():
        store.ensure_feed("a", "https://a.example/feed/")
        store.ensure_feed("b", "https://b.example/feed/")
        raise RuntimeError("crash mid-batch")
    assert store.feeds() == []  # all or nothing
    with store.batch():
        store.ensure_feed("a", "https://a.example/feed/")
        store.record_poll_error("a", "down")
        assert sqlite_of(store).in_transaction  # still open: the two writes above share one commit
    assert store.feed("a") is not None and store.feed("a").last_error == "down"
    assert not sqlite_of(store).in_transaction
    store.close()


def test_known_keys_is_one_lookup_for_a_whole_feed(tmp_path):
    from autopublish.models import Article

    store = Store(tmp_path / "queue")
    article = Article(feed="site", key="k1", link="https://example.org/a/", title="A")
    store.record_articles("site", [(article, "example.org/a", [])])
    keys, links = store.known_keys("site", ["k1", "k2"], ["example.org/a", "example.org/b", ""])
    assert keys == {"k1"} and links == {"example.org/a"}
    assert store.known_keys("other", ["k1"], []) == (set(), set())
    store.close()


def test_fetch_concurrency_is_validated(tmp_path):
    path = write_config(tmp_path / "autopublish.toml", "https://example.org/feed/", settings="fetch_concurrency = 0")
    with pytest.raises(ConfigError, match="fetch_concurrency"):
        load_config(path, {}, cwd=tmp_path)


def test_a_claim_made_during_a_poll_batch_is_committed_on_its_own_before_the_post(tmp_path):
    import sqlite3

    from autopublish.models import Article

    store = Store(tmp_path / "queue")
    article = Article(feed="site", key="k1", link="https://example.org/a/", title="A")
    [delivery] = store.record_articles("site", [(article, "example.org/a", [("outbox", DeliveryStatus.QUEUED, "New article queued")])])
    in_batch, release, claimed = threading.Event(), threading.Event(), threading.Event()

    def poll_batch() -> None:
        with store.batch():
            store.ensure_feed("other", "https://other.example/feed/")
            in_batch.set()
            release.wait(10)

    def lane() -> None:
        in_batch.wait(10)
        assert store.claim(delivery)
        claimed.set()

    threads = [threading.Thread(target=poll_batch), threading.Thread(target=lane)]
    for thread in threads:
        thread.start()
    assert in_batch.wait(10)
    assert not claimed.wait(0.3)  # the claim waits for the batch instead of joining it
    release.set()
    assert claimed.wait(10)
    for thread in threads:
        thread.join(10)
    # another connection (another process after a crash) sees the claim committed
    other = sqlite3.connect(tmp_path / "queue" / "state.db")
    assert other.execute("SELECT status FROM deliveries WHERE id = ?", (delivery,)).fetchone()[0] == "sending"
    other.close()
    assert sqlite_of(store).execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    store.close()
