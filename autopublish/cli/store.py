"""The state database: ``backup``."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from autopublish.cli.context import Context, guarded, open_store


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
