"""The long-running daemon around the pipeline: config reload, metrics endpoint, signals."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from autopublish.config import Config
from autopublish.errors import ConfigError
from autopublish.messages import msg
from autopublish.scheduler import Daemon
from autopublish.secrets import Redactor

if TYPE_CHECKING:
    from autopublish.app import App
    from autopublish.pipeline import Pipeline
    from autopublish.push.service import PushService

ConfigLoader = Callable[[], Config]  # reads the config file again (with the environment read again); ConfigError if invalid

log = logging.getLogger(__name__)


class Reloader:
    """Re-reads the config on SIGHUP or when the file changes; keeps the old one if the new one is invalid."""

    def __init__(self, app: App, load_config: ConfigLoader, redactor: Redactor,
                 on_reload: Callable[[Config], None] | None = None) -> None:
        self.load_config = load_config
        self.redactor = redactor
        self.on_reload = on_reload  # what else follows the config (the push listener)
        self.app = app
        self.path: Path = app.config.path
        self.mtime = self._mtime()
        self.lock = threading.Lock()

    def _mtime(self) -> float | None:
        try:
            return self.path.stat().st_mtime
        except OSError:
            return None

    def changed(self) -> bool:
        current = self._mtime()
        if current != self.mtime:
            self.mtime = current
            return True
        return False

    def reload(self) -> Pipeline | None:
        """The new pipeline, or None when the edited config is invalid (the old one stays)."""
        from autopublish.app import build_pipeline

        with self.lock:
            try:
                config = self.load_config()
            except ConfigError as exc:
                message = ("The edited config was not applied; autopublish keeps running on the previous one. " + exc.message)
                log.error("%s", message)
                self.app.pipeline.notifier.problem("config", message)
                return None
            if config.state_dir != self.app.config.state_dir:
                log.error("state_dir cannot change while running; restart autopublish to use %s", config.state_dir)
                return None
            if config.database != self.app.config.database:
                log.error("The database setting cannot change while running; restart autopublish to use the new one")
                return None
            self.redactor.add(config.secret_values())
            pipeline, publishers = build_pipeline(config, self.app.store)
            self.app.config, self.app.pipeline, self.app.publishers = config, pipeline, publishers
            if self.on_reload is not None:
                self.on_reload(config)
            self.app.store.log_event("config_reloaded", msg("config_reloaded"))
            pipeline.notifier.resolved("config", "The config is valid again and was applied")
            log.info("Config reloaded: %d feed(s), %d channel(s)", len(config.feeds), len(config.channels))
            return pipeline


def run_daemon(app: App, load_config: ConfigLoader, redactor: Redactor) -> None:
    """Run until stopped; ``load_config`` is used on reloads, ``redactor`` learns the secrets of each new config."""
    push: PushService | None = None

    def follow(config: Config) -> None:  # a reload: the push listener moves, starts or stops with [push] listen
        nonlocal push
        if push is None and config.push.listen:
            push = _push_service(daemon)
        if push is not None:
            try:
                push.apply(config)  # the new config itself: the daemon switches to it only after this
            except Exception as exc:  # the rest of the reload stands; push keeps what it had
                log.error("The push listener could not follow the edited config (%s); restart autopublish to apply [push]",
                          type(exc).__name__)

    daemon = Daemon(app.pipeline, reloader=Reloader(app, load_config, redactor, on_reload=follow))
    metrics_server = None
    if app.config.daemon.metrics:
        from autopublish.metrics import start_metrics_server

        metrics_server = start_metrics_server(app.config.daemon.metrics, lambda: daemon)
    if app.config.push.listen:
        push = _push_service(daemon)
        push.start()
    try:
        daemon.run()
    finally:
        if push is not None:
            push.stop()
        if metrics_server is not None:
            metrics_server.shutdown()


def _push_service(daemon: Daemon) -> PushService:
    from autopublish.push.service import PushService  # loaded only when push is on

    return PushService(lambda: daemon.pipeline.config, lambda: daemon.pipeline.store, daemon.poll_now)
