"""Poll a feed, pick new articles, deliver them to channels, record every outcome.

The Pipeline is a facade over three parts: ``intake`` (poll -> new articles -> deliveries),
``delivery`` (due deliveries -> publish -> record) and ``health`` (feed health, channel checks, articles gone from the site).

The order of operations is what makes "never twice, never lost" hold:
new articles and their deliveries are stored in one transaction; a delivery is
claimed (committed as ``sending``) before its publish call and marked after it;
anything left ``sending`` by a crash becomes ``uncertain`` and is settled by reading
the platform back, or by an editor: never by posting again blindly.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from autopublish.config import Config
from autopublish.delivery import Delivery, SweepResult, build_post, delivery_key
from autopublish.errors import StateError
from autopublish.health import TOKEN_WARNING_DAYS, ChannelHealth, SiteHealth
from autopublish.intake import Intake, PollResult, channel_filter_reason, fetch_limits, first_status, too_old
from autopublish.lanes import Lanes
from autopublish.netguard import GuardedFetcher
from autopublish.platforms.base import Publisher
from autopublish.retry import RetryPolicy
from autopublish.secrets import Redactor
from autopublish.stage import Notifier, Silent
from autopublish.store import Store

__all__ = ["TOKEN_WARNING_DAYS", "Notifier", "Pipeline", "PollResult", "SweepResult", "build_post", "channel_filter_reason",
           "delivery_key", "fetch_limits", "first_status", "too_old"]

log = logging.getLogger(__name__)


class Pipeline(Intake, Delivery, ChannelHealth, SiteHealth):
    """The core loop, driven by the scheduler (daemon) or by ``run --once``."""

    def __init__(
        self,
        config: Config,
        store: Store,
        publishers: dict[str, Publisher[Any]],
        fetcher: GuardedFetcher,
        *,
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
        notifier: Notifier | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.publishers = publishers
        self.fetcher = fetcher
        self.redact = Redactor(config.secret_values())  # platform and feed texts are stored only after this
        self.clock = clock
        self.rand = rand
        self.notifier: Notifier = notifier or Silent()
        s = config.settings
        self.policy = RetryPolicy(max_tries=s.max_tries, give_up_after=s.give_up_after, base=s.retry_base, cap=s.retry_cap,
                                  reconcile_after=s.reconcile_after, check_give_up_after=s.reconcile_give_up_after)
        self.fetch_limits = fetch_limits(s)
        self.lock = threading.RLock()  # one poll cycle or sweep dispatch at a time
        self.poll_seconds: dict[str, float] = {}  # the last poll's duration per feed, for /metrics
        self.lanes = Lanes()  # one delivery lane per channel; a reload hands it to the new pipeline
        self.lane_errors: list[StateError] = []
        self._held = threading.local()  # per thread: notifications held until its batch commits

    # --- start-up -----------------------------------------------------------------------
    def recover(self) -> list[int]:
        """Turn claims left by a crash (SQLite) or by dead nodes (PostgreSQL) into uncertain deliveries."""
        ids = self.store.recover_interrupted()
        for delivery_id in ids:
            log.warning("Delivery %s was interrupted mid-post; it is now uncertain and will be checked", delivery_id)
        return ids
