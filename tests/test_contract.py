"""One contract, every platform: the same cases against each (publisher, loopback fake) pair."""

from __future__ import annotations

import importlib
import logging
import pkgutil

import pytest

import tests.fakes
from autopublish.errors import AuthError, PermanentError, PublishError, RateLimitedError, TransientError, UncertainError
from autopublish.models import HealthLevel
from tests.contract import CANARY, ContractCase, build_publisher, error_texts_under_every_fault, publish_when_ready, sample_post
from tests.fakes.base import FakeServer


def _cases() -> list[ContractCase]:
    found = []
    for info in pkgutil.iter_modules(tests.fakes.__path__):
        if info.name == "base":
            continue
        module = importlib.import_module(f"tests.fakes.{info.name}")
        case = getattr(module, "CONTRACT", None)
        if isinstance(case, ContractCase):
            found.append(case)
    return sorted(found, key=lambda c: c.platform)


CASES = _cases()


@pytest.fixture(params=CASES, ids=[c.platform for c in CASES])
def case(request: pytest.FixtureRequest) -> ContractCase:
    return request.param


@pytest.fixture
def fake(case: ContractCase, platform_fake) -> FakeServer:
    return platform_fake(case.make_fake())


def _no_secret(exc: BaseException) -> None:
    text = f"{exc} {exc!r} {vars(exc)!r}"
    assert CANARY not in text


def test_success_makes_one_post(case, fake, tmp_path):
    publisher = build_publisher(case, fake, tmp_path)
    receipt = publish_when_ready(publisher, sample_post(image=fake.image_url()), fake)
    assert receipt.remote_id
    assert case.posts(fake) == 1


def test_rate_limit_says_when(case, fake, tmp_path):
    publisher = build_publisher(case, fake, tmp_path)
    fake.script("rate_limit")
    with pytest.raises(RateLimitedError) as info:
        publish_when_ready(publisher, sample_post(image=fake.image_url()), fake)
    assert info.value.retry_after is not None and info.value.retry_after > 0
    assert case.posts(fake) == 0
    _no_secret(info.value)
    publish_when_ready(publisher, sample_post(image=fake.image_url()), fake)
    assert case.posts(fake) == 1


def test_expired_credentials_are_auth_errors(case, fake, tmp_path):
    publisher = build_publisher(case, fake, tmp_path)
    fake.script("auth")
    with pytest.raises(AuthError) as info:
        publish_when_ready(publisher, sample_post(image=fake.image_url()), fake)
    assert case.posts(fake) == 0
    assert info.value.message and "Traceback" not in info.value.message
    _no_secret(info.value)


def test_bad_request_is_permanent(case, fake, tmp_path):
    publisher = build_publisher(case, fake, tmp_path)
    fake.script("bad_request")
    with pytest.raises(PermanentError) as info:
        publish_when_ready(publisher, sample_post(image=fake.image_url()), fake)
    assert not isinstance(info.value, AuthError)
    assert case.posts(fake) == 0
    _no_secret(info.value)


def test_refused_connection_is_transient(case, fake, tmp_path):
    publisher = build_publisher(case, fake, tmp_path)
    fake.stop()
    with pytest.raises(TransientError) as info:
        publish_when_ready(publisher, sample_post(image=fake.image_url()), fake)
    _no_secret(info.value)


@pytest.mark.parametrize("fault", ["hang", "drop"])
def test_act_then_fail_never_posts_twice(case, fake, tmp_path, fault):
    publisher = build_publisher(case, fake, tmp_path)
    post = sample_post(image=fake.image_url())
    fake.script(fault)
    with pytest.raises(PublishError) as info:
        publish_when_ready(publisher, post, fake)
    _no_secret(info.value)
    if publisher.idempotent:
        assert isinstance(info.value, (TransientError, UncertainError))
        publish_when_ready(publisher, post, fake)  # the core's retry, same key
    else:
        assert isinstance(info.value, UncertainError)
        if publisher.can_read_back:
            receipt = publisher.find_existing(post)
            assert receipt is not None and receipt.remote_id
    assert case.posts(fake) == 1


def test_server_error_is_never_a_success(case, fake, tmp_path):
    publisher = build_publisher(case, fake, tmp_path)
    fake.script("server_error")
    with pytest.raises((TransientError, UncertainError)) as info:
        publish_when_ready(publisher, sample_post(image=fake.image_url()), fake)
    _no_secret(info.value)
    assert case.posts(fake) <= 1


def test_read_back_finds_nothing_before_posting(case, fake, tmp_path):
    publisher = build_publisher(case, fake, tmp_path)
    if not publisher.can_read_back:
        with pytest.raises(NotImplementedError):
            publisher.find_existing(sample_post(image=fake.image_url()))
        return
    assert publisher.find_existing(sample_post(image=fake.image_url())) is None
    receipt = publish_when_ready(publisher, sample_post(image=fake.image_url()), fake)
    found = publisher.find_existing(sample_post(image=fake.image_url()))
    assert found is not None and found.remote_id == receipt.remote_id


def test_check_answers_in_plain_words(case, fake, tmp_path):
    publisher = build_publisher(case, fake, tmp_path)
    health = publisher.check()
    assert health.level in (HealthLevel.OK, HealthLevel.WARNING)
    assert health.summary and CANARY not in health.summary + " ".join(health.details)


def test_secrets_never_in_logs_or_errors_under_any_fault(case, fake, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.WARNING, logger="urllib3")  # as the CLI configures it: it logs URL paths
    publisher = build_publisher(case, fake, tmp_path)
    texts = error_texts_under_every_fault(publisher, fake, first=sample_post(image=fake.image_url()))
    for text in [caplog.text, *texts]:
        assert CANARY not in text


def test_fitted_text_is_within_the_limit(case, fake, tmp_path):
    publisher = build_publisher(case, fake, tmp_path)
    limit = publisher.current_limits().max_length
    assert limit > 0
    assert publisher.count("https://example.org/" + "a" * 500) <= publisher.count("x" * 600)


MINIMAL = [c for c in CASES if c.minimal_scopes is not None]


@pytest.mark.parametrize("minimal", MINIMAL, ids=[c.platform for c in MINIMAL])
def test_doubts_settle_under_the_minimal_documented_permissions(minimal: ContractCase, platform_fake, tmp_path):
    """With only what the README asks for: post, lose the answer, restart, read the platform back."""
    server = platform_fake(minimal.make_fake())
    server.grant(minimal.minimal_scopes or ())
    publisher = build_publisher(minimal, server, tmp_path)
    publish_when_ready(publisher, sample_post(key="ap-earlier", link="https://example.go.id/berita/lebih-awal/", image=server.image_url()), server)
    health = publisher.check()
    assert health.level in (HealthLevel.OK, HealthLevel.WARNING), health.summary
    assert health.settles_doubts is not False, f"check says doubts cannot be settled: {health.missing_permission}"
    post = sample_post(key="ap-doubt", image=server.image_url())
    server.script("drop")  # the platform acts, the answer is lost
    with pytest.raises((UncertainError, TransientError)):
        publish_when_ready(publisher, post, server)
    assert minimal.posts(server) == 2
    restarted = build_publisher(minimal, server, tmp_path)  # a new process; the state directory remains
    if restarted.can_read_back:
        found = restarted.find_existing(post)
        assert found is not None and found.remote_id
    else:
        assert restarted.idempotent
        publish_when_ready(restarted, post, server)  # the same key: the platform drops the repeat
    assert minimal.posts(server) == 2

