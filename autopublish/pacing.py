"""Per-channel pacing: posts per hour and per day, a minimum gap, quiet hours. Pure."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from autopublish.config import PacingModel


def quiet_until(pacing: PacingModel, now: float) -> float | None:
    """When the current quiet period ends (epoch seconds), or None if not quiet now."""
    if not pacing.quiet_hours:
        return None
    start_text, end_text = pacing.quiet_hours.split("-")
    zone = ZoneInfo(pacing.timezone)
    local = datetime.fromtimestamp(now, zone)
    sh, sm = (int(x) for x in start_text.split(":"))
    eh, em = (int(x) for x in end_text.split(":"))
    start = local.replace(hour=sh, minute=sm, second=0, microsecond=0)
    end = local.replace(hour=eh, minute=em, second=0, microsecond=0)
    if start == end:
        return None
    if start < end:
        return end.timestamp() if start <= local < end else None
    # crosses midnight, e.g. 22:00-06:00
    if local >= start:
        return (end + timedelta(days=1)).timestamp()
    if local < end:
        return end.timestamp()
    return None


def next_allowed(pacing: PacingModel, now: float, *, sent_last_hour: int, sent_last_day: int,
                 last_sent_at: float | None, oldest_in_hour: float | None = None, oldest_in_day: float | None = None) -> float | None:
    """The earliest time the channel may post again, or None if it may post now."""
    waits: list[float] = []
    if pacing.min_gap and last_sent_at is not None and now - last_sent_at < pacing.min_gap:
        waits.append(last_sent_at + pacing.min_gap)
    if pacing.max_per_hour and sent_last_hour >= pacing.max_per_hour:
        waits.append((oldest_in_hour or now) + 3600.0)
    if pacing.max_per_day and sent_last_day >= pacing.max_per_day:
        waits.append((oldest_in_day or now) + 86400.0)
    quiet = quiet_until(pacing, now)
    if quiet is not None:
        waits.append(quiet)
    if not waits:
        return None
    later = max(waits)
    # the later time may itself fall in quiet hours
    quiet_then = quiet_until(pacing, later)
    return quiet_then if quiet_then is not None else later
