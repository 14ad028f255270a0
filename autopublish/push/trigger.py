"""Coalesce push requests into polls: the first at once, then at most one more per feed every ``gap`` seconds."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class PollTrigger:
    """Runs ``poll(feed)`` on one worker thread when pushes ask for it.

    A request for a feed with no poll pending is due at once, or ``gap`` seconds after
    that feed's previous push poll started. Requests for a feed whose poll is already
    pending are folded into it. So a second post published in the same second (its ping
    arriving while the first poll runs) is still seen, and a flood of pings costs at
    most one poll per feed per ``gap``.
    """

    def __init__(self, poll: Callable[[str], object], *, gap: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._poll = poll
        self.gap = gap
        self._clock = clock
        self._cond = threading.Condition()
        self._due: dict[str, float] = {}
        self._last: dict[str, float] = {}
        self._stopped = False
        self._thread: threading.Thread | None = None
        self.polls = 0  # polls started, for tests and the bench

    def request(self, feed: str) -> None:
        with self._cond:
            if feed in self._due or self._stopped:
                return
            now = self._clock()
            last = self._last.get(feed)
            self._due[feed] = now if last is None else max(now, last + self.gap)
            self._cond.notify()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="push-poll", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        with self._cond:
            self._stopped = True
            self._due.clear()
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout)

    def _next(self) -> str | None:
        with self._cond:
            while not self._stopped:
                if not self._due:
                    self._cond.wait()
                    continue
                feed, when = min(self._due.items(), key=lambda item: item[1])
                wait = when - self._clock()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                del self._due[feed]
                self._last[feed] = self._clock()
                self.polls += 1
                return feed
            return None

    def _run(self) -> None:
        while (feed := self._next()) is not None:
            try:
                self._poll(feed)
            except Exception as exc:  # one failed push poll must not end the worker; the regular poll still runs
                log.error("The push poll of feed %s failed (%s); its regular poll continues", feed, type(exc).__name__)
