"""Benchmark: poll N loopback feeds R times with autopublish's fetcher vs a naive baseline.

autopublish: one requests.Session, conditional GET (ETag/Last-Modified), parse only changed bodies.
baseline:    sequential feedparser.parse(url) of every feed each round, no conditional GET.

Prints wall time, CPU time and peak memory (RSS) of each, and their ratios, from the same run.
Numbers, not assertions. Usage: python bench/poll_feeds.py [--feeds 20] [--rounds 5] [--items 50]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def measure(mode: str, urls: list[str], rounds: int) -> dict[str, float]:
    import feedparser
    import requests

    from autopublish.feeds import fetch_feed, parse_feed

    start_wall, start_cpu = time.perf_counter(), time.process_time()
    parsed = 0
    if mode == "autopublish":
        session = requests.Session()
        states: dict[str, object] = {}
        for _ in range(rounds):
            for url in urls:
                result = fetch_feed(session, url, states.get(url))  # type: ignore[arg-type]
                states[url] = result.state
                if result.body is not None:
                    parsed += len(parse_feed(result.body, feed="bench", content_type=result.content_type, url=url).articles)
    else:
        for _ in range(rounds):
            for url in urls:
                parsed += len(feedparser.parse(url).entries)
    wall, cpu = time.perf_counter() - start_wall, time.process_time() - start_cpu
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"wall_s": wall, "cpu_s": cpu, "peak_rss_mb": peak_kb / 1024, "entries_parsed": parsed}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--feeds", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--items", type=int, default=50)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--urls", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, json.loads(args.urls), args.rounds)))
        return

    from tests.fakes.feed_server import FeedServer, Item

    now = datetime.now(UTC) - timedelta(days=1)
    servers = []
    for f in range(args.feeds):
        items = [Item(f"Artikel {f}-{i} tentang ketahanan kota", f"https://example.go.id/{f}/{i}/", f"g-{f}-{i}", now - timedelta(hours=i),
                      ["Berita", "Jakarta Berketahanan"], "Ringkasan " * 30, "<p>" + "Isi artikel panjang. " * 200 + "</p>")
                 for i in range(args.items)]
        servers.append(FeedServer(items, lifetime=600).start())
    urls = [f"{s.url}/feed/" for s in servers]
    results = {}
    try:
        for mode in ("baseline", "autopublish"):
            out = subprocess.run([sys.executable, __file__, "--child", mode, "--urls", json.dumps(urls), "--rounds", str(args.rounds)],
                                 capture_output=True, text=True, check=True, cwd=ROOT)
            results[mode] = json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        for server in servers:
            server.stop()
    print(f"{args.feeds} feeds x {args.items} items, {args.rounds} polls each (loopback)")
    print(f"{'':14}{'wall s':>10}{'CPU s':>10}{'peak MB':>10}{'entries':>10}")
    for mode in ("baseline", "autopublish"):
        r = results[mode]
        print(f"{mode:14}{r['wall_s']:>10.2f}{r['cpu_s']:>10.2f}{r['peak_rss_mb']:>10.1f}{r['entries_parsed']:>10}")
    b, a = results["baseline"], results["autopublish"]
    print(f"{'ratio a/b':14}{a['wall_s'] / b['wall_s']:>10.2f}{a['cpu_s'] / b['cpu_s']:>10.2f}{a['peak_rss_mb'] / b['peak_rss_mb']:>10.2f}")


if __name__ == "__main__":
    main()
