"""X adapter: twitter-text v3 weighting, OAuth 1.0a, error mapping, duplicate reconciliation."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from autopublish.errors import AuthError, CannotCheckError, PermanentError, RateLimitedError, TransientError, UncertainError
from autopublish.models import HealthLevel
from autopublish.platforms.twitter_text import is_valid, url_spans, weighted_length
from autopublish.platforms.x import XOptions, XPublisher, oauth1_signature
from tests.conftest import make_publisher
from tests.contract import CANARY, build_publisher, contract_publisher, sample_post
from tests.fakes.x import CONTRACT, SECRETS, XFake, channel_options, make_fake

FAMILY = "\U0001F468\u200d\U0001F469\u200d\U0001F467\u200d\U0001F466"  # man, woman, girl, boy joined by ZWJ


@pytest.fixture
def fake(platform_fake) -> XFake:
    return platform_fake(make_fake())


@pytest.fixture
def publisher(fake: XFake, tmp_path) -> XPublisher:
    return contract_publisher(CONTRACT, fake, tmp_path, XPublisher)


# --- twitter-text v3 weighting ------------------------------------------------------------
# Cases from twitter/twitter-text conformance/validate.yml (WeightedTweetsWithDiscountedEmojiCounterTest),
# the texts rebuilt from their parts where they are long.
CONFORMANCE = [
    ("regular tweet with url", "Hi http://test.co", 26),
    ("just url", "http://test.co", 23),
    ("long tweet", "285 chars" + "-xxxxxxxxxx" * 25 + "-", 285),
    ("url in the middle", "285 chars- http://www.twitter.com/jack " + "-".join(["xxxxxxxxxx"] * 24) + "-", 299),
    ("url at the end", "-".join(["xxxxxxxxxx"] * 24) + "- http://www.twitter.com/jack ", 289),
    ("10 urls", "https://www.twitter.com/aloha " * 10, 240),
    ("160 CJK", "故人西辞黄鹤楼，烟花三月下扬州。孤帆远影碧空尽，唯见长江天际流。" * 5, 320),
    ("160 emoji", "\U0001F637" * 160, 320),
    ("3 latin + 160 CJK", "the" + "故人西辞黄鹤楼，烟花三月下扬州。孤帆远影碧空尽，唯见长江天际流。" * 5, 323),
    ("normalised A acute", "A\u0301B", 2),
    ("normalised into 3 chars", "A\ufb2c", 4),
    ("282 chars with a normalised char", "282 chars" + "-xxxxxxxxxx" * 24 + "-xxxxxA\u0301x", 281),
    ("mix with ZWJ family", "H\U0001F431\u263a" + FAMILY, 7),
    ("emoji in the BMP", "\U0001F637\U0001F47E\U0001F621\U0001F525\U0001F4A9", 10),
    ("skin tone and ZWJ", "\U0001F64B\U0001F3FD\U0001F468\u200d\U0001F3A4", 4),
    (
        "general punctuation",
        "This is a tweet with general punctuation characters: "
        + "".join(map(chr, range(0x2000, 0x200C)))
        + " ‐ ‑ ‒ – — ― ‖  ‗ ‘ ’ ‚ ‛ “ ” „ ‟ ′ ″ ‴ ‵ ‶ ‷",
        110,
    ),
    (
        "long url with invalid domain labels",
        "Long url with invalid domain labels and a short url: "
        + " ".join(["https://" + "somesuperlongurl" * 249 + ".com/foo"] * 3)
        + " https://validurl.com",
        12079,
    ),
    ("64 character domain", "randomurl" * 7 + "s.com", 68),
    ("punycode host over 63", "あいうえおかきくけこ" * 12 + " http://" + "あいうえおかきくけこ" * 5 + "あいう.com", 358),
    ("punycode host within 63", "あいうえおかきくけこ" * 12 + " http://" + "あいうえおかきくけこ" * 5 + "あい.com", 264),
    ("140 family emoji", FAMILY * 140, 280),
    ("Unicode 10 emoji", "Unicode 10.0 emoji: \U0001F92A; \U0001F9D5; \U0001F9D5\U0001F3FE; "
                         "\U0001F3F4\U000E0067\U000E0062\U000E0065\U000E006E\U000E0067\U000E007F", 34),
    ("Unicode 9 emoji", "Unicode 9.0 emoji: \U0001F920; \U0001F483; \U0001F483\U0001F3FE", 29),
    ("invalid characters", "ABC\u202a\uffffABC\ufffe", 12),
    ("directional marks around a url", "\u2066\u202ahttp://foobar.پاکستان/\u202c\u2069", 31),
    ("count characters", "This is a test.", 15),
    ("bare domain", "test.com", 23),
    ("multiple urls", "Test https://test.com test https://test.com test.com test", 86),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in CONFORMANCE], ids=[c[0] for c in CONFORMANCE])
def test_weighted_length_matches_twitter_text_conformance(text: str, expected: int) -> None:
    assert weighted_length(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Kunjungan delegasi Myanmar ke Balai Kota", 40),  # Indonesian: 1 each
        ("雅加达韧性城市", 14),  # Chinese: 2 each
        ("مدينة جاكرتا", 12),  # Arabic (U+0600 block): 1 each
        ("नमस्ते", 6),  # Hindi: 1 per code point (U+0900 block), graphemes do not matter
        (FAMILY, 2),  # a ZWJ sequence is one emoji
        ("\U0001F1EE\U0001F1E9", 2),  # a flag
        ("1\ufe0f\u20e3", 2),  # a keycap
        ("©", 1),  # text-style symbol in the light range
        ("Baca: https://example.go.id/berita/myanmar-cordaid/?utm_source=x&id=42", 29),
        ("Cafe\u0301", 4),  # NFC first
        ("see example.com.", 28),  # trailing dot is not part of the URL
        ("foo.jp", 6),  # a country TLD without a path is not a URL (twitter-text)
        ("foo.jp/a", 23),
        ("write to a@example.com", 22),  # an e-mail address is not a URL
        ("(https://example.org/a_(b))", 25),  # balanced parenthesis stays in the URL
    ],
)
def test_weighted_length_multilingual_and_urls(text: str, expected: int) -> None:
    assert weighted_length(text) == expected


def test_280_is_the_boundary() -> None:
    assert is_valid("a" * 280) and not is_valid("a" * 281)
    assert is_valid("雅" * 140) and not is_valid("雅" * 141)
    assert is_valid("https://example.org/" + "x" * 500 + " " + "a" * 256)
    assert not is_valid("   ")


def test_url_spans_cover_protocol_and_bare_urls() -> None:
    text = "Baca https://example.go.id/a, lalu www.example.com/b dan t.co"
    assert [text[s:e] for s, e in url_spans(text)] == ["https://example.go.id/a", "www.example.com/b", "t.co"]


# --- OAuth 1.0a -------------------------------------------------------------------------------
def test_signature_matches_the_documented_example() -> None:
    """The worked example in X's "Creating a signature" guide."""
    params = [
        ("status", "Hello Ladies + Gentlemen, a signed OAuth request!"),
        ("oauth_consumer_key", "xvz1evFS4wEEPTGEFPHBog"),
        ("oauth_nonce", "kYjzVBB8Y0ZFabxSWbWovY3uYSQ2pTgmZeNu2VS4cg"),
        ("oauth_signature_method", "HMAC-SHA1"),
        ("oauth_timestamp", "1318622958"),
        ("oauth_token", "370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb"),
        ("oauth_version", "1.0"),
    ]
    signature = oauth1_signature(
        "POST",
        "https://api.twitter.com/1.1/statuses/update.json?include_entities=true",
        params,
        "kAcSOqF21Fu85e7zjz7ZN2U4ZRhfV3WpwPAoE3Z7kBw",
        "LswwdoUaIvS8ltyTt5jkRh4J50vUPVVHtR2YPi5kE",
    )
    assert signature == "hCtSmYh+iHYCEqBWrE7C7hYmtUk="


def test_fake_verifies_signatures_on_every_call(fake: XFake, publisher: XPublisher) -> None:
    publisher.publish(sample_post(image=fake.image_url()))
    signed = [r for r in fake.requests if r.path.startswith("/2/")]
    assert {r.path for r in signed} == {"/2/media/upload", "/2/tweets"}
    assert all(r.header("authorization").startswith("OAuth ") for r in signed)
    assert fake.rejected_signatures == 0
    assert publisher.find_existing(sample_post()) is not None  # GET with a signed query string
    assert fake.rejected_signatures == 0


def test_wrong_secret_is_refused_by_the_fake(fake: XFake, tmp_path) -> None:
    env = {**SECRETS, "X_ACCESS_TOKEN_SECRET": f"{CANARY}-wrong"}
    publisher = make_publisher(XPublisher, channel_options(fake), tmp_path, env=env, channel="news")
    with pytest.raises(AuthError) as info:
        publisher.publish(sample_post())
    assert fake.rejected_signatures == 1 and fake.posts == []
    assert "X_CONSUMER_KEY" in info.value.message and "autopublish resume news" in info.value.message
    assert CANARY not in f"{info.value} {vars(info.value)}"


# --- publishing ---------------------------------------------------------------------------------
def test_publish_uploads_the_image_and_returns_the_status_url(fake: XFake, publisher: XPublisher) -> None:
    receipt = publisher.publish(sample_post(image=fake.image_url()))
    assert receipt.url == f"https://x.com/i/web/status/{receipt.remote_id}"
    (post,) = fake.posts
    assert post["media_ids"] and post["media_ids"][0] in fake.media
    upload = next(r for r in fake.requests if r.path == "/2/media/upload")
    assert upload.form["media_category"] == ["tweet_image"] and upload.files["media"][1].startswith(b"\x89PNG")
    assert post["source_text"] == sample_post().text


def test_an_image_over_5_mb_is_downscaled_and_posted(fake: XFake, publisher: XPublisher) -> None:
    from tests.helpers import noise_image

    fake.images["big.png"] = (noise_image(1800, 1200), "image/png")
    assert len(fake.images["big.png"][0]) > 5 * 1024 * 1024
    publisher.publish(sample_post(image=fake.image_url("big.png")))
    (post,) = fake.posts
    assert post["media_ids"] and len(fake.media[post["media_ids"][0]]) <= 5 * 1024 * 1024


def test_unreachable_image_posts_without_it(fake: XFake, publisher: XPublisher) -> None:
    publisher.publish(sample_post(image="http://127.0.0.1:9/missing.png"))
    assert fake.posts[0]["media_ids"] == []


def test_text_over_280_is_never_sent(fake: XFake, publisher: XPublisher) -> None:
    with pytest.raises(PermanentError):
        publisher.publish(sample_post(text="雅" * 141))
    assert not any(r.path == "/2/tweets" for r in fake.requests)
    publisher.publish(sample_post(text="雅" * 140))
    assert len(fake.posts) == 1


def test_duplicate_403_is_uncertain_and_reconciles_to_one_post(fake: XFake, publisher: XPublisher) -> None:
    post = sample_post(image=fake.image_url())
    fake.script("drop")  # X posts it, the answer is lost
    with pytest.raises(UncertainError):
        publisher.publish(post)
    with pytest.raises(UncertainError) as info:
        publisher.publish(post)  # an operator's retry: X refuses the identical text
    assert info.value.code == "duplicate"
    receipt = publisher.find_existing(post)
    assert receipt is not None and receipt.remote_id == fake.posts[0]["id"]
    assert len(fake.posts) == 1


def test_read_back_matches_the_expanded_link_not_the_tco_text(fake: XFake, publisher: XPublisher) -> None:
    receipt = publisher.publish(sample_post())
    assert "t.co" in fake.posts[0]["text"]
    other = sample_post(text="Another wording, same article https://example.go.id/berita/myanmar-cordaid/")
    assert publisher.find_existing(other) == receipt
    read = [r for r in fake.requests if r.path.endswith("/tweets") and r.method == "GET"][-1]
    assert "entities" in read.query["tweet.fields"][0]


def test_credits_depleted_pauses_the_channel_in_plain_words(fake: XFake, publisher: XPublisher) -> None:
    fake.answer_next_publish(402, {
        "title": "CreditsDepleted",
        "detail": "Your enrolled account [2244994945] does not have any credits to fulfill this request.",
        "type": "https://api.twitter.com/2/problems/credits",
    })
    with pytest.raises(AuthError) as info:
        publisher.publish(sample_post())
    assert info.value.message.startswith("X says the account's API credits are used up; add credits")
    assert info.value.message.endswith("then run: autopublish resume test")
    assert fake.posts == []


@pytest.mark.parametrize(
    ("status", "problem", "expected"),
    [
        (401, {"title": "Unauthorized", "type": "about:blank", "status": 401, "detail": "Unauthorized"}, AuthError),
        (403, {"title": "Forbidden", "type": "about:blank", "status": 403, "detail": "You are not permitted to perform this action."}, PermanentError),
        (
            403,
            {"title": "Unsupported Authentication", "type": "https://api.twitter.com/2/problems/client-forbidden", "status": 403,
             "detail": "Your client app is not configured with the appropriate oauth1 app permissions for this endpoint."},
            AuthError,
        ),
        (400, {"title": "Invalid Request", "type": "https://api.twitter.com/2/problems/invalid-request",
               "detail": "One or more parameters to your request was invalid.", "errors": [{"message": "bad"}]}, PermanentError),
        (503, {"title": "Service Unavailable", "type": "about:blank", "status": 503, "detail": "Service Unavailable"}, UncertainError),
        (500, {"title": "Internal Server Error", "type": "about:blank", "status": 500}, UncertainError),
    ],
)
def test_error_mapping(fake: XFake, publisher: XPublisher, status: int, problem: dict, expected: type) -> None:
    fake.answer_next_publish(status, problem)
    with pytest.raises(expected) as info:
        publisher.publish(sample_post())
    if expected is PermanentError:
        assert not isinstance(info.value, AuthError)
    assert info.value.code in (status, "duplicate")
    assert fake.posts == []


def test_rate_limit_waits_for_the_reset_header(fake: XFake, publisher: XPublisher) -> None:
    reset = int(time.time()) + 600
    problem = {"title": "Too Many Requests", "detail": "Too Many Requests", "type": "about:blank", "status": 429}
    fake.answer_next_publish(429, problem, {"x-rate-limit-reset": str(reset)})
    with pytest.raises(RateLimitedError) as info:
        publisher.publish(sample_post())
    assert info.value.retry_after is not None and 500 < info.value.retry_after <= 600


def test_usage_cap_is_a_long_rate_limit(fake: XFake, publisher: XPublisher) -> None:
    problem = {"title": "UsageCapExceeded", "detail": "Usage cap exceeded: Monthly product cap", "type": "https://api.twitter.com/2/problems/usage-capped"}
    fake.answer_next_publish(429, problem, {"x-rate-limit-reset": "0"})
    with pytest.raises(RateLimitedError) as info:
        publisher.publish(sample_post())
    assert "usage cap" in info.value.message and info.value.retry_after and info.value.retry_after > 0


def test_read_back_failure_is_transient(fake: XFake, publisher: XPublisher) -> None:
    fake.script("server_error", when=lambda r: r.path.endswith("/tweets") and r.method == "GET")
    with pytest.raises(TransientError):
        publisher.find_existing(sample_post())


def test_check_names_the_account(fake: XFake, publisher: XPublisher) -> None:
    health = publisher.check()
    assert health.level is HealthLevel.OK and health.summary.startswith("Posting as @jktberketahanan")


def test_options_refuse_literal_secrets_and_name_missing_variables(fake: XFake) -> None:
    with pytest.raises(ValidationError) as info:
        XOptions.model_validate({**channel_options(fake), "consumer_key": "abc123"}, context={"env": SECRETS})
    (problem,) = info.value.errors(include_input=False)
    assert "${NAME}" in problem["msg"] and "abc123" not in problem["msg"]
    env = {k: v for k, v in SECRETS.items() if k != "X_ACCESS_TOKEN"}
    with pytest.raises(ValidationError) as info:
        XOptions.model_validate(channel_options(fake), context={"env": env})
    assert "X_ACCESS_TOKEN" in str(info.value)


def test_the_config_example_validates() -> None:
    options = XOptions.model_validate(
        {
            "api_base": "https://api.x.com",
            "consumer_key": "${X_CONSUMER_KEY}",
            "consumer_secret": "${X_CONSUMER_SECRET}",
            "access_token": "${X_ACCESS_TOKEN}",
            "access_token_secret": "${X_ACCESS_TOKEN_SECRET}",
        },
        context={"env": SECRETS},
    )
    assert options.api_base == "https://api.x.com" and repr(options).count(CANARY) == 0


def test_no_secret_in_logs_or_errors(fake: XFake, tmp_path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    publisher = build_publisher(CONTRACT, fake, tmp_path)
    errors = []
    publisher.publish(sample_post(image=fake.image_url()))
    for kind in ("rate_limit", "auth", "bad_request", "server_error", "hang"):
        fake.script(kind)
        with pytest.raises(Exception) as info:
            publisher.publish(sample_post(key=kind, text=f"{kind} post https://example.org/{kind}"))
        errors.append(f"{info.value} {info.value!r} {vars(info.value)}")
    fake.answer_next_publish(402, {"title": "CreditsDepleted", "type": "https://api.twitter.com/2/problems/credits"})
    with pytest.raises(AuthError) as info:
        publisher.publish(sample_post(text="credits https://example.org/c"))
    errors.append(f"{info.value} {vars(info.value)}")
    publisher.check()
    assert CANARY not in caplog.text
    assert all(CANARY not in e for e in errors)


def test_env_now_drives_the_oauth_timestamp(fake: XFake, tmp_path) -> None:
    """A clock far off makes X (and the fake) refuse the signature: time comes from env.now."""
    skewed = make_publisher(XPublisher, channel_options(fake), tmp_path, env=SECRETS, channel="test", now=lambda: datetime(2001, 1, 1, tzinfo=UTC))
    with pytest.raises(AuthError):
        skewed.check()


def test_read_back_does_not_match_the_same_words_with_another_link(fake: XFake, publisher: XPublisher) -> None:
    publisher.publish(sample_post(text="Berita hari ini https://example.org/other-article"))
    assert publisher.find_existing(sample_post(text="Berita hari ini https://example.go.id/berita/myanmar-cordaid/")) is None
    plain = sample_post(text="Berita tanpa tautan")
    receipt = publisher.publish(plain)
    assert publisher.find_existing(plain) == receipt


# --- issue 11: X's tiers -------------------------------------------------------------------------


def test_read_back_takes_the_account_from_the_token_not_users_me(fake: XFake, publisher: XPublisher) -> None:
    fake.grant(("read", "write", "tier:free"))
    publisher.publish(sample_post())
    assert publisher.find_existing(sample_post()) is not None
    assert not [r for r in fake.requests if r.path == "/2/users/me"]
    read = [r for r in fake.requests if r.path.endswith("/tweets") and r.method == "GET"][-1]
    assert int(read.query["max_results"][0]) <= 10  # Free reads 100 posts a month


def test_free_tier_read_window_is_honoured_without_spending_a_request(fake: XFake, publisher: XPublisher) -> None:
    fake.grant(("read", "write", "tier:free"))
    assert publisher.find_existing(sample_post()) is None  # the one read of this 15-minute window
    reads = len([r for r in fake.requests if r.path.endswith("/tweets")])
    with pytest.raises(RateLimitedError) as info:
        publisher.find_existing(sample_post())
    assert info.value.retry_after is not None and 800 < info.value.retry_after <= 900
    assert len([r for r in fake.requests if r.path.endswith("/tweets")]) == reads  # not asked again


def test_free_tier_429_on_a_read_waits_for_the_window(fake: XFake, tmp_path) -> None:
    fake.grant(("read", "write", "tier:free"))
    build_publisher(CONTRACT, fake, tmp_path).find_existing(sample_post())  # another process used the window
    with pytest.raises(RateLimitedError) as info:
        build_publisher(CONTRACT, fake, tmp_path).find_existing(sample_post())
    assert info.value.retry_after is not None and info.value.retry_after > 800


def test_free_tier_monthly_read_cap_is_a_long_rate_limit(fake: XFake, publisher: XPublisher) -> None:
    fake.grant(("read", "write", "tier:free"))
    fake.posts_read = 100
    with pytest.raises(RateLimitedError) as info:
        publisher.find_existing(sample_post())
    assert "usage cap" in info.value.message


def test_the_24_hour_posting_cap_is_honoured(fake: XFake, publisher: XPublisher) -> None:
    fake.grant(("read", "write", "tier:free"))
    fake.created_at = [time.time() - 3600] * 16
    publisher.publish(sample_post(key="17th"))  # the 17th of 24 hours: the answer says none are left
    sent = len([r for r in fake.requests if fake.is_publish(r)])
    with pytest.raises(RateLimitedError) as info:
        publisher.publish(sample_post(key="18th", link="https://example.go.id/lain/"))
    assert info.value.retry_after is not None and info.value.retry_after > 20 * 3600
    assert len([r for r in fake.requests if fake.is_publish(r)]) == sent  # no request spent


def test_the_24_hour_cap_429_waits_for_its_reset(fake: XFake, tmp_path) -> None:
    fake.grant(("read", "write", "tier:free"))
    fake.created_at = [time.time() - 3600] * 17
    with pytest.raises(RateLimitedError) as info:
        build_publisher(CONTRACT, fake, tmp_path).publish(sample_post())
    assert info.value.retry_after is not None and info.value.retry_after > 20 * 3600  # not the 15-minute window
    assert fake.posts == []


def test_client_forbidden_on_a_read_cannot_check_and_is_not_an_auth_error(fake: XFake, publisher: XPublisher) -> None:
    fake.grant(("read", "write", "tier:none"))
    with pytest.raises(CannotCheckError) as info:
        publisher.find_existing(sample_post())
    assert not isinstance(info.value, AuthError)
    assert "GET /2/users/:id/tweets" in info.value.missing_permission
    assert CANARY not in f"{info.value} {vars(info.value)}"


def test_client_forbidden_on_a_post_says_what_to_fix(fake: XFake, publisher: XPublisher) -> None:
    fake.grant(("read", "write", "tier:none"))
    with pytest.raises(AuthError) as info:
        publisher.publish(sample_post())
    assert "Project" in info.value.message


def test_read_only_app_permission_cannot_post(fake: XFake, publisher: XPublisher) -> None:
    fake.grant(("read", "tier:free"))
    with pytest.raises(AuthError) as info:
        publisher.publish(sample_post())
    assert "Read and Write" in info.value.message and fake.posts == []


def test_check_says_doubts_settle_and_names_the_free_limits(fake: XFake, publisher: XPublisher) -> None:
    fake.grant(("read", "write", "tier:free"))
    health = publisher.check()
    assert health.level is HealthLevel.OK and health.settles_doubts is True
    assert any("15 minutes" in line for line in health.details)
    assert not [r for r in fake.requests if r.path.endswith("/tweets")]  # no scarce read spent on a probe
