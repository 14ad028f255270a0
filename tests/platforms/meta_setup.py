"""What the Threads and Instagram tests share: each platform's two Graph edges (create a container, publish
it), picking the fake's requests by them, the fake and publisher fixtures, a channel table as the issue wrote
it, and the canary check."""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from autopublish.errors import PublishError
from autopublish.models import HealthLevel, Post
from autopublish.platforms.base import Publisher
from tests.contract import CANARY, ContractCase, contract_publisher, publish_when_ready
from tests.fakes.base import FakeServer, Request
from tests.fakes.threads import MetaGraphFake, graph_error


@dataclass(frozen=True)
class Edges:
    """The two POST edges of a Meta two-step publish: ``/{user}/{create}`` then ``/{user}/{publish}``."""

    create: str
    publish: str

    def creates(self, r: Request) -> bool:
        return r.method == "POST" and r.path.endswith(f"/{self.create}")

    def publishes(self, r: Request) -> bool:
        return r.method == "POST" and r.path.endswith(f"/{self.publish}")


# The fault kinds the Threads and Instagram canary tests script, in the order they have always used.
KINDS_IN_ORDER = ("auth", "bad_request", "server_error", "rate_limit", "hang")

THREADS = Edges("threads", "threads_publish")
INSTAGRAM = Edges("media", "media_publish")


def requests_to(fake: FakeServer, predicate: Callable[[Request], bool]) -> list[Request]:
    return [r for r in fake.requests if predicate(r)]


def meta_fixtures(fake_class: Callable[..., FakeServer], case: ContractCase, kind: type[Publisher[Any]]) -> tuple[Any, Any]:
    """The module's ``fake`` (a ``fake_class`` whose posts live 60 s, stopped after the test) and ``publisher``
    (built from the contract case; it must be a ``kind``) fixtures."""

    @pytest.fixture
    def fake(platform_fake: Callable[[FakeServer], FakeServer]) -> FakeServer:
        return platform_fake(fake_class(lifetime=60))

    @pytest.fixture
    def publisher(fake: FakeServer, tmp_path: Path) -> Publisher[Any]:
        return contract_publisher(case, fake, tmp_path, kind)

    return fake, publisher


def issue_channel_keys(text: str, channel: str, *, elided: str, user_id: str) -> dict[str, Any]:
    """The keys of ``[channels.<channel>]`` in ``text`` (a table as an issue wrote it, its user id elided as
    ``elided``), with a real ``user_id`` filled in and without ``platform``, which picks the publisher."""
    keys = dict(tomllib.loads(text.replace(elided, user_id))["channels"][channel])
    keys.pop("platform")
    return keys


def error_from_graph(publisher: Publisher[Any], fake: MetaGraphFake, post: Post, step: Callable[[Request], bool],
                     status: int, code: int, subcode: int | None, *, transient: bool) -> PublishError:
    """Answer the next request ``step`` picks with a Graph error (HTTP ``status``, ``code``, ``subcode``), then
    publish ``post``: the error the publish raised (it must raise one)."""
    fake.inject(graph_error(status, f"(#{code}) something", code, subcode=subcode, transient=transient), step)
    with pytest.raises(PublishError) as info:
        publish_when_ready(publisher, post, fake)
    return info.value


def assert_check_names_account_and_quota(publisher: Publisher[Any], fake: MetaGraphFake, *, used: int, summary: str, limit: int) -> None:
    """With ``used`` posts made in the last 24 hours, check() is OK, says ``summary`` and counts them against ``limit``."""
    fake.quota_used = used
    health = publisher.check()
    assert health.level is HealthLevel.OK
    assert health.summary == summary
    assert f"{used} of {limit} posts used in the last 24 hours" in " ".join(health.details)


def assert_canary_kept_out(errors: Iterable[PublishError], caplog: pytest.LogCaptureFixture) -> None:
    """No error nor autopublish log line carries the token; and something was logged."""
    for error in errors:
        assert CANARY not in f"{error} {error!r} {vars(error)!r}"
    ours = [r for r in caplog.records if r.name.startswith("autopublish")]
    assert ours
    assert all(CANARY not in r.getMessage() for r in ours)
