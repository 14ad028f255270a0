"""The editors' web page (a Flask app): publish log, queue, channel health, previews, actions.

Reads and acts through the same Store the daemon writes (SQLite in WAL mode, or the nodes' PostgreSQL; both work at
once). The pages and actions are the Blueprint in ``views``; this module builds the app
around it.

Safety: nothing but /healthz without signing in; accounts and roles from ``[[web.users]]``
(re-read when the config changes); revocable sessions kept in the store, named by a
signed, HttpOnly, SameSite=Lax cookie; sign-in throttled per address and account; a
per-session CSRF token on every POST; Jinja2 autoescaping of all feed data; a strict
Content-Security-Policy; every stored reason or message passes through the secrets
Redactor before it is shown. The README's "Security" section says what this protects.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import Flask

from autopublish.config import Config, WebUserModel
from autopublish.errors import StateError
from autopublish.filemodes import private_dir
from autopublish.secrets import Redactor
from autopublish.store import Store
from autopublish.web import display, proxy
from autopublish.web.auth import csrf_token
from autopublish.web.context import EXTENSION, WebContext
from autopublish.web.sessions import SessionBook
from autopublish.web.throttle import LoginThrottle
from autopublish.web.users import UserDirectory
from autopublish.web.views import bp

log = logging.getLogger(__name__)

SECRET_FILE = "web-secret"


def load_secret_key(config: Config) -> bytes:
    """[web] secret_key if set, else a random key made once and kept in <state_dir>/web-secret (mode 0600)."""
    if config.web.secret_key is not None:
        return config.web.secret_key.reveal().encode()
    path = config.state_dir / SECRET_FILE
    try:
        private_dir(config.state_dir)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            key = path.read_bytes().strip()
            if len(key) >= 32:
                return key
            fd = os.open(path, os.O_WRONLY | os.O_TRUNC, 0o600)
        key = secrets.token_hex(32).encode()
        with os.fdopen(fd, "wb") as handle:
            handle.write(key + b"\n")
        os.chmod(path, 0o600)
        return key
    except OSError as exc:
        raise StateError(f"The web page's session key {path} cannot be written ({exc.strerror}); "
                         "check the state directory's permissions or set [web] secret_key") from None


def create_app(config: Config, *, redactor: Redactor | None = None, store: Store | None = None,
               clock: Callable[[], float] | None = None, publishers: dict[str, Any] | None = None,
               config_loader: Callable[[], Config] | None = None) -> Flask:
    """The WSGI app. ``store`` defaults to the Store the config names (SQLite in state_dir, or PostgreSQL), shared by all requests.

    ``config_loader`` re-reads the config; with it, edits to ``[[web.users]]`` apply without a restart.
    """
    app = Flask(__name__)
    store = store or Store.for_config(config, clock=clock)
    clock = clock or store.clock
    refresh = max(5, int(config.web.refresh))
    secret_key = load_secret_key(config)
    sessions = SessionBook(store, secret_key, clock, idle_timeout=config.web.session_idle_timeout, lifetime=config.web.session_lifetime)

    def accounts_changed(old: dict[str, WebUserModel], new: dict[str, WebUserModel]) -> None:
        for name in old:
            ended = sessions.end_stale(new.get(name), name)
            if ended:
                log.info("web: %d session(s) of %s ended: the account %s", ended, name, "changed" if name in new else "was removed")

    context = WebContext(
        config=config,
        store=store,
        redactor=redactor or Redactor(config.secret_values()),
        clock=clock,
        zone=ZoneInfo(config.settings.timezone),
        refresh=refresh,
        users=UserDirectory(config, config_loader, on_change=accounts_changed),
        sessions=sessions,
        throttle=LoginThrottle(store, clock),
        publisher_cache=dict(publishers) if publishers is not None else {},
    )
    app.config.update(
        SECRET_KEY=secret_key,
        SESSION_COOKIE_NAME="autopublish_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=timedelta(seconds=config.web.session_lifetime),
        MAX_CONTENT_LENGTH=64 * 1024,
        TEMPLATES_AUTO_RELOAD=False,
    )
    app.jinja_env.autoescape = True  # all templates, whatever their name
    app.extensions[EXTENSION] = context
    app.extensions["autopublish_store"] = store
    display.install(app, refresh=refresh, zone_name=config.settings.timezone)
    app.jinja_env.globals["csrf_token"] = csrf_token
    proxy.install(app, config.web.trusted_proxies, config.web.secure_cookies)
    app.register_blueprint(bp)
    return app


def make_server(app: Flask, host: str, port: int, *, threads: int = 8) -> Any:
    """A waitress server for the app (port 0: any free port; ``effective_port`` says which).

    Waitress is told to leave X-Forwarded-* headers alone (by default it strips them all):
    ``proxy.TrustedProxies`` decides whose to believe, from ``[web] trusted_proxies``.
    """
    from waitress.server import create_server

    return create_server(app, host=host, port=port, threads=threads, ident="autopublish", clear_untrusted_proxy_headers=False)


def serve(app: Flask, host: str, port: int) -> None:
    """Serve with waitress until interrupted."""
    make_server(app, host, port).run()
