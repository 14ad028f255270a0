"""``autopublish retract ARTICLE``: take an article's posts down everywhere (registered in autopublish/cli/__init__.py)."""

from __future__ import annotations

import click

from autopublish.cli.actions import cli_actor
from autopublish.cli.context import Context, guarded, open_store


@click.command("retract")
@click.argument("article")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
@guarded
def retract_command(ctx: Context, article: str, yes: bool) -> None:
    """Delete every live post of ARTICLE (its link, or a delivery number from 'log') and skip its queued posts.

    The deletes go out on the daemon's next sweep (or 'run --once'), each recorded in the
    publish log. Safe to repeat.
    """
    from autopublish.corrections import retract

    config = ctx.config()
    with open_store(ctx) as store:
        article_id = store.find_article(article)
        if article_id is None:
            click.echo(f"Error: no article matches {article!r}; give its link or a delivery number from 'autopublish log'", err=True)
            raise SystemExit(1)
        stored = store.article(article_id)
        live = [row for row, kind, _target in store.article_actions(article_id)
                if kind == "post" and row.status == "sent" and not store.taken_down(row.id)]
        click.echo(f"\"{stored.title}\" ({stored.link})")
        for row in live:
            click.echo(f"  live on {row.channel}: {row.post_url or '(no link recorded)'}")
        if not yes and not click.confirm("Take this article down everywhere?", default=False):
            click.echo("Nothing was changed.")
            return
        for line in retract(store, config, article_id, cli_actor()):
            click.echo(line)
    click.echo("Deletes go out on the next sweep of the daemon (or: autopublish run --once).")
