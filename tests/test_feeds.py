"""Fetching and parsing feeds over loopback HTTP, including WordPress's 304 trap and bad input."""

from __future__ import annotations

import gzip
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from autopublish.errors import FeedError
from autopublish.feeds import FetchLimits, canonical_link, fetch_feed, parse_feed
from autopublish.netguard import GuardedFetcher
from tests.fakes.base import Response
from tests.fakes.feed_server import FeedServer, Item, older_items, seed_item

# A vendored subset (with its LICENSE) travels with the repository; the full corpus lives beside the
# checkout in ../shared and is optional: a fresh clone with nothing beside it still passes.
VENDORED_CORPUS = Path(__file__).resolve().parent / "data" / "feeds" / "feedparser-subset"
FULL_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "testdata" / "feeds" / "feedparser-corpus"


@pytest.fixture
def fetcher() -> GuardedFetcher:
    return GuardedFetcher()


def test_conditional_get_sends_validators_and_skips_unchanged(fetcher):
    with FeedServer(older_items(3)) as server:
        first = fetch_feed(fetcher, f"{server.url}/feed/", None)
        assert first.body and first.status == 200 and first.state.etag
        # The newest item is days old, so the WordPress guard does not apply: validators go out.
        second = fetch_feed(fetcher, f"{server.url}/feed/", first.state)
        assert second.body is None and second.status == 304 and second.sent_validators
        assert server.requests[-1].header("if-none-match") == first.state.etag


def test_wordpress_same_second_post_is_not_hidden_by_304(fetcher):
    """A post published in the same second as the previous fetch must still be seen."""
    second_start = datetime.fromtimestamp(int(time.time()), UTC)
    first_item = Item("Pertama", "https://example.go.id/a/", "g1", second_start, ["Berita"])
    with FeedServer([first_item]) as server:
        first = fetch_feed(fetcher, f"{server.url}/feed/", None)
        server.add(Item("Kedua, di detik yang sama", "https://example.go.id/b/", "g2", second_start + timedelta(milliseconds=500), ["Berita"]))
        # A naive client would send If-Modified-Since and get 304 (the server's clock has one-second resolution):
        naive = requests.get(f"{server.url}/feed/", headers={"If-Modified-Since": first.state.last_modified or ""}, timeout=5)
        assert naive.status_code == 304
        second = fetch_feed(fetcher, f"{server.url}/feed/", first.state)
        assert second.status == 200 and second.body is not None and not second.sent_validators
        titles = [a.title for a in parse_feed(second.body, feed="site").articles]
        assert "Kedua, di detik yang sama" in titles


def test_gzip_body_is_decoded(fetcher):
    with FeedServer([seed_item()]) as server:
        server.gzip = True
        result = fetch_feed(fetcher, f"{server.url}/feed/", None)
        assert parse_feed(result.body or b"", feed="site").articles[0].title.startswith("Mendampingi CRO")


@pytest.mark.parametrize(
    ("response", "words"),
    [
        (Response(404, b"<html>nope</html>", {"Content-Type": "text/html"}), "not found (404)"),
        (Response(410, b"gone"), "gone (410)"),
        (Response(500, b"oops"), "HTTP 500"),
        (Response(200, b"x" * (2 * 1024 * 1024), {"Content-Type": "application/rss+xml"}), "larger than"),
    ],
)
def test_bad_responses_are_clear_feed_errors(fetcher, response, words):
    with FeedServer() as server:
        server.override = response
        with pytest.raises(FeedError) as info:
            fetch_feed(fetcher, f"{server.url}/feed/", None, FetchLimits(max_bytes=1024 * 1024))
        assert words in info.value.message


def test_gzip_bomb_hits_the_size_cap(fetcher):
    bomb = gzip.compress(b"<rss>" + b" " * (30 * 1024 * 1024))
    with FeedServer() as server:
        server.override = Response(200, bomb, {"Content-Type": "application/rss+xml", "Content-Encoding": "gzip"})
        with pytest.raises(FeedError, match="larger than"):
            fetch_feed(fetcher, f"{server.url}/feed/", None, FetchLimits(max_bytes=1024 * 1024))


def test_redirect_loop_is_bounded(fetcher):
    with FeedServer() as server:
        server.override = Response(302, b"", {"Location": "/feed/"})
        with pytest.raises(FeedError, match="redirect"):
            fetch_feed(fetcher, f"{server.url}/feed/", None, FetchLimits(max_redirects=3))
        assert len(server.requests) == 4


def test_html_page_is_not_a_feed():
    with pytest.raises(FeedError, match="web page"):
        parse_feed(b"<!DOCTYPE html><html><head><title>Site</title></head><body>Hello</body></html>", feed="site", content_type="text/html")


def test_wordpress_rss_becomes_articles():
    body = (Path(__file__).resolve().parents[1] / "autopublish" / "samples" / "wordpress-feed.xml").read_bytes()
    parsed = parse_feed(body, feed="site")
    seed = next(a for a in parsed.articles if a.title.startswith("Mendampingi CRO"))
    assert seed.categories == ("Berita", "Jakarta Berketahanan", "Kegiatan")
    assert seed.key.endswith("?p=4204")
    assert seed.published is not None and seed.published.tzinfo is not None
    assert seed.image and seed.image.endswith("kunjungan-myanmar.jpg")
    assert "trackView" not in seed.content and "&amp;" not in seed.content and "&" in seed.content
    assert "\n\n" in seed.content  # paragraphs kept
    assert not seed.summary.endswith("[…]")
    assert parsed.title == "Jakarta Berketahanan" and seed.language == "id"


def test_json_feed_becomes_articles():
    feed = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": "Contoh",
        "items": [{"id": "1", "url": "https://example.go.id/x", "title": "Judul", "content_html": "<p>Isi &amp; lain</p><img src='https://example.go.id/i.png'>",
                   "date_published": "2026-11-27T10:00:00+07:00", "tags": ["Berita Kota"], "authors": [{"name": "Ani"}]}],
    }
    parsed = parse_feed(json.dumps(feed).encode(), feed="site", content_type="application/feed+json")
    article = parsed.articles[0]
    assert article.title == "Judul" and article.content == "Isi & lain" and article.author == "Ani"
    assert article.published == datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
    assert article.image == "https://example.go.id/i.png" and article.tags == ("Berita Kota",)


def test_entry_without_link_or_id_does_not_crash():
    body = b"<rss version='2.0'><channel><title>t</title><item><title>Only a title</title></item><item></item></channel></rss>"
    parsed = parse_feed(body, feed="site")
    assert [a.title for a in parsed.articles] == ["Only a title"]
    assert parsed.articles[0].key.startswith("hash:")


def test_canonical_link_ignores_noise():
    same = {
        canonical_link("http://Example.go.id:80/berita/a/?utm_source=fb&fbclid=1#top"),
        canonical_link("https://example.go.id/berita/a"),
        canonical_link("https://www.example.go.id/berita/a/"),
    }
    assert len(same) == 1
    assert canonical_link("https://example.go.id/berita/b") not in same


def corpus_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and p.name not in ("LICENSE", "NOTICE.md")]


def assert_parses_without_an_exception(files: list[Path]) -> None:
    errors = 0
    for path in files:
        try:
            parse_feed(path.read_bytes(), feed="corpus")
        except FeedError:
            errors += 1  # a clear per-feed error is fine; any other exception fails the test
    assert errors < len(files)


def test_every_vendored_corpus_file_parses_without_an_exception():
    assert (VENDORED_CORPUS / "LICENSE").is_file() and (VENDORED_CORPUS / "NOTICE.md").is_file()
    files = corpus_files(VENDORED_CORPUS)
    kinds = {p.relative_to(VENDORED_CORPUS).parts[0] for p in files}
    assert len(files) >= 40 and {"encoding", "entities", "illformed", "json", "wellformed"} <= kinds
    assert_parses_without_an_exception(files)


def test_every_corpus_file_parses_without_an_exception():
    if not FULL_CORPUS.is_dir():
        pytest.skip(f"the full feedparser corpus is optional and absent here ({FULL_CORPUS})")
    files = corpus_files(FULL_CORPUS)
    assert len(files) > 2000
    assert_parses_without_an_exception(files)
