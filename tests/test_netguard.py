"""SSRF: URLs from feed data reach only public addresses (or the feed's own origin, or allowed hosts).

Internal services are played by canaries: loopback listeners on other ports that count
every connection they accept. A refused fetch must leave them at ZERO.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import replace

import pytest
import requests

from autopublish.app import open_app
from autopublish.config import load_config
from autopublish.errors import AddressRefusedError, FetchError
from autopublish.netguard import GuardedFetcher, Origin, read_capped, refusal_reason
from autopublish.platforms.base import PublisherEnv
from autopublish.platforms.mastodon import MastodonOptions, MastodonPublisher
from tests.contract import sample_post
from tests.fakes.base import TINY_PNG, Response
from tests.fakes.feed_server import FeedServer, Item, Trickle, seed_item
from tests.fakes.mastodon import FakeMastodon
from tests.helpers import write_config


class Canary:
    """A loopback port standing in for an internal service: it counts accepted connections
    and answers each with a tiny PNG (what a careless client would upload). Stops by itself."""

    def __init__(self, lifetime: float = 60.0) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._until = time.monotonic() + lifetime
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while not self._stop.is_set() and time.monotonic() < self._until:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            with conn:
                conn.settimeout(1.0)
                try:
                    conn.recv(65536)
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                                 % len(TINY_PNG) + TINY_PNG)
                except OSError:
                    pass

    def __enter__(self) -> Canary:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


def _refused(fetcher: GuardedFetcher, url: str, origin: str | None = None) -> AddressRefusedError:
    with pytest.raises(AddressRefusedError) as info, fetcher.open(url, allowed_origin=origin, timeout=(1.0, 1.0), deadline=3.0):
        pass
    return info.value


# --- the address rule ------------------------------------------------------------------------


@pytest.mark.parametrize("address", [
    "127.0.0.1", "10.1.2.3", "172.16.5.4", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0",
    "224.0.0.1", "240.0.0.1", "::1", "fc00::1", "fd12:3456::1", "fe80::1", "::ffff:127.0.0.1", "::ffff:8.8.8.8", "ff02::1",
])
def test_internal_addresses_are_refused(address):
    import ipaddress

    assert refusal_reason(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses_pass(address):
    import ipaddress

    assert refusal_reason(ipaddress.ip_address(address)) is None


def test_cloud_metadata_is_refused_without_any_connection(monkeypatch):
    attempts: list[object] = []
    real_connect = socket.socket.connect

    def recording_connect(self: socket.socket, address: object) -> None:
        attempts.append(address)
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", recording_connect)
    error = _refused(GuardedFetcher(), "http://169.254.169.254/latest/meta-data/iam/security-credentials/")
    assert "link-local" in error.message and attempts == []


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.org/x.png", "gopher://127.0.0.1:6379/_INFO", "//no-scheme/x.png"])
def test_only_http_and_https_are_fetched(url):
    assert "only http and https" in _refused(GuardedFetcher(), url).message


def test_an_image_on_a_canary_port_of_loopback_is_refused_even_beside_a_loopback_feed():
    with Canary() as canary, FeedServer() as feed:
        error = _refused(GuardedFetcher(), f"{canary.url}/secret.png", origin=f"{feed.url}/feed/")
        assert "loopback" in error.message
    assert canary.connections == 0


def test_the_feeds_own_origin_is_allowed():
    with FeedServer() as feed, GuardedFetcher().open(feed.image_url(), allowed_origin=f"{feed.url}/feed/") as fetched:
        assert read_capped(fetched, 1024) == TINY_PNG


def test_a_host_in_allow_private_hosts_is_fetched():
    with FeedServer() as images, GuardedFetcher(allow_private_hosts=["127.0.0.1"]).open(images.image_url(), allowed_origin=None) as fetched:
        assert read_capped(fetched, 1024) == TINY_PNG


def test_a_redirect_from_an_allowed_origin_to_a_canary_is_refused_at_the_hop():
    with Canary() as canary, FeedServer() as feed:
        feed.override = Response(302, b"", {"Location": f"{canary.url}/internal"})
        error = _refused(GuardedFetcher(), f"{feed.url}/image.png", origin=f"{feed.url}/feed/")
        assert "loopback" in error.message
        assert len(feed.requests) == 1  # the allowed hop was made, the next one was not
    assert canary.connections == 0


def test_redirects_are_followed_at_most_five_times():
    with FeedServer() as feed:
        feed.override = Response(302, b"", {"Location": "/again"})
        with pytest.raises(FetchError, match="more than 5 times"), GuardedFetcher().open(f"{feed.url}/x", allowed_origin=feed.url, max_redirects=5):
            pass
        assert len(feed.requests) == 6


def test_dns_rebinding_cannot_switch_the_checked_address(monkeypatch):
    """The resolver answers a public address for the check and loopback afterwards: the
    connection goes to the checked (public) address, so the canary hears nothing."""
    with Canary() as canary:
        answers = iter([["93.184.216.34"], ["127.0.0.1"]])
        lookups: list[str] = []

        def rebinding(host: str, port: int) -> list[str]:
            lookups.append(host)
            return next(answers)

        attempts: list[object] = []

        def recording_connect(self: socket.socket, address: object) -> None:
            attempts.append(address)
            raise ConnectionRefusedError("tests do not leave the machine")

        monkeypatch.setattr(socket.socket, "connect", recording_connect)
        fetcher = GuardedFetcher(resolver=rebinding)
        with pytest.raises(requests.exceptions.ConnectionError):
            with fetcher.open(f"http://images.example:{canary.port}/a.png", allowed_origin=None, timeout=(1.0, 1.0), deadline=3.0):
                pass
        assert lookups == ["images.example"]  # one lookup: the checked answer is the one used
        assert attempts and all(a == ("93.184.216.34", canary.port) for a in attempts)
    assert canary.connections == 0


def test_a_resolved_internal_address_is_refused_before_connecting():
    with Canary() as canary:
        fetcher = GuardedFetcher(resolver=lambda host, port: ["127.0.0.1"])
        error = _refused(fetcher, f"http://internal.example:{canary.port}/a.png")
        assert "internal.example (127.0.0.1)" in error.message
    assert canary.connections == 0


def test_the_pinned_connection_keeps_the_host_name_in_the_host_header():
    with FeedServer() as server:
        fetcher = GuardedFetcher(resolver=lambda host, port: ["127.0.0.1"], allow_private_hosts=["media.intranet"])
        with fetcher.open(f"http://media.intranet:{server.port}/feed/", allowed_origin=None) as fetched:
            assert fetched.response.status_code == 200
        assert server.requests[-1].header("host") == f"media.intranet:{server.port}"


@pytest.mark.parametrize(
    ("trickle", "read_timeout"),
    [
        pytest.param(Trickle(chunk=b"x", interval=0.2), 5.0, id="a-slow-drip"),  # each read succeeds well within the read timeout
        pytest.param(Trickle(stall=True), 30.0, id="a-stall-after-the-headers"),
    ],
)
def test_a_slow_body_is_cut_off_at_the_overall_deadline(trickle: Trickle, read_timeout: float):
    with FeedServer() as server:
        server.override = trickle
        started = time.monotonic()
        with pytest.raises(FetchError, match="took longer than"):
            with GuardedFetcher().open(f"{server.url}/img.png", allowed_origin=server.url, timeout=(1.0, read_timeout), deadline=1.0) as fetched:
                read_capped(fetched, 10_000_000)
        assert time.monotonic() - started < 4.0


def test_origin_compares_scheme_host_and_port():
    assert Origin.of("https://Example.org/feed/") == Origin.of("https://example.org:443/img.png")
    assert Origin.of("http://example.org/feed/") != Origin.of("https://example.org/feed/")
    assert Origin.of("http://127.0.0.1:8000/feed/") != Origin.of("http://127.0.0.1:8001/feed/")


# --- through a platform adapter and the pipeline ------------------------------------------------


def _mastodon(fake: FakeMastodon, tmp_path, fetcher: GuardedFetcher) -> MastodonPublisher:
    from autopublish.secrets import Secret

    options = MastodonOptions.model_validate({"instance": fake.url, "access_token": "${T}"}, context={"env": {"T": "tok-123456"}})
    assert isinstance(options.access_token, Secret)
    env = PublisherEnv(session=requests.Session(), state_dir=tmp_path, timeout=(1.0, 1.0), fetcher=fetcher)
    return MastodonPublisher("social", options, env)


def test_a_refused_image_leaves_the_post_without_it_and_a_note_why(tmp_path):
    with Canary() as canary, FakeMastodon(token="tok-123456") as fake:
        publisher = _mastodon(fake, tmp_path, GuardedFetcher())
        post = replace(sample_post(image=f"{canary.url}/latest/meta-data"), source_origin="https://jakberketahanan.example.go.id:443")
        publisher.publish(post)
        notes = publisher.take_notes()
        assert fake.statuses and not fake.statuses[-1].get("media_ids")
        assert notes and "without its image" in notes[0] and "loopback" in notes[0]
    assert canary.connections == 0


def test_end_to_end_an_internal_image_is_never_fetched_and_the_publish_log_says_why(tmp_path):
    with Canary() as canary, FakeMastodon(token="tok-123456") as fake, FeedServer() as site:
        table = f'[channels.social]\nplatform = "mastodon"\ninstance = "{fake.url}"\naccess_token = "${{MASTODON_TOKEN}}"\n'
        config_path = write_config(tmp_path / "autopublish.toml", f"{site.url}/feed/", channels="social", extra=table)
        app = open_app(load_config(config_path, {"MASTODON_TOKEN": "tok-123456"}, cwd=tmp_path))
        try:
            app.pipeline.poll_all()  # baseline
            site.add(Item(**{**vars(seed_item()), "image": f"{canary.url}/computeMetadata/v1/"}))
            app.pipeline.poll_all()
            result = app.pipeline.deliver_due()
            assert result.sent == 1
            messages = [e["message"] for e in app.store.events(channel="social") if e["status"] == "sent"]
        finally:
            app.close()
        assert len(fake.statuses) == 1 and not fake.media
        assert any("without its image" in m and "loopback" in m for m in messages), messages
    assert canary.connections == 0


def test_end_to_end_an_image_on_the_feeds_own_site_is_uploaded(tmp_path):
    with FakeMastodon(token="tok-123456") as fake, FeedServer() as site:
        table = f'[channels.social]\nplatform = "mastodon"\ninstance = "{fake.url}"\naccess_token = "${{MASTODON_TOKEN}}"\n'
        config_path = write_config(tmp_path / "autopublish.toml", f"{site.url}/feed/", channels="social", extra=table)
        app = open_app(load_config(config_path, {"MASTODON_TOKEN": "tok-123456"}, cwd=tmp_path))
        try:
            app.pipeline.poll_all()
            site.add(Item(**{**vars(seed_item()), "image": site.image_url()}))
            app.pipeline.poll_all()
            assert app.pipeline.deliver_due().sent == 1
        finally:
            app.close()
        assert len(fake.media) == 1


def test_a_feed_redirecting_to_an_internal_address_fails_with_a_clear_reason(tmp_path):
    from autopublish.errors import FeedError
    from autopublish.feeds import fetch_feed

    with Canary() as canary, FeedServer() as site:
        site.override = Response(301, b"", {"Location": f"{canary.url}/feed/"})
        with pytest.raises(FeedError, match="does not fetch"):
            fetch_feed(GuardedFetcher(), f"{site.url}/feed/", None)
    assert canary.connections == 0


def test_allow_private_hosts_is_validated(tmp_path):
    from autopublish.errors import ConfigError

    config_path = write_config(tmp_path / "autopublish.toml", "https://example.go.id/feed/",
                               settings='allow_private_hosts = ["http://10.0.0.5:8080/"]')
    with pytest.raises(ConfigError, match="allow_private_hosts"):
        load_config(config_path, {}, cwd=tmp_path)
    write_config(config_path, "https://example.go.id/feed/", settings='allow_private_hosts = ["media.intranet", "10.0.0.5"]')
    assert load_config(config_path, {}, cwd=tmp_path).settings.allow_private_hosts == ("media.intranet", "10.0.0.5")


# --- TLS on a pinned address -------------------------------------------------------------------


def _tls_server(tmp_path):  # type: ignore[no-untyped-def]
    """A loopback HTTPS server with a self-signed certificate for images.example; records the SNI names it saw."""
    import shutil
    import ssl
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess_run = __import__("subprocess").run
    subprocess_run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1",
                    "-subj", "/CN=images.example", "-addext", "subjectAltName=DNS:images.example"], check=True, capture_output=True, timeout=60)
    seen: list[str | None] = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.sni_callback = lambda sock, name, ctx: seen.append(name)  # type: ignore[assignment,misc]

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            return

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(TINY_PNG)))
            self.end_headers()
            self.wfile.write(TINY_PNG)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    timer = threading.Timer(60, server.shutdown)
    timer.daemon = True
    timer.start()
    return server, cert, seen


def test_a_pinned_https_fetch_sends_the_host_name_and_verifies_the_certificate_for_it(tmp_path):
    server, cert, seen = _tls_server(tmp_path)
    try:
        port = server.server_address[1]
        fetcher = GuardedFetcher(resolver=lambda host, p: ["127.0.0.1"], allow_private_hosts=["images.example", "other.example"],
                                 verify=str(cert))
        with fetcher.open(f"https://images.example:{port}/a.png", allowed_origin=None, timeout=(2.0, 2.0), deadline=5.0) as fetched:
            assert read_capped(fetched, 1024) == TINY_PNG
        assert seen == ["images.example"]
        # the same address under another name: the certificate does not match, so nothing is fetched
        with pytest.raises(requests.exceptions.SSLError):
            with fetcher.open(f"https://other.example:{port}/a.png", allowed_origin=None, timeout=(2.0, 2.0), deadline=5.0):
                pass
    finally:
        server.shutdown()
        server.server_close()


def test_a_slow_drip_image_is_cut_off_at_the_publish_timeout_and_the_post_goes_out_without_it(tmp_path):
    with FeedServer() as images, FakeMastodon(token="tok-123456") as fake:
        images.override = Trickle(chunk=b"\x89PNG", interval=0.2, content_type="image/png")
        publisher = _mastodon(fake, tmp_path, GuardedFetcher())  # publish_timeout (1.0, 1.0): the image gets 1 s in all
        post = replace(sample_post(image=f"{images.url}/big.png"), source_origin=images.url)
        started = time.monotonic()
        publisher.publish(post)
        assert time.monotonic() - started < 5.0
        notes = publisher.take_notes()
        assert fake.statuses and not fake.media
        assert notes and "took longer than" in notes[0]


# --- kept-alive connections (issue 13) -----------------------------------------------------


class CountingServer:
    """A keep-alive HTTP/1.1 loopback server on ``host`` that counts the connections it accepts
    and the requests it answers (each with ``body``, or 304 when asked with If-None-Match). Stops by itself."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, body: bytes = b"<rss>ok</rss>", lifetime: float = 30.0) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        counter = self
        self.connections = 0
        self.requests = 0
        self.body = body

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                return

            def setup(self) -> None:
                super().setup()
                counter.connections += 1

            def do_GET(self) -> None:
                counter.requests += 1
                if self.headers.get("If-None-Match"):
                    self.send_response(304)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/rss+xml")
                self.send_header("Content-Length", str(len(counter.body)))
                self.end_headers()
                self.wfile.write(counter.body)

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self._timer = threading.Timer(lifetime, self.stop)
        self._timer.daemon = True
        self._timer.start()

    def stop(self) -> None:
        self._timer.cancel()
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> CountingServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _get(fetcher: GuardedFetcher, url: str, origin: str | None, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    with fetcher.open(url, allowed_origin=origin, headers=headers, timeout=(2.0, 2.0), deadline=5.0) as fetched:
        return fetched.response.status_code, read_capped(fetched, 1 << 20)


def test_several_fetches_reuse_one_kept_alive_connection():
    with CountingServer() as server:
        fetcher = GuardedFetcher()
        url = f"http://127.0.0.1:{server.port}/feed/"
        answers = [_get(fetcher, url, url) for _ in range(4)]
        answers.append(_get(fetcher, url, url, {"If-None-Match": '"v1"'}))
        answers.append(_get(fetcher, url, url))
        fetcher.close()
    assert answers == [(200, b"<rss>ok</rss>")] * 4 + [(304, b""), (200, b"<rss>ok</rss>")]
    assert server.requests == 6
    assert server.connections == 1


def test_an_idle_pooled_connection_lets_go_of_its_last_response():
    """http.client keeps a connection's last response (its headers) until the next request: with 1,000 feed
    hosts that is 1,000 responses held between polls. A connection back in its pool holds none, and is reused."""
    with CountingServer() as server:
        fetcher = GuardedFetcher()
        url = f"http://127.0.0.1:{server.port}/feed/"
        assert _get(fetcher, url, url) == (200, b"<rss>ok</rss>")
        [pool] = fetcher.pools._pools.values()
        idle = [conn for conn in pool.pool._items if conn is not None]  # type: ignore[union-attr]
        assert len(idle) == 1 and getattr(idle[0], "_HTTPConnection__response", "missing") is None
        assert _get(fetcher, url, url) == (200, b"<rss>ok</rss>")
        fetcher.close()
    assert server.connections == 1


def test_a_half_read_body_closes_its_connection_instead_of_pooling_it():
    with CountingServer(body=b"x" * 200_000) as server:
        fetcher = GuardedFetcher()
        url = f"http://127.0.0.1:{server.port}/feed/"
        with fetcher.open(url, allowed_origin=url, timeout=(2.0, 2.0), deadline=5.0) as fetched:
            assert fetched.response.raw.read1(10) != b""  # the rest is left unread
        assert _get(fetcher, url, url) == (200, b"x" * 200_000)
        fetcher.close()
    assert server.connections == 2


def test_a_kept_alive_connection_never_goes_to_an_address_other_than_the_checked_one():
    first = CountingServer("127.0.0.1")
    try:
        second = CountingServer("127.0.0.2", port=first.port)
    except OSError:
        first.stop()
        pytest.skip("127.0.0.2 is not usable on this machine")
    answer = ["127.0.0.1"]
    fetcher = GuardedFetcher(allow_private_hosts=["feed.example"], resolver=lambda host, port: list(answer))
    url = f"http://feed.example:{first.port}/feed/"
    try:
        assert _get(fetcher, url, None)[0] == 200
        answer[:] = ["127.0.0.2"]  # DNS now names another address: a new check, a new connection there
        assert _get(fetcher, url, None)[0] == 200
        answer[:] = ["127.0.0.1"]  # and back: the kept-alive connection to the first address serves it
        assert _get(fetcher, url, None)[0] == 200
        fetcher.close()
    finally:
        first.stop()
        second.stop()
    assert (first.requests, first.connections) == (2, 1)
    assert (second.requests, second.connections) == (1, 1)


def test_a_kept_alive_connection_does_not_skip_the_address_check():
    with CountingServer() as server:
        answer = ["127.0.0.1"]
        fetcher = GuardedFetcher(resolver=lambda host, port: list(answer))
        url = f"http://feed.example:{server.port}/feed/"
        assert _get(fetcher, url, url)[0] == 200  # the feed's own origin may be internal
        with pytest.raises(AddressRefusedError):  # as an image URL of another feed it may not, pooled or not
            _get(fetcher, url, "http://other.example/feed/")
        fetcher.close()
    assert server.requests == 1


def test_a_reused_connection_is_still_cut_off_at_the_deadline():
    with FeedServer([seed_item()]) as server:
        fetcher = GuardedFetcher()
        url = f"{server.url}/feed/"
        assert _get(fetcher, url, url)[0] == 200
        server.override = Trickle(chunk=b"x", interval=0.2)
        started = time.monotonic()
        with pytest.raises(FetchError, match="longer than"):
            with fetcher.open(url, allowed_origin=url, timeout=(1.0, 5.0), deadline=1.0) as fetched:
                read_capped(fetched, 1 << 20)
        assert time.monotonic() - started < 4.0
        fetcher.close()


def test_deadlines_share_one_watchdog_thread():
    with CountingServer() as server:
        fetcher = GuardedFetcher()
        url = f"http://127.0.0.1:{server.port}/feed/"
        before = threading.active_count()
        for _ in range(5):
            with fetcher.open(url, allowed_origin=url, timeout=(2.0, 2.0), deadline=5.0) as fetched:
                read_capped(fetched, 1 << 20)
                watchdogs = [t for t in threading.enumerate() if t.name == "autopublish-fetch-watchdog"]
                assert len(watchdogs) == 1
        assert threading.active_count() <= before + 1
        fetcher.close()
