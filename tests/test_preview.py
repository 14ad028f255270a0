"""``preview`` and the ``run --once`` summary: library functions the command line prints."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from autopublish.once import OnceResult, summary_lines
from autopublish.pipeline import PollResult, SweepResult
from tests.fakes.feed_server import SEED_TITLE, FeedServer, Item, seed_item
from tests.helpers import outbox_lines, run_cli, write_config

FILTERED = """
[channels.filtered]
platform = "outbox"
template = "{title} {link}"
exclude_keywords = ["Myanmar"]
"""


def old_item() -> Item:
    return Item(title="Berita yang sudah lama", link="https://jakberketahanan.example.go.id/2026/10/01/lama/",
                guid="https://jakberketahanan.example.go.id/?p=77", published=datetime.now(UTC) - timedelta(days=5),
                summary="Sudah lama.")


@pytest.fixture
def site():
    with FeedServer([old_item(), seed_item()]) as server:
        yield server


def test_preview_shows_what_a_poll_then_posts_and_publishes_nothing(tmp_path, site):
    config = write_config(tmp_path / "autopublish.toml", f"{site.url}/feed/", channels="outbox,filtered", extra=FILTERED,
                          first_run="all")
    shown = run_cli(config, "preview", "--limit", "5")
    assert shown.exit_code == 0, shown.output
    assert outbox_lines(config) == [] and outbox_lines(config, "filtered") == []
    assert shown.output.startswith("Feed site: Jakarta Berketahanan (2 articles)\n")
    assert f"--- outbox (Outbox) · {SEED_TITLE}" in shown.output
    # the pipeline's own first-status rules: the channel's keyword filter and the feed's max_age
    assert f"--- filtered (Outbox) · {SEED_TITLE}\nSkipped: mentions an excluded keyword (Myanmar)" in shown.output
    assert "--- outbox (Outbox) · Berita yang sudah lama\nSkipped: published more than" in shown.output

    assert run_cli(config, "run", "--once").exit_code == 0
    posted = outbox_lines(config)
    assert [line["title"] for line in posted] == [SEED_TITLE] and outbox_lines(config, "filtered") == []
    assert posted[0]["text"] in shown.output  # the very text the preview showed
    length = f"[length {len(posted[0]['text'])} of "
    assert length in shown.output


def test_preview_of_one_channel_and_of_an_unreadable_feed(tmp_path, site):
    config = write_config(tmp_path / "autopublish.toml", f"{site.url}/feed/", channels="outbox,filtered", extra=FILTERED)
    only = run_cli(config, "preview", "--channel", "filtered")
    assert only.exit_code == 0 and "--- filtered" in only.output and "--- outbox" not in only.output

    missing = write_config(tmp_path / "missing.toml", f"{site.url}/nothing-here/")
    broken = run_cli(missing, "preview")
    assert broken.exit_code == 1
    assert broken.output.startswith("Feed site: ") and "404" in broken.output and "---" not in broken.output


def test_the_run_summary_says_each_feed_then_the_deliveries() -> None:
    result = OnceResult([PollResult("site", True, new=2, queued=3), PollResult("quiet", True, changed=False),
                         PollResult("down", False, message="The server answered 503")],
                        SweepResult(sent=3, waiting=1, reconciled=2))
    assert list(summary_lines(result)) == [
        "feed site: ok, 2 new, 3 queued",
        "feed quiet: ok, unchanged",
        "feed down: failed: The server answered 503",
        "posted 3, waiting 1, uncertain 0, held 0, failed 0, settled 2",
    ]
    assert not result.every_feed_failed
    assert OnceResult([PollResult("down", False)], SweepResult()).every_feed_failed
    assert not OnceResult([], SweepResult()).every_feed_failed
