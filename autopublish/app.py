"""Composition root: settings -> store, HTTP sessions, publishers, pipeline."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import requests

from autopublish.alerts import Alerter
from autopublish.config import Config
from autopublish.errors import AutopublishError, ConfigError, ConfigProblem
from autopublish.feeds import USER_AGENT
from autopublish.heartbeat import Heartbeat
from autopublish.malloc import cap_arenas
from autopublish.netguard import GuardedFetcher
from autopublish.pipeline import Notifier, Pipeline
from autopublish.platforms import publisher_class
from autopublish.platforms.base import Publisher, PublisherEnv
from autopublish.store import Store

log = logging.getLogger(__name__)


def feed_fetcher(config: Config) -> GuardedFetcher:
    """The guarded fetcher for feeds and every URL taken from feed data (images)."""
    return GuardedFetcher(allow_private_hosts=config.settings.allow_private_hosts, user_agent=USER_AGENT)


def platform_session() -> requests.Session:
    """One session for every platform call; no transport retries (a repeated POST can double-post)."""
    session = requests.Session()
    session.headers["User-Agent"] = USER_AGENT
    return session


def build_publishers(config: Config, session: requests.Session, *, clock: Callable[[], float] = time.time) -> dict[str, Publisher[Any]]:
    env = PublisherEnv(
        session=session,
        state_dir=config.state_dir,
        timeout=(min(10.0, config.settings.publish_timeout), config.settings.publish_timeout),
        now=lambda: datetime.fromtimestamp(clock(), UTC),
        fetcher=feed_fetcher(config),
    )
    publishers: dict[str, Publisher[Any]] = {}
    for name, channel in config.channels.items():
        try:
            cls = publisher_class(channel.platform)
        except ImportError as exc:
            raise ConfigError([ConfigProblem(str(config.path), f"channels.{name}.platform", f"the platform cannot be loaded ({exc})",
                                             "reinstall autopublish: pip install .")]) from None
        publishers[name] = cls(name, channel.options, env)
    return publishers


@dataclass
class App:
    config: Config
    store: Store
    pipeline: Pipeline
    publishers: dict[str, Publisher[Any]]
    heartbeat: Heartbeat | None = None

    def join(self) -> None:
        """Take part as a node (daemon and run --once): heartbeat until closed."""
        self.heartbeat = Heartbeat(self.store, self.config.settings.heartbeat).start()

    def close(self) -> None:
        try:
            if self.heartbeat is not None:
                self.heartbeat.stop()
                self.store.leave()
        except AutopublishError as exc:
            log.error("%s", exc.message)
        finally:
            self.pipeline.fetcher.close()  # its kept-alive feed connections
            self.store.close()


def build_pipeline(config: Config, store: Store, *, clock: Callable[[], float] | None = None,
                   notifier: Notifier | None = None) -> tuple[Pipeline, dict[str, Publisher[Any]]]:
    """The pipeline for ``config`` over an open store (at start-up and on every reload); ``clock`` defaults to the store's."""
    clock = clock or store.clock
    publishers = build_publishers(config, platform_session(), clock=clock)
    notifier = notifier or Alerter(config, store, publishers)
    return Pipeline(config, store, publishers, feed_fetcher(config), clock=clock, notifier=notifier), publishers


def open_app(config: Config, *, clock: Callable[[], float] | None = None, notifier: Notifier | None = None) -> App:
    """The store, pipeline and publishers for ``config``; ``clock`` defaults to the store's (see clock.py)."""
    cap_arenas()  # before the fetch pool's threads exist (see malloc.py)
    store = Store.for_config(config, clock=clock)
    pipeline, publishers = build_pipeline(config, store, notifier=notifier)
    return App(config, store, pipeline, publishers)
