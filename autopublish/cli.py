"""Command line: a thin shell over the library. The only module that prints, reads .env and sets up logging.

Exit codes: 0 ok, 1 operational failure, 2 usage or config error.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click
from dotenv import dotenv_values

from autopublish import __version__
from autopublish.config import Config, find_config, load_config
from autopublish.durations import format_duration, parse_duration
from autopublish.errors import AutopublishError, ConfigError
from autopublish.messages import msg
from autopublish.web.i18n import pick_language, say, translate
from autopublish.models import Health, HealthLevel
from autopublish.secrets import Redactor, RedactingFilter

if TYPE_CHECKING:
    from autopublish.store import Store

log = logging.getLogger("autopublish")

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


class Context:
    def __init__(self, config_path: str | None, env_file: str, debug: bool, log_format: str) -> None:
        self.config_path = config_path
        self.env_file = env_file
        self.debug = debug
        self.log_format = log_format
        self.redactor = Redactor()
        self._config: Config | None = None

    def environ(self) -> dict[str, str]:
        """The real environment over .env: a value set in the environment always wins."""
        values = {k: v for k, v in dotenv_values(self.env_file).items() if v is not None} if Path(self.env_file).exists() else {}
        return {**values, **os.environ}

    def config(self) -> Config:
        if self._config is None:
            environ = self.environ()
            path, embedded = find_config(self.config_path, environ, Path.cwd())
            self._config = load_config(path, environ, embedded=embedded)
            self.redactor.add(self._config.secret_values())
            if embedded:
                log.info("No config file found (config/autopublish.toml); running the built-in demo: the bundled sample feed to the local outbox")
        return self._config


class JsonFormatter(logging.Formatter):
    FIELDS = ("channel", "feed", "article", "delivery")

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="seconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in self.FIELDS:
            if hasattr(record, name):
                data[name] = getattr(record, name)
        if record.exc_text:
            data["error"] = record.exc_text
        return json.dumps(data, ensure_ascii=False)


def setup_logging(ctx: Context) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter(ctx.redactor))
    if ctx.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if ctx.debug else logging.INFO)
    # HTTP client loggers print URLs, which can carry tokens.
    for name in ("urllib3", "requests", "apscheduler", "facebook", "waitress", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)


def fail(ctx: Context, exc: BaseException) -> NoReturn:
    code = 2 if isinstance(exc, ConfigError) else 1
    text = exc.message if isinstance(exc, AutopublishError) else f"Unexpected error: {type(exc).__name__}: {exc}"
    click.echo(ctx.redactor(f"Error: {text}"), err=True)
    if ctx.debug:
        import traceback

        click.echo(ctx.redactor("".join(traceback.format_exception(exc))), err=True)
    raise SystemExit(code)


def guarded(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn our errors into one readable sentence and an exit code; tracebacks only with --debug."""
    import functools

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx = click.get_current_context().find_object(Context)
        try:
            return func(*args, **kwargs)
        except (click.exceptions.Exit, click.ClickException, SystemExit, click.Abort):
            raise
        except Exception as exc:
            assert ctx is not None
            fail(ctx, exc)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", metavar="PATH", help="Config file (default: $AUTOPUBLISH_CONFIG, else config/autopublish.toml).")
@click.option("--env-file", default=".env", show_default=True, help="Secrets file read beneath the real environment.")
@click.option("--debug", is_flag=True, help="Verbose logs and tracebacks.")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.version_option(__version__, prog_name="autopublish")
@click.pass_context
def cli(click_ctx: click.Context, config_path: str | None, env_file: str, debug: bool, log_format: str) -> None:
    """autopublish: cross-post a website's new articles to social media, once and only once."""
    ctx = Context(config_path, env_file, debug, log_format)
    click_ctx.obj = ctx
    setup_logging(ctx)


def _open(ctx: Context):  # type: ignore[no-untyped-def]
    from autopublish.app import open_app

    return open_app(ctx.config())


def _open_store(ctx: Context) -> Store:
    """The state store, to use as ``with _open_store(ctx) as store:``."""
    from autopublish.store import Store

    return Store.for_config(ctx.config())


# --- run ----------------------------------------------------------------------------------


@cli.command()
@click.option("--once", is_flag=True, help="One poll of every feed plus due retries, then exit (cron mode).")
@click.pass_obj
@guarded
def run(ctx: Context, once: bool) -> None:
    """Run the daemon (or one pass with --once)."""
    from autopublish.lock import instance_lock

    config = ctx.config()
    # SQLite belongs to one process; on PostgreSQL several nodes share the work through leases.
    with instance_lock(config.state_dir, shared_database=config.database is not None):
        app = _open(ctx)
        try:
            app.join()
            if once:
                app.pipeline.recover()
                polls = app.pipeline.poll_all()
                sweep = app.pipeline.deliver_due()
                for poll in polls:
                    if poll.skipped:
                        click.echo(f"feed {poll.feed}: {poll.message}")
                        continue
                    state = "ok" if poll.ok else "failed"
                    extra = f", {poll.new} new, {poll.queued} queued" if poll.ok and poll.changed else (f": {poll.message}" if not poll.ok else ", unchanged")
                    click.echo(f"feed {poll.feed}: {state}{extra}")
                click.echo(f"posted {sweep.sent}, waiting {sweep.waiting}, uncertain {sweep.uncertain}, held {sweep.held}, failed {sweep.failed}"
                           + (f", settled {sweep.reconciled}" if sweep.reconciled else ""))
                if polls and not any(p.ok for p in polls):
                    raise SystemExit(1)
                return
            from autopublish.daemon_runtime import run_daemon

            run_daemon(ctx, app)
        finally:
            app.close()


# --- the publish log ---------------------------------------------------------------------


def _fmt_time(ts: float | None) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M") if ts else ""


def csv_safe(value: Any) -> Any:
    """A cell a spreadsheet will not run as a formula: text starting with = + - @ (or tab, CR) gets a leading quote."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def readable_secret_files(env_file: Path, config: Config) -> list[str]:
    """Warnings for secret-holding files that other users of this machine can read."""
    found = []
    candidates = [(env_file, "holds the secrets")]
    if not config.embedded and config.web.users:
        candidates.append((config.path, "holds the editors' password hashes"))
    for path, why in candidates:
        try:
            mode = path.stat().st_mode & 0o777
        except OSError:
            continue
        if mode & 0o044:
            found.append(f"{path} {why} and can be read by other users of this machine (mode {mode:o}); run: chmod 600 {path}")
    return found


def _log_rows(ctx: Context, since: str | None, channel: str | None, status: str | None, feed: str | None, limit: int) -> list[dict[str, Any]]:
    with _open_store(ctx) as store:
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


@cli.command("log")
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
        writer = csv.DictWriter(buffer, fieldnames=["time", "feed", "channel", "title", "article_link", "status", "post_url", "reason", "delivery", "event", "by"])
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


@cli.command()
@click.option("--all", "show_all", is_flag=True, help="Also show held and uncertain deliveries of every age.")
@click.pass_obj
@guarded
def queue(ctx: Context, show_all: bool) -> None:
    """What goes out next and when, and what is held and why."""
    with _open_store(ctx) as store:
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
        when = "now" if row.status == "queued" and (row.next_attempt_at or 0) <= now else _fmt_time(row.next_attempt_at)
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


# --- editors' actions ---------------------------------------------------------------------


def _actor() -> str:
    return f"cli:{os.environ.get('USER') or os.environ.get('LOGNAME') or 'admin'}"


def _act(ctx: Context, ok: bool, done: str, refused: str) -> None:
    if ok:
        click.echo(done)
    else:
        click.echo(f"Error: {refused}", err=True)
        raise SystemExit(1)


@cli.command()
@click.argument("delivery_id", type=int)
@click.pass_obj
@guarded
def retry(ctx: Context, delivery_id: int) -> None:
    """Send a failed, held or waiting delivery again now."""
    with _open_store(ctx) as store:
        row = store.delivery(delivery_id)
        if row is not None and row.status == "uncertain":
            click.echo("Error: this delivery may already be posted; check the platform, then use "
                       f"'autopublish resolve {delivery_id} --posted URL' or '--not-posted'", err=True)
            raise SystemExit(1)
        ok = store.retry(delivery_id, _actor())
    _act(ctx, ok, f"Delivery {delivery_id} is back in the queue.", f"delivery {delivery_id} does not exist or cannot be retried (only failed, held, waiting or skipped ones)")


@cli.command()
@click.argument("delivery_id", type=int)
@click.pass_obj
@guarded
def skip(ctx: Context, delivery_id: int) -> None:
    """Never post this delivery."""
    with _open_store(ctx) as store:
        ok = store.skip(delivery_id, _actor())
    _act(ctx, ok, f"Delivery {delivery_id} will not be posted.", f"delivery {delivery_id} does not exist or is already posted or skipped")


@cli.command()
@click.argument("delivery_id", type=int)
@click.option("--posted", "posted_url", metavar="URL", help="It was posted; the live post's address.")
@click.option("--not-posted", is_flag=True, help="It was not posted; send it.")
@click.pass_obj
@guarded
def resolve(ctx: Context, delivery_id: int, posted_url: str | None, not_posted: bool) -> None:
    """Settle an uncertain delivery after looking at the platform."""
    if bool(posted_url) == not_posted:
        raise click.UsageError("give exactly one of --posted URL or --not-posted")
    with _open_store(ctx) as store:
        ok = store.resolve(delivery_id, posted_url=posted_url, actor=_actor())
    _act(ctx, ok, f"Delivery {delivery_id} marked as {'posted' if posted_url else 'not posted; it will be sent'}.",
         f"delivery {delivery_id} does not exist or is not waiting for a decision")


@cli.command()
@click.argument("channel")
@click.pass_obj
@guarded
def pause(ctx: Context, channel: str) -> None:
    """Pause a channel; its queue is kept."""
    _known_channel(ctx, channel)
    with _open_store(ctx) as store:
        store.pause_channel(channel, msg("paused_by_editor", actor=_actor()), actor=_actor())
    click.echo(f"Channel {channel} is paused; its posts are kept until: autopublish resume {channel}")


@cli.command()
@click.argument("channel")
@click.pass_obj
@guarded
def resume(ctx: Context, channel: str) -> None:
    """Resume a paused channel; held posts go back to the queue."""
    _known_channel(ctx, channel)
    with _open_store(ctx) as store:
        count = store.resume_channel(channel, actor=_actor())
    click.echo(f"Channel {channel} is active; {count} held post(s) are back in the queue.")


def _known_channel(ctx: Context, channel: str) -> None:
    if channel not in ctx.config().channels:
        raise click.UsageError(f"no channel is named {channel!r}; configured: {', '.join(ctx.config().channels) or 'none'}")


# --- check, preview, count, backup -----------------------------------------------------


@cli.command()
@click.option("--offline", is_flag=True, help="Validate the config only; do not contact the platforms.")
@click.pass_obj
@guarded
def check(ctx: Context, offline: bool) -> None:
    """Validate the config and ask every channel whether it can post."""
    config = ctx.config()
    click.echo(f"Config: {config.path}{' (built-in demo)' if config.embedded else ''}: valid")
    click.echo(f"State directory: {config.state_dir}")
    if config.database is not None:
        from autopublish.store import redact_url

        click.echo(f"Database: {redact_url(config.database.reveal())} (shared by every node)")
    for warning in readable_secret_files(Path(ctx.env_file), config):
        click.echo(f"WARNING: {warning}")
    from autopublish.push.status import feed_sentences

    how = feed_sentences(config)
    for feed in config.feeds.values():
        click.echo(f"Feed {feed.name}: {feed.display_url} every {format_duration(feed.poll_interval)} -> {', '.join(feed.channels) or '(no channel)'}")
        click.echo(f"    {how[feed.name]}")
    if offline:
        return
    from autopublish.app import build_publishers, platform_session

    publishers = build_publishers(config, platform_session())
    worst = HealthLevel.OK
    for name, publisher in publishers.items():
        try:
            health = publisher.check()
        except AutopublishError as exc:
            health = Health(HealthLevel.ERROR, exc.message)
        mark = {"ok": "OK", "warning": "WARNING", "error": "PROBLEM"}[health.level]
        click.echo(ctx.redactor(f"Channel {name} ({publisher.label}): {mark}: {health.summary}"))
        for line in health.details:
            click.echo(ctx.redactor(f"    {line}"))
        doubts = doubts_line(health, publisher.label, can_settle=publisher.idempotent or publisher.can_read_back)
        if doubts:
            click.echo(ctx.redactor(f"    {doubts}"))
        if health.level == HealthLevel.ERROR:
            worst = HealthLevel.ERROR
    if worst == HealthLevel.ERROR:
        raise SystemExit(1)


def doubts_line(health: Health, label: str, *, can_settle: bool) -> str:
    """One line for ``check``: can a post in doubt (crash mid-post) be settled without an editor?"""
    if health.settles_doubts is True:
        return "Posts in doubt (a crash mid-post): settled automatically"
    if health.settles_doubts is False:
        need = f"; the token lacks {health.missing_permission}" if health.missing_permission else ""
        return f"Posts in doubt (a crash mid-post): an editor must check them{need}. Posting is not affected"
    if not can_settle:
        return f"Posts in doubt (a crash mid-post): {label} cannot be checked automatically; an editor checks them"
    return ""


@cli.command()
@click.option("--feed", "feed_name", help="Only this feed.")
@click.option("--channel", "channel_name", help="Only this channel.")
@click.option("--limit", default=3, show_default=True, help="Articles per feed.")
@click.pass_obj
@guarded
def preview(ctx: Context, feed_name: str | None, channel_name: str | None, limit: int) -> None:
    """Show the posts autopublish would make, publishing nothing."""
    from autopublish.app import build_publishers, feed_fetcher, platform_session
    from autopublish.errors import FeedError
    from autopublish.feeds import fetch_feed, parse_feed
    from autopublish.pipeline import build_post, channel_filter_reason
    from autopublish.render import FitError

    config = ctx.config()
    publishers = build_publishers(config, platform_session())
    fetcher = feed_fetcher(config)
    failed = False
    for feed in config.feeds.values():
        if feed_name and feed.name != feed_name:
            continue
        try:
            fetched = fetch_feed(fetcher, feed.url, None)
            parsed = parse_feed(fetched.body or b"", feed=feed.name, content_type=fetched.content_type, url=fetched.url)
        except FeedError as exc:
            click.echo(f"Feed {feed.name}: {exc.message}")
            failed = True
            continue
        click.echo(ctx.redactor(f"Feed {feed.name}: {parsed.title or feed.display_url} ({len(parsed.articles)} articles)"))
        for article in parsed.articles[:limit]:
            for name in feed.channels:
                if channel_name and name != channel_name:
                    continue
                channel = config.channels[name]
                publisher = publishers[name]
                click.echo(f"\n--- {name} ({publisher.label}) · {article.title}")
                reason = channel_filter_reason(article, channel, time.time())
                if reason:
                    click.echo(reason)
                    continue
                try:
                    post = build_post(article, channel, publisher, "preview", config.settings.timezone)
                except FitError as exc:
                    click.echo(f"Cannot fit: {exc}")
                    continue
                click.echo(post.text)
                limit_value = publisher.current_limits().max_length
                click.echo(f"[length {publisher.count(post.text)} of {limit_value}; link: {post.link or '-'}; image: {post.image or '-'}]")
    if failed:
        raise SystemExit(1)


@cli.command()
@click.option("--platform", "platform", required=True, help="Platform whose length rule to use.")
@click.option("--instance", help="Mastodon: read this instance's own limits.")
@click.argument("text", nargs=-1, required=True)
@click.pass_obj
@guarded
def count(ctx: Context, platform: str, instance: str | None, text: tuple[str, ...]) -> None:
    """Print a platform's own length of TEXT (to tune templates)."""
    from autopublish.count import count_for

    value = " ".join(text).replace("\\n", "\n")
    length, limit = count_for(platform, value, instance=instance)
    click.echo(f"{length} of {limit}")


@cli.command()
@click.argument("target", required=False, type=click.Path(dir_okay=False))
@click.pass_obj
@guarded
def backup(ctx: Context, target: str | None) -> None:
    """A consistent copy of the state database, safe while the daemon runs."""
    with _open_store(ctx) as store:
        path = Path(target) if target else ctx.config().state_dir / "backups" / f"state-{datetime.now(UTC):%Y%m%d-%H%M%S}.db"
        store.backup(path)
    click.echo(f"Backup written to {path}")


# --- the database and its nodes ------------------------------------------------------------


@cli.group("db")
def db_group() -> None:
    """The state database: schema migrations."""


@db_group.command("upgrade")
@click.pass_obj
@guarded
def db_upgrade(ctx: Context) -> None:
    """Bring the database schema up to date (run once before starting upgraded nodes)."""
    from autopublish.store import Store

    with Store.for_config(ctx.config(), migrate=True) as store:
        click.echo(f"The database {store.shown} is up to date.")


@cli.command("nodes")
@click.pass_obj
@guarded
def nodes_command(ctx: Context) -> None:
    """Which autopublish nodes are alive, and what each holds right now."""
    with _open_store(ctx) as store:
        rows = store.nodes()
        now = store.now()
    if not rows:
        click.echo("No node has run against this database in the last day.")
        return
    for node in rows:
        state = "alive" if node.alive else ("stopped" if node.stopped_at else "dead (no heartbeat)")
        click.echo(f"{node.id}  {state}, last heartbeat {format_duration(max(0.0, now - node.heartbeat_at))} ago, "
                   f"up since {_fmt_time(node.started_at)}")
        if node.alive:
            held = [f"posting {', '.join('#' + str(i) for i in node.posting)}" if node.posting else "",
                    f"channels: {', '.join(node.channels)}" if node.channels else "",
                    f"feeds: {', '.join(node.feeds)}" if node.feeds else ""]
            click.echo("    holds: " + ("; ".join(h for h in held if h) or "nothing right now"))


def _register_optional() -> None:
    """Commands that live in their own modules (web page, platform connect helpers)."""
    import importlib

    for module_name, attribute, group in (
        ("autopublish.web.commands", "web_command", None),
        ("autopublish.web.commands", "hash_password_command", None),
        ("autopublish.retract_command", "retract_command", None),
        ("autopublish.platforms.meta.connect", "facebook_command", "connect"),
    ):
        try:
            module = importlib.import_module(module_name)
            command = getattr(module, attribute)
        except (ImportError, AttributeError):
            continue
        if group is None:
            cli.add_command(command)
        else:
            parent = cli.commands.get(group)
            if parent is None:
                parent = click.Group(group, help="Get platform credentials step by step and write them to .env.")
                cli.add_command(parent)
            assert isinstance(parent, click.Group)
            parent.add_command(command)


_register_optional()


def main() -> None:
    cli(prog_name="autopublish")
