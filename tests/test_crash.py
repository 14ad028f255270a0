"""A real `autopublish run` process killed with SIGKILL between claim and mark: never a second post."""

from __future__ import annotations

import json
import signal
import sqlite3

import pytest

from tests.contract import CANARY
from tests.fakes.base import wait_until
from tests.fakes.feed_server import FeedServer, older_items, seed_item
from tests.helpers import autopublish_process, run_cli, write_config


def _status(config_dir, delivery_id: int = 1) -> str | None:
    db = sqlite3.connect(config_dir / "queue" / "state.db")
    try:
        row = db.execute("SELECT status FROM deliveries WHERE id = ?", (delivery_id,)).fetchone()
        return row[0] if row else None
    finally:
        db.close()


CHANNELS = {
    "facebook": ('[channels.social]\nplatform = "facebook"\npage_id = "{page_id}"\naccess_token = "${{FACEBOOK_PAGE_TOKEN}}"\n'
                 'api_base = "{url}"\nrescrape = false\n', "FACEBOOK_PAGE_TOKEN", "tests.fakes.facebook", True),
    # platform: (channel table, env, how to count posts, can the platform be read back?)
    "mastodon": ('[channels.social]\nplatform = "mastodon"\ninstance = "{url}"\naccess_token = "${{MASTODON_TOKEN}}"\n',
                 "MASTODON_TOKEN", "tests.fakes.mastodon", True),
    # Two steps: the container is prepared (waits are options, shortened for a test server),
    # then threads_publish is the call that hangs.
    "threads": ('[channels.social]\nplatform = "threads"\napi_base = "{url}"\nuser_id = "{user_id}"\naccess_token = "${{THREADS_TOKEN}}"\n'
                'container_wait = "1s"\ncontainer_poll = "1s"\n', "THREADS_TOKEN", "tests.fakes.threads", True),
    "webhook": ('[channels.social]\nplatform = "webhook"\nurl = "{url}/hooks/articles"\nsecret = "${{WEBHOOK_SECRET}}"\n',
                "WEBHOOK_SECRET", "tests.fakes.webhook", False),
}


@pytest.mark.parametrize("platform", sorted(CHANNELS))
def test_sigkill_mid_post_never_posts_twice(tmp_path, platform):
    table, env_name, fake_path, readable = CHANNELS[platform]
    module = pytest.importorskip(fake_path.partition(":")[0])
    contract = module.CONTRACT
    with FeedServer(older_items(3)) as site, contract.make_fake() as fake:
        fake.hang_seconds = 30.0
        if hasattr(fake, "ready_after"):
            fake.ready_after = 0.5  # seconds of real time: the daemon cannot be told to skip ahead
        config = write_config(tmp_path / "autopublish.toml", f"{site.url}/feed/", channels="social",
                              extra=table.format(url=fake.url, page_id=getattr(fake, "page_id", ""), user_id=getattr(fake, "user_id", "")),
                              settings='publish_timeout = "60s"')
        (tmp_path / ".env").write_text(f"{env_name}={CANARY}\n")
        assert run_cli(config, "run", "--once").exit_code == 0  # baseline
        site.add(seed_item())
        fake.script("hang")  # the platform acts, then never answers
        daemon = autopublish_process(config, "run", output=tmp_path / "daemon.log")
        try:
            assert wait_until(lambda: contract.posts(fake) == 1, timeout=30), "the daemon never posted"
            assert wait_until(lambda: _status(tmp_path) == "sending", timeout=10)
            daemon.send_signal(signal.SIGKILL)
            daemon.wait(timeout=10)
        finally:
            if daemon.poll() is None:
                daemon.kill()
        assert _status(tmp_path) == "sending"  # the claim was committed before the request left

        fake.hang_seconds = 0.1
        again = run_cli(config, "run", "--once")
        assert again.exit_code == 0, again.output
        assert contract.posts(fake) == 1  # never a second post
        rows = [json.loads(line) for line in run_cli(config, "log", "--format", "json").output.splitlines()]
        assert any(r["status"] == "uncertain" and r["channel"] == "social" for r in rows)
        if readable:
            assert _status(tmp_path) == "sent"  # settled by reading the platform back
        else:
            assert _status(tmp_path) == "uncertain"  # waits for an editor
            run_cli(config, "run", "--once")
            assert contract.posts(fake) == 1
            assert run_cli(config, "retry", "1").exit_code == 1  # retrying could double-post: refused
            resolved = run_cli(config, "resolve", "1", "--posted", "https://example.org/hooks/articles#1")
            assert resolved.exit_code == 0
            assert _status(tmp_path) == "sent"
        out = run_cli(config, "log").output
        assert CANARY not in out
