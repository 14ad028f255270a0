"""Settling posts in doubt (issue 11): never a pause for a refused read-back, never an endless loop.

The pipeline runs against the loopback Mastodon fake holding exactly the README's scopes;
the policy itself (retry.decide_check) is pure and tested with numbers.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest

from autopublish.app import App, open_app
from autopublish.config import load_config
from autopublish.errors import AuthError, CannotCheckError, RateLimitedError, TransientError
from autopublish.models import DeliveryStatus
from autopublish.retry import RetryPolicy, decide_check, resend_is_safe
from tests.contract import CANARY
from tests.fakes.base import Response
from tests.fakes.feed_server import FeedServer, older_items, seed_item
from tests.fakes.mastodon import MINIMAL_SCOPES, FakeMastodon
from tests.helpers import AlertRecorder, Clock, write_config

POLICY = RetryPolicy(reconcile_after=60.0, cap=6 * 3600.0, jitter=0.25, max_checks=10, check_give_up_after=86400.0)


# --- the policy, pure ------------------------------------------------------------------------


def test_a_refused_permission_goes_to_an_editor_at_once_naming_it():
    error = CannotCheckError("the token lacks read:statuses", missing_permission="read:statuses")
    decision = decide_check(error, checks=1, doubt_since=0.0, now=10.0, policy=POLICY, rand=0.0)
    assert decision.status == DeliveryStatus.UNCERTAIN and decision.needs_editor and decision.next_attempt_at is None
    assert "read:statuses" in decision.message and not decision.pause_channel


def test_an_auth_refusal_on_a_read_never_pauses_the_channel():
    decision = decide_check(AuthError("refused"), checks=1, doubt_since=0.0, now=10.0, policy=POLICY, rand=0.0)
    assert decision.needs_editor and not decision.pause_channel


def test_failed_checks_back_off_exponentially():
    delays = [decide_check(TransientError("down"), checks=n, doubt_since=0.0, now=0.0, policy=POLICY, rand=0.0).next_attempt_at
              for n in range(1, 6)]
    assert delays == [60.0, 120.0, 240.0, 480.0, 960.0]


def test_the_platforms_retry_after_is_honoured_when_longer():
    error = RateLimitedError("slow down", retry_after=900.0)
    decision = decide_check(error, checks=1, doubt_since=0.0, now=0.0, policy=POLICY, rand=0.0)
    assert decision.next_attempt_at == 900.0 and not decision.needs_editor


@pytest.mark.parametrize(("checks", "now"), [(10, 100.0), (2, 86350.0)])
def test_checks_are_bounded_by_count_and_by_age(checks, now):
    decision = decide_check(TransientError("down"), checks=checks, doubt_since=0.0, now=now, policy=POLICY, rand=0.0)
    assert decision.needs_editor and decision.next_attempt_at is None
    assert "An editor must look" in decision.message


def test_resending_is_safe_only_well_inside_the_idempotency_window():
    assert resend_is_safe(3600.0, 1000.0, 1000.0 + 3000.0, POLICY)
    assert not resend_is_safe(3600.0, 1000.0, 1000.0 + 3400.0, POLICY)  # within the margin: no
    assert not resend_is_safe(None, 1000.0, 1001.0, POLICY)
    assert not resend_is_safe(3600.0, None, 1001.0, POLICY)


# --- the pipeline, against the Mastodon fake ------------------------------------------------------


@pytest.fixture
def site() -> Iterator[FeedServer]:
    with FeedServer(older_items(3)) as server:
        yield server  # type: ignore[misc]


@pytest.fixture
def mastodon(platform_fake) -> FakeMastodon:
    server = platform_fake(FakeMastodon(lifetime=60))
    server.grant(MINIMAL_SCOPES)
    return server


def _app(tmp_path: Path, site: FeedServer, fake: FakeMastodon, clock: Clock, alerts: AlertRecorder, extra: str = "") -> App:
    table = f'[channels.social]\nplatform = "mastodon"\ninstance = "{fake.url}"\naccess_token = "${{MASTODON_TOKEN}}"\n{extra}'
    path = write_config(tmp_path / "autopublish.toml", f"{site.url}/feed/", channels="social", extra=table,
                        settings='publish_timeout = "1s"')
    config = load_config(path, {"MASTODON_TOKEN": CANARY})
    return open_app(config, clock=clock, notifier=alerts)


def _in_doubt(app: App, site: FeedServer, fake: FakeMastodon) -> int:
    """Poll, then post once with the answer lost: the delivery is uncertain."""
    app.pipeline.poll_all()  # the baseline
    site.add(seed_item())
    app.pipeline.poll_all()
    fake.script("drop")  # Mastodon acts, then the connection drops
    app.pipeline.deliver_due()
    [row] = app.store.deliveries_with_status(DeliveryStatus.UNCERTAIN)
    assert fake.posts == 1
    return row.id


@contextmanager
def _doubt(tmp_path: Path, site: FeedServer, fake: FakeMastodon, extra: str = "") -> Iterator[tuple[App, Clock, AlertRecorder, int]]:
    """An app over the Mastodon fake with one delivery in doubt (see _in_doubt), its clock and alerts; closed at the end."""
    clock, alerts = Clock(), AlertRecorder()
    app = _app(tmp_path, site, fake, clock, alerts, extra)
    try:
        yield app, clock, alerts, _in_doubt(app, site, fake)
    finally:
        app.close()


def _new_article(site: FeedServer) -> None:
    """The site publishes another article (after the one in doubt)."""
    site.add(dataclasses.replace(seed_item(datetime.now(UTC)), title="Artikel baru", link="https://jakberketahanan.example.go.id/baru/",
                                 guid="https://jakberketahanan.example.go.id/?p=5000"))


def test_within_the_hour_a_doubt_is_settled_by_resending_with_the_same_key(tmp_path, site, mastodon):
    with _doubt(tmp_path, site, mastodon) as (app, clock, alerts, delivery):
        clock.now += 120
        app.pipeline.deliver_due()  # reading back is refused (no read:accounts, no known account): resend
        row = app.store.delivery(delivery)
        assert row is not None and row.status == DeliveryStatus.SENT
        assert mastodon.posts == 1  # Mastodon answered the repeat with the status it had made
        assert not app.store.channel("social").paused and alerts.problems == []


def test_after_the_hour_a_refused_read_back_goes_to_an_editor_with_one_alert_and_posting_goes_on(tmp_path, site, mastodon):
    with _doubt(tmp_path, site, mastodon) as (app, clock, alerts, delivery):
        clock.now += 2 * 3600  # Mastodon has forgotten the key: resending could post twice
        app.pipeline.deliver_due()
        row = app.store.delivery(delivery)
        assert row is not None and row.status == DeliveryStatus.UNCERTAIN and row.needs_editor
        assert "read:accounts" in row.reason
        assert not app.store.channel("social").paused
        assert [key for key, _ in alerts.problems] == [f"uncertain:{delivery}"]
        assert "read:accounts" in alerts.problems[0][1]
        clock.now += 600
        app.pipeline.deliver_due()
        assert len(alerts.problems) == 1 and mastodon.posts == 1  # one alert; no blind resend
        # the channel keeps posting new articles
        _new_article(site)
        app.pipeline.poll_all()
        result = app.pipeline.deliver_due()
        assert result.sent == 1 and mastodon.posts == 2


def test_with_the_account_key_a_doubt_is_settled_by_reading_back(tmp_path, site, mastodon):
    with _doubt(tmp_path, site, mastodon, extra='account = "bot"\n') as (app, clock, _alerts, delivery):
        clock.now += 2 * 3600
        result = app.pipeline.deliver_due()
        row = app.store.delivery(delivery)
        assert row is not None and row.status == DeliveryStatus.SENT and result.reconciled == 1
        assert row.remote_id == mastodon.statuses[0]["id"] and mastodon.posts == 1


def test_a_failing_read_back_honours_retry_after_backs_off_and_ends_with_an_editor(tmp_path, site, mastodon):
    with _doubt(tmp_path, site, mastodon, extra='account = "bot"\n') as (app, clock, alerts, delivery):
        clock.now += 2 * 3600
        reads = lambda r: r.method == "GET" and r.path.endswith("/statuses")  # noqa: E731
        mastodon.reply_next(Response.json_body(429, {"error": "Too many requests"}, {"Retry-After": "1800"}), when=reads)
        app.pipeline.deliver_due()
        row = app.store.delivery(delivery)
        assert row is not None and row.status == DeliveryStatus.UNCERTAIN and not row.needs_editor
        assert row.next_attempt_at is not None and row.next_attempt_at - clock.now >= 1800  # the platform's wait
        gaps, sweeps = [], 0
        while sweeps < 50:
            sweeps += 1
            row = app.store.delivery(delivery)
            assert row is not None
            if row.needs_editor:
                break
            assert row.next_attempt_at is not None
            gaps.append(row.next_attempt_at - clock.now)
            clock.now = row.next_attempt_at + 1
            mastodon.reply_next(Response(503, "<html>down</html>", {"Content-Type": "text/html"}), when=reads)
            app.pipeline.deliver_due()
        assert row.needs_editor and row.status == DeliveryStatus.UNCERTAIN
        assert sweeps <= 12  # bounded: max_checks, never an endless loop
        assert all(later >= earlier for earlier, later in itertools.pairwise(gaps[1:]))  # growing
        assert [key for key, _ in alerts.problems] == [f"uncertain:{delivery}"]
        assert mastodon.posts == 1 and not app.store.channel("social").paused


def test_check_tells_the_admin_whether_doubts_settle_and_what_is_missing(tmp_path, site, mastodon):
    from tests.helpers import run_cli

    def check(extra: str) -> str:
        table = f'[channels.social]\nplatform = "mastodon"\ninstance = "{mastodon.url}"\naccess_token = "${{MASTODON_TOKEN}}"\n{extra}'
        config = write_config(tmp_path / "autopublish.toml", f"{site.url}/feed/", channels="social", extra=table)
        (tmp_path / ".env").write_text(f"MASTODON_TOKEN={CANARY}\n")
        result = run_cli(config, "check")
        assert result.exit_code == 0, result.output  # a posting token without read:accounts is not broken
        assert CANARY not in result.output
        return result.output

    output = check("")
    assert "Channel social (Mastodon): OK" in output
    assert "Posts in doubt (a crash mid-post): an editor must check them; the token lacks read:accounts" in output
    output = check('account = "bot"\n')
    assert "Posts in doubt (a crash mid-post): settled automatically" in output
    mastodon.grant(("write:statuses", "write:media"))
    assert "the token lacks read:statuses" in check('account = "bot"\n')


def test_linkedin_without_r_organization_social_hands_the_doubt_to_an_editor_and_keeps_posting(tmp_path, site):
    from tests.fakes.linkedin import ORGANIZATION, TOKEN, LinkedInFake

    clock, alerts = Clock(), AlertRecorder()
    with LinkedInFake(token=TOKEN, lifetime=60) as fake:
        fake.grant(("w_organization_social",))  # posting only
        table = (f'[channels.social]\nplatform = "linkedin"\napi_base = "{fake.url}"\norganization = "{ORGANIZATION}"\n'
                 'access_token = "${LINKEDIN_TOKEN}"\n')
        path = write_config(tmp_path / "autopublish.toml", f"{site.url}/feed/", channels="social", extra=table, settings='publish_timeout = "1s"')
        app = open_app(load_config(path, {"LINKEDIN_TOKEN": TOKEN}), clock=clock, notifier=alerts)
        try:
            app.pipeline.poll_all()
            site.add(seed_item())
            app.pipeline.poll_all()
            fake.script("drop")
            app.pipeline.deliver_due()
            [row] = app.store.deliveries_with_status(DeliveryStatus.UNCERTAIN)
            clock.now += 120
            app.pipeline.deliver_due()
            row = app.store.delivery(row.id)
            assert row is not None and row.status == DeliveryStatus.UNCERTAIN and row.needs_editor
            assert "r_organization_social" in row.reason
            assert not app.store.channel("social").paused
            assert [key for key, _ in alerts.problems] == [f"uncertain:{row.id}"]
            _new_article(site)
            app.pipeline.poll_all()
            assert app.pipeline.deliver_due().sent == 1 and len(fake.posts) == 2
        finally:
            app.close()


def test_backoff_still_grows_when_reconcile_after_is_zero():
    policy = RetryPolicy(reconcile_after=0.0, base=30.0, jitter=0.0)
    delays = [decide_check(TransientError("down"), checks=n, doubt_since=0.0, now=0.0, policy=policy, rand=0.0).next_attempt_at
              for n in (1, 2, 3)]
    assert delays == [30.0, 60.0, 120.0]
