"""The long-running daemon around the pipeline: config reload, metrics endpoint, signals."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from autopublish.errors import ConfigError
from autopublish.scheduler import Daemon

if TYPE_CHECKING:
    from autopublish.app import App
    from autopublish.cli import Context
    from autopublish.pipeline import Pipeline

log = logging.getLogger(__name__)


class Reloader:
    """Re-reads the config on SIGHUP or when the file changes; keeps the old one if the new one is invalid."""

    def __init__(self, ctx: Context, app: App) -> None:
        self.ctx = ctx
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
        from autopublish.app import build_publishers, feed_session, platform_session
        from autopublish.alerts import Alerter
        from autopublish.config import load_config
        from autopublish.pipeline import Pipeline

        with self.lock:
            try:
                config = load_config(self.path, self.ctx.environ(), embedded=self.app.config.embedded)
            except ConfigError as exc:
                message = ("The edited config was not applied; autopublish keeps running on the previous one. " + exc.message)
                log.error("%s", message)
                self.app.pipeline.notifier.problem("config", message)
                return None
            if config.state_dir != self.app.config.state_dir:
                log.error("state_dir cannot change while running; restart autopublish to use %s", config.state_dir)
                return None
            self.ctx.redactor.add(config.secret_values())
            publishers = build_publishers(config, platform_session())
            notifier = Alerter(config, self.app.store, publishers)
            pipeline = Pipeline(config, self.app.store, publishers, feed_session(), notifier=notifier)
            self.app.config, self.app.pipeline, self.app.publishers = config, pipeline, publishers
            self.app.store.log_event("config_reloaded", "The config was reloaded")
            notifier.resolved("config", "The config is valid again and was applied")
            log.info("Config reloaded: %d feed(s), %d channel(s)", len(config.feeds), len(config.channels))
            return pipeline


def run_daemon(ctx: Context, app: App) -> None:
    reloader = Reloader(ctx, app)
    daemon = Daemon(app.pipeline, on_reload=reloader.reload)
    metrics_server = None
    if app.config.daemon.metrics:
        from autopublish.metrics import start_metrics_server

        metrics_server = start_metrics_server(app.config.daemon.metrics, lambda: daemon)

    def watch() -> None:
        if reloader.changed():
            daemon.reload()

    original_schedule = daemon.schedule

    def schedule_with_watch() -> None:
        original_schedule()
        daemon.scheduler.add_job(watch, "interval", seconds=3, id="config-watch", replace_existing=True)

    daemon.schedule = schedule_with_watch  # type: ignore[method-assign]
    try:
        daemon.run()
    finally:
        if metrics_server is not None:
            metrics_server.shutdown()
