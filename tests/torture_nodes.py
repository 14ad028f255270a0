"""The several-nodes torture run: three real daemons on one PostgreSQL, one SIGKILLed again and again.

All nodes start at the same moment (the feed's baseline must still happen once). Articles
arrive on a loopback feed while the nodes post them to a webhook (not idempotent, cannot
be read back: a repeat would be a real double post) and to Mastodon (read back after a
crash). One node is killed with SIGKILL at random moments and restarted; its claims must
be settled by the others once its heartbeat stops. At the end: no article posted twice,
none lost, and the feed fetched about once per poll interval, not once per node.

    python -m tests.torture_nodes --url postgresql://...     # on demand, longer
    tests/test_torture_nodes.py runs a short form in CI (AUTOPUBLISH_TEST_DATABASE_URL)
"""

from __future__ import annotations

import argparse
import random
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from tests.contract import CANARY
from tests.fakes import mastodon, webhook
from tests.fakes.base import FakeServer, wait_until
from tests.fakes.feed_server import FeedServer, Item, older_items
from tests.helpers import run_cli, write_config
from tests.torture import Platform, _channel_table, _start, tally

PLATFORMS = (
    Platform("hook", webhook.CONTRACT, lambda f: list(f.deliveries), False),  # type: ignore[attr-defined]
    Platform("social", mastodon.CONTRACT, lambda f: list(f.statuses), True),  # type: ignore[attr-defined]
)
FAULTS = ("server_error", "drop")
POLL_INTERVAL = 1.0


@dataclass
class NodesReport:
    nodes: int = 0
    articles: int = 0
    kills: int = 0
    starts: int = 0
    posts: int = 0
    duplicates: int = 0
    lost: list[str] = field(default_factory=list)
    held: int = 0
    unsettled_readable: list[str] = field(default_factory=list)
    baselines: int = 0
    fetches: int = 0
    seconds: float = 0.0
    posted_by: dict[str, int] = field(default_factory=dict)
    canary_found_in: list[str] = field(default_factory=list)

    @property
    def fetches_per_interval(self) -> float:
        return self.fetches / max(1.0, self.seconds / POLL_INTERVAL)

    def lines(self) -> list[str]:
        return [
            f"nodes: {self.nodes}, articles: {self.articles} x {len(PLATFORMS)} channels",
            f"kills (SIGKILL): {self.kills}, node starts: {self.starts}",
            f"posts: {self.posts}, duplicates: {self.duplicates}, lost: {len(self.lost)}",
            f"held for an editor (uncertain on the webhook): {self.held}",
            f"uncertain left on readable platforms: {len(self.unsettled_readable)}",
            f"baselines: {self.baselines}",
            (f"feed fetches: {self.fetches} in {self.seconds:.0f}s at a {POLL_INTERVAL:.0f}s interval "
             f"({self.fetches_per_interval:.2f} per interval; {self.nodes} would be once per node)"),
            f"posts per node: {', '.join(f'{n}: {c}' for n, c in sorted(self.posted_by.items()))}",
            f"canary secret found in: {', '.join(self.canary_found_in) or 'nowhere'}",
        ]


def _sql(url: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.execute(query, params)  # type: ignore[arg-type]
        return list(cursor.fetchall()) if cursor.description else []


def _settled(url: str, expected: int) -> bool:
    """Every article's deliveries exist (the last ones may still be unpolled) and none is open."""
    [(recorded,)] = _sql(url, "SELECT COUNT(*) FROM deliveries")
    if recorded < expected:
        return False
    [(busy,)] = _sql(url, "SELECT COUNT(*) FROM deliveries WHERE status IN ('queued', 'waiting', 'sending') "
                          "OR (status = 'uncertain' AND needs_editor = 0) OR (status = 'held' AND needs_editor = 0)")
    [(paused,)] = _sql(url, "SELECT COUNT(*) FROM channels WHERE paused = 1")
    return busy == 0 and paused == 0


def torture_nodes(workdir: Path, url: str, *, nodes: int = 3, rounds: int = 10, per_round: int = 10, fault_rate: float = 0.05,
                  seed: int = 1, settle_timeout: float = 90.0, say: Callable[[str], None] = print) -> NodesReport:
    rng = random.Random(seed)
    report = NodesReport(nodes=nodes)
    fakes = [p.case.make_fake() for p in PLATFORMS]
    with FeedServer(older_items(2), lifetime=900) as site:
        for fake in fakes:
            fake.start()
        try:
            env: dict[str, str] = {}
            for platform in PLATFORMS:
                env.update(platform.case.env)
            (workdir / ".env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
            tables = "".join(_channel_table(p, f) for p, f in zip(PLATFORMS, fakes, strict=True))
            settings = (f'database = "{url}"\nheartbeat = "1s"\npublish_timeout = "2s"\nretry_cap = "2s"\nmax_tries = 100\n'
                        'give_up_after = "1d"\nflood_threshold = 1000\ncheck_interval = "1h"')
            config = write_config(workdir / "autopublish.toml", f"{site.url}/feed/", channels=",".join(p.channel for p in PLATFORMS),
                                  extra=tables, settings=settings, max_age="off")
            config.write_text(config.read_text().replace('poll_interval = "5m"', f'poll_interval = "{POLL_INTERVAL:.0f}s"'))
            upgraded = run_cli(config, "db", "upgrade")
            assert upgraded.exit_code == 0, upgraded.output
            for fake in fakes:
                fake.chaos(fault_rate, FAULTS, random.Random(rng.random()))
            started = time.monotonic()
            fetched_before = len(site.statuses)
            daemons = [_start(workdir, config, i) for i in range(nodes)]  # every node at the same moment
            report.starts = nodes
            log_index = nodes
            assert wait_until(lambda: bool(_sql(url, "SELECT 1 FROM feeds WHERE baseline_at IS NOT NULL")), timeout=30), "no baseline"
            links: list[str] = []
            start = datetime.now(UTC) - timedelta(hours=2)
            try:
                for round_no in range(rounds):
                    for _ in range(per_round):
                        n = len(links)
                        link = f"https://jakberketahanan.example.go.id/nodes/a{n}z/"
                        links.append(link)
                        site.add(Item(f"Artikel simpul {n}", link, f"nodes-{n}", start + timedelta(seconds=n), ["Berita"],
                                      f"Ringkasan artikel nomor {n}."))
                    time.sleep(rng.uniform(1.0, 2.5))
                    victim = daemons[0]
                    victim.send_signal(signal.SIGKILL)
                    victim.wait(timeout=30)
                    report.kills += 1
                    daemons[0] = _start(workdir, config, log_index)
                    log_index += 1
                    report.starts += 1
                    say(f"round {round_no + 1}/{rounds}: {len(links)} articles so far, node killed and restarted")
                for fake in fakes:
                    fake.chaos(0.0, (), rng)
                deadline = time.monotonic() + settle_timeout
                expected = len(links) * len(PLATFORMS)
                while time.monotonic() < deadline and not _settled(url, expected):
                    _sql(url, "UPDATE deliveries SET next_attempt_at = %s WHERE status IN ('waiting', 'uncertain', 'queued')", time.time())
                    wait_until(lambda: _settled(url, expected), timeout=2)
                report.seconds = time.monotonic() - started
                report.fetches = len(site.statuses) - fetched_before
            finally:
                for daemon in daemons:
                    daemon.send_signal(signal.SIGTERM)
                for daemon in daemons:
                    try:
                        daemon.wait(timeout=60)
                    except subprocess.TimeoutExpired:
                        daemon.kill()
                        daemon.wait(timeout=10)
            _judge(report, workdir, config, url, links, fakes)
        finally:
            for fake in fakes:
                fake.stop()
    return report


def _judge(report: NodesReport, workdir: Path, config: Path, url: str, links: list[str], fakes: list[FakeServer]) -> None:
    report.articles = len(links)
    rows = {(channel, link): (status, reason) for channel, link, status, reason in _sql(
        url, "SELECT d.channel, a.link, d.status, d.reason FROM deliveries d JOIN articles a ON a.id = d.article_id")}
    [(report.baselines,)] = _sql(url, "SELECT COUNT(*) FROM events WHERE kind = 'baseline'")
    report.posted_by = dict(_sql(
        url, "SELECT claimed_by, COUNT(*) FROM deliveries WHERE status = 'sent' AND claimed_by IS NOT NULL GROUP BY claimed_by"))
    tally(report, rows, links, PLATFORMS, fakes)
    outputs = {
        "log": run_cli(config, "log", "--format", "json", "--limit", "100000").output,
        "nodes": run_cli(config, "nodes").output,
        "queue": run_cli(config, "queue").output,
    }
    for path in sorted(workdir.glob("daemon-*.log")):
        outputs[path.name] = path.read_bytes().decode("utf-8", "replace")
    report.canary_found_in = [name for name, text in outputs.items() if CANARY in text]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True, help="an EMPTY PostgreSQL database for the run")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--per-round", type=int, default=10)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    args = parser.parse_args()
    print(f"seed {args.seed}")
    with tempfile.TemporaryDirectory(prefix="autopublish-nodes-") as tmp:
        report = torture_nodes(Path(tmp), args.url, rounds=args.rounds, per_round=args.per_round, seed=args.seed, settle_timeout=300)
    for line in report.lines():
        print(line)
    for where in report.lost + report.unsettled_readable:
        print(f"  not settled: {where}")
    ok = not (report.duplicates or report.lost or report.unsettled_readable or report.canary_found_in) and report.baselines == 1
    print("PASS" if ok else "FAIL")
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
