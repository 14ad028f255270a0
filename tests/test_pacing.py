"""Per-channel pacing: posts per hour and per day, a minimum gap, quiet hours; a backlog drains oldest first."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from autopublish.app import open_app
from autopublish.config import PacingModel, load_config
from autopublish.pacing import next_allowed, quiet_until
from tests.fakes.feed_server import FeedServer, Item, older_items
from tests.helpers import outbox_lines, write_config

JAKARTA = "Asia/Jakarta"  # UTC+7


def _at(hour: int, minute: int = 0) -> float:
    """A moment on 2026-11-28, Jakarta wall-clock time."""
    return datetime(2026, 11, 28, hour, minute, tzinfo=ZoneInfo(JAKARTA)).timestamp()


def test_quiet_hours_across_midnight_in_the_channels_zone():
    pacing = PacingModel(quiet_hours="22:00-06:00", timezone=JAKARTA)
    assert quiet_until(pacing, _at(21, 59)) is None
    assert quiet_until(pacing, _at(23, 30)) == _at(6) + 86400
    assert quiet_until(pacing, _at(3, 0)) == _at(6)
    assert quiet_until(pacing, _at(6, 0)) is None


def test_limits_and_gap():
    now = 1_000_000.0
    hourly = PacingModel(max_per_hour=2)
    assert next_allowed(hourly, now, sent_last_hour=1, sent_last_day=1, last_sent_at=now - 10) is None
    assert next_allowed(hourly, now, sent_last_hour=2, sent_last_day=2, last_sent_at=now - 10, oldest_in_hour=now - 1000) == now - 1000 + 3600
    gap = PacingModel(min_gap="10m")
    assert next_allowed(gap, now, sent_last_hour=1, sent_last_day=1, last_sent_at=now - 60) == now - 60 + 600
    daily = PacingModel(max_per_day=3)
    assert next_allowed(daily, now, sent_last_hour=0, sent_last_day=3, last_sent_at=now - 7200, oldest_in_day=now - 80000) == now - 80000 + 86400


def test_a_backlog_drains_oldest_first_within_the_limits_and_nothing_is_dropped(tmp_path):
    clock = [datetime(2026, 11, 28, 3, 0, tzinfo=UTC).timestamp()]
    with FeedServer(older_items(2)) as site:
        pacing = '\n[channels.outbox.pacing]\nmax_per_hour = 2\nmin_gap = "5m"\n'
        config_path = write_config(tmp_path / "autopublish.toml", f"{site.url}/feed/", extra=pacing, max_age="off")
        app = open_app(load_config(config_path, {}, cwd=tmp_path), clock=lambda: clock[0])
        app.pipeline.poll_all()
        base = datetime.now(UTC) - timedelta(hours=1)
        for i in range(5):
            site.add(Item(f"Antrean {i}", f"https://example.go.id/q/{i}/", f"q{i}", base + timedelta(minutes=i), ["Berita"]))
        app.pipeline.poll_all()
        sent_at: list[float] = []
        for _ in range(40):  # simulated time in 5-minute steps, ~3 hours
            before = len(outbox_lines(config_path))
            app.pipeline.deliver_due()
            sent_at += [clock[0]] * (len(outbox_lines(config_path)) - before)
            clock[0] += 300
        app.close()
    titles = [line["title"] for line in outbox_lines(config_path)]
    assert titles == [f"Antrean {i}" for i in range(5)]  # all of them, oldest first
    for i, moment in enumerate(sent_at):
        in_hour = [t for t in sent_at[: i + 1] if moment - t < 3600]
        assert len(in_hour) <= 2
        if i:
            assert moment - sent_at[i - 1] >= 300


def test_a_channel_delay_holds_a_new_post_back_and_an_edit_meanwhile_goes_out_corrected(tmp_path):
    """[pacing] delay: time to fix a typo before the post leaves; the web page shows when it goes out."""
    clock = [datetime(2026, 11, 28, 3, 0, tzinfo=UTC).timestamp()]
    item = Item("Rapat koordinasi banjir", "https://example.go.id/banjir/", "banjir-1", datetime.now(UTC) - timedelta(minutes=2), ["Berita"])
    with FeedServer(older_items(2)) as site:
        config_path = write_config(tmp_path / "autopublish.toml", f"{site.url}/feed/", extra='\n[channels.outbox.pacing]\ndelay = "15m"\n')
        app = open_app(load_config(config_path, {}, cwd=tmp_path), clock=lambda: clock[0])
        app.pipeline.poll_all()  # baseline
        site.add(item)
        app.pipeline.poll_all()
        [row] = app.store.deliveries_with_status("queued")
        assert row.next_attempt_at == clock[0] + 900
        assert row.reason == "New article queued; it waits 15m (the channel's delay) before it goes out"
        clock[0] += 600
        app.pipeline.deliver_due()
        assert outbox_lines(config_path) == []  # 10 minutes in: still waiting
        site.edit("banjir-1", title="Rapat koordinasi penanganan banjir")  # the editor fixes the title meanwhile
        app.pipeline.poll_all()
        clock[0] += 300
        app.pipeline.deliver_due()
        app.close()
    assert [line["title"] for line in outbox_lines(config_path)] == ["Rapat koordinasi penanganan banjir"]


def test_without_a_delay_a_new_post_is_due_at_once(tmp_path):
    clock = [datetime(2026, 11, 28, 3, 0, tzinfo=UTC).timestamp()]
    with FeedServer(older_items(2)) as site:
        config_path = write_config(tmp_path / "autopublish.toml", f"{site.url}/feed/")
        app = open_app(load_config(config_path, {}, cwd=tmp_path), clock=lambda: clock[0])
        app.pipeline.poll_all()
        site.add(Item("Sekarang", "https://example.go.id/now/", "now-1", datetime.now(UTC) - timedelta(minutes=1), ["Berita"]))
        app.pipeline.poll_all()
        [row] = app.store.deliveries_with_status("queued")
        assert row.next_attempt_at == clock[0] and row.reason == "New article queued"
        app.pipeline.deliver_due()
        app.close()
    assert [line["title"] for line in outbox_lines(config_path)] == ["Sekarang"]
