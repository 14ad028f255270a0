"""Article + channel template + platform limits -> post text.

Templates use a restricted formatter: known field names only, no attribute or index
access and no format specs (``str.format`` on admin text would allow
``{title.__class__}``). Fitting shortens the content, then the summary, then the title
at word boundaries with an ellipsis; links, hashtags and graphemes are never cut.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from zoneinfo import ZoneInfo

import regex

from autopublish.models import Article

ELLIPSIS = "…"

FIELDS = (
    "title", "link", "summary", "content", "author", "categories", "hashtags",
    "published", "feed_title",
)
# The WordPress auto-publish plugin's placeholders, which admins already use.
ALIASES = {
    "POST_TITLE": "title",
    "PERMALINK": "link",
    "POST_EXCERPT": "summary",
    "POST_CONTENT": "content",
    "BLOG_TITLE": "feed_title",
    "USER_NICENAME": "author",
    "POST_PUBLISH_DATE": "published",
    "POST_CATEGORY": "categories",
    "HASHTAG_CATEGORY": "hashtags_categories",
    "HASHTAG_TAG": "hashtags_tags",
}
KNOWN = frozenset(FIELDS) | frozenset(ALIASES)
# Shortened first when a post is too long; everything else is kept whole.
SHRINK_ORDER = ("content", "summary", "title")


class TemplateError(ValueError):
    """A template that cannot be used; the message says which placeholder and why."""


def template_fields(template: str) -> list[str]:
    """The placeholders of ``template``; TemplateError for anything but plain known names."""
    names: list[str] = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise TemplateError(
            f"the template is not valid ({exc}); write placeholders like {{title}} and a literal brace as {{{{ or }}}}"
        ) from None
    for _literal, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name:
            raise TemplateError("the template has an empty placeholder {}; name a field such as {title}")
        if not re.fullmatch(r"[A-Za-z_]+", name) or spec or conversion:
            raise TemplateError(
                f"the placeholder {{{name}{'!' + conversion if conversion else ''}{':' + spec if spec else ''}}} "
                "is not allowed; placeholders are plain names like {title}, without dots, brackets or formats"
            )
        if name not in KNOWN:
            raise TemplateError(
                f"unknown placeholder {{{name}}}; known ones are "
                + ", ".join("{" + f + "}" for f in (*FIELDS, *ALIASES))
            )
        names.append(name)
    return names


def hashtag(label: str) -> str:
    """"Jakarta Berketahanan" -> "#JakartaBerketahanan" (Unicode letters and digits kept)."""
    words = regex.findall(r"[\p{L}\p{M}\p{N}_]+", label)
    body = "".join(w[:1].upper() + w[1:] if w[:1].islower() and len(words) > 1 else w for w in words)
    if not body or body.isdigit():
        return ""
    return "#" + body


def hashtags(labels: Iterable[str]) -> str:
    seen: dict[str, str] = {}
    for label in labels:
        tag = hashtag(label)
        if tag and tag.casefold() not in seen:
            seen[tag.casefold()] = tag
    return " ".join(seen.values())


def article_values(article: Article, tz: str = "UTC") -> dict[str, str]:
    """Every template field's text for ``article`` (aliases included)."""
    published = ""
    if article.published is not None:
        published = article.published.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M")
    values = {
        "title": article.title,
        "link": article.link,
        "summary": article.summary or _first_paragraph(article.content),
        "content": article.content or article.summary,
        "author": article.author,
        "categories": ", ".join(article.categories),
        "hashtags": hashtags(article.labels),
        "hashtags_categories": hashtags(article.categories),
        "hashtags_tags": hashtags(article.tags),
        "published": published,
        "feed_title": article.feed_title,
    }
    for alias, field in ALIASES.items():
        values[alias] = values[field]
    return values


def _first_paragraph(text: str) -> str:
    return text.split("\n\n", 1)[0] if text else ""


_NO_SPACE_SCRIPTS = regex.compile(r"[\p{Han}\p{Hiragana}\p{Katakana}\p{Thai}\p{Lao}\p{Khmer}\p{Myanmar}]")
_URL = re.compile(r"https?://\S+")


def _units(text: str) -> list[str]:
    """Cut points: words (with their trailing space); graphemes inside scripts written without spaces."""
    units: list[str] = []
    for token in regex.findall(r"\S+\s*|\s+", text):
        if _NO_SPACE_SCRIPTS.search(token) and not _URL.match(token):
            units.extend(regex.findall(r"\X", token))
        else:
            units.append(token)
    return units


def shorten(text: str, keep: int, units: list[str] | None = None) -> str:
    """The first ``keep`` units of ``text`` with an ellipsis; "" for 0."""
    parts = units if units is not None else _units(text)
    if keep >= len(parts):
        return text
    if keep <= 0:
        return ""
    cut = "".join(parts[:keep]).rstrip()
    cut = re.sub(r"[\s,;:.\-–—]+$", "", cut)
    return cut + ELLIPSIS


def fill(template: str, values: Mapping[str, str]) -> str:
    """Render ``template`` (already validated) and tidy the blank lines empty fields leave."""
    out: list[str] = []
    for literal, name, _spec, _conv in string.Formatter().parse(template):
        out.append(literal)
        if name:
            out.append(values.get(name, ""))
    text = "".join(out)
    lines = [line.rstrip() for line in text.split("\n")]
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


class FitError(ValueError):
    """The template's fixed parts alone are longer than the platform allows."""


def fit(template: str, values: Mapping[str, str], limit: int, count: Callable[[str], int]) -> str:
    """Render ``template`` within ``limit`` as measured by ``count``.

    Shortens content, then summary at word boundaries (binary search on the number of
    words kept), then drops whole hashtags from the end, then shortens the title.
    Raises FitError when even that does not fit.
    """
    values = dict(values)
    text = fill(template, values)
    if count(text) <= limit:
        return text
    used = set(template_fields(template))
    for field in ("content", "summary"):
        fitted = _shrink_field(template, values, field, used, limit, count)
        if fitted is not None:
            return fitted
    tag_names = [n for n in used if n in ("hashtags", "HASHTAG_CATEGORY", "HASHTAG_TAG", "hashtags_categories", "hashtags_tags")]
    for name in tag_names:
        tags = values[name].split()
        while tags:
            tags.pop()
            values[name] = " ".join(tags)
            text = fill(template, values)
            if count(text) <= limit:
                return text
    fitted = _shrink_field(template, values, "title", used, limit, count)
    if fitted is not None:
        return fitted
    text = fill(template, values)
    if count(text) <= limit:
        return text
    raise FitError(
        f"the post is {count(text)} long even with the summary and content left out, over the limit of {limit}; "
        "shorten the channel's template"
    )


def _shrink_field(template: str, values: dict[str, str], field: str, used: set[str], limit: int,
                  count: Callable[[str], int]) -> str | None:
    """Shorten ``field`` (and its aliases) to the most words that fit; None if even "" is too long.

    When it does not fit even empty, the field is left empty in ``values``.
    """
    names = [n for n in used if ALIASES.get(n, n) == field]
    if not names or not values.get(names[0]):
        return None
    original = values[names[0]]
    units = _units(original)

    def render_with(keep: int) -> str:
        short = shorten(original, keep, units)
        return fill(template, {**values, **dict.fromkeys(names, short)})

    if count(render_with(0)) > limit:
        for n in names:
            values[n] = ""
        return None
    low, high = 0, len(units)
    while low < high:  # the largest number of units that fits
        mid = (low + high + 1) // 2
        if count(render_with(mid)) <= limit:
            low = mid
        else:
            high = mid - 1
    return render_with(low)


def format_time(moment: datetime | None, tz: str = "UTC") -> str:
    if moment is None:
        return ""
    return moment.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M")
