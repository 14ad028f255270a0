"""The state database: ``backup``, ``db upgrade``, ``db import-sqlite`` and ``nodes``."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from autopublish.cli.context import Context, guarded, open_store
from autopublish.cli.reports import fmt_time
from autopublish.durations import format_duration


@click.command()
@click.argument("target", required=False, type=click.Path(dir_okay=False))
@click.pass_obj
@guarded
def backup(ctx: Context, target: str | None) -> None:
    """A consistent copy of the state database, safe while the daemon runs."""
    with open_store(ctx) as store:
        path = Path(target) if target else ctx.config().state_dir / "backups" / f"state-{datetime.now(UTC):%Y%m%d-%H%M%S}.db"
        store.backup(path)
    click.echo(f"Backup written to {path}")


@click.group("db")
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


@db_group.command("import-sqlite")
@click.argument("state_dir", required=False, type=click.Path(file_okay=False))
@click.pass_obj
@guarded
def db_import_sqlite(ctx: Context, state_dir: str | None) -> None:
    """Copy a single autopublish's SQLite state (default: the config's state_dir) into the new PostgreSQL.

    Run it once, with autopublish stopped, after `autopublish db upgrade` and before starting the
    nodes: they then go on where the single process stopped, with its publish log, its queue and
    every feed's baseline, so nothing is posted twice and nothing waiting is lost.
    """
    from autopublish.errors import StateError
    from autopublish.lock import instance_lock
    from autopublish.store import Store
    from autopublish.store.transfer import copy_database

    config = ctx.config()
    if config.database is None:
        raise StateError(f"{config.path}: [settings] database names no PostgreSQL to copy into; set it "
                         "(database = \"postgresql://user:${DB_PASSWORD}@host:5432/autopublish\"), run autopublish db upgrade, then copy")
    source_dir = Path(state_dir) if state_dir else config.state_dir
    if not (source_dir / Store.FILENAME).is_file():
        raise StateError(f"There is no SQLite state database at {source_dir / Store.FILENAME}; name the state directory "
                         "of the autopublish to move: autopublish db import-sqlite STATE_DIR")
    with instance_lock(source_dir), Store(source_dir, create=False) as source, Store.for_config(config) as target:
        settled = source.recover_interrupted()  # as at any start: a post in flight becomes uncertain, to be checked
        report = copy_database(source.db, target.db)
        shown = target.shown
    for line in report.lines():
        click.echo(f"  {line}")
    if settled:
        click.echo(f"{len(settled)} posts were in flight when autopublish stopped; they are uncertain and will be checked.")
    click.echo(f"Copied {source.shown} into {shown}. Start the nodes now; keep the SQLite file as a backup.")


@click.command("nodes")
@click.pass_obj
@guarded
def nodes_command(ctx: Context) -> None:
    """Which autopublish nodes are alive, and what each holds right now."""
    with open_store(ctx) as store:
        rows = store.nodes()
        now = store.now()
    if not rows:
        click.echo("No node has run against this database in the last day.")
        return
    for node in rows:
        state = "alive" if node.alive else ("stopped" if node.stopped_at else "dead (no heartbeat)")
        click.echo(f"{node.id}  {state}, last heartbeat {format_duration(max(0.0, now - node.heartbeat_at))} ago, "
                   f"up since {fmt_time(node.started_at)}")
        if node.clock_is_off:
            way = "behind" if node.clock_offset > 0 else "ahead of"
            click.echo(f"    clock: {format_duration(abs(node.clock_offset))} {way} the database's; autopublish corrects it, "
                       f"but set up NTP on {node.host} for its other programs")
        if node.alive:
            held = [f"posting {', '.join('#' + str(i) for i in node.posting)}" if node.posting else "",
                    f"channels: {', '.join(node.channels)}" if node.channels else "",
                    f"feeds: {', '.join(node.feeds)}" if node.feeds else ""]
            click.echo("    holds: " + ("; ".join(h for h in held if h) or "nothing right now"))
