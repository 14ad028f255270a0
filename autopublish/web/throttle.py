"""Sign-in throttling per address and per account, with exponential backoff.

An attempt is *reserved* before the password hash is computed: the reservation counts it
as a failure and sets the next allowed time at once, under one lock, so parallel requests
cannot slip through while a hash is being computed. Success clears both counts.

The address count dominates (it grows to an hour between tries); the account count is
gentle (at most 30 seconds), so a stranger guessing at an editor's name from many
addresses slows that editor by seconds. A browser that signed in to the account before
(it shows a device cookie, as in OWASP's "device cookies" scheme) skips the account count,
so such a stranger cannot keep the editor out by always taking the next free moment
first. IPv6 addresses count per
/64, the block one subscriber usually gets. Counts live in memory (one ``autopublish web``
process), are forgotten after a quiet day, and are bounded in number.
"""

from __future__ import annotations

import ipaddress
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass

FORGET_AFTER = 86400.0  # a count with no attempt for this long starts again from zero
MAX_ENTRIES = 20_000    # per kind; the stalest go first beyond this


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


@dataclass
class _Count:
    failures: int = 0
    not_before: float = 0.0
    last: float = 0.0


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
    def __init__(self, clock: Callable[[], float], *, address: Backoff = ADDRESS_BACKOFF, account: Backoff = ACCOUNT_BACKOFF) -> None:
        self.clock = clock
        self.backoff = {"address": address, "account": account}
        self._counts: dict[str, dict[str, _Count]] = {"address": {}, "account": {}}
        self._lock = threading.Lock()

    def reserve(self, address: str, account: str, *, known_device: bool = False) -> Reservation | int:
        """Count this attempt before checking it: a Reservation, or the whole seconds to wait first.

        ``known_device``: the browser signed in to this account before; only its address counts.
        """
        keys = {"address": address_key(address), "account": account.casefold()[:200]}
        if known_device:
            del keys["account"]
        with self._lock:
            now = self.clock()
            counts = {kind: self._count(kind, key, now) for kind, key in keys.items()}
            wait = max(count.not_before - now for count in counts.values())
            if wait > 0:
                return max(1, math.ceil(wait))
            for kind, count in counts.items():
                count.failures += 1
                count.last = now
                count.not_before = now + self.backoff[kind].delay(count.failures)
            return Reservation(keys["address"], account.casefold()[:200])

    def succeeded(self, reservation: Reservation) -> None:
        """The password was right: both counts start again."""
        with self._lock:
            self._counts["address"].pop(reservation.address, None)
            self._counts["account"].pop(reservation.account, None)

    def _count(self, kind: str, key: str, now: float) -> _Count:
        table = self._counts[kind]
        count = table.get(key)
        if count is not None and now - count.last > FORGET_AFTER:
            count = None
        if count is None:
            if len(table) >= MAX_ENTRIES:
                self._shrink(table, now)
            count = table[key] = _Count()
        return count

    @staticmethod
    def _shrink(table: dict[str, _Count], now: float) -> None:
        for key in [k for k, c in table.items() if now - c.last > FORGET_AFTER]:
            del table[key]
        if len(table) >= MAX_ENTRIES:
            for key in sorted(table, key=lambda k: table[k].last)[: len(table) - MAX_ENTRIES // 2]:
                del table[key]
