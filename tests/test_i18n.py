"""Issue 18: every message an editor reads in the page's language, one page per article, the month at a glance.

Runs against the same real site as tests/test_web.py: a local feed server and one real
``run --once`` that posts two articles to two outbox channels.
"""

from __future__ import annotations

import html
import re
import sqlite3
import string
from pathlib import Path

import pytest
from flask import Flask

from autopublish.errors import PermanentError, TransientError
from autopublish.messages import ENGLISH, msg
from autopublish.models import DeliveryStatus
from autopublish.retry import RetryPolicy, decide
from autopublish.store import Store
from autopublish.web.i18n import MESSAGES, duration_text, say
from tests.helpers import outbox_lines, run_cli, sqlite_of
from tests.test_store import V1_SCHEMA
from tests.test_web import Site, delivery_ids, sign_in

PLATFORM_WORDS = "Facebook says the Page token has expired; create a new Page token"
SOURCE = Path(__file__).resolve().parent.parent / "autopublish"


def _fields(template: str) -> set[str]:
    return {name for _text, name, _spec, _conv in string.Formatter().parse(template) if name}


def test_every_code_has_an_english_and_an_indonesian_sentence_without_the_platforms_words() -> None:
    for code, english in ENGLISH.items():
        for language in ("en", "id"):
            sentence = MESSAGES[language].get(code)
            assert sentence, f"{code} has no {language} sentence"
            assert "{detail}" not in sentence, f"{language}/{code} would put the platform's words into the sentence"
            assert _fields(sentence) <= _fields(english), f"{language}/{code} uses parameters the code does not carry"


def test_every_code_the_source_emits_is_in_the_catalogue() -> None:
    used = set()
    for path in SOURCE.rglob("*.py"):
        used |= set(re.findall(r"\bmsg\(\s*\"([a-z_]+)\"", path.read_text(encoding="utf-8")))
    assert len(used) > 30
    assert used <= set(ENGLISH), sorted(used - set(ENGLISH))


def test_english_text_for_logs_is_as_before_and_the_sentence_is_translated() -> None:
    policy = RetryPolicy()
    decision = decide(PermanentError(PLATFORM_WORDS), tries=1, first_try_at=0.0, now=0.0, policy=policy, rand=0.0,
                      idempotent=False, can_read_back=True)
    assert str(decision.message) == f"Failed: {PLATFORM_WORDS}"
    sentence, detail = say("id", decision.message.code, decision.message.params_json(), str(decision.message))
    assert sentence == "Gagal: platform menolak unggahan ini dan akan menolaknya lagi." and detail == PLATFORM_WORDS
    waiting = decide(TransientError("the server is down"), tries=1, first_try_at=0.0, now=0.0, policy=policy, rand=0.0,
                     idempotent=False, can_read_back=True)
    assert str(waiting.message) == "the server is down; next try in 1m"
    assert say("id", waiting.message.code, waiting.message.params_json(), "")[0] == "Belum terunggah kali ini; coba lagi dalam 1 menit."
    assert duration_text("id", 2 * 86400 + 3 * 3600) == "2 hari 3 jam"


def test_an_unknown_code_or_damaged_parameters_fall_back_to_the_stored_english() -> None:
    assert say("id", "edited_by_someone_later", "{}", "Edited on the platform") == ("Edited on the platform", "")
    assert say("id", None, None, "Old English text") == ("Old English text", "")
    assert say("id", "failed_tries", "not json", "x")[0] == "Gagal setelah {tries} percobaan."


def test_an_older_database_gains_the_message_columns_and_keeps_its_events(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "state.db")
    db.executescript(V1_SCHEMA)
    db.execute("INSERT INTO events (at, kind, message) VALUES (1.0, 'failed', 'Failed: written by an older autopublish')")
    db.commit()
    db.close()
    with Store(tmp_path) as store:
        columns = {r[1] for r in sqlite_of(store).execute("PRAGMA table_info(events)")}
        assert {"code", "params"} <= columns
        event = store.events()[0]
        assert event["code"] is None and event["message"] == "Failed: written by an older autopublish"
        store.log_event("token_expiring", msg("token_expiring", channel="fb", date="2026-12-31", left_seconds=3 * 86400), channel="fb")
        newest = store.events()[0]
        assert newest["code"] == "token_expiring" and "3d from now" in newest["message"]
        assert "3 hari lagi" in say("id", newest["code"], newest["params"], newest["message"])[0]


def _fail(site: Site, channel: str) -> int:
    """An editor re-posts a posted delivery of ``channel``; the platform refuses it (recorded as the pipeline does)."""
    store = site.store()
    try:
        delivery = store.repost(delivery_ids(site, channel)[0], "web:ed")
        assert delivery is not None and store.claim(delivery)
        decision = decide(PermanentError(PLATFORM_WORDS), tries=1, first_try_at=0.0, now=0.0, policy=RetryPolicy(), rand=0.0,
                          idempotent=False, can_read_back=True)
        assert store.transition(delivery, decision.status, decision.message, expect=(DeliveryStatus.SENDING,))
    finally:
        store.close()
    return delivery


def test_reasons_on_the_page_are_in_the_readers_language_with_the_platforms_words_quoted(app: Flask, site: Site) -> None:
    _fail(site, "spare")
    quoted = f'<blockquote class="detail">{html.escape(PLATFORM_WORDS)}</blockquote>'
    indonesian = app.test_client()
    page = sign_in(indonesian, "siti")
    assert "Gagal: platform menolak unggahan ini dan akan menolaknya lagi." in page and quoted in page
    assert "Failed:" not in page
    activity = indonesian.get("/activity").get_data(as_text=True)
    assert "Gagal: platform menolak" in activity and "Artikel baru masuk antrean." in activity and "Terunggah." in activity
    english = sign_in(app.test_client(), "ed")
    assert "Failed: the platform refused this post and would refuse it again." in english and quoted in english


def test_action_results_and_pause_notes_are_in_the_readers_language(app: Flask, site: Site) -> None:
    client = app.test_client()
    page = sign_in(client, "siti")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    client.post("/channels/spare/pause", data={"csrf": csrf, "reason": "Token sedang diperbarui"})
    channels = client.get("/channels").get_data(as_text=True)
    assert "Kanal spare dijeda; unggahannya disimpan sampai dilanjutkan." in channels
    assert 'dijeda: Dijeda oleh web:siti, dengan catatan:</span><blockquote class="detail">Token sedang diperbarui</blockquote>' in channels


def test_one_page_tells_an_articles_whole_story(app: Flask, site: Site) -> None:
    failed = _fail(site, "spare")
    store = site.store()
    try:
        row = store.delivery(failed)
        assert row is not None
        article_id = row.article_id
        sent = [d for d in store.article_deliveries(article_id) if d.status == "sent"]
    finally:
        store.close()
    client = app.test_client()
    log = sign_in(client, "ed")
    assert f'href="/articles/{article_id}"' in log  # the publish log links to it
    page = client.get(f"/articles/{article_id}").get_data(as_text=True)
    # the text exactly as sent, kept at send time: the outbox recorded the same text
    texts = {line["text"] for channel in ("outbox", "spare") for line in outbox_lines(site.config_path, channel)}
    shown = [html.unescape(t) for t in re.findall(r'<pre class="post-text sent-text">(.*?)</pre>', page, re.S)]
    assert len(shown) == len(sent) == 2 and set(shown) <= texts
    # every event, oldest first: queued, then posting, then posted, then the retry and the failure
    story = [html.unescape(m).strip() for m in re.findall(r'<td><div class="reason">([^<]*)', page)]
    assert story.index("New article queued.") < story.index("Posting (try 1).") < story.index("Posted.")
    assert story[-1] == "Failed: the platform refused this post and would refuse it again."
    assert f'action="/deliveries/{failed}/retry"' in page and f'action="/deliveries/{failed}/repost"' in page  # its actions
    assert client.get("/articles/999999").status_code == 404


def test_channels_page_shows_the_last_30_days_as_inline_svg_with_tables(app: Flask, site: Site) -> None:
    _fail(site, "spare")
    client = app.test_client()
    sign_in(client, "siti")
    response = client.get("/channels")
    page = response.get_data(as_text=True)
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    charts = re.findall(r"<svg .*?</svg>", page, re.S)
    assert len(charts) == 3  # one per channel, one for delays
    for chart in charts:
        assert "<script" not in chart and "style=" not in chart and "href" not in chart
    outbox = re.search(r'<figure class="glance-channel" data-glance="outbox">(.*?)</figure>', page, re.S).group(1)  # type: ignore[union-attr]
    posted = [int(v) for v in re.findall(r"<td>(\d+)</td>", re.search(r'<tr class="sent">(.*?)</tr>', outbox).group(1))]  # type: ignore[union-attr]
    assert len(posted) == 30 and posted[-1] == 2 and sum(posted) == 2  # today's two posts, in the table beside the chart
    assert outbox.count('<rect class="sent"') == 1
    spare = re.search(r'<figure class="glance-channel" data-glance="spare">(.*?)</figure>', page, re.S).group(1)  # type: ignore[union-attr]
    assert "spare: 2 terunggah, 1 gagal, 0 ditahan dalam 30 hari terakhir." in spare
    delay = re.search(r'<tr data-delay="outbox">(.*?)</tr>', page, re.S).group(1)  # type: ignore[union-attr]
    cells = re.findall(r"<td>([^<]*)</td>", delay)
    assert len(cells) == 3 and cells[2] == "2" and "menit" in cells[0]  # published 5 and 10 minutes before the post


@pytest.mark.parametrize("lang", ["id_ID.UTF-8", "en_US.UTF-8"])
def test_cli_log_and_queue_follow_lang(site: Site, lang: str) -> None:
    failed = _fail(site, "spare")
    store = site.store()
    try:
        store.retry(failed, "test")
        assert store.claim(failed)
        decision = decide(TransientError(PLATFORM_WORDS), tries=1, first_try_at=0.0, now=0.0, policy=RetryPolicy(), rand=0.0,
                          idempotent=False, can_read_back=True)
        store.transition(failed, decision.status, decision.message, next_attempt_at=decision.next_attempt_at)
    finally:
        store.close()
    env = {**site.env, "LANG": lang, "LANGUAGE": "", "LC_ALL": "", "LC_MESSAGES": ""}
    log = run_cli(site.config_path, "log", env=env)
    queue = run_cli(site.config_path, "queue", env=env)
    assert log.exit_code == 0 and queue.exit_code == 0, log.output + queue.output
    if lang.startswith("id"):
        assert f"Gagal: platform menolak unggahan ini dan akan menolaknya lagi. “{PLATFORM_WORDS}”" in log.output
        assert f"Belum terunggah kali ini; coba lagi dalam 1 menit. “{PLATFORM_WORDS}”" in queue.output
        assert "menunggu" in queue.output
    else:
        assert f"Failed: {PLATFORM_WORDS}" in log.output
        assert f"{PLATFORM_WORDS}; next try in 1m" in queue.output


def test_alerts_logged_for_the_page_are_in_the_readers_language(app: Flask, site: Site) -> None:
    from autopublish.alerts import Alerter

    store = site.store()
    try:
        Alerter(site.config, store, {}).problem("paused:spare", msg("alert_paused", channel="spare", detail=PLATFORM_WORDS))
        assert store.alert_is_open("paused:spare")
    finally:
        store.close()
    client = app.test_client()
    sign_in(client, "siti")
    activity = client.get("/activity").get_data(as_text=True)
    assert "Kanal &#34;spare&#34; dijeda dan unggahannya disimpan." in activity
    assert f'<blockquote class="detail">{html.escape(PLATFORM_WORDS)}</blockquote>' in activity
    english = app.test_client()
    sign_in(english, "ed")
    assert "Channel &#34;spare&#34; is paused and its posts are kept." in english.get("/activity").get_data(as_text=True)
