"""The editors' page: one Blueprint, its pages and actions as module-level views.

Every action goes through the Store methods the CLI uses, so the two cannot disagree,
and is written to the publish log as ``web:<name>``.
"""

from __future__ import annotations

import hmac
import logging
from datetime import datetime, timedelta
from typing import Any

from flask import Blueprint, Response, abort, flash, g, get_flashed_messages, jsonify, redirect, render_template, request, session, url_for
from markupsafe import Markup
from werkzeug.exceptions import HTTPException
from werkzeug.security import check_password_hash
from werkzeug.wrappers import Response as Redirect

from autopublish.errors import AutopublishError, StateError
from autopublish.messages import msg
from autopublish.models import DeliveryStatus
from autopublish.push.status import push_status
from autopublish.store import DeliveryRow
from autopublish.web.auth import actor, current_user, editor_only, known_device, remember_device, safe_next, sign_in, sign_out
from autopublish.web.context import web
from autopublish.web.display import channel_state, t
from autopublish.web.glance import day_chart, delay_chart, month
from autopublish.web.i18n import duration_text, pick_language
from autopublish.web.queries import HELD, UPCOMING, LogFilter, article_page, channel_counts, event_page, queue_page

log = logging.getLogger(__name__)

bp = Blueprint("web", __name__)

PAGE_SIZE = 50
STATUS_CHOICES = ("sent", "waiting", "uncertain", "held", "failed", "queued", "sending", "skipped")
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' https: data:; "
       "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
OPEN_ENDPOINTS = ("web.healthz", "web.login", "static")


# --- request plumbing -------------------------------------------------------------------------------
@bp.before_app_request
def before() -> Response | Redirect | None:
    """Who is asking, in which language; the CSRF check on every POST; sign-in for everything but OPEN_ENDPOINTS."""
    user = current_user()
    g.user = user
    accepted = [value for value, _quality in request.accept_languages]
    g.lang = pick_language(user.language if user else None, accepted)
    if request.method == "POST":
        sent = request.form.get("csrf", "")
        expected = session.get("csrf")
        if not isinstance(expected, str) or not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
            return plain(400, t("bad_csrf"))
    if request.endpoint in OPEN_ENDPOINTS or request.endpoint is None:
        return None
    if user is None:
        target = request.full_path.rstrip("?") if request.method == "GET" and request.path != "/" else None
        return redirect(url_for("web.login", next=target))
    return None


@bp.after_app_request
def headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    if request.endpoint != "static":
        response.headers["Cache-Control"] = "no-store"
    return response


def plain(code: int, message: str) -> Response:
    """A page with one message (errors, refusals)."""
    body = render_template("message.html", message=message, code=code, user=g.get("user"), lang=g.get("lang", "en"), messages=[])
    return Response(body, status=code, mimetype="text/html")


@bp.app_errorhandler(HTTPException)
def http_error(exc: HTTPException) -> Response:
    code = exc.code or 500
    key = {403: "forbidden", 404: "not_found", 400: "bad_csrf"}.get(code)
    if not hasattr(g, "lang"):
        g.lang = "en"
    return plain(code, t(key) if key else (exc.name or "Error"))


@bp.app_errorhandler(AutopublishError)
def our_error(exc: AutopublishError) -> Response:
    log.error("web: %s", exc.message)
    if not hasattr(g, "lang"):
        g.lang = "en"
    return plain(503 if isinstance(exc, StateError) else 500, web().redactor(exc.message))


@bp.app_errorhandler(Exception)
def unexpected(exc: Exception) -> Response:
    log.error("web: unexpected %s: %s", type(exc).__name__, web().redactor(str(exc)))
    if not hasattr(g, "lang"):
        g.lang = "en"
    return plain(500, t("server_error"))


def back(default: str = "web.index") -> Redirect:
    return redirect(safe_next(request.form.get("next")) or url_for(default), code=303)


def done(ok: bool, good: str, bad: str, **values: object) -> None:
    flash(t(good if ok else bad, **values), "ok" if ok else "error")


def read_filters() -> LogFilter:
    zone = web().zone

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


def page_number(name: str = "page") -> int:
    try:
        return max(1, min(int(request.args.get(name, "1")), 1_000_000))
    except ValueError:
        return 1


def common() -> dict[str, Any]:
    config = web().config
    return {
        "user": g.user,
        "lang": g.lang,
        "channels": list(config.channels),
        "feeds": list(config.feeds),
        "statuses": STATUS_CHOICES,
        "messages": get_flashed_messages(with_categories=True),
    }


# --- pages --------------------------------------------------------------------------------------------
@bp.get("/healthz")
def healthz() -> Response:
    try:
        web().store.ping()
    except StateError:
        return Response('{"ok": false}', status=503, mimetype="application/json")
    return jsonify(ok=True)


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    context = web()
    error = None
    code = 200
    wait = 0
    if request.method == "POST":
        name = request.form.get("name", "").strip()
        password = request.form.get("password", "")
        # Counted before the hash is computed, so parallel guesses cannot pass the throttle together.
        reserved = context.throttle.reserve(request.remote_addr or "?", name, known_device=known_device(name))
        if isinstance(reserved, int):
            error, code, wait = t("too_many_tries", seconds=reserved), 429, reserved
        else:
            user = context.users.get(name)
            # An unknown name is checked against a dummy of the same cost, so it takes as long.
            valid = check_password_hash(user.password_hash if user else context.users.dummy_hash, password)
            if user is not None and valid:
                context.throttle.succeeded(reserved)
                sign_in(user)
                log.info("web: %s signed in", user.name)
                onward = redirect(safe_next(request.form.get("next")) or url_for("web.index"), code=303)
                remember_device(onward, user.name)
                return onward
            error, code = t("bad_login"), 401
    body = render_template("login.html", error=error, no_users=not context.users, next=safe_next(request.values.get("next")) or "",
                           user=None, lang=g.lang, messages=[])
    response = Response(body, status=code, mimetype="text/html")
    if wait:
        response.headers["Retry-After"] = str(wait)
    return response


@bp.post("/logout")
def logout() -> Redirect:
    sign_out()
    return redirect(url_for("web.login"), code=303)


@bp.get("/")
def index() -> str:
    filters = read_filters()
    page = page_number()
    lines, more = article_page(web().store, filters, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    counts = web().store.counts_by_status()
    return render_template("log.html", lines=lines, more=more, page=page, filters=filters, counts=counts, args=request.args, **common())


@bp.get("/activity")
def activity() -> str:
    filters = read_filters()
    page = page_number()
    events, more = event_page(web().store, filters, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    return render_template("activity.html", events=events, more=more, page=page, filters=filters, args=request.args, **common())


@bp.get("/queue")
def queue() -> str:
    """What goes out next and what waits for a decision: two lists, each paged on its own."""
    context = web()
    now = context.clock()
    page, held_page = page_number(), page_number("held_page")
    upcoming, more = queue_page(context.store, UPCOMING, now=now, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    held, more_held = queue_page(context.store, HELD, now=now, limit=PAGE_SIZE, offset=(held_page - 1) * PAGE_SIZE)
    counts = context.store.counts_by_status()
    paused = [(name, channel_state(name)) for name in context.config.channels if channel_state(name).paused]
    return render_template("queue.html", upcoming=upcoming, held=held, paused=paused, now=now, page=page, more=more,
                           held_page=held_page, more_held=more_held, upcoming_total=sum(counts.get(s, 0) for s in UPCOMING),
                           held_total=sum(counts.get(s, 0) for s in HELD), **common())


@bp.get("/channels")
def channels() -> str:
    context = web()
    now = context.clock()
    counts = channel_counts(context.store, now - 86400)
    rows = []
    for name, channel in context.config.channels.items():
        state = channel_state(name)
        rows.append({"name": name, "platform": channel.platform, "enabled": channel.enabled, "state": state,
                     "counts": counts.get(name, {}), "expired": state.token_expires_at is not None and state.token_expires_at <= now})
    glance = month(context.store, list(context.config.channels), now=now, zone=context.zone)
    words = {key: t(key) for key in ("posts", "failures", "holds", "median", "worst")}
    lang = g.lang
    charts = {c.name: Markup(day_chart(c, glance.days, label=t("posts_per_day", channel=c.name), words=words)) for c in glance.channels}
    delays = Markup(delay_chart(glance.channels, label=t("delay_title"), words=words, duration=lambda s: duration_text(lang, s)))
    feed_modes = [push_status(context.config, context.store, name, now) for name in context.config.feeds]
    return render_template("channels.html", rows=rows, feed_modes=feed_modes, glance=glance, charts=charts, delays=delays,
                           duration=lambda s: duration_text(lang, s), nodes=context.store.nodes(), **common())


@bp.get("/articles/<int:article_id>")
def article(article_id: int) -> str:
    """One article's whole story: each channel's delivery and text as sent, every event in order, the actions."""
    store = web().store
    summary = store.article_summary(article_id)
    if summary is None:
        abort(404)
    deliveries = store.article_deliveries(article_id)
    events = store.article_events(article_id)
    return render_template("article.html", article=summary, deliveries=deliveries, events=events, **common())


@bp.get("/preview/<int:delivery_id>")
def preview(delivery_id: int) -> str:
    from autopublish.pipeline import build_post, delivery_key
    from autopublish.render import FitError

    context = web()
    row = context.store.delivery(delivery_id)
    if row is None or row.channel not in context.config.channels:
        abort(404)
    article = context.store.article(row.article_id)
    channel = context.config.channels[row.channel]
    publisher = context.publishers()[row.channel]
    post = error = None
    length = limit = 0
    try:
        post = build_post(article, channel, publisher, delivery_key(row.id, row.channel, article.key), context.config.settings.timezone)
        length = publisher.count(post.text)
        limit = publisher.current_limits().max_length
    except FitError as exc:
        error = context.redactor(str(exc))
    return render_template("preview.html", row=row, post=post, error=error, length=length, limit=limit, platform=publisher.label, **common())


# --- actions (editors only; CSRF checked in before()) ---------------------------------------------------
def known_delivery(delivery_id: int) -> DeliveryRow:
    row = web().store.delivery(delivery_id)
    if row is None:
        flash(t("unknown_delivery", id=delivery_id), "error")
        abort(back())
    return row


@bp.post("/deliveries/<int:delivery_id>/retry")
@editor_only
def retry(delivery_id: int) -> Redirect:
    row = known_delivery(delivery_id)
    if row.status == DeliveryStatus.UNCERTAIN:
        flash(t("refused_retry_uncertain", id=delivery_id), "error")
        return back()
    ok = web().store.retry(delivery_id, actor())
    done(ok, "done_retry", "refused_retry", id=delivery_id)
    return back()


@bp.post("/deliveries/<int:delivery_id>/skip")
@editor_only
def skip(delivery_id: int) -> Redirect:
    known_delivery(delivery_id)
    ok = web().store.skip(delivery_id, actor())
    done(ok, "done_skip", "refused_skip", id=delivery_id)
    return back()


@bp.post("/deliveries/<int:delivery_id>/resolve")
@editor_only
def resolve(delivery_id: int) -> Redirect:
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
    ok = web().store.resolve(delivery_id, posted_url=posted_url, actor=actor())
    done(ok, "done_resolve_posted" if posted_url else "done_resolve_not_posted", "refused_resolve", id=delivery_id)
    return back()


@bp.post("/deliveries/<int:delivery_id>/repost")
@editor_only
def repost(delivery_id: int) -> Redirect:
    known_delivery(delivery_id)
    new_id = web().store.repost(delivery_id, actor())
    done(new_id is not None, "done_repost", "refused_repost", id=delivery_id)
    return back()


@bp.get("/articles/<int:article_id>/retract")
@editor_only
def retract_confirm(article_id: int) -> str:
    """The confirmation step of "take down everywhere": what is live where, then one button."""
    store = web().store
    try:
        article = store.article(article_id)
    except StateError:
        abort(404)
    rows = store.article_actions(article_id)
    live = [row for row, kind, _target in rows if kind == "post" and row.status == "sent" and not store.taken_down(row.id)]
    queued = [row for row, _kind, _target in rows if row.status in ("queued", "waiting", "held", "failed", "uncertain")]
    return render_template("retract.html", article=article, article_id=article_id, live=live, queued=queued, **common())


@bp.post("/articles/<int:article_id>/retract")
@editor_only
def retract(article_id: int) -> Redirect:
    """Take the article down everywhere (autopublish.corrections.retract), after the confirmation page."""
    from autopublish.corrections import retract as take_down

    store = web().store
    try:
        store.article(article_id)
    except StateError:
        abort(404)
    if request.form.get("confirm") != "yes":
        flash(t("retract_unconfirmed"), "error")
        return redirect(url_for("web.retract_confirm", article_id=article_id), code=303)
    for line in take_down(store, web().config, article_id, actor()):
        flash(web().redactor(line), "ok")
    return back()


@bp.post("/channels/<name>/pause")
@editor_only
def pause(name: str) -> Redirect:
    if name not in web().config.channels:
        abort(404)
    why = " ".join(request.form.get("reason", "").split())[:300]
    reason = msg("paused_by_editor_why", actor=actor(), detail=why) if why else msg("paused_by_editor", actor=actor())
    ok = web().store.pause_channel(name, reason, actor=actor())
    done(ok, "done_pause", "refused_pause", name=name)
    return back("web.channels")


@bp.post("/channels/<name>/resume")
@editor_only
def resume(name: str) -> Redirect:
    if name not in web().config.channels:
        abort(404)
    count = web().store.resume_channel(name, actor=actor())
    flash(t("done_resume", name=name, count=count), "ok")
    return back("web.channels")
