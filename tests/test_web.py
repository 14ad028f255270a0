"""The editors' web page against real state written by the pipeline (Flask test client)."""

from __future__ import annotations

import dataclasses
import hashlib
import html
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

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
from tests.helpers import Clock, run_cli, sqlite_of, write_config

CANARY = "canary-web-secret-7f3a9c1e5b"
SCRIPT_TITLE = 'Banjir &lt;script&gt;alert("x")&lt;/script&gt; & rob'  # the feed escapes it: a title that shows <script>
PASSWORDS = {"ed": "editor-password", "vic": "viewer-password", "siti": "kata-sandi-siti"}


def _hash(password: str) -> str:
    return generate_password_hash(password, method="scrypt:16384:8:1")  # the cheapest cost `check` accepts


@dataclass
class Site:
    config_path: Path
    config: Config
    env: dict[str, str]
    server: FeedServer

    def store(self) -> Store:
        return Store(self.config.state_dir)

    def move(self, delivery: int, status: str, reason: str, **changes: Any) -> None:
        """Put a delivery in ``status`` with ``reason`` as the pipeline would, for a page to show."""
        with self.store() as store:
            store.transition(delivery, status, reason, **changes)


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


def editor_and_failed_delivery(app: Flask, site: Site, channel: str, reason: str) -> tuple[FlaskClient, int]:
    """A client signed in as the editor "ed", and the channel's first delivery, moved to failed for ``reason``."""
    client = app.test_client()
    sign_in(client, "ed")
    delivery = delivery_ids(site, channel)[0]
    site.move(delivery, DeliveryStatus.FAILED, reason)
    return client, delivery


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
    client, delivery = editor_and_failed_delivery(app, site, "outbox", "Outbox says no")
    for data in ({}, {"csrf": "forged-token-forged-token-forged-token"}):
        response = client.post(f"/deliveries/{delivery}/retry", data=data)
        assert response.status_code == 400
        assert "expired or did not come from this page" in response.get_data(as_text=True)
    assert status_of(site, delivery) == "failed"


# --- editors' actions -----------------------------------------------------------------------------


def test_retry_failed_delivery(app: Flask, site: Site) -> None:
    client, delivery = editor_and_failed_delivery(app, site, "spare", "The outbox refused the post")
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
    site.move(delivery, DeliveryStatus.UNCERTAIN, "Unknown", needs_editor=True)
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
    # The editor's own words are quoted under the sentence; the stored English text keeps both.
    assert 'paused: Paused by web:ed, who wrote:</span><blockquote class="detail">Token is being renewed</blockquote>' in channels_page
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
    client, _ = editor_and_failed_delivery(app, site, "spare", "The outbox refused the post")
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


# --- security: sessions ------------------------------------------------------------------------------------

COOKIE = "autopublish_session"


def web_app(site: Site, *, clock: Callable[[], float] = time.time, live: bool = False, **web: Any) -> Flask:
    """An app over the site's state; ``web`` overrides [web] keys; ``live`` re-reads the config file when it changes."""
    config = dataclasses.replace(site.config, web=site.config.web.model_copy(update=web)) if web else site.config
    loader = (lambda: load_config(site.config_path, {**os.environ, **site.env})) if live else None
    flask_app = create_app(config, redactor=Redactor(config.secret_values()), clock=clock, config_loader=loader)
    flask_app.testing = True
    return flask_app


def edit_config(site: Site, old: str, new: str) -> None:
    """Edit the config file in place, as an administrator would (the mtime moves on even on a coarse clock)."""
    text = site.config_path.read_text(encoding="utf-8")
    assert old in text
    site.config_path.write_text(text.replace(old, new, 1), encoding="utf-8")
    later = site.config_path.stat().st_mtime + 2
    os.utime(site.config_path, (later, later))


def stored_sessions(site: Site) -> list[tuple[str, str]]:
    store = site.store()
    try:
        return sorted((row.user, row.id_hash) for row in store.web_sessions())
    finally:
        store.close()


def test_session_cookie_holds_only_an_id_whose_hash_is_stored(app: Flask, site: Site) -> None:
    client = app.test_client()
    sign_in(client, "ed")
    cookie = client.get_cookie(COOKIE)
    assert cookie is not None
    data = app.session_interface.get_signing_serializer(app).loads(cookie.value)  # type: ignore[attr-defined]
    assert "sid" in data and set(data) <= {"sid", "csrf", "_permanent", "_flashes"}
    # no value names the editor (the raw cookie is random base64, where two letters like "ed" turn up by chance)
    assert "user" not in data and "ed" not in data.values()
    rows = stored_sessions(site)
    assert rows == [("ed", hashlib.sha256(data["sid"].encode()).hexdigest())]
    assert data["sid"] not in str(rows)


def test_signed_out_cookie_opens_nothing_and_acts_on_nothing(app: Flask, site: Site) -> None:
    client = app.test_client()
    page = sign_in(client, "ed")
    csrf = csrf_of(page)
    captured = client.get_cookie(COOKIE)
    assert captured is not None
    delivery = delivery_ids(site, "outbox")[0]
    assert client.post("/logout", data={"csrf": csrf}).status_code == 303
    assert stored_sessions(site) == []

    thief = app.test_client()
    thief.set_cookie(COOKIE, captured.value)
    response = thief.get("/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    assert SEED_TITLE not in thief.get("/activity").get_data(as_text=True)
    acted = thief.post(f"/deliveries/{delivery}/repost", data={"csrf": csrf})
    assert acted.status_code == 302 and "/login" in acted.headers["Location"]
    store = site.store()
    try:
        assert store.deliveries_with_status("queued", channel="outbox") == []
    finally:
        store.close()


def test_sign_out_ends_only_that_session(app: Flask, site: Site) -> None:
    laptop, phone = app.test_client(), app.test_client()
    page = sign_in(laptop, "ed")
    sign_in(phone, "ed")
    laptop.post("/logout", data={"csrf": csrf_of(page)})
    assert laptop.get("/").status_code == 302
    assert phone.get("/").status_code == 200
    assert [user for user, _ in stored_sessions(site)] == ["ed"]


def test_idle_timeout_and_absolute_lifetime(site: Site) -> None:
    clock = Clock()
    flask_app = web_app(site, clock=clock, session_idle_timeout=3600.0, session_lifetime=3 * 86400.0)
    client = flask_app.test_client()
    sign_in(client, "ed")
    clock.now += 3599
    assert client.get("/").status_code == 200  # used in time: the idle clock starts again
    clock.now += 3599
    assert client.get("/").status_code == 200
    clock.now += 3601
    assert client.get("/").status_code == 302  # idle too long
    assert stored_sessions(site) == []

    sign_in(client, "ed")
    started = clock.now
    while clock.now + 1800 < started + 3 * 86400:
        clock.now += 1800
        assert client.get("/queue").status_code == 200, clock.now - started
    clock.now = started + 3 * 86400 + 1
    assert client.get("/queue").status_code == 302  # the absolute lifetime, however busy
    flask_app.extensions["autopublish_store"].close()


def test_password_change_and_removed_user_end_sessions_without_restart(site: Site) -> None:
    flask_app = web_app(site, live=True)
    ed, vic, siti = flask_app.test_client(), flask_app.test_client(), flask_app.test_client()
    sign_in(ed, "ed")
    sign_in(vic, "vic")
    sign_in(siti, "siti")
    vic_hash = next(u.password_hash for u in site.config.web.users if u.name == "vic")
    ed_hash = next(u.password_hash for u in site.config.web.users if u.name == "ed")
    edit_config(site, f'[[web.users]]\nname = "vic"\npassword_hash = "{vic_hash}"\nrole = "viewer"\n', "")
    edit_config(site, ed_hash, _hash("a-new-editor-password"))
    assert vic.get("/").status_code == 302
    assert ed.get("/").status_code == 302
    assert siti.get("/").status_code == 200  # nothing changed for her
    assert [user for user, _ in stored_sessions(site)] == ["siti"]

    fresh = flask_app.test_client()
    csrf = csrf_of(fresh.get("/login").get_data(as_text=True))
    assert fresh.post("/login", data={"name": "ed", "password": PASSWORDS["ed"], "csrf": csrf}).status_code == 401
    assert fresh.post("/login", data={"name": "vic", "password": PASSWORDS["vic"], "csrf": csrf}).status_code == 401
    assert fresh.post("/login", data={"name": "ed", "password": "a-new-editor-password", "csrf": csrf}).status_code == 303
    flask_app.extensions["autopublish_store"].close()


def test_added_user_signs_in_without_restart_and_a_broken_edit_changes_nothing(site: Site) -> None:
    flask_app = web_app(site, live=True)
    client = flask_app.test_client()
    csrf = csrf_of(client.get("/login").get_data(as_text=True))
    assert client.post("/login", data={"name": "budi", "password": "budi-password-1", "csrf": csrf}).status_code == 401
    edit_config(site, "[[web.users]]", f'[[web.users]]\nname = "budi"\npassword_hash = "{_hash("budi-password-1")}"\nrole = "viewer"\n\n[[web.users]]')
    assert client.post("/login", data={"name": "budi", "password": "budi-password-1", "csrf": csrf}).status_code == 303
    page = client.get("/").get_data(as_text=True)
    assert "Signed in as budi (viewer)" in page
    edit_config(site, 'name = "budi"', 'name = "budi"\nrole = "admin"')  # invalid: the accounts stay as they were
    assert client.get("/").status_code == 200
    flask_app.extensions["autopublish_store"].close()


# --- security: throttling -------------------------------------------------------------------------------------


def try_sign_in(client: FlaskClient, name: str, password: str, address: str) -> int:
    csrf = csrf_of(client.get("/login").get_data(as_text=True))
    return client.post("/login", data={"name": name, "password": password, "csrf": csrf},
                       environ_base={"REMOTE_ADDR": address}).status_code


def test_throttle_backs_off_exponentially_and_success_clears_it(tmp_path: Path) -> None:
    from autopublish.web.throttle import ACCOUNT_BACKOFF, ADDRESS_BACKOFF, LoginThrottle, Reservation

    clock = Clock()
    store = Store(tmp_path / "queue", clock=clock)  # the counts live in the store (tests/test_store_signins.py: shared by processes)
    throttle = LoginThrottle(store, clock)
    waits = []
    for _ in range(14):  # wrong every time, each try as soon as allowed
        reserved = throttle.reserve("198.51.100.7", "ed")
        waits.append(0 if isinstance(reserved, Reservation) else reserved)
        if not isinstance(reserved, Reservation):
            clock.now += reserved
            assert isinstance(throttle.reserve("198.51.100.7", "ed"), Reservation)
    assert waits == [0, 0, 0, 0, 0, 2, 4, 8, 16, 32, 64, 128, 256, 512]
    assert ADDRESS_BACKOFF.delay(40) == ADDRESS_BACKOFF.cap == 3600 and ACCOUNT_BACKOFF.delay(40) == ACCOUNT_BACKOFF.cap == 30

    other = LoginThrottle(store, clock)
    for _ in range(5):
        reserved = other.reserve("198.51.100.8", "vic")
        assert isinstance(reserved, Reservation)
    assert other.reserve("198.51.100.8", "vic") == 2
    other.succeeded(reserved)  # the fifth try was right
    assert isinstance(other.reserve("198.51.100.8", "vic"), Reservation)
    store.close()


def test_attempt_is_reserved_before_the_hash_is_computed(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    """Twenty parallel guesses: only the free ones reach the (slow) hash; the rest are refused before it."""
    from autopublish.web import views

    hashed: list[str] = []
    real_check = views.check_password_hash

    def counting_check(stored: str, password: str) -> bool:
        hashed.append(stored)
        return real_check(stored, password)

    monkeypatch.setattr(views, "check_password_hash", counting_check)
    clock = Clock()  # stands still: no wait ever runs out during the test
    flask_app = web_app(site, clock=clock)
    codes: list[int] = []

    def guess(number: int) -> None:
        codes.append(try_sign_in(flask_app.test_client(), "ed", f"guess-{number}", "203.0.113.5"))

    threads = [threading.Thread(target=guess, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(codes) == [401] * 5 + [429] * 15
    assert len(hashed) == 5
    flask_app.extensions["autopublish_store"].close()


def test_a_stranger_cannot_lock_an_editor_out(site: Site) -> None:
    clock = Clock()
    flask_app = web_app(site, clock=clock)
    attacker, laptop, new_phone = flask_app.test_client(), flask_app.test_client(), flask_app.test_client()

    def attempt(client: FlaskClient, name: str, password: str, address: str) -> tuple[int, int]:
        csrf = csrf_of(client.get("/login").get_data(as_text=True))
        response = client.post("/login", data={"name": name, "password": password, "csrf": csrf}, environ_base={"REMOTE_ADDR": address})
        return response.status_code, int(response.headers.get("Retry-After", "0"))

    # The editor's laptop signed in last week (and so holds a device cookie for "ed"), then signed out.
    assert attempt(laptop, "ed", PASSWORDS["ed"], "192.0.2.44")[0] == 303
    laptop.post("/logout", data={"csrf": csrf_of(laptop.get("/").get_data(as_text=True))})
    assert laptop.get_cookie("autopublish_device", path="/login") is not None
    for _ in range(16):  # guessing at ed's password from one address, each time as soon as allowed
        code, wait = attempt(attacker, "ed", "guess", "203.0.113.5")
        if code == 429:
            clock.now += wait
            assert attempt(attacker, "ed", "guess", "203.0.113.5")[0] == 401
    code, wait = attempt(attacker, "ed", "guess", "203.0.113.5")
    assert code == 429 and wait > 1800  # that address now waits long
    # Stealing a device cookie of another account does not help the attacker.
    vic_device = flask_app.test_client()
    assert attempt(vic_device, "vic", PASSWORDS["vic"], "198.51.100.3")[0] == 303
    cookie = vic_device.get_cookie("autopublish_device", path="/login")
    assert cookie is not None
    attacker.set_cookie("autopublish_device", cookie.value, path="/login")
    assert attempt(attacker, "ed", "guess", "198.51.100.99")[0] == 429  # ed's account count still applies
    # A new browser of the editor waits at most the gentle account backoff, then signs in.
    code, wait = attempt(new_phone, "ed", PASSWORDS["ed"], "192.0.2.46")
    assert code == 429 and 0 < wait <= 30
    # The laptop that signed in before skips the account count: however the stranger times his guesses, it gets in at once.
    assert attempt(laptop, "ed", PASSWORDS["ed"], "192.0.2.44")[0] == 303
    clock.now += wait
    assert attempt(new_phone, "ed", PASSWORDS["ed"], "192.0.2.46")[0] == 303
    # Another account, from another address, was never slowed.
    assert attempt(flask_app.test_client(), "vic", PASSWORDS["vic"], "192.0.2.45")[0] == 303
    flask_app.extensions["autopublish_store"].close()


def test_two_web_processes_on_one_database_share_the_throttle(site: Site) -> None:
    """Two apps, each with its own store (two ``autopublish web`` processes behind one balancer), and a third after a restart."""
    clock = Clock()  # stands still
    first, second = web_app(site, clock=clock), web_app(site, clock=clock)
    for n in range(5):
        assert try_sign_in((first if n % 2 else second).test_client(), "ed", "guess", "203.0.113.5") == 401
    assert try_sign_in(first.test_client(), "ed", "guess", "203.0.113.5") == 429
    assert try_sign_in(second.test_client(), "ed", PASSWORDS["ed"], "203.0.113.5") == 429  # the other process knows
    for flask_app in (first, second):
        flask_app.extensions["autopublish_store"].close()
    restarted = web_app(site, clock=clock)
    assert try_sign_in(restarted.test_client(), "ed", "guess", "203.0.113.5") == 429  # a restart forgets nothing
    clock.now += 2
    assert try_sign_in(restarted.test_client(), "ed", PASSWORDS["ed"], "203.0.113.5") == 303
    restarted.extensions["autopublish_store"].close()


def test_ipv6_addresses_count_per_64() -> None:
    from autopublish.web.throttle import address_key

    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:bbbb::9") == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:3::1") != address_key("2001:db8:1:2::1")
    assert address_key("::ffff:198.51.100.7") == "198.51.100.7"
    assert address_key("198.51.100.7") == "198.51.100.7"


def test_unknown_name_is_checked_against_a_hash_of_the_same_cost(app: Flask, site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    from autopublish.web import views
    from autopublish.web.passwords import dummy_hash_like

    for stored in (_hash("x"), generate_password_hash("x", method="pbkdf2:sha256:600000")):
        assert dummy_hash_like(stored).split("$")[0] == stored.split("$")[0]
    hashed: list[str] = []
    real_check = views.check_password_hash
    monkeypatch.setattr(views, "check_password_hash", lambda stored, pw: hashed.append(stored) or real_check(stored, pw))
    client = app.test_client()
    assert try_sign_in(client, "nobody-by-this-name", "whatever", "192.0.2.7") == 401
    assert try_sign_in(client, "ed", "wrong", "192.0.2.8") == 401
    (dummy, real) = hashed
    assert dummy != real and dummy.split("$")[0] == real.split("$")[0] == "scrypt:16384:8:1"


# --- security: proxies and cookies ------------------------------------------------------------------------------


def test_forwarded_for_counts_only_from_a_trusted_proxy(site: Site) -> None:
    clock = Clock()
    flask_app = web_app(site, clock=clock, trusted_proxies=["10.0.0.0/8"])
    client = flask_app.test_client()

    names = iter(range(1000))

    def attempt(peer: str, forwarded: str) -> int:  # a new account name each time: only the address counts
        csrf = csrf_of(client.get("/login").get_data(as_text=True))
        return client.post("/login", data={"name": f"name-{next(names)}", "password": "x", "csrf": csrf},
                           environ_base={"REMOTE_ADDR": peer}, headers={"X-Forwarded-For": forwarded}).status_code

    # Through the trusted proxy, each client counts on its own (the last untrusted hop; a forged left part is ignored).
    for _ in range(5):
        assert attempt("10.0.0.2", "192.0.2.1, 198.51.100.20, 10.0.0.9") == 401
    assert attempt("10.0.0.2", "192.0.2.99, 198.51.100.20") == 429
    assert attempt("10.0.0.2", "198.51.100.21") == 401
    # From anyone else the header is ignored: a new forged address each time does not help.
    for number in range(5):
        assert attempt("203.0.113.5", f"192.0.2.{number}") == 401
    assert attempt("203.0.113.5", "192.0.2.200") == 429
    flask_app.extensions["autopublish_store"].close()


def test_secure_cookies_configured_or_https_through_a_trusted_proxy(site: Site) -> None:
    def cookie_of(flask_app: Flask, peer: str, proto: str | None) -> str:
        headers = {"X-Forwarded-Proto": proto} if proto else {}
        return flask_app.test_client().get("/login", environ_base={"REMOTE_ADDR": peer}, headers=headers).headers["Set-Cookie"]

    proxied = web_app(site, trusted_proxies=["127.0.0.1"])
    assert "Secure" in cookie_of(proxied, "127.0.0.1", "https")
    assert "Secure" not in cookie_of(proxied, "127.0.0.1", "http")
    assert "Secure" not in cookie_of(proxied, "192.0.2.4", "https")  # not a trusted proxy: the header is ignored
    plain_app = web_app(site)
    assert "Secure" not in cookie_of(plain_app, "127.0.0.1", "https")
    always = web_app(site, secure_cookies=True)
    assert "Secure" in cookie_of(always, "127.0.0.1", None)
    for flask_app in (proxied, plain_app, always):
        flask_app.extensions["autopublish_store"].close()


@pytest.mark.parametrize("trusted", [["127.0.0.1"], []])
def test_forwarded_headers_reach_the_app_through_waitress_only_from_trusted_proxies(site: Site, trusted: list[str]) -> None:
    """The real server: waitress must pass X-Forwarded-* on (it strips them by default) and the app decides."""
    import requests
    from waitress import wasyncore

    from autopublish.web.app import make_server

    flask_app = web_app(site, clock=Clock(), trusted_proxies=trusted)
    httpd = make_server(flask_app, "127.0.0.1", 0, threads=2)
    thread = threading.Thread(target=httpd.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.effective_port}"
    browser = requests.Session()

    def attempt(number: int, forwarded: str) -> int:
        csrf = csrf_of(browser.get(base + "/login", timeout=5).text)
        return browser.post(base + "/login", data={"name": f"name-{number}", "password": "x", "csrf": csrf},
                            headers={"X-Forwarded-For": forwarded}, allow_redirects=False, timeout=10).status_code

    try:
        over_https = requests.get(base + "/login", headers={"X-Forwarded-Proto": "https"}, timeout=5)
        assert ("Secure" in over_https.headers["Set-Cookie"]) == bool(trusted)  # HTTPS, as the trusted proxy says
        assert [attempt(number, "192.0.2.1") for number in range(6)] == [401] * 5 + [429]
        # Another client behind the proxy counts on its own; without trust, it is the same peer.
        assert attempt(6, "192.0.2.2") == (401 if trusted else 429)
    finally:
        browser.close()
        httpd.close()
        wasyncore.close_all(httpd._map)  # kept-alive connections too, so the server's loop ends now
        thread.join(timeout=5)
        flask_app.extensions["autopublish_store"].close()


# --- security: where sign-in and actions send you back to -----------------------------------------------------


@pytest.mark.parametrize("target, expected", [
    ("/queue", "/queue"),
    ("/?status=failed&page=2", "/?status=failed&page=2"),
    ("//evil.example/", None),
    ("/\\evil.example", None),
    ("\\\\evil.example", None),
    ("https://evil.example/", None),
    ("javascript:alert(1)", None),
    ("/\t/evil.example", None),
    ("/ /evil.example", None),
    ("/\n/evil.example", None),
    ("/\x00", None),
    ("/\u200b/evil.example", None),
    ("/\u2028", None),
    ("queue", None),
    ("", None),
    ("/" + "a" * 3000, None),
])
def test_next_must_be_a_local_path(target: str, expected: str | None) -> None:
    from autopublish.web.auth import safe_next

    assert safe_next(target) == expected


def test_login_and_actions_ignore_a_foreign_next(app: Flask, site: Site) -> None:
    client = app.test_client()
    csrf = csrf_of(client.get("/login").get_data(as_text=True))
    done = client.post("/login", data={"name": "ed", "password": PASSWORDS["ed"], "csrf": csrf, "next": "/\t/evil.example/"})
    assert done.headers["Location"] == "/"
    page = client.get("/").get_data(as_text=True)
    delivery = delivery_ids(site, "spare")[0]
    back = client.post(f"/deliveries/{delivery}/repost", data={"csrf": csrf_of(page), "next": "https:evil.example"})
    assert back.status_code == 303 and back.headers["Location"] == "/"


# --- security: password hashes in the config -----------------------------------------------------------------------


@pytest.mark.parametrize("stored, words", [
    ("correct horse battery staple", "is not a password hash"),
    ("md5$salt$0123456789abcdef0123456789abcdef", 'hash method "md5"'),
    (generate_password_hash("x", method="pbkdf2:sha256:1000"), "too cheap"),
    (generate_password_hash("x", method="pbkdf2:sha1:2000000"), "only pbkdf2:sha256 and pbkdf2:sha512"),
    (generate_password_hash("x", method="scrypt:1024:8:1"), "too cheap"),
    ("scrypt:4194304:8:1$salt$" + "a" * 128, "unreasonable"),
    (generate_password_hash("x", method="scrypt")[:-10], "damaged"),
])
def test_check_refuses_weak_or_broken_password_hashes(tmp_path: Path, stored: str, words: str) -> None:
    with FeedServer() as server:
        path = write_config(tmp_path / "autopublish.toml", server.url + "/feed/",  # type: ignore[attr-defined]
                            extra=f'[[web.users]]\nname = "ed"\npassword_hash = "{stored}"\n')
        result = run_cli(path, "check", "--offline")
    assert result.exit_code == 2
    line = next(line for line in result.output.splitlines() if "password_hash" in line)
    assert str(path) in line and "web.users[0].password_hash" in line
    assert words in line and "autopublish hash-password" in line


@pytest.mark.parametrize("method", ["scrypt", "scrypt:16384:8:1", "pbkdf2:sha256:600000", "pbkdf2:sha512:210000"])
def test_check_accepts_good_password_hashes(method: str) -> None:
    from autopublish.web.passwords import password_hash_problem

    assert password_hash_problem(generate_password_hash("a good password", method=method)) is None


# --- every list is paged ---------------------------------------------------------------------------------------------


@contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    """One transaction on the store's own SQLite connection (which runs in autocommit mode)."""
    db.execute("BEGIN IMMEDIATE")
    yield
    db.execute("COMMIT")


def test_queue_with_20000_deliveries_is_paged(app: Flask, site: Site) -> None:
    store = site.store()
    now = time.time()
    db = sqlite_of(store)
    with _transaction(db):
        db.executemany(
            "INSERT INTO articles (feed, key, canonical, link, title, published, first_seen_at, data) VALUES (?,?,?,?,?,?,?,?)",
            (("site", f"flood-{i}", f"https://flood.example/{i}", f"https://flood.example/{i}", f"Flood article {i:05d}", now, now,
              '{"feed": "site", "key": "flood", "link": "https://flood.example/", "title": "Flood"}') for i in range(20_120)),
        )
        first_id = db.execute("SELECT id FROM articles WHERE key = 'flood-0'").fetchone()[0]
        db.executemany(
            "INSERT INTO deliveries (article_id, channel, status, next_attempt_at, created_at, updated_at, reason) VALUES (?,?,?,?,?,?,?)",
            ((first_id + i, "outbox", "queued" if i < 20_000 else "held", now + i if i < 20_000 else None, now, now, "Flooded")
             for i in range(20_120)),
        )
    store.close()
    client = app.test_client()
    sign_in(client, "ed")
    response = client.get("/queue")
    body = response.get_data(as_text=True)
    assert len(response.data) < 200_000, len(response.data)  # 66 MB before paging
    assert body.count("Flood article 0") == 50 and "Flood article 00049" in body and "Flood article 00050" not in body
    assert "(20000)" in body and "(120)" in body
    next_link = re.search(r'<nav class="pager" data-pager="page">.*?<a rel="next" href="([^"]+)"', body, re.DOTALL)
    assert next_link
    page2 = client.get(html.unescape(next_link.group(1))).get_data(as_text=True)
    assert "Flood article 00050" in page2 and "Flood article 00099" in page2 and "Flood article 00049" not in page2
    assert 'rel="prev"' in page2
    held_link = re.search(r'<nav class="pager" data-pager="held_page">.*?<a rel="next" href="([^"]+)"', page2, re.DOTALL)
    assert held_link and "held_page=2" in held_link.group(1)
    held2 = client.get(html.unescape(held_link.group(1))).get_data(as_text=True)
    assert "Flood article 20050" in held2 and "Flood article 00050" in held2  # both lists on their own page 2
    last = client.get("/queue?page=400&held_page=3").get_data(as_text=True)
    assert "Flood article 19999" in last and "Flood article 20119" in last
    pagers = dict(re.findall(r'<nav class="pager" data-pager="(\w+)">(.*?)</nav>', last, re.DOTALL))
    assert set(pagers) == {"page", "held_page"}
    assert all('rel="prev"' in pager and 'rel="next"' not in pager for pager in pagers.values())


def test_autopublish_web_applies_account_edits_without_restart(site: Site, tmp_path: Path) -> None:
    """The real `autopublish web` process: an account added, and one removed, while it runs."""

    import requests

    from tests.fakes.base import wait_until
    from tests.helpers import autopublish_process, free_port

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = autopublish_process(site.config_path, "web", "--port", str(port), env=site.env, output=tmp_path / "web.log")

    def up() -> bool:
        try:
            return requests.get(base + "/healthz", timeout=2).status_code == 200
        except requests.ConnectionError:
            return False

    def signed_in(browser: requests.Session, name: str, password: str) -> int:
        csrf = csrf_of(browser.get(base + "/login", timeout=5).text)
        return browser.post(base + "/login", data={"name": name, "password": password, "csrf": csrf}, allow_redirects=False, timeout=10).status_code

    try:
        assert wait_until(up, timeout=30), (tmp_path / "web.log").read_text()
        viewer, newcomer = requests.Session(), requests.Session()
        assert signed_in(viewer, "vic", PASSWORDS["vic"]) == 303
        assert signed_in(newcomer, "budi", "budi-password-1") == 401
        vic_hash = next(u.password_hash for u in site.config.web.users if u.name == "vic")
        edit_config(site, f'name = "vic"\npassword_hash = "{vic_hash}"', f'name = "budi"\npassword_hash = "{_hash("budi-password-1")}"')
        assert signed_in(newcomer, "budi", "budi-password-1") == 303
        assert newcomer.get(base + "/", allow_redirects=False, timeout=5).status_code == 200
        assert viewer.get(base + "/", allow_redirects=False, timeout=5).status_code == 302  # vic is gone, and so is her session
    finally:
        server.terminate()
        server.wait(timeout=15)
