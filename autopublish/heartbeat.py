"""A node's heartbeat: how the other nodes sharing a database know this one is alive."""

from __future__ import annotations

import logging
import threading

from autopublish.errors import AutopublishError
from autopublish.store import Store

log = logging.getLogger(__name__)


class Heartbeat:
    """This node's heartbeat, on its own thread: a long publish or poll never makes a live node look dead."""

    def __init__(self, store: Store, interval: float) -> None:
        self.store = store
        self.interval = interval
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="autopublish-heartbeat", daemon=True)

    def start(self) -> Heartbeat:
        self.store.register_node()
        self.thread.start()
        return self

    def _run(self) -> None:
        while not self.stopped.wait(self.interval):
            try:
                self.store.align_clock()  # the machine's clock may have been stepped or drifted since
                self.store.heartbeat()
            except AutopublishError as exc:
                log.error("The node heartbeat could not be written: %s", exc.message)

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=30)
