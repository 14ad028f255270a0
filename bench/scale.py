"""Benchmark at scale, side by side in one run: python bench/scale.py [--feeds 1000] [--items 20]

1. naive:  a sequential feedparser.parse(url) of every loopback feed (one cycle);
2. first:  autopublish's first poll cycle over the same feeds: everything fetched, parsed
           and recorded (the store already holds --deliveries rows, default 1,000,000);
3. steady: the next cycle after --changed (default 5%) of the feeds got a new post;
4. head of line: a Mastodon fake that hangs after taking a post beside an outbox channel:
           seconds until the outbox channel's post is written.

The feeds are WordPress-style RSS (20 items, about 97 KB each, validators at one-second
resolution) served by a separate asyncio process on one loopback port per feed, so each
feed is its own host as in real life. Each measured part runs in a fresh child process;
peak RSS is that child's. Numbers and ratios, never pass/fail.
"""

from __future__ import annotations

import argparse
import asyncio
import email.utils
import hashlib
import json
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


# --- the feed server (its own process) ---------------------------------------------------

class _Feed:
    def __init__(self, index: int, items: int) -> None:
        self.index = index
        self.count = items
        self.extra = 0
        self.render()

    def render(self) -> None:
        from tests.fakes.feed_server import Item, render_rss

        # As WordPress does: post n keeps its date when newer posts arrive; the feed shows the newest
        # ``count`` posts, and Last-Modified is the newest post's date.
        start = datetime(2026, 10, 1, tzinfo=UTC)
        newest = self.extra + self.count - 1
        items = [Item(f"Artikel {self.index}-{n} tentang ketahanan kota", f"https://site{self.index}.example.org/{n}/", f"g-{self.index}-{n}",
                      start + timedelta(hours=n), ["Berita", "Jakarta Berketahanan"], "Ringkasan " * 30,
                      "<p>" + "Isi artikel panjang. " * 200 + "</p>")
                 for n in range(newest, self.extra - 1, -1)]
        self.body = render_rss(items)
        self.last_modified = email.utils.format_datetime(start + timedelta(hours=newest), usegmt=True)
        self.etag = '"' + hashlib.md5(self.last_modified.encode()).hexdigest() + '"'


async def _serve(feeds: list[_Feed]) -> None:
    async def handle(feed: _Feed, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
                close = headers.get("connection", "").lower() == "close" or lines[0].endswith("HTTP/1.0")
                date = email.utils.formatdate(usegmt=True)
                common = f"Date: {date}\r\nETag: {feed.etag}\r\nLast-Modified: {feed.last_modified}\r\n"
                if headers.get("if-none-match") == feed.etag or headers.get("if-modified-since") == feed.last_modified:
                    writer.write(f"HTTP/1.1 304 Not Modified\r\n{common}Content-Length: 0\r\n\r\n".encode())
                else:
                    writer.write(f"HTTP/1.1 200 OK\r\n{common}Content-Type: application/rss+xml; charset=UTF-8\r\n"
                                 f"Content-Length: {len(feed.body)}\r\n{'Connection: close' + chr(13) + chr(10) if close else ''}\r\n".encode())
                    writer.write(feed.body)
                await writer.drain()
                if close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    ports = []
    for feed in feeds:
        server = await asyncio.start_server(lambda r, w, f=feed: handle(f, r, w), "127.0.0.1", 0, backlog=64)
        ports.append(server.sockets[0].getsockname()[1])
    print("ready " + json.dumps(ports), flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := (await reader.readline()).decode().strip():
        if line.startswith("change "):
            share = float(line.split()[1])
            step = max(1, round(1 / share))
            for feed in feeds[::step]:
                feed.extra += 1
                feed.render()
            print("changed", flush=True)


# --- measured parts (each in a fresh child) -----------------------------------------------

def _rss_mb() -> float:
    """This process's own peak RSS. Linux's ru_maxrss starts from the parent's RSS at fork (it survives
    exec), which here is the bench after seeding the store; VmHWM is the peak of this process's memory alone."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def naive(urls: list[str]) -> dict[str, float]:
    import feedparser

    started = time.perf_counter()
    entries = sum(len(feedparser.parse(url).entries) for url in urls)
    return {"seconds": time.perf_counter() - started, "entries": entries, "peak_mb": _rss_mb()}


def _config(tmp: Path, urls: list[str]) -> Path:
    feeds = "".join(f'[feeds.f{i}]\nurl = "{url}"\nchannels = ["outbox"]\n\n' for i, url in enumerate(urls))
    path = tmp / "autopublish.toml"
    path.write_text(f'[settings]\nstate_dir = "{tmp / "queue"}"\nfirst_run = "skip"\n\n{feeds}'
                    '[channels.outbox]\nplatform = "outbox"\ntemplate = "{title} {link}"\n', encoding="utf-8")
    return path


def seed(state_dir: Path, deliveries: int) -> None:
    """A store that already holds ``deliveries`` sent deliveries (5 channels per article)."""
    from autopublish.store import Store

    Store(state_dir).close()  # schema
    db = sqlite3.connect(state_dir / "state.db")
    db.execute("PRAGMA journal_mode = WAL")
    now = time.time() - 86400 * 30
    articles = deliveries // 5
    with db:
        db.executemany("INSERT INTO articles (id, feed, key, canonical, link, title, published, first_seen_at, data) VALUES (?,?,?,?,?,?,?,?,?)",
                       ((i, "archive", f"old-{i}", f"archive.example.org/{i}", f"https://archive.example.org/{i}/", f"Old {i}", now - i, now - i, "{}")
                        for i in range(1, articles + 1)))
        db.executemany("INSERT INTO deliveries (article_id, channel, status, tries, created_at, updated_at, sent_at, reason) VALUES (?,?,?,?,?,?,?,?)",
                       ((i // 5 + 1, f"archive{i % 5}", "sent", 1, now, now, now + i * 0.001, "Posted") for i in range(articles * 5)))
    db.close()


def cycles(urls: list[str], state: str, changed: float) -> dict[str, float]:
    from autopublish.app import open_app
    from autopublish.config import load_config

    tmp = Path(state)
    app = open_app(load_config(_config(tmp, urls), {}, cwd=tmp))
    start_mb = _rss_mb()
    started = time.perf_counter()
    first = app.pipeline.poll_all()
    first_s = time.perf_counter() - started
    print("change", changed, flush=True)  # the parent asks the feed server to change some feeds
    sys.stdin.readline()
    started = time.perf_counter()
    steady = app.pipeline.poll_all()
    steady_s = time.perf_counter() - started
    app.close()
    return {"first_s": first_s, "steady_s": steady_s, "first_ok": sum(r.ok for r in first), "steady_changed": sum(r.changed for r in steady),
            "steady_new": sum(r.new for r in steady), "peak_mb": _rss_mb(), "start_mb": start_mb}


def head_of_line() -> dict[str, float]:
    from autopublish.app import open_app
    from autopublish.config import load_config
    from tests.fakes.feed_server import FeedServer, older_items, seed_item
    from tests.fakes.mastodon import FakeMastodon

    with tempfile.TemporaryDirectory() as name, FeedServer(older_items(3), lifetime=120) as site, FakeMastodon(lifetime=120) as fake:
        tmp = Path(name)
        fake.hang_seconds = 60.0
        path = tmp / "autopublish.toml"
        path.write_text(f'[settings]\nstate_dir = "{tmp / "queue"}"\npublish_timeout = "2m"\n\n[feeds.site]\nurl = "{site.url}/feed/"\n'
                        'channels = ["social", "outbox"]\n\n[channels.social]\nplatform = "mastodon"\n'
                        f'instance = "{fake.url}"\naccess_token = "${{BENCH_TOKEN}}"\n\n[channels.outbox]\nplatform = "outbox"\ntemplate = "{{title}}"\n',
                        encoding="utf-8")
        app = open_app(load_config(path, {"BENCH_TOKEN": "t0ken"}, cwd=tmp))
        app.pipeline.poll_all()
        site.add(seed_item())
        app.pipeline.poll_all()
        fake.script("hang")
        outbox = tmp / "queue" / "outbox" / "outbox.jsonl"
        started = time.perf_counter()
        app.pipeline.deliver_due(wait=False)
        while not outbox.exists() and time.perf_counter() - started < 60:
            time.sleep(0.01)
        seconds = time.perf_counter() - started
        hanging = app.pipeline.lanes.busy("social")
        fake.stop()
        app.pipeline.lanes.wait(10)
        app.close()
    return {"seconds": seconds, "other_still_hanging": float(hanging)}


def _child(*args: str, stdin: str | None = None) -> dict[str, float]:
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=True, cwd=ROOT, input=stdin)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--feeds", type=int, default=1000)
    parser.add_argument("--items", type=int, default=20)
    parser.add_argument("--changed", type=float, default=0.05)
    parser.add_argument("--deliveries", type=int, default=1_000_000)
    parser.add_argument("--part", help=argparse.SUPPRESS)
    parser.add_argument("--arg", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.part == "serve":
        asyncio.run(_serve([_Feed(i, args.items) for i in range(args.feeds)]))
        return
    if args.part:
        urls = json.loads(args.arg or "[]")
        result = {"naive": lambda: naive(urls), "hol": head_of_line}[args.part]() if args.part != "cycles" else None
        if args.part == "cycles":
            state = os.environ["BENCH_STATE"]
            result = cycles(urls, state, args.changed)
        print(json.dumps(result), flush=True)
        return

    server = subprocess.Popen([sys.executable, __file__, "--part", "serve", "--feeds", str(args.feeds), "--items", str(args.items)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert server.stdin is not None and server.stdout is not None
    try:
        ports = json.loads(server.stdout.readline().split(" ", 1)[1])
        urls = [f"http://127.0.0.1:{port}/feed/" for port in ports]
        size = len(_Feed(0, args.items).body)
        print(f"{args.feeds} feeds x {args.items} items ({size / 1024:.0f} KB each) on loopback; {os.cpu_count()} cores", flush=True)
        with tempfile.TemporaryDirectory() as state:
            started = time.perf_counter()
            seed(Path(state) / "queue", args.deliveries)
            print(f"store seeded with {args.deliveries:,} deliveries in {time.perf_counter() - started:.0f} s", flush=True)
            base = _child("--part", "naive", "--arg", json.dumps(urls))
            print(f"naive feedparser.parse(url), sequential: {base['seconds']:.1f} s, {base['entries']:.0f} entries, peak {base['peak_mb']:.0f} MB",
                  flush=True)
            child = subprocess.Popen([sys.executable, __file__, "--part", "cycles", "--arg", json.dumps(urls), "--changed", str(args.changed)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT, env={**os.environ, "BENCH_STATE": state})
            assert child.stdin is not None and child.stdout is not None
            child.stdout.readline()  # "change ..." after the first cycle
            server.stdin.write(f"change {args.changed}\n")
            server.stdin.flush()
            server.stdout.readline()
            child.stdin.write("go\n")
            child.stdin.flush()
            result = json.loads(child.stdout.read().strip().splitlines()[-1])
            child.wait()
        hol = _child("--part", "hol")
    finally:
        server.stdin.close()
        server.wait(10)
    print()
    print(f"{'':34}{'seconds':>9}{'vs naive':>10}")
    print(f"{'naive (sequential feedparser)':34}{base['seconds']:>9.2f}{1.0:>9.1f}x")
    print(f"{'first cycle (all parsed, stored)':34}{result['first_s']:>9.2f}{base['seconds'] / result['first_s']:>9.1f}x")
    print(f"{'steady cycle (' + format(args.changed, '.0%') + ' changed)':34}{result['steady_s']:>9.2f}{base['seconds'] / result['steady_s']:>9.1f}x")
    print(f"peak RSS: autopublish {result['peak_mb']:.0f} MB ({result['start_mb']:.0f} MB before the first cycle; naive {base['peak_mb']:.0f} MB); "
          f"feeds read {result['first_ok']:.0f}, changed in steady cycle {result['steady_changed']:.0f}, new articles {result['steady_new']:.0f}")
    print(f"head of line: the outbox post went out {hol['seconds']:.2f} s after the sweep, "
          f"while Mastodon was {'still hanging' if hol['other_still_hanging'] else 'done'}")


if __name__ == "__main__":
    main()
