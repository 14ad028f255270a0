"""Helpers the templates call: times in the site's zone, statuses and reasons in plain words, links."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from flask import Flask, g, request

from autopublish.durations import format_duration
from autopublish.models import DeliveryStatus
from autopublish.store import RETRYABLE, SKIPPABLE, ChannelRow, DeliveryRow
from autopublish.web.context import web
from autopublish.web.i18n import say, translate


def safe_href(url: str | None) -> str | None:
    """A link we may put in href: http(s) or file (the local outbox) only; never javascript: or data:."""
    if not url:
        return None
    lowered = url.strip().lower()
    if lowered.startswith(("https://", "http://", "file://")):
        return url.strip()
    return None


def t(key: str, **values: object) -> str:
    """The page's words in the request's language."""
    return translate(g.get("lang", "en"), key, **values)


def fmt_time(ts: float | None, short: bool = False) -> str:
    if ts is None:
        return ""
    zone = web().zone
    moment = datetime.fromtimestamp(ts, UTC).astimezone(zone)
    if short and moment.date() == datetime.fromtimestamp(web().clock(), UTC).astimezone(zone).date():
        return moment.strftime("%H:%M")
    return moment.strftime("%Y-%m-%d %H:%M")


def channel_state(name: str) -> ChannelRow:
    """A channel's stored state, read once per request."""
    cache: dict[str, ChannelRow] = g.setdefault("channel_states", {})
    if name not in cache:
        cache[name] = web().store.channel(name)
    return cache[name]


def status_text(row: DeliveryRow) -> str:
    status = row.status
    if status == DeliveryStatus.WAITING and row.next_attempt_at:
        return t("st_waiting_at", time=fmt_time(row.next_attempt_at, short=True))
    if status == DeliveryStatus.QUEUED and row.next_attempt_at and row.next_attempt_at > web().clock():
        return t("st_queued_at", time=fmt_time(row.next_attempt_at, short=True))
    if status == DeliveryStatus.UNCERTAIN:
        return t("st_uncertain_editor" if row.needs_editor else "st_uncertain")
    if status == DeliveryStatus.HELD and channel_state(row.channel).paused:
        return t("st_paused")
    return t(f"st_{status}")


def said(code: str | None, params: str | None, english: str) -> tuple[str, str]:
    """(sentence in the page's language, the platform's own words or "") for a stored message, redacted."""
    redactor = web().redactor
    sentence, detail = say(g.get("lang", "en"), code, params, english, moment=fmt_time)
    return redactor(sentence), redactor(detail)


def pause_said(name: str) -> tuple[str, str]:
    """Why a channel is paused, in the page's language."""
    code, params = web().store.channel_pause_code(name)
    return said(code, params, channel_state(name).paused_reason)


def delivery_extras(row: DeliveryRow) -> tuple[str | None, str | None, str | None]:
    """(reason code, parameters, text as sent) of a delivery, read once per request."""
    cache: dict[int, tuple[str | None, str | None, str | None]] = g.setdefault("delivery_extras", {})
    if row.id not in cache:
        cache[row.id] = web().store.delivery_extras(row.id)
    return cache[row.id]


def reason_said(row: DeliveryRow) -> tuple[str, str]:
    """The reason as (sentence, platform's words), for the statuses where it matters; ("", "") otherwise."""
    if row.status == DeliveryStatus.HELD and channel_state(row.channel).paused:
        return pause_said(row.channel)
    if row.status in (DeliveryStatus.SENT, DeliveryStatus.QUEUED, DeliveryStatus.SENDING) or not row.reason:
        return "", ""
    code, params, _text = delivery_extras(row)
    return said(code, params, row.reason)


def reason_text(row: DeliveryRow) -> str:
    """The reason's sentence in the page's language."""
    return reason_said(row)[0]


def event_said(event: dict[str, Any]) -> tuple[str, str]:
    """A publish-log event's message in the page's language."""
    return said(event.get("code"), event.get("params"), event.get("message") or "")


def actions_for(row: DeliveryRow) -> list[str]:
    """The editor actions a delivery in this state allows (the store refuses the others too)."""
    status = row.status
    names = []
    if status in RETRYABLE:
        names.append("retry")
    if status in SKIPPABLE:
        names.append("skip")
    if status == DeliveryStatus.UNCERTAIN or (status in (DeliveryStatus.FAILED, DeliveryStatus.HELD) and row.needs_editor):
        names.append("resolve")
    if status in (DeliveryStatus.SENT, DeliveryStatus.FAILED, DeliveryStatus.SKIPPED) and kind_of(row) == "post":
        names.append("repost")
    return names


def kind_of(row: DeliveryRow) -> str:
    """"post", or "edit"/"delete" for an update or take-down of a post (issue 16)."""
    return web().store.delivery_action(row.id)[0]


def query_url(**changes: Any) -> str:
    """This page's address with some query arguments changed (page 1 and empty ones dropped)."""
    args: dict[str, Any] = {k: v for k, v in request.args.items() if v}
    args.update(changes)
    args = {k: v for k, v in args.items() if v not in (None, "") and not (k.endswith("page") and str(v) == "1")}
    return request.path + ("?" + urlencode(args) if args else "")


def here() -> str:
    return request.full_path.rstrip("?")


def event_word(status: str, kind: str) -> str:
    for key in (f"st_{status}", f"ev_{status}", f"ev_{kind}"):
        text = t(key)
        if text != key:
            return text
    return status or kind


def install(app: Flask, *, refresh: int, zone_name: str) -> None:
    """Make these helpers available to every template."""
    app.jinja_env.globals.update(t=t, fmt_time=fmt_time, status_text=status_text, reason_text=reason_text, actions_for=actions_for,
                                 reason_said=reason_said, event_said=event_said, pause_said=pause_said, delivery_extras=delivery_extras,
                                 query_url=query_url, here=here, event_word=event_word, safe_href=safe_href, refresh=refresh,
                                 zone_name=zone_name, kind_of=kind_of)
    app.jinja_env.globals["fmt_duration"] = format_duration
    app.jinja_env.filters["redact"] = lambda text: web().redactor(str(text or ""))
