"""The editors' actions: ``retry``, ``skip``, ``resolve``, ``pause``, ``resume``."""

from __future__ import annotations

import os

import click

from autopublish.cli.context import Context, guarded, open_store
from autopublish.messages import msg


def cli_actor() -> str:
    """Who acted, as the publish log names a command-line user."""
    return f"cli:{os.environ.get('USER') or os.environ.get('LOGNAME') or 'admin'}"


def _act(ctx: Context, ok: bool, done: str, refused: str) -> None:
    if ok:
        click.echo(done)
    else:
        click.echo(f"Error: {refused}", err=True)
        raise SystemExit(1)


@click.command()
@click.argument("delivery_id", type=int)
@click.pass_obj
@guarded
def retry(ctx: Context, delivery_id: int) -> None:
    """Send a failed, held or waiting delivery again now."""
    with open_store(ctx) as store:
        row = store.delivery(delivery_id)
        if row is not None and row.status == "uncertain":
            click.echo("Error: this delivery may already be posted; check the platform, then use "
                       f"'autopublish resolve {delivery_id} --posted URL' or '--not-posted'", err=True)
            raise SystemExit(1)
        ok = store.retry(delivery_id, cli_actor())
    _act(ctx, ok, f"Delivery {delivery_id} is back in the queue.",
         f"delivery {delivery_id} does not exist or cannot be retried (only failed, held, waiting or skipped ones)")


@click.command()
@click.argument("delivery_id", type=int)
@click.pass_obj
@guarded
def skip(ctx: Context, delivery_id: int) -> None:
    """Never post this delivery."""
    with open_store(ctx) as store:
        ok = store.skip(delivery_id, cli_actor())
    _act(ctx, ok, f"Delivery {delivery_id} will not be posted.", f"delivery {delivery_id} does not exist or is already posted or skipped")


@click.command()
@click.argument("delivery_id", type=int)
@click.option("--posted", "posted_url", metavar="URL", help="It was posted; the live post's address.")
@click.option("--not-posted", is_flag=True, help="It was not posted; send it.")
@click.pass_obj
@guarded
def resolve(ctx: Context, delivery_id: int, posted_url: str | None, not_posted: bool) -> None:
    """Settle an uncertain delivery after looking at the platform."""
    if bool(posted_url) == not_posted:
        raise click.UsageError("give exactly one of --posted URL or --not-posted")
    with open_store(ctx) as store:
        ok = store.resolve(delivery_id, posted_url=posted_url, actor=cli_actor())
    _act(ctx, ok, f"Delivery {delivery_id} marked as {'posted' if posted_url else 'not posted; it will be sent'}.",
         f"delivery {delivery_id} does not exist or is not waiting for a decision")


@click.command()
@click.argument("channel")
@click.pass_obj
@guarded
def pause(ctx: Context, channel: str) -> None:
    """Pause a channel; its queue is kept."""
    _known_channel(ctx, channel)
    with open_store(ctx) as store:
        store.pause_channel(channel, msg("paused_by_editor", actor=cli_actor()), actor=cli_actor())
    click.echo(f"Channel {channel} is paused; its posts are kept until: autopublish resume {channel}")


@click.command()
@click.argument("channel")
@click.pass_obj
@guarded
def resume(ctx: Context, channel: str) -> None:
    """Resume a paused channel; held posts go back to the queue."""
    _known_channel(ctx, channel)
    with open_store(ctx) as store:
        count = store.resume_channel(channel, actor=cli_actor())
    click.echo(f"Channel {channel} is active; {count} held post(s) are back in the queue.")


def _known_channel(ctx: Context, channel: str) -> None:
    if channel not in ctx.config().channels:
        raise click.UsageError(f"no channel is named {channel!r}; configured: {', '.join(ctx.config().channels) or 'none'}")
