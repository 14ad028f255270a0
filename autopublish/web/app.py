"""The editors' web page (a Flask app): publish log, queue, channel health, previews, actions.

Reads and acts through the same SQLite Store the daemon writes (WAL lets both work at
once); every action goes through the Store/Pipeline methods the CLI uses, so the two
cannot disagree, and is written to the publish log as ``web:<name>``.

Safety: nothing but /healthz without signing in; accounts and roles from ``[[web.users]]``;
sessions in signed, HttpOnly, SameSite=Lax cookies; a per-session CSRF token on every
POST; Jinja2 autoescaping of all feed data; a strict Content-Security-Policy; every
stored reason or message passes through the secrets Redactor before it is shown.
"""

from __future__ import annotations

import functools
import hmac
import logging
import os
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from flask import Flask, Response, abort, flash, g, get_flashed_messages, jsonify, redirect, render_template, request, session, url_for
from werkzeug.exceptions import HTTPException
from werkzeug.security import check_password_hash, generate_password_hash

from autopublish.config import Config, WebUserModel
from autopublish.errors import AutopublishError, StateError
from autopublish.models import DeliveryStatus
from autopublish.secrets import Redactor
from autopublish.store import RETRYABLE, SKIPPABLE, DeliveryRow, Store
from autopublish.web.i18n import pick_language, translate
from autopublish.web.queries import LogFilter, article_page, channel_counts, event_page

log = logging.getLogger(__name__)

PAGE_SIZE = 50
SECRET_FILE = "web-secret"
LOGIN_WINDOW = 300.0  # seconds
LOGIN_MAX_FAILURES = 5
STATUS_CHOICES = ("sent", "waiting", "uncertain", "held", "failed", "queued", "sending", "skipped")
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' https: data:; "
       "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


def load_secret_key(config: Config) -> bytes:
    """[web] secret_key if set, else a random key made once and kept in <state_dir>/web-secret (mode 0600)."""
    if config.web.secret_key is not None:
        return config.web.secret_key.reveal().encode()
    path = config.state_dir / SECRET_FILE
    try:
        config.state_dir.mkdir(parents=True, exist_ok=True)
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


class LoginLimiter:
    """A small in-memory count of failed sign-ins per address (enough for one process)."""

    def __init__(self, clock: Callable[[], float], window: float = LOGIN_WINDOW, limit: int = LOGIN_MAX_FAILURES) -> None:
        self.clock = clock
        self.window = window
        self.limit = limit
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, address: str) -> deque[float]:
        times = self._failures.setdefault(address, deque())
        cutoff = self.clock() - self.window
        while times and times[0] < cutoff:
            times.popleft()
        return times

    def blocked(self, address: str) -> bool:
        with self._lock:
            return len(self._recent(address)) >= self.limit

    def failed(self, address: str) -> None:
        with self._lock:
            self._recent(address).append(self.clock())
            if len(self._failures) > 10_000:  # never grows without bound
                self._failures.clear()

    def succeeded(self, address: str) -> None:
        with self._lock:
            self._failures.pop(address, None)


def safe_href(url: str | None) -> str | None:
    """A link we may put in href: http(s) or file (the local outbox) only; never javascript: or data:."""
    if not url:
        return None
    lowered = url.strip().lower()
    if lowered.startswith(("https://", "http://", "file://")):
        return url.strip()
    return None


def safe_next(target: str | None) -> str | None:
    """A same-site path to go back to after an action; anything else is ignored."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return None


def create_app(config: Config, *, redactor: Redactor | None = None, store: Store | None = None,
               clock: Callable[[], float] = time.time, publishers: dict[str, Any] | None = None) -> Flask:
    """The WSGI app. ``store`` defaults to one Store on config.state_dir, shared by all requests under its lock."""
    app = Flask(__name__)
    redactor = redactor or Redactor(config.secret_values())
    store = store or Store.for_config(config, clock=clock)
    zone = ZoneInfo(config.settings.timezone)
    users: dict[str, WebUserModel] = {user.name: user for user in config.web.users}
    # Compared against when the name is unknown, so a wrong name costs as long as a wrong password.
    dummy_hash = generate_password_hash(secrets.token_hex(16))
    limiter = LoginLimiter(clock)
    refresh = max(5, int(config.web.refresh))
    publisher_cache: dict[str, Any] = dict(publishers) if publishers is not None else {}
    publisher_lock = threading.Lock()

    app.config.update(
        SECRET_KEY=load_secret_key(config),
        SESSION_COOKIE_NAME="autopublish_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=timedelta(days=7),
        MAX_CONTENT_LENGTH=64 * 1024,
        TEMPLATES_AUTO_RELOAD=False,
    )
    app.jinja_env.autoescape = True  # all templates, whatever their name
    app.extensions["autopublish_store"] = store

    def get_publishers() -> dict[str, Any]:
        with publisher_lock:
            if not publisher_cache:
                from autopublish.app import build_publishers, platform_session

                publisher_cache.update(build_publishers(config, platform_session(), clock=clock))
            return publisher_cache

    # --- helpers for templates -------------------------------------------------------------
    def fmt_time(ts: float | None, short: bool = False) -> str:
        if ts is None:
            return ""
        moment = datetime.fromtimestamp(ts, UTC).astimezone(zone)
        if short and moment.date() == datetime.fromtimestamp(clock(), UTC).astimezone(zone).date():
            return moment.strftime("%H:%M")
        return moment.strftime("%Y-%m-%d %H:%M")

    def t(key: str, **values: object) -> str:
        return translate(g.get("lang", "en"), key, **values)

    def status_text(row: DeliveryRow) -> str:
        status = row.status
        if status == DeliveryStatus.WAITING and row.next_attempt_at:
            return t("st_waiting_at", time=fmt_time(row.next_attempt_at, short=True))
        if status == DeliveryStatus.QUEUED and row.next_attempt_at and row.next_attempt_at > clock():
            return t("st_queued_at", time=fmt_time(row.next_attempt_at, short=True))
        if status == DeliveryStatus.UNCERTAIN:
            return t("st_uncertain_editor" if row.needs_editor else "st_uncertain")
        if status == DeliveryStatus.HELD and channel_state(row.channel).paused:
            return t("st_paused")
        return t(f"st_{status}")

    def channel_state(name: str) -> Any:
        cache = g.setdefault("channel_states", {})
        if name not in cache:
            cache[name] = store.channel(name)
        return cache[name]

    def reason_text(row: DeliveryRow) -> str:
        """The reason in plain words, for the statuses where it matters."""
        if row.status == DeliveryStatus.HELD and channel_state(row.channel).paused:
            return redactor(channel_state(row.channel).paused_reason or row.reason)
        if row.status in (DeliveryStatus.SENT, DeliveryStatus.QUEUED, DeliveryStatus.SENDING):
            return ""
        return redactor(row.reason or "")

    def actions_for(row: DeliveryRow) -> list[str]:
        status = row.status
        names = []
        if status in RETRYABLE:
            names.append("retry")
        if status in SKIPPABLE:
            names.append("skip")
        if status == DeliveryStatus.UNCERTAIN or (status in (DeliveryStatus.FAILED, DeliveryStatus.HELD) and row.needs_editor):
            names.append("resolve")
        if status in (DeliveryStatus.SENT, DeliveryStatus.FAILED, DeliveryStatus.SKIPPED):
            names.append("repost")
        return names

    def query_url(**changes: Any) -> str:
        """This page's address with some query arguments changed (page 1 and empty ones dropped)."""
        args: dict[str, Any] = {k: v for k, v in request.args.items() if v}
        args.update(changes)
        args = {k: v for k, v in args.items() if v not in (None, "") and not (k == "page" and str(v) == "1")}
        return request.path + ("?" + urlencode(args) if args else "")

    def here() -> str:
        return request.full_path.rstrip("?")

    def event_word(status: str, kind: str) -> str:
        for key in (f"st_{status}", f"ev_{status}", f"ev_{kind}"):
            text = t(key)
            if text != key:
                return text
        return status or kind

    app.jinja_env.globals.update(t=t, fmt_time=fmt_time, status_text=status_text, reason_text=reason_text, actions_for=actions_for,
                                 query_url=query_url, here=here, event_word=event_word, safe_href=safe_href, refresh=refresh, zone_name=config.settings.timezone)
    app.jinja_env.filters["redact"] = lambda text: redactor(str(text or ""))

    # --- request plumbing -----------------------------------------------------------------------
    def current_user() -> WebUserModel | None:
        name = session.get("user")
        return users.get(name) if isinstance(name, str) else None

    def csrf_token() -> str:
        token = session.get("csrf")
        if not isinstance(token, str) or len(token) < 32:
            token = secrets.token_urlsafe(32)
            session["csrf"] = token
        return token

    app.jinja_env.globals["csrf_token"] = csrf_token

    @app.before_request
    def before() -> Response | None:
        user = current_user()
        g.user = user
        accepted = [value for value, _quality in request.accept_languages]
        g.lang = pick_language(user.language if user else None, accepted)
        if request.method == "POST":
            sent = request.form.get("csrf", "")
            expected = session.get("csrf")
            if not isinstance(expected, str) or not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
                return plain(400, t("bad_csrf"))
        if request.endpoint in ("healthz", "login", "static") or request.endpoint is None:
            return None
        if user is None:
            if session.get("user"):
                session.clear()  # the account was removed from the config
            target = request.full_path.rstrip("?") if request.method == "GET" and request.path != "/" else None
            return redirect(url_for("login", next=target))
        return None

    @app.after_request
    def headers(response: Response) -> Response:
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "same-origin"
        if request.endpoint != "static":
            response.headers["Cache-Control"] = "no-store"
        return response

    def plain(code: int, message: str) -> Response:
        body = render_template("message.html", message=message, code=code, user=g.get("user"), lang=g.get("lang", "en"), messages=[])
        return Response(body, status=code, mimetype="text/html")

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        code = exc.code or 500
        key = {403: "forbidden", 404: "not_found", 400: "bad_csrf"}.get(code)
        if not hasattr(g, "lang"):
            g.lang = "en"
        return plain(code, t(key) if key else (exc.name or "Error"))

    @app.errorhandler(AutopublishError)
    def our_error(exc: AutopublishError) -> Response:
        log.error("web: %s", exc.message)
        if not hasattr(g, "lang"):
            g.lang = "en"
        return plain(503 if isinstance(exc, StateError) else 500, redactor(exc.message))

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response:
        log.error("web: unexpected %s: %s", type(exc).__name__, redactor(str(exc)))
        if not hasattr(g, "lang"):
            g.lang = "en"
        return plain(500, t("server_error"))

    def editor_only(func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if g.user is None or g.user.role != "editor":
                abort(403)
            return func(*args, **kwargs)

        return wrapper

    def actor() -> str:
        return f"web:{g.user.name}"

    def back(default: str = "index") -> Response:
        return redirect(safe_next(request.form.get("next")) or url_for(default), code=303)

    def done(ok: bool, good: str, bad: str, **values: object) -> None:
        flash(t(good if ok else bad, **values), "ok" if ok else "error")

    def read_filters() -> LogFilter:
        def day(name: str, plus: int = 0) -> float | None:
            value = request.args.get(name, "").strip()
            if not value:
                return None
            try:
                start = datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=zone)
            except ValueError:
                return None
            return (start + timedelta(days=plus)).timestamp()

        status = request.args.get("status", "")
        status = {"posted": "sent"}.get(status, status)
        return LogFilter(
            channel=request.args.get("channel", "").strip(),
            feed=request.args.get("feed", "").strip(),
            status=status if status in STATUS_CHOICES else "",
            since=day("from"),
            until=day("to", plus=1),
            search=request.args.get("q", "").strip()[:200],
        )

    def page_number() -> int:
        try:
            return max(1, min(int(request.args.get("page", "1")), 1_000_000))
        except ValueError:
            return 1

    def common() -> dict[str, Any]:
        return {
            "user": g.user,
            "lang": g.lang,
            "channels": list(config.channels),
            "feeds": list(config.feeds),
            "statuses": STATUS_CHOICES,
            "messages": get_flashed_messages(with_categories=True),
        }

    # --- pages ---------------------------------------------------------------------------------
    @app.get("/healthz")
    def healthz() -> Response:
        try:
            store.ping()
        except StateError:
            return Response('{"ok": false}', status=503, mimetype="application/json")
        return jsonify(ok=True)

    @app.route("/login", methods=["GET", "POST"])
    def login() -> Any:
        error = None
        code = 200
        if request.method == "POST":
            address = request.remote_addr or "?"
            name = request.form.get("name", "").strip()
            password = request.form.get("password", "")
            if limiter.blocked(address):
                error, code = t("too_many_tries"), 429
            else:
                user = users.get(name)
                valid = check_password_hash(user.password_hash if user else dummy_hash, password)
                if user is not None and valid:
                    limiter.succeeded(address)
                    session.clear()
                    session.permanent = True
                    session["user"] = user.name
                    csrf_token()
                    log.info("web: %s signed in", user.name)
                    return redirect(safe_next(request.form.get("next")) or url_for("index"), code=303)
                limiter.failed(address)
                error, code = t("bad_login"), 401
        body = render_template("login.html", error=error, no_users=not users, next=safe_next(request.values.get("next")) or "",
                               user=None, lang=g.lang, messages=[])
        return Response(body, status=code, mimetype="text/html")

    @app.post("/logout")
    def logout() -> Response:
        session.clear()
        return redirect(url_for("login"), code=303)

    @app.get("/")
    def index() -> str:
        filters = read_filters()
        page = page_number()
        lines, more = article_page(store, filters, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
        counts = store.counts_by_status()
        return render_template("log.html", lines=lines, more=more, page=page, filters=filters, counts=counts,
                               args=request.args, **common())

    @app.get("/activity")
    def activity() -> str:
        filters = read_filters()
        page = page_number()
        events, more = event_page(store, filters, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
        return render_template("activity.html", events=events, more=more, page=page, filters=filters, args=request.args, **common())

    @app.get("/queue")
    def queue() -> str:
        rows = store.deliveries_with_status("queued", "sending", "waiting", "held", "uncertain")
        now = clock()
        upcoming = sorted((r for r in rows if r.status in ("queued", "sending", "waiting")), key=lambda r: (r.next_attempt_at or now, r.id))
        held = [r for r in rows if r.status in ("held", "uncertain")]
        paused = [(name, channel_state(name)) for name in config.channels if channel_state(name).paused]
        return render_template("queue.html", upcoming=upcoming, held=held, paused=paused, now=now, **common())

    @app.get("/channels")
    def channels() -> str:
        now = clock()
        counts = channel_counts(store, now - 86400)
        rows = []
        for name, channel in config.channels.items():
            state = channel_state(name)
            rows.append({"name": name, "platform": channel.platform, "enabled": channel.enabled, "state": state,
                         "counts": counts.get(name, {}), "expired": state.token_expires_at is not None and state.token_expires_at <= now})
        return render_template("channels.html", rows=rows, nodes=store.nodes(), **common())

    @app.get("/preview/<int:delivery_id>")
    def preview(delivery_id: int) -> str:
        from autopublish.pipeline import build_post, delivery_key
        from autopublish.render import FitError

        row = store.delivery(delivery_id)
        if row is None or row.channel not in config.channels:
            abort(404)
        article = store.article(row.article_id)
        channel = config.channels[row.channel]
        publisher = get_publishers()[row.channel]
        post = error = None
        length = limit = 0
        try:
            post = build_post(article, channel, publisher, delivery_key(row.id, row.channel, article.key), config.settings.timezone)
            length = publisher.count(post.text)
            limit = publisher.current_limits().max_length
        except FitError as exc:
            error = redactor(str(exc))
        return render_template("preview.html", row=row, post=post, error=error, length=length, limit=limit,
                               platform=publisher.label, **common())

    # --- actions (editors only; CSRF checked in before()) -----------------------------------------------
    def known_delivery(delivery_id: int) -> DeliveryRow:
        row = store.delivery(delivery_id)
        if row is None:
            flash(t("unknown_delivery", id=delivery_id), "error")
            abort(back())
        return row

    @app.post("/deliveries/<int:delivery_id>/retry")
    @editor_only
    def retry(delivery_id: int) -> Response:
        row = known_delivery(delivery_id)
        if row.status == DeliveryStatus.UNCERTAIN:
            flash(t("refused_retry_uncertain", id=delivery_id), "error")
            return back()
        ok = store.retry(delivery_id, actor())
        done(ok, "done_retry", "refused_retry", id=delivery_id)
        return back()

    @app.post("/deliveries/<int:delivery_id>/skip")
    @editor_only
    def skip(delivery_id: int) -> Response:
        known_delivery(delivery_id)
        ok = store.skip(delivery_id, actor())
        done(ok, "done_skip", "refused_skip", id=delivery_id)
        return back()

    @app.post("/deliveries/<int:delivery_id>/resolve")
    @editor_only
    def resolve(delivery_id: int) -> Response:
        known_delivery(delivery_id)
        outcome = request.form.get("outcome", "")
        posted_url: str | None = None
        if outcome == "posted":
            posted_url = request.form.get("url", "").strip()
            if not posted_url.lower().startswith(("https://", "http://")) or len(posted_url) > 2000:
                flash(t("refused_resolve_url"), "error")
                return back()
        elif outcome != "not_posted":
            abort(400)
        ok = store.resolve(delivery_id, posted_url=posted_url, actor=actor())
        done(ok, "done_resolve_posted" if posted_url else "done_resolve_not_posted", "refused_resolve", id=delivery_id)
        return back()

    @app.post("/deliveries/<int:delivery_id>/repost")
    @editor_only
    def repost(delivery_id: int) -> Response:
        known_delivery(delivery_id)
        new_id = store.repost(delivery_id, actor())
        done(new_id is not None, "done_repost", "refused_repost", id=delivery_id)
        return back()

    @app.post("/channels/<name>/pause")
    @editor_only
    def pause(name: str) -> Response:
        if name not in config.channels:
            abort(404)
        why = " ".join(request.form.get("reason", "").split())[:300]
        reason = f"Paused by {actor()}" + (f": {why}" if why else "")
        ok = store.pause_channel(name, reason, actor=actor())
        done(ok, "done_pause", "refused_pause", name=name)
        return back("channels")

    @app.post("/channels/<name>/resume")
    @editor_only
    def resume(name: str) -> Response:
        if name not in config.channels:
            abort(404)
        count = store.resume_channel(name, actor=actor())
        flash(t("done_resume", name=name, count=count), "ok")
        return back("channels")

    return app


def serve(app: Flask, host: str, port: int) -> None:
    """Serve with waitress until interrupted."""
    import waitress

    waitress.serve(app, host=host, port=port, threads=8, ident="autopublish")

