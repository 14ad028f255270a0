"""Sign-in throttling per address and per account, with exponential backoff.

An attempt is *reserved* before the password hash is computed: the reservation counts it
as a failure and sets the next allowed time at once, in one database transaction that locks
the counts, so parallel requests cannot slip through while a hash is being computed, not
even requests served by different processes. Success clears both counts.

The address count dominates (it grows to an hour between tries); the account count is
gentle (at most 30 seconds), so a stranger guessing at an editor's name from many
addresses slows that editor by seconds. A browser that signed in to the account before
(it shows a device cookie, as in OWASP's "device cookies" scheme) skips the account count,
so such a stranger cannot keep the editor out by always taking the next free moment
first. IPv6 addresses count per
/64, the block one subscriber usually gets. Counts live in the store (store/signins.py),
so every ``autopublish web`` process on one database shares them and a restart keeps them;
they are forgotten after a quiet day, and bounded in number (pruned now and then).
"""

from __future__ import annotations

import ipaddress
import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass

from autopublish.errors import StateError
from autopublish.store.signins import SignInStore

FORGET_AFTER = 86400.0  # a count with no attempt for this long starts again from zero
MAX_ENTRIES = 20_000    # per kind; beyond this, counts holding nobody back go first, then the stalest
PRUNE_EVERY = 500       # counted attempts (per process) between prunes ...
PRUNE_INTERVAL = 300.0  # ... or seconds, whichever comes first

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Backoff:
    free: int     # failures allowed without waiting
    base: float   # the first wait, doubled after each further failure
    cap: float    # the longest wait

    def delay(self, failures: int) -> float:
        if failures < self.free:
            return 0.0
        return min(self.cap, self.base * 2.0 ** min(failures - self.free, 40))


ADDRESS_BACKOFF = Backoff(free=5, base=2.0, cap=3600.0)
ACCOUNT_BACKOFF = Backoff(free=5, base=1.0, cap=30.0)


@dataclass(frozen=True)
class Reservation:
    address: str
    account: str


def address_key(address: str) -> str:
    """The address a count is kept for: IPv4 as is, IPv6 by its /64 network."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


class LoginThrottle:
    """The throttle over a store's counts; ``clock`` defaults to the store's."""

    def __init__(self, store: SignInStore, clock: Callable[[], float] | None = None, *, address: Backoff = ADDRESS_BACKOFF,
                 account: Backoff = ACCOUNT_BACKOFF) -> None:
        self.store = store
        self.clock = clock or store.now
        self.backoff = {"address": address, "account": account}
        self._lock = threading.Lock()
        self._reservations = 0
        self._pruned_at = -math.inf

    def reserve(self, address: str, account: str, *, known_device: bool = False) -> Reservation | int:
        """Count this attempt before checking it: a Reservation, or the whole seconds to wait first.

        ``known_device``: the browser signed in to this account before; only its address counts.
        """
        reservation = Reservation(address_key(address), account.casefold()[:200])
        keys = [("address", reservation.address)] if known_device else [("address", reservation.address), ("account", reservation.account)]
        now = self.clock()
        wait = self.store.reserve_sign_in(keys, now=now, delay=self._delay, forget_after=FORGET_AFTER)
        if wait > 0:
            return max(1, math.ceil(wait))
        self._maybe_prune(now)
        return reservation

    def succeeded(self, reservation: Reservation) -> None:
        """The password was right: both counts start again."""
        self.store.clear_sign_in([("address", reservation.address), ("account", reservation.account)])

    def _delay(self, kind: str, failures: int) -> float:
        return self.backoff[kind].delay(failures)

    def _maybe_prune(self, now: float) -> None:
        """Now and then (every PRUNE_EVERY counted attempts of this process, or PRUNE_INTERVAL seconds) drop old counts."""
        with self._lock:
            self._reservations += 1
            if self._reservations < PRUNE_EVERY and now - self._pruned_at < PRUNE_INTERVAL:
                return
            self._reservations, self._pruned_at = 0, now
        try:
            self.store.prune_sign_ins(quiet_since=now - FORGET_AFTER, keep=MAX_ENTRIES)
        except StateError as exc:  # the attempt is counted; pruning waits for the next time
            log.warning("web: old sign-in counts could not be pruned: %s", exc.message)
