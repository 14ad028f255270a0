"""Issue 16: "take down everywhere" on the editors' page, with a confirmation step, against real state."""

from __future__ import annotations

import os
import re
from pathlib import Path

from autopublish.config import load_config
from autopublish.secrets import Redactor
from autopublish.web.app import create_app
from tests.contract import CANARY as MASTODON_TOKEN
from tests.fakes.feed_server import FeedServer, older_items, seed_item
from tests.fakes.mastodon import FakeMastodon
from tests.helpers import run_cli, write_config
from tests.test_web import PASSWORDS, _hash, csrf_of, sign_in

WEB_SECRET = "canary-web-secret-retract-4d2b"


def _site(tmp_path: Path, site: FeedServer, fake: FakeMastodon) -> Path:
    users = "\n".join(f'[[web.users]]\nname = "{name}"\npassword_hash = "{_hash(pw)}"\nrole = "{"viewer" if name == "vic" else "editor"}"\n'
                      for name, pw in PASSWORDS.items())
    extra = (f'[channels.social]\nplatform = "mastodon"\ninstance = "{fake.url}"\naccess_token = "${{MASTODON_TOKEN}}"\n\n'
             f'[web]\nsecret_key = "${{WEB_SECRET}}"\n\n{users}')
    config = write_config(tmp_path / "autopublish.toml", f"{site.url}/feed/", channels="social,outbox", extra=extra)
    (tmp_path / ".env").write_text(f"MASTODON_TOKEN={MASTODON_TOKEN}\nWEB_SECRET={WEB_SECRET}\n")
    assert run_cli(config, "run", "--once").exit_code == 0
    site.add(seed_item())
    assert run_cli(config, "run", "--once").exit_code == 0
    return config


def test_take_down_everywhere_asks_then_queues_deletes_and_names_what_to_remove_by_hand(tmp_path):
    with FeedServer(older_items(2)) as site, FakeMastodon(lifetime=60) as fake:
        path = _site(tmp_path, site, fake)
        assert fake.posts == 1
        config = load_config(path, {**os.environ, "MASTODON_TOKEN": MASTODON_TOKEN, "WEB_SECRET": WEB_SECRET})
        app = create_app(config, redactor=Redactor(config.secret_values()))
        app.testing = True
        try:
            client = app.test_client()
            home = sign_in(client, "ed")
            assert "/articles/" in home and "Take down everywhere" in home
            found = re.search(r'href="/articles/(\d+)/retract"', home)
            assert found, home
            article_id = int(found.group(1))
            confirm = client.get(f"/articles/{article_id}/retract").get_data(as_text=True)
            assert "Take this article down everywhere?" in confirm and fake.statuses[0]["url"] in confirm
            unconfirmed = client.post(f"/articles/{article_id}/retract", data={"csrf": csrf_of(confirm)})
            assert unconfirmed.status_code == 303
            run_cli(path, "run", "--once")
            assert fake.posts == 1  # nothing happens without the confirmation
            done = client.post(f"/articles/{article_id}/retract", data={"csrf": csrf_of(confirm), "confirm": "yes"}, follow_redirects=True)
            page = done.get_data(as_text=True)
            assert "social: will be deleted" in page and "remove it by hand" in page
            assert MASTODON_TOKEN not in page
            viewer = app.test_client()
            sign_in(viewer, "vic")
            assert viewer.get(f"/articles/{article_id}/retract").status_code == 403
        finally:
            app.extensions["autopublish_store"].close()
        assert run_cli(path, "run", "--once").exit_code == 0
        assert fake.posts == 0 and len(fake.deleted) == 1


def test_updates_and_take_downs_are_labelled_and_never_offered_as_reposts(tmp_path):
    with FeedServer(older_items(2)) as site, FakeMastodon(lifetime=60) as fake:
        path = _site(tmp_path, site, fake)
        assert run_cli(path, "retract", seed_item().link, "--yes").exit_code == 0
        assert run_cli(path, "run", "--once").exit_code == 0
        config = load_config(path, {**os.environ, "MASTODON_TOKEN": MASTODON_TOKEN, "WEB_SECRET": WEB_SECRET})
        app = create_app(config, redactor=Redactor(config.secret_values()))
        app.testing = True
        try:
            page = sign_in(app.test_client(), "ed")
        finally:
            app.extensions["autopublish_store"].close()
        block = re.search(r'data-delivery="(\d+)">\s*<span class="channel">social</span>\s*<span class="tag">take-down</span>(.*?)</div>\s*</div>',
                          page, re.DOTALL)
        assert block, page
        assert 'data-action="repost"' not in block.group(2)
