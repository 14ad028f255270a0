"""Discord webhook adapter against the loopback webhook fake."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import pydantic
import pytest
import requests

from autopublish.errors import AuthError, PermanentError, RateLimitedError, UncertainError
from autopublish.models import HealthLevel
from autopublish.platforms.discord import DiscordOptions, DiscordPublisher
from tests.conftest import make_publisher
from tests.contract import CANARY, error_texts_under_every_fault, publish_under_fault, sample_post
from tests.fakes.base import Request, Response
from tests.fakes.discord import CHANNEL_ID, GUILD_ID, DiscordFake

MULTILINGUAL = [
    "Tim mendampingi CRO menerima kunjungan delegasi Myanmar",
    "雅加达韧性城市：接待缅甸政府代表团",
    "مدينة جاكرتا المرنة تستقبل وفد ميانمار",
    "जकार्ता में म्यांमार प्रतिनिधिमंडल का स्वागत",
    "Keluarga 👨‍👩‍👧‍👦 & teman 🎉 <3 @everyone",
]


@pytest.fixture
def fake(platform_fake) -> DiscordFake:
    return platform_fake(DiscordFake())


def make(fake: DiscordFake, tmp_path: Path, *, url: str | None = None, **options: Any) -> DiscordPublisher:
    keys = {"webhook_url": "${DISCORD_WEBHOOK_URL}", **options}
    return make_publisher(DiscordPublisher, keys, tmp_path, env={"DISCORD_WEBHOOK_URL": url or fake.webhook_url}, channel="discord")


def executes(fake: DiscordFake) -> list[Request]:
    return [r for r in fake.requests if fake.is_publish(r)]


# --- shape ---------------------------------------------------------------------------
def test_message_with_embed_and_no_mentions(fake, tmp_path):
    post = sample_post(image=fake.image_url(), text="Judul\nhttps://example.go.id/berita/myanmar-cordaid/")
    receipt = make(fake, tmp_path).publish(post)
    (request,) = executes(fake)
    assert request.query["wait"] == ["true"]
    body = request.json
    assert body["allowed_mentions"] == {"parse": []}
    assert body["content"] == f"Judul\n<{post.link}>"  # the embed is the preview; no second unfurl
    assert body["embeds"] == [
        {
            "title": post.title,
            "url": post.link,
            "description": post.description,
            "image": {"url": fake.image_url()},
            "timestamp": "2026-11-27T08:30:00+00:00",
        }
    ]
    assert receipt.url == f"https://discord.com/channels/{GUILD_ID}/{CHANNEL_ID}/{receipt.remote_id}"
    assert fake.messages[receipt.remote_id]["content"] == body["content"]


def test_message_can_be_read_back_by_id_on_the_fake(fake, tmp_path):
    receipt = make(fake, tmp_path).publish(sample_post())
    got = requests.get(f"{fake.webhook_url}/messages/{receipt.remote_id}", timeout=2)
    assert got.status_code == 200 and got.json()["id"] == receipt.remote_id
    assert requests.get(f"{fake.webhook_url}/messages/1", timeout=2).json()["code"] == 10008


def test_without_embed(fake, tmp_path):
    publisher = make(fake, tmp_path, embed=False, username="Berita Jakarta")
    assert publisher.current_limits().link_card is False
    post = sample_post()
    publisher.publish(post)
    body = executes(fake)[0].json
    assert "embeds" not in body and body["content"] == post.text and body["username"] == "Berita Jakarta"


def test_long_title_and_summary_are_shortened_for_the_embed(fake, tmp_path):
    post = replace(sample_post(), title="T" * 300, description="D" * 5000)
    make(fake, tmp_path).publish(post)
    embed = executes(fake)[0].json["embeds"][0]
    assert len(embed["title"]) == 256 and embed["title"].endswith("…")
    assert len(embed["description"]) == 4096


@pytest.mark.parametrize("text", MULTILINGUAL)
def test_multilingual_text_arrives_unchanged(fake, tmp_path, text):
    receipt = make(fake, tmp_path).publish(sample_post(text=text))
    assert fake.messages[receipt.remote_id]["content"] == text


# --- length -----------------------------------------------------------------------------
def test_content_limit_is_2000_characters(fake, tmp_path):
    publisher = make(fake, tmp_path)
    assert publisher.current_limits().max_length == 2000
    assert publisher.count("😀") == 1 and publisher.count("👨‍👩‍👧‍👦") == 7
    publisher.publish(sample_post(text="😀" * 2000))
    with pytest.raises(PermanentError, match="2000"):
        publisher.publish(sample_post(text="x" * 2001))
    assert len(executes(fake)) == 1


def test_link_is_not_wrapped_when_that_would_overflow(fake, tmp_path):
    post = sample_post()
    text = "x" * (2000 - len(post.link) - 1) + " " + post.link
    make(fake, tmp_path).publish(sample_post(text=text))
    assert executes(fake)[0].json["content"] == text


# --- errors ---------------------------------------------------------------------------------
def test_deleted_webhook_is_auth_error(fake, tmp_path):
    fake.deleted = True
    with pytest.raises(AuthError) as info:
        make(fake, tmp_path).publish(sample_post())
    assert "create a new webhook" in info.value.message and "DISCORD_WEBHOOK_URL" in info.value.message
    assert "autopublish resume discord" in info.value.message and info.value.code == 10015


def test_wrong_token_is_auth_error(fake, tmp_path):
    with pytest.raises(AuthError) as info:
        make(fake, tmp_path, url=fake.webhook_url.replace(CANARY, "wrong")).publish(sample_post())
    assert info.value.code == 50027


def test_rate_limit_uses_float_retry_after(fake, tmp_path):
    info = publish_under_fault(make(fake, tmp_path), fake, "rate_limit", RateLimitedError)
    assert info.value.retry_after == 1.5


class _HeaderOnly(DiscordFake):
    def error_response(self, kind: str, request: Request) -> Response:
        if kind == "rate_limit":
            return Response(429, b"<html>slow down</html>", {"Retry-After": "9"})
        return super().error_response(kind, request)


def test_rate_limit_from_header_when_the_body_is_not_json(platform_fake, tmp_path):
    fake = platform_fake(_HeaderOnly())
    publisher = make(fake, tmp_path)  # type: ignore[arg-type]
    info = publish_under_fault(publisher, fake, "rate_limit", RateLimitedError)
    assert info.value.retry_after == 9


class _ResetAfterOnly(DiscordFake):
    """A 429 whose wait is only in X-RateLimit-Reset-After (docs: topics/rate-limits, "Header Format")."""

    def error_response(self, kind: str, request: Request) -> Response:
        if kind == "rate_limit":
            return Response(429, b"<html>slow down</html>", {"X-RateLimit-Reset-After": "4.25", "X-RateLimit-Global": "true"})
        return super().error_response(kind, request)


def test_rate_limit_from_reset_after_when_nothing_else_says(platform_fake, tmp_path):
    fake = platform_fake(_ResetAfterOnly())
    info = publish_under_fault(make(fake, tmp_path), fake, "rate_limit", RateLimitedError)  # type: ignore[arg-type]
    assert info.value.retry_after == 4.25 and info.value.code == 429
    assert info.value.message == "Discord asked us to slow down; will try again in 4 seconds"


class _GlobalLimit(DiscordFake):
    def error_response(self, kind: str, request: Request) -> Response:
        if kind == "rate_limit":  # docs: topics/rate-limits, "Global Rate Limit" (body global: true)
            body = {"message": "You are being rate limited.", "retry_after": 64.57, "global": True}
            return Response.json_body(429, body, {"Retry-After": "65", "X-RateLimit-Global": "true", "X-RateLimit-Scope": "global"})
        return super().error_response(kind, request)


def test_global_rate_limit_waits_the_body_float_and_says_global(platform_fake, tmp_path):
    fake = platform_fake(_GlobalLimit())
    info = publish_under_fault(make(fake, tmp_path), fake, "rate_limit", RateLimitedError)  # type: ignore[arg-type]
    assert info.value.retry_after == 64.57  # the body's float, not the rounded Retry-After
    assert "global" in info.value.detail and "65 seconds" in info.value.message


def test_invalid_form_body_names_the_field(fake, tmp_path):
    info = publish_under_fault(make(fake, tmp_path), fake, "bad_request", PermanentError)
    assert not isinstance(info.value, AuthError)
    assert "embeds.0.description" in info.value.message and info.value.code == 50035


def test_server_error_is_uncertain(fake, tmp_path):
    publish_under_fault(make(fake, tmp_path), fake, "server_error", UncertainError)


def test_failed_guild_lookup_does_not_stop_the_post(fake, tmp_path):
    fake.script("server_error", when=lambda r: r.method == "GET")
    receipt = make(fake, tmp_path).publish(sample_post())
    assert receipt.remote_id in fake.messages and receipt.url is None


def test_no_read_back(fake, tmp_path):
    publisher = make(fake, tmp_path)
    assert not publisher.can_read_back and not publisher.idempotent
    with pytest.raises(NotImplementedError):
        publisher.find_existing(sample_post())


# --- check ---------------------------------------------------------------------------------
def test_check_names_webhook_and_channel(fake, tmp_path):
    health = make(fake, tmp_path).check()
    assert health.level == HealthLevel.OK
    assert "Autopublish" in health.summary and CHANNEL_ID in health.summary
    assert CANARY not in health.summary + " ".join(health.details)


def test_check_deleted_webhook(fake, tmp_path):
    fake.deleted = True
    with pytest.raises(AuthError):
        make(fake, tmp_path).check()


# --- options ---------------------------------------------------------------------------------
def test_webhook_url_must_be_a_url_and_is_never_echoed():
    with pytest.raises(pydantic.ValidationError) as info:
        DiscordOptions.model_validate({"webhook_url": "${D}"}, context={"env": {"D": CANARY}})
    assert "Copy Webhook URL" in str(info.value) and CANARY not in str(info.value)
    with pytest.raises(pydantic.ValidationError) as info:
        DiscordOptions.model_validate({"webhook_url": f"https://discord.com/api/webhooks/1/{CANARY}"})
    assert "${NAME}" in str(info.value) and CANARY not in str(info.value)


def test_username_rules():
    with pytest.raises(pydantic.ValidationError, match="clyde"):
        DiscordOptions.model_validate({"webhook_url": "${D}", "username": "Discord News"}, context={"env": {"D": "https://x/y"}})


# --- the URL never leaks ------------------------------------------------------------------------
def test_webhook_url_absent_from_logs_and_errors(fake, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.WARNING, logger="urllib3")  # as the CLI configures it: it logs URL paths
    publisher = make(fake, tmp_path)
    texts = error_texts_under_every_fault(publisher, fake, first=sample_post(image=fake.image_url()))
    for text in [caplog.text, *texts]:
        assert CANARY not in text and "/api/webhooks/" not in text
