"""Mastodon adapter against the loopback Mastodon fake (no mocks of our own code)."""

from __future__ import annotations

import dataclasses
import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from pydantic import ValidationError

from autopublish.errors import AuthError, PermanentError, PublishError, RateLimitedError, TransientError, UncertainError
from autopublish.models import HealthLevel
from autopublish.platforms.mastodon import MastodonOptions, MastodonPublisher, count_status
from tests.conftest import make_publisher
from tests.contract import CANARY, errors_under_faults, publish_under_fault, sample_post
from tests.fakes.base import Response
from tests.fakes.mastodon import FakeMastodon

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
FAMILY = "👨‍👩‍👧‍👦"


@pytest.fixture
def fake(platform_fake) -> FakeMastodon:
    return platform_fake(FakeMastodon(lifetime=60))


def make(fake_url: str, tmp_path: Path, **options: object) -> MastodonPublisher:
    raw = {"instance": fake_url, "access_token": "${MASTODON_TOKEN}", "visibility": "public", **options}
    return make_publisher(MastodonPublisher, raw, tmp_path, env={"MASTODON_TOKEN": CANARY}, channel="mastodon", now=lambda: NOW)


def statuses_posts(fake: FakeMastodon) -> list:
    return [r for r in fake.requests if fake.is_publish(r)]


# --- config -------------------------------------------------------------------------


def test_config_as_written_in_the_issue_validates():
    opts = MastodonOptions.model_validate(
        {"instance": "https://mastodon.social", "access_token": "${MASTODON_TOKEN}", "visibility": "public"},
        context={"env": {"MASTODON_TOKEN": CANARY}},
    )
    assert opts.instance == "https://mastodon.social"
    assert opts.access_token.reveal() == CANARY and CANARY not in repr(opts)


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("instance", "mastodon.social", "https://"),
        ("instance", "https://mastodon.social/@bot", "no path"),
        ("visibility", "everyone", "public"),
        ("language", "Indonesian", "ISO 639"),
        ("access_token", CANARY, "${NAME}"),
    ],
)
def test_bad_options_say_what_to_write(key, value, words):
    raw = {"instance": "https://mastodon.social", "access_token": "${MASTODON_TOKEN}", key: value}
    with pytest.raises(ValidationError) as info:
        MastodonOptions.model_validate(raw, context={"env": {"MASTODON_TOKEN": CANARY}})
    assert words in str(info.value)
    assert CANARY not in str(info.value).replace(f"input_value='{CANARY}'", "")


def test_spoiler_text_is_accepted_as_the_content_warning():
    opts = MastodonOptions.model_validate(
        {"instance": "https://a.example", "access_token": "${T}", "spoiler_text": "politik"}, context={"env": {"T": "x" * 8}}
    )
    assert opts.content_warning == "politik"


# --- length ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("halo", 4),
        ("https://example.go.id/berita/sebuah-judul-yang-sangat-panjang-sekali/", 23),
        ("Baca: https://a.example/x dan http://b.example/y", 6 + 23 + 5 + 23),
        (FAMILY * 3, 3),
        ("北京欢迎你", 5),
        ("مرحبا بالعالم", 13),
        ("क्षि", 1),
        ("cc @editor@mastodon.social", len("cc @editor")),
    ],
)
def test_count_is_mastodons_rule(text, expected):
    assert count_status(text) == expected


def test_count_works_without_network_and_uses_the_default_rule(tmp_path):
    publisher = make("http://127.0.0.1:9", tmp_path)  # nothing listens there
    assert publisher.current_limits().max_length == 500
    assert publisher.current_limits().url_length == 23
    assert publisher.count("Lihat https://example.go.id/" + "a" * 300) == 6 + 23


def test_instance_limits_are_fetched_cached_and_honoured(platform_fake, tmp_path):
    fake = platform_fake(FakeMastodon(max_characters=100, url_length=30, lifetime=60))
    publisher = make(fake.url, tmp_path)
    long_post = sample_post(text="x" * 150)
    with pytest.raises(TransientError) as info:
        publisher.publish(long_post)  # fitted to 500 before the instance's 100 was known
    assert "100" in info.value.message
    assert fake.posts == 0 and not statuses_posts(fake)
    limits = publisher.current_limits()
    assert (limits.max_length, limits.url_length) == (100, 30)
    assert publisher.count("https://example.go.id/x") == 30
    publisher.publish(sample_post(text="y" * 69 + " https://example.go.id/berita/myanmar-cordaid/"))
    assert fake.posts == 1
    instance_reads = [r for r in fake.requests if r.path == "/api/v2/instance"]
    assert len(instance_reads) == 1  # cached on the publisher


def test_check_reports_account_instance_and_limit(fake, tmp_path):
    health = make(fake.url, tmp_path).check()
    assert health.level is HealthLevel.OK
    assert health.summary == f"Posting as @bot on instance 127.0.0.1:{fake.port} (limit 500 characters)"


def test_check_with_a_revoked_token_tells_the_admin_what_to_do(fake, tmp_path):
    fake.revoked = True
    with pytest.raises(AuthError) as info:
        make(fake.url, tmp_path).check()
    assert "MASTODON_TOKEN" in info.value.message and "autopublish resume mastodon" in info.value.message
    assert CANARY not in f"{info.value} {vars(info.value)}"


# --- publish --------------------------------------------------------------------------


def test_publish_sends_status_visibility_language_warning_and_image(fake, tmp_path):
    publisher = make(fake.url, tmp_path, visibility="unlisted", content_warning="berita")
    post = sample_post(image=fake.image_url(), key="delivery-7")
    receipt = publisher.publish(post)
    status = fake.statuses[0]
    assert receipt.remote_id == status["id"] and receipt.url == status["url"]
    assert status["text"] == post.text
    assert (status["visibility"], status["language"], status["spoiler_text"]) == ("unlisted", "id", "berita")
    assert len(status["media_attachments"]) == 1
    assert status["media_attachments"][0]["description"] == post.alt_text
    request = statuses_posts(fake)[0]
    assert request.header("idempotency-key") == "delivery-7"
    assert request.form["media_ids[]"] == [status["media_attachments"][0]["id"]]
    assert request.header("authorization") == f"Bearer {CANARY}"


def test_language_option_wins_over_the_article(fake, tmp_path):
    make(fake.url, tmp_path, language="en").publish(sample_post())
    assert fake.statuses[0]["language"] == "en"


def test_image_still_processing_is_polled_a_few_times_then_attached(fake, tmp_path):
    fake.processing_polls = 2  # 202 on upload, 206 once, then 200
    make(fake.url, tmp_path).publish(sample_post(image=fake.image_url()))
    assert len(fake.statuses[0]["media_attachments"]) == 1


def test_image_that_stays_processing_is_left_out_without_waiting(fake, tmp_path, caplog):
    fake.processing_polls = 50
    with caplog.at_level(logging.WARNING):
        make(fake.url, tmp_path).publish(sample_post(image=fake.image_url()))
    assert fake.statuses[0]["media_attachments"] == []
    polls = [r for r in fake.requests if r.path.startswith("/api/v1/media/")]
    assert 1 <= len(polls) <= 3
    assert "still processing" in caplog.text


def test_unreachable_image_posts_without_it(fake, tmp_path):
    make(fake.url, tmp_path).publish(sample_post(image="http://127.0.0.1:9/none.png"))
    assert fake.posts == 1 and fake.statuses[0]["media_attachments"] == []


@pytest.mark.parametrize("fault", ["hang", "drop"])
def test_a_retry_after_an_unanswered_post_makes_one_status(fake, tmp_path, fault):
    publisher = make(fake.url, tmp_path)
    post = sample_post(key="delivery-42")
    fake.script(fault)
    with pytest.raises(UncertainError):
        publisher.publish(post)
    assert fake.posts == 1
    receipt = publisher.publish(post)  # the core's retry, same key
    assert fake.posts == 1
    assert receipt.remote_id == fake.statuses[0]["id"]
    keys = {r.header("idempotency-key") for r in statuses_posts(fake)}
    assert keys == {"delivery-42"} and len(statuses_posts(fake)) == 2


def test_server_error_is_transient_because_the_key_makes_retry_safe(fake, tmp_path):
    publisher = make(fake.url, tmp_path)
    info = publish_under_fault(publisher, fake, "server_error", TransientError)
    assert not isinstance(info.value, UncertainError)
    publisher.publish(sample_post())
    assert fake.posts == 1


def _iso_in(seconds: int) -> str:
    return (NOW + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@pytest.mark.parametrize(
    ("status", "body", "headers", "expected", "words"),
    [
        (401, {"error": "The access token is invalid"}, {}, AuthError, "MASTODON_TOKEN"),
        (403, {"error": "This action is outside the authorized scopes"}, {}, AuthError, "write:statuses"),
        (422, {"error": "Validation failed: Text character limit of 500 exceeded"}, {}, PermanentError, "character limit"),
        (404, {"error": "Record not found"}, {}, PermanentError, "instance"),
        (429, {"error": "Too many requests"}, {"X-RateLimit-Reset": _iso_in(120)}, RateLimitedError, "slow down"),
        (503, "<html>busy</html>", {"Content-Type": "text/html"}, TransientError, "server error"),
        (500, {"error": "Internal"}, {}, TransientError, "server error"),
        (200, "<html>not json</html>", {"Content-Type": "text/html"}, UncertainError, "may have been published"),
    ],
)
def test_error_answers_map_to_the_core_vocabulary(fake, tmp_path, status, body, headers, expected, words):
    payload = body if isinstance(body, str) else json.dumps(body)
    fake.reply_next(Response(status, payload, {"Content-Type": "application/json", **headers}))
    with pytest.raises(PublishError) as info:
        make(fake.url, tmp_path).publish(sample_post())
    assert type(info.value) is expected
    assert words in info.value.message
    assert CANARY not in f"{info.value} {vars(info.value)}"
    if expected is RateLimitedError:
        assert info.value.retry_after == pytest.approx(120, abs=1)
    if expected in (AuthError, PermanentError):
        assert not isinstance(info.value, (TransientError, UncertainError))


def test_rate_limit_without_headers_still_says_when(fake, tmp_path):
    fake.reply_next(Response.json_body(429, {"error": "Too many requests"}))
    with pytest.raises(RateLimitedError) as info:
        make(fake.url, tmp_path).publish(sample_post())
    assert info.value.retry_after == 300


def test_rate_limit_waits_for_the_iso_reset_before_retry_after(fake, tmp_path):
    # api/rate-limits.md: X-RateLimit-Reset is an ISO 8601 time; it is Mastodon's own wait
    fake.reply_next(Response.json_body(429, {"error": "Too many requests"}, {"X-RateLimit-Reset": _iso_in(240), "Retry-After": "30"}))
    with pytest.raises(RateLimitedError) as info:
        make(fake.url, tmp_path).publish(sample_post())
    assert info.value.retry_after == pytest.approx(240, abs=1) and info.value.code == 429
    assert "asked us to slow down; will try again in about 4 minutes" in info.value.message


def test_rate_limit_with_a_passed_reset_falls_back_to_retry_after(fake, tmp_path):
    fake.reply_next(Response.json_body(429, {"error": "Too many requests"}, {"X-RateLimit-Reset": _iso_in(-10), "Retry-After": "30"}))
    with pytest.raises(RateLimitedError) as info:
        make(fake.url, tmp_path).publish(sample_post())
    assert info.value.retry_after == 30


def test_media_rate_limit_stops_before_posting(fake, tmp_path):
    fake.reply_next(Response.json_body(429, {"error": "Too many requests"}, {"X-RateLimit-Reset": _iso_in(60)}), when=lambda r: r.path == "/api/v2/media")
    with pytest.raises(RateLimitedError):
        make(fake.url, tmp_path).publish(sample_post(image=fake.image_url()))
    assert fake.posts == 0


def test_fake_accepts_json_bodies_like_mastodon(fake):
    response = requests.post(
        fake.url + "/api/v1/statuses",
        json={"status": "halo", "media_ids": [], "visibility": "private"},
        headers={"Authorization": f"Bearer {CANARY}", "Idempotency-Key": "j1"},
        timeout=2,
    )
    assert response.status_code == 200 and response.json()["visibility"] == "private"
    assert "X-RateLimit-Reset" in response.headers


# --- read-back ----------------------------------------------------------------------------


def test_read_back_matches_the_article_link_only(fake, tmp_path):
    publisher = make(fake.url, tmp_path)
    other = sample_post(key="other", text="Lain kali https://example.go.id/berita/lain/")
    publisher.publish(other)
    post = sample_post(key="mine")
    assert publisher.find_existing(post) is None
    receipt = publisher.publish(post)
    publisher.publish(sample_post(key="later", text="Tanpa tautan"))
    found = publisher.find_existing(post)
    assert found is not None and found.remote_id == receipt.remote_id and found.url == receipt.url


def test_read_back_failure_is_transient(fake, tmp_path):
    publisher = make(fake.url, tmp_path)
    fake.reply_next(Response(502, "bad gateway"), when=lambda r: r.path.endswith("/statuses") and r.method == "GET")
    with pytest.raises(TransientError):
        publisher.find_existing(sample_post())


# --- secrets ------------------------------------------------------------------------------


def test_the_token_never_reaches_logs_or_errors(fake, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    publisher = make(fake.url, tmp_path)
    publisher.publish(sample_post(image=fake.image_url()))
    for error in errors_under_faults(fake, lambda kind: publisher.publish(sample_post(key=f"k-{kind}"))):
        assert CANARY not in f"{error} {error!r} {vars(error)}"
    publisher.find_existing(sample_post())
    publisher.check()
    assert CANARY not in caplog.text


# --- the README's scopes: write:statuses write:media read:statuses (issue 11) -----------------

MINIMAL = ("write:statuses", "write:media", "read:statuses")


def test_check_with_the_readme_scopes_is_not_a_broken_token(fake, tmp_path):
    fake.grant(MINIMAL)
    publisher = make(fake.url, tmp_path)
    health = publisher.check()  # verify_credentials would answer 403: it must not be called broken
    assert health.level is HealthLevel.OK
    assert health.settles_doubts is False and health.missing_permission == "read:accounts"
    assert any('account = "yourname"' in line for line in health.details)
    publisher.publish(sample_post(key="first", link="https://example.go.id/berita/lain/"))
    # the post's answer named the account: from now on doubts settle by reading back
    again = make(fake.url, tmp_path).check()
    assert again.settles_doubts is True and again.missing_permission == ""
    assert again.summary.startswith("Posting as @bot ")


def test_check_names_read_statuses_when_it_is_missing(fake, tmp_path):
    fake.grant(("write:statuses", "write:media"))
    health = make(fake.url, tmp_path, account="bot").check()
    assert health.level is HealthLevel.OK
    assert health.settles_doubts is False and health.missing_permission == "read:statuses"


def test_check_says_a_token_without_write_statuses_cannot_post(fake, tmp_path):
    fake.grant(("read",))
    health = make(fake.url, tmp_path).check()
    assert health.level is HealthLevel.ERROR and "write:statuses" in health.summary


def test_read_back_with_the_readme_scopes_uses_the_account_key_and_no_read_accounts(fake, tmp_path):
    fake.grant(MINIMAL)
    publisher = make(fake.url, tmp_path, account="@bot")
    post = sample_post(key="doubt")
    fake.script("drop")
    with pytest.raises(UncertainError):
        publisher.publish(post)  # the answer (and the account in it) is lost
    found = make(fake.url, tmp_path / "fresh", account="@bot").find_existing(post)
    assert found is not None and found.remote_id == fake.statuses[0]["id"]
    lookups = [r for r in fake.requests if r.path == "/api/v1/accounts/lookup"]
    assert lookups and all(not r.header("authorization") for r in lookups)  # public: without the token
    assert not [r for r in fake.requests if r.path == "/api/v1/accounts/verify_credentials"]


def test_read_back_uses_the_account_remembered_from_an_earlier_post(fake, tmp_path):
    fake.grant(MINIMAL)
    make(fake.url, tmp_path).publish(sample_post(key="first", link="https://example.go.id/berita/lain/"))
    post = sample_post(key="doubt")
    fake.script("drop")
    with pytest.raises(UncertainError):
        make(fake.url, tmp_path).publish(post)
    restarted = make(fake.url, tmp_path)  # a new process: only the state directory remains
    found = restarted.find_existing(post)
    assert found is not None and found.remote_id == fake.statuses[1]["id"]
    assert json.loads((tmp_path / "mastodon-account-mastodon.json").read_text())["id"] == fake.account_id


def test_read_back_without_any_way_to_the_account_cannot_check_and_names_the_scope(fake, tmp_path):
    from autopublish.errors import CannotCheckError

    fake.grant(MINIMAL)
    with pytest.raises(CannotCheckError) as info:
        make(fake.url, tmp_path).find_existing(sample_post())
    assert info.value.missing_permission == "read:accounts"
    assert not isinstance(info.value, AuthError)  # never pauses the channel
    assert CANARY not in f"{info.value} {vars(info.value)}"


def test_read_back_without_read_statuses_cannot_check(fake, tmp_path):
    from autopublish.errors import CannotCheckError

    fake.grant(("write:statuses", "write:media"))
    with pytest.raises(CannotCheckError) as info:
        make(fake.url, tmp_path, account="bot").find_existing(sample_post())
    assert info.value.missing_permission == "read:statuses"


def test_fake_forgets_an_idempotency_key_after_one_hour(fake, tmp_path):
    publisher = make(fake.url, tmp_path)
    post = sample_post(key="delivery-7")
    publisher.publish(post)
    publisher.publish(post)
    assert fake.posts == 1  # within the hour: the same status
    start = fake.clock()
    fake.clock = lambda: start + 3601
    publisher.publish(post)
    assert fake.posts == 2  # Mastodon no longer remembers the key


# --- content warning + text against the limit (StatusLengthValidator) ----------------------------


def test_fake_counts_the_content_warning_with_the_text(fake):
    body = {"status": "x" * 495, "spoiler_text": "berita politik"}
    response = requests.post(f"{fake.url}/api/v1/statuses", json=body, headers={"Authorization": f"Bearer {CANARY}"}, timeout=5)
    assert response.status_code == 422 and "character limit" in response.json()["error"]
    assert fake.posts == 0


def test_a_long_post_with_a_content_warning_is_fitted_to_what_is_left(fake, tmp_path):
    from autopublish.config import ChannelConfig
    from autopublish.pipeline import build_post
    from tests.contract import sample_article

    warning = "berita politik"
    publisher = make(fake.url, tmp_path, content_warning=warning)
    publisher.load_limits()
    assert publisher.current_limits().max_length == 500 - len(warning)
    long = dataclasses.replace(sample_article(), summary="kata " * 300)
    channel = ChannelConfig("mastodon", "mastodon", "{title}\n\n{summary}\n\n{link}", publisher.options)
    post = build_post(long, channel, publisher, "ap-cw")
    assert publisher.count(post.text) + len(warning) <= 500
    publisher.publish(post)  # the fake would answer 422 if the two together were over 500
    assert fake.posts == 1 and fake.statuses[0]["spoiler_text"] == warning
