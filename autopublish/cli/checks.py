"""Looking before posting: ``check`` (config and channels), ``preview`` (the posts), ``count`` (a text's length)."""

from __future__ import annotations

from pathlib import Path

import click

from autopublish.cli.context import Context, guarded
from autopublish.config import Config
from autopublish.durations import format_duration
from autopublish.errors import AutopublishError
from autopublish.models import Health, HealthLevel


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


@click.command()
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


@click.command()
@click.option("--feed", "feed_name", help="Only this feed.")
@click.option("--channel", "channel_name", help="Only this channel.")
@click.option("--limit", default=3, show_default=True, help="Articles per feed.")
@click.pass_obj
@guarded
def preview(ctx: Context, feed_name: str | None, channel_name: str | None, limit: int) -> None:
    """Show the posts autopublish would make, publishing nothing."""
    from autopublish.app import build_publishers, feed_fetcher, platform_session
    from autopublish.preview import preview_feed, preview_lines

    config = ctx.config()
    publishers = build_publishers(config, platform_session())
    fetcher = feed_fetcher(config)
    failed = False
    for feed in config.feeds.values():
        if feed_name and feed.name != feed_name:
            continue
        shown = preview_feed(config, feed, publishers, fetcher, channel_name=channel_name, limit=limit)
        failed = failed or bool(shown.error)
        for line in preview_lines(shown):
            click.echo(ctx.redactor(line))
    if failed:
        raise SystemExit(1)


@click.command()
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
