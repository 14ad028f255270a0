"""Behind a reverse proxy: X-Forwarded-For and X-Forwarded-Proto count only from ``[web] trusted_proxies``.

Anyone can send those headers; believing them from any peer would let a visitor pick the
address the sign-in throttle counts. From a trusted peer, the client is the rightmost
X-Forwarded-For address that is not itself a trusted proxy (each proxy appends the peer
it saw, so everything left of that could be forged), and the scheme is the last
X-Forwarded-Proto value. Cookies are Secure when ``[web] secure_cookies`` says so, or by
themselves when the request came over HTTPS through a trusted proxy.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import TYPE_CHECKING

from flask import Flask, request
from flask.sessions import SecureCookieSessionInterface

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
FORWARDING_HEADERS = ("HTTP_FORWARDED", "HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_HOST",
                      "HTTP_X_FORWARDED_PORT", "HTTP_X_FORWARDED_BY", "HTTP_X_REAL_IP")


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


class TrustedProxies:
    """WSGI middleware: rewrites REMOTE_ADDR and wsgi.url_scheme from the forwarding headers of trusted peers only."""

    def __init__(self, app: WSGIApplication, trusted: Iterable[str]) -> None:
        self.app = app
        self.networks: list[Network] = [ipaddress.ip_network(entry, strict=False) for entry in trusted]

    def trusts(self, address: str) -> bool:
        ip = _ip(address)
        return ip is not None and any(ip.version == net.version and ip in net for net in self.networks)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        peer = str(environ.get("REMOTE_ADDR", ""))
        if self.networks and self.trusts(peer):
            hops = [hop.strip() for hop in str(environ.get("HTTP_X_FORWARDED_FOR", "")).split(",") if hop.strip()]
            client = peer
            for hop in reversed(hops):
                if _ip(hop) is None:
                    break  # a damaged header: keep the last address we could trust
                client = hop.strip("[]")
                if not self.trusts(hop):
                    break
            protos = [p.strip().lower() for p in str(environ.get("HTTP_X_FORWARDED_PROTO", "")).split(",") if p.strip()]
            environ["autopublish.peer"] = peer
            environ["REMOTE_ADDR"] = client
            if protos and protos[-1] in ("http", "https"):
                environ["wsgi.url_scheme"] = protos[-1]
        else:
            for name in FORWARDING_HEADERS:  # nobody downstream may believe them either
                environ.pop(name, None)
        return self.app(environ, start_response)


class SessionCookies(SecureCookieSessionInterface):
    """Flask's signed cookie, Secure when configured or when this request came over HTTPS."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"]) or request.is_secure


def install(app: Flask, trusted: list[str], secure_cookies: bool) -> None:
    app.wsgi_app = TrustedProxies(app.wsgi_app, trusted)  # type: ignore[method-assign]
    app.session_interface = SessionCookies()
    app.config["SESSION_COOKIE_SECURE"] = secure_cookies

