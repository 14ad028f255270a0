"""Telegram adapter against the loopback Bot API fake."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import pydantic
import pytest

from autopublish.errors import AuthError, PermanentError, PublishError, RateLimitedError, UncertainError
from autopublish.models import HealthLevel
from autopublish.platforms.telegram import TelegramOptions, TelegramPublisher
from tests.conftest import make_publisher
from tests.contract import CANARY, error_texts_under_every_fault, publish_under_fault, sample_post
from tests.fakes.base import Request, Response
from tests.fakes.telegram import OLD_GROUP_ID, SUPERGROUP, TelegramFake, parse_html

MULTILINGUAL = [
    "Tim mendampingi CRO menerima kunjungan delegasi Myanmar & Cordaid",  # Indonesian
    "雅加达韧性城市：接待缅甸政府代表团 <第二期>",  # Chinese
    "مدينة جاكرتا المرنة تستقبل وفد ميانمار",  # Arabic
    "जकार्ता में म्यांमार प्रतिनिधिमंडल का स्वागत",  # Hindi
    "Keluarga 👨‍👩‍👧‍👦 & teman 🎉 <3",  # emoji ZWJ sequence
]


@pytest.fixture
def fake(platform_fake) -> TelegramFake:
    return platform_fake(TelegramFake())


def make(fake: TelegramFake, tmp_path: Path, *, token: str = CANARY, **options: Any) -> TelegramPublisher:
    keys = {"api_base": fake.url, "bot_token": "${TELEGRAM_BOT_TOKEN}", "chat": "@examplechannel", **options}
    return make_publisher(TelegramPublisher, keys, tmp_path, env={"TELEGRAM_BOT_TOKEN": token}, channel="news")


def sends(fake: TelegramFake) -> list[Request]:
    return [r for r in fake.requests if fake.is_publish(r)]


# --- escaping and counting --------------------------------------------------------
@pytest.mark.parametrize("text", [*MULTILINGUAL, "<b>not bold</b> a > b < c && d &amp; e &lt;"])
def test_text_arrives_exactly_as_written(fake, tmp_path, text):
    publisher = make(fake, tmp_path)
    publisher.publish(sample_post(text=text))
    (message,) = fake.messages
    assert message["text"] == text  # what readers see after Telegram's HTML parsing
    assert "<" not in message["raw"]  # escaped on the wire


def test_html_special_characters_are_escaped_on_the_wire(fake, tmp_path):
    publisher = make(fake, tmp_path)
    publisher.publish(sample_post(text="A <b> & B > C"))
    assert fake.messages[0]["raw"] == "A &lt;b&gt; &amp; B &gt; C"


def test_the_fake_refuses_unescaped_markup():
    with pytest.raises(Exception, match="byte offset"):
        parse_html("Tom & Jerry")
    with pytest.raises(Exception, match="Unsupported start tag"):
        parse_html("1 <x> 2")
    assert parse_html("<b>a</b> &lt;&amp;&gt; &#128512;") == "a <&> 😀"


@pytest.mark.parametrize(
    ("text", "units"),
    [("😀", 2), ("👨‍👩‍👧‍👦", 11), ("中文", 2), ("नमस्ते", 6), ("مرحبا", 5), ("é", 1), ("a&b<c", 5)],
)
def test_count_is_utf16_code_units(tmp_path, fake, text, units):
    assert make(fake, tmp_path).count(text) == units


# --- photo with caption vs message with preview -------------------------------------
def test_short_post_with_image_is_a_photo_with_caption(fake, tmp_path):
    publisher = make(fake, tmp_path)
    text = "🎉" * 512  # 1024 UTF-16 units: the caption limit exactly
    receipt = publisher.publish(sample_post(image=fake.image_url(), text=text))
    (message,) = fake.messages
    assert message["photo"] == fake.image_url() and message["caption"] == text
    assert receipt.url == f"https://t.me/examplechannel/{receipt.remote_id}"


def test_post_over_the_caption_limit_is_a_message_with_link_preview(fake, tmp_path):
    publisher = make(fake, tmp_path)
    text = "🎉" * 512 + "a"  # 1025 units: too long for a caption, fine for a message
    post = sample_post(image=fake.image_url(), text=text)
    publisher.publish(post)
    (message,) = fake.messages
    assert "photo" not in message and message["text"] == text
    assert message["link_preview_options"] == {"is_disabled": False, "url": post.link, "prefer_large_media": True}


def test_message_limit_is_4096_units_and_never_exceeded(fake, tmp_path):
    publisher = make(fake, tmp_path)
    assert publisher.current_limits().max_length == 4096
    publisher.publish(sample_post(text="x" * 4094 + "😀"))
    assert len(fake.messages) == 1
    with pytest.raises(PermanentError, match="4096"):
        publisher.publish(sample_post(text="x" * 4095 + "😀"))
    assert len(sends(fake)) == 1  # the over-long post never left


def test_photo_always_fits_posts_to_the_caption(fake, tmp_path):
    publisher = make(fake, tmp_path, photo="always")
    assert publisher.current_limits().max_length == 1024


def test_photo_never_sends_text_with_preview(fake, tmp_path):
    publisher = make(fake, tmp_path, photo="never")
    publisher.publish(sample_post(image=fake.image_url()))
    assert "photo" not in fake.messages[0]


def test_link_preview_can_be_disabled(fake, tmp_path):
    make(fake, tmp_path, link_preview=False).publish(sample_post())
    assert fake.messages[0]["link_preview_options"] == {"is_disabled": True}


@pytest.mark.parametrize(
    ("where", "telegram_says"),
    [
        ("missing", "failed to get HTTP URL content"),
        ("huge", "can't upload file by URL"),
        ("elsewhere", "wrong file identifier/HTTP URL specified"),
    ],
)
def test_unusable_image_falls_back_to_text(fake, tmp_path, caplog, where, telegram_says):
    """Bot API sendPhoto: Telegram downloads a photo given by URL (at most 5 MB); when it cannot, the text still goes."""
    publisher = make(fake, tmp_path)
    image = f"{fake.url}/elsewhere/kunjungan.png" if where == "elsewhere" else fake.image_url(f"{where}.png")
    with caplog.at_level(logging.WARNING, logger="autopublish"):
        receipt = publisher.publish(sample_post(image=image))
    (message,) = fake.messages
    assert "photo" not in message and message["text"] and receipt.remote_id
    assert "could not use the article image" in caplog.text and telegram_says in caplog.text
    assert [r.path.rsplit("/", 1)[-1] for r in fake.requests[-2:]] == ["sendPhoto", "sendMessage"]


# --- group migration ------------------------------------------------------------------
def test_migrated_group_is_followed_and_remembered(fake, tmp_path, caplog):
    publisher = make(fake, tmp_path, chat=str(OLD_GROUP_ID))
    with caplog.at_level(logging.WARNING, logger="autopublish"):
        receipt = publisher.publish(sample_post())
    (message,) = fake.messages
    assert message["chat_id"] == SUPERGROUP["id"]
    assert publisher.chat == str(SUPERGROUP["id"])
    assert f'chat = "{SUPERGROUP["id"]}"' in caplog.text and "[channels.news]" in caplog.text
    assert receipt.url == f"https://t.me/c/{str(SUPERGROUP['id'])[4:]}/{receipt.remote_id}"
    before = len(fake.requests)
    publisher.publish(sample_post())
    assert len(fake.requests) == before + 1  # straight to the new id


def test_numeric_chat_from_toml_is_accepted(fake, tmp_path):
    publisher = make(fake, tmp_path, chat=-1001234567890)
    publisher.publish(sample_post())
    assert fake.messages[0]["chat_id"] == -1001234567890


# --- error mapping ----------------------------------------------------------------------
def test_wrong_token_is_auth_error_with_instructions(fake, tmp_path):
    publisher = make(fake, tmp_path, token="123:wrong-token")
    with pytest.raises(AuthError) as info:
        publisher.publish(sample_post())
    assert "@BotFather" in info.value.message and "TELEGRAM_BOT_TOKEN" in info.value.message
    assert "autopublish resume news" in info.value.message
    assert "123:wrong-token" not in f"{info.value} {vars(info.value)}"


def test_kicked_bot_is_auth_error(fake, tmp_path):
    fake.kicked = True
    with pytest.raises(AuthError) as info:
        make(fake, tmp_path).publish(sample_post(image=fake.image_url()))
    assert "administrator" in info.value.message and info.value.code == 403


def test_unknown_chat_pauses_the_channel(fake, tmp_path):
    with pytest.raises(AuthError) as info:
        make(fake, tmp_path, chat="@nosuchchannel").publish(sample_post())
    assert "@nosuchchannel" in info.value.message and "`chat`" in info.value.message


def test_rate_limit_uses_retry_after_parameter(fake, tmp_path):
    info = publish_under_fault(make(fake, tmp_path), fake, "rate_limit", RateLimitedError)
    assert info.value.retry_after == 35


class _BareErrors(TelegramFake):
    """A 429 with only a Retry-After header, and a proxy's HTML 502."""

    def error_response(self, kind: str, request: Request) -> Response:
        if kind == "rate_limit":
            return Response(429, b'{"ok":false,"error_code":429,"description":"Too Many Requests"}', {"Retry-After": "7", "Content-Type": "application/json"})
        if kind == "server_error":
            return Response(502, b"<html>Bad Gateway</html>", {"Content-Type": "text/html"})
        return super().error_response(kind, request)


def test_rate_limit_header_and_proxy_errors(platform_fake, tmp_path):
    fake = platform_fake(_BareErrors())
    publisher = make(fake, tmp_path)  # type: ignore[arg-type]
    info = publish_under_fault(publisher, fake, "rate_limit", RateLimitedError)
    assert info.value.retry_after == 7
    publish_under_fault(publisher, fake, "server_error", UncertainError)


def test_server_error_is_uncertain_and_bad_request_permanent(fake, tmp_path):
    publisher = make(fake, tmp_path)
    publish_under_fault(publisher, fake, "server_error", UncertainError)
    info = publish_under_fault(publisher, fake, "bad_request", PermanentError)
    assert not isinstance(info.value, AuthError) and "too long" in info.value.message


def test_no_read_back(fake, tmp_path):
    publisher = make(fake, tmp_path)
    assert publisher.can_read_back is False and publisher.idempotent is False
    with pytest.raises(NotImplementedError):
        publisher.find_existing(sample_post())


# --- check ------------------------------------------------------------------------------
def test_check_names_bot_and_chat(fake, tmp_path):
    health = make(fake, tmp_path).check()
    assert health.level == HealthLevel.OK
    assert health.summary == "Posting as @autopublish_test_bot to Example News"


def test_check_reports_missing_admin_rights(fake, tmp_path):
    fake.member = {"status": "administrator", "can_post_messages": False}
    health = make(fake, tmp_path).check()
    assert health.level == HealthLevel.ERROR and "right to post" in health.summary


def test_check_reports_migration(fake, tmp_path):
    health = make(fake, tmp_path, chat=str(OLD_GROUP_ID)).check()
    assert health.level == HealthLevel.WARNING and str(SUPERGROUP["id"]) in health.summary


def test_check_with_bad_token_is_auth_error(fake, tmp_path):
    with pytest.raises(AuthError):
        make(fake, tmp_path, token="999:nope").check()


# --- options ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("keys", "needle"),
    [
        ({"chat": "examplechannel"}, 'write chat = "@examplechannel"'),
        ({"chat": "https://t.me/examplechannel"}, "numeric id"),
        ({"api_base": "api.telegram.org"}, "http(s)"),
        ({"bot_token": CANARY}, "${NAME}"),
        ({"chat_id": "@x"}, "Extra inputs"),
    ],
)
def test_options_explain_mistakes(keys, needle):
    base = {"bot_token": "${TELEGRAM_BOT_TOKEN}", "chat": "@examplechannel"}
    with pytest.raises(pydantic.ValidationError) as info:
        TelegramOptions.model_validate({**base, **keys}, context={"env": {"TELEGRAM_BOT_TOKEN": CANARY}})
    assert needle in str(info.value)
    assert CANARY not in str(info.value)


def test_api_base_default_is_the_real_api():
    opts = TelegramOptions.model_validate({"bot_token": "${T}", "chat": "@examplechannel"}, context={"env": {"T": "1:x"}})
    assert opts.api_base == "https://api.telegram.org" and opts.photo == "auto"


# --- the token never leaks ------------------------------------------------------------------
def test_token_absent_from_logs_and_errors(fake, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.WARNING, logger="urllib3")  # as the CLI configures it: it logs URL paths
    publisher = make(fake, tmp_path, chat=str(OLD_GROUP_ID))
    texts = error_texts_under_every_fault(publisher, fake, first=sample_post(image=fake.image_url("missing.png")))
    assert CANARY not in caplog.text
    assert all(CANARY not in text for text in texts)
    assert any("migrat" in r.getMessage() or "supergroup" in r.getMessage() for r in caplog.records)


def test_receipt_without_username_or_channel_prefix(fake, tmp_path):
    fake.chats[-42] = {"id": -42, "title": "Small group", "type": "group"}
    receipt = make(fake, tmp_path, chat="-42").publish(replace(sample_post(), image=None))
    assert receipt.remote_id and receipt.url is None


class _OkFalseWithHttp200(TelegramFake):
    """Errors told only in the body: HTTP 200 with ``ok: false`` and the error_code (the Bot API's envelope)."""

    def error_response(self, kind: str, request: Request) -> Response:
        if kind == "rate_limit":
            return Response.json_body(200, {"ok": False, "error_code": 429, "description": "Too Many Requests: retry after 12",
                                            "parameters": {"retry_after": 12}})
        if kind == "bad_request":
            return Response.json_body(200, {"ok": False, "error_code": 400, "description": "Bad Request: message is too long"})
        return Response.json_body(200, {"ok": False, "error_code": 502, "description": "Bad Gateway"})


@pytest.mark.parametrize(("kind", "expected", "code"), [("rate_limit", RateLimitedError, 429), ("bad_request", PermanentError, 400),
                                                        ("server_error", UncertainError, 502)])
def test_the_error_code_in_the_body_decides_over_http_200(tmp_path, kind, expected, code):
    with _OkFalseWithHttp200() as fake:
        fake.script(kind)
        with pytest.raises(PublishError) as info:
            make(fake, tmp_path).publish(sample_post())  # type: ignore[arg-type]
    assert type(info.value) is expected and info.value.code == code and fake.messages == []
    if expected is RateLimitedError:
        assert info.value.retry_after == 12
