"""CLI commands for the editors' page: ``autopublish web`` and ``autopublish hash-password``.

The command group (autopublish.cli) registers them.
"""

from __future__ import annotations

import sys

import click

from autopublish.cli.context import Context, guarded
from autopublish.config import Config


@click.command("web")
@click.option("--host", help="Address to listen on (default: [web] host, else 127.0.0.1).")
@click.option("--port", type=click.IntRange(1, 65535), help="Port to listen on (default: [web] port, else 8080).")
@click.pass_obj
@guarded
def web_command(ctx: Context, host: str | None, port: int | None) -> None:
    """Serve the editors' page: publish log, queue, channel health and actions."""
    from autopublish.web.app import create_app, serve

    config = ctx.config()
    host = host or config.web.host
    port = port or config.web.port

    load_config = ctx.config_loader()

    def reload_config() -> Config:  # edits to [[web.users]] apply without a restart
        fresh = load_config()
        ctx.redactor.add(fresh.secret_values())
        return fresh

    app = create_app(config, redactor=ctx.redactor, config_loader=reload_config)
    if not config.web.users:
        click.echo("Warning: no [[web.users]] in the config, so nobody can sign in; create a password hash with: autopublish hash-password",
                   err=True)
    if host not in ("127.0.0.1", "localhost", "::1"):
        click.echo(f"Warning: listening on {host}; put the page behind a reverse proxy with TLS before exposing it.", err=True)
    click.echo(f"Editors' page on http://{host}:{port}/ (state: {config.state_dir}); stop with Ctrl+C")
    serve(app, host, port)


@click.command("hash-password")
def hash_password_command() -> None:
    """Ask for a password and print its hash for [[web.users]] password_hash (the last line).

    Reads one line from standard input when it is not a terminal (for scripts).
    """
    from werkzeug.security import generate_password_hash

    if sys.stdin is not None and sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt="Repeat the password")
    else:
        password = (sys.stdin.readline() if sys.stdin is not None else "").rstrip("\r\n")
    if not password:
        raise click.UsageError("the password is empty")
    if len(password) < 8:
        click.echo("Warning: this password is shorter than 8 characters.", err=True)
    click.echo("Put this line in the user's [[web.users]] entry as password_hash:", err=True)
    click.echo(generate_password_hash(password, method="scrypt"))

