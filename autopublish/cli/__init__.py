"""Command line: a thin shell over the library. The only package that prints, reads .env and sets up logging.

One module per group of commands; each is registered here, explicitly, and none imports
this module (the shared Context lives in ``autopublish.cli.context``).

Exit codes: 0 ok, 1 operational failure, 2 usage or config error.
"""

from __future__ import annotations

import click

from autopublish import __version__
from autopublish.cli.actions import pause, resolve, resume, retry, skip
from autopublish.cli.checks import check, count, preview
from autopublish.cli.connect import connect_group
from autopublish.cli.context import Context, setup_logging
from autopublish.cli.reports import log_command, queue_command
from autopublish.cli.retract import retract_command
from autopublish.cli.runner import run
from autopublish.cli.store import backup, db_group, nodes_command
from autopublish.cli.web import hash_password_command, web_command


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


COMMANDS: tuple[click.Command, ...] = (
    run,
    log_command, queue_command,
    retry, skip, resolve, pause, resume, retract_command,
    check, preview, count,
    backup, db_group, nodes_command,
    web_command, hash_password_command,
    connect_group,
)
for command in COMMANDS:
    cli.add_command(command)


def main() -> None:
    cli(prog_name="autopublish")
