"""One delivery lane per channel, so a slow or hanging platform delays only its own channel.

A lane is one thread working through one channel's due deliveries in order; a channel
never has two lanes, so its order and pacing stay exactly as with one loop. Lanes are
daemon threads: at shutdown the daemon waits a bounded time for them, and a post still
hanging after that is left ``sending``, which the next start turns into ``uncertain``.
The Lanes object outlives a config reload (the new pipeline takes over the old one's).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Lanes:
    def __init__(self) -> None:
        self._threads: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()

    def busy(self, channel: str) -> bool:
        with self._lock:
            thread = self._threads.get(channel)
            return thread is not None and thread.is_alive()

    def start(self, channel: str, job: Callable[[], None]) -> threading.Thread | None:
        """Run ``job`` on the channel's lane; None (and nothing started) while the lane is still busy."""
        with self._lock:
            current = self._threads.get(channel)
            if current is not None and current.is_alive():
                return None
            thread = threading.Thread(target=job, name=f"lane:{channel}", daemon=True)
            self._threads[channel] = thread
            thread.start()
            return thread

    def in_flight(self) -> list[str]:
        with self._lock:
            return sorted(name for name, thread in self._threads.items() if thread.is_alive())

    def wait(self, timeout: float) -> list[str]:
        """Wait up to ``timeout`` seconds for every lane; the channels still busy after it."""
        deadline = time.monotonic() + timeout
        with self._lock:
            threads = list(self._threads.values())
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return self.in_flight()
