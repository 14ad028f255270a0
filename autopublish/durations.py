"""Human durations and sizes in config and on the command line: "30s", "5m", "24h", "3d", "10MB"."""

from __future__ import annotations

import re

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d|w)?\s*$", re.IGNORECASE)
_UNITS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(b|kb|mb|gb)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"b": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3}


def parse_duration(value: object) -> float:
    """Seconds from "90", "90s", "5m", "24h", "3d", "1w" (a bare number is seconds)."""
    if isinstance(value, bool):
        raise ValueError("must be a duration like \"5m\", \"24h\" or \"3d\"")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError("must not be negative")
        return float(value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return float(match.group(1)) * _UNITS[(match.group(2) or "s").lower()]
    raise ValueError(f"{value!r} is not a duration; write it like \"30s\", \"5m\", \"24h\" or \"3d\"")


def parse_size(value: object) -> int:
    """Bytes from "10MB", "512KB" or a number of bytes."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, str):
        match = _SIZE.match(value)
        if match:
            return int(float(match.group(1)) * _SIZE_UNITS[(match.group(2) or "b").lower()])
    raise ValueError(f"{value!r} is not a size; write it like \"10MB\" or \"512KB\"")


def format_duration(seconds: float) -> str:
    """A short human form: 45s, 12m, 3h 5m, 2d 4h."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, _ = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h" if hours else f"{days}d"
