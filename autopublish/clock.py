"""This node's clock, set to the shared database's time (PostgreSQL).

Nodes judge each other by the times they write. A heartbeat older than ``dead_after`` means a
dead node: its posts in flight are then checked on the platform and may be tried again. A lease
runs until a time. A node whose clock is a minute ahead would take a live node for dead while
it is still posting, and one a minute behind would hold its leases a minute too long. So every
node reads the database's clock and adds the difference to its own: they agree without NTP.
SQLite has one node, which keeps its own clock.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from autopublish.durations import format_duration

log = logging.getLogger(__name__)

MAX_ROUND_TRIP = 0.5  # a reading that took longer may be off by half of it: keep the offset we have
SKEW_WARNING = 2.0  # seconds off the database's clock worth telling the admins about


class NodeClock:
    """The wall clock plus this node's offset to the database's clock; call it for the time."""

    def __init__(self, wall: Callable[[], float] = time.time) -> None:
        self.wall = wall
        self.offset = 0.0
        self.aligned = False
        self._told = 0.0  # the offset the admins were last told about

    def __call__(self) -> float:
        return self.wall() + self.offset

    def align(self, read_database: Callable[[], float | None], *, tries: int = 1) -> bool:
        """Take the offset from a reading of the database's clock, up to ``tries`` readings until one is quick.

        False, keeping the offset, when there is no database clock (SQLite) or every reading was
        too slow to trust. A reading is taken to be from the middle of its round trip.
        """
        for _ in range(tries):
            sent = self.wall()
            database_now = read_database()
            received = self.wall()
            if database_now is None:
                return False
            if received - sent <= MAX_ROUND_TRIP:
                self._set(database_now - (sent + received) / 2)
                return True
        return False

    def _set(self, offset: float) -> None:
        if abs(offset) < SKEW_WARNING:
            self._told = 0.0  # right again: a later skew is news
        elif abs(offset - self._told) >= SKEW_WARNING:
            self._told = offset
            way = "behind" if offset > 0 else "ahead of"
            log.warning("This machine's clock is %s %s the database's. autopublish uses the database's time for heartbeats, "
                        "leases and the log, so the nodes still agree; set up NTP (systemd-timesyncd or chrony) so that "
                        "the machine's other programs are right too", format_duration(abs(offset)), way)
        self.offset, self.aligned = offset, True
