"""The store contract, run against SQLite and against a real PostgreSQL (the ``database`` fixture).

Two Store objects on one database are two nodes: each has its own node id, as two
``autopublish run`` processes would.
"""

from __future__ import annotations

import dataclasses
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from autopublish.errors import StateError
from autopublish.models import Article, DeliveryStatus
from autopublish.store import Store
from autopublish.store.migrations import head_revision
from tests.helpers import Clock, database_at, run_together


@pytest.fixture
def store(open_store: Callable[[], Store]) -> Store:
    return open_store()


def article(n: int, feed: str = "site") -> Article:
    return Article(feed=feed, key=f"k{n}", link=f"https://example.org/{n}/", title=f"Artikel {n}", summary="s", content="c",
                   published=datetime(2026, 1, 1, 12, n % 60, tzinfo=UTC))


def queue_one(store: Store, n: int = 1, channels: tuple[str, ...] = ("social",)) -> list[int]:
    return store.record_articles("site", [(article(n), f"https://example.org/{n}/", [(c, DeliveryStatus.QUEUED, "") for c in channels])])


# --- the single-node contract ------------------------------------------------------------------------


def test_an_article_is_recorded_once_and_its_delivery_goes_claim_post_mark(store: Store) -> None:
    [delivery_id] = queue_one(store)
    assert queue_one(store) == []  # the same article again: nothing new
    assert store.known_article("site", "k1", "") is not None
    assert store.known_article("other", "x", "https://example.org/1/") is not None  # same canonical link anywhere
    due = store.due_deliveries(store.now())
    assert [row.id for row in due] == [delivery_id] and due[0].title == "Artikel 1" and due[0].feed == "site"
    assert store.claim(delivery_id)
    assert not store.claim(delivery_id)  # already sending
    assert store.due_deliveries(store.now()) == []
    assert store.transition(delivery_id, DeliveryStatus.SENT, "Posted", post_url="https://social.example/1", remote_id="1",
                            expect=(DeliveryStatus.SENDING,))
    row = store.delivery(delivery_id)
    assert row is not None and row.status == "sent" and row.post_url == "https://social.example/1" and row.tries == 1
    assert store.channel("social").last_success_at == store.now()
    assert store.counts_by_status() == {"sent": 1}
    assert store.counts_by_channel() == {"social": {"sent": 1}}
    kinds = [e["kind"] for e in store.events()]
    assert kinds == ["sent", "sending", "queued"]
    assert store.article(row.article_id).title == "Artikel 1"


def test_the_database_refuses_a_second_delivery_of_an_article_to_a_channel(store: Store) -> None:
    [delivery_id] = queue_one(store)
    row = store.delivery(delivery_id)
    assert row is not None
    with store.db.tx() as conn:
        assert store._insert_delivery(conn, row.article_id, "social", DeliveryStatus.QUEUED, "again") is None
    assert len(store.deliveries_with_status(DeliveryStatus.QUEUED)) == 1


def test_editors_actions_move_only_from_the_states_they_may(store: Store) -> None:
    [delivery_id] = queue_one(store)
    assert store.claim(delivery_id)
    assert store.transition(delivery_id, DeliveryStatus.UNCERTAIN, "not sure", expect=(DeliveryStatus.SENDING,))
    assert not store.retry(delivery_id, "ed")  # could post twice
    assert store.resolve(delivery_id, posted_url=None, actor="ed")
    assert store.delivery(delivery_id).status == "queued"  # type: ignore[union-attr]
    assert store.skip(delivery_id, "ed")
    assert not store.skip(delivery_id, "ed")
    assert store.retry(delivery_id, "ed")
    assert store.claim(delivery_id)
    assert store.transition(delivery_id, DeliveryStatus.SENT, "Posted", expect=(DeliveryStatus.SENDING,))
    again = store.repost(delivery_id, "ed")
    assert again is not None and store.delivery(again).repost_of == delivery_id  # type: ignore[union-attr]
    actors = {e["actor"] for e in store.events()}
    assert "ed" in actors


def test_pause_keeps_the_queue_and_resume_puts_held_posts_back(store: Store) -> None:
    [delivery_id] = queue_one(store)
    assert store.pause_channel("social", "token expired")
    assert not store.pause_channel("social", "again")
    assert store.transition(delivery_id, DeliveryStatus.HELD, "Held", expect=(DeliveryStatus.QUEUED,))
    assert store.channel("social").paused
    assert store.resume_channel("social", actor="ed") == 1
    assert not store.channel("social").paused and store.delivery(delivery_id).status == "queued"  # type: ignore[union-attr]


def test_the_log_filters_searches_and_pages(store: Store, clock: Clock) -> None:
    for n in range(5):
        queue_one(store, n)
        clock.now += 10
    assert len(store.events(channel="social")) == 5
    assert len(store.events(search="artikel 3")) == 1  # case-insensitive on both databases
    assert len(store.events(search="100%")) == 0  # wildcards are literal
    assert len(store.events(since=clock.now - 25)) == 2
    lines, more = store.article_page(limit=2, offset=0)
    assert [line.title for line in lines] == ["Artikel 4", "Artikel 3"] and more
    assert all(len(line.deliveries) == 1 for line in lines)
    lines, more = store.article_page(search="ARTIKEL 0", limit=2, offset=0)
    assert [line.title for line in lines] == ["Artikel 0"] and not more
    assert store.prune_events(clock.now - 25) == 3


def test_feed_polls_are_recorded(store: Store) -> None:
    store.ensure_feed("site", "https://example.org/feed/")
    store.record_poll_error("site", "The site answered 500")
    store.record_poll_error("site", "The site answered 500")
    row = store.feed("site")
    assert row is not None and row.failing_since is not None and row.polls == 2
    store.record_poll_ok("site", etag="e", last_modified=None, fetched_at=1.0, body_hash="h", title="Situs")
    row = store.feed("site")
    assert row is not None and row.failing_since is None and row.etag == "e" and row.title == "Situs"
    assert [e["kind"] for e in store.events()].count("feed_error") == 1
    assert [f.name for f in store.feeds()] == ["site"]


# --- several nodes on one database ----------------------------------------------------------------------


def test_two_nodes_claiming_one_delivery_one_wins(open_store: Callable[[], Store]) -> None:
    nodes = [open_store() for _ in range(4)]
    [delivery_id] = queue_one(nodes[0])
    won: list[bool] = []
    assert run_together([lambda node=node: won.append(node.claim(delivery_id)) for node in nodes]) == []
    assert sorted(won) == [False, False, False, True]
    assert sum(1 for e in nodes[0].events() if e["kind"] == "sending") == 1


def test_one_node_at_a_time_holds_a_channel(open_store: Callable[[], Store], clock: Clock) -> None:
    a, b = open_store(), open_store()
    assert a.lease_channel("social", ttl=60)
    assert not b.lease_channel("social", ttl=60)
    assert a.lease_channel("social", ttl=60)  # renewal
    clock.now += 61
    assert b.lease_channel("social", ttl=60)  # expired: taken over
    assert not a.lease_channel("social", ttl=60)
    b.release_channel("social")
    assert a.lease_channel("social", ttl=60)


def test_one_node_polls_a_due_feed_per_interval(open_store: Callable[[], Store], clock: Clock) -> None:
    a, b = open_store(), open_store()
    first = a.lease_feed("site", "https://example.org/feed/", ttl=120, every=300)
    assert first is not None and first.baseline_at is None
    assert b.lease_feed("site", "https://example.org/feed/", ttl=120) is None  # being polled
    a.record_poll_unchanged("site", fetched_at=None)  # gives the lease back
    clock.now += 10
    assert b.lease_feed("site", "https://example.org/feed/", ttl=120, every=300) is None  # polled 10 s ago
    assert b.lease_feed("site", "https://example.org/feed/", ttl=120) is not None  # not interval-bound: free now
    b.release_feed("site")
    clock.now += 300
    assert b.lease_feed("site", "https://example.org/feed/", ttl=120, every=300) is not None
    clock.now += 121  # b died holding it: the lease expires
    assert a.lease_feed("site", "https://example.org/feed/", ttl=120) is not None


def test_stored_articles_reads_a_feeds_known_entries_at_once(open_store: Callable[[], Store]) -> None:
    store = open_store()
    store.record_articles("site", [(article(n), f"https://example.org/{n}/", []) for n in range(3)])
    store.record_articles("other", [(article(7, feed="other"), "https://example.org/other/7/", [])])
    found = store.stored_articles("site", [article(n).key for n in (0, 2, 5)] + [article(7, feed="other").key])
    assert set(found) == {article(0).key, article(2).key}  # another feed's entry and an unknown key are not there
    for key, (article_id, stored) in found.items():
        assert store.stored_article("site", key) == (article_id, stored)
    assert store.stored_articles("site", []) == {}


def _feed_url(store: Store) -> str:
    with store.db.read() as conn:
        return str(conn.execute(text("SELECT url FROM feeds WHERE name = 'site'")).scalar())


def test_poll_bookkeeping_in_one_statement_keeps_urls_leases_and_recovery_events(open_store: Callable[[], Store], clock: Clock) -> None:
    """The poll path's shortcuts (lease with the url in one update; no read when the feed was not failing) write what the long way did."""
    a, b = open_store(), open_store()
    assert a.lease_feed("site", "https://example.org/feed/", ttl=120) is not None  # a new feed: added, then leased
    assert b.lease_feed("site", "https://example.org/moved/", ttl=120) is None  # leased by a: not taken, but the new url is kept
    assert _feed_url(a) == "https://example.org/moved/"
    a.record_poll_error("site", "The feed's server had a problem (HTTP 500)")
    clock.now += 60
    assert a.lease_feed("site", "https://example.org/feed/", ttl=120) is not None
    assert _feed_url(a) == "https://example.org/feed/"
    a.record_poll_ok("site", etag='"e1"', last_modified=None, fetched_at=5.0, body_hash="h1", title="Site")
    row = a.feed("site")
    assert row is not None and row.failing_since is None and row.last_error is None and row.etag == '"e1"' and row.polls == 2
    assert row.title == "Site"
    assert sorted(e["kind"] for e in a.events(feed="site")) == ["feed_error", "feed_ok"]
    assert a.lease_feed("site", "https://example.org/feed/", ttl=120) is not None
    a.record_poll_ok("site", etag=None, last_modified=None, fetched_at=None, body_hash="h2", title=None, warning="odd")
    a.record_poll_unchanged("site", fetched_at=None)  # healthy: no event, fetched_at kept
    row = a.feed("site")
    assert row is not None and row.title == "Site" and row.fetched_at is None and row.last_error is None and row.polls == 4
    assert sorted(e["kind"] for e in a.events(feed="site")) == ["feed_error", "feed_ok"]
    assert b.lease_feed("site", "https://example.org/feed/", ttl=120) is not None  # every poll gave the lease back


def test_the_baseline_happens_once_when_nodes_start_together(open_store: Callable[[], Store]) -> None:
    nodes = [open_store() for _ in range(3)]
    for node in nodes:
        node.ensure_feed("site", "https://example.org/feed/")
    items = [(article(n), f"https://example.org/{n}/", []) for n in range(5)]
    assert run_together([lambda node=node: node.record_articles("site", items, baseline="First poll") for node in nodes]) == []
    assert [e["kind"] for e in nodes[0].events()].count("baseline") == 1
    assert all(nodes[0].known_article("site", f"k{n}", "") for n in range(5))
    feed = nodes[0].feed("site")
    assert feed is not None and feed.baseline_at is not None


def test_a_dead_nodes_claims_become_uncertain_and_a_live_nodes_are_never_touched(open_store: Callable[[], Store],
                                                                                    clock: Clock, database: Path | str) -> None:
    if isinstance(database, Path):
        pytest.skip("SQLite is single-node: its start-up recovery is tested in test_crash.py")
    live, dying, watcher = open_store(), open_store(), open_store()
    for node in (live, dying, watcher):
        node.register_node()
    first, second = queue_one(live, 1), queue_one(live, 2)
    assert live.claim(first[0]) and dying.claim(second[0])
    assert dying.lease_channel("chat", ttl=600)
    clock.now += 20
    live.heartbeat()
    watcher.heartbeat()
    assert watcher.recover_dead_nodes() == []  # 20 s: everyone is still alive
    clock.now += 15  # dying's heartbeat is now 35 s old; live's 15 s
    live.heartbeat()
    assert watcher.recover_dead_nodes() == second
    assert live.delivery(first[0]).status == "sending"  # type: ignore[union-attr]
    assert live.delivery(second[0]).status == "uncertain"  # type: ignore[union-attr]
    assert watcher.lease_channel("chat", ttl=600)  # the dead node's lease was freed
    # a late answer from the dead node cannot overwrite the settled state
    assert not dying.transition(second[0], DeliveryStatus.SENT, "Posted", expect=(DeliveryStatus.SENDING,))
    shown = {node.id: node for node in watcher.nodes()}
    assert shown[live.node_id].alive and shown[live.node_id].posting == (first[0],)
    assert not shown[dying.node_id].alive and shown[dying.node_id].posting == ()
    assert shown[watcher.node_id].channels == ("chat",)


def test_an_alert_is_raised_once_across_nodes(open_store: Callable[[], Store], clock: Clock) -> None:
    nodes = [open_store() for _ in range(3)]
    sent: list[bool] = []
    for round_no in range(2):
        assert run_together([lambda node=node: sent.append(node.open_alert("paused:social", "Channel social is paused", 3600))
                             for node in nodes]) == []
        assert sent.count(True) == 1, f"round {round_no}"
        sent.clear()
        clock.now += 3600  # the repeat period has passed: once more, by one node
    assert [node.resolve_alert("paused:social") for node in nodes].count(True) == 1
    assert not nodes[0].alert_is_open("paused:social")
    assert nodes[1].open_alert("paused:social", "paused again", 3600)  # a new problem after resolution


def test_nodes_show_who_is_alive_and_what_each_holds(open_store: Callable[[], Store], clock: Clock) -> None:
    a, b = open_store(), open_store()
    a.register_node()
    b.register_node()
    assert a.lease_feed("site", "https://example.org/feed/", ttl=120) is not None
    assert b.lease_channel("social", ttl=60)
    b.leave()
    shown = {node.id: node for node in a.nodes()}
    assert shown[a.node_id].alive and shown[a.node_id].feeds == ("site",)
    assert not shown[b.node_id].alive and shown[b.node_id].stopped_at is not None
    assert a.lease_channel("social", ttl=60)  # a clean stop gave the lease back


# --- migrations and errors ----------------------------------------------------------------------------

V1_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE feeds (name TEXT PRIMARY KEY, url TEXT NOT NULL DEFAULT '', etag TEXT, last_modified TEXT, fetched_at REAL,
    body_hash TEXT, baseline_at REAL, last_poll_at REAL, last_ok_at REAL, last_error TEXT, failing_since REAL,
    polls INTEGER NOT NULL DEFAULT 0, title TEXT NOT NULL DEFAULT '');
CREATE TABLE articles (id INTEGER PRIMARY KEY, feed TEXT NOT NULL, key TEXT NOT NULL, canonical TEXT NOT NULL, link TEXT NOT NULL,
    title TEXT NOT NULL, published REAL, first_seen_at REAL NOT NULL, data TEXT NOT NULL, UNIQUE (feed, key));
CREATE INDEX articles_canonical ON articles (canonical);
CREATE TABLE deliveries (id INTEGER PRIMARY KEY, article_id INTEGER NOT NULL REFERENCES articles (id), channel TEXT NOT NULL,
    generation INTEGER NOT NULL DEFAULT 0, repost_of INTEGER REFERENCES deliveries (id), status TEXT NOT NULL,
    tries INTEGER NOT NULL DEFAULT 0, next_attempt_at REAL, first_try_at REAL, reason TEXT NOT NULL DEFAULT '',
    post_url TEXT, remote_id TEXT, needs_editor INTEGER NOT NULL DEFAULT 0, created_at REAL NOT NULL, updated_at REAL NOT NULL,
    sent_at REAL, UNIQUE (channel, article_id, generation));
CREATE INDEX deliveries_due ON deliveries (status, next_attempt_at);
CREATE INDEX deliveries_channel ON deliveries (channel, status);
CREATE INDEX deliveries_article ON deliveries (article_id);
CREATE TABLE channels (name TEXT PRIMARY KEY, paused INTEGER NOT NULL DEFAULT 0, paused_reason TEXT NOT NULL DEFAULT '',
    paused_at REAL, paused_by TEXT NOT NULL DEFAULT '', token_expires_at REAL, last_success_at REAL, last_failure_at REAL);
CREATE TABLE events (id INTEGER PRIMARY KEY, at REAL NOT NULL, kind TEXT NOT NULL, status TEXT NOT NULL DEFAULT '',
    delivery_id INTEGER, article_id INTEGER, channel TEXT NOT NULL DEFAULT '', feed TEXT NOT NULL DEFAULT '',
    message TEXT NOT NULL DEFAULT '', actor TEXT NOT NULL DEFAULT 'autopublish');
CREATE INDEX events_at ON events (at);
CREATE INDEX events_delivery ON events (delivery_id);
CREATE TABLE alerts (key TEXT PRIMARY KEY, opened_at REAL NOT NULL, last_sent_at REAL, message TEXT NOT NULL, resolved_at REAL);
INSERT INTO meta (key, value) VALUES ('schema_version', '1');
"""


def test_a_sqlite_database_of_schema_version_1_upgrades_without_loss(tmp_path: Path) -> None:
    """A database written by the original store (schema version 1, before Alembic)."""
    state = tmp_path / "queue"
    state.mkdir()
    old = sqlite3.connect(state / "state.db")
    old.executescript(V1_SCHEMA)
    old.execute("INSERT INTO feeds (name, url, baseline_at, polls) VALUES ('site', 'https://example.org/feed/', 1.0, 7)")
    old.execute("INSERT INTO articles (feed, key, canonical, link, title, published, first_seen_at, data) VALUES "
                "('site', 'k1', 'https://example.org/1/', 'https://example.org/1/', 'Lama', 1.0, 1.0, ?)",
                ('{"feed": "site", "key": "k1", "link": "https://example.org/1/", "title": "Lama"}',))
    old.execute("INSERT INTO deliveries (article_id, channel, status, created_at, updated_at, sent_at, post_url) "
                "VALUES (1, 'social', 'sent', 1.0, 2.0, 2.0, 'https://social.example/1')")
    old.execute("INSERT INTO deliveries (article_id, channel, status, tries, created_at, updated_at) VALUES (1, 'chat', 'sending', 1, 1.0, 2.0)")
    old.execute("INSERT INTO events (at, kind, status, delivery_id, article_id, channel, message) VALUES (2.0, 'sent', 'sent', 1, 1, 'social', 'Posted')")
    old.execute("INSERT INTO alerts (key, opened_at, last_sent_at, message) VALUES ('feed:site', 1.0, 1.0, 'down')")
    old.commit()
    old.close()
    with Store(state) as store:
        assert store.feed("site").polls == 7  # type: ignore[union-attr]
        sent = store.delivery(1)
        assert sent is not None and sent.status == "sent" and sent.post_url == "https://social.example/1" and sent.title == "Lama"
        assert store.alert_is_open("feed:site")
        assert [e["message"] for e in store.events()] == ["Posted"]
        assert store.recover_interrupted() == [2]  # a claim from before the upgrade is settled like any crash
    check = sqlite3.connect(state / "state.db")
    try:
        assert check.execute("SELECT version_num FROM alembic_version").fetchone()[0] == head_revision()
        assert check.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == "2"  # old binaries refuse it
    finally:
        check.close()


def test_an_old_schema_is_refused_until_db_upgrade(database: Path | str) -> None:
    database_at(database, "0001")
    if isinstance(database, Path):
        with Store(database) as store:  # SQLite migrates itself
            assert store.counts_by_status() == {}
        return
    with pytest.raises(StateError, match=r"older schema.*autopublish db upgrade"):
        Store(database)
    with Store(database, migrate=True) as store:
        assert store.counts_by_status() == {}
    with Store(database) as store:
        assert store.counts_by_status() == {}


def test_an_empty_postgresql_is_refused_with_a_clear_message(postgres_url: str) -> None:
    with pytest.raises(StateError, match=r"no autopublish tables yet.*autopublish db upgrade"):
        Store(postgres_url)


def test_a_newer_schema_is_refused(database: Path | str) -> None:
    Store(database, migrate=True).close()
    from autopublish.store.connection import Database

    db = Database(database)
    with db.tx() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
    db.close()
    with pytest.raises(StateError, match="newer autopublish"):
        Store(database)


def test_an_unreachable_postgresql_is_a_plain_sentence_without_the_password() -> None:
    from tests.helpers import free_port

    port = free_port()  # nothing listens there
    with pytest.raises(StateError) as caught:
        Store(f"postgresql://autopublish:sekret-canary@127.0.0.1:{port}/autopublish")
    assert "cannot be reached" in caught.value.message and "sekret-canary" not in caught.value.message


def test_failed_read_backs_are_counted_from_the_deliverys_own_events(store: Store, clock: Clock) -> None:
    [delivery_id] = queue_one(store)
    assert store.claim(delivery_id)
    assert store.transition(delivery_id, DeliveryStatus.UNCERTAIN, "lost answer", expect=(DeliveryStatus.SENDING,))
    began = clock.now
    for _ in range(2):
        clock.now += 60
        store.log_event("check_failed", "the platform did not answer", delivery_id=delivery_id, channel="social", status="uncertain")
    assert store.failed_checks(delivery_id) == (2, began)
    assert store.failed_checks(9999) == (0, None)


def test_a_claim_whose_answer_was_lost_is_settled_by_its_own_node_only(open_store: Callable[[], Store]) -> None:
    mine, other = open_store(), open_store()
    first, second = queue_one(mine, 1), queue_one(mine, 2)
    assert mine.claim(first[0]) and other.claim(second[0])
    assert mine.settle_own_claims() == first  # e.g. the database failed after the post went out
    assert mine.delivery(first[0]).status == "uncertain"  # type: ignore[union-attr]
    assert mine.delivery(second[0]).status == "sending"  # type: ignore[union-attr]


def test_editors_sessions_and_the_queue_page(store: Store, clock: Clock) -> None:
    store.create_web_session("h1", "ed", "fp-old", clock.now)
    store.create_web_session("h2", "ed", "fp-new", clock.now + 1)
    store.create_web_session("h3", "siti", "fp", clock.now + 2)
    store.touch_web_session("h1", clock.now + 5)
    first = store.web_session("h1")
    assert first is not None and first.user == "ed" and first.last_seen_at == clock.now + 5
    assert store.end_web_sessions("ed", except_fingerprint="fp-new") == 1
    assert [s.id_hash for s in store.web_sessions()] == ["h2", "h3"]
    assert store.end_web_session("h3") and not store.end_web_session("h3")
    assert store.prune_web_sessions(seen_before=clock.now + 10, created_before=0) == 1
    assert store.web_sessions() == []
    ids = [queue_one(store, n)[0] for n in range(3)]
    store.defer(ids[0], clock.now + 600, "pacing")
    rows, more = store.queue_page(("queued",), now=clock.now, limit=2, offset=0)
    assert [r.id for r in rows] == [ids[1], ids[2]] and more
    rows, more = store.queue_page(("queued",), now=clock.now, limit=2, offset=2)
    assert [r.id for r in rows] == [ids[0]] and not more


def test_a_version_1_database_that_already_has_the_sessions_table_keeps_it(tmp_path: Path) -> None:
    state = tmp_path / "queue"
    state.mkdir()
    old = sqlite3.connect(state / "state.db")
    old.executescript(V1_SCHEMA + """
        CREATE TABLE web_sessions (id_hash TEXT PRIMARY KEY, user TEXT NOT NULL, created_at REAL NOT NULL,
            last_seen_at REAL NOT NULL, fingerprint TEXT NOT NULL);
        CREATE INDEX web_sessions_user ON web_sessions (user);
        INSERT INTO web_sessions VALUES ('h', 'ed', 1.0, 2.0, 'fp');
    """)
    old.close()
    with Store(state) as store:
        assert [s.user for s in store.web_sessions()] == ["ed"]


def test_push_links_pings_and_websub_subscriptions(store: Store, clock: Clock) -> None:
    from autopublish.store import WebSubRow

    store.record_feed_links("site", home="https://example.org/", hub="https://hub.example/", self_url="https://example.org/feed/")
    store.note_push("site", "ping")
    store.record_feed_links("site", home="https://example.org/", hub="", self_url="https://example.org/feed/")
    links = store.push_feed("site")
    assert links is not None and links.hub == "" and links.last_ping_at == clock.now and links.last_hook_at is None
    assert [row.feed for row in store.push_feeds()] == ["site"]
    row = WebSubRow("site", "https://hub.example/", "https://example.org/feed/", "https://me.example/websub/site", "n1", "subscribing")
    store.save_websub(row)
    store.save_websub(dataclasses.replace(row, state="active", lease_seconds=86400.0))  # the same feed: updated in place
    saved = store.websub_subscription("site")
    assert saved is not None and saved.state == "active" and saved.lease_seconds == 86400.0
    assert len(store.websub_subscriptions()) == 1
    store.delete_websub("site")
    assert store.websub_subscription("site") is None


def test_message_codes_an_articles_story_and_the_month_at_a_glance(store: Store, clock: Clock) -> None:
    from autopublish.messages import msg

    since = clock.now - 3 * 86400
    [first] = queue_one(store, 1)
    [second] = queue_one(store, 2)
    assert store.claim(first)
    clock.now += 30
    assert store.transition(first, DeliveryStatus.SENT, msg("posted"), expect=(DeliveryStatus.SENDING,), sent_text="Artikel 1 https://x/1/")
    assert store.transition(second, DeliveryStatus.FAILED, msg("failed_tries", tries=3, detail="HTTP 500"), expect=(DeliveryStatus.QUEUED,))
    code, _params, text = store.delivery_extras(first)
    assert code == "posted" and text == "Artikel 1 https://x/1/"
    code, params, _text = store.delivery_extras(second)
    assert code == "failed_tries" and params is not None and "HTTP 500" in params
    newest = store.events()[0]
    assert newest["code"] == "failed_tries" and newest["message"].startswith("Failed after 3 tries")
    assert store.pause_channel("social", msg("paused_by_editor", actor="ed"), actor="ed")
    assert store.channel_pause_code("social")[0] == "paused_by_editor"
    row = store.delivery(first)
    assert row is not None
    summary = store.article_summary(row.article_id)
    assert summary is not None and summary["title"] == "Artikel 1"
    assert [d.id for d in store.article_deliveries(row.article_id)] == [first]
    assert [e["kind"] for e in store.article_events(row.article_id)] == ["queued", "sending", "sent"]
    outcomes = sorted(store.daily_outcomes(since))
    assert outcomes == [("social", 3, "failed", 1), ("social", 3, "sent", 1)]  # day 3 counted from ``since``, on both databases
    delays = store.publish_delays(since)
    assert list(delays) == ["social"] and len(delays["social"]) == 1


def test_a_batch_commits_once_and_a_savepoint_undoes_only_its_own_writes(store: Store) -> None:
    with store.batch():
        store.ensure_feed("a", "https://a.example/feed/")
        with pytest.raises(RuntimeError), store.savepoint():
            store.ensure_feed("b", "https://b.example/feed/")
            raise RuntimeError("a bug while recording feed b")
        store.record_poll_error("a", "down")
    assert [f.name for f in store.feeds()] == ["a"] and store.feed("a").last_error == "down"  # type: ignore[union-attr]
    with pytest.raises(RuntimeError), store.batch():
        store.ensure_feed("c", "https://c.example/feed/")
        raise RuntimeError("all or nothing")
    assert [f.name for f in store.feeds()] == ["a"]
    assert store.known_keys("a", ["x"], ["example.org/x"]) == (set(), set())


def test_a_node_that_stopped_with_a_post_hanging_has_it_checked_by_the_others(open_store: Callable[[], Store],
                                                                               database: Path | str) -> None:
    if isinstance(database, Path):
        pytest.skip("SQLite is single-node: its start-up recovery is tested in test_crash.py")
    leaving, other = open_store(), open_store()
    [delivery_id] = queue_one(leaving)
    assert leaving.claim(delivery_id)
    leaving.leave()  # SIGTERM's grace ran out with this post still hanging
    assert other.recover_dead_nodes() == [delivery_id]
    assert other.recover_dead_nodes() == []  # settled once


def test_progress_edits_and_takedowns_of_live_posts(store: Store, clock: Clock) -> None:
    [post] = queue_one(store)
    assert store.claim(post)
    assert store.transition(post, DeliveryStatus.WAITING, "the container is not ready", expect=(DeliveryStatus.SENDING,),
                            progress="container-17", uncount_try=True)
    row = store.delivery(post)
    assert row is not None and row.progress == "container-17" and row.tries == 0
    assert store.claim(post)
    assert store.transition(post, DeliveryStatus.SENT, "Posted", expect=(DeliveryStatus.SENDING,), remote_id="r1")
    assert [a[0] for a in store.live_articles(clock.now - 60)] == [row.article_id]
    first_edit = store.queue_action(post, "edit", "The site corrected the article")
    second_edit = store.queue_action(post, "edit", "Corrected again")
    assert first_edit and second_edit and store.delivery(first_edit).status == "skipped"  # type: ignore[union-attr]
    assert store.delivery_action(second_edit) == ("edit", post) and store.delivery_action(post) == ("post", None)
    delete = store.queue_action(post, "delete", "Retracted by ed", actor="ed")
    assert delete is not None and store.queue_action(post, "delete", "again") is None
    assert store.taken_down(post) and store.live_articles(clock.now - 60) == []
    assert store.find_article(f"#{post}") == row.article_id == store.find_article("https://example.org/1/")
    assert [kind for _row, kind, _target in store.article_actions(row.article_id)] == ["post", "edit", "edit", "delete"]


def test_a_repost_only_from_a_finished_delivery_and_never_twice_at_once(store: Store) -> None:
    [delivery_id] = queue_one(store)
    assert store.repost(delivery_id, "ed") is None  # still queued: not finished
    assert store.claim(delivery_id)
    assert store.transition(delivery_id, DeliveryStatus.SENT, "Posted", expect=(DeliveryStatus.SENDING,))
    again = store.repost(delivery_id, "ed")
    assert again is not None
    assert store.repost(delivery_id, "ed") is None  # a stale page: the first re-post is still on its way


def test_the_head_constant_is_the_newest_script_and_an_up_to_date_store_opens_without_alembic(tmp_path: Path) -> None:
    from autopublish.store.migrations import HEAD

    assert head_revision() == HEAD  # a new migration script must move HEAD too
    Store(tmp_path / "queue").close()  # created (and migrated) here
    probe = ("import sys\nfrom pathlib import Path\nfrom autopublish.store import Store\n"
             f"Store(Path({str(tmp_path / 'queue')!r})).close()\n"
             "print(sorted({m.split('.')[0] for m in sys.modules} & {'alembic', 'psycopg'}))")
    opened = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert opened.stdout.strip() == "[]"  # neither Alembic nor the PostgreSQL driver for a daemon on SQLite
