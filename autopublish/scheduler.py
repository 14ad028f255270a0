"""The daemon: APScheduler 3.x timers around the pipeline. The only module that imports APScheduler.

Two fixed jobs on one worker thread: a one-second tick that polls the feeds whose
interval has passed, sends what is due (retries, reconciliation), checks channel health
and prunes the log, each on its own timetable read from the current config; and a watch
that reloads an edited config. Jobs never add or remove jobs: a reload only swaps the
pipeline, so it cannot deadlock with a shutdown (APScheduler's shutdown holds the job
store lock while it waits for the running job). SIGTERM/SIGINT wait a bounded time for the
posts in flight (one lane per channel), record them and exit; a post still hanging is
left ``sending`` and becomes ``uncertain`` at the next start.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.interval import IntervalTrigger

from autopublish.errors import StateError
from autopublish.pipeline import Pipeline

log = logging.getLogger(__name__)
STOP_GRACE_SECONDS = 60.0  # at most this long (and no longer than publish_timeout) for posts in flight at SIGTERM


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
        self.next_run: dict[str, float] = {}  # monotonic time each feed poll / sweep / check is due
        self.failed_state: str | None = None
        self.polled: set[str] = set()  # feeds this node has polled since it started
        self.ready = threading.Event()  # set once start-up recovery is done; push polls wait for it

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

    def _tick(self) -> None:
        """Whatever is due now, in order: feed polls, then one sweep, then checks and pruning."""
        pipeline, now = self.pipeline, time.monotonic()  # a reload swaps self.pipeline between ticks
        settings = pipeline.config.settings
        due = [feed.name for feed in pipeline.config.feeds.values() if feed.enabled and self._due(f"poll:{feed.name}", now, feed.poll_interval)]
        if due:
            # At start a node polls every feed once; after that it skips a feed another node polls
            # now or polled within the interval, so N nodes poll it about once per interval.
            every = {name: pipeline.config.feeds[name].poll_interval for name in due if name in self.polled}
            self.polled.update(due)
            pipeline.poll_many(due, self.stop_event, every=every)  # concurrently, bounded by fetch_concurrency
        if self.stop_event.is_set():
            return
        sweep_due = self._due("sweep", now, settings.sweep_interval)
        if due or sweep_due:
            pipeline.deliver_due(self.stop_event, wait=False)  # one lane per channel; a hanging platform holds only its own
        pipeline.raise_lane_error()  # a lane's store failure from this or an earlier sweep
        if self._due("check", now, settings.check_interval, first_after=5.0):
            pipeline.check_channels()
            pipeline.check_removed()
        if self._due("prune", now, 86400.0, first_after=60.0):
            removed = pipeline.store.prune_events(time.time() - settings.log_retention)
            if removed:
                log.info("Removed %d publish-log rows older than the retention period", removed)

    def poll_now(self, name: str) -> bool:
        """Poll one configured feed at once and send what it brought (push: a ping, a hook, a hub).

        Runs on the caller's thread; the pipeline's lock keeps it from overlapping a tick.
        False when ``name`` is not an enabled feed or the daemon is stopping.
        """
        if not self.ready.wait(60.0):
            return False
        pipeline = self.pipeline
        feed = pipeline.config.feeds.get(name)
        if self.stop_event.is_set() or feed is None or not feed.enabled:
            return False
        pipeline.poll_feed(name)
        if not self.stop_event.is_set():
            pipeline.deliver_due(self.stop_event, wait=False)  # lanes: a hanging platform holds only its own channel
        return True

    def _due(self, name: str, now: float, interval: float, *, first_after: float = 0.0) -> bool:
        """True (and the next time set) when ``name`` is due; the first time after ``first_after``."""
        when = self.next_run.setdefault(name, now + first_after)
        if now < when:
            return False
        self.next_run[name] = now + interval
        return True

    def schedule(self) -> None:
        self.scheduler.add_job(self._guard(self._tick, "tick"), IntervalTrigger(seconds=1), id="tick",
                               next_run_time=datetime.now(UTC), replace_existing=True)
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
            replacement.poll_seconds.update(self.pipeline.poll_seconds)
            replacement.lanes = self.pipeline.lanes  # a channel never gets a second lane across a reload
            self.pipeline = replacement  # the next tick uses it; added feeds are polled at once

    def run(self) -> None:
        self.pipeline.recover()
        self.ready.set()
        self.schedule()
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        if hasattr(signal, "SIGHUP"):
            signal.signal(signal.SIGHUP, lambda *_: threading.Thread(target=self.reload, daemon=True).start())
        log.info("autopublish is running: %d feed(s), %d channel(s)", len(self.pipeline.config.feeds), len(self.pipeline.config.channels))
        self.scheduler.start()
        grace = min(self.pipeline.config.settings.publish_timeout, STOP_GRACE_SECONDS)
        busy = self.pipeline.lanes.wait(grace)
        if busy:
            log.warning("Stopping with post(s) still in flight after %d s on: %s; they will be checked on the platform at the next start",
                        grace, ", ".join(busy))
        log.info("autopublish stopped")
