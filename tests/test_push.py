"""Push (issue 14): WordPress update pings, the WebSub subscriber and the authenticated hook.

WordPress's own request (tests/fakes/wordpress.py) and a W3C WebSub hub (tests/fakes/websub_hub.py)
run on loopback; a canary server proves that pings and deliveries make autopublish fetch nothing
but its configured feeds.
"""

from __future__ import annotations

import hashlib
import hmac
import socket
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from autopublish.app import build_pipeline, open_app
from autopublish.config import Config, load_config
from autopublish.errors import ConfigError
from autopublish.push import xmlrpc
from autopublish.push.service import PushService
from autopublish.push.status import push_status
from autopublish.push.trigger import PollTrigger
from autopublish.push.websub import UPKEEP_LEASE, UPKEEP_TASK, WebSub, callback_url
from autopublish.scheduler import Daemon
from autopublish.store import Store
from tests.fakes.base import FakeServer, Request, Response, wait_until
from tests.fakes.feed_server import Item, older_items
from tests.fakes.websub_hub import FakeHub
from tests.fakes.wordpress import FakeWordPress, ixr_request, weblog_ping
from tests.helpers import autopublish_process, baseline_done, free_port, outbox_lines, run_cli, stop_daemon, write_config

TOKEN = "push-token-0123456789abcdef"


class Canary(FakeServer):
    """Any request here means autopublish fetched a URL that is not a configured feed."""

    def route(self, request: Request) -> Response:
        return Response(200, b"<rss version='2.0'><channel><title>canary</title></channel></rss>")

    def error_response(self, kind: str, request: Request) -> Response:
        return Response(500)


def _item(n: int, when: datetime | None = None) -> Item:
    return Item(title=f"Artikel baru {n}", link=f"https://jakberketahanan.example.go.id/2026/12/01/baru-{n}/",
                guid=f"https://jakberketahanan.example.go.id/?p={5000 + n}", published=when or datetime.now(UTC),
                categories=["Berita"], summary=f"Ringkasan {n}.")


def _push_config(tmp_path: Path, feed_url: str, port: int, *, public: bool = False, coalesce: str = "1s", lease: str = "7d",
                 trust_loopback_hub: bool = True) -> Path:
    (tmp_path / ".env").write_text(f"AUTOPUBLISH_PUSH_TOKEN={TOKEN}\n")
    public_line = f'public_url = "http://127.0.0.1:{port}"\nlease = "{lease}"\n' if public else ""
    # the fake hub is on loopback, which feed data may only name when an admin vouches for it
    settings = 'allow_private_hosts = ["127.0.0.1"]' if trust_loopback_hub else ""
    config = write_config(tmp_path / "autopublish.toml", feed_url, settings=settings,
                          extra=f'\n[push]\nlisten = "127.0.0.1:{port}"\ntoken = "${{AUTOPUBLISH_PUSH_TOKEN}}"\ncoalesce = "{coalesce}"\n{public_line}')
    config.write_text(config.read_text().replace('poll_interval = "5m"', 'poll_interval = "1h"'))
    return config


# --- XML-RPC --------------------------------------------------------------------------------------


def test_wordpress_extended_ping_is_read_and_answered_the_weblogs_way():
    ping = xmlrpc.read_ping(ixr_request("weblogUpdates.extendedPing", "Blog & Co", "https://ex.org/", "https://ex.org/feed/"))
    assert ping.method == "weblogUpdates.extendedPing" and ping.name == "Blog & Co"
    assert ping.urls == ("https://ex.org/", "https://ex.org/feed/")
    import xmlrpc.client as stdlib

    (answer,), _ = stdlib.loads(xmlrpc.thanks())
    assert answer == {"flerror": False, "message": "Thanks for the ping."}


@pytest.mark.parametrize("body, code", [
    (b'<?xml version="1.0"?><!DOCTYPE m [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>'
     b"<methodCall><methodName>weblogUpdates.ping</methodName><params><param><value>&b;</value></param></params></methodCall>", -32700),
    (b'<?xml version="1.0"?><!DOCTYPE m [<!ENTITY x SYSTEM "http://127.0.0.1:9/x">]><methodCall><methodName>&x;</methodName></methodCall>',
     -32700),
    (b"<methodCall><methodName>weblogUpdates.ping</methodName><params>" + b"<param><value>x</value></param>" * 5000 + b"</params></methodCall>",
     -32700),  # larger than the ping size cap
    (b"not xml at all", -32700),
    (ixr_request("system.listMethods"), -32601),
    (ixr_request("weblogUpdates.ping", "only a name"), -32602),
    (b"<methodCall><methodName>weblogUpdates.ping</methodName><params><param><value><int>1</int></value></param>"
     b"<param><value><int>2</int></value></param></params></methodCall>", -32602),
])
def test_hostile_or_wrong_pings_get_a_fault(body, code):
    with pytest.raises(xmlrpc.PingError) as caught:
        xmlrpc.read_ping(body)
    assert caught.value.code == code


def test_trigger_coalesces_a_burst_into_one_extra_poll():
    polls: list[tuple[str, float]] = []
    trigger = PollTrigger(lambda feed: polls.append((feed, time.monotonic())), gap=0.3)
    trigger.start()
    try:
        for _ in range(50):
            trigger.request("site")
            trigger.request("other")
        assert wait_until(lambda: len(polls) >= 2, timeout=5)
        for _ in range(20):
            trigger.request("site")  # arrives after the first poll started: folded into one extra poll
        assert wait_until(lambda: [f for f, _ in polls].count("site") >= 2, timeout=5)
        time.sleep(0.8)
    finally:
        trigger.stop()
    assert [f for f, _ in polls].count("site") == 2 and [f for f, _ in polls].count("other") == 1
    site_times = [t for f, t in polls if f == "site"]
    assert site_times[1] - site_times[0] >= 0.25  # the extra poll waited for the gap


# --- the real daemon: WordPress pings and the hook ---------------------------------------------------------


def test_wordpress_ping_posts_at_once_with_an_hourly_poll_and_fetches_nothing_else(tmp_path):
    port = free_port()
    with FakeWordPress(older_items(3), update_services=[f"http://127.0.0.1:{port}/ping"]) as site, Canary() as canary:
        config = _push_config(tmp_path, site.feed_url, port)
        log = tmp_path / "daemon.log"
        daemon = autopublish_process(config, "run", output=log)
        try:
            assert wait_until(lambda: site.feed_requests() >= 1 and _ping_ok(port), timeout=30)
            assert wait_until(lambda: baseline_done(tmp_path / "queue"), timeout=20)
            polls_before = site.feed_requests()

            # WordPress publishes: its cron pings; extendedPing is answered, so no plain ping follows.
            results = site.publish(_item(1))
            assert [r.method for r in results] == ["weblogUpdates.extendedPing"] and results[0].ok
            assert results[0].answer == {"flerror": False, "message": "Thanks for the ping."}
            assert wait_until(lambda: len(outbox_lines(config)) == 1, timeout=15)  # the poll interval is one hour

            # A second post in the same second as the first poll: WordPress's validators would answer 304.
            second = _item(2, when=site.items[-1].published)
            site.publish(second)
            assert wait_until(lambda: len(outbox_lines(config)) == 2, timeout=15)
            assert {line["text"].split("\n")[0] for line in outbox_lines(config)} == {"Artikel baru 1", "Artikel baru 2"}

            # Pings for URLs that are not configured feeds: the same answer, and nothing is fetched.
            polls = site.feed_requests()
            for args in (("weblogUpdates.extendedPing", "x", f"{canary.url}/", f"{canary.url}/feed/"),
                         ("weblogUpdates.ping", "x", f"{canary.url}/"),
                         ("weblogUpdates.extendedPing", "x", "https://example.org/", f"{canary.url}/feed/", f"{canary.url}/rss")):
                answer = requests.post(f"http://127.0.0.1:{port}/ping", data=ixr_request(*args), timeout=5)
                assert answer.status_code == 200 and answer.content == xmlrpc.thanks()
            # A plain ping naming the home page the feed declares (its <link>) is a match.
            results = weblog_ping(f"http://127.0.0.1:{port}/ping", site.blogname, site.home, "https://elsewhere.example/feed")
            assert results[0].ok
            assert wait_until(lambda: site.feed_requests() == polls + 1, timeout=10)
            time.sleep(1.5)
            assert site.feed_requests() == polls + 1
            assert canary.requests == []

            # The hook: a wrong or missing token is refused and polls nothing; the right one polls.
            polls = site.feed_requests()
            hook = f"http://127.0.0.1:{port}/poll/site"
            assert requests.post(hook, timeout=5).status_code == 401
            assert requests.post(hook, headers={"Authorization": "Bearer wrong-token-wrong-token"}, timeout=5).status_code == 401
            assert requests.post(f"http://127.0.0.1:{port}/poll/nope", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5).status_code == 404
            time.sleep(1.2)
            assert site.feed_requests() == polls
            site.add(_item(3))
            answer = requests.post(hook, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
            assert answer.status_code == 202
            assert wait_until(lambda: len(outbox_lines(config)) == 3, timeout=15)
            assert polls_before < site.feed_requests()

            checked = run_cli(config, "check", "--offline")
            assert "pushed by update pings" in checked.output and "a hook" in checked.output
            assert TOKEN not in checked.output
        finally:
            stop_daemon(daemon, log)
        assert daemon.returncode == 0
        assert TOKEN not in log.read_text(errors="replace")
        assert canary.requests == []


def _ping_ok(port: int) -> bool:
    try:
        return requests.post(f"http://127.0.0.1:{port}/ping", data=b"x", timeout=2).status_code == 200
    except requests.RequestException:
        return False


# --- WebSub (in process, with a real pipeline and store) ------------------------------------------------------


class _Running:
    """A Daemon object (not its scheduler) with the push service, as run_daemon wires them."""

    def __init__(self, config_path: Path) -> None:
        self.path = config_path
        self.config = load_config(config_path, {"AUTOPUBLISH_PUSH_TOKEN": TOKEN})
        self.app = open_app(self.config)
        self.daemon = Daemon(self.app.pipeline)
        self.daemon.ready.set()
        self.service = PushService(lambda: self.daemon.pipeline.config, lambda: self.daemon.pipeline.store, self.daemon.poll_now,
                                   maintain_every=0.2)

    def __enter__(self) -> _Running:
        self.service.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.service.stop()
        self.app.close()

    def reload(self, text: str) -> None:
        self.path.write_text(text)
        config = load_config(self.path, {"AUTOPUBLISH_PUSH_TOKEN": TOKEN})
        self.daemon.pipeline, _ = build_pipeline(config, self.app.store)


def test_websub_subscribe_verify_deliver_renew_and_unsubscribe(tmp_path):
    port = free_port()
    with FakeHub(max_lease=3) as hub, Canary() as canary:
        with FakeWordPress(older_items(3), hub=hub.hub_url) as site:
            config = _push_config(tmp_path, site.feed_url, port, public=True)
            with _Running(config) as running:
                store = running.app.store
                running.daemon.pipeline.poll_all()  # the first poll records hub and self (Link header, §4)
                callback = callback_url(f"http://127.0.0.1:{port}", "site")
                assert wait_until(lambda: (callback, site.feed_url) in hub.subscriptions, timeout=10)
                first = hub.accepted[0]
                assert first["hub.mode"] == "subscribe" and first["hub.topic"] == site.feed_url and first["hub.callback"] == callback
                assert first["hub.lease_seconds"] == str(7 * 86400) and len(first["hub.secret"]) == 64
                assert TOKEN not in str(hub.accepted) and store.websub_subscription("site").state == "active"
                assert "pushed by WebSub via 127.0.0.1" in push_status(running.config, store, "site").sentence()

                # A request we never made is not confirmed (§5.3.1): another topic, another mode.
                assert hub.probe(callback, "subscribe", f"{canary.url}/feed/").status_code == 404
                assert hub.probe(callback, "unsubscribe", site.feed_url).status_code == 404

                # Content distribution with a valid signature polls the configured feed at once.
                polls = site.feed_requests()
                site.add(_item(1))
                body = f"<rss><channel><link>{canary.url}/</link><item><link>{canary.url}/x</link></item></channel></rss>".encode()
                assert hub.distribute(site.feed_url, body) == [202]
                assert wait_until(lambda: len(outbox_lines(config)) == 1, timeout=10)
                assert site.feed_requests() == polls + 1

                # A wrong or missing signature is acknowledged (§7.1) but ignored: nothing is polled.
                time.sleep(1.2)  # past the coalescing gap, so a poll would show
                polls = site.feed_requests()
                assert hub.distribute(site.feed_url, body, signature="sha256=" + "0" * 64) == [202]
                assert hub.distribute(site.feed_url, body, signature="") == [202]
                forged = hmac.new(b"guessed", body, hashlib.sha1).hexdigest()
                assert hub.distribute(site.feed_url, body, signature=f"sha1={forged}") == [202]
                time.sleep(1.0)
                assert site.feed_requests() == polls

                # The hub granted 3 s: the subscription is renewed before it runs out.
                assert wait_until(lambda: sum(f["hub.mode"] == "subscribe" for f in hub.accepted) >= 2, timeout=10)
                assert wait_until(lambda: store.websub_subscription("site").state == "active"
                                  and store.websub_subscription("site").pending == "", timeout=10)

                # The feed leaves the config: unsubscribe, confirmed by the hub, and the row goes.
                text = config.read_text()
                running.reload(text.replace("[feeds.site]", "[feeds.other]").replace(site.feed_url, f"{site.url}/feed/?other"))
                assert wait_until(lambda: any(f["hub.mode"] == "unsubscribe" for f in hub.accepted), timeout=10)
                assert wait_until(lambda: store.websub_subscription("site") is None, timeout=10)
                # The hub forgets the subscription once its own intent check has come back (§5.3): wait for it.
                assert wait_until(lambda: (callback, site.feed_url) not in hub.subscriptions, timeout=10)
                assert hub.distribute(site.feed_url, body) == []
                assert requests.post(callback, data=body, timeout=5).status_code == 410  # §7: gone
    assert canary.requests == []


def test_one_node_at_a_time_keeps_the_websub_subscriptions(tmp_path):
    """Two nodes asking one hub at once would overwrite each other's pending request: upkeep is leased."""
    port = free_port()
    with FakeHub() as hub, FakeWordPress(older_items(2), hub=hub.hub_url) as site:
        config = _push_config(tmp_path, site.feed_url, port, public=True)
        with _Running(config) as running:
            other = Store(running.config.state_dir)  # another node on the same database
            try:
                other.register_node()
                assert other.lease_task(UPKEEP_TASK, 60)
                running.daemon.pipeline.poll_all()  # records the hub: upkeep is due
                time.sleep(1.0)  # five upkeep passes of this node
                assert hub.accepted == []
                assert all(node.channels == () for node in other.nodes())  # a task is not a channel
                other.release_task(UPKEEP_TASK)
                assert wait_until(lambda: len(hub.accepted) == 1, timeout=10)
                assert wait_until(lambda: running.app.store.websub_subscription("site").state == "active", timeout=10)
                time.sleep(0.5)
                assert len(hub.accepted) == 1  # kept, not asked again
            finally:
                other.close()


def _poll_hook(port: int) -> int | None:
    """POST /poll/site with the token: 202 while a listener answers on ``port``, None when nothing listens."""
    try:
        return requests.post(f"http://127.0.0.1:{port}/poll/site", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=2).status_code
    except requests.ConnectionError:
        return None


def test_a_reload_moves_the_push_listener_and_applies_the_new_coalescing(tmp_path, caplog):
    first, second = free_port(), free_port()
    with FakeWordPress(older_items(2)) as site:
        config = _push_config(tmp_path, site.feed_url, first)
        text = config.read_text()

        def edited(listen: str | None, coalesce: str = "1s") -> Config:
            changed = text.replace(f'listen = "127.0.0.1:{first}"', f'listen = "{listen}"' if listen else "").replace('coalesce = "1s"',
                                                                                                                     f'coalesce = "{coalesce}"')
            config.write_text(changed)
            return load_config(config, {"AUTOPUBLISH_PUSH_TOKEN": TOKEN})

        with _Running(config) as running:
            assert _poll_hook(first) == 202
            running.service.apply(edited(f"127.0.0.1:{second}", coalesce="7s"))
            assert _poll_hook(second) == 202 and _poll_hook(first) is None
            assert running.service.trigger.gap == 7.0

            # An address that cannot be bound keeps the listener where it was, and says why.
            with socket.socket() as taken:
                taken.bind(("127.0.0.1", 0))
                taken.listen()
                running.service.apply(edited(f"127.0.0.1:{taken.getsockname()[1]}"))
                assert _poll_hook(second) == 202
                assert f"push stays on 127.0.0.1:{second}" in caplog.text

            running.service.apply(edited(None))
            assert _poll_hook(second) is None


def test_the_daemon_starts_moves_and_stops_its_push_listener_on_reload(tmp_path):
    """The real daemon: [push] listen added, changed and removed in the config while it runs."""
    first, second = free_port(), free_port()
    with FakeWordPress(older_items(2)) as site:
        config = _push_config(tmp_path, site.feed_url, first)
        with_push = config.read_text()
        without = with_push[:with_push.index("[push]")]
        config.write_text(without)
        log = tmp_path / "daemon.log"
        daemon = autopublish_process(config, "run", output=log)
        try:
            assert wait_until(lambda: baseline_done(tmp_path / "queue"), timeout=20)
            assert _poll_hook(first) is None
            config.write_text(with_push)
            assert wait_until(lambda: _poll_hook(first) == 202, timeout=20)
            config.write_text(with_push.replace(f"127.0.0.1:{first}", f"127.0.0.1:{second}"))
            assert wait_until(lambda: _poll_hook(second) == 202 and _poll_hook(first) is None, timeout=20)
            config.write_text(without)
            assert wait_until(lambda: _poll_hook(second) is None, timeout=20)
        finally:
            stop_daemon(daemon, log)
        assert daemon.returncode == 0


def _upkeep_pass(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hub_seconds: float) -> list[tuple[str, bool]]:
    """One upkeep pass over four feeds whose hubs each take ``hub_seconds``: (feed, could another node
    take the upkeep lease right after its hub answered) per hub asked."""
    feeds = "".join(f'\n[feeds.f{n}]\nurl = "https://site{n}.example.org/feed/"\nchannels = ["outbox"]\n' for n in range(3))
    config_path = _push_config(tmp_path, "https://site.example.org/feed/", free_port(), public=True)
    config_path.write_text(config_path.read_text() + feeds)
    config = load_config(config_path, {"AUTOPUBLISH_PUSH_TOKEN": TOKEN}, cwd=tmp_path)
    now = [1_800_000_000.0]
    store, other = Store(config.state_dir, clock=lambda: now[0]), Store(config.state_dir, clock=lambda: now[0])
    try:
        for name in config.feeds:
            store.record_feed_links(name, home="", hub=f"https://hub.example.org/{name}", self_url="")
        websub = WebSub(lambda: store, lambda: config, clock=lambda: now[0])
        asked: list[tuple[str, bool]] = []

        def slow_hub(row, mode, *, lease=None):  # type: ignore[no-untyped-def]
            now[0] += hub_seconds
            taken = other.lease_task(UPKEEP_TASK, UPKEEP_LEASE)
            asked.append((row.feed, taken))
            return None

        monkeypatch.setattr(websub, "_send", slow_hub)
        websub.maintain()
        return asked
    finally:
        store.close()
        other.close()


def test_a_long_upkeep_pass_renews_its_lease_so_no_other_node_starts_one(tmp_path, monkeypatch):
    """Each hub request renews the upkeep lease: a pass longer than the lease (many slow hubs) never
    lets another node start its own pass halfway, which would ask the same hubs at once."""
    asked = _upkeep_pass(tmp_path, monkeypatch, hub_seconds=0.4 * UPKEEP_LEASE)  # four hubs: 1.6 leases
    assert asked == [("site", False), ("f0", False), ("f1", False), ("f2", False)]


def test_an_upkeep_pass_whose_lease_was_taken_over_stops(tmp_path, monkeypatch):
    asked = _upkeep_pass(tmp_path, monkeypatch, hub_seconds=UPKEEP_LEASE + 1)  # one hub outlasts the lease: the other node takes it
    assert asked == [("site", True)]  # and this pass asks no further hub


def test_websub_hub_failing_or_denying_falls_back_to_polling(tmp_path):
    port = free_port()
    with FakeHub() as hub, FakeWordPress(older_items(2), hub=hub.hub_url) as site:
        hub.script("server_error", times=100, when=lambda r: r.path == "/hub")
        config = _push_config(tmp_path, site.feed_url, port, public=True)
        with _Running(config) as running:
            store = running.app.store
            running.daemon.pipeline.poll_all()
            assert wait_until(lambda: store.websub_subscription("site") is not None
                              and store.websub_subscription("site").state == "failing", timeout=10)
            status = push_status(running.config, store, "site")
            assert not status.pushed and "polling carries it" in status.sentence() and "HTTP 503" in status.sentence()
            # Polling goes on: a regular poll still finds new posts.
            site.add(_item(1))
            running.daemon.pipeline.poll_all()
            running.daemon.pipeline.deliver_due()
            assert len(outbox_lines(config)) == 1

            # §5.2: a hub that refuses is recorded as such; the feed stays polled.
            hub.faults.clear()
            row = store.websub_subscription("site")
            store.save_websub(type(row)(**{**{f: getattr(row, f) for f in row.__slots__}, "next_attempt_at": None}))
            assert wait_until(lambda: store.websub_subscription("site").state == "active", timeout=10)
            callback = callback_url(f"http://127.0.0.1:{port}", "site")
            assert hub.deny(callback, site.feed_url, "too many subscriptions").status_code == 200
            status = push_status(running.config, store, "site")
            assert store.websub_subscription("site").state == "denied" and "too many subscriptions" in status.sentence()


# --- config ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("push, key, words", [
    ('listen = "nowhere"', "push.listen", "host:port"),
    ('public_url = "https://push.example.org"', "push.public_url", "nothing listens"),
    ('listen = "127.0.0.1:8765"\npublic_url = "https://push.example.org"', "push.token", "WebSub needs a token"),
    ('listen = "127.0.0.1:8765"\ntoken = "${SHORT}"', "push.token", "too short"),
    ('listen = "127.0.0.1:8765"\ntoken = "s3cr3t-in-the-file-itself"', "push.token", "secrets are not written in the config"),
    ('listen = "127.0.0.1:8765"\npublic_url = "ftp://x"', "push.public_url", "http(s) address"),
])
def test_push_config_errors_name_file_key_and_fix(tmp_path, push, key, words):
    config = write_config(tmp_path / "autopublish.toml", "https://example.org/feed/", extra=f"\n[push]\n{push}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(config, {"SHORT": "abc"})
    problems = [p for p in caught.value.problems if p.key == key]
    assert problems and words in problems[0].problem + problems[0].fix and problems[0].file == str(config)


def test_push_is_off_by_default(tmp_path):
    config = load_config(write_config(tmp_path / "autopublish.toml", "https://example.org/feed/"), {})
    assert config.push.listen is None and config.push.public_url is None and config.push.token is None


def test_web_page_shows_per_feed_whether_it_is_pushed_or_polled(tmp_path):
    from autopublish.secrets import Redactor
    from autopublish.web.app import create_app
    from tests.test_web import PASSWORDS, build_site, sign_in

    with FakeWordPress() as server:
        site = build_site(tmp_path, server)
        app = create_app(site.config, redactor=Redactor(site.config.secret_values()))
        app.testing = True
        try:
            client = app.test_client()
            sign_in(client, "ed", PASSWORDS["ed"])
            page = client.get("/channels").get_data(as_text=True)
            assert 'data-feed="site" class="polled"' in page and "polled every 5m" in page and "push listener is off" in page
            store = app.extensions["autopublish_store"]
            store.note_push("site", "ping")
            page = client.get("/channels").get_data(as_text=True)
            assert 'data-feed="site" class="pushed"' in page and "update pings, last" in page
        finally:
            app.extensions["autopublish_store"].close()


def test_listener_refuses_big_or_unsized_bodies_and_unknown_paths_without_fetching(tmp_path):
    port = free_port()
    with FakeWordPress(older_items(2)) as site:
        config = _push_config(tmp_path, site.feed_url, port)
        with _Running(config):
            base = f"http://127.0.0.1:{port}"
            assert wait_until(lambda: _ping_ok(port), timeout=10)
            big = b"<methodCall>" + b" " * (xmlrpc.MAX_PING_BYTES + 1)
            assert requests.post(f"{base}/ping", data=big, timeout=5).status_code == 413
            with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
                raw.sendall(b"POST /ping HTTP/1.1\r\nHost: x\r\n\r\n")
                assert b" 411 " in raw.recv(200)
            assert requests.get(f"{base}/ping", timeout=5).status_code == 404
            assert requests.post(f"{base}/feed/", data=b"x", timeout=5).status_code == 404
            assert requests.get(f"{base}/websub/site", params={"hub.mode": "subscribe", "hub.topic": site.feed_url,
                                                               "hub.challenge": "c"}, timeout=5).status_code == 404  # nothing pending
            answer = requests.post(f"{base}/poll/site", headers={"Authorization": f"Basic {TOKEN}"}, timeout=5)
            assert answer.status_code == 401 and TOKEN not in answer.text
            time.sleep(0.5)
    assert site.feed_requests() == 0


def test_a_hub_at_an_internal_address_named_by_the_feed_is_never_contacted(tmp_path):
    port = free_port()
    with FakeHub() as hub, FakeWordPress(older_items(2), hub=hub.hub_url) as site:
        config = _push_config(tmp_path, site.feed_url, port, public=True, trust_loopback_hub=False)
        with _Running(config) as running:
            store = running.app.store
            running.daemon.pipeline.poll_all()
            assert wait_until(lambda: store.websub_subscription("site") is not None
                              and store.websub_subscription("site").state == "failing", timeout=10)
            assert "refused" in store.websub_subscription("site").last_error
            assert "polling carries it" in push_status(running.config, store, "site").sentence()
    assert hub.requests == []


def test_discovery_reads_hub_self_and_home_and_prefers_the_link_header():
    import json

    from autopublish.feeds import feed_links, parse_feed

    atom = (b'<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>t</title>'
            b'<link rel="alternate" href="https://ex.org/"/><link rel="hub" href="https://hub.example/"/>'
            b'<link rel="self" href="https://ex.org/atom"/><entry><id>1</id><title>a</title><link href="https://ex.org/1"/></entry></feed>')
    parsed = parse_feed(atom, feed="x")
    assert feed_links(parsed) == type(feed_links(parsed))("https://ex.org/", "https://hub.example/", "https://ex.org/atom")
    header = '<https://other-hub.example/>; rel="hub", <https://ex.org/feed>; rel="self"'
    links = feed_links(parsed, header)  # W3C WebSub §4: the Link header first
    assert (links.hub, links.self_url) == ("https://other-hub.example/", "https://ex.org/feed")
    hostile = atom.replace(b"https://hub.example/", b"javascript:alert(1)").replace(b'href="https://ex.org/"', b'href="file:///etc/passwd"')
    parsed = parse_feed(hostile, feed="x")
    assert (parsed.hub, parsed.home) == ("", "")
    json_feed = json.dumps({"version": "https://jsonfeed.org/version/1.1", "title": "t", "home_page_url": "https://ex.org/",
                            "feed_url": "https://ex.org/feed.json", "hubs": [{"type": "rssCloud", "url": "https://cloud/"},
                                                                             {"type": "WebSub", "url": "https://hub.example/"}],
                            "items": [{"id": "1", "url": "https://ex.org/1", "content_text": "x"}]}).encode()
    parsed = parse_feed(json_feed, feed="x")
    assert (parsed.home, parsed.hub, parsed.self_url) == ("https://ex.org/", "https://hub.example/", "https://ex.org/feed.json")
