"""``log`` and ``queue``: what went where and what goes out next, in the reader's language."""

from __future__ import annotations

import csv
import io
import json
import os
import time
from datetime import UTC, datetime
from typing import Any

import click

from autopublish.cli.context import Context, guarded, open_store
from autopublish.durations import parse_duration
from autopublish.web.i18n import pick_language, say, translate

STATUS_WORDS = {
    "sent": "posted",
    "sending": "posting",
    "queued": "queued",
    "waiting": "waiting",
    "uncertain": "uncertain",
    "held": "held",
    "failed": "failed",
    "skipped": "skipped",
    "paused": "paused",
    "active": "resumed",
    "seen": "recorded",
    "error": "feed error",
    "ok": "ok",
    "alert": "alert",
    "warning": "warning",
}
WORD_TO_STATUS = {word: status for status, word in STATUS_WORDS.items()} | {"sent": "sent"}


def fmt_time(ts: float | None) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M") if ts else ""


def csv_safe(value: Any) -> Any:
    """A cell a spreadsheet will not run as a formula: text starting with = + - @ (or tab, CR) gets a leading quote."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _log_rows(ctx: Context, since: str | None, channel: str | None, status: str | None, feed: str | None, limit: int) -> list[dict[str, Any]]:
    with open_store(ctx) as store:
        since_ts = time.time() - parse_duration(since) if since else None
        raw_status = WORD_TO_STATUS.get(status, status) if status else None
        rows = store.events(since=since_ts, channel=channel, status=raw_status, feed=feed, limit=limit)
    out = []
    for row in rows:
        out.append({
            "time": datetime.fromtimestamp(row["at"], UTC).isoformat(timespec="seconds"),
            "feed": row["feed"] or "",
            "channel": row["channel"] or "",
            "title": row["title"] or "",
            "article_link": row["link"] or "",
            "status": STATUS_WORDS.get(row["status"], row["status"] or row["kind"]),
            "post_url": (row["post_url"] or "") if row["status"] == "sent" else "",
            "reason": ctx.redactor(row["message"] or ""),
            "code": row["code"] or "",
            "params": row["params"] or "",
            "delivery": row["delivery_id"],
            "event": row["kind"],
            "by": row["actor"],
        })
    return out


@click.command("log")
@click.option("--since", help="Only rows newer than this, e.g. 1d, 12h.")
@click.option("--channel", help="Only this channel.")
@click.option("--feed", help="Only this feed.")
@click.option("--status", help="Only this outcome: posted, waiting, failed, uncertain, held, skipped, queued...")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True)
@click.option("--limit", default=200, show_default=True, help="At most this many rows (newest first).")
@click.pass_obj
@guarded
def log_command(ctx: Context, since: str | None, channel: str | None, feed: str | None, status: str | None, fmt: str, limit: int) -> None:
    """The publish log: what went where, with links, what failed and why."""
    rows = _log_rows(ctx, since, channel, status, feed, limit)
    lang = reader_language()
    for row in rows:  # the stored code and parameters say the reason in the reader's language; json and csv keep English
        code, params = row.pop("code"), row.pop("params")
        row["local"] = _said(ctx, lang, code, params, row["reason"])
    if fmt == "json":
        for row in rows:
            click.echo(json.dumps({key: value for key, value in row.items() if key != "local"}, ensure_ascii=False))
        return
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(
            buffer, fieldnames=["time", "feed", "channel", "title", "article_link", "status", "post_url", "reason", "delivery", "event", "by"]
        )
        writer.writeheader()
        writer.writerows({key: csv_safe(value) for key, value in row.items() if key != "local"} for row in rows)
        click.echo(buffer.getvalue(), nl=False)
        return
    if not rows:
        click.echo(translate(lang, "cli_log_empty"))
        return
    for row in rows:
        word = translate(lang, f"fs_{WORD_TO_STATUS.get(row['status'], row['status'])}") if lang != "en" else row["status"]
        head = f"{row['time'][:16].replace('T', ' ')}  {word:<10} {row['channel'] or '-':<12} {row['feed'] or '-':<10}"
        title = row["title"] or ""
        click.echo(f"{head} {title[:70]}")
        details = []
        if row["delivery"]:
            details.append(f"#{row['delivery']}")
        if row["reason"] and row["reason"] not in ("Posted",):
            details.append(row["local"])
        if row["post_url"]:
            details.append(f"live: {row['post_url']}")
        elif row["article_link"] and row["status"] in ("queued",):
            details.append(f"article: {row['article_link']}")
        if row["by"] and row["by"] != "autopublish":
            details.append(f"by {row['by']}")
        if details:
            click.echo(" " * 18 + " · ".join(details))


@click.command("queue")
@click.option("--all", "show_all", is_flag=True, help="Also show held and uncertain deliveries of every age.")
@click.pass_obj
@guarded
def queue_command(ctx: Context, show_all: bool) -> None:
    """What goes out next and when, and what is held and why."""
    with open_store(ctx) as store:
        rows = store.deliveries_with_status("queued", "waiting", "held", "uncertain", "sending")
        paused = {name: store.channel(name) for name in ctx.config().channels}
        pause_codes = {name: store.channel_pause_code(name) for name, state in paused.items() if state.paused}
        codes = {row.id: store.delivery_extras(row.id)[:2] for row in rows if row.reason and row.status != "queued"}
    lang = reader_language()
    for name, state in paused.items():
        if state.paused:
            click.echo(translate(lang, "cli_paused", name=name, reason=_said(ctx, lang, *pause_codes[name], state.paused_reason)))
    if not rows:
        click.echo(translate(lang, "nothing_waiting"))
        return
    now = time.time()
    click.echo(f"{'ID':>5}  {'STATUS':<10} {'CHANNEL':<12} {'WHEN':<16} TITLE")
    for row in sorted(rows, key=lambda r: (r.next_attempt_at or now, r.id)):
        when = "now" if row.status == "queued" and (row.next_attempt_at or 0) <= now else fmt_time(row.next_attempt_at)
        if row.status in ("held", "uncertain") and row.needs_editor:
            when = "editor"
        word = translate(lang, f"fs_{row.status}") if lang != "en" else STATUS_WORDS.get(row.status, row.status)
        click.echo(f"{row.id:>5}  {word:<10} {row.channel:<12} {when:<16} {row.title[:60]}")
        if row.id in codes:
            click.echo(" " * 7 + _said(ctx, lang, *codes[row.id], row.reason))


def reader_language() -> str:
    """The language of ``log`` and ``queue`` from the locale (LANGUAGE, LC_ALL, LC_MESSAGES, LANG): "id" or "en"."""
    for name in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(name, "")
        if value and value not in ("C", "POSIX") and not value.startswith("C."):
            return pick_language(value.split(":")[0])
    return "en"


def _said(ctx: Context, lang: str, code: str | None, params: str | None, english: str) -> str:
    """A stored message in ``lang``: the sentence, then the platform's own words in quotes. English stays as stored."""
    if lang == "en":
        return ctx.redactor(english)
    sentence, detail = say(lang, code, params, english)
    return ctx.redactor(f"{sentence} “{detail}”" if detail else sentence)
