"""Every node keeps the database's time, so a node whose clock is off never takes a live node for dead."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from autopublish.clock import NodeClock
from autopublish.heartbeat import Heartbeat
from autopublish.models import Article, DeliveryStatus
from autopublish.store import Store
from tests.fakes.base import wait_until
from tests.helpers import database_at


class Wall:
    """A machine clock that reads the real time ``skew`` seconds off, and can be stepped."""

    def __init__(self, skew: float) -> None:
        self.skew = skew

    def __call__(self) -> float:
        return time.time() + self.skew


def _readings(*values: float) -> Callable[[], float]:
    it = iter(values)
    return lambda: next(it)


def test_the_offset_is_taken_from_the_middle_of_the_round_trip() -> None:
    clock = NodeClock(wall=_readings(100.0, 100.2, 100.5))  # sent, received, then one call of the clock
    assert clock.align(lambda: 160.1) and clock.aligned
    assert clock.offset == pytest.approx(60.0)
    assert clock() == pytest.approx(160.5)


def test_a_slow_reading_keeps_the_offset_it_had() -> None:
    clock = NodeClock(wall=_readings(0.0, 0.1, 50.0, 51.0))
    assert clock.align(lambda: 10.05)
    assert not clock.align(lambda: 999.0)  # a second on the way: could be half a second off
    assert clock.offset == pytest.approx(10.0)


def test_at_start_a_slow_first_reading_is_taken_again() -> None:
    clock = NodeClock(wall=_readings(0.0, 2.0, 2.0, 2.1))  # the first reading waited for a connection
    assert clock.align(lambda: 32.05, tries=3)
    assert clock.offset == pytest.approx(30.0)


def test_without_a_database_clock_the_machines_clock_stands() -> None:
    clock = NodeClock(wall=lambda: 5.0)
    assert not clock.align(lambda: None)
    assert clock() == 5.0 and not clock.aligned


def test_a_clock_that_is_off_is_told_to_the_admins_once_and_again_when_it_moves(caplog: pytest.LogCaptureFixture) -> None:
    wall = Wall(-90.0)
    clock = NodeClock(wall=wall)
    with caplog.at_level(logging.WARNING, logger="autopublish.clock"):
        clock.align(time.time)
        clock.align(time.time)
        wall.skew = 0.0  # NTP stepped it right: nothing to tell
        clock.align(time.time)
        assert abs(clock.offset) < 1.0
        wall.skew = 300.0  # then someone set it five minutes ahead
        clock.align(time.time)
        wall.skew = -90.0  # and back to where it was first
        clock.align(time.time)
    told = [r.getMessage() for r in caplog.records]
    assert len(told) == 3, told
    assert told[0].startswith("This machine's clock is 1m behind the database's.") and "NTP" in told[0]
    assert told[1].startswith("This machine's clock is 5m ahead of the database's.")
    assert told[2].startswith("This machine's clock is 1m behind the database's.")


def test_sqlite_keeps_the_machines_clock(tmp_path: Path) -> None:
    store = Store(tmp_path / "queue")
    try:
        assert isinstance(store.clock, NodeClock) and not store.clock.aligned
        assert store.database_time() is None
        assert abs(store.now() - time.time()) < 1.0
    finally:
        store.close()


def _queue_one(store: Store) -> int:
    article = Article(feed="site", key="k1", link="https://example.org/1/", title="Artikel 1", summary="s", content="c",
                      published=datetime(2026, 1, 1, tzinfo=UTC))
    [delivery_id] = store.record_articles("site", [(article, "https://example.org/1/", [("social", DeliveryStatus.QUEUED, "")])])
    return delivery_id


def test_nodes_two_minutes_apart_agree_on_who_is_alive_and_who_holds_a_lease(postgres_url: str) -> None:
    behind, ahead = Wall(-120.0), Wall(+120.0)
    slow = Store(postgres_url, clock=NodeClock(wall=behind), migrate=True)
    fast = Store(postgres_url, clock=NodeClock(wall=ahead))
    try:
        for node, skew in ((slow, -120.0), (fast, 120.0)):
            assert isinstance(node.clock, NodeClock) and node.clock.aligned
            assert node.clock.offset == pytest.approx(-skew, abs=1.0)
            assert abs(node.now() - time.time()) < 1.0
        slow.register_node()
        fast.register_node()
        delivery_id = _queue_one(slow)
        assert slow.claim(delivery_id)  # posting now
        assert slow.lease_channel("chat", ttl=60)
        # by its own clock "fast" would find slow's heartbeat four minutes old, past dead_after (30 s),
        # and its lease long expired: it would settle a post still in flight and post on its channel
        assert fast.recover_dead_nodes() == []
        assert fast.delivery(delivery_id).status == DeliveryStatus.SENDING  # type: ignore[union-attr]
        assert not fast.lease_channel("chat", ttl=60)
        shown = {node.id: node for node in fast.nodes()}
        assert [node.alive for node in shown.values()] == [True, True]
        # each node's offset is kept with its heartbeat, for `autopublish nodes` and the web page
        assert shown[slow.node_id].clock_offset == pytest.approx(120.0, abs=1.0) and shown[slow.node_id].clock_is_off
        assert shown[fast.node_id].clock_offset == pytest.approx(-120.0, abs=1.0)
    finally:
        slow.close()
        fast.close()


def test_the_heartbeat_follows_a_clock_that_is_stepped_while_running(postgres_url: str) -> None:
    wall = Wall(0.0)
    store = Store(postgres_url, clock=NodeClock(wall=wall), migrate=True)
    beat = Heartbeat(store, 0.05).start()
    try:
        wall.skew = 300.0  # the machine's clock jumps five minutes ahead
        assert wait_until(lambda: abs(store.now() - time.time()) < 1.0, timeout=10)
        assert isinstance(store.clock, NodeClock) and store.clock.offset == pytest.approx(-300.0, abs=1.0)
    finally:
        beat.stop()
        store.close()


def test_a_pipeline_rebuilt_on_a_config_reload_keeps_the_stores_clock(tmp_path: Path) -> None:
    from autopublish.app import build_pipeline, open_app
    from autopublish.config import load_config
    from tests.helpers import write_config

    config = load_config(write_config(tmp_path / "autopublish.toml", "sample:"), {}, cwd=tmp_path)
    fixed = Wall(-45.0)
    app = open_app(config, clock=fixed)
    try:
        assert app.store.clock is fixed and app.pipeline.clock is fixed
        pipeline, _publishers = build_pipeline(config, app.store)  # what the daemon does when the config file changes
        assert pipeline.clock is fixed  # one time for the store and the pipeline, or a due post could look early or late
    finally:
        app.close()


def test_a_store_from_before_clock_offsets_keeps_its_nodes(database: Path | str) -> None:
    """Revision 0009 adds nodes.clock_offset; SQLite migrates itself, PostgreSQL on `autopublish db upgrade`."""
    from autopublish.store.migrations import head_revision

    database_at(database, "0008", "INSERT INTO nodes (id, host, pid, started_at, heartbeat_at) VALUES ('old-node', 'vm', 7, 1.0, 2.0)")
    with Store(database, migrate=True) as store:
        [old] = [node for node in store.nodes(keep=1e12) if node.id == "old-node"]
        assert old.clock_offset == 0.0 and not old.clock_is_off
        with store.db.read() as conn:
            assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar_one() == head_revision() == "0009"
