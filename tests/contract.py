"""The adapter contract, run against every (publisher, fake) pair.

Each platform's fake module in tests/fakes/ exposes ``CONTRACT = ContractCase(...)``;
tests/test_contract.py runs the same cases against all of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
import requests

from autopublish.errors import PublishError
from autopublish.models import Article, Health, HealthLevel, Post, Receipt
from autopublish.netguard import Origin
from autopublish.platforms import publisher_class
from autopublish.platforms.base import Publisher, PublisherEnv
from tests.fakes.base import FakeServer
from tests.helpers import PUBLISH_TIMEOUT

CANARY = "CANARY-s3cr3t-7f1e2d9a"

ErrorT = TypeVar("ErrorT", bound=PublishError)
PublisherT = TypeVar("PublisherT", bound=Publisher[Any])


@dataclass
class ContractCase:
    platform: str
    make_fake: Callable[[], FakeServer]
    options: Callable[[FakeServer], dict[str, Any]]  # the channel's keys as written in TOML
    env: dict[str, str]  # environment the ${NAME} references resolve from
    posts: Callable[[FakeServer], int]  # how many posts the fake holds now
    needs_image: bool = False
    # The fewest permissions the README asks for (to post AND to settle doubts), granted with
    # ``fake.grant()``; None where the fake does not model permissions (yet).
    minimal_scopes: tuple[str, ...] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def sample_article(*, image: str | None = None, link: str = "https://example.go.id/berita/myanmar-cordaid/") -> Article:
    """The seed article. ``image`` must be a loopback URL (FakeServer.image_url()) or None."""
    return Article(
        feed="site",
        key="https://example.go.id/?p=4242",
        link=link,
        title="Mendampingi CRO dalam Menerima Kunjungan dari Pemerintah Myanmar dan Cordaid Myanmar",
        summary="Tim mendampingi Chief Resilience Officer menerima kunjungan delegasi Myanmar.",
        content="Tim mendampingi Chief Resilience Officer menerima kunjungan delegasi Myanmar. Diskusi membahas ketahanan kota.",
        author="admin",
        categories=("Berita", "Jakarta Berketahanan", "Kegiatan"),
        published=datetime(2026, 11, 27, 8, 30, tzinfo=UTC),
        image=image,
        image_alt="Delegasi Myanmar di Balai Kota",
        feed_title="Jakarta Berketahanan",
        language="id",
    )


def sample_post(channel: str = "test", key: str = "ap-1", *, image: str | None = None, text: str | None = None,
                link: str | None = None) -> Post:
    """A post of the seed article; its image counts as served by the feed's own site (source_origin)."""
    article = sample_article(image=image) if link is None else sample_article(image=image, link=link)
    body = text if text is not None else f"{article.title}\n\n{article.summary}\n\n{article.link}\n\n#Berita #JakartaBerketahanan #Kegiatan"
    return Post(
        channel=channel,
        key=key,
        text=body,
        article=article,
        link=article.link,
        image=article.image,
        alt_text=article.image_alt,
        title=article.title,
        description=article.summary,
        source_origin=str(Origin.of(image)) if image else None,
    )


def publish_when_ready(publisher: Publisher, post: Post, fake: FakeServer, *, rounds: int = 8) -> Receipt:
    """Publish ``post`` as the core would: a NotReadyError (a two-step platform preparing the
    post) is answered by letting time pass on the fake's clock and asking again with the
    returned progress. Every other error is raised to the caller."""
    from autopublish.errors import NotReadyError

    for _ in range(rounds):
        try:
            return publisher.publish(post)
        except NotReadyError as exc:
            advance = getattr(fake, "advance", None)
            assert advance is not None, f"{type(fake).__name__} has no clock to advance"
            advance(exc.retry_after)
            post = replace(post, progress=exc.progress)
    raise AssertionError(f"not published after {rounds} rounds")


def error_texts_under_every_fault(publisher: Publisher, fake: FakeServer, *, first: Post) -> list[str]:
    """Everything a publisher says when things go wrong: one good post (``first``) and a check,
    then an error for each fault kind, then a publish and a check with the fake gone.

    The texts are what a secret must never appear in (with the log, captured by the caller).
    """
    from autopublish.errors import PublishError

    publish_when_ready(publisher, first, fake)
    publisher.check()
    texts: list[str] = []
    for fault in ("auth", "rate_limit", "bad_request", "server_error", "hang", "drop"):
        fake.script(fault)
        try:
            publish_when_ready(publisher, sample_post(key=f"ap-{fault}", image=first.image), fake)  # a new post each time
        except PublishError as exc:
            texts.append(f"{exc} {exc!r} {vars(exc)}")
        else:
            raise AssertionError(f"a scripted {fault} fault did not fail the publish")
    fake.stop()
    for call in (lambda: publish_when_ready(publisher, sample_post(key="ap-gone", image=first.image), fake), publisher.check):
        try:
            result = call()
        except PublishError as exc:
            texts.append(f"{exc} {exc!r} {vars(exc)}")
        else:  # only check() may answer instead of raising; it must not say all is well
            assert isinstance(result, Health) and result.level != HealthLevel.OK, f"unreachable platform, but: {result!r}"
            texts.append(repr(result))
    return texts


def build_publisher(case: ContractCase, fake: FakeServer, state_dir: Path, *, timeout: tuple[float, float] = PUBLISH_TIMEOUT) -> Publisher:
    cls = publisher_class(case.platform)
    options = cls.Options.model_validate(case.options(fake), context={"env": case.env})
    env = PublisherEnv(session=requests.Session(), state_dir=state_dir, timeout=timeout, now=lambda: datetime.now(UTC))
    return cls("test", options, env)


def publish_under_fault(publisher: Publisher, fake: FakeServer, kind: str, expected: type[ErrorT]) -> pytest.ExceptionInfo[ErrorT]:
    """Script the fault ``kind`` on the fake, then publish the sample post once: it must raise an ``expected``."""
    fake.script(kind)
    with pytest.raises(expected) as info:
        publisher.publish(sample_post())
    return info


def errors_under_faults(fake: FakeServer, publish: Callable[[str], object],
                        kinds: tuple[str, ...] = ("auth", "rate_limit", "bad_request", "server_error", "hang")) -> list[PublishError]:
    """For each fault kind in turn: script it on the fake and call ``publish(kind)`` (a new post each time),
    which must raise a PublishError. The errors, for the caller to search for a secret."""
    errors: list[PublishError] = []
    for kind in kinds:
        fake.script(kind)
        with pytest.raises(PublishError) as info:
            publish(kind)
        errors.append(info.value)
    return errors


def contract_publisher(case: ContractCase, fake: FakeServer, state_dir: Path, kind: type[PublisherT]) -> PublisherT:
    """The publisher the contract case builds for ``fake``; it must be a ``kind``."""
    built = build_publisher(case, fake, state_dir)
    assert isinstance(built, kind)
    return built
