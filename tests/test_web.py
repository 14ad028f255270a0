"""The editors' web page against real state written by the pipeline (Flask test client)."""

from __future__ import annotations

import html
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.security import check_password_hash, generate_password_hash

from autopublish.config import Config, load_config
from autopublish.models import DeliveryStatus
from autopublish.secrets import Redactor
from autopublish.store import Store
from autopublish.web.app import create_app
from tests.fakes.feed_server import SEED_TITLE, FeedServer, Item, seed_item
from tests.helpers import run_cli, write_config

CANARY = "canary-web-secret-7f3a9c1e5b"
SCRIPT_TITLE = 'Banjir &lt;script&gt;alert("x")&lt;/script&gt; & rob'  # the feed escapes it: a title that shows <script>
PASSWORDS = {"ed": "editor-password", "vic": "viewer-password", "siti": "kata-sandi-siti"}


def _hash(password: str) -> str:
    return generate_password_hash(password, method="pbkdf2:sha256:1000")  # fast for tests


@dataclass
class Site:
    config_path: Path
    config: Config
    env: dict[str, str]
    server: FeedServer

    def store(self) -> Store:
        return Store(self.config.state_dir)


def build_site(tmp_path: Path, server: FeedServer) -> Site:
    """A config with two outbox channels and web users; one real `run --once` posts two articles to both."""
    now = datetime.now(UTC)
    server.add(seed_item(now - timedelta(minutes=10)))
    server.add(Item(title=SCRIPT_TITLE, link="https://jakberketahanan.example.go.id/2026/11/28/banjir/",
                    guid="https://jakberketahanan.example.go.id/?p=4243", published=now - timedelta(minutes=5),
                    categories=["Berita"], summary="Ringkasan <b>banjir</b>.", image="https://jakberketahanan.example.go.id/banjir.png"))
    users = "\n".join(
        f'[[web.users]]\nname = "{name}"\npassword_hash = "{_hash(pw)}"\nrole = "{"viewer" if name == "vic" else "editor"}"\n'
        + ('language = "id"\n' if name == "siti" else "")
        for name, pw in PASSWORDS.items()
    )
    extra = f"""
[channels.spare]
platform = "outbox"
template = "{{title}} {{link}}"

[web]
secret_key = "${{WEB_SECRET}}"
refresh = "30s"

{users}
"""
    path = write_config(tmp_path / "autopublish.toml", server.url + "/feed/", extra=extra, channels="outbox,spare", first_run="all")
    env = {"WEB_SECRET": CANARY}
    result = run_cli(path, "run", "--once", env=env)
    assert result.exit_code == 0, result.output
    config = load_config(path, {**os.environ, **env})
    return Site(path, config, env, server)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    with FeedServer() as server:
        yield build_site(tmp_path, server)  # type: ignore[arg-type]


@pytest.fixture
def app(site: Site) -> Iterator[Flask]:
    flask_app = create_app(site.config, redactor=Redactor(site.config.secret_values()))
    flask_app.testing = True
    yield flask_app
    flask_app.extensions["autopublish_store"].close()


def csrf_of(page: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', page)
    assert match, "no CSRF field on the page"
    return match.group(1)


def sign_in(client: FlaskClient, name: str, password: str | None = None) -> str:
    page = client.get("/login").get_data(as_text=True)
    response = client.post("/login", data={"name": name, "password": password or PASSWORDS[name], "csrf": csrf_of(page)})
    assert response.status_code == 303, response.get_data(as_text=True)
    home = client.get("/")
    assert home.status_code == 200
    return home.get_data(as_text=True)


def delivery_ids(site: Site, channel: str) -> list[int]:
    store = site.store()
    try:
        return [r.id for r in store.deliveries_with_status(*[s.value for s in DeliveryStatus], channel=channel)]
    finally:
        store.close()


def status_of(site: Site, delivery_id: int) -> str:
    store = site.store()
    try:
        row = store.delivery(delivery_id)
        assert row is not None
        return row.status
    finally:
        store.close()


# --- signing in ------------------------------------------------------------------------------


def test_nothing_without_signing_in_except_healthz(app: Flask) -> None:
    client = app.test_client()
    for path in ("/", "/queue", "/channels", "/activity", "/preview/1"):
        response = client.get(path)
        assert response.status_code == 302 and "/login" in response.headers["Location"], path
    health = client.get("/healthz")
    assert health.status_code == 200 and health.get_json() == {"ok": True}


def test_wrong_password_refused_and_rate_limited(app: Flask) -> None:
    client = app.test_client()
    csrf = csrf_of(client.get("/login").get_data(as_text=True))
    for _ in range(5):
        response = client.post("/login", data={"name": "ed", "password": "nope", "csrf": csrf})
        assert response.status_code == 401
        assert "Wrong name or password" in response.get_data(as_text=True)
    blocked = client.post("/login", data={"name": "ed", "password": PASSWORDS["ed"], "csrf": csrf})
    assert blocked.status_code == 429


def test_session_cookie_is_httponly_and_lax(app: Flask) -> None:
    client = app.test_client()
    response = client.get("/login")
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]


def test_signed_in_editor_sees_posted_article_with_link(app: Flask, site: Site) -> None:
    client = app.test_client()
    page = sign_in(client, "ed")
    assert html.escape(SEED_TITLE) in page
    store = site.store()
    try:
        sent = store.deliveries_with_status("sent", channel="outbox")
    finally:
        store.close()
    assert len(sent) == 2
    for row in sent:
        assert row.post_url and row.post_url.startswith("file://")
        assert f'href="{html.escape(row.post_url)}"' in page
    assert "posted" in page


def test_feed_content_is_escaped(app: Flask) -> None:
    client = app.test_client()
    page = sign_in(client, "ed")
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; rob" in page
    assert "<script" not in re.sub(r'<script src="/static/refresh.js" defer></script>', "", page)


def test_page_follows_the_daemon_while_open(app: Flask, site: Site) -> None:
    """The page keeps one Store open; a later run (as by the daemon) shows up on the next request."""
    client = app.test_client()
    sign_in(client, "ed")
    site.server.add(Item(title="Artikel terbaru tentang ketahanan", link="https://jakberketahanan.example.go.id/2026/11/28/terbaru/",
                         guid="https://jakberketahanan.example.go.id/?p=4250", published=datetime.now(UTC)))
    result = run_cli(site.config_path, "run", "--once", env=site.env)
    assert result.exit_code == 0, result.output
    page = client.get("/").get_data(as_text=True)
    assert "Artikel terbaru tentang ketahanan" in page


def test_login_goes_back_to_the_page_asked_for(app: Flask) -> None:
    client = app.test_client()
    response = client.get("/queue")
    assert response.headers["Location"].endswith("/login?next=/queue")
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    done = client.post("/login", data={"name": "ed", "password": PASSWORDS["ed"], "csrf": csrf_of(page), "next": "/queue"})
    assert done.headers["Location"] == "/queue"
    stale = client.post("/login", data={"name": "ed", "password": PASSWORDS["ed"], "csrf": csrf_of(page), "next": "/queue"})
    assert stale.status_code == 400  # signing in rotated the token
    fresh = csrf_of(client.get("/login").get_data(as_text=True))
    evil = client.post("/login", data={"name": "ed", "password": PASSWORDS["ed"], "csrf": fresh, "next": "//evil.example/"})
    assert evil.headers["Location"] == "/"  # only same-site paths are followed


# --- roles and CSRF ----------------------------------------------------------------------------


def test_viewer_sees_no_buttons_and_cannot_act(app: Flask, site: Site) -> None:
    client = app.test_client()
    page = sign_in(client, "vic")
    assert 'data-action="repost"' not in page and "<button type=\"submit\" data-action" not in page
    delivery = delivery_ids(site, "outbox")[0]
    csrf = csrf_of(page)  # the sign-out form's token: valid, so only the role refuses
    response = client.post(f"/deliveries/{delivery}/skip", data={"csrf": csrf})
    assert response.status_code == 403
    assert "only read" in response.get_data(as_text=True)
    assert client.post("/channels/outbox/pause", data={"csrf": csrf}).status_code == 403
    assert status_of(site, delivery) == "sent"


def test_post_without_csrf_token_is_refused(app: Flask, site: Site) -> None:
    client = app.test_client()
    sign_in(client, "ed")
    delivery = delivery_ids(site, "outbox")[0]
    store = site.store()
    store.transition(delivery, DeliveryStatus.FAILED, "Outbox says no")
    store.close()
    for data in ({}, {"csrf": "forged-token-forged-token-forged-token"}):
        response = client.post(f"/deliveries/{delivery}/retry", data=data)
        assert response.status_code == 400
        assert "expired or did not come from this page" in response.get_data(as_text=True)
    assert status_of(site, delivery) == "failed"


# --- editors' actions -----------------------------------------------------------------------------


def test_retry_failed_delivery(app: Flask, site: Site) -> None:
    client = app.test_client()
    sign_in(client, "ed")
    delivery = delivery_ids(site, "spare")[0]
    store = site.store()
    store.transition(delivery, DeliveryStatus.FAILED, "The outbox refused the post")
    store.close()
    page = client.get("/").get_data(as_text=True)
    assert "The outbox refused the post" in page and f'action="/deliveries/{delivery}/retry"' in page
    response = client.post(f"/deliveries/{delivery}/retry", data={"csrf": csrf_of(page), "next": "/?channel=spare"})
    assert response.status_code == 303 and response.headers["Location"].endswith("/?channel=spare")
    assert status_of(site, delivery) == "queued"
    assert "is back in the queue" in client.get("/?channel=spare").get_data(as_text=True)
    store = site.store()
    try:
        event = store.events(channel="spare", kinds=("retry",), limit=1)[0]
    finally:
        store.close()
    assert event["actor"] == "web:ed"


def test_retry_refused_for_uncertain_then_resolve(app: Flask, site: Site) -> None:
    client = app.test_client()
    page = sign_in(client, "ed")
    first, second = delivery_ids(site, "spare")[:2]
    store = site.store()
    for delivery in (first, second):
        store.transition(delivery, DeliveryStatus.UNCERTAIN, "The outbox did not answer in time; it may have been posted", needs_editor=True)
    store.close()
    page = client.get("/queue").get_data(as_text=True)
    assert "uncertain: an editor must check" in page
    csrf = csrf_of(page)
    client.post(f"/deliveries/{first}/retry", data={"csrf": csrf})
    assert status_of(site, first) == "uncertain"
    response = client.post(f"/deliveries/{first}/resolve", data={"csrf": csrf, "outcome": "posted", "url": "https://social.example/@jak/1"})
    assert response.status_code == 303
    client.post(f"/deliveries/{second}/resolve", data={"csrf": csrf, "outcome": "not_posted"})
    store = site.store()
    try:
        resolved, requeued = store.delivery(first), store.delivery(second)
        assert resolved is not None and requeued is not None
        assert (resolved.status, resolved.post_url) == ("sent", "https://social.example/@jak/1")
        assert requeued.status == "queued"
        actors = {e["actor"] for e in store.events(kinds=("resolved",))}
    finally:
        store.close()
    assert actors == {"web:ed"}
    log_page = client.get("/").get_data(as_text=True)
    assert 'href="https://social.example/@jak/1"' in log_page


def test_resolve_refuses_non_http_url(app: Flask, site: Site) -> None:
    client = app.test_client()
    page = sign_in(client, "ed")
    delivery = delivery_ids(site, "spare")[0]
    store = site.store()
    store.transition(delivery, DeliveryStatus.UNCERTAIN, "Unknown", needs_editor=True)
    store.close()
    client.post(f"/deliveries/{delivery}/resolve", data={"csrf": csrf_of(page), "outcome": "posted", "url": "javascript:alert(1)"})
    assert status_of(site, delivery) == "uncertain"


def test_skip_and_repost(app: Flask, site: Site) -> None:
    client = app.test_client()
    page = sign_in(client, "ed")
    csrf = csrf_of(page)
    delivery = delivery_ids(site, "outbox")[0]
    client.post(f"/deliveries/{delivery}/repost", data={"csrf": csrf})
    store = site.store()
    try:
        queued = store.deliveries_with_status("queued", channel="outbox")
    finally:
        store.close()
    assert len(queued) == 1 and queued[0].repost_of == delivery
    client.post(f"/deliveries/{queued[0].id}/skip", data={"csrf": csrf})
    assert status_of(site, queued[0].id) == "skipped"
    assert status_of(site, delivery) == "sent"


def test_pause_and_resume_channel(app: Flask, site: Site) -> None:
    client = app.test_client()
    page = sign_in(client, "ed")
    csrf = csrf_of(page)
    response = client.post("/channels/spare/pause", data={"csrf": csrf, "reason": "Token is being renewed"})
    assert response.status_code == 303
    channels_page = client.get("/channels").get_data(as_text=True)
    assert "paused: Paused by web:ed: Token is being renewed" in channels_page
    assert 'action="/channels/spare/resume"' in channels_page
    store = site.store()
    try:
        assert store.channel("spare").paused
        # A delivery held while paused goes back to the queue on resume.
        held = delivery_ids(site, "spare")[0]
        store.transition(held, DeliveryStatus.HELD, "Channel paused")
    finally:
        store.close()
    assert "paused" in client.get("/queue").get_data(as_text=True)
    client.post("/channels/spare/resume", data={"csrf": csrf})
    store = site.store()
    try:
        assert not store.channel("spare").paused
        assert store.delivery(held).status == "queued"  # type: ignore[union-attr]
        actors = [e["actor"] for e in store.events(channel="spare", kinds=("paused", "resumed"))]
    finally:
        store.close()
    assert actors == ["web:ed", "web:ed"]
    assert "1 held post(s) are back in the queue" in client.get("/channels").get_data(as_text=True)


# --- pages -----------------------------------------------------------------------------------------------


def test_queue_channels_activity_and_preview(app: Flask, site: Site) -> None:
    client = app.test_client()
    sign_in(client, "ed")
    delivery = delivery_ids(site, "spare")[-1]
    store = site.store()
    store.transition(delivery, DeliveryStatus.WAITING, "The outbox was busy", next_attempt_at=time.time() + 3600)
    store.set_token_expiry("outbox", time.time() + 30 * 86400)
    store.close()
    queue_page = client.get("/queue").get_data(as_text=True)
    assert "waiting (next try" in queue_page and "The outbox was busy" in queue_page
    channels_page = client.get("/channels").get_data(as_text=True)
    assert "active" in channels_page and "posted 2" in channels_page
    expiry = datetime.fromtimestamp(time.time() + 30 * 86400, UTC).strftime("%Y-%m-%d")
    assert expiry in channels_page
    activity = client.get("/activity?channel=spare").get_data(as_text=True)
    assert "The outbox was busy" in activity and "autopublish" in activity
    preview = client.get(f"/preview/{delivery}").get_data(as_text=True)
    assert "Preview for spare (" in preview
    assert re.search(r"Length: \d+ of \d+", preview)
    assert "https://jakberketahanan.example.go.id/" in preview
    assert client.get("/preview/99999").status_code == 404


def test_filters(app: Flask, site: Site) -> None:
    client = app.test_client()
    sign_in(client, "ed")
    delivery = delivery_ids(site, "spare")[0]
    store = site.store()
    store.transition(delivery, DeliveryStatus.FAILED, "The outbox refused the post")
    store.close()
    failed = client.get("/?status=failed").get_data(as_text=True)
    assert failed.count('data-article="') == 1
    searched = client.get("/?q=Banjir").get_data(as_text=True)
    assert searched.count('data-article="') == 1 and "Banjir" in searched
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    assert client.get(f"/?from={today}&to={today}").get_data(as_text=True).count('data-article="') == 2
    assert client.get("/?from=2001-01-01&to=2001-01-02").get_data(as_text=True).count('data-article="') == 0
    assert client.get("/?feed=nope").get_data(as_text=True).count('data-article="') == 0


def test_no_secret_reaches_any_page(app: Flask, site: Site) -> None:
    client = app.test_client()
    sign_in(client, "ed")
    delivery = delivery_ids(site, "spare")[0]
    store = site.store()
    store.transition(delivery, DeliveryStatus.FAILED, f"The platform answered 401 for token {CANARY}", needs_editor=True)
    store.pause_channel("outbox", f"Credentials {CANARY} expired")
    store.close()
    pages = ["/", "/queue", "/channels", "/activity", f"/preview/{delivery}", "/login", "/healthz", "/nope"]
    for path in pages:
        body = client.get(path).get_data(as_text=True)
        assert CANARY not in body, path
    assert "***" in client.get("/activity").get_data(as_text=True)


def test_indonesian_by_accept_language_and_by_account(app: Flask) -> None:
    client = app.test_client()
    login_page = client.get("/login", headers={"Accept-Language": "id-ID,id;q=0.9,en;q=0.5"}).get_data(as_text=True)
    assert "Kata sandi" in login_page and 'lang="id"' in login_page
    page = sign_in(client, "siti")  # the account's language, whatever the browser says
    assert "Log publikasi" in page and "terunggah" in page
    other = app.test_client()
    english = sign_in(other, "ed")
    assert "Publish log" in english


def test_hash_password_prints_hash_last() -> None:
    from autopublish.cli import cli

    result = CliRunner().invoke(cli, ["hash-password"], input="correct horse battery\n")
    assert result.exit_code == 0, result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("scrypt:")
    assert check_password_hash(last, "correct horse battery")
    assert not check_password_hash(last, "wrong")
    empty = CliRunner().invoke(cli, ["hash-password"], input="\n")
    assert empty.exit_code == 2


def test_random_secret_key_kept_in_state_dir(tmp_path: Path) -> None:
    from autopublish.web.app import load_secret_key

    with FeedServer() as server:
        path = write_config(tmp_path / "autopublish.toml", server.url + "/feed/")  # type: ignore[attr-defined]
        config = load_config(path, dict(os.environ))
    first = load_secret_key(config)
    key_file = config.state_dir / "web-secret"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert load_secret_key(config) == first and len(first) >= 32


# --- 100,000 rows ------------------------------------------------------------------------------------------


def test_log_pages_with_100000_rows(app: Flask, site: Site) -> None:
    store = site.store()
    now = time.time()
    with store.db.tx() as db:
        db.exec_driver_sql(
            "INSERT INTO articles (feed, key, canonical, link, title, published, first_seen_at, data) VALUES (?,?,?,?,?,?,?,?)",
            [(
                "site", f"bulk-{i}", f"https://bulk.example/{i}", f"https://bulk.example/{i}", f"Bulk article {i}", now - 100_000 + i,
                now - 100_000 + i, '{"feed": "site", "key": "bulk", "link": "https://bulk.example/", "title": "Bulk"}',
            ) for i in range(100_000)],
        )
        first_id = db.exec_driver_sql("SELECT id FROM articles WHERE key = 'bulk-0'").scalar_one()
        db.exec_driver_sql(
            "INSERT INTO deliveries (article_id, channel, status, post_url, created_at, updated_at, sent_at, reason) VALUES (?,?,?,?,?,?,?,?)",
            [(first_id + i, "outbox", "sent", f"https://social.example/p/{i}", now - 100_000 + i, now - 100_000 + i, now - 100_000 + i, "Posted")
             for i in range(100_000)],
        )
        db.exec_driver_sql(
            "INSERT INTO events (at, kind, status, delivery_id, article_id, channel, message) VALUES (?,?,?,?,?,?,?)",
            [(now - 200_000 + i, "sent", "sent", None, first_id + i, "outbox", f"Posted bulk {i}") for i in range(100_000)],
        )
    store.close()
    client = app.test_client()
    page = sign_in(client, "ed")
    assert page.count('data-article="') == 50
    assert 'rel="next"' in page
    page2 = client.get("/?page=2").get_data(as_text=True)
    assert page2.count('data-article="') == 50 and 'rel="prev"' in page2
    assert "Bulk article 99949" in page2 and "Bulk article 99950" not in page2
    last = client.get("/?page=2001").get_data(as_text=True)  # 100,002 articles: the last page holds 2
    assert last.count('data-article="') == 2 and 'rel="next"' not in last
    activity = client.get("/activity?page=1000").get_data(as_text=True)
    assert activity.count('class="ev-') == 50 and 'rel="next"' in activity
    searched = client.get("/activity?q=bulk%2099999").get_data(as_text=True)
    assert searched.count('class="ev-') == 1
