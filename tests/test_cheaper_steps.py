"""The CPU cuts of issue 13's first cycle change no output: one-line text, batched article inserts."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from autopublish.models import Article, DeliveryStatus
from autopublish.store import Store, article_from_json
from autopublish.textify import _tidy, html_to_text

_SPACES = re.compile(r"[ \t\r\f\v\u00a0]+")
_MANY_BREAKS = re.compile(r"\n\s*\n(\s*\n)*")


def _tidy_general(text: str) -> str:
    """The general multi-line path, as it was before the one-line shortcut."""
    lines = [_SPACES.sub(" ", line).strip() for line in text.replace("\r\n", "\n").split("\n")]
    return _MANY_BREAKS.sub("\n\n", "\n".join(lines)).strip()


@pytest.mark.parametrize("text", [
    "", " ", "Kunjungan CRO Myanmar", "  padded  ", "a\tb", "a  b", "a\u00a0\u00a0b", "\u2028line sep\u2028", "form\x0cfeed",
    "vt\x0bx", "\x1cfile sep\x1d", "trailing nbsp\u00a0", "\u3000ideographic\u3000", "a \u2029 b", "\u00a0", "x" * 300,
    "multi\nline", "cr\ronly", "crlf\r\nend", "a\n\n\n\nb",
])
def test_the_one_line_shortcut_gives_what_the_general_path_gives(text):
    assert _tidy(text) == _tidy_general(text)
    assert html_to_text(f"<b>{text}</b>") == _tidy_general(text)


def _rows(store: Store, sql: str, *params: object) -> list[tuple[object, ...]]:
    with store.db.read() as conn:
        return [tuple(row) for row in conn.exec_driver_sql(sql, params)]


def test_articles_without_deliveries_are_stored_in_order_with_the_same_rows(database):
    store = Store(database, clock=lambda: 1_000.0, migrate=True)
    when = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
    articles = [Article(feed="site", key=f"k{i}", link=f"https://example.org/{i}/", title=f"T{i} é", published=when if i % 2 else None,
                        categories=("a", "b")) for i in range(6)]
    items = [(a, f"example.org/{i}", [("outbox", DeliveryStatus.QUEUED, "New article queued")] if i == 3 else [])
             for i, a in enumerate(articles)]
    items.append((articles[1], "example.org/1", []))  # a repeat within the call is skipped
    created = store.record_articles("site", items)
    rows = _rows(store, "SELECT id, key, canonical, link, title, published, first_seen_at, data FROM articles ORDER BY id")
    assert [r[1] for r in rows] == [f"k{i}" for i in range(6)]  # the feed's order, the article with a delivery in its place
    assert [r[2] for r in rows] == [f"example.org/{i}" for i in range(6)]
    assert [r[5] for r in rows] == [when.timestamp() if i % 2 else None for i in range(6)]
    assert {r[6] for r in rows} == {1_000.0}
    assert [article_from_json(r[7]) for r in rows] == articles
    [delivery] = created
    assert store.delivery(delivery).article_id == rows[3][0]
    assert store.record_articles("site", items) == []  # all known now
    assert _rows(store, "SELECT COUNT(*) FROM articles")[0][0] == 6
    store.close()


_LINKS = [
    "https://jakberketahanan.example.go.id/2026/11/27/mendampingi-cro-kunjungan-myanmar-cordaid/",
    "http://www.example.org/a//b///", "https://www./x", "https://./", "http://example.org", "https://example.org/",
    "https://EXAMPLE.org/A/", "https://example.org:443/a", "http://example.org:80/a", "https://example.org:8443/a/",
    "https://example.org/a?utm_source=x&b=2&a=1", "https://example.org/a#frag", "https://user:pw@example.org/a",
    " https://example.org/padded/ ", "https://example.org/%E2%9C%93/", "https://example.org/a:b@c;d=e,f/", "https://www.www.example.org/",
    "https://example.org.", "https://example.org./a", "ftp://example.org/a", "https://[::1]/a", "https://example.org/a b",
    "https://exa_mple.org/a", "https:/example.org/a", "https://example.org/~user/(x)*+!$&'/", "//example.org/a", "https://", "",
    "https://example.org/a\tb", "https://xn--bcher-kva.example/a", "HTTPS://example.org/a", "https://-.-/--/",
]


@pytest.mark.parametrize("url", _LINKS)
def test_the_plain_link_shortcut_gives_what_the_full_parse_gives(url):
    from autopublish.feeds import _canonical_link_parsed, canonical_link

    assert canonical_link(url) == _canonical_link_parsed(url)


def test_the_plain_link_shortcut_on_random_links():
    import random

    from autopublish.feeds import _canonical_link_parsed, canonical_link

    rng = random.Random(13)
    parts = ["http://", "https://", "www.", "a", "B", ".", "-", "/", "//", ":", "8080", "?", "q=1", "#", "%2F", "~", "@", " ", "_", "é"]
    for _ in range(20_000):
        url = rng.choice(["http://", "https://", ""]) + "".join(rng.choice(parts) for _ in range(rng.randint(1, 9)))
        assert canonical_link(url) == _canonical_link_parsed(url), url
