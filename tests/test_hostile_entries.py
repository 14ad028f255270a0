"""Hostile entries: one unreadable entry is skipped and named; the rest of the feed, and every other feed, go on."""

from __future__ import annotations

import json
from dataclasses import replace
from types import SimpleNamespace

import pytest

from autopublish.app import open_app
from autopublish.config import load_config
from autopublish.feeds import parse_feed
from autopublish.feedtext import clean_line, clean_text
from autopublish.metrics import health
from tests.fakes.base import Response
from tests.fakes.feed_server import FeedServer, Item, older_items, seed_item
from tests.helpers import run_cli, write_config

GOOD = {"id": "good-1", "url": "https://example.go.id/good-1/", "title": "Berita baik", "content_text": "Isi.",
        "date_published": "2026-11-27T08:00:00+07:00"}


def json_feed(*items: object) -> bytes:
    return json.dumps({"version": "https://jsonfeed.org/version/1.1", "title": "Situs", "items": list(items)}).encode()


def test_a_date_out_of_range_skips_only_that_entry_and_names_it():
    bad = {**GOOD, "id": "far-future", "date_published": "9999-12-31T23:59:59-14:00"}
    parsed = parse_feed(json_feed(bad, GOOD), feed="site")
    assert [a.key for a in parsed.articles] == ["good-1"]
    assert len(parsed.skipped) == 1 and '"far-future"' in parsed.skipped[0] and "out of the range of dates" in parsed.skipped[0]


def test_deep_nesting_in_one_entry_skips_only_that_entry():
    deep = '{"id": "deep", "title": "x", "_ext": ' + "[" * 100_000 + "]" * 100_000 + "}"
    body = ('{"version": "https://jsonfeed.org/version/1.1", "title": "Situs", "items": [' + deep + ", "
            + json.dumps(GOOD) + "]}").encode()
    parsed = parse_feed(body, feed="site")
    assert [a.key for a in parsed.articles] == ["good-1"]
    assert parsed.skipped == ("entry 1: it is nested too deeply",)


@pytest.mark.parametrize(("field", "value", "words"), [
    ("id", {"a": 1}, '"id" is not text'),
    ("title", ["a", "b"], '"title" is not text'),
    ("attachments", 5, '"attachments" is not a list'),
    ("tags", "Berita", '"tags" is not a list'),
    ("date_published", 20261127, '"date_published" is not text'),
])
def test_a_field_of_the_wrong_type_skips_the_entry(field, value, words):
    bad = {**GOOD, "id": "wrong", field: value}
    parsed = parse_feed(json_feed(bad, {**GOOD, "id": "good-2", "url": "https://example.go.id/good-2/"}), feed="site")
    assert [a.key for a in parsed.articles] == ["good-2"]
    assert len(parsed.skipped) == 1 and words in parsed.skipped[0]


def test_lone_surrogates_are_replaced_and_the_article_can_be_stored(tmp_path):
    body = b'{"version": "https://jsonfeed.org/version/1.1", "title": "S\\ud800", "items": [' \
           b'{"id": "sur\\udfff", "url": "https://example.go.id/s/", "title": "Judul \\ud83d rusak", "content_text": "Isi \\udc00."}]}'
    parsed = parse_feed(body, feed="site")
    article = parsed.articles[0]
    assert article.title == "Judul \ufffd rusak" and article.key == "sur\ufffd" and parsed.title == "S\ufffd"
    for text in (article.title, article.summary, article.content, article.key):
        text.encode("utf-8")  # would raise on a lone surrogate


def test_control_characters_and_terminal_escapes_are_stripped():
    body = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>Situs</title>
    <item><title>Merah&#27;[31m
    palsu&#x7;</title><link>https://example.go.id/c/</link><guid>c</guid>
    <description>Baris satu&#27;]0;judul&#7;
Baris dua</description></item></channel></rss>"""
    article = parse_feed(body, feed="site").articles[0]
    assert "\x1b" not in article.title and "\n" not in article.title and "\x07" not in article.title
    assert article.title == "Merah[31m palsu"
    assert "\x1b" not in article.summary and "\x07" not in article.summary


def test_clean_line_and_clean_text():
    assert clean_line("a\r\nb\tc\u2028d\x1b[2Je") == "a b c d[2Je"
    assert clean_text("a\r\nb\x00\x9bc\ud800") == "a\nbc\ufffd"


def test_run_once_survives_a_hostile_entry_and_the_publish_log_names_it(tmp_path):
    bad = {**GOOD, "id": "far-future", "date_published": "9999-12-31T23:59:59-14:00"}
    with FeedServer() as jsonsite, FeedServer(older_items(2)) as other:
        jsonsite.override = Response(200, json_feed(bad, GOOD), {"Content-Type": "application/feed+json"})
        config = write_config(tmp_path / "autopublish.toml", f"{jsonsite.url}/feed/", first_run="all", max_age="off",
                              extra=f'\n[feeds.other]\nurl = "{other.url}/feed/"\nchannels = ["outbox"]\n')
        result = run_cli(config, "run", "--once")
        assert result.exit_code == 0, result.output
        assert "feed site: ok" in result.output and "feed other: ok" in result.output
        assert "posted 3" in result.output  # the good JSON entry and both entries of the other feed
        log = run_cli(config, "log", "--format", "json")
        events = [json.loads(line) for line in log.output.splitlines()]
        named = [e for e in events if e["event"] == "bad_entry"]
        assert len(named) == 1 and "far-future" in named[0]["reason"] and named[0]["feed"] == "site"
        # polled again with the same bad entry: named once, not on every poll
        jsonsite.override = Response(200, json_feed(bad, GOOD, {**GOOD, "id": "good-3", "url": "https://example.go.id/g3/"}),
                                     {"Content-Type": "application/feed+json"})
        run_cli(config, "run", "--once")
        events = [json.loads(line) for line in run_cli(config, "log", "--format", "json").output.splitlines()]
        assert len([e for e in events if e["event"] == "bad_entry"]) == 1


def test_an_unexpected_error_is_recorded_on_that_feed_and_never_stops_the_others(tmp_path, monkeypatch):
    """A bug (played by a parser that raises) fails its feed: last error, failing /healthz, an alert after feed_down_after."""
    import autopublish.intake as pipeline_module

    real_parse = pipeline_module.parse_feed

    def parse_or_fail(body: bytes, *, feed: str, **kwargs: object):  # type: ignore[no-untyped-def]
        if feed == "site":
            raise ZeroDivisionError("a bug")
        return real_parse(body, feed=feed, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(pipeline_module, "parse_feed", parse_or_fail)
    problems: list[tuple[str, str]] = []
    notifier = SimpleNamespace(problem=lambda key, message: problems.append((key, message)), resolved=lambda key, message: None)
    clock = [1_800_000_000.0]
    with FeedServer([seed_item()]) as site, FeedServer(older_items(2)) as other:
        config_path = write_config(tmp_path / "autopublish.toml", f"{site.url}/feed/", settings='feed_down_after = "1h"',
                                   extra=f'\n[feeds.other]\nurl = "{other.url}/feed/"\nchannels = ["outbox"]\n')
        app = open_app(load_config(config_path, {}, cwd=tmp_path), clock=lambda: clock[0], notifier=notifier)  # type: ignore[arg-type]
        try:
            results = {r.feed: r for r in app.pipeline.poll_all()}
            assert not results["site"].ok and results["other"].ok
            row = app.store.feed("site")
            assert row is not None and "unexpected error (ZeroDivisionError)" in (row.last_error or "")
            assert problems == []
            clock[0] += 2 * 3600
            app.pipeline.poll_all()
            assert [key for key, _ in problems] == ["feed:site"]
            daemon = SimpleNamespace(scheduler=SimpleNamespace(running=True), failed_state=None, pipeline=app.pipeline)
            monkeypatch.setattr("autopublish.metrics.time.time", lambda: clock[0])
            status, body = health(daemon)  # type: ignore[arg-type]
            assert status == 503 and "site" in body["reason"]
        finally:
            app.close()


def test_a_bug_while_recording_one_feed_undoes_only_that_feeds_writes(tmp_path, monkeypatch):
    """Polls are recorded in batches without a savepoint per feed; a feed whose recording fails is undone
    (its articles were already written) and the batch recorded again, so the feeds beside it keep theirs."""
    def items(site: str, count: int) -> list[Item]:  # each site its own links: a canonical link is known across feeds
        return [replace(item, link=item.link.replace("jakberketahanan.", f"{site}."), guid=f"{site}-{n}") for n, item in enumerate(older_items(count))]

    with FeedServer(items("site", 2)) as site, FeedServer(items("other", 2)) as other, FeedServer(items("third", 3)) as third:
        config_path = write_config(tmp_path / "autopublish.toml", f"{site.url}/feed/",
                                   extra=f'\n[feeds.other]\nurl = "{other.url}/feed/"\nchannels = ["outbox"]\n'
                                         f'\n[feeds.third]\nurl = "{third.url}/feed/"\nchannels = ["outbox"]\n')
        app = open_app(load_config(config_path, {}, cwd=tmp_path))
        real_record_poll_ok = app.store.record_poll_ok
        calls: list[str] = []

        def fail_for_site(name: str, **kwargs: object) -> None:
            calls.append(name)
            if name == "site":
                raise ZeroDivisionError("a bug")  # after its articles and baseline were written in this batch
            real_record_poll_ok(name, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(app.store, "record_poll_ok", fail_for_site)
        try:
            results = {r.feed: r for r in app.pipeline.poll_all()}
            assert not results["site"].ok and "unexpected error (ZeroDivisionError)" in results["site"].message
            assert (results["other"].ok, results["other"].new, results["third"].ok, results["third"].new) == (True, 2, True, 3)
            assert calls.count("site") == 2  # the batch without savepoints, then again with them
            assert app.store.known_keys("site", ["site-0", "site-1"], []) == (set(), set())  # undone: no article, no baseline
            assert app.store.feed("site").baseline_at is None  # type: ignore[union-attr]
            assert "unexpected error (ZeroDivisionError)" in (app.store.feed("site").last_error or "")  # type: ignore[union-attr]
            assert app.store.known_keys("third", ["third-0", "third-1", "third-2"], [])[0] == {"third-0", "third-1", "third-2"}
        finally:
            app.close()


def test_an_alert_e_mail_with_line_breaks_in_its_text_gets_a_one_line_subject(tmp_path):
    from autopublish.alerts import Alerter
    from autopublish.store import Store
    from tests.test_alerts import FakeSMTP

    with FakeSMTP() as smtp:
        config_path = write_config(tmp_path / "autopublish.toml", "https://example.go.id/feed/",
                                   extra=f'\n[alerts]\nemail = ["admin@example.org"]\n\n[smtp]\nhost = "127.0.0.1"\nport = {smtp.port}\n'
                                         'starttls = false\n')
        config = load_config(config_path, {}, cwd=tmp_path)
        with Store(config.state_dir) as store:
            Alerter(config, store, {}).problem("config", "The configuration has 2 problems:\n  - a\r\nBcc: victim@example.org\n  - b")
    assert len(smtp.messages) == 1
    import email
    import email.policy

    message = email.message_from_string(str(smtp.messages[0]["data"]), policy=email.policy.default)
    assert " ".join(str(message["Subject"]).split()) == "autopublish: The configuration has 2 problems: - a Bcc: victim@example.org - b"
    assert message["Bcc"] is None
