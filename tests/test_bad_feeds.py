"""Nasty feed input over loopback: no crash, no hang past the timeouts, a clear per-feed error."""

from __future__ import annotations

import socket
import struct
import time
import tracemalloc

import pytest

from autopublish.errors import FeedError
from autopublish.feeds import FetchLimits, fetch_feed, parse_feed
from autopublish.netguard import GuardedFetcher
from tests.fakes.base import Response
from tests.fakes.feed_server import FeedServer, Trickle, older_items
from tests.helpers import run_cli, write_config

FAST = FetchLimits(timeout=(1.0, 0.5), deadline=1.5, max_bytes=10 * 1024 * 1024)


def _fetch_error(server: FeedServer, limits: FetchLimits = FAST) -> FeedError:
    with pytest.raises(FeedError) as info:
        fetch_feed(GuardedFetcher(), f"{server.url}/feed/", None, limits)
    return info.value


def test_a_50_mb_body_is_refused_without_reading_it():
    with FeedServer() as server:
        server.override = Response(200, b"<rss>" + b" " * (50 * 1024 * 1024), {"Content-Type": "application/rss+xml"})
        tracemalloc.start()
        error = _fetch_error(server)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert "larger than the 10 MB limit" in error.message
    assert peak < 5 * 1024 * 1024  # the client never held the body


def test_a_body_that_trickles_forever_hits_the_deadline():
    with FeedServer() as server:
        server.override = Trickle(interval=0.05)
        error = _fetch_error(server)
    assert "took longer than" in error.message


def test_a_server_that_never_answers_hits_the_read_timeout():
    with FeedServer() as server:
        server.override = Trickle(stall=True)
        error = _fetch_error(server)
    assert "stopped answering" in error.message


def test_billion_laughs_is_not_expanded():
    entities = "".join(f'<!ENTITY lol{i} "{(f"&lol{i - 1};" if i > 1 else "lol") * 10}">' for i in range(1, 10))
    body = f'<?xml version="1.0"?><!DOCTYPE lolz [{entities}]><rss version="2.0"><channel><title>&lol9;</title>' \
           '<item><title>Judul</title><link>https://example.go.id/a/</link></item></channel></rss>'
    tracemalloc.start()
    parsed = parse_feed(body.encode(), feed="site")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(parsed.title) < 1000 and [a.title for a in parsed.articles] == ["Judul"]
    assert peak < 50 * 1024 * 1024


def test_invalid_utf8_is_read_with_a_warning():
    body = b'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>t\xff</title>' \
           b'<item><title>Judul \xc3\x28 rusak</title><link>https://example.go.id/b/</link><guid>b</guid></item></channel></rss>'
    parsed = parse_feed(body, feed="site")
    assert len(parsed.articles) == 1 and parsed.warning


@pytest.mark.parametrize(
    ("override", "words"),
    [
        (Response(404, b"<html>Not found</html>", {"Content-Type": "text/html"}), "not found (404)"),
        (Response(410, b"", {}), "gone (410)"),
        (Response(500, b"<html>error</html>", {"Content-Type": "text/html"}), "HTTP 500"),
        (Response(302, b"", {"Location": "/feed/"}), "redirect"),
        (Response(200, b"<html><body>Maintenance</body></html>", {"Content-Type": "text/html"}), "web page"),
        (Trickle(interval=0.05), "took longer than"),
    ],
)
def test_the_daemon_logs_one_clear_reason_per_bad_feed_and_goes_on(tmp_path, override, words):
    """A bad feed fails alone: the good feed beside it is still read and posted."""
    with FeedServer() as bad, FeedServer(older_items(2)) as good:
        bad.override = override
        config = write_config(tmp_path / "autopublish.toml", f"{good.url}/feed/", settings='fetch_timeout = "1s"\nfetch_deadline = "2s"',
                              extra=f'\n[feeds.broken]\nurl = "{bad.url}/feed/"\nchannels = ["outbox"]\n')
        result = run_cli(config, "run", "--once")
        assert "feed site: ok" in result.output and "feed broken: failed" in result.output
        assert words in result.output and "Traceback" not in result.output
        assert result.exit_code == 0  # one feed failing is not an operational failure of the run


def test_a_client_hanging_up_is_not_printed_as_the_products_traceback(capsys):
    """The loopback server's own ConnectionResetError (a client resetting a kept-alive
    connection) must not land in captured output, where it would be counted against the product."""
    with FeedServer(older_items(1)) as server:
        for _ in range(3):
            client = socket.create_connection(("127.0.0.1", server.port), timeout=2)
            client.sendall(b"GET /feed/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert client.recv(12).startswith(b"HTTP/1.")
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            client.close()  # linger 0: a reset while the server waits for the next request
        time.sleep(0.3)
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out and server.server_errors == []
