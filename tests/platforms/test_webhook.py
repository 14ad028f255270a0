"""Generic webhook adapter against a loopback receiver that verifies signatures."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from pathlib import Path
from typing import Any

import pydantic
import pytest

from autopublish.errors import AuthError, PermanentError, PublishError, RateLimitedError, TransientError, UncertainError
from autopublish.models import HealthLevel
from autopublish.platforms.webhook import WebhookOptions, WebhookPublisher
from tests.conftest import make_publisher
from tests.contract import CANARY, error_texts_under_every_fault, sample_post
from tests.fakes.base import Response
from tests.fakes.webhook import WebhookFake

WHSEC = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


@pytest.fixture
def fake(platform_fake) -> WebhookFake:
    return platform_fake(WebhookFake())


def make(fake: WebhookFake, tmp_path: Path, *, secret: str | None = CANARY, **options: Any) -> WebhookPublisher:
    keys: dict[str, Any] = {"url": fake.hook_url, **options}
    env = {}
    if secret is not None:
        keys["secret"] = "${WEBHOOK_SECRET}"
        env["WEBHOOK_SECRET"] = secret
    return make_publisher(WebhookPublisher, keys, tmp_path, env=env, channel="hook")


# --- body and signature -------------------------------------------------------------------
def test_body_carries_the_post_and_the_article(fake, tmp_path):
    post = sample_post(image=fake.image_url(), text="Keluarga 👨‍👩‍👧‍👦 & 雅加达 <b>")
    receipt = make(fake, tmp_path).publish(post)
    assert receipt.remote_id == post.key and receipt.url is None
    (delivery,) = fake.deliveries
    body = delivery["json"]
    assert body["type"] == "article.published" and body["id"] == post.key and body["channel"] == post.channel
    assert body["text"] == post.text and body["link"] == post.link and body["image"] == fake.image_url()
    assert body["article"] == {
        "title": post.article.title,
        "link": post.article.link,
        "summary": post.article.summary,
        "content": post.article.content,
        "author": "admin",
        "categories": ["Berita", "Jakarta Berketahanan", "Kegiatan"],
        "tags": [],
        "published": "2026-11-27T08:30:00+00:00",
        "image": fake.image_url(),
        "feed": "site",
        "feed_title": "Jakarta Berketahanan",
    }
    assert "👨‍👩‍👧‍👦".encode() in delivery["raw"]  # UTF-8, not \\u escapes


def test_a_receiver_can_verify_the_signature_with_the_secret(fake, tmp_path):
    make(fake, tmp_path).publish(sample_post())
    (delivery,) = fake.deliveries
    headers, raw = delivery["headers"], delivery["raw"]
    mine = hmac.new(CANARY.encode(), raw, hashlib.sha256).hexdigest()
    assert headers["x-autopublish-signature"] == f"sha256={mine}"
    assert headers["x-autopublish-delivery"] == "ap-1" == headers["webhook-id"]
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + raw
    assert headers["webhook-signature"] == "v1," + base64.b64encode(hmac.new(CANARY.encode(), signed, hashlib.sha256).digest()).decode()
    assert headers["content-type"].startswith("application/json")


def test_standard_webhooks_secret_uses_its_decoded_key(platform_fake, tmp_path):
    fake = platform_fake(WebhookFake(secret=WHSEC))
    make(fake, tmp_path, secret=WHSEC).publish(sample_post())  # type: ignore[arg-type]
    (delivery,) = fake.deliveries
    headers = delivery["headers"]
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + delivery["raw"]
    key = base64.b64decode(WHSEC.removeprefix("whsec_"))
    assert headers["webhook-signature"] == "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def test_wrong_secret_is_refused_and_pauses_the_channel(fake, tmp_path):
    with pytest.raises(AuthError) as info:
        make(fake, tmp_path, secret="another-secret-of-enough-length").publish(sample_post())
    assert fake.deliveries == []
    assert "WEBHOOK_SECRET" in info.value.message and "autopublish resume hook" in info.value.message
    assert "127.0.0.1" in info.value.message and "/hooks/" not in info.value.message


def test_without_a_secret_nothing_is_signed(platform_fake, tmp_path):
    fake = platform_fake(WebhookFake(secret=None))
    publisher = make(fake, tmp_path, secret=None)  # type: ignore[arg-type]
    publisher.publish(sample_post())
    headers = fake.deliveries[0]["headers"]
    assert "x-autopublish-signature" not in headers and "webhook-signature" not in headers
    assert headers["x-autopublish-delivery"] == "ap-1"
    assert "NOT signed" in publisher.check().summary


def test_receiver_answer_names_the_receipt(fake, tmp_path):
    fake.reply = Response.json_body(201, {"id": 77, "url": "https://example.org/posts/77"})
    receipt = make(fake, tmp_path).publish(sample_post())
    assert receipt.remote_id == "77" and receipt.url == "https://example.org/posts/77"


def test_a_deduplicating_receiver_makes_the_retry_harmless(fake, tmp_path):
    fake.dedupe = True
    publisher = make(fake, tmp_path)
    post = sample_post()
    fake.script("hang")
    with pytest.raises(UncertainError):
        publisher.publish(post)
    publisher.publish(post)  # an editor's "send again": same delivery id
    assert len(fake.deliveries) == 1
    posts = [r for r in fake.requests if fake.is_publish(r)]
    assert posts[0].header("webhook-id") == posts[1].header("webhook-id") == post.key


# --- outcomes -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("response", "expected", "retry_after"),
    [
        (Response(429, b"", {"Retry-After": "7"}), RateLimitedError, 7),
        (Response(429, b""), RateLimitedError, 60),
        (Response(503, b"", {"Retry-After": "12"}), RateLimitedError, 12),
        (Response(503, b"down"), UncertainError, None),
        (Response(500, b"boom"), UncertainError, None),
        (Response(408, b""), TransientError, None),
        (Response(403, b"no"), AuthError, None),
        (Response(422, b"missing title"), PermanentError, None),
        (Response(404, b""), PermanentError, None),
        (Response(302, b"", {"Location": "/elsewhere"}), PermanentError, None),
    ],
)
def test_status_mapping(fake, tmp_path, response, expected, retry_after):
    fake.refuse_with = response
    with pytest.raises(PublishError) as info:
        make(fake, tmp_path).publish(sample_post())
    assert type(info.value) is expected
    if retry_after is not None:
        assert info.value.retry_after == retry_after
    assert fake.deliveries == []


def test_any_2xx_is_posted(fake, tmp_path):
    fake.reply = Response(200, b"thanks", {"Content-Type": "text/plain"})
    assert make(fake, tmp_path).publish(sample_post()).remote_id == "ap-1"


def test_max_length(fake, tmp_path):
    publisher = make(fake, tmp_path, max_length=10)
    assert publisher.current_limits().max_length == 10
    publisher.publish(sample_post(text="0123456789"))
    with pytest.raises(PermanentError, match="max_length"):
        publisher.publish(sample_post(text="0123456789x"))
    assert len(fake.deliveries) == 1
    assert make(fake, tmp_path).current_limits().max_length == 100_000


def test_no_read_back(fake, tmp_path):
    publisher = make(fake, tmp_path)
    assert not publisher.can_read_back and not publisher.idempotent
    with pytest.raises(NotImplementedError):
        publisher.find_existing(sample_post())


# --- check and options ------------------------------------------------------------------------
def test_check_heads_the_receiver(fake, tmp_path):
    health = make(fake, tmp_path).check()
    assert health.level == HealthLevel.OK and "HTTP 405" in health.summary and "signed" in health.summary
    assert fake.deliveries == []


@pytest.mark.parametrize(
    ("keys", "env", "needle"),
    [
        ({"url": "ftp://example.org/x"}, {}, "http(s)"),
        ({"url": "https://example.org/x", "secret": "${S}"}, {"S": "short"}, "at least 16"),
        ({"url": "https://example.org/x", "secret": "${S}"}, {"S": "whsec_!!!"}, "base64"),
        ({"url": "https://example.org/x", "secret": CANARY}, {}, "${NAME}"),
        ({"url": "https://example.org/x", "max_length": 0}, {}, "greater than"),
    ],
)
def test_options_explain_mistakes(keys, env, needle):
    with pytest.raises(pydantic.ValidationError) as info:
        WebhookOptions.model_validate(keys, context={"env": env})
    assert needle in str(info.value) and CANARY not in str(info.value)


def test_config_from_the_issue_validates():
    opts = WebhookOptions.model_validate(
        {"url": "https://example.org/hooks/articles", "secret": "${WEBHOOK_SECRET}"},
        context={"env": {"WEBHOOK_SECRET": CANARY}},
    )
    assert opts.secret is not None and opts.secret.reveal() == CANARY and CANARY not in repr(opts)
    assert json.loads(opts.model_dump_json())["secret"] == "***"


# --- the secret never leaks ---------------------------------------------------------------------
def test_secret_absent_from_logs_and_errors(fake, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    publisher = make(fake, tmp_path)
    texts = error_texts_under_every_fault(publisher, fake, first=sample_post())
    for text in [caplog.text, *texts]:
        assert CANARY not in text
