"""The editors' page in a real headless Chromium (Debian's /usr/bin/chromium via Playwright).

Served by waitress in a thread on 127.0.0.1 over state written by a real `run --once`.
Skips without Chromium on a developer machine; fails under CI (CI=true), where .ci/run installs it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from autopublish.models import DeliveryStatus
from autopublish.secrets import Redactor
from autopublish.web.app import create_app, make_server
from tests.fakes.feed_server import SEED_TITLE, FeedServer
from tests.test_web import PASSWORDS, Site, build_site, delivery_ids, status_of

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
# The README's screenshot is refreshed on demand only (a test run must not change tracked files):
#   AUTOPUBLISH_SCREENSHOT=docs/screenshot-web.png python -m pytest tests/test_web_browser.py
SCREENSHOT_TARGET = os.environ.get("AUTOPUBLISH_SCREENSHOT")


def _need_chromium() -> None:
    if CHROMIUM.exists():
        return
    message = f"Chromium is not installed at {CHROMIUM} (apt-get install -y chromium)"
    if os.environ.get("CI"):
        pytest.fail(message + "; under CI it must be installed")
    pytest.skip(message)


@pytest.fixture
def browser() -> Iterator[Any]:
    _need_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Site]]:
    """The page served by waitress on 127.0.0.1:<free port>, over real state."""
    from waitress import wasyncore

    with FeedServer() as server:
        site = build_site(tmp_path, server)  # type: ignore[arg-type]
        app = create_app(site.config, redactor=Redactor(site.config.secret_values()))
        httpd: Any = make_server(app, "127.0.0.1", 0, threads=4)
        thread = threading.Thread(target=httpd.run, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{httpd.effective_port}", site
        finally:
            httpd.close()
            wasyncore.close_all(httpd._map)  # kept-alive connections too, so the server's loop ends now
            thread.join(timeout=5)
            app.extensions["autopublish_store"].close()


def _sign_in(page: Any, base: str, name: str) -> None:
    page.goto(base + "/")
    assert "/login" in page.url
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", PASSWORDS[name])
    page.click("form[action='/login'] button[type=submit]")
    page.wait_for_url(base + "/")


def test_editor_signs_in_acts_and_viewer_cannot(browser: Any, served: tuple[str, Site], tmp_path: Path) -> None:
    base, site = served
    failed, uncertain = delivery_ids(site, "spare")[:2]
    store = site.store()
    store.transition(failed, DeliveryStatus.FAILED, "The outbox refused the post (disk full)")
    store.transition(uncertain, DeliveryStatus.UNCERTAIN, "The outbox did not answer in time; it may have been posted", needs_editor=True)
    store.close()

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    csp_problems: list[str] = []
    page.on("console", lambda msg: csp_problems.append(msg.text) if "Content Security Policy" in msg.text else None)
    _sign_in(page, base, "ed")

    # The posted article, with a link to the live post.
    assert page.get_by_text(SEED_TITLE).count() >= 1
    live = page.locator("[data-delivery] a.live").first
    assert live.get_attribute("href").startswith("file://")
    assert page.locator(f"[data-delivery='{failed}'] .status").inner_text() == "failed"
    assert "an editor must check" in page.locator(f"[data-delivery='{uncertain}'] .status").inner_text()
    shot = Path(SCREENSHOT_TARGET) if SCREENSHOT_TARGET else tmp_path / "screenshot-web.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000  # a real rendering, not a blank page

    # Retry the failed delivery.
    page.click(f"[data-delivery='{failed}'] button[data-action=retry]")
    page.wait_for_load_state()
    assert page.locator(".flash.ok").inner_text() == f"Delivery {failed} is back in the queue."
    assert status_of(site, failed) == "queued"

    # Resolve the uncertain one: it was posted, here.
    page.fill(f"[data-delivery='{uncertain}'] input[name=url]", "https://social.example/@jak/42")
    page.click(f"[data-delivery='{uncertain}'] button[data-action=resolve-posted]")
    page.wait_for_load_state()
    assert page.locator(".flash.ok").inner_text() == f"Delivery {uncertain} is marked as posted."
    assert status_of(site, uncertain) == "sent"
    assert page.locator(f"[data-delivery='{uncertain}'] a.live").get_attribute("href") == "https://social.example/@jak/42"

    # The other pages render under the CSP without complaint.
    for path in ("/queue", "/channels", "/activity", f"/preview/{failed}"):
        response = page.goto(base + path)
        assert response is not None and response.status == 200, path
    assert csp_problems == []

    # On a phone: no sideways scrolling.
    phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    small = phone.new_page()
    _sign_in(small, base, "ed")
    assert small.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    phone.close()
    context.close()

    # A viewer sees no action buttons, and a forged POST is refused.
    viewer = browser.new_context()
    vpage = viewer.new_page()
    _sign_in(vpage, base, "vic")
    assert vpage.locator("button[data-action]").count() == 0
    vpage.goto(base + "/channels")
    assert vpage.locator("button[data-action]").count() == 0
    token = vpage.locator("input[name=csrf]").first.get_attribute("value")
    target = delivery_ids(site, "outbox")[0]
    without_token = viewer.request.post(f"{base}/deliveries/{target}/skip", form={"next": "/"}, max_redirects=0)
    assert without_token.status == 400
    with_token = viewer.request.post(f"{base}/deliveries/{target}/skip", form={"csrf": token}, max_redirects=0)
    assert with_token.status == 403
    assert status_of(site, target) == "sent"
    viewer.close()


def test_a_captured_session_cookie_is_dead_after_sign_out(browser: Any, served: tuple[str, Site]) -> None:
    base, site = served
    target = delivery_ids(site, "outbox")[0]
    editor = browser.new_context()
    page = editor.new_page()
    _sign_in(page, base, "ed")
    captured = [cookie for cookie in editor.cookies() if cookie["name"] == "autopublish_session"]
    assert len(captured) == 1 and captured[0]["httpOnly"]
    token = page.locator("input[name=csrf]").first.get_attribute("value")

    # Before sign-out the captured cookie works in another browser: the thief sees the log.
    thief = browser.new_context()
    thief.add_cookies(captured)
    stolen = thief.new_page()
    stolen.goto(base + "/activity")
    assert stolen.url == base + "/activity" and stolen.get_by_text(SEED_TITLE).count() >= 1

    page.click("form[action='/logout'] button[type=submit]")
    page.wait_for_url(base + "/login")
    editor.close()

    # After it, the same cookie opens nothing and does nothing.
    thief.clear_cookies()
    thief.add_cookies(captured)
    stolen.goto(base + "/activity")
    assert "/login" in stolen.url and stolen.get_by_text(SEED_TITLE).count() == 0
    stolen.goto(base + "/")
    assert "/login" in stolen.url
    acted = thief.request.post(f"{base}/deliveries/{target}/repost", form={"csrf": token}, max_redirects=0)
    assert acted.status in (302, 303) and "/login" in acted.headers["location"]
    store = site.store()
    try:
        assert store.deliveries_with_status("queued", channel="outbox") == []
        assert store.web_sessions() == []
    finally:
        store.close()
    thief.close()
