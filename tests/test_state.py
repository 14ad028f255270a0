"""The state store under faults: a damaged database, a full disk, a read-only store, backups."""

from __future__ import annotations

import sqlite3

import pytest

from autopublish.app import open_app
from autopublish.config import load_config
from autopublish.errors import StateError
from autopublish.store import Store
from tests.fakes.base import wait_until
from tests.fakes.feed_server import FeedServer, Item, older_items, seed_item
from tests.helpers import autopublish_process, outbox_lines, run_cli, sqlite_of, write_config


@pytest.fixture
def site():
    with FeedServer(older_items(3)) as server:
        yield server


def _posted_once(tmp_path, site):
    config = write_config(tmp_path / "autopublish.toml", f"{site.url}/feed/")
    run_cli(config, "run", "--once")
    site.add(seed_item())
    run_cli(config, "run", "--once")
    assert len(outbox_lines(config)) == 1
    return config


@pytest.mark.parametrize("damage", ["garbage", "torn pages"])
def test_a_damaged_database_stops_with_a_clear_error_and_is_never_replaced(tmp_path, site, damage):
    config = _posted_once(tmp_path, site)
    db = tmp_path / "queue" / "state.db"
    for suffix in ("-wal", "-shm"):
        (tmp_path / "queue" / f"state.db{suffix}").unlink(missing_ok=True)
    raw = bytearray(db.read_bytes())
    if damage == "garbage":
        raw[:] = b"this is not a database at all " * 200
    else:
        raw[4096:8192] = b"\xde\xad\xbe\xef" * 1024  # the second page, header intact
    db.write_bytes(bytes(raw))
    before = db.read_bytes()
    result = run_cli(config, "run", "--once")
    assert result.exit_code == 1
    assert "damaged" in result.output and "backup" in result.output and "Traceback" not in result.output
    assert db.read_bytes() == before  # never silently started from zero
    assert len(outbox_lines(config)) == 1


def test_a_full_disk_stops_publishing_before_anything_is_posted(tmp_path, site):
    config_path = write_config(tmp_path / "autopublish.toml", f"{site.url}/feed/")
    app = open_app(load_config(config_path, {}, cwd=tmp_path))
    app.pipeline.poll_all()
    pages = sqlite_of(app.store).execute("PRAGMA page_count").fetchone()[0]
    sqlite_of(app.store).execute(f"PRAGMA max_page_count = {pages}")  # the disk is full from here on
    for i in range(30):
        site.add(Item(f"Artikel {i} " + "x" * 2000, f"https://example.go.id/{i}/", f"g{i}", seed_item().published, ["Berita"]))
    with pytest.raises(StateError, match="full"):
        app.pipeline.poll_all()
    assert outbox_lines(config_path) == []
    app.close()


def test_a_store_that_cannot_write_never_publishes_without_a_claim(tmp_path, site):
    config_path = write_config(tmp_path / "autopublish.toml", f"{site.url}/feed/")
    app = open_app(load_config(config_path, {}, cwd=tmp_path))
    app.pipeline.poll_all()
    site.add(seed_item())
    app.pipeline.poll_all()  # one delivery queued
    sqlite_of(app.store).execute("PRAGMA query_only = ON")  # every write now fails
    with pytest.raises(StateError, match="cannot be written"):
        app.pipeline.deliver_due()
    assert outbox_lines(config_path) == []  # the claim could not be committed, so nothing was sent
    sqlite_of(app.store).execute("PRAGMA query_only = OFF")
    app.pipeline.deliver_due()
    assert len(outbox_lines(config_path)) == 1
    app.close()


def test_backup_while_the_daemon_runs_is_consistent(tmp_path, site):
    config = write_config(tmp_path / "autopublish.toml", f"{site.url}/feed/")
    config.write_text(config.read_text().replace('poll_interval = "5m"', 'poll_interval = "1s"'))
    run_cli(config, "run", "--once")
    daemon = autopublish_process(config, "run", output=tmp_path / "daemon.log")
    try:
        site.add(seed_item())
        assert wait_until(lambda: len(outbox_lines(config)) == 1, timeout=20)
        target = tmp_path / "copy.db"
        result = run_cli(config, "backup", str(target))
        assert result.exit_code == 0 and str(target) in result.output
    finally:
        daemon.terminate()
        daemon.wait(timeout=60)
    copy = sqlite3.connect(target)
    try:
        assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        articles = copy.execute("SELECT COUNT(*) FROM articles").fetchone()[0]
        assert articles == 4
    finally:
        copy.close()


def test_missing_state_is_refused_where_it_must_exist(tmp_path):
    with pytest.raises(StateError, match="no state database"):
        Store(tmp_path / "nowhere", create=False)


def test_repost_only_from_a_finished_delivery_and_never_beside_a_pending_one(tmp_path):
    """A stale page must not queue an article twice: repost is guarded in the store itself."""
    from autopublish.models import Article, DeliveryStatus

    store = Store(tmp_path / "state")
    try:
        article = Article(feed="site", key="k1", link="https://example.go.id/a/", title="Judul")
        (first,) = store.record_articles("site", [(article, "https://example.go.id/a", [("outbox", DeliveryStatus.QUEUED, "")])])
        assert store.repost(first, "ed") is None  # still queued: posting it is already on the way
        for status in (DeliveryStatus.UNCERTAIN, DeliveryStatus.HELD, DeliveryStatus.WAITING):
            store.transition(first, status, "test")
            assert store.repost(first, "ed") is None, status
        store.transition(first, DeliveryStatus.SENT, "posted")
        second = store.repost(first, "ed")
        assert second is not None
        assert store.repost(first, "ed") is None  # the page was stale: generation 1 is queued already
        assert store.repost(second, "ed") is None  # a re-post of the queued re-post
        assert store.claim(second)
        assert store.repost(first, "ed") is None  # ... and while it is being sent
        store.transition(second, DeliveryStatus.SENT, "posted", expect=(DeliveryStatus.SENDING,))
        third = store.repost(second, "ed")
        assert third is not None and store.delivery(third).generation == 2  # type: ignore[union-attr]
        assert store.repost(12345, "ed") is None
        assert [d.id for d in store.deliveries_with_status(DeliveryStatus.QUEUED)] == [third]
    finally:
        store.close()
