"""Two-step publishing (Threads and Instagram) against fakes whose containers are ready with TIME.

The fakes follow Meta: a container is IN_PROGRESS until ``ready_after`` seconds after its
creation on the fake's clock, publishing earlier is refused ("cannot be found" / "not
ready"), and an unpublished container expires after 24 hours. Tests move the fake's clock
with ``advance()`` and the publisher's with its injected ``now``; nothing sleeps.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
import requests

from autopublish.errors import NotReadyError, PermanentError, UncertainError
from autopublish.models import Post, Receipt
from autopublish.platforms import publisher_class
from autopublish.platforms.meta.containers import MAX_RENEWALS, ContainerPublisher, Progress
from tests.conftest import make_publisher
from tests.contract import CANARY, sample_post
from tests.fakes.instagram import InstagramFake
from tests.fakes.threads import MetaGraphFake, ThreadsFake, graph_error
from tests.platforms.meta_setup import INSTAGRAM, THREADS, requests_to

PLATFORMS = {
    "threads": (ThreadsFake, THREADS, "THREADS_TOKEN"),
    "instagram": (InstagramFake, INSTAGRAM, "INSTAGRAM_TOKEN"),
}


class Clock:
    """The publisher's clock, moved together with the fake's."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(params=sorted(PLATFORMS))
def platform(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def fake(platform: str, platform_fake) -> MetaGraphFake:
    return platform_fake(PLATFORMS[platform][0](lifetime=60))


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make(platform: str, fake: MetaGraphFake, clock: Clock, tmp_path, **options: object) -> ContainerPublisher:
    env_name = PLATFORMS[platform][2]
    values = {"api_base": fake.url, "user_id": fake.user_id, "access_token": "${" + env_name + "}", **options}
    built = make_publisher(publisher_class(platform), values, tmp_path, env={env_name: CANARY}, channel="test", now=clock)
    assert isinstance(built, ContainerPublisher)
    return built


@pytest.fixture
def publisher(platform: str, fake: MetaGraphFake, clock: Clock, tmp_path) -> ContainerPublisher:
    return make(platform, fake, clock, tmp_path)


def wait(fake: MetaGraphFake, clock: Clock, seconds: float) -> None:
    fake.advance(seconds)
    clock.now += timedelta(seconds=seconds)


def creates(platform: str, fake: MetaGraphFake) -> list:
    return requests_to(fake, PLATFORMS[platform][1].creates)


def publishes(platform: str, fake: MetaGraphFake) -> list:
    return requests_to(fake, PLATFORMS[platform][1].publishes)


def first_step(publisher: ContainerPublisher, post: Post) -> NotReadyError:
    with pytest.raises(NotReadyError) as info:
        publisher.publish(post)
    return info.value


def again(publisher: ContainerPublisher, post: Post, error: NotReadyError) -> Receipt:
    return publisher.publish(replace(post, progress=error.progress))


def publish_answer_lost(publisher: ContainerPublisher, post: Post, fake: MetaGraphFake, clock: Clock) -> NotReadyError:
    """Prepare ``post``, wait until it is ready, then publish with the answer dropped (the fake acts first):
    the publish is uncertain. Returns the first step's answer, whose progress the core keeps."""
    error = first_step(publisher, post)
    wait(fake, clock, error.retry_after)
    fake.script("drop")
    with pytest.raises(UncertainError):
        again(publisher, post, error)
    return error


def the_post(fake: MetaGraphFake) -> Post:
    return sample_post(image=fake.image_url())


# --- readiness comes with time --------------------------------------------------------------
def test_the_first_attempt_prepares_and_never_publishes_at_once(platform, fake, publisher):
    error = first_step(publisher, the_post(fake))
    assert error.retry_after == 30  # Meta: wait about 30 seconds
    progress = Progress.load(error.progress)
    assert progress is not None and progress.container in fake.containers and progress.renewals == 0
    assert publishes(platform, fake) == [] and fake.status_reads == []  # no status read before the wait
    assert CANARY not in error.progress and CANARY not in error.message


def test_the_same_container_is_published_on_the_next_attempt(platform, fake, publisher, clock):
    post = the_post(fake)
    error = first_step(publisher, post)
    wait(fake, clock, error.retry_after)
    receipt = again(publisher, post, error)
    assert len(creates(platform, fake)) == 1 and len(publishes(platform, fake)) == 1
    assert [r.param("creation_id") for r in publishes(platform, fake)] == [Progress.load(error.progress).container]
    assert len(fake.media) == 1 and receipt.remote_id == fake.media[0]["id"]
    assert len(fake.status_reads) == 1


def test_not_ready_yet_asks_again_a_minute_later_on_the_same_container(platform, fake, publisher, clock):
    fake.ready_after = 100
    post = the_post(fake)
    error = first_step(publisher, post)
    wait(fake, clock, error.retry_after)
    with pytest.raises(NotReadyError) as second:
        again(publisher, post, error)
    assert second.value.retry_after == 60  # Meta: no more than once a minute
    assert Progress.load(second.value.progress) == Progress.load(error.progress)
    wait(fake, clock, second.value.retry_after)
    with pytest.raises(NotReadyError) as third:
        again(publisher, post, second.value)
    wait(fake, clock, third.value.retry_after)
    again(publisher, post, third.value)
    assert len(creates(platform, fake)) == 1 and len(fake.media) == 1
    reads = [at for _container, at in fake.status_reads]
    created = fake.containers[Progress.load(error.progress).container]["created"]
    assert reads[0] - created >= 30 and all(b - a >= 60 for a, b in itertools.pairwise(reads))


def test_publishing_too_early_is_not_yet_and_keeps_the_container(platform, fake, publisher, clock):
    """Even after a FINISHED status, an early-publish answer (Threads 24/4279009) retries the same container."""
    post = the_post(fake)
    error = first_step(publisher, post)
    wait(fake, clock, error.retry_after)
    edge = PLATFORMS[platform][1].publish
    fake.inject(graph_error(400, "The media with id 1 cannot be found", 24, subcode=4279009, kind="THApiException"),
                lambda r: r.path.endswith(f"/{edge}"))
    with pytest.raises(NotReadyError) as second:
        again(publisher, post, error)
    assert not isinstance(second.value, PermanentError)
    assert Progress.load(second.value.progress).container == Progress.load(error.progress).container
    wait(fake, clock, second.value.retry_after)
    again(publisher, post, second.value)
    assert len(creates(platform, fake)) == 1 and len(fake.media) == 1


def test_the_fake_refuses_an_early_publish_as_meta_does(platform, fake, publisher):
    error = first_step(publisher, the_post(fake))
    container = Progress.load(error.progress).container
    edge = PLATFORMS[platform][1].publish
    answer = requests.post(f"{fake.url}/{fake.api_version}/{fake.user_id}/{edge}", data={"creation_id": container, "access_token": CANARY},
                           timeout=5).json()["error"]
    expected = (24, 4279009) if platform == "threads" else (9007, 2207027)
    assert (answer["code"], answer["error_subcode"]) == expected and fake.media == []


def test_a_container_still_in_progress_after_five_minutes_is_replaced_a_bounded_number_of_times(platform, fake, publisher, clock):
    fake.ready_after = 10**6
    post = the_post(fake)
    error: NotReadyError | None = None
    with pytest.raises(PermanentError) as info:
        for _ in range(40):
            try:
                publisher.publish(post if error is None else replace(post, progress=error.progress))
            except NotReadyError as exc:
                error = exc
                wait(fake, clock, exc.retry_after)
    assert "gave up after 3 attempts" in info.value.message
    assert len(creates(platform, fake)) == MAX_RENEWALS + 1 and publishes(platform, fake) == [] and fake.media == []


def test_an_expired_container_is_replaced_by_a_new_one(platform, fake, publisher, clock):
    post = the_post(fake)
    error = first_step(publisher, post)
    wait(fake, clock, 25 * 3600)  # e.g. the channel was paused for a day
    with pytest.raises(NotReadyError) as renewed:
        again(publisher, post, error)
    old, new = Progress.load(error.progress), Progress.load(renewed.value.progress)
    assert fake.containers[old.container][fake.container_status_field] == "EXPIRED"
    assert new.container != old.container and new.renewals == 1
    wait(fake, clock, renewed.value.retry_after)
    again(publisher, post, renewed.value)
    assert len(creates(platform, fake)) == 2 and len(fake.media) == 1


def test_a_container_that_expired_at_publish_time_is_replaced(platform, fake, publisher, clock):
    post = the_post(fake)
    error = first_step(publisher, post)
    wait(fake, clock, error.retry_after)
    edge = PLATFORMS[platform][1].publish
    fake.inject(graph_error(400, "The media has expired", -2, subcode=2207020), lambda r: r.path.endswith(f"/{edge}"))
    with pytest.raises(NotReadyError) as renewed:
        again(publisher, post, error)
    assert Progress.load(renewed.value.progress).renewals == 1
    wait(fake, clock, renewed.value.retry_after)
    again(publisher, post, renewed.value)
    assert len(fake.media) == 1


def test_a_lost_publish_answer_is_settled_from_the_same_container_never_reposted(platform, fake, publisher, clock):
    post = the_post(fake)
    error = publish_answer_lost(publisher, post, fake, clock)
    receipt = again(publisher, post, error)  # the core kept the progress: the container says PUBLISHED
    assert receipt.remote_id == fake.media[0]["id"]
    assert len(fake.media) == 1 and len(publishes(platform, fake)) == 1


def test_unreadable_progress_starts_afresh(platform, fake, publisher):
    with pytest.raises(NotReadyError):
        publisher.publish(replace(the_post(fake), progress="not json"))
    assert len(creates(platform, fake)) == 1


def test_waits_are_options_for_test_servers(platform, fake, clock, tmp_path):
    publisher = make(platform, fake, clock, tmp_path, container_wait="1s", container_poll="2s", container_timeout="10s")
    fake.ready_after = 1.5
    post = the_post(fake)
    error = first_step(publisher, post)
    assert error.retry_after == 1
    wait(fake, clock, 1)
    with pytest.raises(NotReadyError) as second:
        again(publisher, post, error)
    assert second.value.retry_after == 2
    wait(fake, clock, 2)
    again(publisher, post, second.value)
    assert len(fake.media) == 1
    with pytest.raises(ValueError):
        make(platform, fake, clock, tmp_path, container_wait="0s")


def test_progress_is_compact_json(platform, fake, publisher):
    error = first_step(publisher, the_post(fake))
    data = json.loads(error.progress)
    assert set(data) == {"container", "created", "renewals", "text_only"}


# --- the core: progress stored on the delivery, waiting is not a failed try -------------------
def test_the_core_publishes_the_same_container_and_never_counts_waiting_as_a_try(tmp_path):
    import time

    from autopublish.app import open_app
    from autopublish.config import load_config
    from tests.fakes.feed_server import FeedServer, older_items, seed_item
    from tests.helpers import write_config

    now = [time.time()]
    with FeedServer(older_items(2)) as site, ThreadsFake(lifetime=60) as fake:
        fake.ready_after = 90
        extra = (f'[channels.threads]\nplatform = "threads"\napi_base = "{fake.url}"\nuser_id = "{fake.user_id}"\n'
                 'access_token = "${THREADS_TOKEN}"\n')
        path = write_config(tmp_path / "autopublish.toml", f"{site.url}/feed/", channels="threads", extra=extra, settings="max_tries = 1")
        app = open_app(load_config(path, {"THREADS_TOKEN": CANARY}, cwd=tmp_path), clock=lambda: now[0])
        try:
            pipeline, store = app.pipeline, app.store
            pipeline.poll_all()  # first sight: nothing posted
            site.add(seed_item())
            pipeline.poll_all()
            pipeline.deliver_due()
            [row] = store.deliveries_with_status("waiting")
            progress = Progress.load(row.progress)
            assert progress is not None and progress.container in fake.containers
            assert row.tries == 0 and row.next_attempt_at == pytest.approx(now[0] + 30)
            assert "preparing the post" in row.reason
            pipeline.deliver_due()  # not due yet: no second container, no status read
            assert len(fake.containers) == 1 and fake.status_reads == []
            now[0] += 30
            fake.advance(30)
            pipeline.deliver_due()  # still in progress: the same container, again in a minute
            [row] = store.deliveries_with_status("waiting")
            assert Progress.load(row.progress) == progress and row.tries == 0
            assert row.next_attempt_at == pytest.approx(now[0] + 60)
            now[0] += 60
            fake.advance(60)
            result = pipeline.deliver_due()
            assert result.sent == 1
            [sent] = store.deliveries_with_status("sent")
            assert sent.remote_id == fake.media[0]["id"] and len(fake.containers) == 1 and len(fake.media) == 1
        finally:
            app.close()


def test_a_database_from_before_progress_gains_the_column_and_keeps_its_rows(tmp_path):
    import sqlite3

    from autopublish.store import Store
    from tests.helpers import sqlite_of

    Store(tmp_path).close()
    db = sqlite3.connect(tmp_path / "state.db")
    db.execute("ALTER TABLE deliveries DROP COLUMN progress")  # as a database made before the column existed ...
    db.execute("UPDATE alembic_version SET version_num = '0006'")  # ... at the migration before it
    db.execute("INSERT INTO articles (feed, key, canonical, link, title, first_seen_at, data) VALUES ('s', 'k', 'c', 'l', 't', 0, '{}')")
    db.execute("INSERT INTO deliveries (article_id, channel, status, created_at, updated_at) VALUES (1, 'threads', 'queued', 0, 0)")
    db.commit()
    db.close()
    with Store(tmp_path) as store:
        columns = {row[1] for row in sqlite_of(store).execute("PRAGMA table_info(deliveries)")}
        assert "progress" in columns
        assert sqlite_of(store).execute("SELECT status, progress FROM deliveries").fetchone()[:] == ("queued", None)
        assert [row.progress for row in store.deliveries_with_status("queued")] == [None]


def test_a_published_container_settles_the_delivery_even_when_the_read_back_misses_it(platform, fake, publisher, clock):
    post = the_post(fake)
    error = publish_answer_lost(publisher, post, fake, clock)
    fake.media[0][fake.text_field] = "edited by hand"  # the read-back can no longer recognise it
    fake.media[0].pop("link_attachment_url", None)
    receipt = again(publisher, post, error)
    assert receipt.remote_id == Progress.load(error.progress).container and receipt.url is None
    assert len(fake.media) == 1 and len(publishes(platform, fake)) == 1
