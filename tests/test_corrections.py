"""Issue 16: an article edited on the site updates its live posts; retract takes them down.

Real parts: a loopback WordPress-style feed, the loopback Mastodon fake, the CLI in-process.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from tests.contract import CANARY
from tests.fakes.feed_server import FeedServer, older_items, seed_item
from tests.fakes.mastodon import FakeMastodon
from tests.helpers import outbox_lines, run_cli, write_config

MASTODON = '[channels.social]\nplatform = "mastodon"\ninstance = "{url}"\naccess_token = "${{MASTODON_TOKEN}}"\ntemplate = "{{title}}\\n\\n{{link}}"\n{more}\n'


def _setup(tmp_path: Path, site: FeedServer, fake: FakeMastodon, *, channels: str = "social", more: str = "") -> Path:
    config = write_config(tmp_path / "autopublish.toml", f"{site.url}/feed/", channels=channels,
                          extra=MASTODON.format(url=fake.url, more=more))
    (tmp_path / ".env").write_text(f"MASTODON_TOKEN={CANARY}\n")
    assert run_cli(config, "run", "--once").exit_code == 0  # baseline
    site.add(seed_item())
    result = run_cli(config, "run", "--once")
    assert result.exit_code == 0, result.output
    return config


def _log(config: Path) -> list[dict]:
    return [json.loads(line) for line in run_cli(config, "log", "--format", "json").output.splitlines()]


def _rows(config: Path) -> list[tuple]:
    db = sqlite3.connect(config.parent / "queue" / "state.db")
    try:
        return db.execute("SELECT id, channel, kind, target_id, status FROM deliveries ORDER BY id").fetchall()
    finally:
        db.close()


def _edits(fake: FakeMastodon) -> list:
    return [r for r in fake.requests if r.method == "PUT"]


def test_an_edited_title_updates_the_live_post_in_place(tmp_path):
    with FeedServer(older_items(3), wordpress_resolution=False) as site, FakeMastodon(lifetime=60) as fake:
        config = _setup(tmp_path, site, fake)
        assert fake.posts == 1
        site.edit(seed_item().guid, title="Koreksi: CRO menerima delegasi Myanmar")
        result = run_cli(config, "run", "--once")
        assert result.exit_code == 0, result.output
        assert fake.posts == 1  # nothing re-posted
        assert len(_edits(fake)) == 1
        assert fake.statuses[0]["text"].startswith("Koreksi: CRO menerima delegasi Myanmar")
        assert fake.statuses[0]["_history"][0].startswith(seed_item().title)
        log = _log(config)
        assert any("Edited on the site" in r["reason"] for r in log)
        assert any(r["reason"] == "Updated with the text corrected on the site" and r["status"] == "posted" for r in log)
        assert [r[2:] for r in _rows(config)] == [("post", None, "sent"), ("edit", 1, "sent")]
        # the same text again is no edit; a second run sends nothing
        run_cli(config, "run", "--once")
        assert len(_edits(fake)) == 1


def test_a_change_the_template_does_not_show_is_not_an_edit(tmp_path):
    with FeedServer(older_items(3), wordpress_resolution=False) as site, FakeMastodon(lifetime=60) as fake:
        config = _setup(tmp_path, site, fake)  # the template shows only {title} and {link}
        site.edit(seed_item().guid, summary="Ringkasan yang diperbaiki.")
        assert run_cli(config, "run", "--once").exit_code == 0
        assert _edits(fake) == []
        assert [r[2] for r in _rows(config)] == ["post"]
        assert any("Edited on the site" in r["reason"] for r in _log(config))  # the site's edit is still recorded


def test_on_edit_ignore_leaves_the_post_alone_and_says_so(tmp_path):
    with FeedServer(older_items(3), wordpress_resolution=False) as site, FakeMastodon(lifetime=60) as fake:
        config = _setup(tmp_path, site, fake, more='on_edit = "ignore"')
        site.edit(seed_item().guid, title="Judul baru")
        assert run_cli(config, "run", "--once").exit_code == 0
        assert _edits(fake) == []
        assert any('ignores edits (on_edit = "ignore")' in r["reason"] for r in _log(config))


def test_a_platform_that_cannot_edit_is_logged_and_nothing_is_reposted(tmp_path):
    with FeedServer(older_items(3), wordpress_resolution=False) as site, FakeMastodon(lifetime=60) as fake:
        config = _setup(tmp_path, site, fake, channels="outbox")
        assert len(outbox_lines(config)) == 1
        site.edit(seed_item().guid, title="Judul baru")
        assert run_cli(config, "run", "--once").exit_code == 0
        assert len(outbox_lines(config)) == 1
        assert any("edited on the site; this platform cannot edit posts" in r["reason"].lower() for r in _log(config))


def test_a_newer_edit_replaces_one_still_pending(tmp_path):
    with FeedServer(older_items(3), wordpress_resolution=False) as site, FakeMastodon(lifetime=60) as fake:
        config = _setup(tmp_path, site, fake)
        assert run_cli(config, "pause", "social").exit_code == 0  # edits wait while the channel is paused
        site.edit(seed_item().guid, title="Judul kedua")
        run_cli(config, "run", "--once")
        site.edit(seed_item().guid, title="Judul ketiga")
        run_cli(config, "run", "--once")
        assert run_cli(config, "resume", "social").exit_code == 0
        run_cli(config, "run", "--once")
        assert len(_edits(fake)) == 1
        assert fake.statuses[0]["text"].startswith("Judul ketiga")
        assert [r[2:] for r in _rows(config)] == [("post", None, "sent"), ("edit", 1, "skipped"), ("edit", 1, "sent")]


def test_retract_deletes_live_posts_skips_queued_ones_and_is_safe_to_repeat(tmp_path):
    with FeedServer(older_items(3), wordpress_resolution=False) as site, FakeMastodon(lifetime=60) as fake:
        config = _setup(tmp_path, site, fake, channels="social,outbox")
        assert fake.posts == 1 and len(outbox_lines(config)) == 1
        link = seed_item().link
        out = run_cli(config, "retract", link, "--yes")
        assert out.exit_code == 0, out.output
        assert "social: will be deleted" in out.output
        assert "remove it by hand" in out.output and "outbox" in out.output
        assert run_cli(config, "run", "--once").exit_code == 0
        assert fake.posts == 0 and len(fake.deleted) == 1
        again = run_cli(config, "retract", "1", "--yes")  # the delivery number from the log works too
        assert again.exit_code == 0 and "already taken down" in again.output
        run_cli(config, "run", "--once")
        assert len([r for r in fake.requests if r.method == "DELETE"]) == 1
        log = _log(config)
        assert any(r["reason"] == "Deleted from Mastodon" for r in log)
        # an edit after the take-down does not touch the deleted post
        site.edit(seed_item().guid, title="Judul baru")
        run_cli(config, "run", "--once")
        assert _edits(fake) == []


def test_retract_asks_first_and_a_no_changes_nothing(tmp_path):
    with FeedServer(older_items(3), wordpress_resolution=False) as site, FakeMastodon(lifetime=60) as fake:
        config = _setup(tmp_path, site, fake)
        out = run_cli(config, "retract", seed_item().link, input="n\n")
        assert "Nothing was changed" in out.output
        run_cli(config, "run", "--once")
        assert fake.posts == 1
        unknown = run_cli(config, "retract", "https://example.org/not-an-article/", "--yes")
        assert unknown.exit_code == 1 and "no article matches" in unknown.output


def test_a_delete_of_a_post_already_gone_counts_as_done(tmp_path):
    with FeedServer(older_items(3), wordpress_resolution=False) as site, FakeMastodon(lifetime=60) as fake:
        config = _setup(tmp_path, site, fake)
        fake.statuses.clear()  # removed by hand on the platform
        run_cli(config, "retract", seed_item().link, "--yes")
        run_cli(config, "run", "--once")
        assert _rows(config)[-1][2:] == ("delete", 1, "sent")


# --- a crash in the middle of an edit or a delete ---------------------------------------------


def _status_of(config: Path, delivery_id: int) -> str | None:
    rows = [r for r in _rows(config) if r[0] == delivery_id]
    return rows[0][4] if rows else None


def _kill_mid_request(config: Path, fake: FakeMastodon, method: str, delivery_id: int) -> None:
    """Run the daemon until it has sent ``method`` and hangs for the answer, then SIGKILL it."""
    import signal

    from tests.fakes.base import wait_until
    from tests.helpers import autopublish_process

    fake.hang_seconds = 30.0
    fake.script("hang", when=lambda r: r.method == method)
    daemon = autopublish_process(config, "run", output=config.parent / "daemon.log")
    try:
        assert wait_until(lambda: any(r.method == method for r in fake.requests), timeout=30), "the daemon never sent it"
        assert wait_until(lambda: _status_of(config, delivery_id) == "sending", timeout=10)
        daemon.send_signal(signal.SIGKILL)
        daemon.wait(timeout=10)
    finally:
        if daemon.poll() is None:
            daemon.kill()
    assert _status_of(config, delivery_id) == "sending"  # claimed and committed before the request left
    fake.hang_seconds = 0.1


def test_a_crash_mid_edit_sends_the_edit_again_and_never_reposts(tmp_path):
    with FeedServer(older_items(3), wordpress_resolution=False) as site, FakeMastodon(lifetime=120) as fake:
        config = _setup(tmp_path, site, fake)
        site.edit(seed_item().guid, title="Judul yang dikoreksi")
        _kill_mid_request(config, fake, "PUT", 2)
        again = run_cli(config, "run", "--once")
        assert again.exit_code == 0, again.output
        assert _status_of(config, 2) == "sent"
        assert fake.posts == 1
        assert fake.statuses[0]["text"].startswith("Judul yang dikoreksi")
        assert any(r["event"] == "interrupted" and r["delivery"] == 2 for r in _log(config))


def test_a_crash_mid_delete_finishes_the_take_down_once(tmp_path):
    with FeedServer(older_items(3), wordpress_resolution=False) as site, FakeMastodon(lifetime=120) as fake:
        config = _setup(tmp_path, site, fake)
        assert run_cli(config, "retract", seed_item().link, "--yes").exit_code == 0
        _kill_mid_request(config, fake, "DELETE", 2)
        assert fake.posts == 0  # the platform acted before the answer was lost
        again = run_cli(config, "run", "--once")
        assert again.exit_code == 0, again.output
        assert _status_of(config, 2) == "sent"  # the repeat met 404: already gone
        assert [r[2:] for r in _rows(config)] == [("post", None, "sent"), ("delete", 1, "sent")]


# --- optional: an article withdrawn from the site alerts the editors -------------------------


def test_an_article_answering_410_alerts_the_editors_with_a_retract_link(tmp_path):
    import os
    from datetime import UTC, datetime, timedelta

    from autopublish.app import open_app
    from autopublish.config import load_config
    from tests.fakes.feed_server import Item

    with FeedServer(older_items(2)) as site:
        config_path = write_config(tmp_path / "autopublish.toml", f"{site.url}/feed/",
                                   settings="watch_removed = true",
                                   extra='[web]\npublic_url = "https://redaksi.example.go.id/autopublish"\n')
        assert run_cli(config_path, "run", "--once").exit_code == 0
        path = "/2026/12/01/artikel-ditarik/"
        site.add(Item(title="Artikel yang ditarik", link=f"{site.url}{path}", guid=f"{site.url}/?p=77",
                      published=datetime.now(UTC) - timedelta(minutes=3), summary="Ringkasan."))
        site.pages[path] = 200
        assert run_cli(config_path, "run", "--once").exit_code == 0
        assert len(outbox_lines(config_path)) == 1
        app = open_app(load_config(config_path, dict(os.environ)))
        try:
            assert app.pipeline.check_removed() == []
            site.pages[path] = 410
            gone = app.pipeline.check_removed()
            assert len(gone) == 1
            assert app.store.alert_is_open(f"removed:{gone[0]}")
            app.pipeline.check_removed()  # asked again: one log line, not two
            site.pages[path] = 200
            app.pipeline.check_removed()
            assert not app.store.alert_is_open(f"removed:{gone[0]}")
        finally:
            app.close()
        lines = [r["reason"] for r in _log(config_path)]
        warned = [line for line in lines if "now answers HTTP 410" in line and line.startswith("The article")]
        assert len(warned) == 1
        assert f"https://redaksi.example.go.id/autopublish/articles/{gone[0]}/retract" in warned[0]
        assert f"autopublish retract {site.url}{path}" in warned[0]


def test_watching_for_removed_articles_is_off_by_default(tmp_path):
    import os

    from autopublish.app import open_app
    from autopublish.config import load_config

    with FeedServer(older_items(2)) as site:
        config_path = write_config(tmp_path / "autopublish.toml", f"{site.url}/feed/")
        assert run_cli(config_path, "run", "--once").exit_code == 0
        app = open_app(load_config(config_path, dict(os.environ)))
        try:
            before = len(site.requests)
            assert app.pipeline.check_removed() == []
            assert len(site.requests) == before  # nothing was asked
        finally:
            app.close()


def test_edits_are_paced_like_posts_and_take_downs_are_not(tmp_path):
    with FeedServer(older_items(3), wordpress_resolution=False) as site, FakeMastodon(lifetime=60) as fake:
        config = _setup(tmp_path, site, fake, more='[channels.social.pacing]\nmin_gap = "1h"')
        assert fake.posts == 1
        site.edit(seed_item().guid, title="Judul yang dikoreksi")
        assert run_cli(config, "run", "--once").exit_code == 0
        assert _edits(fake) == []  # an hour has not passed since the post
        db = sqlite3.connect(config.parent / "queue" / "state.db")
        try:
            reason, when = db.execute("SELECT reason, next_attempt_at FROM deliveries WHERE id = 2").fetchone()
        finally:
            db.close()
        assert "pacing" in reason and when > time.time() + 3000
        assert run_cli(config, "retract", seed_item().link, "--yes").exit_code == 0
        assert run_cli(config, "run", "--once").exit_code == 0
        assert fake.posts == 0  # the take-down did not wait
        assert [r[2:] for r in _rows(config)] == [("post", None, "sent"), ("edit", 1, "skipped"), ("delete", 1, "sent")]
