"""The one way autopublish fetches a URL it did not choose itself (feeds, and anything named in feed data).

Server-side request forgery is the risk: a feed item whose image points at
``http://169.254.169.254/`` or ``http://127.0.0.1:6379/`` would otherwise make the daemon
fetch an internal service and upload the answer to a public post. So every fetch here:

- accepts only http(s);
- resolves the host once, refuses internal addresses (loopback, RFC 1918, link-local,
  CGNAT, ULA, IPv4-mapped, multicast, reserved, unspecified), then connects to exactly
  that address (the socket is pinned; the Host header, TLS SNI and certificate check
  still use the host name), so DNS rebinding cannot swap the address after the check;
- follows redirects by hand, checking every hop;
- has one overall deadline (a watchdog shuts the socket when it passes, so a server
  sending a byte a second is cut off) and a size cap.

Two exceptions to the address rule: the origin (scheme, host, port) of the feed that
carried the URL, and the hosts an admin lists in ``[settings] allow_private_hosts``.
"""

from __future__ import annotations

import heapq
import ipaddress
import queue
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from autopublish.errors import AddressRefusedError, FetchError

# Resolves (host, port) to IP address strings, in the system's order. The seam for tests.
Resolver = Callable[[str, int], list[str]]

REDIRECTS = (301, 302, 303, 307, 308)

# Named explicitly, on top of ipaddress's own properties, so the list is readable and does
# not depend on the Python version's idea of "global".
REFUSED_NETS = tuple(
    ipaddress.ip_network(net)
    for net in (
        "0.0.0.0/8",  # "this network"
        "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",  # RFC 1918
        "100.64.0.0/10",  # CGNAT (RFC 6598)
        "127.0.0.0/8",  # loopback
        "169.254.0.0/16",  # link-local, cloud metadata
        "192.0.0.0/24", "192.0.2.0/24", "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24",  # special use, benchmarking, docs
        "224.0.0.0/4", "240.0.0.0/4", "255.255.255.255/32",  # multicast, reserved, broadcast
        "::/128", "::1/128",  # unspecified, loopback
        "::ffff:0:0/96",  # IPv4-mapped (would reach an IPv4 address by the back door)
        "64:ff9b::/96", "64:ff9b:1::/48", "2002::/16",  # NAT64 and 6to4 embed IPv4 addresses
        "fc00::/7",  # unique local (ULA)
        "fe80::/10",  # link-local
        "ff00::/8",  # multicast
        "2001:db8::/32",  # documentation
    )
)


def refusal_reason(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why ``ip`` is not a public address (plain words), or None when it is public."""
    if ip.is_loopback:
        return "a loopback address (this machine)"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return "an IPv4-mapped address"
    if ip.is_link_local:
        return "a link-local address (such as cloud metadata)"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_unspecified or ip.is_reserved:
        return "a reserved address"
    if any(ip.version == net.version and ip in net for net in REFUSED_NETS) or ip.is_private or not ip.is_global:
        return "an internal network address"
    return None


def system_resolver(host: str, port: int) -> list[str]:
    """The host's addresses from the system resolver (one lookup)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses: list[str] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        address = str(sockaddr[0]).split("%")[0]
        if address not in addresses:
            addresses.append(address)
    return addresses


@dataclass(frozen=True, slots=True)
class Origin:
    scheme: str
    host: str
    port: int

    @classmethod
    def of(cls, url: str | None) -> Origin | None:
        """The origin of an http(s) URL, or None when it has none."""
        if not url:
            return None
        try:
            parts = urlsplit(url.strip())
            port = parts.port
        except ValueError:
            return None
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            return None
        return cls(scheme, parts.hostname.lower().rstrip("."), port or (443 if scheme == "https" else 80))

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


class _Watchdog:
    """One shared thread that shuts the sockets of every fetch whose deadline has passed.

    A heap of (end time, sequence, deadline) replaces a timer thread per fetch; a closed
    deadline is simply skipped when its turn comes."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Deadline]] = []
        self._wake = threading.Condition()
        self._seq = 0
        self._thread: threading.Thread | None = None

    def watch(self, deadline: Deadline) -> None:
        with self._wake:
            self._seq += 1
            heapq.heappush(self._heap, (deadline.ends, self._seq, deadline))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="autopublish-fetch-watchdog", daemon=True)
                self._thread.start()
            elif self._heap[0][2] is deadline:
                self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                while self._heap and self._heap[0][2].closed:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._wake.wait(5.0)
                    if not self._heap:
                        self._thread = None
                        return
                    continue
                wait = self._heap[0][0] - time.monotonic()
                if wait > 0:
                    self._wake.wait(wait)
                    continue
                due = heapq.heappop(self._heap)[2]
            due._expire()


_WATCHDOG = _Watchdog()


class Deadline:
    """One overall time limit for a fetch. When it passes, every socket registered with it
    is shut down (by the shared watchdog thread), which ends any read in progress at once."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.ends = time.monotonic() + seconds
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self.expired = False
        self.closed = False
        _WATCHDOG.watch(self)

    def remaining(self) -> float:
        return max(0.0, self.ends - time.monotonic())

    def register(self, sock: socket.socket) -> None:
        with self._lock:
            if self.expired:
                _shut(sock)
            elif not self.closed and sock not in self._sockets:
                self._sockets.append(sock)

    def check(self) -> None:
        if self.expired or time.monotonic() > self.ends:
            self.expired = True
            raise FetchError(f"the download took longer than {self.seconds:g} s")

    def _expire(self) -> None:
        with self._lock:
            if self.closed:
                return
            self.expired = True
            for sock in self._sockets:
                _shut(sock)

    def close(self) -> None:
        """Stop watching: the registered sockets (which may go back to a pool) are forgotten."""
        with self._lock:
            self.closed = True
            self._sockets.clear()


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


# --- the pinned transport ------------------------------------------------------------------
# A connection is made to the pool's host, which is the checked IP address itself, so a
# kept-alive connection can never lead anywhere else. Each use of a connection registers its
# socket with the deadline of the fetch using it (connections outlive fetches).


class _Watched:
    deadline: Deadline | None = None
    sock: socket.socket | None

    def watch(self, deadline: Deadline) -> None:
        self.deadline = deadline
        if self.sock is not None:
            deadline.register(self.sock)


class _WatchedHTTPConnection(_Watched, HTTPConnection):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        if self.deadline is not None:
            self.deadline.register(sock)
        return sock


class _WatchedHTTPSConnection(_Watched, HTTPSConnection):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        if self.deadline is not None:
            self.deadline.register(sock)
        return sock


_current = threading.local()  # the deadline of the fetch running on this thread


class _IdleConnections:
    """The pool's queue of idle connections: a list and one lock (queue.LifoQueue holds three
    Conditions, ~3.5 KB per pool, which 1,000 feed hosts turn into megabytes). It never waits:
    the pools are made with urllib3's default block=False, which asks for nothing else."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._items: list[Any] = []
        self._lock = threading.Lock()

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        if item is not None:
            _forget_finished_response(item)
        with self._lock:
            if len(self._items) >= self.maxsize:
                raise queue.Full
            self._items.append(item)

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        with self._lock:
            if not self._items:
                raise queue.Empty
            return self._items.pop()

    def qsize(self) -> int:
        return len(self._items)


def _forget_finished_response(conn: Any) -> None:
    """Let go of an idle connection's last response (its headers: about 1.5 KB per feed host).

    http.client keeps a kept-alive connection's last response until the next request on it; an
    idle connection in a pool of 1,000 feed hosts would keep 1,000 of them between polls.
    """
    response = getattr(conn, "_HTTPConnection__response", None)
    if response is not None and response.isclosed():
        conn._HTTPConnection__response = None


class _WatchedPoolMixin:
    QueueCls = _IdleConnections

    def _get_conn(self, timeout: float | None = None) -> Any:
        conn = super()._get_conn(timeout)  # type: ignore[misc]
        deadline = getattr(_current, "deadline", None)
        if deadline is not None:
            conn.watch(deadline)
        return conn


class _WatchedHTTPPool(_WatchedPoolMixin, HTTPConnectionPool):  # type: ignore[misc]  # QueueCls: a duck-typed LifoQueue
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(_WatchedPoolMixin, HTTPSConnectionPool):  # type: ignore[misc]
    ConnectionCls = _WatchedHTTPSConnection


PoolKey = tuple[str, str, int, str, tuple[tuple[str, Any], ...]]


class PinnedPools:
    """Kept-alive connection pools, one per (scheme, host, port, pinned IP, TLS options), at most
    ``limit`` pools (least recently used closed first), ``per_pool`` idle connections each."""

    def __init__(self, limit: int = 1024, per_pool: int = 2) -> None:
        self.limit = limit
        self.per_pool = per_pool
        self._pools: OrderedDict[PoolKey, HTTPConnectionPool] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, scheme: str, host: str, port: int, address: str, pool_kwargs: dict[str, Any]) -> HTTPConnectionPool:
        key: PoolKey = (scheme, host, port, address, tuple(sorted(pool_kwargs.items(), key=lambda kv: kv[0])))
        old: HTTPConnectionPool | None = None
        with self._lock:
            pool = self._pools.get(key)
            if pool is not None:
                self._pools.move_to_end(key)
                return pool
            if scheme == "https":
                pool = _WatchedHTTPSPool(address, port, server_hostname=host, assert_hostname=host, maxsize=self.per_pool,
                                         **pool_kwargs)
            else:
                pool = _WatchedHTTPPool(address, port, maxsize=self.per_pool)
            self._pools[key] = pool
            if len(self._pools) > self.limit:
                _, old = self._pools.popitem(last=False)
        if old is not None:
            old.close()
        return pool

    def __len__(self) -> int:
        return len(self._pools)

    def close(self) -> None:
        with self._lock:
            pools = list(self._pools.values())
            self._pools.clear()
        for pool in pools:
            pool.close()


class PinnedAdapter(HTTPAdapter):
    """A requests transport that connects to one checked IP address, whatever the URL's host
    resolves to now. TLS still sends the host name (SNI) and verifies the certificate for it.

    With ``pools`` (shared by a GuardedFetcher) connections are kept alive and reused by later
    fetches pinned to the same address; without, they are closed with the adapter."""

    def __init__(self, address: str, deadline: Deadline, pools: PinnedPools | None = None) -> None:
        self.address = address
        self.deadline = deadline
        super().__init__(max_retries=0, pool_connections=1, pool_maxsize=1)
        self._shared = pools is not None
        self._registry = pools if pools is not None else PinnedPools(per_pool=1)

    def get_connection_with_tls_context(self, request: requests.PreparedRequest, verify: Any, proxies: Any = None,
                                        cert: Any = None) -> HTTPConnectionPool:
        host_params, pool_kwargs = self.build_connection_pool_key_attributes(request, verify, cert)
        scheme, host = host_params["scheme"], host_params["host"]
        port = host_params.get("port") or (443 if scheme == "https" else 80)
        return self._registry.get(scheme, host, port, self.address, dict(pool_kwargs) if scheme == "https" else {})

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        previous = getattr(_current, "deadline", None)
        _current.deadline = self.deadline
        try:
            return super().send(request, *args, **kwargs)
        finally:
            _current.deadline = previous

    def close(self) -> None:
        if not self._shared:
            self._registry.close()
        super().close()


# --- the fetcher ---------------------------------------------------------------------------


@dataclass
class Fetched:
    """An open streamed response (read it with ``read_capped``) and the URL it came from."""

    response: requests.Response
    url: str
    deadline: Deadline
    hops: int


class GuardedFetcher:
    """Fetches URLs named in feed data (and feeds themselves) under the rules in the module docstring.

    ``allow_private_hosts``: host names or IP addresses an admin vouches for.
    ``resolver``: the name lookup (tests replace it to simulate DNS rebinding).
    ``verify``: TLS verification as in requests (True, or a CA bundle path).
    """

    def __init__(self, *, allow_private_hosts: Iterable[str] = (), resolver: Resolver = system_resolver,
                 user_agent: str = "", verify: bool | str = True) -> None:
        self.allowed_hosts = frozenset(h.strip().lower().strip("[]").rstrip(".") for h in allow_private_hosts if h.strip())
        self.resolver = resolver
        self.user_agent = user_agent
        self.verify = verify
        self.pools = PinnedPools()

    # --- the checks ---------------------------------------------------------------------
    def pin(self, url: str, *, allowed_origin: Origin | None) -> str:
        """The one IP address to connect to for ``url``; AddressRefusedError when it may not be fetched."""
        _check_scheme(url)
        origin = Origin.of(url)
        if origin is None:
            raise AddressRefusedError("the address has no host")
        host = origin.host
        exempt = host in self.allowed_hosts or (allowed_origin is not None and origin == allowed_origin)
        try:
            literal: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None:
            addresses = [str(literal)]
        else:
            try:
                addresses = self.resolver(host, origin.port)
            except (OSError, UnicodeError):
                raise FetchError(f"the server name {host} could not be found") from None
            if not addresses:
                raise FetchError(f"the server name {host} could not be found")
        if not exempt:
            for address in addresses:
                try:
                    ip = ipaddress.ip_address(address)
                except ValueError:
                    raise AddressRefusedError(f"{host} resolves to something that is not an IP address") from None
                reason = refusal_reason(ip)
                if reason is not None:
                    shown = host if literal is not None else f"{host} ({ip})"
                    raise AddressRefusedError(f"{shown} is {reason}; autopublish does not fetch internal addresses named in feed data")
        return addresses[0]

    # --- fetching -----------------------------------------------------------------------
    @contextmanager
    def open(self, url: str, *, allowed_origin: Origin | str | None, headers: dict[str, str] | None = None,
             timeout: tuple[float, float] = (10.0, 20.0), deadline: float = 60.0, max_redirects: int = 5) -> Iterator[Fetched]:
        """GET ``url`` (following up to ``max_redirects`` checked redirects) and yield the open response.

        Raises AddressRefusedError, FetchError (too many redirects, deadline) or a
        requests exception for network failures. The response is closed on exit.
        """
        origin = Origin.of(allowed_origin) if isinstance(allowed_origin, str) else allowed_origin
        watch = Deadline(deadline)
        adapters: list[PinnedAdapter] = []
        response: requests.Response | None = None
        try:
            current = url
            for hop in range(max_redirects + 1):
                _check_scheme(current)
                try:
                    prepared = requests.Request("GET", current, headers=self._headers(headers)).prepare()
                except requests.RequestException:
                    raise AddressRefusedError("the address is not a valid http(s) URL") from None
                assert prepared.url is not None
                address = self.pin(prepared.url, allowed_origin=origin)  # the host as it will be sent (IDNA-encoded)
                # The connection goes to an IP address; the server must still see the host name.
                prepared.headers["Host"] = urlsplit(prepared.url).netloc.rsplit("@", 1)[-1]
                adapter = PinnedAdapter(address, watch, self.pools)
                adapters.append(adapter)
                remaining = watch.remaining()
                if remaining <= 0:
                    watch.check()
                connect, read = timeout
                try:
                    response = adapter.send(prepared, stream=True, timeout=(min(connect, remaining), min(read, remaining)),
                                            verify=self.verify, proxies={})
                except requests.RequestException:
                    watch.check()
                    raise
                location = response.headers.get("Location")
                if response.status_code in REDIRECTS and location:
                    _finish(response)
                    response = None
                    current = urljoin(current, location.strip())
                    continue
                response.url = current
                yield Fetched(response, current, watch, hop)
                return
            raise FetchError(f"the address redirects more than {max_redirects} times")
        finally:
            watch.close()  # before the connection goes back to the pool: its socket is no longer this fetch's
            if response is not None:
                _finish(response)
            for adapter in adapters:
                adapter.close()

    def close(self) -> None:
        """Close every kept-alive connection."""
        self.pools.close()

    def _headers(self, extra: dict[str, str] | None) -> dict[str, str]:
        headers = {"Accept-Encoding": "gzip, deflate"}
        if self.user_agent:
            headers["User-Agent"] = self.user_agent
        headers.update(extra or {})
        return headers


def _finish(response: requests.Response) -> None:
    """End ``response``: its connection goes back to the pool only when the body was read to its end
    (or it has none); a half-read body closes the connection, so leftovers never reach another fetch."""
    raw = response.raw
    original = getattr(raw, "_original_response", None)
    if original is not None and original.isclosed():
        raw.release_conn()
    elif original is not None and getattr(original, "length", None) == 0 and not original.will_close:
        original.close()
        raw.release_conn()
    response.close()


def _check_scheme(url: str) -> None:
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError:
        raise AddressRefusedError("the address is not a valid URL") from None
    if scheme not in ("http", "https"):
        raise AddressRefusedError(f"only http and https addresses are fetched, not \"{scheme or 'no scheme'}\"")


def read_capped(fetched: Fetched, max_bytes: int) -> bytes:
    """The decoded body, read as data arrives, within ``max_bytes`` and the fetch's deadline.

    read1 returns whatever has arrived, so a trickling server still meets the deadline
    check between reads, and the deadline's watchdog ends a read that waits. Counting
    decoded bytes makes gzip bombs hit the same cap. Raises FetchError.
    """
    chunks: list[bytes] = []
    size = 0
    raw = fetched.response.raw
    try:
        while True:
            fetched.deadline.check()
            chunk = raw.read1(65536, decode_content=True)
            if not chunk:
                break
            size += len(chunk)
            if size > max_bytes:
                raise FetchError(f"it is larger than the {_size(max_bytes)} limit")
            chunks.append(chunk)
        fetched.deadline.check()
    except urllib3.exceptions.ReadTimeoutError:
        fetched.deadline.check()
        raise FetchError("the server stopped answering (read timeout)") from None
    except urllib3.exceptions.DecodeError:
        raise FetchError("the body was cut off or badly compressed") from None
    except (urllib3.exceptions.ProtocolError, urllib3.exceptions.HTTPError, OSError):
        fetched.deadline.check()
        raise FetchError("the server closed the connection before the download was complete") from None
    return b"".join(chunks)


def _size(count: int) -> str:
    return f"{count // (1024 * 1024)} MB" if count >= 1024 * 1024 else f"{count} bytes"
