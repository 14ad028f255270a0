"""What every command shares: the command line's Context, logging set-up and ``guarded``.

Apart from the command group (``autopublish.cli``), which imports every command module.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click
from dotenv import dotenv_values

from autopublish.config import Config, find_config, load_config
from autopublish.errors import AutopublishError, ConfigError
from autopublish.secrets import RedactingFilter, Redactor

if TYPE_CHECKING:
    from autopublish.app import App
    from autopublish.store import Store

log = logging.getLogger("autopublish")


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

    def config_loader(self) -> Callable[[], Config]:
        """Reads the config again from the file the first read found, with .env read again (for reloads)."""
        first = self.config()
        return lambda: load_config(first.path, self.environ(), embedded=first.embedded)


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
        click.echo(ctx.redactor("".join(traceback.format_exception(exc))), err=True)
    raise SystemExit(code)


def guarded(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn our errors into one readable sentence and an exit code; tracebacks only with --debug."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx = click.get_current_context().find_object(Context)
        try:
            return func(*args, **kwargs)
        except (click.exceptions.Exit, click.ClickException, SystemExit, click.Abort):
            raise
        except Exception as exc:
            if ctx is None:
                raise
            fail(ctx, exc)

    return wrapper


def open_app(ctx: Context) -> App:
    """The composed application (store, publishers, pipeline) for the config."""
    from autopublish.app import open_app as compose

    return compose(ctx.config())


def open_store(ctx: Context) -> Store:
    """The state store, to use as ``with open_store(ctx) as store:``."""
    from autopublish.store import Store

    return Store.for_config(ctx.config())
