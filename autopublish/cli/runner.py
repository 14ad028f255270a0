"""``run``: the daemon, or one pass of the pipeline with ``--once`` (cron mode)."""

from __future__ import annotations

import click

from autopublish.cli.context import Context, guarded, open_app


@click.command()
@click.option("--once", is_flag=True, help="One poll of every feed plus due retries, then exit (cron mode).")
@click.pass_obj
@guarded
def run(ctx: Context, once: bool) -> None:
    """Run the daemon (or one pass with --once)."""
    from autopublish.lock import instance_lock

    config = ctx.config()
    # SQLite belongs to one process; on PostgreSQL several nodes share the work through leases.
    with instance_lock(config.state_dir, shared_database=config.database is not None):
        app = open_app(ctx)
        try:
            app.join()
            if once:
                from autopublish.once import run_once, summary_lines

                result = run_once(app.pipeline)
                for line in summary_lines(result):
                    click.echo(line)
                if result.every_feed_failed:
                    raise SystemExit(1)
                return
            from autopublish.daemon_runtime import run_daemon

            run_daemon(app, ctx.config_loader(), ctx.redactor)
        finally:
            app.close()
