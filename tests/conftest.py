"""Test-wide guards (no socket may reach anything but loopback), the shared platform factories and the store fixtures over SQLite and PostgreSQL."""

from __future__ import annotations

import ipaddress
import os
import socket
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pytest
import requests

from autopublish.platforms.base import Publisher, PublisherEnv
from autopublish.store import Store
from tests.helpers import PUBLISH_TIMEOUT, Clock

# The editors' page fixtures (a site with its config and store, and the Flask app over it) for every
# module that tests the page: defined in test_web.py, shared here so no test module re-imports them.
from tests.test_web import app, site  # noqa: F401

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_getaddrinfo = socket.getaddrinfo


def _loopback_only(address: object) -> None:
    if isinstance(address, tuple) and address:
        host = str(address[0])
        if host in ("localhost",):
            return
        try:
            ip = ipaddress.ip_address(host.split("%")[0])
        except ValueError:
            raise OSError(f"tests may only connect to loopback, not {host!r}") from None
        if not ip.is_loopback:
            raise OSError(f"tests may only connect to loopback, not {host}")


def _guarded_connect(self: socket.socket, address: object) -> None:
    if self.family in (socket.AF_INET, socket.AF_INET6):
        _loopback_only(address)
    return _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: object) -> int:
    if self.family in (socket.AF_INET, socket.AF_INET6):
        _loopback_only(address)
    return _real_connect_ex(self, address)


def _guarded_getaddrinfo(host: object, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
    if host not in (None, "localhost", "127.0.0.1", "::1", b"localhost", b"127.0.0.1"):
        try:
            ipaddress.ip_address(host.decode() if isinstance(host, bytes) else str(host))
        except ValueError:
            raise socket.gaierror(socket.EAI_NONAME, f"tests do not resolve {host!r}") from None
    return _real_getaddrinfo(host, *args, **kwargs)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refuse any connection or name lookup that would leave the machine."""
    monkeypatch.setattr(socket.socket, "connect", _guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", _guarded_connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", _guarded_getaddrinfo)


# --- shared platform factories -----------------------------------------------------------------
class _Startable(Protocol):
    def start(self) -> Any: ...
    def stop(self) -> Any: ...


FakeT = TypeVar("FakeT", bound=_Startable)
PublisherT = TypeVar("PublisherT", bound=Publisher[Any])


@pytest.fixture
def platform_fake() -> Iterator[Callable[[FakeT], FakeT]]:
    """Start a platform's loopback fake for this test; every fake started is stopped at its end."""
    started: list[_Startable] = []

    def start(server: FakeT) -> FakeT:
        server.start()
        started.append(server)
        return server

    yield start
    for server in reversed(started):
        server.stop()


def make_publisher(
    publisher_class: type[PublisherT],
    keys: Mapping[str, Any],
    tmp_path: Path,
    *,
    env: Mapping[str, str] | None = None,
    channel: str = "main",
    now: Callable[[], datetime] | None = None,
) -> PublisherT:
    """A publisher built as the composition root builds it: options validated with ``env`` as the environment."""
    options = publisher_class.Options.model_validate(dict(keys), context={"env": dict(env or {})})
    publisher_env = PublisherEnv(session=requests.Session(), state_dir=tmp_path, timeout=PUBLISH_TIMEOUT, now=now or (lambda: datetime.now(UTC)))
    return publisher_class(channel, options, publisher_env)  # type: ignore[arg-type]


# --- the store over both databases -------------------------------------------------------------------
# PostgreSQL comes from AUTOPUBLISH_TEST_DATABASE_URL (bash .ci/run starts a throwaway cluster on a
# loopback port); each test gets its own database, dropped afterwards.

PG_URL = os.environ.get("AUTOPUBLISH_TEST_DATABASE_URL", "")
NO_PG = "PostgreSQL store tests need AUTOPUBLISH_TEST_DATABASE_URL (bash .ci/run starts a throwaway PostgreSQL)"


@contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """A new, empty PostgreSQL database on the test server; its URL."""
    import psycopg
    from sqlalchemy.engine import make_url

    name = f"autopublish_test_{uuid.uuid4().hex[:12]}"
    admin = make_url(PG_URL)
    conninfo = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path | str]:
    """Where a store lives: a state directory (SQLite) or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield tmp_path / "queue"
        return
    if not PG_URL:
        pytest.skip(NO_PG)
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database (tests of several nodes; SQLite is single-node)."""
    if not PG_URL:
        pytest.skip(NO_PG)
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture
def clock() -> Clock:
    """The store contract's clock, at a fixed moment."""
    return Clock(1_800_000_000.0)


@pytest.fixture
def open_store(database: Path | str, clock: Clock) -> Iterator[Callable[[], Store]]:
    """Open another node (another process's store) on the test database; the first one creates the schema."""
    opened: list[Store] = []

    def make() -> Store:
        store = Store(database, clock=clock, migrate=True)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()
