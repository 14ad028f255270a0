"""The torture run: a real daemon, four faulty platforms, SIGKILL again and again.

Articles arrive on a loopback feed while the real ``autopublish run`` process posts them
to four loopback platforms (Mastodon and Facebook can be read back; Telegram and a
webhook cannot). The fakes answer at random with 5xx, 429, an expired token, act and
drop the connection, or act and hang past the timeout; the daemon is killed with SIGKILL
at random moments and restarted, and paused channels are resumed as an admin would. At
the end nothing may be posted twice, nothing lost, every uncertain delivery on a
readable platform settled, and the canary secret nowhere.

    python -m tests.torture                 # the long form (on demand)
    python -m tests.torture --rounds 6      # shorter; tests/test_torture.py runs a short form in CI
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.contract import CANARY, ContractCase
from tests.fakes import facebook, mastodon, telegram, webhook
from tests.fakes.base import FakeServer, wait_until
from tests.fakes.feed_server import FeedServer, Item, older_items
from tests.helpers import ROOT, run_cli, write_config

FAULTS = ("server_error", "rate_limit", "auth", "drop", "hang")
OPEN = ("queued", "waiting", "sending")


@dataclass
class Platform:
    """One channel of the run: its contract case and where its fake keeps what was posted."""

    channel: str
    case: ContractCase
    records: Callable[[FakeServer], list[Any]]
    readable: bool


PLATFORMS = (
    Platform("social", mastodon.CONTRACT, lambda f: list(f.statuses), True),  # type: ignore[attr-defined]
    Platform("page", facebook.CONTRACT, lambda f: list(f.posts), True),  # type: ignore[attr-defined]
    Platform("chat", telegram.CONTRACT, lambda f: list(f.messages), False),  # type: ignore[attr-defined]
    Platform("hook", webhook.CONTRACT, lambda f: list(f.deliveries), False),  # type: ignore[attr-defined]
)


@dataclass
class Report:
    articles: int = 0
    kills: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    posts: int = 0
    duplicates: int = 0
    lost: list[str] = field(default_factory=list)
    held: int = 0
    unsettled_readable: list[str] = field(default_factory=list)
    canary_found_in: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        faults = ", ".join(f"{kind} {self.faults[kind]}" for kind in FAULTS)
        return [
            f"articles: {self.articles} x {len(PLATFORMS)} channels",
            f"faults injected: {sum(self.faults.values())} ({faults})",
            f"kills (SIGKILL): {self.kills}",
            f"posts: {self.posts}",
            f"duplicates: {self.duplicates}",
            f"lost: {len(self.lost)}",
            f"held for an editor (uncertain or paused, with a reason): {self.held}",
            f"uncertain left on readable platforms: {len(self.unsettled_readable)}",
            f"canary secret found in: {', '.join(self.canary_found_in) or 'nowhere'}",
        ]


def _toml_value(value: Any) -> str:
    return json.dumps(value) if not isinstance(value, bool) else ("true" if value else "false")


def _channel_table(platform: Platform, fake: FakeServer) -> str:
    options = {**platform.case.options(fake), "platform": platform.case.platform}
    if platform.case.platform == "facebook":
        options["rescrape"] = False
    body = "\n".join(f"{key} = {_toml_value(value)}" for key, value in options.items())
    return f"\n[channels.{platform.channel}]\n{body}\n"


def _db(workdir: Path) -> sqlite3.Connection:
    return sqlite3.connect(workdir / "queue" / "state.db", timeout=15)


def _start(workdir: Path, config: Path, log_index: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    log = (workdir / f"daemon-{log_index}.log").open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "autopublish", "--debug", "--config", str(config), "--env-file", str(workdir / ".env"), "run"],
        cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT,
    )


def _resume_paused(config: Path, workdir: Path) -> None:
    db = _db(workdir)
    try:
        paused = [row[0] for row in db.execute("SELECT name FROM channels WHERE paused = 1")]
    finally:
        db.close()
    for name in paused:
        run_cli(config, "resume", name)


def _settled(workdir: Path) -> bool:
    db = _db(workdir)
    try:
        busy = db.execute(
            "SELECT COUNT(*) FROM deliveries WHERE status IN ('queued', 'waiting', 'sending') "
            "OR (status = 'uncertain' AND needs_editor = 0) OR (status = 'held' AND needs_editor = 0)"
        ).fetchone()[0]
        paused = db.execute("SELECT COUNT(*) FROM channels WHERE paused = 1").fetchone()[0]
    finally:
        db.close()
    return busy == 0 and paused == 0


def _fast_forward(workdir: Path) -> None:
    """Time passes: backoffs and rate-limit waits (minutes, on real platforms) are over now."""
    db = _db(workdir)
    try:
        with db:
            db.execute("UPDATE deliveries SET next_attempt_at = ? WHERE status IN ('waiting', 'uncertain', 'queued')", (time.time(),))
    finally:
        db.close()


def torture(workdir: Path, *, rounds: int = 6, per_round: int = 3, fault_rate: float = 0.35, seed: int = 1,
            settle_timeout: float = 90.0, say: Callable[[str], None] = print) -> Report:
    rng = random.Random(seed)
    report = Report()
    fakes = [p.case.make_fake() for p in PLATFORMS]
    with FeedServer(older_items(2)) as site:
        for fake in fakes:
            fake.start()
            fake.hang_seconds = 2.5  # past the 1 s publish timeout
        try:
            env = {}
            for platform in PLATFORMS:
                env.update(platform.case.env)
            (workdir / ".env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
            tables = "".join(_channel_table(p, f) for p, f in zip(PLATFORMS, fakes, strict=True))
            settings = ('publish_timeout = "1s"\nretry_cap = "3s"\nmax_tries = 100\ngive_up_after = "1d"\n'
                        "flood_threshold = 1000\ncheck_interval = \"1h\"")
            config = write_config(workdir / "autopublish.toml", f"{site.url}/feed/", channels=",".join(p.channel for p in PLATFORMS),
                                  extra=tables, settings=settings, max_age="off")
            config.write_text(config.read_text().replace('poll_interval = "5m"', 'poll_interval = "1s"'))
            assert run_cli(config, "run", "--once").exit_code == 0  # the baseline: existing entries recorded
            for fake in fakes:
                fake.chaos(fault_rate, FAULTS, random.Random(rng.random()))
            links: list[str] = []
            start = datetime.now(UTC) - timedelta(hours=2)
            for round_no in range(rounds):
                for _ in range(per_round):
                    n = len(links)
                    link = f"https://jakberketahanan.example.go.id/torture/a{n}z/"
                    links.append(link)
                    site.add(Item(f"Artikel uji {n}", link, f"torture-{n}", start + timedelta(minutes=n), ["Berita", "Kegiatan"],
                                  f"Ringkasan artikel uji nomor {n}."))
                daemon = _start(workdir, config, round_no)
                time.sleep(rng.uniform(1.0, 3.5))
                daemon.send_signal(signal.SIGKILL)
                daemon.wait(timeout=30)
                report.kills += 1
                if round_no % 2 == 1:
                    _resume_paused(config, workdir)
                say(f"round {round_no + 1}/{rounds}: {len(links)} articles so far, killed")
            for fake in fakes:
                fake.chaos(0.0, (), rng)
            _resume_paused(config, workdir)
            daemon = _start(workdir, config, rounds)
            try:
                deadline = time.monotonic() + settle_timeout
                while time.monotonic() < deadline and not _settled(workdir):
                    _fast_forward(workdir)
                    _resume_paused(config, workdir)
                    wait_until(lambda: _settled(workdir), timeout=3)
            finally:
                daemon.send_signal(signal.SIGTERM)
                try:
                    daemon.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    daemon.kill()
                    daemon.wait(timeout=10)
            _judge(report, workdir, config, links, fakes)
        finally:
            for fake in fakes:
                fake.stop()
    return report


def tally(report: Any, rows: dict[tuple[str, str], tuple[str, str]], links: list[str], platforms: tuple[Platform, ...],
          fakes: list[FakeServer]) -> None:
    """Count what each platform fake received against the store's rows (channel, link) -> (status, reason).

    Posted twice is a duplicate; sent and posted once is right; uncertain or held with a reason and
    posted at most once waits for an editor (on a readable platform, an uncertain one is unsettled);
    anything else is lost.
    """
    for platform, fake in zip(platforms, fakes, strict=True):
        records = [json.dumps(record, ensure_ascii=False, default=repr) for record in platform.records(fake)]
        report.posts += len(records)
        for link in links:
            seen = sum(1 for text in records if link in text)
            report.duplicates += max(0, seen - 1)
            status, reason = rows.get((platform.channel, link), ("missing", ""))
            where = f"{platform.channel} {link} ({status}, posted {seen}x)"
            if status == "sent" and seen == 1:
                continue
            if status in ("uncertain", "held") and reason and seen <= 1:
                report.held += 1
                if platform.readable and status == "uncertain":
                    report.unsettled_readable.append(where)
                continue
            report.lost.append(where)


def _judge(report: Report, workdir: Path, config: Path, links: list[str], fakes: list[FakeServer]) -> None:
    report.articles = len(links)
    for fake in fakes:
        report.faults.update(fake.faults_fired)
    db = _db(workdir)
    try:
        rows = {
            (channel, link): (status, reason)
            for channel, link, status, reason in db.execute(
                "SELECT d.channel, a.link, d.status, d.reason FROM deliveries d JOIN articles a ON a.id = d.article_id"
            )
        }
    finally:
        db.close()
    tally(report, rows, links, PLATFORMS, fakes)
    outputs = {
        "log": run_cli(config, "log", "--format", "json", "--limit", "100000").output,
        "queue": run_cli(config, "queue").output,
        "check": run_cli(config, "check", "--offline").output,
        **_web_pages(config, workdir),
    }
    for path in sorted(workdir.rglob("*")):
        if path.is_file() and path.suffix != ".env" and path.name != ".env":
            outputs[str(path.relative_to(workdir))] = path.read_bytes().decode("utf-8", "replace")
    report.canary_found_in = [name for name, text in outputs.items() if CANARY in text]


def _web_pages(config_path: Path, workdir: Path) -> dict[str, str]:
    """Every page of the editors' web page over the torture's state, as an editor sees it."""
    import re

    from werkzeug.security import generate_password_hash

    from autopublish.config import load_config
    from autopublish.web.app import create_app

    password = "torture-editor-password"
    config_path.write_text(config_path.read_text() + f'\n[[web.users]]\nname = "ed"\npassword_hash = "{generate_password_hash(password)}"\n')
    env = dict(line.split("=", 1) for line in (workdir / ".env").read_text().splitlines() if "=" in line)
    app = create_app(load_config(config_path, env, cwd=workdir))
    client = app.test_client()
    login = client.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf" value="([^"]+)"', login)
    client.post("/login", data={"name": "ed", "password": password, "csrf": csrf.group(1) if csrf else ""})
    pages = {}
    for path in ("/", "/queue", "/channels", "/activity", "/?status=uncertain", "/?status=held"):
        response = client.get(path)
        assert response.status_code == 200, f"web page {path} answered {response.status_code}"
        pages[f"web {path}"] = response.get_data(as_text=True)
    return pages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--per-round", type=int, default=4)
    parser.add_argument("--fault-rate", type=float, default=0.35)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    args = parser.parse_args()
    print(f"seed {args.seed}")
    with tempfile.TemporaryDirectory(prefix="autopublish-torture-") as tmp:
        report = torture(Path(tmp), rounds=args.rounds, per_round=args.per_round, fault_rate=args.fault_rate, seed=args.seed,
                         settle_timeout=300)
    for line in report.lines():
        print(line)
    for where in report.lost + report.unsettled_readable:
        print(f"  not settled: {where}")
    ok = not (report.duplicates or report.lost or report.unsettled_readable or report.canary_found_in)
    print("PASS" if ok else "FAIL")
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
