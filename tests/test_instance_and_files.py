"""One daemon per state directory (real processes), private file modes, redaction, safe CSV."""

from __future__ import annotations

import csv
import io
import os
import signal
import stat
import subprocess
import time

from werkzeug.security import generate_password_hash

from autopublish.app import open_app
from autopublish.config import load_config
from autopublish.errors import PermanentError
from autopublish.lock import StateLock
from tests.fakes.feed_server import FeedServer, older_items, seed_item
from tests.helpers import autopublish_process, run_cli, sqlite_of, write_config


def _wait(predicate, timeout: float = 20.0) -> bool:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


# --- single instance ------------------------------------------------------------------------


def test_deleting_the_lock_file_does_not_let_a_second_daemon_in(tmp_path):
    with FeedServer(older_items(2)) as site:
        config = write_config(tmp_path / "autopublish.toml", f"{site.url}/feed/")
        lock_file = tmp_path / "queue" / "autopublish.lock"
        first = autopublish_process(config, "run", output=tmp_path / "first.log")
        try:
            assert _wait(lambda: lock_file.exists() and lock_file.read_text().strip() == str(first.pid)), "the first daemon did not start"
            lock_file.unlink()
            second = autopublish_process(config, "run")
            try:
                _, err = second.communicate(timeout=30)
            finally:
                _stop(second)
            assert second.returncode == 1
            assert b"already running" in err and b"Traceback" not in err
            once = autopublish_process(config, "run", "--once")
            _, err = once.communicate(timeout=30)
            assert once.returncode == 1 and b"already running" in err
            assert first.poll() is None  # the first daemon is untouched
        finally:
            _stop(first)
    # the first one's work was never turned "uncertain" by an intruder
    log = run_cli(config, "log", "--format", "json")
    assert '"interrupted"' not in log.output


def test_the_lock_is_released_when_the_holder_ends(tmp_path):
    with StateLock(tmp_path / "state"):
        pass
    with StateLock(tmp_path / "state"):
        pass


# --- file modes ------------------------------------------------------------------------------


def test_state_directory_database_and_outbox_are_private(tmp_path):
    os.umask(0o022)
    with FeedServer(older_items(2)) as site:
        config = write_config(tmp_path / "autopublish.toml", f"{site.url}/feed/")
        assert run_cli(config, "run", "--once").exit_code == 0
        site.add(seed_item())
        assert run_cli(config, "run", "--once").exit_code == 0
    state = tmp_path / "queue"
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    for path in (state / "state.db", state / "outbox" / "outbox.jsonl", state / "autopublish.lock"):
        assert path.exists(), path
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    for extra in state.glob("state.db-*"):
        assert stat.S_IMODE(extra.stat().st_mode) & 0o077 == 0, extra


def test_check_warns_about_secret_files_others_can_read(tmp_path):
    config = write_config(tmp_path / "autopublish.toml", "https://example.go.id/feed/",
                          extra=f'\n[[web.users]]\nname = "editor"\npassword_hash = "{generate_password_hash("editor-password")}"\n')
    env_file = tmp_path / ".env"
    env_file.write_text("X=1\n")
    env_file.chmod(0o644)
    config.chmod(0o644)
    result = run_cli(config, "check", "--offline")
    assert "WARNING" in result.output and f"chmod 600 {env_file}" in result.output and f"chmod 600 {config}" in result.output
    env_file.chmod(0o600)
    config.chmod(0o600)
    assert "WARNING" not in run_cli(config, "check", "--offline").output


# --- secrets in feed URLs and platform errors -----------------------------------------------------


def test_a_feed_url_with_a_secret_part_is_fetched_with_it_and_shown_without_it(tmp_path):
    secret = "feedkey-9c8b7a6f5e"
    with FeedServer(older_items(2)) as site:
        config = write_config(tmp_path / "autopublish.toml", f"{site.url}/feed/?key=${{FEED_KEY}}")
        (tmp_path / ".env").write_text(f"FEED_KEY={secret}\n")
        result = run_cli(config, "run", "--once")
        assert result.exit_code == 0 and "feed site: ok" in result.output
        assert site.requests[-1].query["key"] == [secret]
        check = run_cli(config, "check", "--offline")
        assert "${FEED_KEY}" in check.output and secret not in check.output
        site.override = None
    with open_app(load_config(config, {"FEED_KEY": secret}, cwd=tmp_path)).store as store:
        rows = sqlite_of(store).execute("SELECT url FROM feeds").fetchall()
    assert rows and secret not in rows[0][0]
    raw = (tmp_path / "queue" / "state.db").read_bytes()
    assert secret.encode() not in raw


def test_a_missing_variable_in_a_feed_url_is_a_config_problem(tmp_path):
    config = write_config(tmp_path / "autopublish.toml", "https://example.go.id/feed/?key=${NOT_SET_ANYWHERE}")
    result = run_cli(config, "check", "--offline")
    assert result.exit_code == 2 and "NOT_SET_ANYWHERE is not set" in result.output


def test_platform_error_texts_are_redacted_before_they_are_stored(tmp_path):
    secret = "tok-live-5f4e3d2c1b"
    with FeedServer(older_items(1)) as site:
        config_path = write_config(tmp_path / "autopublish.toml", f"{site.url}/feed/?key=${{FEED_KEY}}")
        app = open_app(load_config(config_path, {"FEED_KEY": secret}, cwd=tmp_path))
        try:
            app.pipeline.poll_all()
            site.add(seed_item())
            app.pipeline.poll_all()
            outbox = app.publishers["outbox"]

            def leaky_publish(post):  # type: ignore[no-untyped-def]
                # a platform that echoes a credential in its error text
                raise PermanentError(f"the server said: invalid request for key={secret}", platform="outbox", channel="outbox")

            outbox.publish = leaky_publish  # type: ignore[method-assign]
            app.pipeline.deliver_due()
            rows = sqlite_of(app.store).execute("SELECT message FROM events UNION ALL SELECT reason FROM deliveries").fetchall()
        finally:
            app.close()
    assert any("invalid request" in r[0] for r in rows)
    assert all(secret not in r[0] for r in rows)


# --- CSV export ----------------------------------------------------------------------------------


def test_csv_export_neutralises_formula_cells(tmp_path):
    with FeedServer([]) as site:
        config = write_config(tmp_path / "autopublish.toml", f"{site.url}/feed/", first_run="all", max_age="off")
        from tests.fakes.feed_server import Item

        base = seed_item()
        for index, title in enumerate(['=HYPERLINK("http://evil.example","klik")', "+1+2", "-3", "@SUM(A1)", "\tTab", "Biasa"]):
            site.add(Item(**{**vars(base), "title": title, "guid": f"g{index}", "link": f"https://example.go.id/{index}/"}))
        assert run_cli(config, "run", "--once").exit_code == 0
        output = run_cli(config, "log", "--format", "csv").output
    titles = {row["title"] for row in csv.DictReader(io.StringIO(output)) if row["title"]}
    assert "'=HYPERLINK(\"http://evil.example\",\"klik\")" in titles
    assert {"'+1+2", "'-3", "'@SUM(A1)", "Biasa"} <= titles
    assert not any(t[:1] in "=+-@\t\r" for t in titles)
