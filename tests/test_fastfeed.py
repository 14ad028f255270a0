"""The lxml fast path yields exactly feedparser's articles wherever it accepts a feed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from autopublish.fastfeed import parse_fast
from tests.fakes.feed_server import Item, older_items, render_rss, seed_item
from tests.feed_equivalence import compare

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "testdata" / "feeds" / "feedparser-corpus"
VENDORED = ROOT / "tests" / "data" / "feeds"

ATOM = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="en-GB">
  <title type="text">Example &#8211; news</title>
  <link rel="alternate" type="text/html" href="https://example.org/"/>
  <link rel="self" href="https://example.org/feed/atom/"/>
  <link rel="hub" href="https://pubsubhubbub.example.net/"/>
  <entry>
    <title type="html">Caf\xc3\xa9 &lt;em&gt;opens&lt;/em&gt;</title>
    <link rel="alternate" type="text/html" href="https://example.org/2026/cafe/"/>
    <link rel="replies" type="application/atom+xml" href="https://example.org/2026/cafe/feed/"/>
    <id>tag:example.org,2026:cafe</id>
    <published>2026-11-30T08:00:00+07:00</published>
    <updated>2026-11-30T09:30:00Z</updated>
    <author><name>Sari</name></author>
    <category term="Kota" label="Kota"/>
    <summary type="html">&lt;p&gt;A new caf&amp;eacute; &lt;img src="https://example.org/c.jpg" alt="cup"&gt; by the river.&lt;/p&gt;</summary>
    <content type="html">&lt;p&gt;Long text&lt;/p&gt;&lt;script&gt;x()&lt;/script&gt;</content>
  </entry>
</feed>"""


def _wordpress_like() -> bytes:
    now = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    items = [seed_item(now), *older_items(5, now)]
    items.append(Item("Gambar & teks", "https://example.org/gambar/", "g-img", now - timedelta(hours=3), ["Foto"],
                      "Ringkasan singkat", '<p>Isi <img src="https://example.org/a.png" alt="peta"></p>', image="https://example.org/a.png"))
    return render_rss(items)


@pytest.mark.parametrize("name, body, content_type", [
    ("wordpress sample", (ROOT / "autopublish" / "samples" / "wordpress-feed.xml").read_bytes(), "application/rss+xml; charset=UTF-8"),
    ("generated WordPress feed", _wordpress_like(), "application/rss+xml; charset=UTF-8"),
    ("atom", ATOM, "application/atom+xml"),
    ("WordPress feed with a site icon", (ROOT / "autopublish" / "samples" / "wordpress-feed.xml").read_bytes().replace(
        b"<channel>", b"<channel><image><url>https://example.org/icon-32x32.png</url><title>Another title</title>"
                      b"<link>https://example.org/other/</link><width>32</width><height>32</height></image>", 1),
     "application/rss+xml; charset=UTF-8"),
])
def test_fast_path_takes_plain_feeds_and_matches_feedparser(name, body, content_type):
    accepted, problems = compare(body, content_type)
    assert accepted, f"the fast path declined the {name}"
    assert problems == []
    if name == "atom":  # the feed's own links (push needs them) come through the fast path too
        from autopublish.feeds import parse_feed

        parsed = parse_feed(body, feed="f", content_type=content_type)
        assert (parsed.home, parsed.hub, parsed.self_url) == ("https://example.org/", "https://pubsubhubbub.example.net/",
                                                              "https://example.org/feed/atom/")


@pytest.mark.parametrize("body, content_type", [
    (b'<?xml version="1.0" encoding="iso-8859-1"?><rss version="2.0"><channel><title>x</title></channel></rss>', ""),
    (b'<rss version="2.0"><channel><title>x</title></channel></rss>', "text/xml"),  # RFC 3023: us-ascii
    (b'<!DOCTYPE rss [<!ENTITY e "x">]><rss version="2.0"><channel><title>&e;</title></channel></rss>', ""),
    (b'<rss version="2.0"><channel><item><title>t</title><dc:date xmlns:dc="http://purl.org/dc/elements/1.1/">2026-01-01</dc:date></item></channel></rss>', ""),
    (b'<rss version="2.0"><channel><item><title>t</title><link>/relative/</link></item></channel></rss>', ""),
    (b'<rss version="0.91"><channel><item><title>t</title></item></channel></rss>', ""),
    (b'<rss version="2.0"><channel><item><title>unclosed</item></channel></rss>', ""),
    (b'<rss version="2.0"><channel xml:base="https://example.org/"><item><title>t</title></item></channel></rss>', ""),
    (b'<rss version="2.0" xml:lang="en"><channel><item><title>t</title></item></channel></rss>', ""),
    (b'<feed xmlns="http://www.w3.org/2005/Atom"><entry xml:lang="de"><title>t</title><link href="https://example.org/a"/></entry></feed>', ""),
])
def test_anything_unusual_goes_to_feedparser(body, content_type):
    assert parse_fast(body, content_type) is None


def _check_files(paths: list[Path]) -> int:
    accepted, mismatches = 0, []
    for path in paths:
        ok, problems = compare(path.read_bytes())
        accepted += ok
        if problems:
            mismatches.append(f"{path.name}: {problems[:3]}")
    assert mismatches == [], "\n".join(mismatches[:20])
    return accepted


def test_vendored_feeds_match_feedparser():
    paths = [p for p in sorted(VENDORED.rglob("*")) if p.is_file() and p.suffix in (".xml", ".rss", ".atom", ".rdf")] if VENDORED.is_dir() else []
    paths.append(ROOT / "autopublish" / "samples" / "wordpress-feed.xml")
    assert _check_files(paths) >= 1


@pytest.mark.skipif(not CORPUS.is_dir(), reason="feedparser's corpus (../shared/testdata/feeds/feedparser-corpus) is not beside this checkout")
def test_corpus_matches_feedparser_wherever_the_fast_path_accepts():
    paths = [p for p in sorted(CORPUS.rglob("*")) if p.is_file() and p.suffix in (".xml", ".rss", ".atom", ".rdf")]
    assert len(paths) > 1500
    assert _check_files(paths) > 200  # it really takes plain feeds, not only declines


@pytest.mark.parametrize("text", [
    "plain words", "two  spaces", "tab\there", "nb\u00a0sp", " lead and trail ", "a\r\nb", "a\rb", "x\n\n\n\ny",
    "x\n \n\t\ny", "\n\n", "a\n\nb", "a \n b", "\u2028odd\u2028", "a\x0bb\x0cc", "a\n\u00a0\n\nb", "",
])
def test_faster_tidy_gives_the_same_text(text):
    import re

    from autopublish import textify

    def reference(value: str) -> str:  # textify._tidy before the shortcuts
        lines = [re.sub(r"[ \t\r\f\v\u00a0]+", " ", line).strip() for line in value.replace("\r\n", "\n").split("\n")]
        return re.sub(r"\n\s*\n(\s*\n)*", "\n\n", "\n".join(lines)).strip()

    assert textify._tidy(text) == reference(text)


@pytest.mark.parametrize("text", ["Tom &amp; Jerry", "caf&eacute; &#8230; &#x2026;", "a & b", "&amp", "x &notanentity; y", "&ampx",
                                  "tail &", "&#0; &#xD800; &#1114112;", "  spaced   &nbsp; out  "])
def test_text_without_tags_is_read_as_the_parser_reads_it(text):
    from autopublish import textify

    parser = textify._TextParser()
    parser.feed(text)
    parser.close()
    assert textify.html_to_text(text) == textify._tidy("".join(parser.parts))


@pytest.mark.parametrize("text", [
    "plain", "  padded  ", "a\nb", "a\r\nb\rc", "tab\there", "esc \x1b[31mred", "del\x7f", "c1 \x85 \x9b", "nb\u00a0sp",
    "line\u2028sep\u2029", "lone \ud800 surrogate", "é ünïcode 日本", "", "\n", "\x00",
])
def test_feed_text_cleaning_shortcut_changes_nothing(text):
    from autopublish import feedtext

    def text_reference(value: str) -> str:
        value = feedtext._SURROGATES.sub("\ufffd", value)
        value = value.replace("\r\n", "\n").replace("\r", "\n")
        return feedtext._CONTROLS.sub("", value)

    def line_reference(value: str) -> str:
        value = feedtext._SURROGATES.sub("\ufffd", value)
        value = feedtext._LINE_BREAKS.sub(" ", value)
        return feedtext._CONTROLS.sub("", value).strip()

    assert feedtext.clean_text(text) == text_reference(text)
    assert feedtext.clean_line(text) == line_reference(text)
