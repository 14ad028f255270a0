"""The last 30 days at a glance: numbers per channel and day, and charts drawn as inline SVG.

The SVG is built here from numbers only (every text in it is escaped), uses presentation
attributes and CSS classes, never inline styles or scripts, so it lives within the page's CSP.
Each chart comes with the same numbers as a table on the page.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from html import escape

from autopublish.store import Store

DAYS = 30


@dataclass(slots=True)
class ChannelMonth:
    name: str
    sent: list[int] = field(default_factory=lambda: [0] * DAYS)
    failed: list[int] = field(default_factory=lambda: [0] * DAYS)
    held: list[int] = field(default_factory=lambda: [0] * DAYS)
    delays: list[float] = field(default_factory=list)  # seconds, sorted

    @property
    def median(self) -> float | None:
        if not self.delays:
            return None
        middle = len(self.delays) // 2
        if len(self.delays) % 2:
            return self.delays[middle]
        return (self.delays[middle - 1] + self.delays[middle]) / 2

    @property
    def worst(self) -> float | None:
        return self.delays[-1] if self.delays else None


@dataclass(slots=True)
class Month:
    days: list[date]
    channels: list[ChannelMonth]


def month(store: Store, channels: list[str], *, now: float, zone: tzinfo) -> Month:
    """Posts, failures and holds per channel and day (the site's days) for the 30 days up to today, and delays."""
    today = datetime.fromtimestamp(now, zone).date()
    first = today - timedelta(days=DAYS - 1)
    start = datetime(first.year, first.month, first.day, tzinfo=zone).timestamp()
    days = [first + timedelta(days=n) for n in range(DAYS)]
    by_name = {name: ChannelMonth(name) for name in channels}
    for channel, day, outcome, count in store.daily_outcomes(start):
        target = by_name.get(channel)
        if target is None or not 0 <= day < DAYS:
            continue
        getattr(target, outcome)[day] += count
    for channel, delays in store.publish_delays(start).items():
        if channel in by_name:
            by_name[channel].delays = delays
    return Month(days, [by_name[name] for name in channels])


def _bar(x: float, y: float, width: float, height: float, css: str, title: str) -> str:
    return (f'<rect class="{css}" x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" height="{height:.1f}">'
            f"<title>{escape(title)}</title></rect>")


def day_chart(channel: ChannelMonth, days: list[date], *, label: str, words: dict[str, str]) -> str:
    """Bars of posts per day, with failures and holds stacked on top, as one inline SVG."""
    width, height, pad = 300.0, 80.0, 14.0
    step = width / DAYS
    top = max([s + f + h for s, f, h in zip(channel.sent, channel.failed, channel.held, strict=True)] + [1])
    scale = (height - pad) / top
    parts = [f'<svg class="chart days" viewBox="0 0 {width:.0f} {height:.0f}" role="img" aria-label="{escape(label)}" '
             f'xmlns="http://www.w3.org/2000/svg"><title>{escape(label)}</title>',
             f'<line class="axis" x1="0" y1="{height - 0.5:.1f}" x2="{width:.0f}" y2="{height - 0.5:.1f}"/>']
    for n, day in enumerate(days):
        x = n * step + 1
        y = height - 1
        for css, values, word in (("sent", channel.sent, words["posts"]), ("failed", channel.failed, words["failures"]),
                                  ("held", channel.held, words["holds"])):
            value = values[n]
            if value:
                h = value * scale
                y -= h
                parts.append(_bar(x, y, step - 2, h, css, f"{day.isoformat()}: {word} {value}"))
    parts.append(f'<text class="peak" x="0" y="10">{top if any(channel.sent) or any(channel.failed) or any(channel.held) else 0}</text>')
    parts.append("</svg>")
    return "".join(parts)


def delay_chart(channels: list[ChannelMonth], *, label: str, words: dict[str, str], duration: Callable[[float], str]) -> str:
    """Per channel, a bar to the worst delay with a mark at the median, as one inline SVG."""
    show = [c for c in channels if c.delays]
    row, name_width, width = 22.0, 110.0, 420.0
    height = max(1, len(show)) * row + 4
    worst = max([c.worst or 0.0 for c in show] + [1.0])
    scale = (width - name_width - 70) / worst
    parts = [f'<svg class="chart delays" viewBox="0 0 {width:.0f} {height:.0f}" role="img" aria-label="{escape(label)}" '
             f'xmlns="http://www.w3.org/2000/svg"><title>{escape(label)}</title>']
    fmt = duration
    for n, channel in enumerate(show):
        y = n * row + 4
        worst_w = (channel.worst or 0.0) * scale
        median_w = (channel.median or 0.0) * scale
        parts.append(f'<text class="name" x="0" y="{y + 13:.1f}">{escape(channel.name[:16])}</text>')
        parts.append(_bar(name_width, y + 2, max(1.0, worst_w), row - 8, "worst", f"{words['worst']} {fmt(channel.worst or 0)}"))
        parts.append(_bar(name_width, y + 2, max(1.0, median_w), row - 8, "median", f"{words['median']} {fmt(channel.median or 0)}"))
        parts.append(f'<text class="value" x="{name_width + worst_w + 4:.1f}" y="{y + 13:.1f}">{escape(fmt(channel.worst or 0))}</text>')
    parts.append("</svg>")
    return "".join(parts)
