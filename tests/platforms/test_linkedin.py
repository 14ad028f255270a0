"""LinkedIn adapter: little-text escaping, the image flow, version pause, duplicate reconciliation."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest
import requests
from pydantic import ValidationError

from autopublish.errors import AuthError, CannotCheckError, PermanentError, RateLimitedError, TransientError, UncertainError
from autopublish.models import HealthLevel
from autopublish.platforms.linkedin import LinkedInOptions, LinkedInPublisher, default_version, escape_little_text
from tests.conftest import make_publisher
from tests.contract import CANARY, contract_publisher, publish_under_fault, sample_post
from tests.fakes.linkedin import CONTRACT, ORGANIZATION, TOKEN, LinkedInFake, channel_options, render_little

RESERVED = "\\|{}@[]()<>#*_~"
MULTILINGUAL = (
    "Kunjungan (delegasi) Myanmar_2026 ke Balai Kota ~ 雅加达韧性城市 [合作] · "
    "مدينة جاكرتا <المرنة> · नमस्ते {टीम} · 👨\u200d👩\u200d👧\u200d👦 *semua* | @admin \\ C# #Berita"
)


@pytest.fixture
def fake(platform_fake) -> LinkedInFake:
    return platform_fake(LinkedInFake(token=TOKEN))


@pytest.fixture
def publisher(fake: LinkedInFake, tmp_path) -> LinkedInPublisher:
    return contract_publisher(CONTRACT, fake, tmp_path, LinkedInPublisher)


def _with_version(fake: LinkedInFake, tmp_path, version: str) -> LinkedInPublisher:
    return make_publisher(LinkedInPublisher, {**channel_options(fake), "version": version}, tmp_path, env=CONTRACT.env, channel="news")


# --- the little text format ------------------------------------------------------------------
def test_the_fake_cuts_at_the_first_unescaped_reserved_character() -> None:
    """What LinkedIn does silently (201 and a cut post): the reason escaping matters."""
    assert render_little("Kunjungan (delegasi) Myanmar") == "Kunjungan "
    assert render_little("a_b") == "a"
    assert render_little("Selamat #Berita hari ini") == "Selamat #Berita hari ini"
    assert render_little("Hi @[Jakarta](urn:li:organization:12345)!") == "Hi Jakarta!"


@pytest.mark.parametrize("char", list(RESERVED))
def test_each_reserved_character_is_escaped(char: str) -> None:
    text = f"a {char} b"
    assert escape_little_text(text) == f"a \\{char} b"
    assert render_little(escape_little_text(text)) == text


def test_hashtags_stay_hashtags() -> None:
    assert escape_little_text("Baca #Berita #JakartaBerketahanan") == "Baca #Berita #JakartaBerketahanan"
    assert escape_little_text("C# and # alone and x#y") == "C\\# and \\# alone and x\\#y"


def test_escaping_round_trips_reserved_and_multilingual_text(fake: LinkedInFake, publisher: LinkedInPublisher) -> None:
    text = f"{MULTILINGUAL}\n\n{RESERVED} {RESERVED[::-1]}\n\n#Kegiatan"
    publisher.publish(sample_post(text=text))
    (post,) = fake.posts
    assert post["published_text"] == text
    assert render_little(text) != text  # unescaped, the fake (like LinkedIn) would cut it


# --- publishing ---------------------------------------------------------------------------------
def test_publish_as_the_organization_with_an_article_card(fake: LinkedInFake, publisher: LinkedInPublisher) -> None:
    receipt = publisher.publish(sample_post(image=fake.image_url()))
    (post,) = fake.posts
    assert receipt.remote_id == post["id"] and receipt.remote_id.startswith("urn:li:share:")
    assert receipt.url == f"https://www.linkedin.com/feed/update/{post['id']}/"
    create = next(r for r in fake.requests if r.path == "/rest/posts" and r.method == "POST")
    assert create.header("linkedin-version") == default_version(datetime.now(UTC))
    assert create.header("x-restli-protocol-version") == "2.0.0"
    assert create.header("authorization") == f"Bearer {TOKEN}"
    body = create.json
    assert body["author"] == ORGANIZATION and body["visibility"] == "PUBLIC"
    assert body["distribution"] == {"feedDistribution": "MAIN_FEED", "targetEntities": [], "thirdPartyDistributionChannels": []}
    assert body["lifecycleState"] == "PUBLISHED" and body["isReshareDisabledByAuthor"] is False
    article = body["content"]["article"]
    assert article["source"] == "https://example.go.id/berita/myanmar-cordaid/"
    assert article["title"].startswith("Mendampingi CRO") and article["description"].startswith("Tim mendampingi")
    assert fake.images[article["thumbnail"]]["data"].startswith(b"\x89PNG")
    init = next(r for r in fake.requests if r.path == "/rest/images")
    assert init.query["action"] == ["initializeUpload"] and init.json == {"initializeUploadRequest": {"owner": ORGANIZATION}}


def test_image_that_cannot_be_fetched_leaves_the_card_without_thumbnail(fake: LinkedInFake, publisher: LinkedInPublisher) -> None:
    publisher.publish(sample_post(image="http://127.0.0.1:9/missing.png"))
    assert "thumbnail" not in fake.posts[0]["content"]["article"]


def test_failed_upload_leaves_the_card_without_thumbnail(fake: LinkedInFake, publisher: LinkedInPublisher) -> None:
    fake.script("server_error", when=lambda r: r.path.startswith("/dms-uploads/"))
    publisher.publish(sample_post(image=fake.image_url()))
    assert "thumbnail" not in fake.posts[0]["content"]["article"]


def test_post_without_link_has_no_card(fake: LinkedInFake, publisher: LinkedInPublisher) -> None:
    base = sample_post()
    post = type(base)(channel=base.channel, key=base.key, text="Hanya teks", article=base.article)
    publisher.publish(post)
    assert "content" not in fake.posts[0]


def test_length_is_counted_before_escaping(fake: LinkedInFake, publisher: LinkedInPublisher) -> None:
    assert publisher.count("(" * 3000) == 3000
    assert publisher.count("雅") == 1 and publisher.count("😀") == 2  # UTF-16 units
    publisher.publish(sample_post(text="(" * 3000))
    assert fake.posts[0]["published_text"] == "(" * 3000
    with pytest.raises(PermanentError):
        publisher.publish(sample_post(text="a" * 3001))
    assert len(fake.posts) == 1


# --- errors -------------------------------------------------------------------------------------
def test_retired_version_pauses_the_channel_with_the_fix(fake: LinkedInFake, tmp_path) -> None:
    publisher = _with_version(fake, tmp_path, "202401")
    with pytest.raises(AuthError) as info:
        publisher.publish(sample_post())
    assert info.value.message.startswith('LinkedIn no longer accepts API version 202401 (it serves each version for about a year); '
                                         'remove version = "202401" from the channel')
    assert info.value.code == "NONEXISTENT_VERSION" and fake.posts == []


def test_the_fake_requires_a_version_header(fake: LinkedInFake) -> None:
    response = requests.post(f"{fake.url}/rest/posts", json={}, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=2)
    assert response.status_code == 426


def test_duplicate_422_names_the_post_and_settles_from_it_without_reading(fake: LinkedInFake, publisher: LinkedInPublisher) -> None:
    post = sample_post(image=fake.image_url())
    fake.script("drop")
    with pytest.raises(UncertainError):
        publisher.publish(post)
    fake.grant(("w_organization_social",))  # no read permission: the 422 alone settles it
    receipt = publisher.publish(post)
    assert receipt.remote_id == fake.posts[0]["id"] and len(fake.posts) == 1
    assert not [r for r in fake.requests if r.method == "GET" and r.path == "/rest/posts"]


def test_duplicate_422_without_a_urn_is_uncertain(fake: LinkedInFake, publisher: LinkedInPublisher) -> None:
    fake.answer_next_publish(422, {"status": 422, "message": "Duplicate post",
                                   "errorDetails": {"inputErrors": [{"code": "DUPLICATE_POST", "input": {}}]}})
    with pytest.raises(UncertainError) as info:
        publisher.publish(sample_post())
    assert info.value.code == "DUPLICATE_POST"


def test_read_back_finds_the_post_after_a_lost_answer(fake: LinkedInFake, publisher: LinkedInPublisher) -> None:
    post = sample_post(image=fake.image_url())
    fake.script("drop")
    with pytest.raises(UncertainError):
        publisher.publish(post)
    receipt = publisher.find_existing(post)
    assert receipt is not None and receipt.remote_id == fake.posts[0]["id"]
    assert len(fake.posts) == 1
    read = [r for r in fake.requests if r.method == "GET" and r.path == "/rest/posts"][-1]
    assert read.query["q"] == ["author"] and read.query["author"] == [ORGANIZATION]
    assert read.header("x-restli-method") == "FINDER"


def test_expired_token_names_the_variable(fake: LinkedInFake, publisher: LinkedInPublisher) -> None:
    info = publish_under_fault(publisher, fake, "auth", AuthError)
    assert "LINKEDIN_TOKEN" in info.value.message and "60 days" in info.value.message
    assert "autopublish resume test" in info.value.message


def test_missing_permission_names_it(fake: LinkedInFake, publisher: LinkedInPublisher) -> None:
    fake.scopes.discard("w_organization_social")
    with pytest.raises(AuthError) as info:
        publisher.publish(sample_post())
    assert "w_organization_social" in info.value.message and fake.posts == []


def test_rate_limit_without_reset_waits_an_hour(fake: LinkedInFake, publisher: LinkedInPublisher) -> None:
    info = publish_under_fault(publisher, fake, "rate_limit", RateLimitedError)
    assert info.value.retry_after == 3600


def test_rate_limit_honours_retry_after(fake: LinkedInFake, publisher: LinkedInPublisher) -> None:
    fake.answer_next_publish(429, {"status": 429, "message": "Too many requests"}, {"Retry-After": "120"})
    with pytest.raises(RateLimitedError) as info:
        publisher.publish(sample_post())
    assert info.value.retry_after == 120


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (
            401,
            {"status": 401, "serviceErrorCode": 65601, "code": "REVOKED_ACCESS_TOKEN", "message": "The token used in the request has been revoked by the user"},
            AuthError,
        ),
        (403, {"status": 403, "serviceErrorCode": 100, "code": "ACCESS_DENIED", "message": "Not enough permissions"}, AuthError),
        (426, {"status": 426, "code": "NONEXISTENT_VERSION", "message": "Requested version 20240201 is not active"}, AuthError),
        (400, {"status": 400, "message": "com.linkedin.content.common.exception.BadRequestResponseException: Invalid value"}, PermanentError),
        (422, {"status": 422, "message": "Field /commentary is required", "errorDetails": {"inputErrors": [{"code": "MISSING_FIELD"}]}}, PermanentError),
        (500, {"status": 500, "message": "Internal Server Error"}, UncertainError),
        (504, {"status": 504, "message": "Gateway Timeout"}, UncertainError),
    ],
)
def test_error_mapping(fake: LinkedInFake, publisher: LinkedInPublisher, status: int, body: dict, expected: type) -> None:
    fake.answer_next_publish(status, body)
    with pytest.raises(expected) as info:
        publisher.publish(sample_post())
    if expected is PermanentError:
        assert not isinstance(info.value, AuthError)
        assert "Exception" not in info.value.message
    assert fake.posts == []


def test_read_back_failure_is_transient(fake: LinkedInFake, publisher: LinkedInPublisher) -> None:
    fake.script("server_error", when=lambda r: r.method == "GET")
    with pytest.raises(TransientError):
        publisher.find_existing(sample_post())


# --- check and options ----------------------------------------------------------------------------
def test_check_names_the_page_and_role(fake: LinkedInFake, publisher: LinkedInPublisher) -> None:
    health = publisher.check()
    assert health.level is HealthLevel.OK
    assert health.summary == f"Posting to the LinkedIn Page Jakarta Berketahanan ({ORGANIZATION}) as ADMINISTRATOR"
    assert any("60 days" in d for d in health.details)


def test_check_without_a_role_is_an_error(fake: LinkedInFake, publisher: LinkedInPublisher) -> None:
    fake.organization = "urn:li:organization:999"
    health = publisher.check()
    assert health.level is HealthLevel.ERROR and "no approved role" in health.summary


def test_options_validate_organization_and_version(fake: LinkedInFake) -> None:
    env = CONTRACT.env
    options = LinkedInOptions.model_validate({**channel_options(fake), "organization": "12345", "version": 202510}, context={"env": env})
    assert options.organization == ORGANIZATION and options.version == "202510"
    for key, value, words in (("organization", "acme", "urn:li:organization:12345"), ("version", "2025-10", "YYYYMM"), ("version", "202513", "YYYYMM")):
        with pytest.raises(ValidationError) as info:
            LinkedInOptions.model_validate({**channel_options(fake), key: value}, context={"env": env})
        assert words in info.value.errors(include_input=False)[0]["msg"]


def test_no_secret_in_logs_or_errors(fake: LinkedInFake, publisher: LinkedInPublisher, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    errors = []
    publisher.publish(sample_post(image=fake.image_url()))
    for kind in ("rate_limit", "auth", "bad_request", "server_error", "hang", "drop"):
        fake.script(kind)
        with pytest.raises(Exception) as info:
            publisher.publish(sample_post(key=kind, text=f"{kind} post"))
        errors.append(f"{info.value} {info.value!r} {vars(info.value)}")
    fake.script("server_error", when=lambda r: r.path.startswith("/dms-uploads/"))
    publisher.publish(sample_post(image=fake.image_url(), text="with a failed upload"))
    publisher.check()
    assert CANARY not in caplog.text
    assert all(CANARY not in e for e in errors)


def test_read_back_matches_the_card_link_or_the_text_of_a_cardless_post(fake: LinkedInFake, publisher: LinkedInPublisher) -> None:
    receipt = publisher.publish(sample_post(text="Same words"))
    assert publisher.find_existing(sample_post(text="Different words")) == receipt  # same article link
    base = sample_post()
    other_article = type(base.article)(feed="site", key="k2", link="https://example.go.id/lain/", title="Lain")
    other = type(base)(channel="test", key="ap-2", text="Same words", article=other_article, link=other_article.link, title="Lain")
    assert publisher.find_existing(other) is None
    cardless = type(base)(channel="test", key="ap-3", text="Teks saja", article=other_article)
    receipt = publisher.publish(cardless)
    assert publisher.find_existing(cardless) == receipt


# --- issue 11: versions from today's date, permissions for reading back ------------------------


@pytest.mark.parametrize(("today", "expected"), [((2026, 12, 1), "202610"), ((2027, 1, 15), "202611"), ((2027, 2, 28), "202612")])
def test_default_version_is_two_months_back(today, expected) -> None:
    assert default_version(datetime(*today, tzinfo=UTC)) == expected


def test_default_version_never_ages_into_426(fake: LinkedInFake, tmp_path) -> None:
    later = datetime(2029, 7, 3, tzinfo=UTC)
    fake.clock = later.timestamp
    publisher = make_publisher(LinkedInPublisher, channel_options(fake), tmp_path, env=CONTRACT.env, channel="news", now=lambda: later)
    publisher.publish(sample_post())
    assert len(fake.posts) == 1
    assert fake.requests[-1].header("linkedin-version") == "202905"


@pytest.mark.parametrize("months", [13, -1])
def test_the_fake_refuses_versions_outside_the_twelve_month_window(fake: LinkedInFake, months: int) -> None:
    today = datetime.now(UTC)
    index = today.year * 12 + today.month - 1 - months
    version = f"{index // 12:04d}{index % 12 + 1:02d}"
    headers = {"Authorization": f"Bearer {TOKEN}", "LinkedIn-Version": version, "X-Restli-Protocol-Version": "2.0.0"}
    response = requests.get(f"{fake.url}/rest/posts", params={"q": "author", "author": ORGANIZATION}, headers=headers, timeout=2)
    assert response.status_code == 426 and response.json()["code"] == "NONEXISTENT_VERSION"


def test_check_names_the_426_fix(fake: LinkedInFake, tmp_path) -> None:
    with pytest.raises(AuthError) as info:
        _with_version(fake, tmp_path, "202401").check()
    assert "202401" in info.value.message and 'remove version = "202401"' in info.value.message


def test_read_back_without_r_organization_social_cannot_check(fake: LinkedInFake, publisher: LinkedInPublisher) -> None:
    fake.grant(("w_organization_social",))
    with pytest.raises(CannotCheckError) as info:
        publisher.find_existing(sample_post())
    assert info.value.missing_permission == "r_organization_social" and not isinstance(info.value, AuthError)
    publisher.publish(sample_post())  # posting still works
    assert len(fake.posts) == 1


def test_check_reports_whether_doubts_can_be_settled(fake: LinkedInFake, publisher: LinkedInPublisher) -> None:
    fake.grant(("w_organization_social", "r_organization_social"))  # the README's minimum: no admin scope
    health = publisher.check()
    assert health.level is HealthLevel.OK and health.settles_doubts is True
    fake.grant(("w_organization_social",))
    health = publisher.check()
    assert health.level is HealthLevel.OK  # posting works: not a broken token
    assert health.settles_doubts is False and health.missing_permission == "r_organization_social"
    assert any("r_organization_social" in line for line in health.details)
