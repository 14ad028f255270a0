"""Benchmark: deliveries per second with 1, 2 and 3 nodes on one PostgreSQL.

Each run: a fresh database, ``autopublish db upgrade``, a baseline, then A new articles for
C webhook channels on a loopback receiver that takes L seconds per request (a real
platform's round trip), and N ``autopublish run`` processes. The rate is counted from
the first claim to the last post, read from the store, so process start-up is left out.
One node posts for a channel at a time (its order and pacing hold), so nodes add speed
across channels, not within one.

Numbers, not assertions. Usage:
    python bench/nodes.py --url postgresql://user@127.0.0.1:5432/postgres [--articles 40] [--channels 24] [--latency 0.02]
(--url: a server where the user may CREATE DATABASE; bash .ci/run's test cluster will do.)
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def run(nodes: int, admin_url: str, *, articles: int, channels: int, latency: float) -> dict[str, float]:
    import psycopg

    from tests import conftest
    from tests.contract import CANARY
    from tests.fakes.feed_server import FeedServer, Item, older_items
    from tests.fakes.webhook import WebhookFake
    from tests.helpers import run_cli, write_config

    class SlowReceiver(WebhookFake):
        """Takes ``latency`` seconds per request, concurrently (the fake's own lock is not held meanwhile)."""

        def _serve(self, handler: BaseHTTPRequestHandler) -> None:
            time.sleep(latency)
            super()._serve(handler)

    conftest.PG_URL = admin_url
    with tempfile.TemporaryDirectory(prefix="autopublish-bench-") as tmp, conftest.fresh_postgres_database() as url, \
            FeedServer(older_items(2), lifetime=3600) as site, SlowReceiver(lifetime=3600) as receiver:
        workdir = Path(tmp)
        (workdir / ".env").write_text(f"WEBHOOK_SECRET={CANARY}\n")
        names = [f"hook{i}" for i in range(channels)]
        tables = "".join(f'\n[channels.{name}]\nplatform = "webhook"\nurl = "{receiver.hook_url}"\nsecret = "${{WEBHOOK_SECRET}}"\n'
                         for name in names)
        config = write_config(workdir / "autopublish.toml", f"{site.url}/feed/", channels=",".join(names), extra=tables, max_age="off",
                              settings=f'database = "{url}"\nheartbeat = "2s"\nflood_threshold = 100000\ncheck_interval = "1h"')
        config.write_text(config.read_text().replace('poll_interval = "5m"', 'poll_interval = "2s"'))
        assert run_cli(config, "db", "upgrade").exit_code == 0
        assert run_cli(config, "run", "--once").exit_code == 0  # the baseline
        start = datetime.now(UTC) - timedelta(hours=1)
        for n in range(articles):
            site.add(Item(f"Artikel {n}", f"https://example.go.id/bench/{n}/", f"bench-{n}", start + timedelta(seconds=n), ["Berita"]))
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        daemons = [subprocess.Popen([sys.executable, "-m", "autopublish", "--config", str(config), "--env-file", str(workdir / ".env"), "run"],
                                    cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(nodes)]
        total = articles * channels
        try:
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                with psycopg.connect(url, autocommit=True) as conn:
                    row = conn.execute("SELECT COUNT(*) FROM deliveries WHERE status = 'sent'").fetchone()
                if row and row[0] >= total:
                    break
                time.sleep(0.5)
        finally:
            for daemon in daemons:
                daemon.send_signal(signal.SIGTERM)
            for daemon in daemons:
                daemon.wait(timeout=120)
        with psycopg.connect(url, autocommit=True) as conn:
            sent, first, last = conn.execute(
                "SELECT COUNT(*), MIN(first_try_at), MAX(sent_at) FROM deliveries WHERE status = 'sent' AND claimed_by IS NOT NULL").fetchone() or (0, 0, 0)
            by_node = conn.execute("SELECT COUNT(DISTINCT claimed_by) FROM deliveries WHERE status = 'sent'").fetchone()
        seconds = max(1e-6, float(last or 0) - float(first or 0))
        return {"nodes": nodes, "deliveries": float(sent), "seconds": seconds, "per_second": sent / seconds,
                "posting_nodes": float(by_node[0] if by_node else 0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default=os.environ.get("AUTOPUBLISH_TEST_DATABASE_URL", ""))
    parser.add_argument("--articles", type=int, default=40)
    # Many channels and a quick receiver, so one node is bound by its CPU (the case more nodes help):
    # with few channels one node already posts to all of them at once, one lane each.
    parser.add_argument("--channels", type=int, default=24)
    parser.add_argument("--latency", type=float, default=0.02, help="seconds the receiver takes per post")
    args = parser.parse_args()
    if not args.url:
        parser.error("give --url (or set AUTOPUBLISH_TEST_DATABASE_URL)")
    print(f"{args.articles} articles x {args.channels} webhook channels, {args.latency:.2f}s per post on the receiver")
    print(f"{'nodes':>5} {'deliveries':>10} {'seconds':>8} {'deliveries/s':>13} {'nodes that posted':>18}")
    results = []
    for nodes in (1, 2, 3):
        result = run(nodes, args.url, articles=args.articles, channels=args.channels, latency=args.latency)
        results.append(result)
        print(f"{nodes:>5} {result['deliveries']:>10.0f} {result['seconds']:>8.1f} {result['per_second']:>13.1f} {result['posting_nodes']:>18.0f}")
    base = results[0]["per_second"]
    print("speed-up over one node: " + ", ".join(f"{r['nodes']:.0f} nodes {r['per_second'] / base:.2f}x" for r in results))


if __name__ == "__main__":
    main()
