"""Alerts, metrics and JSON logs of a real autopublish process, against loopback fakes.

Nothing of ours is patched: the daemon is a real process (tests.helpers.autopublish_process),
the platforms are the wire fakes in tests/fakes, and the e-mail goes to a tiny SMTP server
written here on 127.0.0.1.
"""

from __future__ import annotations

import base64
import json
import signal
import socketserver
import sqlite3
import subprocess
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests

from tests.contract import CANARY
from tests.fakes.base import wait_until
from tests.fakes.facebook import FakeGraph
from tests.fakes.feed_server import FeedServer, Item, older_items, seed_item
from tests.helpers import autopublish_process, baseline_done, free_port, outbox_lines, run_cli, write_config

FACEBOOK = """
[channels.facebook]
platform = "facebook"
page_id = "{page_id}"
access_token = "${{FACEBOOK_PAGE_TOKEN}}"
api_base = "{url}"
rescrape = false
template = "{{title}}"
"""

OPS = """
[channels.ops]
platform = "outbox"
"""

SMTP_CANARY = "SMTP-CANARY-pw-5b4a3c2d"


# --- helpers ----------------------------------------------------------------------------


def _config(tmp_path: Path, site: FeedServer, *, channels: str, extra: str, settings: str = "") -> Path:
    config = write_config(tmp_path / "autopublish.toml", f"{site.url}/feed/", channels=channels, extra=extra, settings=settings)
    config.write_text(config.read_text().replace('poll_interval = "5m"', 'poll_interval = "1s"'))
    (tmp_path / ".env").write_text(f"FACEBOOK_PAGE_TOKEN={CANARY}\nSMTP_PASSWORD={SMTP_CANARY}\nWEBHOOK_SECRET={CANARY}\n")
    return config


def _deliveries(tmp_path: Path) -> Counter[tuple[str, str]]:
    db = sqlite3.connect(tmp_path / "queue" / "state.db")
    try:
        return Counter({(c, s): n for c, s, n in db.execute("SELECT channel, status, COUNT(*) FROM deliveries GROUP BY channel, status")})
    finally:
        db.close()


def _stop(daemon: subprocess.Popen) -> tuple[str, str]:
    """SIGTERM, then kill; the process's (stdout, stderr)."""
    if daemon.poll() is None:
        daemon.send_signal(signal.SIGTERM)
    try:
        out, err = daemon.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        daemon.kill()
        out, err = daemon.communicate(timeout=10)
    return out.decode(errors="replace"), err.decode(errors="replace")


def _fresh_item(n: int) -> Item:
    return Item(
        title=f"Berita baru nomor {n}",
        link=f"https://jakberketahanan.example.go.id/2026/11/28/berita-baru-{n}/",
        guid=f"https://jakberketahanan.example.go.id/?p={5000 + n}",
        published=datetime.now(UTC) - timedelta(minutes=10 - n),
        categories=["Berita"],
        summary=f"Ringkasan berita baru {n}.",
    )


def _polls(site: FeedServer) -> int:
    return len(site.statuses)


# --- one alert per problem, one "resolved", the held post posted once -----------------------


def test_token_expiry_alerts_once_resolves_once_and_the_held_post_goes_out_once(tmp_path):
    with FeedServer(older_items(3)) as site, FakeGraph() as fake:
        config = _config(tmp_path, site, channels="facebook",
                         extra=FACEBOOK.format(page_id=fake.page_id, url=fake.url) + OPS + '\n[alerts]\nchannels = ["ops"]\nrepeat = "24h"\n')
        daemon = autopublish_process(config, "run")
        try:
            assert wait_until(lambda: baseline_done(tmp_path / "queue"), timeout=20), "no baseline"
            fake.expire_token()
            site.add(seed_item())
            assert wait_until(lambda: len(outbox_lines(config, "ops")) >= 1, timeout=20), "no alert"
            # The daemon keeps polling and sweeping; the problem is still open, but no second alert.
            polls = _polls(site)
            assert wait_until(lambda: _polls(site) >= polls + 3, timeout=20)
            alerts = outbox_lines(config, "ops")
            assert len(alerts) == 1, alerts
            assert "paused" in alerts[0]["text"] and "facebook" in alerts[0]["text"]
            assert fake.feed_posts == []
            assert _deliveries(tmp_path)[("facebook", "held")] == 1

            # The admin reconnects the Page and resumes the channel while the daemon runs.
            fake.reset_token()
            result = run_cli(config, "resume", "facebook")
            assert result.exit_code == 0, result.output
            assert wait_until(lambda: len(fake.feed_posts) == 1, timeout=20), "the held post was not sent"
            assert wait_until(lambda: len(outbox_lines(config, "ops")) == 2, timeout=20), "no resolved message"
            polls = _polls(site)
            assert wait_until(lambda: _polls(site) >= polls + 2, timeout=20)  # more sweeps: nothing more is sent
        finally:
            _, err = _stop(daemon)
        assert daemon.returncode == 0, err[-2000:]
        alerts = outbox_lines(config, "ops")
        assert len(alerts) == 2, alerts
        assert alerts[1]["text"].startswith("autopublish: resolved:") and "facebook" in alerts[1]["text"]
        assert len(fake.feed_posts) == 1
        assert _deliveries(tmp_path)[("facebook", "sent")] == 1
        for line in alerts:
            assert CANARY not in json.dumps(line)
        assert CANARY not in err


# --- /metrics equals the publish log ------------------------------------------------------


def test_metrics_counts_match_the_publish_log_and_the_deliveries_table(tmp_path):
    port = free_port()
    with FeedServer(older_items(3)) as site, FakeGraph() as fake:
        config = _config(tmp_path, site, channels="outbox,facebook",
                         extra=FACEBOOK.format(page_id=fake.page_id, url=fake.url) + f'\n[daemon]\nmetrics = "127.0.0.1:{port}"\n')
        daemon = autopublish_process(config, "run")
        try:
            assert wait_until(lambda: baseline_done(tmp_path / "queue"), timeout=20), "no baseline"
            fake.fail_next(code=100, message="(#100) Invalid parameter", times=1)  # a permanent failure for one post
            for n in (1, 2, 3):
                site.add(_fresh_item(n))
            expected = Counter({("outbox", "sent"): 3, ("facebook", "sent"): 2, ("facebook", "failed"): 1})
            assert wait_until(lambda: _deliveries(tmp_path) == expected, timeout=30), _deliveries(tmp_path)
            metrics = _metric_posts(port)
            assert wait_until(lambda: _metric_posts(port) == expected, timeout=10), metrics

            # The publish log says the same: the newest event of each delivery is its outcome.
            rows = [json.loads(line) for line in run_cli(config, "log", "--format", "json", "--limit", "1000").output.splitlines()]
            latest: dict[int, dict] = {}
            for row in rows:  # newest first
                if row["delivery"] and row["delivery"] not in latest:
                    latest[row["delivery"]] = row
            words = {"posted": "sent", "failed": "failed"}
            from_log = Counter((row["channel"], words.get(row["status"], row["status"])) for row in latest.values())
            assert from_log == expected
            assert _metric_posts(port) == expected
        finally:
            _, err = _stop(daemon)
        assert daemon.returncode == 0, err[-2000:]
        assert len(fake.feed_posts) == 2


def _metric_posts(port: int) -> Counter[tuple[str, str]]:
    try:
        text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    except requests.RequestException:
        return Counter()
    counts: Counter[tuple[str, str]] = Counter()
    for line in text.splitlines():
        if line.startswith("autopublish_posts{"):
            labels, _, value = line.rpartition(" ")
            parts = dict(part.split("=", 1) for part in labels[len("autopublish_posts{"):-1].split(","))
            counts[(parts["channel"].strip('"'), parts["outcome"].strip('"'))] = int(float(value))
    return counts


# --- an alert that cannot be sent never blocks publishing -------------------------------------


def test_an_alert_that_cannot_be_sent_is_logged_and_publishing_goes_on(tmp_path):
    with FeedServer(older_items(3)) as site, FakeGraph() as fake:
        hook = f'\n[channels.hook]\nplatform = "webhook"\nurl = "http://127.0.0.1:{free_port()}/alerts"\nsecret = "${{WEBHOOK_SECRET}}"\n'
        config = _config(tmp_path, site, channels="facebook,outbox",
                         extra=FACEBOOK.format(page_id=fake.page_id, url=fake.url) + OPS + hook
                         + '\n[alerts]\nchannels = ["hook", "ops"]\n')
        baseline = autopublish_process(config, "run", "--once")
        out, err = baseline.communicate(timeout=60)
        assert baseline.returncode == 0, err.decode()[-2000:]
        # The outbox alert channel cannot write: its file's path is a directory.
        (tmp_path / "queue" / "outbox" / "ops.jsonl").mkdir(parents=True)
        fake.expire_token()  # the Facebook channel pauses: an alert is due, to channels that cannot take it
        site.add(_fresh_item(1))
        site.add(_fresh_item(2))
        once = autopublish_process(config, "run", "--once")
        out, err = once.communicate(timeout=60)
        stderr = err.decode()
        assert once.returncode == 0, stderr[-2000:]
        assert "Could not send an alert to channel hook" in stderr
        assert "Could not send an alert to channel ops" in stderr
        assert CANARY not in stderr and CANARY not in out.decode()
    # Both articles still went to the outbox channel; Facebook's are held, not lost.
    assert [line["title"] for line in outbox_lines(config)] == ["Berita baru nomor 1", "Berita baru nomor 2"]
    assert _deliveries(tmp_path) == Counter({("outbox", "sent"): 2, ("facebook", "held"): 2})
    assert fake.feed_posts == []
    # The problem is in the publish log for the editors, in plain words.
    rows = [json.loads(line) for line in run_cli(config, "log", "--format", "json").output.splitlines()]
    assert any(row["event"] == "alert" and "paused" in row["reason"] for row in rows)


# --- e-mail alerts through [smtp] --------------------------------------------------------------


class FakeSMTP(socketserver.ThreadingTCPServer):
    """Just enough SMTP (RFC 5321) for smtplib: EHLO, AUTH PLAIN/LOGIN, MAIL, RCPT, DATA, QUIT."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _SMTPHandler)
        self.messages: list[dict[str, object]] = []
        self.logins: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def port(self) -> int:
        return self.server_address[1]

    def __enter__(self) -> FakeSMTP:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()


class _SMTPHandler(socketserver.StreamRequestHandler):
    server: FakeSMTP
    timeout = 20

    def _send(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def _read(self) -> str | None:
        line = self.rfile.readline(65536)
        return line.decode("utf-8", "replace").rstrip("\r\n") if line else None

    def handle(self) -> None:
        self._send("220 fake-smtp ready")
        sender, recipients = "", []
        while (line := self._read()) is not None:
            verb, _, arg = line.partition(" ")
            verb = verb.upper()
            if verb == "EHLO":
                self._send("250-fake-smtp")
                self._send("250-8BITMIME")
                self._send("250 AUTH PLAIN LOGIN")
            elif verb == "HELO":
                self._send("250 fake-smtp")
            elif verb == "AUTH":
                mechanism, _, initial = arg.partition(" ")
                if mechanism.upper() == "PLAIN":
                    if not initial:
                        self._send("334 ")
                        initial = self._read() or ""
                    _, user, password = base64.b64decode(initial).decode().split("\x00")
                else:  # LOGIN
                    self._send("334 " + base64.b64encode(b"Username:").decode())
                    user = base64.b64decode(self._read() or "").decode()
                    self._send("334 " + base64.b64encode(b"Password:").decode())
                    password = base64.b64decode(self._read() or "").decode()
                with self.server.lock:
                    self.server.logins.append((user, password))
                self._send("235 2.7.0 Authentication successful")
            elif verb == "MAIL":
                sender, recipients = arg, []
                self._send("250 OK")
            elif verb == "RCPT":
                recipients.append(arg)
                self._send("250 OK")
            elif verb == "DATA":
                self._send("354 End data with <CR><LF>.<CR><LF>")
                body = []
                while (data := self._read()) is not None and data != ".":
                    body.append(data[1:] if data.startswith("..") else data)
                with self.server.lock:
                    self.server.messages.append({"from": sender, "to": list(recipients), "data": "\n".join(body)})
                self._send("250 OK queued")
            elif verb in ("RSET", "NOOP"):
                self._send("250 OK")
            elif verb == "QUIT":
                self._send("221 Bye")
                return
            else:
                self._send("502 Command not implemented")


def test_email_alert_arrives_in_plain_words_without_secrets(tmp_path):
    with FeedServer(older_items(3)) as site, FakeGraph() as fake, FakeSMTP() as smtp:
        extra = (FACEBOOK.format(page_id=fake.page_id, url=fake.url)
                 + '\n[alerts]\nemail = ["admin@example.org"]\nrepeat = "24h"\n'
                 + f'\n[smtp]\nhost = "127.0.0.1"\nport = {smtp.port}\nuser = "autopublish@example.org"\n'
                 + 'password = "${SMTP_PASSWORD}"\nstarttls = false\n')
        config = _config(tmp_path, site, channels="facebook", extra=extra)
        baseline = autopublish_process(config, "run", "--once")
        _, err = baseline.communicate(timeout=60)
        assert baseline.returncode == 0, err.decode()[-2000:]
        fake.expire_token()
        site.add(seed_item())
        once = autopublish_process(config, "run", "--once")
        out, err = once.communicate(timeout=60)
        assert once.returncode == 0, err.decode()[-2000:]
        assert wait_until(lambda: len(smtp.messages) >= 1, timeout=10), "no e-mail"
        # A second pass: the problem is still open, so no second e-mail before `repeat`.
        again = autopublish_process(config, "run", "--once")
        again.communicate(timeout=60)  # smtplib waits for the server's 250, so a second e-mail would be in by now
    assert len(smtp.messages) == 1, smtp.messages
    message = smtp.messages[0]
    assert smtp.logins == [("autopublish@example.org", SMTP_CANARY)]  # the password goes to the server, and only there
    assert message["to"] == ["TO:<admin@example.org>"]
    data = str(message["data"])
    assert "Subject: autopublish: Channel \"facebook\" is paused" in data
    assert "paused and its posts are kept" in data
    assert SMTP_CANARY not in data and CANARY not in data
    assert SMTP_CANARY not in err.decode() and CANARY not in err.decode() and CANARY not in out.decode()


# --- --log-format json ----------------------------------------------------------------------------


def test_json_logs_carry_channel_and_feed_fields_and_no_secret(tmp_path):
    with FeedServer(older_items(3)) as site, FakeGraph() as fake:
        config = _config(tmp_path, site, channels="facebook", extra=FACEBOOK.format(page_id=fake.page_id, url=fake.url))
        baseline = autopublish_process(config, "--log-format", "json", "run", "--once")
        _, err = baseline.communicate(timeout=60)
        assert baseline.returncode == 0, err.decode()[-2000:]
        site.add(_fresh_item(1))
        site.add(_fresh_item(2))
        fake.fail_next(code=1, message="(#1) An unknown error occurred", status=500, is_transient=True)  # one transient failure, logged
        once = autopublish_process(config, "--log-format", "json", "run", "--once")
        out, err = once.communicate(timeout=60)
        assert once.returncode == 0, err.decode()[-2000:]
        site.stop()  # the feed goes away: its failure is logged with the feed's name
        down = autopublish_process(config, "--log-format", "json", "run", "--once")
        _, down_err = down.communicate(timeout=60)
    records = [json.loads(line) for line in (err + down_err).decode().splitlines() if line.strip()]  # every line is JSON
    assert records
    assert all({"time", "level", "logger", "message"} <= record.keys() for record in records)
    posted = [r for r in records if r["message"].startswith("Posted")]
    assert posted and all(r["channel"] == "facebook" and r["feed"] == "site" and r["article"] for r in posted)
    assert any(r.get("channel") == "facebook" and r["level"] == "warning" for r in records)  # the failed try
    assert any(r.get("feed") == "site" and r["level"] == "warning" and "channel" not in r for r in records)  # the feed down
    text = (err + down_err + out).decode()
    assert CANARY not in text


# --- `repeat`: an open problem is told again ----------------------------------------------------


def test_an_open_problem_is_told_again_after_repeat(tmp_path):
    """A feed down for good is re-announced once `repeat` has passed (its text changes: "failed for 3s")."""
    with FeedServer(older_items(3)) as site:
        config = _config(tmp_path, site, channels="outbox", extra=OPS + '\n[alerts]\nchannels = ["ops"]\nrepeat = "2s"\n',
                         settings='feed_down_after = "1s"')
        daemon = autopublish_process(config, "run")
        try:
            assert wait_until(lambda: baseline_done(tmp_path / "queue"), timeout=20), "no baseline"
            site.stop()
            assert wait_until(lambda: len(outbox_lines(config, "ops")) >= 2, timeout=20), outbox_lines(config, "ops")
        finally:
            _, err = _stop(daemon)
        assert daemon.returncode == 0, err[-2000:]
    texts = [line["text"] for line in outbox_lines(config, "ops")]
    assert all('The feed "site" has failed for' in text for text in texts), texts


def test_a_problem_is_told_again_when_it_comes_back_and_after_repeat(tmp_path):
    """A channel paused, resumed, then paused again: the second pause is announced and resolved too, and while it
    stays paused the admins are reminded every `repeat`.

    Guards two bugs: an alert post keyed by (problem key, text) only, so a second "paused" or "resolved"
    had the first one's key and the outbox alert channel (like a webhook receiver or Bluesky's record key)
    dropped it as a repeat; and a pause announced only when it happened, so `repeat` never came into play.
    """
    with FeedServer(older_items(3)) as site, FakeGraph() as fake:
        config = _config(tmp_path, site, channels="facebook",
                         extra=FACEBOOK.format(page_id=fake.page_id, url=fake.url) + OPS + '\n[alerts]\nchannels = ["ops"]\nrepeat = "2s"\n')

        def kinds() -> list[str]:
            return ["R" if line["text"].startswith("autopublish: resolved:") else "P" for line in outbox_lines(config, "ops")]

        daemon = autopublish_process(config, "run")
        try:
            assert wait_until(lambda: baseline_done(tmp_path / "queue"), timeout=20), "no baseline"
            for n in (1, 2):
                fake.expire_token()
                site.add(_fresh_item(n))
                assert wait_until(lambda n=n: kinds().count("P") >= 1 and kinds()[-1] == "P" and kinds().count("R") == n - 1, timeout=6), kinds()
                if n == 2:  # stays paused: a reminder after `repeat`
                    assert wait_until(lambda: kinds()[kinds().index("R"):].count("P") >= 2, timeout=6), kinds()
                fake.reset_token()
                assert run_cli(config, "resume", "facebook").exit_code == 0
                assert wait_until(lambda n=n: len(fake.feed_posts) == n, timeout=15)
                assert wait_until(lambda n=n: kinds().count("R") == n, timeout=6), kinds()
        finally:
            _, err = _stop(daemon)
        assert daemon.returncode == 0, err[-2000:]
    collapsed = [k for i, k in enumerate(kinds()) if i == 0 or k != kinds()[i - 1]]
    assert collapsed == ["P", "R", "P", "R"]
    assert len(fake.feed_posts) == 2
