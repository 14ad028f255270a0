"""Shared by tests/test_fastfeed.py and bench: compare the lxml fast path with feedparser on one body."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from autopublish.errors import FeedError
from autopublish.fastfeed import parse_fast
from autopublish.feeds import _from_entries, parse_feed_slow

CONTENT_TYPE = "application/rss+xml; charset=UTF-8"


def compare(body: bytes, content_type: str = CONTENT_TYPE, url: str = "https://example.org/feed/") -> tuple[bool, list[str]]:
    """(fast path accepted it, differences from feedparser); differences are empty when it declined."""
    fast = parse_fast(body, content_type)
    if fast is None:
        return False, []
    ours = _from_entries(fast, feed="f")
    try:
        theirs = parse_feed_slow(body, feed="f", content_type=content_type, url=url)
    except FeedError as exc:
        return True, [f"feedparser refused it: {exc.message}"]
    problems = []
    for name in ("title", "home", "hub", "self_url", "skipped"):
        if getattr(ours, name) != getattr(theirs, name):
            problems.append(f"feed {name} {getattr(ours, name)!r} != {getattr(theirs, name)!r}")
    if theirs.warning:
        problems.append(f"feedparser warned: {theirs.warning}")
    if len(ours.articles) != len(theirs.articles):
        return True, [*problems, f"{len(ours.articles)} articles != {len(theirs.articles)}"]
    for mine, reference in zip(ours.articles, theirs.articles, strict=True):
        a: dict[str, Any] = asdict(mine)
        b: dict[str, Any] = asdict(reference)
        for key, value in a.items():
            if value != b[key]:
                problems.append(f"{key}: {value!r} != {b[key]!r}")
    return True, problems
