"""Who is signed in, what they may do, where they may be sent back to, and the CSRF token every form carries.

The cookie (Flask's signed session) holds the session id and the CSRF token; whether the
session still counts is decided by the store (see ``sessions``).
"""

from __future__ import annotations

import functools
import secrets
import unicodedata
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from flask import abort, current_app, g, request, session
from itsdangerous import BadSignature, URLSafeTimedSerializer
from werkzeug.wrappers import Response

from autopublish.config import WebUserModel
from autopublish.web.context import web

SESSION_KEY = "sid"
MAX_NEXT = 2000
DEVICE_COOKIE = "autopublish_device"
DEVICE_MAX_AGE = 90 * 86400


def safe_next(target: str | None) -> str | None:
    """``target`` if it is a path on this site to go back to, else None.

    It must start with a single "/", and hold no scheme, host, backslash (browsers read
    it as "/"), whitespace or control characters (which some browsers drop, turning
    "/\\t/evil.example" into "//evil.example").
    """
    if not target or len(target) > MAX_NEXT or not target.startswith("/") or target.startswith("//"):
        return None
    if any(ch == "\\" or ch.isspace() or unicodedata.category(ch).startswith(("C", "Z")) for ch in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target


def current_user() -> WebUserModel | None:
    """The user whose session this cookie names, while that session still counts; a stale id is dropped."""
    context = web()
    context.users.refresh()
    session_id = session.get(SESSION_KEY)
    if session_id is None:
        return None
    user = context.sessions.resolve(session_id, context.users.get)
    if user is None:
        session.pop(SESSION_KEY, None)
    return user


def sign_in(user: WebUserModel) -> None:
    """A fresh cookie (new CSRF token too) naming a new stored session."""
    session_id = web().sessions.start(user)
    session.clear()
    session.permanent = True
    session[SESSION_KEY] = session_id
    csrf_token()


def sign_out() -> None:
    """End the stored session at once, then forget the cookie."""
    web().sessions.end(session.get(SESSION_KEY))
    session.clear()


def _devices() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key or b"", salt="autopublish-device")


def known_device(name: str) -> bool:
    """This browser signed in to ``name`` before (its device cookie says so): the account's throttle does not apply."""
    token = request.cookies.get(DEVICE_COOKIE)
    if not token or not name:
        return False
    try:
        return bool(_devices().loads(token, max_age=DEVICE_MAX_AGE) == name)
    except BadSignature:
        return False


def remember_device(response: Response, name: str) -> None:
    """Mark this browser as one that signed in to ``name`` (sent to the sign-in page only; it grants nothing else)."""
    response.set_cookie(DEVICE_COOKIE, _devices().dumps(name), max_age=DEVICE_MAX_AGE, path="/login", httponly=True, samesite="Lax",
                        secure=current_app.session_interface.get_cookie_secure(current_app))


def csrf_token() -> str:
    """This browser session's CSRF token, made on first use."""
    token = session.get("csrf")
    if not isinstance(token, str) or len(token) < 32:
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


def editor_only(func: Callable[..., Any]) -> Callable[..., Any]:
    """Refuse (403) a signed-in viewer."""
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if g.user is None or g.user.role != "editor":
            abort(403)
        return func(*args, **kwargs)

    return wrapper


def actor() -> str:
    """Who acted, as the publish log names them."""
    return f"web:{g.user.name}"
