"""The daemon: APScheduler 3.x timers around the pipeline. The only module that imports APScheduler.

Jobs: one poll per feed (which also sends what became due), a sweep for retries and
reconciliation, channel health checks, log pruning. One worker thread: a poll and a
sweep never interleave. SIGTERM/SIGINT finish the publish in flight, record it and exit.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.interval import IntervalTrigger

from autopublish.errors import StateError
from autopublish.pipeline import Pipeline

log = logging.getLogger(__name__)


class ConfigReloader(Protocol):
    def changed(self) -> bool:
        """True once after the config file changed on disk."""

    def reload(self) -> Pipeline | None:
        """A pipeline on the new config, or None when it is invalid (keep the old one)."""


class Daemon:
    def __init__(self, pipeline: Pipeline, *, reloader: ConfigReloader | None = None) -> None:
        self.pipeline = pipeline
        self.stop_event = threading.Event()
        self.reloader = reloader
        self.scheduler = BlockingScheduler(
            timezone=UTC,
            executors={"default": ThreadPoolExecutor(1)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 300},
        )
        self.last_tick: float | None = None
        self.failed_state: str | None = None

    # --- jobs ---------------------------------------------------------------------
    def _guard(self, job: Callable[[], Any], name: str) -> Callable[[], None]:
        def run() -> None:
            if self.stop_event.is_set():
                return
            try:
                job()
                self.failed_state = None
            except StateError as exc:
                self.failed_state = exc.message
                log.error("%s", exc.message)
            except Exception as exc:  # one bad tick must not end the daemon
                log.error("The %s job failed (%s); it will run again at its next time", name, type(exc).__name__, exc_info=log.isEnabledFor(logging.DEBUG))
            finally:
                self.last_tick = time.time()

        return run

    def _poll(self, feed: str) -> None:
        self.pipeline.poll_feed(feed)
        self.pipeline.deliver_due(self.stop_event)

    def _sweep(self) -> None:
        self.pipeline.deliver_due(self.stop_event)

    def _prune(self) -> None:
        keep = self.pipeline.config.settings.log_retention
        removed = self.pipeline.store.prune_events(time.time() - keep)
        if removed:
            log.info("Removed %d publish-log rows older than the retention period", removed)

    def schedule(self) -> None:
        self.scheduler.remove_all_jobs()
        config = self.pipeline.config
        now = datetime.now(UTC)
        for index, feed in enumerate(config.feeds.values()):
            if not feed.enabled:
                continue
            self.scheduler.add_job(self._guard(lambda f=feed.name: self._poll(f), f"poll {feed.name}"),
                                   IntervalTrigger(seconds=feed.poll_interval), id=f"poll:{feed.name}",
                                   next_run_time=now + timedelta(seconds=index * 0.5), replace_existing=True)
        self.scheduler.add_job(self._guard(self._sweep, "sweep"), IntervalTrigger(seconds=config.settings.sweep_interval), id="sweep",
                               next_run_time=now, replace_existing=True)
        self.scheduler.add_job(self._guard(self.pipeline.check_channels, "check"), IntervalTrigger(seconds=config.settings.check_interval),
                               id="check", next_run_time=now + timedelta(seconds=5), replace_existing=True)
        self.scheduler.add_job(self._guard(self._prune, "prune"), IntervalTrigger(hours=24), id="prune",
                               next_run_time=now + timedelta(minutes=1), replace_existing=True)
        if self.reloader is not None:
            self.scheduler.add_job(self._guard(self._watch_config, "config watch"), IntervalTrigger(seconds=3), id="config-watch",
                                   replace_existing=True)

    def _watch_config(self) -> None:
        if self.reloader is not None and self.reloader.changed():
            self.reload()

    # --- life cycle -------------------------------------------------------------------
    def stop(self, *_: object) -> None:
        if self.stop_event.is_set():
            return
        log.info("Stopping: finishing the post in flight")
        self.stop_event.set()
        threading.Thread(target=self._shutdown, daemon=True).start()

    def _shutdown(self) -> None:
        try:
            self.scheduler.shutdown(wait=True)
        except Exception:
            pass

    def reload(self, *_: object) -> None:
        if self.reloader is None:
            return
        replacement = self.reloader.reload()
        if replacement is not None:
            self.pipeline = replacement
            self.schedule()

    def run(self) -> None:
        self.pipeline.recover()
        self.schedule()
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        if hasattr(signal, "SIGHUP"):
            signal.signal(signal.SIGHUP, lambda *_: threading.Thread(target=self.reload, daemon=True).start())
        log.info("autopublish is running: %d feed(s), %d channel(s)", len(self.pipeline.config.feeds), len(self.pipeline.config.channels))
        self.scheduler.start()
        log.info("autopublish stopped")
