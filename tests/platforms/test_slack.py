"""Slack incoming-webhook adapter against the loopback webhook fake."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import pydantic
import pytest

from autopublish.errors import AuthError, PermanentError, RateLimitedError, UncertainError
from autopublish.models import HealthLevel
from autopublish.platforms.slack import SlackOptions, SlackPublisher, escape_mrkdwn
from tests.conftest import make_publisher
from tests.contract import CANARY, error_texts_under_every_fault, publish_under_fault, sample_post
from tests.fakes.base import Request, Response
from tests.fakes.slack import SlackFake, render_mrkdwn

MULTILINGUAL = [
    "Tim mendampingi CRO menerima kunjungan delegasi Myanmar & Cordaid",
    "雅加达韧性城市：接待缅甸政府代表团 <第二期>",
    "مدينة جاكرتا المرنة تستقبل وفد ميانمار",
    "जकार्ता में म्यांमार प्रतिनिधिमंडल का स्वागत",
    "Keluarga 👨‍👩‍👧‍👦 & teman 🎉 <3",
]


@pytest.fixture
def fake(platform_fake) -> SlackFake:
    return platform_fake(SlackFake())


def make(fake: SlackFake, tmp_path: Path, *, url: str | None = None, **options: Any) -> SlackPublisher:
    keys = {"webhook_url": "${SLACK_WEBHOOK_URL}", **options}
    return make_publisher(SlackPublisher, keys, tmp_path, env={"SLACK_WEBHOOK_URL": url or fake.webhook_url}, channel="team")


# --- blocks ------------------------------------------------------------------------------
def test_blocks_shape(fake, tmp_path):
    post = replace(sample_post(image=fake.image_url(), text="Judul baru & <penting>"), alt_text="Delegasi")
    receipt = make(fake, tmp_path).publish(post)
    assert receipt.remote_id == post.key and receipt.url is None
    (message,) = fake.messages
    payload = message["payload"]
    assert payload["text"] == "Judul baru &amp; &lt;penting&gt;"
    assert payload["unfurl_links"] is False
    assert payload["blocks"] == [
        {"type": "section", "text": {"type": "mrkdwn", "text": "Judul baru &amp; &lt;penting&gt;"}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": f"<{post.link}|{post.title}>"}]},
        {"type": "image", "image_url": fake.image_url(), "alt_text": "Delegasi"},
    ]
    assert message["shown"] == ["Judul baru & <penting>", post.title]


def test_no_link_line_when_the_text_has_the_link(fake, tmp_path):
    make(fake, tmp_path).publish(sample_post())
    kinds = [b["type"] for b in fake.messages[0]["payload"]["blocks"]]
    assert kinds == ["section"]


def test_feed_text_cannot_mention_or_link(fake, tmp_path):
    text = "Rapat <!channel> <@U123> <https://evil.example|klik> &amp;"
    make(fake, tmp_path).publish(sample_post(text=text))
    (message,) = fake.messages
    assert message["mentions"] == [] and message["shown"][0] == text


def test_link_with_delimiters_stays_one_link():
    assert render_mrkdwn("<https://x.org/?a=1&amp;b=%7C|Judul &amp; lain>") == ("Judul & lain", [])


@pytest.mark.parametrize("text", MULTILINGUAL)
def test_multilingual_text_shows_unchanged(fake, tmp_path, text):
    make(fake, tmp_path).publish(sample_post(text=text))
    assert fake.messages[0]["shown"][0] == text


def test_unfetchable_image_falls_back_to_text(fake, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="autopublish"):
        make(fake, tmp_path).publish(sample_post(image=fake.image_url("missing.png")))
    (message,) = fake.messages
    assert all(b["type"] != "image" for b in message["payload"]["blocks"])
    assert "without the image" in caplog.text


def test_images_can_be_turned_off(fake, tmp_path):
    make(fake, tmp_path, images=False).publish(sample_post(image=fake.image_url()))
    assert all(b["type"] != "image" for b in fake.messages[0]["payload"]["blocks"])


# --- length -------------------------------------------------------------------------------
def test_limit_counts_the_escaped_text(fake, tmp_path):
    publisher = make(fake, tmp_path)
    assert publisher.current_limits().max_length == 3000
    assert publisher.count("a&b") == 7 and publisher.count("<>") == 8 and publisher.count("😀") == 2
    publisher.publish(sample_post(text="&" * 600))  # 3000 once escaped
    with pytest.raises(PermanentError, match="3000"):
        publisher.publish(sample_post(text="&" * 600 + "x"))
    assert len(fake.messages) == 1 and len(fake.requests) == 1


def test_escape_is_only_the_three_characters():
    assert escape_mrkdwn("*bold* _it_ ~s~ `c` & < >") == "*bold* _it_ ~s~ `c` &amp; &lt; &gt;"


# --- errors -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("state", "needle"),
    [("removed", "removed or disabled"), ("archived", "archived")],
)
def test_dead_webhook_pauses_the_channel(fake, tmp_path, state, needle):
    setattr(fake, state, True)
    with pytest.raises(AuthError) as info:
        make(fake, tmp_path).publish(sample_post())
    assert needle in info.value.message and "SLACK_WEBHOOK_URL" in info.value.message
    assert "autopublish resume team" in info.value.message


def test_wrong_token(fake, tmp_path):
    with pytest.raises(AuthError) as info:
        make(fake, tmp_path, url=fake.webhook_url.replace(CANARY, "nope")).publish(sample_post())
    assert info.value.code == "invalid_token"


def test_rate_limit_and_server_error(fake, tmp_path):
    publisher = make(fake, tmp_path)
    info = publish_under_fault(publisher, fake, "rate_limit", RateLimitedError)
    assert info.value.retry_after == 30
    publish_under_fault(publisher, fake, "server_error", UncertainError)
    perm = publish_under_fault(publisher, fake, "bad_request", PermanentError)
    assert perm.value.code == "invalid_payload" and not isinstance(perm.value, AuthError)


def test_rate_limit_waits_for_retry_after(fake, tmp_path):
    fake.retry_after = "12"
    info = publish_under_fault(make(fake, tmp_path), fake, "rate_limit", RateLimitedError)
    assert info.value.retry_after == 12 and info.value.code == 429
    assert info.value.message == "Slack asked us to slow down; will try again in 12 seconds"
    assert fake.messages == []


class _NoRetryAfter(SlackFake):
    def error_response(self, kind: str, request: Request) -> Response:
        if kind == "rate_limit":
            return Response(429, b"rate_limited", {"Content-Type": "text/plain"})
        return super().error_response(kind, request)


def test_rate_limit_without_retry_after_waits_30_seconds(platform_fake, tmp_path):
    fake = platform_fake(_NoRetryAfter())
    info = publish_under_fault(make(fake, tmp_path), fake, "rate_limit", RateLimitedError)  # type: ignore[arg-type]
    assert info.value.retry_after == 30


def test_bot_token_rate_limit_waits_for_retry_after(fake, tmp_path):
    fake.retry_after = "45"
    keys = {"bot_token": "${SLACK_BOT_TOKEN}", "channel_id": fake.channel_id, "api_base": fake.url}
    publisher = make_publisher(SlackPublisher, keys, tmp_path, env={"SLACK_BOT_TOKEN": fake.bot_token}, channel="team")
    fake.script("rate_limit", when=lambda r: r.path == "/api/chat.postMessage")
    with pytest.raises(RateLimitedError) as info:
        publisher.publish(sample_post())
    assert info.value.retry_after == 45 and info.value.code == 429 and fake.messages == []


class _OddSuccess(SlackFake):
    def error_response(self, kind: str, request: Request) -> Response:
        if kind == "server_error":
            return Response(200, b"<html>captive portal</html>", {"Content-Type": "text/html"})
        return super().error_response(kind, request)


def test_a_2xx_that_is_not_ok_is_uncertain(platform_fake, tmp_path):
    fake = platform_fake(_OddSuccess())
    fake.script("server_error")
    with pytest.raises(UncertainError):
        make(fake, tmp_path).publish(sample_post())  # type: ignore[arg-type]


def test_no_read_back(fake, tmp_path):
    publisher = make(fake, tmp_path)
    assert not publisher.can_read_back and not publisher.idempotent
    with pytest.raises(NotImplementedError):
        publisher.find_existing(sample_post())


# --- check ----------------------------------------------------------------------------------
def test_check_posts_nothing(fake, tmp_path):
    health = make(fake, tmp_path).check()
    assert health.level == HealthLevel.OK and "without posting" in health.summary
    assert fake.messages == []


def test_check_dead_webhook(fake, tmp_path):
    fake.removed = True
    with pytest.raises(AuthError):
        make(fake, tmp_path).check()


def test_webhook_url_must_be_a_url():
    with pytest.raises(pydantic.ValidationError) as info:
        SlackOptions.model_validate({"webhook_url": "${S}"}, context={"env": {"S": CANARY}})
    assert "Incoming Webhooks" in str(info.value) and CANARY not in str(info.value)


# --- the URL never leaks --------------------------------------------------------------------
def test_webhook_url_absent_from_logs_and_errors(fake, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.WARNING, logger="urllib3")  # as the CLI configures it: it logs URL paths
    publisher = make(fake, tmp_path)
    texts = error_texts_under_every_fault(publisher, fake, first=sample_post(image=fake.image_url("missing.png")))
    for text in [caplog.text, *texts]:
        assert CANARY not in text and "/services/" not in text
