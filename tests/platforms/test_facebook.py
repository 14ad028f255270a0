"""Facebook Pages adapter and ``autopublish connect facebook``, against the loopback FakeGraph."""

from __future__ import annotations

import json
import logging
import os
import stat
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from autopublish.errors import (
    AuthError,
    CannotCheckError,
    HeldError,
    PermanentError,
    PublishError,
    RateLimitedError,
    TransientError,
    UncertainError,
)
from autopublish.models import HealthLevel
from autopublish.platforms import publisher_class
from autopublish.platforms.meta.connect import facebook_command
from autopublish.platforms.meta.facebook import MAX_MESSAGE, FacebookOptions, FacebookPublisher
from autopublish.platforms.meta.graph import expiry_from_message, link_key, usage_wait
from tests.conftest import make_publisher
from tests.contract import CANARY, publish_under_fault, sample_post
from tests.fakes.base import Request, Response
from tests.fakes.facebook import EXPIRED_MESSAGE, FakeGraph

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
APP_SECRET = "CANARY-app-secret-31337"


@pytest.fixture
def fake(platform_fake) -> FakeGraph:
    server = FakeGraph()
    server.app_secret = APP_SECRET  # the app whose id and secret the channel may be given
    return platform_fake(server)


def make(fake: FakeGraph, tmp_path: Path, **options: object) -> FacebookPublisher:
    values = {"page_id": fake.page_id, "access_token": "${FACEBOOK_PAGE_TOKEN}", "api_base": fake.url, **options}
    env = {"FACEBOOK_PAGE_TOKEN": CANARY, "FACEBOOK_APP_SECRET": APP_SECRET}
    return make_publisher(FacebookPublisher, values, tmp_path, env=env, channel="test", now=lambda: NOW)


def publishes(fake: FakeGraph) -> list[Request]:
    return [r for r in fake.requests if fake.is_publish(r)]


def is_scrape(request: Request) -> bool:
    return request.method == "POST" and request.param("scrape") == "true"


def no_secret_anywhere(fake: FakeGraph, *texts: str) -> None:
    for text in texts:
        assert CANARY not in text
    for request in fake.requests:  # the token never travels in a URL
        assert CANARY not in json.dumps(request.query)


# --- registry and options --------------------------------------------------------------
def test_registered_under_its_name():
    assert publisher_class("facebook") is FacebookPublisher


@pytest.mark.parametrize("given, kept", [("v23.0", "v23.0"), ("23.0", "v23.0"), ("v25.1", "v25.1")])
def test_api_version_accepts_vNN_N(given, kept, fake, tmp_path):
    assert make(fake, tmp_path, api_version=given).options.api_version == kept


@pytest.mark.parametrize("bad", ["v3.1", "2.8", "v23", "23", "latest", "v23.0.1", "V23.0", ""])
def test_api_version_refuses_anything_else(bad, fake, tmp_path):
    with pytest.raises(ValidationError) as info:
        make(fake, tmp_path, api_version=bad)
    assert 'like "v23.0"' in str(info.value)


def test_defaults_are_current_and_safe(fake, tmp_path):
    opts = FacebookOptions.model_validate(
        {"page_id": 1122334455, "access_token": "${T}"}, context={"env": {"T": CANARY}}
    )
    assert opts.api_version == "v23.0"
    assert opts.api_base == "https://graph.facebook.com"
    assert opts.post_as == "link" and opts.rescrape is True
    assert opts.page_id == "1122334455"
    assert CANARY not in repr(opts) and CANARY not in opts.model_dump_json()


def test_options_refuse_bad_values():
    env = {"env": {"T": CANARY}}
    with pytest.raises(ValidationError, match="numeric id"):
        FacebookOptions.model_validate({"page_id": "my-page", "access_token": "${T}"}, context=env)
    with pytest.raises(ValidationError, match="secrets are not written in the config"):
        FacebookOptions.model_validate({"page_id": "1", "access_token": "EAAB..."}, context=env)
    with pytest.raises(ValidationError):
        FacebookOptions.model_validate({"page_id": "1", "access_token": "${T}", "post_as": "video"}, context=env)
    with pytest.raises(ValidationError, match="api_base"):
        FacebookOptions.model_validate({"page_id": "1", "access_token": "${T}", "api_base": "graph.facebook.com"}, context=env)


# --- publishing ------------------------------------------------------------------------------
def test_link_post_is_one_feed_post_with_message_and_link(fake, tmp_path):
    publisher = make(fake, tmp_path)
    post = sample_post()
    receipt = publisher.publish(post)
    assert len(fake.posts) == 1 and len(publishes(fake)) == 1
    sent = publishes(fake)[0]
    assert sent.path == f"/v23.0/{fake.page_id}/feed"
    assert sent.param("message") == post.text
    assert sent.param("link") == post.link
    stored = fake.posts[0]
    assert receipt.remote_id == stored["id"] and receipt.remote_id.startswith(f"{fake.page_id}_")
    number = receipt.remote_id.split("_", 1)[1]
    assert receipt.url == f"https://www.facebook.com/{fake.page_id}/posts/{number}"


def test_rescrape_comes_before_the_post(fake, tmp_path):
    publisher = make(fake, tmp_path)
    publisher.publish(sample_post())
    kinds = ["scrape" if is_scrape(r) else "post" if fake.is_publish(r) else "other" for r in fake.requests]
    assert kinds == ["scrape", "post"]
    assert fake.scrapes == [sample_post().link]


def test_no_rescrape_when_turned_off(fake, tmp_path):
    make(fake, tmp_path, rescrape=False).publish(sample_post())
    assert fake.scrapes == [] and len(fake.posts) == 1


@pytest.mark.parametrize("failure", ["graph_error", "html_500", "hang"])
def test_failed_rescrape_does_not_block_the_post(failure, fake, tmp_path, caplog):
    publisher = make(fake, tmp_path)
    if failure == "graph_error":
        fake.fail_next(code=1609005, message="Error scraping the link", when=is_scrape)
    elif failure == "html_500":
        fake.script("server_error", when=is_scrape)
    else:
        fake.script("hang", when=is_scrape)
    with caplog.at_level(logging.WARNING, logger="autopublish.platforms.meta.facebook"):
        receipt = publisher.publish(sample_post())
    assert receipt.remote_id and len(fake.posts) == 1
    assert "link preview" in caplog.text


def test_photo_post_uses_the_image_url_and_puts_the_link_in_the_caption(fake, tmp_path):
    publisher = make(fake, tmp_path, post_as="photo")
    post = sample_post(image=fake.image_url(), text="Kunjungan delegasi Myanmar")
    receipt = publisher.publish(post)
    sent = publishes(fake)[0]
    assert sent.path == f"/v23.0/{fake.page_id}/photos"
    assert sent.param("url") == fake.image_url()
    assert sent.param("caption") == f"Kunjungan delegasi Myanmar\n\n{post.link}"
    assert len(fake.photo_posts) == 1 and fake.scrapes == []
    assert receipt.remote_id == fake.posts[0]["id"]  # the post's id, not the photo's


def test_photo_caption_does_not_repeat_a_link_already_in_the_text(fake, tmp_path):
    post = sample_post(image=fake.image_url())  # the sample text ends with the link
    make(fake, tmp_path, post_as="photo").publish(post)
    assert publishes(fake)[0].param("caption") == post.text


def test_photo_mode_without_an_image_posts_the_link(fake, tmp_path):
    make(fake, tmp_path, post_as="photo").publish(sample_post(image=None))
    assert len(fake.feed_posts) == 1 and fake.feed_posts[0]["link"] == sample_post().link


def test_photo_facebook_cannot_fetch_falls_back_to_the_link(fake, tmp_path):
    post = sample_post(image=fake.url + "/missing/foto.png")
    make(fake, tmp_path, post_as="photo").publish(post)
    assert len(fake.posts) == 1 and fake.feed_posts[0]["link"] == post.link


@pytest.mark.parametrize("code, message", [(100, "(#100) url should represent a valid URL"), (324, "(#324) Missing or invalid image file"),
                                           (100, "(#100) Failed to fetch the image")])
def test_any_image_fetch_failure_falls_back_to_the_link(code, message, fake, tmp_path):
    fake.fail_next(code=code, message=message, when=lambda r: r.path.endswith("/photos"))
    post = sample_post(image=fake.image_url())
    make(fake, tmp_path, post_as="photo").publish(post)
    assert fake.photo_posts == [] and len(fake.feed_posts) == 1 and fake.feed_posts[0]["link"] == post.link


def test_a_server_error_on_the_photo_is_not_a_fallback(fake, tmp_path):
    fake.fail_next(code=2, is_transient=True, when=lambda r: r.path.endswith("/photos"))
    with pytest.raises(UncertainError):  # the photo may have been posted: never post the link as well
        make(fake, tmp_path, post_as="photo").publish(sample_post(image=fake.image_url()))
    assert fake.feed_posts == []


def test_text_post_sends_the_message_alone(fake, tmp_path):
    post = sample_post(text="Selamat pagi, Jakarta!")
    make(fake, tmp_path, post_as="text").publish(post)
    sent = publishes(fake)[0]
    assert sent.param("message") == "Selamat pagi, Jakarta!" and sent.param("link") is None
    assert fake.scrapes == []


def test_empty_text_post_is_permanent(fake, tmp_path):
    with pytest.raises(PermanentError):
        make(fake, tmp_path, post_as="text").publish(sample_post(text="   "))
    assert fake.posts == []


def test_token_travels_in_a_header_or_the_body_never_the_url(fake, tmp_path):
    publisher = make(fake, tmp_path)
    publisher.publish(sample_post())
    publisher.find_existing(sample_post())
    publisher.check()
    for request in fake.requests:
        assert "access_token" not in request.query
        carried = request.header("authorization") == f"OAuth {CANARY}" or request.form.get("access_token") == [CANARY]
        assert carried


def test_appsecret_proof_is_sent_when_configured(fake, tmp_path):
    fake.app_secret_for_proof = APP_SECRET
    publisher = make(fake, tmp_path, app_secret="${FACEBOOK_APP_SECRET}")
    publisher.publish(sample_post())
    assert publisher.find_existing(sample_post()) is not None
    assert publisher.check().level == HealthLevel.OK
    bare = make(fake, tmp_path)
    with pytest.raises(PermanentError) as info:
        bare.publish(sample_post())
    assert APP_SECRET not in f"{info.value} {vars(info.value)}"


# --- length ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text",
    [
        "Kunjungan delegasi Myanmar ke Balai Kota",
        "雅加达韧性城市代表团访问",
        "زيارة وفد ميانمار إلى جاكرتا",
        "म्यांमार प्रतिनिधिमंडल की यात्रा",
        "👩‍👩‍👧‍👦🇮🇩 keluarga",
    ],
)
def test_count_is_characters_never_fewer_than_graphemes(text, fake, tmp_path):
    publisher = make(fake, tmp_path)
    assert publisher.count(text) == len(text)
    assert publisher.count(text) >= len(__import__("regex").findall(r"\X", text))


def test_limits_per_mode(fake, tmp_path):
    link = make(fake, tmp_path).current_limits()
    assert link.max_length == MAX_MESSAGE == 63206 and link.link_card and link.images
    photo = make(fake, tmp_path, post_as="photo").current_limits()
    assert photo.max_length < MAX_MESSAGE and not photo.link_card
    assert not make(fake, tmp_path, post_as="text").current_limits().link_card


def test_text_at_the_limit_goes_and_over_it_never_leaves(fake, tmp_path):
    publisher = make(fake, tmp_path, post_as="text", rescrape=False)
    publisher.publish(sample_post(text="ब" * MAX_MESSAGE))
    assert len(fake.posts) == 1
    with pytest.raises(PermanentError, match="63206"):
        publisher.publish(sample_post(text="雅" * (MAX_MESSAGE + 1)))
    assert len(fake.posts) == 1 and len(publishes(fake)) == 1


# --- errors ---------------------------------------------------------------------------------------
def test_rate_limited_then_fine_makes_one_post(fake, tmp_path):
    publisher = make(fake, tmp_path)
    info = publish_under_fault(publisher, fake, "rate_limit", RateLimitedError)
    assert info.value.retry_after == 19 * 60  # X-Business-Use-Case-Usage: 19 minutes
    assert fake.posts == []
    publisher.publish(sample_post())
    assert len(fake.posts) == 1


def test_app_rate_limit_without_a_time_waits_the_default(fake, tmp_path):
    fake.rate_limit_style = "app"
    info = publish_under_fault(make(fake, tmp_path), fake, "rate_limit", RateLimitedError)
    assert info.value.retry_after == 15 * 60


BUC = {"X-Business-Use-Case-Usage": json.dumps({"1122334455": [{"type": "pages", "call_count": 100, "estimated_time_to_regain_access": 42}]})}


@pytest.mark.parametrize(
    "code, subcode, status, headers, expected, retry_after",
    [
        (1, None, 400, None, UncertainError, None),  # codes 1/2 after a write may have been applied
        (2, None, 400, None, UncertainError, None),
        (2, None, 500, None, UncertainError, None),
        (4, None, 403, None, RateLimitedError, 900),
        (17, None, 400, None, RateLimitedError, 900),
        (32, None, 400, BUC, RateLimitedError, 42 * 60),
        (341, None, 400, None, RateLimitedError, 900),
        (613, None, 400, None, RateLimitedError, 900),
        (80001, None, 400, BUC, RateLimitedError, 42 * 60),
        (368, 1390008, 400, None, RateLimitedError, 6 * 3600),  # only "posting too fast" is a rate limit
        (368, None, 400, None, HeldError, None),  # any other 368 is a policy block
        (368, 1404102, 400, None, HeldError, None),
        (100, 463, 400, None, AuthError, None),  # a token subcode without code 190 is still a dead token
        (190, 463, 400, None, AuthError, None),
        (190, 460, 400, None, AuthError, None),
        (190, 458, 400, None, AuthError, None),
        (190, None, 400, None, AuthError, None),
        (102, None, 400, None, AuthError, None),
        (10, None, 403, None, AuthError, None),
        (200, None, 403, None, AuthError, None),
        (283, None, 403, None, AuthError, None),
        (506, None, 400, None, UncertainError, None),
        (100, None, 400, None, PermanentError, None),
        (100, 33, 400, None, PermanentError, None),
        (12, None, 400, None, PermanentError, None),
    ],
)
def test_graph_error_codes_map_to_the_core_vocabulary(code, subcode, status, headers, expected, retry_after, fake, tmp_path):
    fake.fail_next(code=code, subcode=subcode, status=status, headers=headers)
    with pytest.raises(PublishError) as info:
        make(fake, tmp_path).publish(sample_post())
    error = info.value
    assert type(error) is expected
    assert error.code == code and error.platform == "facebook" and error.channel == "test"
    if retry_after is not None:
        assert error.retry_after == retry_after
    assert fake.posts == []
    no_secret_anywhere(fake, str(error), repr(error), repr(vars(error)))


def test_is_transient_flag_is_uncertain_on_a_write_and_transient_on_a_read(fake, tmp_path):
    fake.fail_next(code=9999, is_transient=True)
    with pytest.raises(UncertainError):
        make(fake, tmp_path).publish(sample_post())
    fake.fail_next(code=9999, is_transient=True, when=lambda r: r.method == "GET")
    with pytest.raises(TransientError) as info:
        make(fake, tmp_path).find_existing(sample_post())
    assert not isinstance(info.value, UncertainError)


def test_policy_block_is_held_with_the_platforms_own_words(fake, tmp_path):
    fake.fail_next(code=368, message="(#368) The action attempted has been deemed abusive or is otherwise disallowed")
    with pytest.raises(HeldError) as info:
        make(fake, tmp_path).publish(sample_post())
    assert "deemed abusive or is otherwise disallowed" in info.value.message
    assert "retry or skip" in info.value.message and fake.posts == []


def test_expired_token_tells_the_admin_what_to_do(fake, tmp_path):
    fake.expire_token()
    publisher = make(fake, tmp_path)
    with pytest.raises(AuthError) as info:
        publisher.publish(sample_post())
    error = info.value
    assert error.message == (
        "Facebook says the Page token expired on 14 November 2026; create a new Page token "
        "(autopublish connect facebook), put it in .env as FACEBOOK_PAGE_TOKEN and run: autopublish resume test"
    )
    assert error.expires_at == datetime(2026, 11, 14, 12, 0, tzinfo=UTC)  # 04:00 PST
    with pytest.raises(AuthError):
        publisher.find_existing(sample_post())
    with pytest.raises(AuthError):
        publisher.check()
    assert fake.posts == []
    fake.reset_token()
    publisher.publish(sample_post())
    assert len(fake.posts) == 1


def test_missing_permission_names_it(fake, tmp_path):
    fake.missing_permission = "pages_manage_posts"
    with pytest.raises(AuthError) as info:
        make(fake, tmp_path).publish(sample_post())
    assert "pages_manage_posts" in info.value.message
    assert "autopublish resume test" in info.value.message
    fake.missing_permission = "pages_read_engagement"
    with pytest.raises(CannotCheckError) as refused:  # a refused read-back never pauses the channel
        make(fake, tmp_path).find_existing(sample_post())
    assert refused.value.missing_permission == "pages_read_engagement"


def test_duplicate_is_uncertain(fake, tmp_path):
    fake.fail_next(code=506, message="(#506) Duplicate status message")
    with pytest.raises(UncertainError, match="duplicate"):
        make(fake, tmp_path).publish(sample_post())


@pytest.mark.parametrize("mode", ["link", "photo", "text"])
def test_act_then_drop_is_settled_by_reading_back(mode, fake, tmp_path):
    publisher = make(fake, tmp_path, post_as=mode)
    text = None if mode != "text" else f"Kunjungan delegasi Myanmar {sample_post().link}"
    post = sample_post(image=fake.image_url(), text=text)
    fake.script("drop")
    with pytest.raises(UncertainError):
        publisher.publish(post)
    found = publisher.find_existing(post)
    assert found is not None
    assert found.remote_id == fake.posts[0]["id"] and found.url == fake.posts[0]["permalink_url"]
    assert len(fake.posts) == 1  # the core marks it sent: exactly one post


def test_act_then_hang_is_uncertain(fake, tmp_path):
    publish_under_fault(make(fake, tmp_path), fake, "hang", UncertainError)
    assert len(fake.posts) == 1


@pytest.mark.parametrize(
    "answer",
    [
        Response(500, "<html><body>Sorry, something went wrong.</body></html>", {"Content-Type": "text/html"}),
        Response.json_body(500, {"id": "1122334455_1"}),  # facebook-sdk alone would call this success
        Response.json_body(502, {"message": "bad gateway"}),
        Response(200, "<html>ok?</html>", {"Content-Type": "text/html"}),
        Response(200, b"{not json", {"Content-Type": "application/json"}),
        Response(200, b'{"id": "1"}', {}),  # no Content-Type: facebook-sdk would raise KeyError
        Response.json_body(200, {"success": True}),  # no id
    ],
)
def test_unreadable_or_5xx_answers_to_a_post_are_never_success(answer, fake, tmp_path):
    fake.answer_next(answer)
    with pytest.raises(UncertainError) as info:
        make(fake, tmp_path).publish(sample_post())
    no_secret_anywhere(fake, str(info.value), repr(vars(info.value)))


def test_5xx_html_to_a_read_is_transient(fake, tmp_path):
    fake.script("server_error", when=lambda r: r.method == "GET")
    with pytest.raises(TransientError) as info:
        make(fake, tmp_path).find_existing(sample_post())
    assert not isinstance(info.value, UncertainError)


def test_refused_connection_is_transient_and_quiet(fake, tmp_path):
    publisher = make(fake, tmp_path)
    fake.stop()
    for call in (lambda: publisher.publish(sample_post()), lambda: publisher.find_existing(sample_post()), publisher.check):
        with pytest.raises(TransientError) as info:
            call()
        assert info.value.__cause__ is None and info.value.__context__ is None
        assert CANARY not in f"{info.value} {vars(info.value)}"


# --- read back --------------------------------------------------------------------------------
def test_find_existing_finds_nothing_on_an_empty_page(fake, tmp_path):
    assert make(fake, tmp_path).find_existing(sample_post()) is None
    request = fake.requests[-1]
    assert request.path == f"/v23.0/{fake.page_id}/published_posts"
    assert "permalink_url" in (request.param("fields") or "")


def test_find_existing_matches_the_link_loosely_and_ignores_other_posts(fake, tmp_path):
    publisher = make(fake, tmp_path)
    other = sample_post(key="ap-2", text="Berita lain")
    other = replace(other, link="https://example.go.id/berita/lain/", article=replace(other.article, link="https://example.go.id/berita/lain/"))
    publisher.publish(other)
    assert publisher.find_existing(sample_post()) is None
    variant = "http://www.example.go.id/berita/myanmar-cordaid"  # scheme, www. and trailing slash differ
    fake.posts.append({**fake.posts[0], "id": f"{fake.page_id}_42", "link": variant, "message": "x", "permalink_url": "https://www.facebook.com/p/42"})
    found = publisher.find_existing(sample_post())
    assert found is not None and found.remote_id == f"{fake.page_id}_42" and found.url == "https://www.facebook.com/p/42"


def test_find_existing_matches_a_link_inside_the_message(fake, tmp_path):
    publisher = make(fake, tmp_path, post_as="text")
    post = sample_post()  # text ends with the article link and hashtags
    publisher.publish(post)
    assert publisher.find_existing(post) is not None


def test_link_key_is_the_feeds_canonical_link():
    assert link_key("https://www.Example.go.id/a/") == link_key("http://example.go.id/a")
    assert link_key("https://example.go.id/a?p=1&utm_source=fb#x") == "example.go.id/a?p=1"
    assert link_key("https://l.facebook.com/l.php?u=http%3A%2F%2Fexample.go.id%2Fa&h=AT") == link_key("https://example.go.id/a")
    assert link_key("https://example.go.id/a") != link_key("https://example.go.id/b")


# --- check ---------------------------------------------------------------------------------------
APP = {"app_id": "4400112233", "app_secret": "${FACEBOOK_APP_SECRET}"}


def test_check_without_app_credentials_says_what_it_cannot_know(fake, tmp_path):
    health = make(fake, tmp_path).check()
    assert health.level == HealthLevel.OK  # no false warning: the token works, its details are unknown
    assert "Jakarta Berketahanan" in health.summary
    assert "cannot be read" in " ".join(health.details) and "app_id and app_secret" in " ".join(health.details)
    assert not [r for r in fake.requests if r.param("batch")]  # no debug_token call it knows would fail


def test_debug_token_refuses_a_page_token_as_facebook_does(fake, tmp_path):
    publisher = make(fake, tmp_path)
    status, body = publisher.client.batch_get(f"debug_token?input_token={CANARY}")
    assert status == 400 and body["error"]["code"] == 100 and "app access token" in body["error"]["message"]


def test_check_with_a_wrong_app_secret_warns_plainly(fake, tmp_path):
    fake.app_secret = "another-secret"
    health = make(fake, tmp_path, **APP).check()
    assert health.level == HealthLevel.WARNING and "app_secret" in " ".join(health.details)


def test_check_names_the_page_and_a_token_that_never_expires(fake, tmp_path):
    health = make(fake, tmp_path, **APP).check()
    assert health.level == HealthLevel.OK
    assert "Jakarta Berketahanan" in health.summary and fake.page_id in health.summary
    assert "does not expire" in " ".join(health.details)
    assert health.expires_at is None


def test_check_warns_a_week_before_expiry(fake, tmp_path):
    soon = NOW + timedelta(days=3)
    fake.token_expires_at = int(soon.timestamp())
    health = make(fake, tmp_path, **APP).check()
    assert health.level == HealthLevel.WARNING and health.expires_at == soon
    assert "30 November 2026" in " ".join(health.details)
    fake.token_expires_at = int((NOW + timedelta(days=40)).timestamp())
    assert make(fake, tmp_path, **APP).check().level == HealthLevel.OK


def test_check_errors_on_an_expired_or_foreign_or_user_token(fake, tmp_path):
    fake.token_expires_at = int((NOW - timedelta(days=1)).timestamp())
    assert make(fake, tmp_path, **APP).check().level == HealthLevel.ERROR
    fake.token_expires_at = 0
    fake.token_type = "USER"
    health = make(fake, tmp_path, **APP).check()
    assert health.level == HealthLevel.ERROR and "not a Page token" in health.summary


def test_check_names_missing_scopes(fake, tmp_path):
    fake.token_scopes = ["pages_show_list", "pages_read_engagement"]
    health = make(fake, tmp_path, **APP).check()
    assert health.level == HealthLevel.ERROR and "pages_manage_posts" in health.summary
    fake.token_scopes = ["pages_show_list", "pages_manage_posts"]  # Facebook wants both to post
    health = make(fake, tmp_path, **APP).check()
    assert health.level == HealthLevel.ERROR and "pages_read_engagement" in health.summary
    assert health.settles_doubts is False and health.missing_permission == "pages_read_engagement"
    fake.token_scopes = ["pages_manage_posts", "pages_read_engagement"]
    assert make(fake, tmp_path, **APP).check().settles_doubts is True
    assert make(fake, tmp_path).check().settles_doubts is None  # without the app's credentials: unknown


def test_check_reports_a_version_facebook_no_longer_serves(fake, tmp_path):
    fake.served_version = "v25.0"
    health = make(fake, tmp_path).check()
    assert health.level == HealthLevel.WARNING and 'api_version = "v25.0"' in " ".join(health.details)


def test_debug_token_rides_in_a_post_body(fake, tmp_path):
    make(fake, tmp_path, **APP).check()
    batch = [r for r in fake.requests if r.param("batch")]
    assert len(batch) == 1 and batch[0].method == "POST" and CANARY in batch[0].param("batch")
    assert batch[0].param("access_token") == f"{fake.app_id}|{APP_SECRET}"  # debug_token answers only to the app
    assert all(CANARY not in json.dumps(r.query) for r in fake.requests)


# --- secrecy -------------------------------------------------------------------------------------
def test_canary_never_in_debug_logs_or_error_texts(fake, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="urllib3")  # the CLI's setup may have quietened it
    publisher = make(fake, tmp_path)
    texts: list[str] = []
    publisher.publish(sample_post())
    publisher.find_existing(sample_post())
    publisher.check()
    for setup in ("rate_limit", "auth", "bad_request", "server_error", "hang", "drop"):
        fake.script(setup)
        with pytest.raises(PublishError) as info:
            publisher.publish(sample_post(key=setup))
        texts += [str(info.value), repr(info.value), repr(vars(info.value))]
    fake.expire_token()
    for call in (lambda: publisher.publish(sample_post()), lambda: publisher.find_existing(sample_post()), publisher.check):
        with pytest.raises(PublishError) as info:
            call()
        texts += [str(info.value), repr(vars(info.value))]
    fake.stop()
    for call in (lambda: publisher.publish(sample_post()), lambda: publisher.find_existing(sample_post()), publisher.check):
        with pytest.raises(PublishError) as info:
            call()
        texts += [str(info.value), repr(vars(info.value))]
    assert "urllib3" in caplog.text  # DEBUG request lines were captured, and hold no token
    assert CANARY not in caplog.text
    no_secret_anywhere(fake, *texts)


def test_expiry_and_usage_parsing():
    assert expiry_from_message(EXPIRED_MESSAGE) == datetime(2026, 11, 14, 12, 0, tzinfo=UTC)
    assert expiry_from_message("Invalid OAuth access token.") is None
    assert usage_wait({"X-App-Usage": json.dumps({"call_count": 100})}) is None
    assert usage_wait(BUC) == 42 * 60


# --- autopublish connect facebook ------------------------------------------------------------------
def connect_args(fake: FakeGraph, env_file: Path, *extra: str) -> list[str]:
    return [
        "--app-id", fake.app_id, "--app-secret", fake.app_secret, "--user-token", fake.user_token,
        "--env-file", str(env_file), "--api-base", fake.url, *extra,
    ]


def test_connect_writes_the_page_token_without_printing_it(fake, tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("# autopublish\nMASTODON_TOKEN=abc\nFACEBOOK_PAGE_TOKEN=old-token\nOTHER=1\n")
    result = CliRunner().invoke(facebook_command, connect_args(fake, env_file, "--page", fake.page_id))
    assert result.exit_code == 0, result.output
    assert env_file.read_text() == (
        f"# autopublish\nMASTODON_TOKEN=abc\nFACEBOOK_PAGE_TOKEN={CANARY}\nOTHER=1\nFACEBOOK_APP_SECRET={fake.app_secret}\n"
    )
    assert f'app_id = "{fake.app_id}"' in result.output and "does not expire" in result.output
    assert stat.S_IMODE(os.stat(env_file).st_mode) == 0o600
    assert "Jakarta Berketahanan" in result.output and fake.page_id in result.output
    assert "FACEBOOK_PAGE_TOKEN" in result.output
    for secret in (CANARY, fake.app_secret, fake.user_token, fake.long_user_token, "other-page-token-2233"):
        assert secret not in result.output
        assert all(secret not in json.dumps(r.query) for r in fake.requests)
    exchange = [r for r in fake.requests if r.path.endswith("/oauth/access_token")]
    assert exchange and exchange[0].method == "POST" and exchange[0].path.startswith("/v23.0/")


def test_connect_asks_which_page(fake, tmp_path):
    env_file = tmp_path / "conf" / ".env"
    result = CliRunner().invoke(facebook_command, connect_args(fake, env_file, "--env-name", "FB_TOKEN"), input="1\n")
    assert result.exit_code == 0, result.output
    assert "1. Balai Kota Jakarta (id 2233445566)" in result.output
    assert env_file.read_text() == f"FB_TOKEN=other-page-token-2233\nFACEBOOK_APP_SECRET={fake.app_secret}\n"
    assert "other-page-token-2233" not in result.output


def test_connect_prompts_for_secrets_without_echo(fake, tmp_path):
    env_file = tmp_path / ".env"
    args = ["--app-id", fake.app_id, "--env-file", str(env_file), "--api-base", fake.url, "--page", fake.page_id]
    result = CliRunner().invoke(facebook_command, args, input=f"{fake.app_secret}\n{fake.user_token}\n")
    assert result.exit_code == 0, result.output
    assert fake.app_secret not in result.output and fake.user_token not in result.output
    assert f"FACEBOOK_PAGE_TOKEN={CANARY}" in env_file.read_text()


@pytest.mark.parametrize(
    "change, words",
    [
        ({"--app-secret": "wrong"}, "app id or app secret"),
        ({"--user-token": "stale-token"}, "did not accept the user token"),
        ({"--page": "999"}, "do not manage a Page with id 999"),
    ],
)
def test_connect_failures_are_plain_sentences_with_exit_1(change, words, fake, tmp_path):
    env_file = tmp_path / ".env"
    args = connect_args(fake, env_file, "--page", fake.page_id)
    for option, value in change.items():
        args[args.index(option) + 1] = value
    result = CliRunner().invoke(facebook_command, args)
    assert result.exit_code == 1
    assert words in result.output and "Traceback" not in result.output
    assert not env_file.exists()


def test_connect_without_pages_or_network_exits_1(fake, tmp_path):
    fake.accounts = []
    result = CliRunner().invoke(facebook_command, connect_args(fake, tmp_path / ".env"))
    assert result.exit_code == 1 and "no Pages" in result.output
    fake.stop()
    result = CliRunner().invoke(facebook_command, connect_args(fake, tmp_path / ".env"))
    assert result.exit_code == 1 and "Could not reach Facebook" in result.output


@pytest.mark.parametrize("option, value", [("--api-version", "3.1"), ("--env-name", "1BAD"), ("--app-id", "abc")])
def test_connect_usage_errors_exit_2(option, value, fake, tmp_path):
    args = connect_args(fake, tmp_path / ".env")
    if option in args:
        args[args.index(option) + 1] = value
    else:
        args += [option, value]
    result = CliRunner().invoke(facebook_command, args)
    assert result.exit_code == 2


def test_publisher_post_from_a_fresh_connect_works(fake, tmp_path):
    """The token connect writes is the one the channel then posts with."""
    env_file = tmp_path / ".env"
    CliRunner().invoke(facebook_command, connect_args(fake, env_file, "--page", fake.page_id))
    name, _, value = env_file.read_text().splitlines()[0].partition("=")
    keys = {"page_id": fake.page_id, "access_token": "${" + name + "}", "api_base": fake.url}
    make_publisher(FacebookPublisher, keys, tmp_path, env={name: value}, channel="site-page").publish(sample_post())
    assert len(fake.posts) == 1



@pytest.mark.parametrize(
    "answer, expected",
    [
        (Response(429, "<html>Too Many Requests</html>", {"Content-Type": "text/html", "Retry-After": "120"}), RateLimitedError),
        (Response(403, "<html>Forbidden</html>", {"Content-Type": "text/html"}), AuthError),
        (Response(408, "<html>Request Timeout</html>", {"Content-Type": "text/html"}), TransientError),
    ],
)
def test_a_proxys_page_without_graphs_envelope_takes_the_shared_rules(answer, expected, fake, tmp_path):
    """No error envelope, so no Graph code to read: the HTTP status decides, as for every adapter (Publisher.classify)."""
    fake.answer_next(answer)
    with pytest.raises(PublishError) as info:
        make(fake, tmp_path).publish(sample_post())
    assert type(info.value) is expected and info.value.code == answer.status and fake.posts == []
    if expected is RateLimitedError:
        assert info.value.retry_after == 120
