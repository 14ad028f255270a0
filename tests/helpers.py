"""Shared test helpers: write a config, run the CLI in-process, read the outbox, record the alerts sent."""

from __future__ import annotations

import io
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner, Result
from PIL import Image

from autopublish.cli import cli
from autopublish.store import Store

ROOT = Path(__file__).resolve().parent.parent
def database_at(database: Path | str, revision: str, *statements: str) -> None:
    """Bring a new store database only to the Alembic ``revision`` (an older autopublish's), then run ``statements`` on it."""
    from alembic import command

    from autopublish.store.connection import Database
    from autopublish.store.migrations import _config

    db = Database(database)
    try:
        with db.tx() as conn:
            command.upgrade(_config(conn), revision)
            for statement in statements:
                conn.exec_driver_sql(statement)
    finally:
        db.close()


def run_together(work: list[Callable[[], None]]) -> list[BaseException]:
    """Run each callable in its own thread, all released at once; the exceptions they raised."""
    start = threading.Barrier(len(work))
    errors: list[BaseException] = []

    def run(job: Callable[[], None]) -> None:
        start.wait(timeout=30)
        try:
            job()
        except BaseException as exc:  # reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(job,)) for job in work]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a job never finished"
    return errors


# A publisher's (connect, read) timeouts against a loopback fake: a scripted "hang" ends after one
# second, and a loaded machine (0.5 s read timeout: one timeout seen under two suites at once) still answers in time.
PUBLISH_TIMEOUT = (1.0, 1.0)


def sqlite_of(store: Store) -> sqlite3.Connection:
    """The SQLite connection under a store (one, shared), for tests that damage or constrain it."""
    with store.db.read() as conn:
        raw = conn.connection.driver_connection
    assert isinstance(raw, sqlite3.Connection)
    return raw


def write_config(path: Path, feed_url: str, *, extra: str = "", settings: str = "", channels: str = "outbox",
                 first_run: str = "skip", max_age: str = "3d") -> Path:
    path.write_text(
        f"""
[settings]
state_dir = "{path.parent / 'queue'}"
poll_interval = "5m"
first_run = "{first_run}"
max_age = "{max_age}"
retry_base = "1s"
reconcile_after = "0s"
sweep_interval = "1s"
{settings}

[feeds.site]
url = "{feed_url}"
channels = [{', '.join(f'"{c}"' for c in channels.split(','))}]

[channels.outbox]
platform = "outbox"
template = "{{title}}\\n\\n{{summary}}\\n\\n{{link}}\\n\\n{{hashtags}}"
{extra}
""",
        encoding="utf-8",
    )
    return path


def run_cli(config: Path, *args: str, env: dict[str, str] | None = None, input: str | None = None) -> Result:
    runner = CliRunner()
    return runner.invoke(cli, ["--config", str(config), "--env-file", str(config.parent / ".env"), *args], env=env, catch_exceptions=False,
                         input=input)


def outbox_lines(config: Path, channel: str = "outbox") -> list[dict]:
    path = config.parent / "queue" / "outbox" / f"{channel}.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def stop_daemon(daemon: subprocess.Popen, log: Path, *, timeout: float = 60.0) -> None:
    """SIGTERM a daemon started by autopublish_process(output=log), killing it if it has not stopped within
    ``timeout``; its log's tail is printed (pytest shows it when the test fails). The caller checks returncode."""
    daemon.send_signal(signal.SIGTERM)
    try:
        daemon.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pass
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait(timeout=10)
        print(log.read_text(errors="replace")[-4000:])


def autopublish_process(config: Path, *args: str, env: dict[str, str] | None = None, output: Path | None = None,
                        **kwargs: object) -> subprocess.Popen:
    """A real autopublish process (the console entry point via python -m).

    Its output is piped, or written to ``output`` for a long-running daemon (a pipe that
    nobody reads could fill up and stall it).
    """
    full_env = {**os.environ, **(env or {})}
    full_env["PYTHONPATH"] = str(ROOT) + os.pathsep + full_env.get("PYTHONPATH", "")
    sink: object = output.open("ab") if output is not None else subprocess.PIPE
    return subprocess.Popen([sys.executable, "-m", "autopublish", "--config", str(config), "--env-file", str(config.parent / ".env"), *args],
                            cwd=config.parent, env=full_env, stdout=sink,
                            stderr=subprocess.STDOUT if output is not None else subprocess.PIPE, **kwargs)  # type: ignore[call-overload]


def noise_image(width: int, height: int, fmt: str = "PNG", mode: str = "RGB", seed: int = 1) -> bytes:
    """Random pixels: they do not compress, so the file is big (like a detailed photo)."""
    rng = random.Random(seed)
    picture = Image.frombytes(mode, (width, height), rng.randbytes(width * height * len(mode)))
    buffer = io.BytesIO()
    picture.save(buffer, fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def baseline_done(state_dir: Path, feed: str = "site") -> bool:
    """The feed's first poll (its baseline) is recorded in the SQLite store under ``state_dir``; read by a daemon's tester."""
    try:
        db = sqlite3.connect(state_dir / "state.db")
        try:
            row = db.execute("SELECT baseline_at FROM feeds WHERE name = ?", (feed,)).fetchone()
        finally:
            db.close()
    except sqlite3.Error:
        return False
    return bool(row and row[0])


class AlertRecorder:
    """A notifier that keeps every problem raised, as (key, message), for a test to read."""

    def __init__(self) -> None:
        self.problems: list[tuple[str, str]] = []

    def problem(self, key: str, message: str) -> None:
        self.problems.append((key, message))

    def resolved(self, key: str, message: str) -> None:
        return None


def free_port() -> int:
    """A loopback port nobody listens on, for a server a test starts later (a daemon's metrics or push listener).

    Taken below Linux's ephemeral range (32768-60999), which the kernel hands to outgoing
    connections: a port from bind(0) can be taken by another test's client before our server binds it.
    """
    for _ in range(200):
        port = random.randint(20000, 32000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free loopback port between 20000 and 32000")


class Clock:
    """A clock a test moves by hand (assign ``now``); it starts at ``now``, else at the real time."""

    def __init__(self, now: float | None = None) -> None:
        self.now = time.time() if now is None else now

    def __call__(self) -> float:
        return self.now
