"""The sign-in throttle's counts in the store, over SQLite and PostgreSQL (the ``database`` fixture).

Two Store objects on one database are two ``autopublish web`` processes: each LoginThrottle
over its own store must see the other's counts, and parallel reservations through both must
never let more attempts through than the backoff allows.
"""

from __future__ import annotations

import random
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from autopublish.errors import StateError
from autopublish.store import Store
from autopublish.store.migrations import head_revision
from autopublish.web import throttle as throttle_module
from autopublish.web.throttle import ADDRESS_BACKOFF, FORGET_AFTER, LoginThrottle, Reservation
from tests.helpers import Clock, database_at, run_together

FREE = ADDRESS_BACKOFF.free  # failures each count allows before the first wait


def test_two_processes_throttles_share_the_counts(open_store: Callable[[], Store], clock: Clock) -> None:
    first, second = LoginThrottle(open_store(), clock), LoginThrottle(open_store(), clock)
    for n in range(FREE):  # the free tries, alternating between the two processes
        assert isinstance((first if n % 2 else second).reserve("198.51.100.7", "Ed"), Reservation)
    assert first.reserve("198.51.100.7", "ed") == 2 and second.reserve("198.51.100.7", "ED") == 2
    assert second.reserve("198.51.100.9", "ed") == 1  # another address, but the account waits too (a second)
    clock.now += 2
    reserved = second.reserve("198.51.100.7", "ed")
    assert isinstance(reserved, Reservation)
    assert first.reserve("198.51.100.7", "ed") == 4  # the next wait doubled, whichever process counted it
    second.succeeded(reserved)  # that try was right: both counts start again, in every process
    assert isinstance(first.reserve("198.51.100.7", "ed"), Reservation)
    assert first.store.sign_in_count("address", "198.51.100.7") == (1, clock.now)


def test_a_restart_keeps_the_counts_and_ipv6_counts_per_64(open_store: Callable[[], Store], clock: Clock) -> None:
    before = open_store()
    throttle = LoginThrottle(before, clock)
    for n in range(FREE):
        assert isinstance(throttle.reserve(f"2001:db8:1:2::{n + 1}", f"user{n}"), Reservation)
    before.close()
    restarted = LoginThrottle(open_store(), clock)
    assert restarted.reserve("2001:db8:1:2:ffff::9", "someone") == 2  # the same /64, after a restart
    assert isinstance(restarted.reserve("2001:db8:1:3::1", "someone"), Reservation)  # the next /64 is another count


def test_a_known_device_skips_the_account_count_and_success_clears_both(open_store: Callable[[], Store], clock: Clock) -> None:
    attacker, editor = LoginThrottle(open_store(), clock), LoginThrottle(open_store(), clock)
    for n in range(FREE):
        assert isinstance(attacker.reserve(f"203.0.113.{n}", "ed"), Reservation)  # one guess each from many addresses
    assert editor.reserve("192.0.2.44", "ed") == 1  # a new browser of the editor waits the account's second
    reserved = editor.reserve("192.0.2.44", "ed", known_device=True)  # the laptop that signed in before does not
    assert isinstance(reserved, Reservation)
    assert editor.store.sign_in_count("account", "ed") == (FREE, clock.now + 1)  # not counted against the account
    editor.succeeded(reserved)
    assert attacker.store.sign_in_count("account", "ed") is None and attacker.store.sign_in_count("address", "192.0.2.44") is None
    assert isinstance(attacker.reserve("203.0.113.99", "ed"), Reservation)


def test_counts_are_forgotten_after_a_quiet_day(open_store: Callable[[], Store], clock: Clock) -> None:
    throttle = LoginThrottle(open_store(), clock)
    for _ in range(FREE + 3):
        reserved = throttle.reserve("198.51.100.7", "ed")
        if isinstance(reserved, int):
            clock.now += reserved
            assert isinstance(throttle.reserve("198.51.100.7", "ed"), Reservation)
    assert throttle.reserve("198.51.100.7", "ed") == 16  # eight failures: 2, 4, 8 waited, 16 to go
    clock.now += FORGET_AFTER + 1
    for _ in range(FREE):  # a fresh start: the free tries again
        assert isinstance(throttle.reserve("198.51.100.7", "ed"), Reservation)
    assert throttle.reserve("198.51.100.7", "ed") == 2


@pytest.mark.parametrize("known_device", [False, True])
def test_parallel_reservations_from_two_processes_never_pass_more_than_allowed(open_store: Callable[[], Store], clock: Clock,
                                                                               known_device: bool) -> None:
    """Twenty-four guesses at once, from threads of two processes: exactly the free ones are counted."""
    throttles = [LoginThrottle(open_store(), clock), LoginThrottle(open_store(), clock)]  # the clock stands still
    passed: list[Reservation] = []
    refused: list[int] = []

    def guess(throttle: LoginThrottle) -> None:
        reserved = throttle.reserve("203.0.113.5", "ed", known_device=known_device)
        (passed if isinstance(reserved, Reservation) else refused).append(reserved)  # type: ignore[arg-type]

    assert run_together([lambda t=throttles[n % 2]: guess(t) for n in range(24)]) == []
    assert len(passed) == FREE and len(refused) == 24 - FREE and set(refused) == {2}
    assert throttles[1].store.sign_in_count("address", "203.0.113.5") == (FREE, clock.now + 2)


def test_overlapping_reservations_neither_deadlock_nor_lose_a_count(open_store: Callable[[], Store], clock: Clock) -> None:
    """Parallel attempts on crossing pairs (address A with account X, address B with X, A with Y ...): no error, no
    count lost, and no key lets more than its free tries through."""
    throttles = [LoginThrottle(open_store(), clock), LoginThrottle(open_store(), clock)]
    pairs = [(address, account) for address in ("192.0.2.1", "192.0.2.2", "192.0.2.3") for account in ("ed", "vic", "siti")]
    rng = random.Random(15)
    plan = [rng.choice(pairs) for _ in range(40)]
    passed: Counter[tuple[str, str]] = Counter()
    lock = threading.Lock()

    def guess(throttle: LoginThrottle, address: str, account: str) -> None:
        if isinstance(throttle.reserve(address, account), Reservation):
            with lock:
                passed[("address", address)] += 1
                passed[("account", account)] += 1

    jobs: list[Callable[[], None]] = [lambda t=throttles[n % 2], p=pair: guess(t, *p) for n, pair in enumerate(plan)]
    assert run_together(jobs) == []
    assert passed and max(passed.values()) <= FREE
    store = throttles[0].store
    for kind, key in {("address", a) for a, _ in plan} | {("account", b) for _, b in plan}:
        count = store.sign_in_count(kind, key)
        assert (count[0] if count else 0) == passed[(kind, key)], (kind, key)  # every counted try is stored, none twice


def test_sign_ins_and_guesses_on_crossing_pairs_do_not_deadlock(open_store: Callable[[], Store], clock: Clock) -> None:
    """Successes clear both counts while other attempts reserve them, from two processes: every call returns."""
    throttles = [LoginThrottle(open_store(), clock), LoginThrottle(open_store(), clock)]
    pairs = [(address, account) for address in ("192.0.2.1", "192.0.2.2") for account in ("ed", "vic")]

    def attempt(throttle: LoginThrottle, address: str, account: str, right: bool) -> None:
        for _ in range(5):
            reserved = throttle.reserve(address, account)
            if right and isinstance(reserved, Reservation):
                throttle.succeeded(reserved)

    jobs: list[Callable[[], None]] = [lambda t=throttles[n % 2], p=pairs[n % 4], r=n % 3 == 0: attempt(t, *p, r) for n in range(24)]
    assert run_together(jobs) == []  # a deadlock on PostgreSQL would raise StateError in a thread
    assert isinstance(throttles[0].reserve("192.0.2.3", "siti"), Reservation)


def rows_of(store: Store, kind: str) -> int:
    with store.db.read() as conn:
        return int(conn.exec_driver_sql(f"SELECT count(*) FROM sign_in_attempts WHERE kind = '{kind}'").scalar_one())


def test_old_counts_are_pruned_and_their_number_is_bounded(open_store: Callable[[], Store], clock: Clock,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    store = open_store()
    throttle = LoginThrottle(store, clock)
    for n in range(3):
        throttle.reserve(f"198.51.100.{n}", "old")
    assert rows_of(store, "address") == 3
    clock.now += FORGET_AFTER + 10  # a quiet day: the next attempt prunes (PRUNE_INTERVAL has passed too)
    for n in range(30):
        clock.now += 1
        throttle.reserve(f"203.0.113.{n}", f"user{n}")
    assert store.sign_in_count("address", "198.51.100.0") is None and store.sign_in_count("account", "old") is None
    assert rows_of(store, "address") == rows_of(store, "account") == 30

    assert store.prune_sign_ins(quiet_since=clock.now - FORGET_AFTER, keep=20) == 20 + 20  # beyond 20: back to the newest 10
    assert [n for n in range(30) if store.sign_in_count("address", f"203.0.113.{n}") is not None] == list(range(20, 30))
    assert store.sign_in_count("account", "user29") is not None and store.sign_in_count("account", "user19") is None
    assert store.prune_sign_ins(quiet_since=clock.now - FORGET_AFTER, keep=20) == 0

    # The throttle prunes by itself every PRUNE_EVERY counted attempts: a flood of addresses stays bounded.
    monkeypatch.setattr(throttle_module, "PRUNE_EVERY", 10)
    monkeypatch.setattr(throttle_module, "MAX_ENTRIES", 8)
    for n in range(60):
        clock.now += 1
        assert isinstance(throttle.reserve(f"192.0.2.{n}", "ed", known_device=True), Reservation)
        assert rows_of(store, "address") <= 8 + 10
    assert store.sign_in_count("address", "192.0.2.59") is not None and store.sign_in_count("address", "203.0.113.29") is None


def test_pruning_keeps_the_long_waits_before_the_merely_recent(open_store: Callable[[], Store], clock: Clock) -> None:
    """An attacker's address under a long wait is not pushed out by a flood of fresh addresses."""
    store = open_store()
    throttle = LoginThrottle(store, clock)
    for _ in range(FREE + 4):
        reserved = throttle.reserve("203.0.113.66", "x", known_device=True)
        if isinstance(reserved, int):
            clock.now += reserved
            assert isinstance(throttle.reserve("203.0.113.66", "x", known_device=True), Reservation)
    for n in range(20):
        clock.now += 1
        throttle.reserve(f"192.0.2.{n}", "y", known_device=True)
    assert store.prune_sign_ins(quiet_since=clock.now - FORGET_AFTER, keep=10) == 16
    assert store.sign_in_count("address", "203.0.113.66") is not None  # the oldest row, but its wait runs longest
    assert [n for n in range(20) if store.sign_in_count("address", f"192.0.2.{n}") is not None] == list(range(16, 20))


def test_a_pruning_failure_does_not_undo_the_attempt(open_store: Callable[[], Store], clock: Clock,
                                                     monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    store = open_store()

    def broken(**_: float) -> int:
        raise StateError("The database failed (a test)")

    monkeypatch.setattr(store, "prune_sign_ins", broken)
    throttle = LoginThrottle(store, clock)
    assert isinstance(throttle.reserve("192.0.2.1", "ed"), Reservation)  # the first reservation of a process prunes
    assert store.sign_in_count("address", "192.0.2.1") == (1, clock.now)
    assert "could not be pruned" in caplog.text


def test_no_password_is_stored(open_store: Callable[[], Store], clock: Clock) -> None:
    store = open_store()
    LoginThrottle(store, clock).reserve("192.0.2.1", "Ed")
    with store.db.read() as conn:
        rows = [tuple(row) for row in conn.exec_driver_sql("SELECT kind, key, failures FROM sign_in_attempts ORDER BY kind").all()]
    assert rows == [("account", "ed", 1), ("address", "192.0.2.1", 1)]


def test_a_0007_database_upgrades_to_the_shared_throttle_keeping_its_rows(database: Path | str, clock: Clock) -> None:
    """SQLite migrates itself; PostgreSQL waits for ``autopublish db upgrade``, then keeps every row too."""
    database_at(database, "0007",
                "INSERT INTO web_sessions (id_hash, \"user\", created_at, last_seen_at, fingerprint) VALUES ('h', 'ed', 1.0, 2.0, 'fp')",
                "INSERT INTO feeds (name, url, polls) VALUES ('site', 'https://example.org/feed/', 7)")
    if not isinstance(database, Path):
        with pytest.raises(StateError, match=r"older schema \(0007\).*autopublish db upgrade"):
            Store(database)
    with Store(database, clock=clock, migrate=None if isinstance(database, Path) else True) as store:
        assert [s.user for s in store.web_sessions()] == ["ed"]
        assert store.feed("site").polls == 7  # type: ignore[union-attr]
        assert isinstance(LoginThrottle(store, clock).reserve("192.0.2.1", "ed"), Reservation)
        assert store.sign_in_count("account", "ed") == (1, clock.now)
        with store.db.read() as conn:
            assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar_one() == head_revision()
    if isinstance(database, Path):
        check = sqlite3.connect(database / "state.db")
        try:
            assert check.execute("SELECT count(*) FROM sign_in_attempts").fetchone()[0] == 2
        finally:
            check.close()
