"""Threads adapter against the loopback Threads fake: posting, errors, quota, read-back, length."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from autopublish.errors import AuthError, PermanentError, RateLimitedError, TransientError, UncertainError
from autopublish.platforms.meta.threads import ThreadsOptions, ThreadsPublisher, threads_length
from tests.contract import CANARY, errors_under_faults, publish_when_ready, sample_post
from tests.fakes.threads import CONTRACT, TIMESTAMP_FORMAT, ThreadsFake, graph_error
from tests.platforms.meta_setup import (
    KINDS_IN_ORDER,
    THREADS,
    assert_canary_kept_out,
    assert_check_names_account_and_quota,
    error_from_graph,
    issue_channel_keys,
    meta_fixtures,
    requests_to,
)

LINK = "https://example.go.id/berita/myanmar-cordaid/"


fake, publisher = meta_fixtures(ThreadsFake, CONTRACT, ThreadsPublisher)
creates, publishes = THREADS.creates, THREADS.publishes


# --- posting ---------------------------------------------------------------------------
def test_text_post_attaches_the_article_link(fake, publisher):
    receipt = publish_when_ready(publisher, sample_post(), fake)
    [create] = requests_to(fake, creates)
    assert create.form["media_type"] == ["TEXT"]
    assert create.form["link_attachment"] == [LINK]
    assert "image_url" not in create.form
    assert create.form["text"][0].startswith("Mendampingi CRO")
    [item] = fake.media
    assert receipt.remote_id == item["id"]
    assert receipt.url == item["permalink"] and receipt.url.startswith("https://www.threads.net/@")
    assert item["link_attachment_url"] == LINK


def test_token_travels_in_the_form_body_never_in_a_post_url(fake, publisher):
    publish_when_ready(publisher, sample_post(), fake)
    for request in fake.requests:
        if request.method == "POST":
            assert "access_token" not in request.query
            assert request.form["access_token"] == [CANARY]


def test_image_post_is_published_once_its_container_is_ready(fake, publisher):
    receipt = publish_when_ready(publisher, sample_post(image=fake.image_url()), fake)
    [create] = requests_to(fake, creates)
    assert create.form["media_type"] == ["IMAGE"]
    assert create.form["image_url"] == [fake.image_url()]
    assert create.form["alt_text"] == ["Delegasi Myanmar di Balai Kota"]
    assert "link_attachment" not in create.form
    assert receipt.remote_id == fake.media[0]["id"]
    assert fake.media[0]["media_type"] == "IMAGE"


def test_image_post_without_the_link_in_its_text_goes_out_as_text_with_a_card(fake, publisher):
    publish_when_ready(publisher, sample_post(image=fake.image_url(), text="Kunjungan delegasi Myanmar"), fake)
    [create] = requests_to(fake, creates)
    assert create.form["media_type"] == ["TEXT"] and create.form["link_attachment"] == [LINK]


def test_image_that_threads_cannot_fetch_falls_back_to_a_text_post(fake, publisher):
    fake.image_fails = True
    publish_when_ready(publisher, sample_post(image=fake.image_url()), fake)
    assert [r.form["media_type"][0] for r in requests_to(fake, creates)] == ["IMAGE", "TEXT"]
    assert len(fake.media) == 1 and fake.media[0]["media_type"] == "TEXT"


def test_permalink_read_failure_does_not_fail_the_publish(fake, publisher):
    fake.permalink_fails = True
    receipt = publish_when_ready(publisher, sample_post(), fake)
    assert receipt.remote_id == fake.media[0]["id"]
    assert receipt.url is None
    assert len(fake.media) == 1


# --- quota -------------------------------------------------------------------------------
def test_used_up_quota_is_respected_until_the_window_frees(fake, publisher):
    fake.quota_total = 2
    fake.quota_used = 2
    stamp = (datetime.now(UTC) - timedelta(hours=23)).strftime(TIMESTAMP_FORMAT)
    fake.add_media("older post", timestamp=stamp)
    fake.add_media("newer post")
    with pytest.raises(RateLimitedError) as info:
        publish_when_ready(publisher, sample_post(), fake)
    assert 3000 < info.value.retry_after <= 3700  # the 23-hour-old post leaves the window in ~1 h
    assert "250" not in info.value.message and "2 posts per 24 hours" in info.value.message
    assert requests_to(fake, creates) == []


def test_quota_error_from_publish_without_readable_history_waits_an_hour(fake, publisher):
    fake.inject(graph_error(400, "You reached the maximum number of posts", 9, subcode=2207042), publishes)
    with pytest.raises(RateLimitedError) as info:
        publish_when_ready(publisher, sample_post(), fake)
    assert info.value.retry_after == 3600
    assert fake.media == []


# --- error mapping -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("step", "status", "code", "subcode", "expected"),
    [
        (creates, 400, 190, 463, AuthError),
        (publishes, 400, 190, None, AuthError),
        (creates, 403, 10, None, AuthError),
        (publishes, 400, 200, None, AuthError),
        (creates, 400, 4, None, RateLimitedError),
        (publishes, 400, 17, None, RateLimitedError),
        (publishes, 400, 32, None, RateLimitedError),
        (publishes, 400, 613, None, RateLimitedError),
        (creates, 500, 1, None, TransientError),
        (creates, 500, 2, None, TransientError),
        (publishes, 500, 2, None, UncertainError),
        (publishes, 400, 1, None, UncertainError),
        (creates, 400, 100, None, PermanentError),
        (publishes, 400, 100, 2207051, PermanentError),
    ],
)
def test_graph_error_codes_map_to_the_core_vocabulary(fake, publisher, step, status, code, subcode, expected):
    error = error_from_graph(publisher, fake, sample_post(), step, status, code, subcode, transient=code in (1, 2))
    assert type(error) is expected
    assert error.code == code
    if isinstance(error, RateLimitedError):
        assert error.retry_after and error.retry_after > 0
    assert fake.media == []


def test_expired_token_tells_the_admin_what_to_do(fake, publisher):
    fake.inject(graph_error(400, "Error validating access token: Session has expired", 190, subcode=463), creates)
    with pytest.raises(AuthError) as info:
        publish_when_ready(publisher, sample_post(), fake)
    message = info.value.message
    assert type(info.value) is AuthError and info.value.code == 190
    assert message.startswith("Threads says the access token has expired;")
    assert "THREADS_TOKEN" in message and "autopublish resume test" in message


def test_missing_permission_is_named(fake, publisher):
    fake.inject(graph_error(403, "(#10) Application does not have permission for this action", 10), creates)
    with pytest.raises(AuthError) as info:
        publish_when_ready(publisher, sample_post(), fake)
    assert "threads_content_publish" in info.value.message


def test_call_rate_limit_reads_the_usage_header(fake, publisher):
    fake.script("rate_limit")  # the fake's BUC header says 5 minutes
    with pytest.raises(RateLimitedError) as info:
        publish_when_ready(publisher, sample_post(), fake)
    assert info.value.retry_after == 300


def test_unreadable_5xx_on_publish_is_uncertain_and_on_create_transient(fake, publisher):
    from tests.fakes.base import Response

    fake.inject(Response(502, b"<html>Bad Gateway</html>", {"Content-Type": "text/html"}), publishes)
    with pytest.raises(UncertainError):
        publish_when_ready(publisher, sample_post(), fake)
    fake.inject(Response(502, b"<html>Bad Gateway</html>", {"Content-Type": "text/html"}), creates)
    with pytest.raises(TransientError) as info:
        publish_when_ready(publisher, sample_post(key="ap-2"), fake)
    assert not isinstance(info.value, UncertainError)


# --- reconciliation -------------------------------------------------------------------------
@pytest.mark.parametrize("image", [False, True])
def test_act_then_drop_on_publish_is_reconciled_to_one_post(fake, publisher, image):
    post = sample_post(image=fake.image_url() if image else None)
    fake.script("drop")
    with pytest.raises(UncertainError):
        publish_when_ready(publisher, post, fake)
    receipt = publisher.find_existing(post)
    assert receipt is not None
    assert receipt.remote_id == fake.media[0]["id"] and receipt.url == fake.media[0]["permalink"]
    assert len(fake.media) == 1


def test_read_back_ignores_other_articles(fake, publisher):
    fake.add_media("Another article https://example.go.id/berita/lain/", link_attachment_url="https://example.go.id/berita/lain/")
    assert publisher.find_existing(sample_post()) is None


def test_read_back_matches_the_link_attachment_alone(fake, publisher):
    item = fake.add_media("Kunjungan delegasi", link_attachment_url="https://EXAMPLE.go.id/berita/myanmar-cordaid")
    found = publisher.find_existing(sample_post(text="Kunjungan delegasi lain"))
    assert found is not None and found.remote_id == item["id"]


# --- length ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Kunjungan delegasi Myanmar", 26),  # Indonesian
        ("雅加达韧性城市", 7),  # Chinese: one per character
        ("مرحبا بالعالم", 13),  # Arabic
        ("नमस्ते", 6),  # Hindi: code points (3 graphemes), a deliberate over-count
        ("👍", 4),  # an emoji counts its UTF-8 bytes
        ("👨‍👩‍👧‍👦", 25),  # a ZWJ family: 25 UTF-8 bytes
        ("🇮🇩", 8),  # a flag: two regional indicators
        ("https://example.go.id/" + "a" * 50, 72),  # URLs count in full
    ],
)
def test_threads_length(text, expected, publisher):
    assert threads_length(text) == expected
    assert publisher.count(text) == expected


def test_multilingual_text_fitted_by_our_count_is_accepted(fake, publisher):
    parts = ["Kunjungan delegasi ", "雅加达韧性城市 ", "مرحبا ", "नमस्ते ", "👨‍👩‍👧‍👦 ", "🇮🇩 "]
    text = ""
    while True:
        for part in parts:
            if publisher.count(text + part + LINK) > 500:
                break
            text += part
        else:
            continue
        break
    text += LINK
    assert publisher.count(text) <= 500
    publish_when_ready(publisher, sample_post(text=text), fake)
    assert len(fake.media) == 1 and fake.media[0]["text"] == text


def test_text_over_the_limit_is_refused_before_any_request(fake, publisher):
    with pytest.raises(PermanentError) as info:
        publish_when_ready(publisher, sample_post(text="👨‍👩‍👧‍👦" * 20 + " " + LINK), fake)
    assert "over Threads' limit of 500" in info.value.message
    assert fake.requests == []


def test_more_than_five_links_is_refused(fake, publisher):
    text = " ".join(f"https://example.go.id/{n}" for n in range(6))
    with pytest.raises(PermanentError) as info:
        publish_when_ready(publisher, sample_post(text=text), fake)
    assert "at most 5" in info.value.message
    assert fake.requests == []


# --- check and options -------------------------------------------------------------------------
def test_check_names_the_account_and_the_quota(fake, publisher):
    assert_check_names_account_and_quota(publisher, fake, used=3, summary="Posting as @jakartaberketahanan", limit=250)


def test_check_says_whether_doubts_can_be_settled(fake, publisher):
    assert publisher.check().settles_doubts is True
    fake.grant({"threads_content_publish"})  # no threads_basic: nothing can be read back
    with pytest.raises(AuthError):
        publisher.check()  # reading the account itself needs threads_basic too


def test_check_with_a_dead_token_is_an_auth_error(fake, publisher):
    fake.script("auth", when=lambda r: r.path.endswith("/me"))
    with pytest.raises(AuthError):
        publisher.check()


def test_config_as_written_in_the_issue_validates():
    text = """
[channels.threads]
platform = "threads"
api_base = "https://graph.threads.net"
user_id = "1789..."
access_token = "${THREADS_TOKEN}"
"""
    keys = issue_channel_keys(text, "threads", elided="1789...", user_id="17890000000000000")
    options = ThreadsOptions.model_validate(keys, context={"env": {"THREADS_TOKEN": CANARY}})
    assert options.api_version == "v1.0" and options.user_id == "17890000000000000"
    assert CANARY not in repr(options)
    with pytest.raises(ValidationError) as info:
        ThreadsOptions.model_validate({**keys, "user_id": "@jakarta"}, context={"env": {"THREADS_TOKEN": CANARY}})
    assert "numeric account id" in str(info.value)


# --- secrets -----------------------------------------------------------------------------------
def test_canary_token_never_in_logs_or_errors(fake, publisher, caplog):
    caplog.set_level(logging.DEBUG)
    errors = errors_under_faults(fake, lambda kind: publish_when_ready(publisher, sample_post(key=kind), fake), KINDS_IN_ORDER)
    fake.image_fails = True
    fake.permalink_fails = True
    publish_when_ready(publisher, sample_post(image=fake.image_url(), key="last"), fake)
    fake.add_media("filler", timestamp=(datetime.now(UTC) - timedelta(hours=1)).strftime(TIMESTAMP_FORMAT))
    publisher.find_existing(sample_post())
    assert_canary_kept_out(errors, caplog)  # and the fallbacks above were logged


def test_unreadable_success_body_is_uncertain_on_publish_and_transient_on_create(fake, publisher):
    from tests.fakes.base import Response

    fake.inject(Response(200, b"{not json", {"Content-Type": "application/json; charset=UTF-8"}), creates)
    with pytest.raises(TransientError) as info:
        publish_when_ready(publisher, sample_post(), fake)
    assert not isinstance(info.value, UncertainError)
    fake.inject(Response(200, b"<html>ok</html>", {"Content-Type": "text/html"}), publishes)
    with pytest.raises(UncertainError):
        publish_when_ready(publisher, sample_post(), fake)
