"""The spine end to end: a feed over loopback becomes posts in the outbox, once and only once."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from autopublish.app import open_app
from autopublish.config import load_config
from autopublish.errors import AuthError, RateLimitedError, TransientError, UncertainError
from autopublish.models import DeliveryStatus
from autopublish.retry import RetryPolicy, backoff, decide
from tests.contract import CANARY
from tests.fakes.feed_server import SEED_TITLE, FeedServer, Item, older_items, seed_item
from tests.fakes.mastodon import FakeMastodon
from tests.helpers import outbox_lines, run_cli, sqlite_of, write_config


@pytest.fixture
def site():
    with FeedServer(older_items(10)) as server:
        yield server


def test_seed_scenario(tmp_path, site):
    config = write_config(tmp_path / "autopublish.toml", f"{site.url}/feed/")
    first = run_cli(config, "run", "--once")
    assert first.exit_code == 0, first.output
    assert outbox_lines(config) == []  # first sight: ten older articles recorded, none posted

    site.add(seed_item())
    second = run_cli(config, "run", "--once")
    assert second.exit_code == 0, second.output
    lines = outbox_lines(config)
    assert len(lines) == 1
    post = lines[0]
    assert post["title"] == SEED_TITLE
    assert post["article_link"] in post["text"]
    for tag in ("#Berita", "#JakartaBerketahanan", "#Kegiatan"):
        assert tag in post["text"]
    assert {"text", "link", "image", "article_link", "title", "time", "delivery"} <= set(post)

    third = run_cli(config, "run", "--once")
    assert third.exit_code == 0
    assert len(outbox_lines(config)) == 1

    log = run_cli(config, "log", "--format", "json")
    rows = [json.loads(line) for line in log.output.splitlines()]
    posted = [r for r in rows if r["status"] == "posted"]
    assert len(posted) == 1 and posted[0]["title"] == SEED_TITLE and posted[0]["post_url"]
    for key in ("time", "feed", "channel", "title", "article_link", "status", "post_url", "reason"):
        assert key in posted[0]


def test_first_run_latest_posts_the_newest_oldest_first(tmp_path, site):
    config = write_config(tmp_path / "autopublish.toml", f"{site.url}/feed/", first_run="latest:3", max_age="off")
    assert run_cli(config, "run", "--once").exit_code == 0
    titles = [line["title"] for line in outbox_lines(config)]
    assert titles == ["Berita lama nomor 8", "Berita lama nomor 9", "Berita lama nomor 10"]


def test_max_age_records_old_entries_without_posting(tmp_path, site):
    config = write_config(tmp_path / "autopublish.toml", f"{site.url}/feed/", max_age="1d")
    run_cli(config, "run", "--once")
    site.add(Item("Sudah lama tapi baru muncul", "https://example.go.id/lama/", "old-1", datetime.now(UTC) - timedelta(days=5), ["Berita"]))
    site.add(seed_item())
    run_cli(config, "run", "--once")
    assert [line["title"] for line in outbox_lines(config)] == [SEED_TITLE]
    skipped = json.loads(run_cli(config, "log", "--format", "json", "--status", "skipped").output.splitlines()[0])
    assert "before it was first seen" in skipped["reason"]


def test_edited_entry_and_moved_site_are_not_posted_again(tmp_path, site):
    config = write_config(tmp_path / "autopublish.toml", f"{site.url}/feed/")
    run_cli(config, "run", "--once")
    item = seed_item()
    site.add(item)
    run_cli(config, "run", "--once")
    # The same article edited (new text, new date), then the site moves to https with new GUIDs.
    site.items.remove(item)
    site.add(Item(item.title + " (diperbarui)", item.link, item.guid, item.published + timedelta(hours=1), item.categories, "Teks baru"))
    run_cli(config, "run", "--once")
    site.items = [Item(i.title, i.link.replace("https://", "http://") + "?utm_source=rss", "new-" + i.guid, i.published, i.categories) for i in site.items]
    run_cli(config, "run", "--once")
    assert len(outbox_lines(config)) == 1


def test_flood_guard_holds_instead_of_posting(tmp_path, site):
    config = write_config(tmp_path / "autopublish.toml", f"{site.url}/feed/", settings="flood_threshold = 5")
    run_cli(config, "run", "--once")
    now = datetime.now(UTC)
    for i in range(8):
        site.add(Item(f"Artikel migrasi {i}", f"https://example.go.id/m/{i}/", f"m-{i}", now - timedelta(minutes=i), ["Berita"]))
    run_cli(config, "run", "--once")
    assert outbox_lines(config) == []
    queue = run_cli(config, "queue")
    assert "flood guard" in queue.output and queue.output.count("held") >= 8


def test_channel_filters(tmp_path, site):
    extra = 'include_categories = ["Kegiatan"]\nexclude_keywords = ["rahasia"]'
    config = write_config(tmp_path / "autopublish.toml", f"{site.url}/feed/", extra=extra)
    run_cli(config, "run", "--once")
    now = datetime.now(UTC)
    site.add(Item("Tanpa kategori yang cocok", "https://example.go.id/x/", "x", now - timedelta(minutes=3), ["Berita"]))
    site.add(Item("Kegiatan rahasia", "https://example.go.id/y/", "y", now - timedelta(minutes=2), ["Kegiatan"]))
    site.add(seed_item(now - timedelta(minutes=1)))
    run_cli(config, "run", "--once")
    assert [line["title"] for line in outbox_lines(config)] == [SEED_TITLE]


def test_broken_feed_is_a_clear_error_and_the_run_goes_on(tmp_path):
    with FeedServer() as server:
        server.override = __import__("tests.fakes.base", fromlist=["Response"]).Response(
            200, b"<html><body>maintenance</body></html>", {"Content-Type": "text/html"}
        )
        config = write_config(tmp_path / "autopublish.toml", f"{server.url}/feed/")
        result = run_cli(config, "run", "--once")
        assert result.exit_code == 1
        assert "web page, not a feed" in result.output
        assert "Traceback" not in result.output
        log = run_cli(config, "log", "--format", "json").output
        assert "web page, not a feed" in log


def test_editor_commands(tmp_path, site):
    config = write_config(tmp_path / "autopublish.toml", f"{site.url}/feed/")
    run_cli(config, "run", "--once")
    assert run_cli(config, "pause", "outbox").exit_code == 0
    site.add(seed_item())
    run_cli(config, "run", "--once")
    assert outbox_lines(config) == []
    queue = run_cli(config, "queue").output
    assert "PAUSED" in queue and "held" in queue
    resumed = run_cli(config, "resume", "outbox")
    assert "1 held post(s) are back in the queue" in resumed.output
    run_cli(config, "run", "--once")
    assert len(outbox_lines(config)) == 1
    assert run_cli(config, "skip", "1").exit_code == 1  # already posted: refused in plain words
    assert run_cli(config, "retry", "999").exit_code == 1
    assert run_cli(config, "resolve", "1").exit_code == 2  # usage: needs --posted or --not-posted
    assert run_cli(config, "pause", "nope").exit_code == 2


def test_auth_error_pauses_the_channel_and_keeps_the_queue(tmp_path, site):
    with FakeMastodon() as fake:
        table = f'[channels.social]\nplatform = "mastodon"\ninstance = "{fake.url}"\naccess_token = "${{MASTODON_TOKEN}}"\n'
        config_path = write_config(tmp_path / "autopublish.toml", f"{site.url}/feed/", channels="social", extra=table)
        env = {"MASTODON_TOKEN": CANARY}
        app = open_app(load_config(config_path, env, cwd=tmp_path))
        app.pipeline.poll_all()  # baseline
        site.add(seed_item())
        fake.script("auth")  # the token is revoked for the next post
        app.pipeline.poll_all()
        app.pipeline.deliver_due()
        assert app.store.channel("social").paused
        rows = app.store.deliveries_with_status(DeliveryStatus.HELD)
        assert len(rows) == 1 and "token" in rows[0].reason.lower() and "resume" in rows[0].reason
        attempts = lambda: sum(1 for r in fake.requests if fake.is_publish(r))  # noqa: E731
        app.pipeline.deliver_due()
        assert attempts() == 1 and fake.posts == 0  # paused: not tried again, nothing lost
        assert app.store.resume_channel("social") == 1
        app.pipeline.deliver_due()
        assert fake.posts == 1
        app.close()


def test_retry_policy_backoff_and_give_up():
    policy = RetryPolicy(max_tries=4, give_up_after=3600, base=60, cap=600, jitter=0.25)
    assert backoff(1, policy, 0.0) == 60 and backoff(2, policy, 0.0) == 120 and backoff(10, policy, 0.0) == 600
    assert backoff(1, policy, 1.0) == 75
    transient = TransientError("down")
    d = decide(transient, tries=1, first_try_at=0, now=0, policy=policy, rand=0.0, idempotent=False, can_read_back=True)
    assert d.status == DeliveryStatus.WAITING and d.next_attempt_at == 60
    d = decide(transient, tries=4, first_try_at=0, now=100, policy=policy, rand=0.0, idempotent=False, can_read_back=True)
    assert d.status == DeliveryStatus.FAILED and "4 tries" in d.message
    limited = RateLimitedError("slow down", retry_after=900)
    d = decide(limited, tries=1, first_try_at=0, now=0, policy=policy, rand=0.0, idempotent=False, can_read_back=True)
    assert d.status == DeliveryStatus.WAITING and d.next_attempt_at == 900
    unsure = UncertainError("timeout")
    assert decide(unsure, tries=1, first_try_at=0, now=0, policy=policy, rand=0.0, idempotent=True, can_read_back=False).status == DeliveryStatus.WAITING
    assert decide(unsure, tries=1, first_try_at=0, now=0, policy=policy, rand=0.0, idempotent=False, can_read_back=True).status == DeliveryStatus.UNCERTAIN
    held = decide(unsure, tries=1, first_try_at=0, now=0, policy=policy, rand=0.0, idempotent=False, can_read_back=False)
    assert held.status == DeliveryStatus.UNCERTAIN and held.needs_editor
    auth = decide(AuthError("expired"), tries=1, first_try_at=0, now=0, policy=policy, rand=0.0, idempotent=False, can_read_back=True)
    assert auth.status == DeliveryStatus.HELD and auth.pause_channel


def test_the_database_refuses_a_second_delivery(tmp_path, site):
    config_path = write_config(tmp_path / "autopublish.toml", f"{site.url}/feed/")
    run_cli(config_path, "run", "--once")
    site.add(seed_item())
    run_cli(config_path, "run", "--once")
    app = open_app(load_config(config_path, {}, cwd=tmp_path))
    import sqlite3

    with pytest.raises(sqlite3.IntegrityError):
        sqlite_of(app.store).execute("INSERT INTO deliveries (article_id, channel, status, created_at, updated_at) SELECT article_id, channel, 'queued', 0, 0 "
                                     "FROM deliveries LIMIT 1")
    app.close()


def test_second_daemon_exits_with_a_clear_message(tmp_path, site):
    from autopublish.lock import StateLock

    config = write_config(tmp_path / "autopublish.toml", f"{site.url}/feed/")
    with StateLock(tmp_path / "queue"):
        result = run_cli(config, "run", "--once")
    assert result.exit_code == 1 and "already running" in result.output


def test_a_token_expiring_within_7_days_is_warned_once_in_the_publish_log(tmp_path, site):
    from tests.fakes.facebook import FakeGraph

    with FakeGraph() as graph:
        graph.token_expires_at = int(datetime.now(UTC).timestamp()) + 3 * 86400
        table = (f'[channels.page]\nplatform = "facebook"\npage_id = "{graph.page_id}"\naccess_token = "${{FACEBOOK_PAGE_TOKEN}}"\n'
                 f'api_base = "{graph.url}"\napp_id = "{graph.app_id}"\napp_secret = "${{FACEBOOK_APP_SECRET}}"\n')  # debug_token needs the app
        config_path = write_config(tmp_path / "autopublish.toml", f"{site.url}/feed/", channels="page", extra=table)
        app = open_app(load_config(config_path, {"FACEBOOK_PAGE_TOKEN": CANARY, "FACEBOOK_APP_SECRET": graph.app_secret}, cwd=tmp_path))
        app.pipeline.check_channels()
        app.pipeline.check_channels()  # the daemon checks every few hours: one warning a day, not one per check
        warnings = app.store.events(kinds=("token_expiring",))
        assert len(warnings) == 1 and "expire on" in warnings[0]["message"] and "renew" in warnings[0]["message"]
        assert app.store.channel("page").token_expires_at == pytest.approx(graph.token_expires_at, abs=1)
        app.close()
