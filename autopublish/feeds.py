"""Fetch (requests, conditional GET, caps) and parse (feedparser on bytes -> Articles).

feedparser is never handed a URL: its own fetcher has no timeout and it treats a str
argument as a file name first. JSON Feed 1.0/1.1, which feedparser 6 does not read,
is parsed here into the same Article.
"""

from __future__ import annotations

import calendar
import email.utils
import hashlib
import io
import json
import logging
import re
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import feedparser
import requests

from autopublish import __version__
from autopublish.errors import AddressRefusedError, FeedError, FetchError
from autopublish.fastfeed import parse_fast
from autopublish.feedtext import clean_line, clean_text
from autopublish.models import Article
from autopublish.netguard import Fetched, GuardedFetcher, Origin, read_capped
from autopublish.textify import first_image, html_to_text

log = logging.getLogger(__name__)

USER_AGENT = f"autopublish/{__version__} (+https://github.com/autopublish/autopublish; feed poller)"
SAMPLES = Path(__file__).parent / "samples"
# A server whose validators have one-second resolution (WordPress) answers 304 to a
# post published in the same second as our previous fetch. When the last response's
# Last-Modified was this close to when we fetched it, the next poll sends no validators.
FRESH_GUARD_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class FetchState:
    """What the previous successful fetch of a feed left behind."""

    etag: str | None = None
    last_modified: str | None = None
    fetched_at: float | None = None  # epoch seconds of that response (its Date header, else our clock)
    body_hash: str | None = None


@dataclass(frozen=True, slots=True)
class FetchResult:
    """``body`` is None when the feed did not change (304, or the same bytes again)."""

    body: bytes | None
    state: FetchState
    status: int
    content_type: str = ""
    url: str = ""
    sent_validators: bool = False
    link_header: str = ""  # the response's Link header (WebSub discovery)


@dataclass(frozen=True, slots=True)
class FetchLimits:
    timeout: tuple[float, float] = (10.0, 20.0)
    deadline: float = 60.0  # the whole download, against servers that trickle forever
    max_bytes: int = 10 * 1024 * 1024
    max_redirects: int = 5


def validators_for(state: FetchState | None) -> dict[str, str]:
    """Conditional-GET headers for the next poll, unless the WordPress 304 guard applies."""
    if state is None or not (state.etag or state.last_modified):
        return {}
    if state.last_modified and state.fetched_at is not None:
        try:
            modified = email.utils.parsedate_to_datetime(state.last_modified).timestamp()
        except (TypeError, ValueError):
            modified = None
        if modified is not None and abs(state.fetched_at - modified) <= FRESH_GUARD_SECONDS:
            return {}
    headers = {}
    if state.etag:
        headers["If-None-Match"] = state.etag
    if state.last_modified:
        headers["If-Modified-Since"] = state.last_modified
    return headers


def fetch_feed(
    fetcher: GuardedFetcher,
    url: str,
    state: FetchState | None,
    limits: FetchLimits = FetchLimits(),
    *,
    clock: Any = time.time,
) -> FetchResult:
    """One poll of ``url`` through the guarded fetcher. Raises FeedError with a plain reason; never parses.

    The configured feed's own origin may be an internal address (a feed on the same
    machine); every redirect hop is checked like any URL from feed data.
    """
    if url.startswith(("file://", "sample:")):
        return _read_local(url, state, limits)
    headers = {"Accept": "application/rss+xml, application/atom+xml, application/feed+json, application/xml;q=0.9, */*;q=0.5"}
    if fetcher.user_agent == "":
        headers["User-Agent"] = USER_AGENT
    conditional = validators_for(state)
    headers.update(conditional)
    try:
        with fetcher.open(url, allowed_origin=Origin.of(url), headers=headers, timeout=limits.timeout, deadline=limits.deadline,
                          max_redirects=limits.max_redirects) as fetched:
            return _read_response(fetched, state, limits, bool(conditional), clock)
    except FeedError:
        raise
    except AddressRefusedError as exc:
        raise FeedError(f"The feed redirects to an address autopublish does not fetch: {exc.message}") from None
    except FetchError as exc:
        if "redirects more than" in exc.message:
            raise FeedError(f"The feed redirects more than {limits.max_redirects} times (a redirect loop?); check its address", status=None) from None
        if "took longer than" in exc.message:
            raise FeedError(f"The feed took longer than {int(limits.deadline)} s to download") from None
        raise FeedError(f"The feed could not be fetched: {exc.message}") from None
    except requests.exceptions.ConnectTimeout:
        raise FeedError("The feed's server did not accept a connection in time") from None
    except requests.exceptions.ReadTimeout:
        raise FeedError("The feed's server stopped answering (read timeout)") from None
    except requests.exceptions.SSLError:
        raise FeedError("The feed's HTTPS certificate could not be verified") from None
    except requests.exceptions.ConnectionError:
        raise FeedError("Could not connect to the feed's server") from None
    except (requests.exceptions.ContentDecodingError, requests.exceptions.ChunkedEncodingError):
        raise FeedError("The feed's body was cut off or badly compressed") from None
    except requests.exceptions.InvalidURL:
        raise FeedError("The feed address is not a valid URL") from None
    except requests.RequestException as exc:
        raise FeedError(f"The feed could not be fetched ({type(exc).__name__})") from None


def _read_response(
    fetched: Fetched,
    state: FetchState | None,
    limits: FetchLimits,
    conditional: bool,
    clock: Any,
) -> FetchResult:
    response, url = fetched.response, fetched.url
    status = response.status_code
    fetched_at = _response_time(response, clock)
    if status == 304:
        if state is None:
            raise FeedError("The feed answered 304 Not Modified to a request without validators")
        return FetchResult(None, replace(state, fetched_at=fetched_at), 304, url=url, sent_validators=conditional)
    if status in (404, 410):
        gone = "is gone (410)" if status == 410 else "was not found (404)"
        raise FeedError(f"The feed address {gone}; check the feed's url in the config", status=status)
    if status in (401, 403):
        raise FeedError(f"The feed's server refused access (HTTP {status})", status=status)
    if status == 429 or status >= 500:
        raise FeedError(f"The feed's server had a problem (HTTP {status}); will try again next poll", status=status)
    if status in (301, 302, 303, 307, 308):
        raise FeedError(f"The feed's server answered a redirect (HTTP {status}) without saying where to", status=status)
    if status >= 400 or status < 200:
        raise FeedError(f"The feed's server answered HTTP {status}", status=status)
    declared = response.headers.get("Content-Length")
    if declared and declared.isdigit() and int(declared) > limits.max_bytes:
        raise FeedError(f"The feed is larger than the {limits.max_bytes // (1024 * 1024)} MB limit ({int(declared) // (1024 * 1024)} MB); raise max_feed_size "
                        f"if this is expected")
    try:
        body = read_capped(fetched, limits.max_bytes)
    except FetchError as exc:
        raise FeedError(_feed_read_problem(exc.message, limits)) from None
    digest = hashlib.sha256(body).hexdigest()
    new_state = FetchState(
        etag=response.headers.get("ETag"),
        last_modified=response.headers.get("Last-Modified"),
        fetched_at=fetched_at,
        body_hash=digest,
    )
    if state is not None and state.body_hash == digest:
        return FetchResult(None, new_state, status, response.headers.get("Content-Type", ""), url, conditional)
    return FetchResult(body, new_state, status, response.headers.get("Content-Type", ""), url, conditional,
                       response.headers.get("Link", "")[:4096])


def _feed_read_problem(reason: str, limits: FetchLimits) -> str:
    if "larger than" in reason:
        return f"The feed is larger than the {limits.max_bytes // (1024 * 1024)} MB limit; raise max_feed_size if this is expected"
    if "took longer than" in reason:
        return f"The feed took longer than {int(limits.deadline)} s to download"
    if "read timeout" in reason:
        return "The feed's server stopped answering (read timeout)"
    if "compressed" in reason:
        return "The feed's body was cut off or badly compressed"
    return "The feed's server closed the connection before the feed was complete"


def _response_time(response: requests.Response, clock: Any) -> float:
    date = response.headers.get("Date")
    if date:
        try:
            return email.utils.parsedate_to_datetime(date).timestamp()
        except (TypeError, ValueError):
            pass
    return float(clock())


def _read_local(url: str, state: FetchState | None, limits: FetchLimits) -> FetchResult:
    path = SAMPLES / url[len("sample:"):] if url.startswith("sample:") else Path(urlsplit(url).path)
    try:
        with path.open("rb") as handle:
            body = handle.read(limits.max_bytes + 1)
    except OSError as exc:
        raise FeedError(f"The feed file {path} cannot be read ({exc.strerror})") from None
    if len(body) > limits.max_bytes:
        raise FeedError("The feed file is larger than the size limit")
    digest = hashlib.sha256(body).hexdigest()
    new_state = FetchState(body_hash=digest, fetched_at=time.time())
    if state is not None and state.body_hash == digest:
        return FetchResult(None, new_state, 200, url=url)
    return FetchResult(body, new_state, 200, "application/xml", url)


# --- parsing -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    title: str
    articles: list[Article]
    warning: str = ""
    home: str = ""  # the site's home page the feed declares (RSS/Atom <link>, JSON Feed home_page_url)
    hub: str = ""  # a WebSub hub the body declares (atom:link rel="hub", JSON Feed hubs)
    self_url: str = ""  # the feed's own URL as it declares it (rel="self", JSON Feed feed_url)
    skipped: tuple[str, ...] = ()  # entries that could not be read: which one and why, in plain words


class EntryError(ValueError):
    """One entry cannot be read (a date out of range, a field of the wrong type); the others go on."""


def _describe(entry: Any, index: int) -> str:
    """Which entry: its id, link or title where readable, else its position."""
    try:
        for field_name in ("id", "guid", "url", "link", "title"):
            value = entry.get(field_name) if hasattr(entry, "get") else None
            if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value).strip():
                shown = clean_line(str(value))
                return f"entry {index + 1} ({field_name} \"{shown[:120] + ('…' if len(shown) > 120 else '')}\")"
    except Exception:  # describing a hostile entry must not fail too
        pass
    return f"entry {index + 1}"


def _why(exc: BaseException) -> str:
    if isinstance(exc, EntryError):
        return str(exc)
    if isinstance(exc, OverflowError):
        return "a value in it is out of range"
    if isinstance(exc, RecursionError):
        return "it is nested too deeply"
    if isinstance(exc, UnicodeError):
        return "its text is not valid Unicode"
    if isinstance(exc, (TypeError, AttributeError, KeyError)):
        return "a field has the wrong type"
    return f"it could not be read ({type(exc).__name__})"


def parse_feed(body: bytes, *, feed: str, content_type: str = "", url: str = "",
               serial: AbstractContextManager[object] | None = None) -> ParsedFeed:
    """Articles of a feed body (RSS 0.9x/1.0/2.0, Atom, JSON Feed). FeedError if it is not a feed.

    ``serial`` is held while the quick paths (JSON Feed, the lxml fast path) run. The feedparser
    fallback runs outside it, because on a big, odd feed it can take seconds, and it should not hold
    up the other feeds' parsing for that long.
    """
    with serial or nullcontext():
        head = body.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
        if head in (b"{", b"[") or "json" in content_type.lower():
            return _parse_json_feed(body, feed=feed, url=url)
        fast = parse_fast(body, content_type)
        if fast is not None:
            return _from_entries(fast, feed=feed)
    return parse_feed_slow(body, feed=feed, content_type=content_type, url=url)


def _from_entries(fast: tuple[str, str, list[dict[str, Any]], dict[str, str]], *, feed: str) -> ParsedFeed:
    """The fast path's entries (feedparser-shaped dicts) through the same mapping as parse_feed_slow."""
    raw_title, language, entries, links = fast
    title = clean_line(html_to_text(_text(raw_title)))
    articles, skipped = _articles_from(entries, feed=feed, title=title, language=language)
    return ParsedFeed(title=title, articles=articles, skipped=tuple(skipped), home=_http(_text(links["home"])),
                      hub=_http(_text(links["hub"])), self_url=_http(_text(links["self"])))


def parse_feed_slow(body: bytes, *, feed: str, content_type: str = "", url: str = "") -> ParsedFeed:
    """parse_feed through feedparser alone: every RSS/Atom dialect, encoding and oddity."""
    try:
        parsed = feedparser.parse(
            io.BytesIO(body),
            response_headers={"content-type": content_type or "application/xml", "content-location": url},
        )
    except Exception as exc:  # feedparser is lenient; anything escaping it is still one bad feed
        raise FeedError(f"The feed could not be read ({type(exc).__name__})") from None
    if not parsed.get("version") and not parsed.entries:
        snippet = body[:512].lower()
        if b"<html" in snippet or b"<!doctype html" in snippet:
            raise FeedError("The feed address returned a web page, not a feed; check the url (WordPress feeds end in /feed/)")
        raise FeedError("The feed's content is not RSS, Atom or JSON Feed")
    feed_info = parsed.get("feed", {})
    title = clean_line(html_to_text(_text(feed_info.get("title", "")))) if isinstance(feed_info, dict) else ""
    language = _text(feed_info.get("language")) if isinstance(feed_info, dict) else ""
    articles, skipped = _articles_from(parsed.entries, feed=feed, title=title, language=language)
    warning = ""
    if parsed.get("bozo"):
        bozo = parsed.get("bozo_exception")
        warning = f"the feed has errors but could be read ({type(bozo).__name__ if bozo else 'malformed'})"
    home = _text(feed_info.get("link")) if isinstance(feed_info, dict) else ""
    hub = self_url = ""
    for link in (feed_info.get("links", []) if isinstance(feed_info, dict) else []) or []:
        if not isinstance(link, dict):
            continue
        rel, href = _text(link.get("rel")), _text(link.get("href"))
        if rel == "hub" and not hub:
            hub = href
        elif rel == "self" and not self_url:
            self_url = href
    return ParsedFeed(title=title, articles=articles, warning=warning, skipped=tuple(skipped), home=_http(home), hub=_http(hub),
                      self_url=_http(self_url))


def _http(url: str) -> str:
    """``url`` if it is a plausible http(s) address (feed data is hostile), else ""."""
    url = url.strip()
    return url if len(url) <= 2048 and re.match(r"^https?://[^\s/]+", url) and not re.search(r"\s", url) else ""


@dataclass(frozen=True, slots=True)
class FeedLinks:
    home: str = ""
    hub: str = ""
    self_url: str = ""


def feed_links(parsed: ParsedFeed, link_header: str = "") -> FeedLinks:
    """Home page, WebSub hub and self URL of a fetched feed; the HTTP Link header wins over the body (W3C WebSub §4)."""
    hub, self_url = "", ""
    if link_header:
        for link in requests.utils.parse_header_links(link_header):
            rels = link.get("rel", "").split()
            if "hub" in rels and not hub:
                hub = _http(link.get("url", ""))
            if "self" in rels and not self_url:
                self_url = _http(link.get("url", ""))
    return FeedLinks(home=parsed.home, hub=hub or parsed.hub, self_url=self_url or parsed.self_url)


def _text(value: Any) -> str:
    """A text field of an entry: '' unless it is a str; lone surrogates replaced."""
    return clean_text(value) if isinstance(value, str) else ""


def _field(item: dict[str, Any], name: str) -> str:
    """A JSON Feed text field: absent or null is ''; any other non-string is an unreadable entry."""
    value = item.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise EntryError(f"its \"{name}\" is not text")
    return clean_text(value)


def _finish(*, feed: str, key: str, link: str, title: str, summary: str = "", content: str = "", author: str = "",
            categories: tuple[str, ...] = (), tags: tuple[str, ...] = (), published: datetime | None = None,
            updated: datetime | None = None, image: str | None = None, image_alt: str = "", feed_title: str = "",
            language: str = "") -> Article:
    """The article, every text field cleaned once more after HTML was turned into text (entities can hide control characters)."""
    return Article(
        feed=feed,
        key=clean_line(key),
        link=clean_line(link),
        title=clean_line(title),
        summary=clean_text(summary),
        content=clean_text(content),
        author=clean_line(author),
        categories=tuple(c for c in (clean_line(c) for c in categories) if c),
        tags=tuple(t for t in (clean_line(t) for t in tags) if t),
        published=published,
        updated=updated,
        image=clean_line(image) or None if image else None,
        image_alt=clean_line(image_alt),
        feed_title=clean_line(feed_title),
        language=clean_line(language),
    )


def _articles_from(entries: Any, *, feed: str, title: str, language: str) -> tuple[list[Article], list[str]]:
    """Turn entries into articles; an unreadable entry is named in ``skipped`` and never stops the others."""
    articles: list[Article] = []
    skipped: list[str] = []
    for index, entry in enumerate(entries):
        try:
            article = _entry_to_article(entry, feed=feed, feed_title=title, language=language)
        except Exception as problem:  # one unreadable entry never stops the others
            skipped.append(f"{_describe(entry, index)}: {_why(problem)}")
            continue
        if article is not None:
            articles.append(article)
    return articles, skipped

def _entry_to_article(entry: Any, *, feed: str, feed_title: str, language: str) -> Article | None:
    link = _text(entry.get("link")).strip()
    if not link:
        for candidate in entry.get("links", []) or []:
            href = _text(candidate.get("href"))
            if href and candidate.get("rel", "alternate") == "alternate":
                link = href.strip()
                break
    entry_id = _text(entry.get("id")).strip()
    title = html_to_text(_text(entry.get("title")))
    summary_html = _text(entry.get("summary"))
    content_html = ""
    for block in entry.get("content", []) or []:
        value = _text(block.get("value"))
        if value and len(value) > len(content_html):
            content_html = value
    published = _when(entry.get("published_parsed")) or _when(entry.get("updated_parsed"))
    updated = _when(entry.get("updated_parsed"))
    key = entry_id or (canonical_link(link) if link else "")
    if not key:
        if not title:
            return None
        key = "hash:" + hashlib.sha256(f"{title}|{published}".encode()).hexdigest()[:32]
    labels = []
    for tag in entry.get("tags", []) or []:
        term = html_to_text(_text(tag.get("term")) or _text(tag.get("label")))
        if term and term not in labels:
            labels.append(term)
    image, alt = _image(entry, content_html or summary_html)
    summary = _clean_excerpt(html_to_text(summary_html))
    content = html_to_text(content_html) if content_html else summary
    return _finish(
        feed=feed,
        key=key,
        link=link,
        title=title or _shorten_plain(summary or content, 80),
        summary=summary,
        content=content,
        author=html_to_text(_text(entry.get("author"))),
        categories=tuple(labels),
        published=published,
        updated=updated,
        image=image,
        image_alt=alt or title,
        feed_title=feed_title,
        language=_lang(language),
    )


def _when(parsed: Any) -> datetime | None:
    if not parsed:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(parsed), UTC)
    except (TypeError, ValueError, OverflowError):
        return None


def _image(entry: Any, html: str) -> tuple[str | None, str]:
    for media in entry.get("media_content", []) or []:
        url = _text(media.get("url"))
        if url and (media.get("medium") == "image" or _text(media.get("type")).startswith("image/") or re.search(r"\.(jpe?g|png|gif|webp)(\?|$)", url, re.I)):
            return url, ""
    for media in entry.get("media_thumbnail", []) or []:
        url = _text(media.get("url"))
        if url:
            return url, ""
    for enclosure in entry.get("enclosures", []) or []:
        url = _text(enclosure.get("href") or enclosure.get("url"))
        if url and _text(enclosure.get("type")).startswith("image/"):
            return url, ""
    found = first_image(html)
    if found and found[0].startswith(("http://", "https://")):
        return found
    return None, ""


_WP_TAIL = re.compile(r"\s*(\[(…|&hellip;|\.\.\.)\]|The post .{1,300} appeared first on .{1,200}\.)\s*$", re.S)


def _clean_excerpt(text: str) -> str:
    """WordPress excerpts end in "[…]" or "The post X appeared first on Y."; keep the prose."""
    cleaned = _strip_wp_tail(_strip_wp_tail(text))
    if cleaned != text and cleaned and not cleaned.endswith(("…", ".", "!", "?")):
        cleaned += "…"
    return cleaned.strip()


_BRACKET_TAILS = ("[…]", "[&hellip;]", "[...]")


def _strip_wp_tail(text: str) -> str:
    """``_WP_TAIL.sub("", text)``; without " appeared first on " only the bracket can match, at the end, found without a scan.

    The match runs to the end of the text (``\\s*$``), its core ends in a non-space, and ``\\s`` is
    ``str.isspace``: so it is the bracket that ends ``text.rstrip()``, with the spaces before it."""
    if " appeared first on " in text:
        return _WP_TAIL.sub("", text)
    end = text.rstrip()
    for tail in _BRACKET_TAILS:
        if end.endswith(tail):
            return end[:-len(tail)].rstrip()
    return text


def _shorten_plain(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + "…"


def _lang(value: str) -> str:
    return value.split("-")[0].split("_")[0].lower()[:8] if value else ""


def _parse_json_feed(body: bytes, *, feed: str, url: str) -> ParsedFeed:
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise FeedError("The feed looks like JSON but cannot be read as JSON") from None
    try:
        data = json.loads(text)
        items_raw: list[Any] | None = None
    except RecursionError:
        # Deep nesting somewhere: read the items one by one, so one hostile entry fails alone.
        data, items_raw = _split_json_items(text)
    except ValueError:
        raise FeedError("The feed looks like JSON but cannot be read as JSON") from None
    if not isinstance(data, dict) or not str(data.get("version", "")).startswith("https://jsonfeed.org/version/"):
        raise FeedError("The feed is JSON but not a JSON Feed (no jsonfeed.org version)")
    title = clean_line(_text(data.get("title")))
    language = _text(data.get("language"))
    authors = data.get("authors") or ([data["author"]] if isinstance(data.get("author"), dict) else [])
    if not isinstance(authors, list):
        authors = []
    items = items_raw if items_raw is not None else data.get("items", []) or []
    if not isinstance(items, list):
        raise FeedError("The feed's \"items\" is not a list; it is not a valid JSON Feed")
    articles = []
    skipped: list[str] = []
    for index, item in enumerate(items):
        if isinstance(item, _Unreadable):
            skipped.append(f"entry {index + 1}: {item.reason}")
            continue
        if not isinstance(item, dict):
            skipped.append(f"entry {index + 1}: it is not a JSON object")
            continue
        try:
            article = _json_item_to_article(item, feed=feed, url=url, feed_title=title, language=language, authors=authors)
        except Exception as exc:  # one unreadable entry never stops the others
            skipped.append(f"{_describe(item, index)}: {_why(exc)}")
            continue
        if article is not None:
            articles.append(article)
    hubs_raw = data.get("hubs")
    hubs: list[Any] = hubs_raw if isinstance(hubs_raw, list) else []
    hub = next((_text(h.get("url")) for h in hubs if isinstance(h, dict) and _text(h.get("type")).lower() == "websub"), "")
    return ParsedFeed(title=title, articles=articles, skipped=tuple(skipped), home=_http(_text(data.get("home_page_url"))),
                      hub=_http(hub), self_url=_http(_text(data.get("feed_url"))))


def _json_item_to_article(item: dict[str, Any], *, feed: str, url: str, feed_title: str, language: str,
                          authors: list[Any]) -> Article | None:
    link = _field(item, "url") or _field(item, "external_url")
    if link and url:
        link = urljoin(url, link)
    raw_id = item.get("id")
    if raw_id is not None and (isinstance(raw_id, bool) or not isinstance(raw_id, (str, int, float))):
        raise EntryError('its "id" is not text')
    item_id = clean_line(str(raw_id)) if raw_id is not None else ""
    content_html = _field(item, "content_html")
    content = html_to_text(content_html) if content_html else _field(item, "content_text")
    summary = _field(item, "summary") or _first_par(content)
    item_authors = item.get("authors") or ([item["author"]] if isinstance(item.get("author"), dict) else authors)
    if not isinstance(item_authors, list):
        item_authors = []
    author = ", ".join(_text(a.get("name")) for a in item_authors if isinstance(a, dict) and isinstance(a.get("name"), str))
    image = _field(item, "image") or _field(item, "banner_image") or None
    alt = ""
    attachments = item.get("attachments")
    if attachments is not None and not isinstance(attachments, list):
        raise EntryError('its "attachments" is not a list')
    if not image:
        for attachment in attachments or []:
            if isinstance(attachment, dict) and _text(attachment.get("mime_type")).startswith("image/"):
                image = _text(attachment.get("url")) or None
                break
    if not image and content_html:
        found = first_image(content_html)
        if found:
            image, alt = found
    key = item_id or (canonical_link(link) if link else "")
    item_title = _field(item, "title")
    if not key:
        return None
    raw_tags = item.get("tags")
    if raw_tags is not None and not isinstance(raw_tags, list):
        raise EntryError('its "tags" is not a list')
    tags = tuple(clean_text(t) for t in raw_tags or [] if isinstance(t, str))
    return _finish(
        feed=feed,
        key=key,
        link=link,
        title=item_title or _shorten_plain(summary or content, 80),
        summary=summary,
        content=content or summary,
        author=author,
        tags=tags,
        published=_iso(item.get("date_published"), "date_published") or _iso(item.get("date_modified"), "date_modified"),
        updated=_iso(item.get("date_modified"), "date_modified"),
        image=image,
        image_alt=alt or item_title,
        feed_title=feed_title,
        language=_lang(_field(item, "language") or language),
    )


@dataclass(frozen=True, slots=True)
class _Unreadable:
    reason: str


_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def _split_json_items(text: str) -> tuple[Any, list[Any]]:
    """(the document with "items" emptied, each item parsed on its own or _Unreadable).

    Used only when the whole document is nested too deeply for the JSON decoder. A scan
    of strings and brackets (no recursion) finds the top-level "items" array and the
    span of each of its elements.
    """
    depth = 0
    last_key: tuple[int, str] | None = None  # (end offset, text) of the last string at depth 1
    array_start = array_end = -1
    spans: list[tuple[int, int]] = []
    element_start = -1
    for match in _JSON_TOKEN.finditer(text):
        token = match.group()
        if token.startswith('"'):
            if depth == 1:
                last_key = (match.end(), token)
            continue
        if token in "[{":
            depth += 1
            if token == "[" and depth == 2 and array_start < 0 and last_key is not None and last_key[1] == '"items"' \
                    and text[last_key[0]:match.start()].strip() == ":":
                array_start = match.start()
            elif depth == 3 and array_start >= 0 and array_end < 0:
                element_start = match.start()
        else:
            if depth == 3 and element_start >= 0 and array_end < 0:
                spans.append((element_start, match.end()))
                element_start = -1
            if depth == 2 and array_start >= 0 and array_end < 0 and token == "]":
                array_end = match.end()
            depth -= 1
    if array_start < 0 or array_end < 0:
        raise FeedError("The feed's JSON is nested too deeply to be read")
    try:
        data = json.loads(text[:array_start] + "[]" + text[array_end:])
    except (RecursionError, ValueError):
        raise FeedError("The feed's JSON is nested too deeply to be read") from None
    items: list[Any] = []
    for start, end in spans:
        try:
            items.append(json.loads(text[start:end]))
        except RecursionError:
            items.append(_Unreadable("it is nested too deeply"))
        except ValueError:
            items.append(_Unreadable("it is not valid JSON"))
    return data, items


def _first_par(text: str) -> str:
    return text.split("\n\n", 1)[0] if text else ""


def _iso(value: Any, name: str = "date") -> datetime | None:
    """An RFC 3339 date as aware UTC; None when absent or not a date; EntryError when out of range."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise EntryError(f"its \"{name}\" is not text")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise EntryError(f"its \"{name}\" ({clean_line(value)[:40]}) is out of the range of dates") from None


# --- identity ---------------------------------------------------------------------------

_SLASHES = re.compile(r"/{2,}")
_TRACKING = re.compile(r"^(utm_[a-z_]*|fbclid|gclid|mc_cid|mc_eid|_ga)$", re.I)


# http(s), a lower-case host without port or user, a path of plain URL characters, no query or
# fragment: the usual article link, whose canonical form needs no full URL parse.
_PLAIN_LINK = re.compile(r"https?://([a-z0-9.-]*)(/[A-Za-z0-9._~%!$&'()*+,;=:@/-]*)?\Z")


def canonical_link(url: str) -> str:
    """A key for "the same article": scheme, host case, default port, trailing slash,
    fragment, utm_* and fbclid ignored. Used only for matching, never published."""
    plain = _PLAIN_LINK.match(url.strip())
    if plain is not None:  # what the general path below gives for such a link (tests/test_cheaper_steps.py)
        host = plain.group(1).rstrip(".")
        if host.startswith("www."):
            host = host[4:]
        path = plain.group(2) or "/"
        if "//" in path:
            path = _SLASHES.sub("/", path)
        if len(path) > 1:
            path = path.rstrip("/")
        return (host + path).lstrip("/") if host else path.lstrip("/")
    return _canonical_link_parsed(url)


def _canonical_link_parsed(url: str) -> str:
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return url.strip()
    host = (parts.hostname or "").lower().rstrip(".")
    if host.startswith("www."):
        host = host[4:]
    try:
        port = parts.port
    except ValueError:
        port = None
    if port and not (port == 80 and parts.scheme in ("http", "")) and not (port == 443 and parts.scheme == "https"):
        host = f"{host}:{port}"
    path = parts.path or "/"
    if "//" in path:
        path = _SLASHES.sub("/", path)
    if len(path) > 1:
        path = path.rstrip("/")
    query = urlencode(sorted((k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _TRACKING.match(k))) if parts.query else ""
    return urlunsplit(("", host, path, query, "")).lstrip("/")
