"""Instagram adapter against the loopback Instagram Graph fake."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest

from autopublish.errors import AuthError, CannotCheckError, PermanentError, RateLimitedError, TransientError, UncertainError
from autopublish.models import HealthLevel
from autopublish.platforms.base import count_utf16 as utf16_length
from autopublish.platforms.meta.instagram import NO_IMAGE, InstagramOptions, InstagramPublisher, limit_hashtags
from tests.conftest import make_publisher
from tests.contract import CANARY, errors_under_faults, publish_when_ready, sample_post
from tests.fakes.base import Response
from tests.fakes.instagram import CONTRACT, InstagramFake
from tests.fakes.threads import TIMESTAMP_FORMAT, graph_error
from tests.platforms.meta_setup import (
    INSTAGRAM,
    KINDS_IN_ORDER,
    assert_canary_kept_out,
    assert_check_names_account_and_quota,
    error_from_graph,
    issue_channel_keys,
    meta_fixtures,
    requests_to,
)

LINK = "https://example.go.id/berita/myanmar-cordaid/"


fake, publisher = meta_fixtures(InstagramFake, CONTRACT, InstagramPublisher)
creates, publishes = INSTAGRAM.creates, INSTAGRAM.publishes


# --- posting -----------------------------------------------------------------------------
def test_image_post_uses_the_versioned_graph_path_and_returns_the_permalink(fake, publisher):
    receipt = publish_when_ready(publisher, sample_post(image=fake.image_url()), fake)
    [create] = requests_to(fake, creates)
    assert create.path == f"/v23.0/{fake.user_id}/media"
    assert create.form["image_url"] == [fake.image_url()]
    assert create.form["alt_text"] == ["Delegasi Myanmar di Balai Kota"]
    assert LINK in create.form["caption"][0]
    assert "access_token" not in create.query and create.form["access_token"] == [CANARY]
    [item] = fake.media
    assert receipt.remote_id == item["id"]
    assert receipt.url == item["permalink"] and receipt.url.startswith("https://www.instagram.com/p/")


def test_article_without_an_image_is_refused_without_a_request(fake, publisher):
    with pytest.raises(PermanentError) as info:
        publish_when_ready(publisher, sample_post(image=None), fake)
    assert info.value.message == NO_IMAGE
    assert not isinstance(info.value, AuthError)
    assert fake.requests == []


def test_limits_tell_the_core_an_image_is_required():
    limits = InstagramPublisher.limits
    assert limits.image_required and limits.max_hashtags == 30 and limits.max_length == 2200


def test_hashtags_past_thirty_are_dropped_from_the_end(fake, publisher):
    tags = " ".join(f"#tag{n}" for n in range(35))
    publish_when_ready(publisher, sample_post(image=fake.image_url(), text=f"Kunjungan #Berita\n\n{LINK}\n\n{tags}"), fake)
    caption = requests_to(fake, creates)[0].form["caption"][0]
    assert caption.count("#") == 30
    assert caption.startswith("Kunjungan #Berita") and caption.endswith("#tag28")
    assert "#tag29" not in caption


def test_limit_hashtags_keeps_urls_fragments_and_entities():
    text = "Baca https://example.go.id/a#bagian &#39; " + " ".join(f"#t{n}" for n in range(31))
    limited = limit_hashtags(text)
    assert "https://example.go.id/a#bagian" in limited and "&#39;" in limited
    assert limited.endswith("#t29") and "#t30" not in limited
    assert limit_hashtags("#satu #dua") == "#satu #dua"


def test_image_instagram_cannot_process_fails_after_a_bounded_number_of_containers(fake, publisher):
    fake.image_fails = True
    with pytest.raises(PermanentError) as info:
        publish_when_ready(publisher, sample_post(image=fake.image_url()), fake)
    assert "could not prepare the post" in info.value.message and "3 attempts" in info.value.message
    assert fake.media == [] and len(requests_to(fake, creates)) == 3


@pytest.mark.parametrize("name, body, kind", [("foto.png", None, "a PNG"), ("foto.jpg", "png", "a PNG"), ("foto.gif", b"GIF89a....", "a GIF")])
def test_only_a_jpeg_is_sent_and_the_type_is_read_from_the_bytes(fake, publisher, name, body, kind):
    from tests.fakes.base import TINY_PNG

    if body is not None:  # a PNG (or GIF) behind a .jpg-looking URL and an image/jpeg header
        fake.images[name] = (TINY_PNG if body == "png" else body, "image/jpeg")
    url = f"{fake.url}/_image/{name}"
    with pytest.raises(PermanentError) as info:
        publisher.publish(sample_post(image=url))
    assert info.value.message.startswith(f"Instagram takes JPEG images only, and this article's image is {kind}")
    assert requests_to(fake, creates) == [] and fake.media == []


def test_the_fake_refuses_what_instagram_refuses(fake, publisher):
    """The fake itself fetches the image and refuses anything but a JPEG, as Meta does."""
    answer = requests_post(fake, {"image_url": f"{fake.url}/_image/plain.png", "caption": "x"})
    assert answer["error"]["error_subcode"] == 2207083
    ok = requests_post(fake, {"image_url": fake.image_url(), "caption": "x"})
    assert "id" in ok


def requests_post(fake: InstagramFake, data: dict[str, str]) -> dict:
    import requests as http

    return http.post(f"{fake.url}/v23.0/{fake.user_id}/media", data={**data, "access_token": CANARY}, timeout=5).json()


def test_an_image_that_cannot_be_downloaded_now_is_transient_and_a_missing_one_permanent(fake, publisher):
    with pytest.raises(PermanentError) as info:
        publisher.publish(sample_post(image=f"{fake.url}/nothing-here.jpg"))  # the fake answers a Graph 400 for unknown paths
    assert "cannot be downloaded" in info.value.message
    fake.stop()
    with pytest.raises(TransientError) as transient:
        publisher.publish(sample_post(image=f"{fake.url}/_image/foto.jpg"))
    assert not isinstance(transient.value, PermanentError)


def test_permalink_read_failure_does_not_fail_the_publish(fake, publisher):
    fake.permalink_fails = True
    receipt = publish_when_ready(publisher, sample_post(image=fake.image_url()), fake)
    assert receipt.remote_id == fake.media[0]["id"] and receipt.url is None


# --- caption length ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Kunjungan delegasi", 18),
        ("雅加达韧性城市", 7),
        ("مرحبا بالعالم", 13),
        ("नमस्ते", 6),
        ("👍", 2),
        ("👨‍👩‍👧‍👦", 11),
        ("🇮🇩", 4),
    ],
)
def test_caption_length_is_counted_in_utf16_units(publisher, text, expected):
    assert utf16_length(text) == expected == publisher.count(text)


def multilingual(length: int, count) -> str:
    parts = ["Kunjungan delegasi Myanmar ", "雅加达韧性城市 ", "مرحبا بالعالم ", "नमस्ते दुनिया ", "👨‍👩‍👧‍👦 ", "🇮🇩 "]
    text, i = "", 0
    while count(text + parts[i % len(parts)]) <= length:
        text += parts[i % len(parts)]
        i += 1
    while count(text + "a") <= length:
        text += "a"
    return text


def test_multilingual_caption_at_the_limit_is_posted(fake, publisher):
    text = multilingual(2200, publisher.count)
    assert publisher.count(text) == 2200
    publish_when_ready(publisher, sample_post(image=fake.image_url(), text=text), fake)
    assert fake.media[0]["caption"] == text


def test_multilingual_caption_over_the_limit_is_refused_before_any_request(fake, publisher):
    text = multilingual(2200, publisher.count) + "👨‍👩‍👧‍👦"
    with pytest.raises(PermanentError) as info:
        publish_when_ready(publisher, sample_post(image=fake.image_url(), text=text), fake)
    assert "over Instagram's limit of 2200" in info.value.message
    assert fake.requests == []


# --- quota ---------------------------------------------------------------------------------------
def test_used_up_quota_is_respected_until_the_window_frees(fake, publisher):
    fake.quota_total = fake.quota_used = 2
    fake.add_media("old", timestamp=(datetime.now(UTC) - timedelta(hours=20)).strftime(TIMESTAMP_FORMAT))
    fake.add_media("new")
    with pytest.raises(RateLimitedError) as info:
        publish_when_ready(publisher, sample_post(image=fake.image_url()), fake)
    assert 4 * 3600 - 300 < info.value.retry_after <= 4 * 3600 + 60
    assert requests_to(fake, creates) == []


def test_quota_error_on_media_publish_is_rate_limited(fake, publisher):
    fake.script("rate_limit")  # code 9 / subcode 2207042
    with pytest.raises(RateLimitedError) as info:
        publish_when_ready(publisher, sample_post(image=fake.image_url()), fake)
    assert info.value.code == 9 and info.value.retry_after == 3600
    assert fake.media == []


# --- error mapping ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("step", "status", "code", "subcode", "expected"),
    [
        (creates, 400, 190, 460, AuthError),
        (publishes, 400, 190, None, AuthError),
        (creates, 400, 10, None, AuthError),
        (publishes, 403, 200, None, AuthError),
        (publishes, 400, 9, 2207042, RateLimitedError),
        (creates, 400, 4, None, RateLimitedError),
        (publishes, 400, 4, 2207051, PermanentError),
        (creates, 400, -2, 2207003, TransientError),
        (creates, 500, 2, None, TransientError),
        (publishes, 500, 2, None, UncertainError),
        (publishes, 500, -1, 2207001, UncertainError),
        (creates, 400, 100, None, PermanentError),
        (creates, 400, 36000, 2207004, PermanentError),
    ],
)
def test_graph_error_codes_map_to_the_core_vocabulary(fake, publisher, step, status, code, subcode, expected):
    error = error_from_graph(publisher, fake, sample_post(image=fake.image_url()), step, status, code, subcode, transient=code in (1, 2, -1, -2))
    assert type(error) is expected
    assert fake.media == []


def test_permission_error_names_instagram_content_publish(fake, publisher):
    fake.inject(graph_error(403, "(#10) Application does not have permission for this action", 10), creates)
    with pytest.raises(AuthError) as info:
        publish_when_ready(publisher, sample_post(image=fake.image_url()), fake)
    assert "instagram_content_publish" in info.value.message
    assert "INSTAGRAM_TOKEN" in info.value.message and "autopublish resume test" in info.value.message


def test_instagram_login_host_names_its_own_permission(tmp_path):
    keys = {"api_base": "https://graph.instagram.com", "user_id": "17841400000000000", "access_token": "${IG}"}
    publisher = make_publisher(InstagramPublisher, keys, tmp_path, env={"IG": CANARY}, channel="ig")
    assert publisher.publish_permission == "instagram_business_content_publish"


def test_html_5xx_on_media_publish_is_uncertain(fake, publisher):
    fake.inject(Response(503, b"Service Unavailable", {"Content-Type": "text/plain"}), publishes)
    with pytest.raises(UncertainError):
        publish_when_ready(publisher, sample_post(image=fake.image_url()), fake)


# --- reconciliation -----------------------------------------------------------------------------------
def test_act_then_drop_on_media_publish_is_reconciled_to_one_post(fake, publisher):
    post = sample_post(image=fake.image_url())
    fake.script("drop")
    with pytest.raises(UncertainError):
        publish_when_ready(publisher, post, fake)
    assert len(fake.media) == 1
    receipt = publisher.find_existing(post)
    assert receipt is not None and receipt.remote_id == fake.media[0]["id"]
    assert receipt.url == fake.media[0]["permalink"]
    assert len(fake.media) == 1


def test_read_back_matches_the_caption_when_the_template_has_no_link(fake, publisher):
    post = sample_post(image=fake.image_url(), text="Kunjungan delegasi Myanmar #Berita")
    fake.add_media("Another article https://example.go.id/berita/lain/")
    assert publisher.find_existing(post) is None
    receipt = publish_when_ready(publisher, post, fake)
    assert publisher.find_existing(post).remote_id == receipt.remote_id


# --- check and options ----------------------------------------------------------------------------------
def test_check_names_the_account_and_the_quota(fake, publisher):
    assert_check_names_account_and_quota(publisher, fake, used=7, summary="Posting as @jakartaberketahanan (Jakarta Berketahanan)", limit=100)


def test_check_warns_when_the_quota_is_used_up(fake, publisher):
    fake.quota_used = fake.quota_total
    assert publisher.check().level is HealthLevel.WARNING


def test_config_as_written_in_the_issue_validates():
    text = """
[channels.instagram]
platform = "instagram"
api_base = "https://graph.facebook.com"
user_id = "1784..."
access_token = "${INSTAGRAM_TOKEN}"
"""
    keys = issue_channel_keys(text, "instagram", elided="1784...", user_id="17841400000000000")
    options = InstagramOptions.model_validate(keys, context={"env": {"INSTAGRAM_TOKEN": CANARY}})
    assert options.api_version == "v23.0"
    with pytest.raises(ValueError, match="API version"):
        InstagramOptions.model_validate({**keys, "api_version": "23"}, context={"env": {"INSTAGRAM_TOKEN": CANARY}})


# --- secrets ----------------------------------------------------------------------------------------------
def test_canary_token_never_in_logs_or_errors(fake, publisher, caplog):
    caplog.set_level(logging.DEBUG)
    errors = errors_under_faults(fake, lambda kind: publish_when_ready(publisher, sample_post(image=fake.image_url(), key=kind), fake),
                                 KINDS_IN_ORDER)
    fake.inject(graph_error(400, f"Malformed access token {CANARY}", 190), creates)
    with pytest.raises(AuthError) as info:
        publish_when_ready(publisher, sample_post(image=fake.image_url()), fake)
    errors.append(info.value)
    fake.permalink_fails = True
    publish_when_ready(publisher, sample_post(image=fake.image_url(), text="#a " * 31 + LINK), fake)
    assert_canary_kept_out(errors, caplog)


def test_check_says_whether_doubts_can_be_settled(fake, publisher):
    assert publisher.check().settles_doubts is True
    fake.inject(graph_error(403, "(#10) Application does not have permission for this action", 10),
                lambda r: r.method == "GET" and r.path.endswith("/media"))
    health = publisher.check()
    assert health.settles_doubts is False and health.level is HealthLevel.OK
    assert health.missing_permission == "instagram_basic and pages_read_engagement"
    fake.grant({"instagram_content_publish"})  # reading media back is refused: an editor settles doubts
    with pytest.raises(CannotCheckError) as info:
        publisher.find_existing(sample_post(image=fake.image_url()))
    assert info.value.missing_permission == "instagram_basic and pages_read_engagement"


def test_the_image_check_goes_through_the_guarded_fetcher(fake, publisher):
    from dataclasses import replace

    post = replace(sample_post(image=fake.image_url()), source_origin=None)  # a loopback image the feed did not name
    with pytest.raises(PermanentError) as info:
        publisher.publish(post)
    assert "may not be fetched" in info.value.message
    assert requests_to(fake, creates) == [] and not [r for r in fake.requests if r.path.startswith("/_image/")]
