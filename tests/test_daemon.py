"""The real daemon process: metrics and health, config reload, clean stop."""

from __future__ import annotations

import json
import signal

import requests

from tests.fakes.base import wait_until
from tests.fakes.feed_server import FeedServer, older_items, seed_item
from tests.helpers import autopublish_process, baseline_done, free_port, outbox_lines, run_cli, stop_daemon, write_config


def test_daemon_posts_serves_metrics_reloads_and_stops_cleanly(tmp_path):
    port = free_port()
    with FeedServer(older_items(3)) as site:
        config = write_config(tmp_path / "autopublish.toml", f"{site.url}/feed/", settings='feed_down_after = "2s"',
                              extra=f'\n[daemon]\nmetrics = "127.0.0.1:{port}"\n')
        config.write_text(config.read_text().replace('poll_interval = "5m"', 'poll_interval = "1s"'))
        log = tmp_path / "daemon.log"
        daemon = autopublish_process(config, "run", output=log)
        try:
            assert wait_until(lambda: _get(port, "/healthz") == 200, timeout=20)
            assert wait_until(lambda: baseline_done(tmp_path / "queue"), timeout=20)  # first sight: existing entries recorded
            site.add(seed_item())
            assert wait_until(lambda: len(outbox_lines(config)) == 1, timeout=20)
            sent_metric = 'autopublish_posts{channel="outbox",outcome="sent"} 1.0'
            # the outbox line is written just before the delivery is marked sent
            assert wait_until(lambda: sent_metric in requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text, timeout=10)
            metrics = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
            assert 'autopublish_feed_poll_seconds{feed="site"}' in metrics and 'autopublish_feed_ok{feed="site"} 1.0' in metrics
            posted = [json.loads(line) for line in run_cli(config, "log", "--format", "json", "--status", "posted").output.splitlines()]
            assert len(posted) == 1

            # An invalid edit is refused; the daemon keeps running on the old config.
            good = config.read_text()
            config.write_text(good.replace("{hashtags}", "{nope}"))
            assert wait_until(lambda: _log_has(tmp_path, good, "was not applied"), timeout=20)
            assert _get(port, "/healthz") == 200 and daemon.poll() is None
            config.write_text(good)

            # The feed's server dies: health turns 503 once the feed has been down past the threshold.
            site.stop()
            assert wait_until(lambda: _get(port, "/healthz") == 503, timeout=30)
        finally:
            stop_daemon(daemon, log, timeout=90)
        assert daemon.returncode == 0
        assert len(outbox_lines(config)) == 1


def _log_has(tmp_path, good_config: str, words: str) -> bool:
    """Read the publish log through a valid copy of the config (the live file is broken on purpose)."""
    path = tmp_path / "good.toml"
    path.write_text(good_config)
    return words in run_cli(path, "log", "--format", "json").output


def _get(port: int, path: str) -> int | None:
    try:
        return requests.get(f"http://127.0.0.1:{port}{path}", timeout=2).status_code
    except requests.RequestException:
        return None


def test_a_reload_during_shutdown_cannot_deadlock(tmp_path):
    """SIGTERM while a config reload runs: the daemon still stops (a reload never touches the scheduler)."""
    import threading

    from autopublish.app import open_app
    from autopublish.config import load_config
    from autopublish.scheduler import Daemon

    with FeedServer(older_items(1)) as site:
        config_path = write_config(tmp_path / "autopublish.toml", f"{site.url}/feed/")
        app = open_app(load_config(config_path, {}, cwd=tmp_path))
        reloading = threading.Event()

        class SlowReloader:
            def changed(self) -> bool:
                return True

            def reload(self):  # type: ignore[no-untyped-def]
                reloading.set()
                stopped_while_reloading.wait(5)
                return app.pipeline

        stopped_while_reloading = threading.Event()
        daemon = Daemon(app.pipeline, reloader=SlowReloader())
        daemon.schedule()
        runner = threading.Thread(target=daemon.scheduler.start, daemon=True)
        runner.start()
        assert reloading.wait(10)
        daemon.stop()
        stopped_while_reloading.set()
        runner.join(timeout=30)
        assert not runner.is_alive()
        app.close()


def test_sigterm_waits_a_bounded_time_for_a_hanging_post_and_leaves_it_recoverable(tmp_path):
    import time

    from autopublish.store import Store
    from tests.fakes.mastodon import FakeMastodon

    with FeedServer(older_items(3)) as site, FakeMastodon() as fake:
        fake.hang_seconds = 120.0  # far past the daemon's bounded wait
        fake.script("hang")
        table = f'[channels.social]\nplatform = "mastodon"\ninstance = "{fake.url}"\naccess_token = "${{MASTODON_TOKEN}}"\n'
        config = write_config(tmp_path / "autopublish.toml", f"{site.url}/feed/", channels="social,outbox", extra=table,
                              first_run="latest:1", max_age="3650d", settings='publish_timeout = "4s"')
        (tmp_path / ".env").write_text("MASTODON_TOKEN=t0ken\n")
        log = tmp_path / "daemon.log"
        daemon = autopublish_process(config, "run", output=log)
        try:
            # the outbox post goes out although Mastodon (first in the channel list) hangs
            assert wait_until(lambda: len(outbox_lines(config)) == 1, timeout=30)
            assert wait_until(lambda: any(fake.is_publish(r) for r in list(fake.requests)), timeout=10)
            started = time.monotonic()
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=60)
            assert time.monotonic() - started < 45  # bounded: publish_timeout, not the platform's hang
        finally:
            if daemon.poll() is None:
                daemon.kill()
            print(log.read_text(errors="replace")[-4000:])
        assert daemon.returncode == 0
        with Store(tmp_path / "queue") as store:
            store.recover_interrupted()  # what the next start does
            social = [r for r in store.deliveries_with_status("uncertain", "sending", "sent", "failed", "queued", "waiting") if r.channel == "social"]
            assert [r.status for r in social] == ["uncertain"]  # never marked failed or safe to resend blindly
        assert len(outbox_lines(config)) == 1
