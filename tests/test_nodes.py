"""The CLI and the editors' page against PostgreSQL: db upgrade, nodes, and a password that never shows."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from werkzeug.security import generate_password_hash

from autopublish.clock import NodeClock
from autopublish.config import load_config
from autopublish.errors import ConfigError
from autopublish.store import Store
from autopublish.web.app import create_app
from tests.fakes.base import wait_until
from tests.fakes.feed_server import FeedServer, Item, older_items, seed_item
from tests.helpers import autopublish_process, baseline_done, free_port, outbox_lines, run_cli, write_config

PASSWORD = "db-canary-pw-5e1d"


@pytest.fixture
def trusted_url(postgres_url: str) -> str:
    """postgres_url on the trust-auth server that .ci/run starts (user autopublish): the config adds a password it ignores."""
    if not postgres_url.startswith("postgresql://autopublish@"):
        pytest.skip("needs the trust-auth test server that .ci/run starts (user autopublish)")
    return postgres_url


def _config(tmp_path: Path, feed_url: str, url: str) -> Path:
    with_password = url.replace("postgresql://autopublish@", "postgresql://autopublish:${DB_PASSWORD}@")
    users = f'[[web.users]]\nname = "ed"\npassword_hash = "{generate_password_hash("ed-password", method="scrypt:16384:8:1")}"\n'
    return write_config(tmp_path / "autopublish.toml", feed_url, settings=f'database = "{with_password}"', extra=users)


def test_cli_and_web_page_work_against_postgresql_and_never_show_the_password(tmp_path: Path, trusted_url: str) -> None:
    env = {"DB_PASSWORD": PASSWORD}
    with FeedServer(older_items(3)) as site:
        config = _config(tmp_path, f"{site.url}/feed/", trusted_url)
        refused = run_cli(config, "run", "--once", env=env)
        assert refused.exit_code == 1 and "autopublish db upgrade" in refused.output and "Traceback" not in refused.output
        upgraded = run_cli(config, "db", "upgrade", env=env)
        assert upgraded.exit_code == 0 and "up to date" in upgraded.output and "***" in upgraded.output
        assert run_cli(config, "run", "--once", env=env).exit_code == 0  # the baseline
        site.add(seed_item())
        posted = run_cli(config, "run", "--once", env=env)
        assert posted.exit_code == 0 and "posted 1" in posted.output
        assert len(outbox_lines(config)) == 1
        outputs = {name: run_cli(config, *args, env=env).output
                   for name, args in {"log": ("log",), "queue": ("queue",), "nodes": ("nodes",), "check": ("check", "--offline")}.items()}
        assert "posted" in outputs["log"] and "stopped" in outputs["nodes"]
        assert not (tmp_path / "queue" / "state.db").exists()  # nothing went to SQLite

        loaded = load_config(config, env, cwd=tmp_path)
        holder = Store.for_config(loaded, clock=NodeClock(wall=lambda: time.time() - 90))  # a machine 90 s slow
        try:
            holder.register_node()
            assert holder.lease_channel("outbox", ttl=600)
            listed = run_cli(config, "nodes", env=env).output
            assert f"{holder.node_id}  alive" in listed and "channels: outbox" in listed
            assert "clock: 1m behind the database's; autopublish corrects it" in listed
            app = create_app(loaded)
            client = app.test_client()
            login = client.get("/login").get_data(as_text=True)
            csrf = re.search(r'name="csrf" value="([^"]+)"', login)
            assert csrf is not None
            client.post("/login", data={"name": "ed", "password": "ed-password", "csrf": csrf.group(1)})
            pages = {path: client.get(path) for path in ("/", "/queue", "/channels", "/activity")}
            assert all(page.status_code == 200 for page in pages.values())
            channels_page = pages["/channels"].get_data(as_text=True)
            assert f'data-node="{holder.node_id}"' in channels_page and "channels: outbox" in channels_page
            assert "its clock is 1m behind the database&#39;s" in channels_page
            outputs.update({path: page.get_data(as_text=True) for path, page in pages.items()})
            app.extensions["autopublish_store"].close()
        finally:
            holder.close()
    for name, text in outputs.items():
        assert PASSWORD not in text, f"the database password shows in {name}"


def test_an_unreachable_database_is_one_sentence_without_the_password(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    config = write_config(tmp_path / "autopublish.toml", "https://example.org/feed/",
                          settings=f'database = "postgresql://autopublish:${{DB_PASSWORD}}@127.0.0.1:{port}/autopublish"')
    result = run_cli(config, "queue", env={"DB_PASSWORD": PASSWORD})
    assert result.exit_code == 1 and "cannot be reached" in result.output
    assert PASSWORD not in result.output and "Traceback" not in result.output


def test_the_database_setting_takes_the_password_from_the_environment_only(tmp_path: Path) -> None:
    literal = write_config(tmp_path / "a.toml", "https://example.org/feed/", settings='database = "postgresql://ap:hunter2@db:5432/ap"')
    with pytest.raises(ConfigError) as caught:
        load_config(literal, {})
    assert "settings.database" in caught.value.message and "DB_PASSWORD" in caught.value.message
    assert "hunter2" not in caught.value.message
    missing = write_config(tmp_path / "b.toml", "https://example.org/feed/", settings='database = "postgresql://ap:${DB_PASSWORD}@db/ap"')
    with pytest.raises(ConfigError, match="DB_PASSWORD is not set"):
        load_config(missing, {})
    wrong = write_config(tmp_path / "c.toml", "https://example.org/feed/", settings='database = "mysql://ap@db/ap"')
    with pytest.raises(ConfigError, match="PostgreSQL address"):
        load_config(wrong, {})
    config = load_config(missing, {"DB_PASSWORD": "p@ss/word"})
    assert config.database is not None and str(config.database) == "***"
    assert config.database.reveal() == "postgresql://ap:p%40ss%2Fword@db/ap"
    assert "p@ss/word" in config.secret_values()  # the log redactor masks it


def test_pacing_holds_when_two_nodes_sweep_one_channel_at_once(tmp_path: Path, postgres_url: str) -> None:
    """A slow platform: without the channel lease both nodes would post at once, one each, past max_per_hour = 1."""
    import threading
    import time
    from datetime import UTC, datetime, timedelta
    from http.server import BaseHTTPRequestHandler

    from autopublish.app import open_app
    from tests.contract import CANARY
    from tests.fakes.feed_server import Item
    from tests.fakes.webhook import WebhookFake

    class SlowWebhook(WebhookFake):
        def _serve(self, handler: BaseHTTPRequestHandler) -> None:
            time.sleep(0.5)  # a slow receiver; the fake's own lock is not held meanwhile
            super()._serve(handler)

    with FeedServer(older_items(2)) as site, SlowWebhook() as hook:
        extra = (f'\n[channels.hook]\nplatform = "webhook"\nurl = "{hook.hook_url}"\nsecret = "${{WEBHOOK_SECRET}}"\n'
                 "pacing = { max_per_hour = 1 }\n")
        config_path = write_config(tmp_path / "autopublish.toml", f"{site.url}/feed/", channels="hook",
                                   settings=f'database = "{postgres_url}"', extra=extra)
        assert run_cli(config_path, "db", "upgrade", env={"WEBHOOK_SECRET": CANARY}).exit_code == 0
        config = load_config(config_path, {"WEBHOOK_SECRET": CANARY}, cwd=tmp_path)
        nodes = [open_app(config), open_app(config)]
        try:
            nodes[0].pipeline.poll_all()  # the baseline
            start = datetime.now(UTC) - timedelta(minutes=30)
            for n in range(4):
                site.add(Item(f"Urutan {n}", f"https://example.go.id/urut/{n}/", f"urut-{n}", start + timedelta(minutes=n), ["Berita"]))
            nodes[1].pipeline.poll_all()
            for _ in range(2):
                barrier = threading.Barrier(2)

                def sweep(app: object, delay: float, barrier: threading.Barrier = barrier) -> None:
                    barrier.wait()
                    time.sleep(delay)  # the second node looks while the first is posting
                    app.pipeline.deliver_due()  # type: ignore[attr-defined]

                threads = [threading.Thread(target=sweep, args=(app, delay)) for app, delay in zip(nodes, (0.0, 0.2), strict=True)]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join(timeout=60)
        finally:
            for app in nodes:
                app.close()
        titles = [delivery["json"]["article"]["title"] for delivery in hook.deliveries]
    assert titles == ["Urutan 0"]  # one an hour across both nodes, the oldest first


def _article(title: str, minutes_ago: int) -> Item:
    slug = title.lower().replace(" ", "-")
    return Item(title=title, link=f"https://jakberketahanan.example.go.id/2026/12/02/{slug}/", guid=f"https://jakberketahanan.example.go.id/?p={slug}",
                published=datetime.now(UTC) - timedelta(minutes=minutes_ago), summary=f"{title}.")


def test_a_single_autopublishs_sqlite_state_moves_to_postgresql_and_nothing_is_posted_twice(tmp_path: Path, trusted_url: str) -> None:
    """db import-sqlite: the nodes go on where the single process stopped (its log, its queue, every baseline)."""
    env = {"DB_PASSWORD": PASSWORD}
    with FeedServer(older_items(3)) as site:
        single = write_config(tmp_path / "single.toml", f"{site.url}/feed/")
        assert run_cli(single, "run", "--once").exit_code == 0  # the baseline: the 3 older articles are history
        site.add(_article("Posted before the move", 3))
        assert "posted 1" in run_cli(single, "run", "--once").output
        assert run_cli(single, "pause", "outbox").exit_code == 0
        site.add(_article("Waiting article", 2))
        assert run_cli(single, "run", "--once").exit_code == 0  # queued, held by the pause
        before = run_cli(single, "log", "--format", "json").output

        nodes = _config(tmp_path, f"{site.url}/feed/", trusted_url)  # same state_dir: the copy's default source
        refused = run_cli(single, "db", "import-sqlite")
        assert refused.exit_code != 0 and "names no PostgreSQL" in refused.output and "Traceback" not in refused.output
        assert run_cli(nodes, "db", "upgrade", env=env).exit_code == 0
        copied = run_cli(nodes, "db", "import-sqlite", env=env)
        assert copied.exit_code == 0, copied.output
        assert "deliveries: 2 rows" in copied.output and "feeds: 1 rows" in copied.output, copied.output
        assert PASSWORD not in copied.output

        assert run_cli(nodes, "log", "--format", "json", env=env).output == before  # the whole publish log, as it was
        assert run_cli(nodes, "resume", "outbox", env=env).exit_code == 0  # the pause came along too
        site.add(_article("Published after the move", 1))  # published while moving: a normal new article for the nodes
        moved = run_cli(nodes, "run", "--once", env=env)
        assert moved.exit_code == 0 and "posted 2" in moved.output, moved.output
        titles = [line["text"].split("\n", 1)[0] for line in outbox_lines(nodes)]
        assert titles == ["Posted before the move", "Waiting article", "Published after the move"]  # none twice, none lost
        log = run_cli(nodes, "log", "--format", "json", "--limit", "1000", env=env).output
        assert log.count('"event": "baseline"') == 1  # the feed was not taken for new

        again = run_cli(nodes, "db", "import-sqlite", env=env)
        assert again.exit_code != 0 and "already holds autopublish data" in again.output
        assert len(outbox_lines(nodes)) == 3


def test_the_sqlite_state_is_not_copied_while_autopublish_runs_on_it(tmp_path: Path, trusted_url: str) -> None:
    env = {"DB_PASSWORD": PASSWORD}
    with FeedServer(older_items(2)) as site:
        single = write_config(tmp_path / "single.toml", f"{site.url}/feed/")
        nodes = _config(tmp_path, f"{site.url}/feed/", trusted_url)
        assert run_cli(nodes, "db", "upgrade", env=env).exit_code == 0
        daemon = autopublish_process(single, "run", output=tmp_path / "daemon.log")
        try:
            assert wait_until(lambda: baseline_done(tmp_path / "queue"), timeout=20)
            refused = run_cli(nodes, "db", "import-sqlite", env=env)
            assert refused.exit_code != 0 and "already running" in refused.output and "Traceback" not in refused.output
        finally:
            daemon.terminate()
            daemon.wait(timeout=60)
        assert "feeds: 1 rows" in run_cli(nodes, "db", "import-sqlite", env=env).output  # stopped: it copies


def test_copying_from_a_directory_without_a_state_database_says_so_and_creates_nothing(tmp_path: Path) -> None:
    config = write_config(tmp_path / "autopublish.toml", "https://example.org/feed/",
                          settings='database = "postgresql://autopublish:${DB_PASSWORD}@127.0.0.1:5432/autopublish"')
    result = run_cli(config, "db", "import-sqlite", str(tmp_path / "nowhere"), env={"DB_PASSWORD": PASSWORD})
    assert result.exit_code != 0 and "no SQLite state database" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "nowhere").exists()
