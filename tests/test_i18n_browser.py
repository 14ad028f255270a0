"""Issue 18 in a real headless Chromium, in Indonesian and in English: reasons, the 30 days, one article's page.

Screenshots go to a temporary directory; they refresh docs/ only on demand:
  AUTOPUBLISH_SCREENSHOT_DIR=docs python -m pytest tests/test_i18n_browser.py
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.test_i18n import PLATFORM_WORDS, _fail
from tests.test_web import Site, status_of
from tests.test_web_browser import _sign_in, browser, served  # noqa: F401  (fixtures)

pytestmark = pytest.mark.browser

SCREENSHOT_DIR = os.environ.get("AUTOPUBLISH_SCREENSHOT_DIR")

WORDS = {
    "id": {"user": "siti", "failed": "Gagal: platform menolak unggahan ini dan akan menolaknya lagi.", "story": "riwayat lengkap",
           "glance": "30 hari terakhir", "retried": "Pengiriman {id} kembali ke antrean.", "posted": "Terunggah."},
    "en": {"user": "ed", "failed": "Failed: the platform refused this post and would refuse it again.", "story": "whole story",
           "glance": "The last 30 days", "retried": "Delivery {id} is back in the queue.", "posted": "Posted."},
}


def _shot(page: Any, tmp_path: Path, name: str) -> None:
    target = Path(SCREENSHOT_DIR) / name if SCREENSHOT_DIR else tmp_path / name
    page.screenshot(path=str(target), full_page=True)
    assert target.stat().st_size > 10_000  # a real rendering, not a blank page


@pytest.mark.parametrize("lang", ["id", "en"])
def test_editor_reads_acts_and_sees_the_month_in_their_language(browser: Any, served: tuple[str, Site], tmp_path: Path,  # noqa: F811
                                                                 lang: str) -> None:
    base, site = served
    words = WORDS[lang]
    failed = _fail(site, "spare")
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    csp_problems: list[str] = []
    page.on("console", lambda message: csp_problems.append(message.text) if "Content Security Policy" in message.text else None)
    _sign_in(page, base, words["user"])
    assert page.locator("html").get_attribute("lang") == lang

    # The reason in the reader's language; the platform's own words quoted under it.
    reason = page.locator(f"[data-delivery='{failed}'] .reason").first
    assert reason.inner_text().startswith(words["failed"])
    assert reason.locator("blockquote.detail").inner_text() == PLATFORM_WORDS
    _shot(page, tmp_path, f"screenshot-log-{lang}.png")

    # The month at a glance: three inline charts, each with its numbers in a table.
    page.goto(base + "/channels")
    assert page.get_by_role("heading", name=words["glance"]).count() == 1
    assert page.locator("svg.chart").count() == 3
    assert page.locator("svg.chart rect.failed").count() == 1
    assert page.locator("[data-glance='outbox'] table.numbers tr.sent td").last.inner_text() == "2"
    _shot(page, tmp_path, f"screenshot-channels-{lang}.png")

    # One article's whole story, reached from the publish log; an action from there.
    page.goto(base + "/")
    page.locator(f"tr:has([data-delivery='{failed}']) a.story").click()
    page.wait_for_load_state()
    assert "/articles/" in page.url
    assert page.locator("pre.sent-text").count() == 2
    assert page.locator("table.events .reason").first.inner_text().strip() != ""
    assert page.get_by_text(words["posted"], exact=False).count() >= 2
    _shot(page, tmp_path, f"screenshot-article-{lang}.png")
    page.click(f"[data-delivery='{failed}'] button[data-action=retry]")
    page.wait_for_load_state()
    assert "/articles/" in page.url
    assert page.locator(".flash.ok").inner_text() == words["retried"].format(id=failed)
    assert status_of(site, failed) == "queued"
    assert csp_problems == []
    context.close()

    # On a phone the month's tables scroll inside their box, never the page.
    phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    small = phone.new_page()
    _sign_in(small, base, words["user"])
    small.goto(base + "/channels")
    assert small.locator("svg.chart").count() == 3
    phone.close()
