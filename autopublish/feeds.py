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
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import feedparser
import requests
import urllib3

from autopublish import __version__
from autopublish.errors import FeedError
from autopublish.models import Article
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
    session: requests.Session,
    url: str,
    state: FetchState | None,
    limits: FetchLimits = FetchLimits(),
    *,
    clock: Any = time.time,
) -> FetchResult:
    """One poll of ``url``. Raises FeedError with a plain reason; never parses."""
    if url.startswith(("file://", "sample:")):
        return _read_local(url, state, limits)
    headers = {
        "User-Agent": USER_AGENT,
        "Accept": "application/rss+xml, application/atom+xml, application/feed+json, application/xml;q=0.9, */*;q=0.5",
        "Accept-Encoding": "gzip, deflate",
    }
    conditional = validators_for(state)
    headers.update(conditional)
    started = time.monotonic()
    current = url
    try:
        for _hop in range(limits.max_redirects + 1):
            response = session.get(current, headers=headers, timeout=limits.timeout, stream=True, allow_redirects=False)
            if response.status_code in (301, 302, 303, 307, 308) and response.headers.get("Location"):
                response.close()
                current = urljoin(current, response.headers["Location"])
                continue
            break
        else:
            raise FeedError(f"The feed redirects more than {limits.max_redirects} times (a redirect loop?); check its address", status=None)
        with response:
            return _read_response(response, current, state, limits, started, bool(conditional), clock)
    except FeedError:
        raise
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
    response: requests.Response,
    url: str,
    state: FetchState | None,
    limits: FetchLimits,
    started: float,
    conditional: bool,
    clock: Any,
) -> FetchResult:
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
    if status >= 400 or status < 200:
        raise FeedError(f"The feed's server answered HTTP {status}", status=status)
    declared = response.headers.get("Content-Length")
    if declared and declared.isdigit() and int(declared) > limits.max_bytes:
        raise FeedError(f"The feed is larger than the {limits.max_bytes // (1024 * 1024)} MB limit ({int(declared) // (1024 * 1024)} MB); raise max_feed_size "
                        f"if this is expected")
    body = _read_capped(response, limits, started)
    digest = hashlib.sha256(body).hexdigest()
    new_state = FetchState(
        etag=response.headers.get("ETag"),
        last_modified=response.headers.get("Last-Modified"),
        fetched_at=fetched_at,
        body_hash=digest,
    )
    if state is not None and state.body_hash == digest:
        return FetchResult(None, new_state, status, response.headers.get("Content-Type", ""), url, conditional)
    return FetchResult(body, new_state, status, response.headers.get("Content-Type", ""), url, conditional)


def _read_capped(response: requests.Response, limits: FetchLimits, started: float) -> bytes:
    """The decoded body, read as data arrives, within the size cap and the overall deadline.

    read1 returns whatever has arrived, so a server that trickles a few bytes at a time
    still meets the deadline check (a plain read waits to fill its buffer). Counting
    decoded bytes makes gzip bombs hit the same cap.
    """
    mb = limits.max_bytes // (1024 * 1024)
    chunks: list[bytes] = []
    size = 0
    try:
        while True:
            chunk = response.raw.read1(65536, decode_content=True)  # b"" only at the end
            if not chunk:
                break
            size += len(chunk)
            if size > limits.max_bytes:
                raise FeedError(f"The feed is larger than the {mb} MB limit; raise max_feed_size if this is expected")
            if time.monotonic() - started > limits.deadline:
                raise FeedError(f"The feed took longer than {int(limits.deadline)} s to download")
            chunks.append(chunk)
    except urllib3.exceptions.ReadTimeoutError:
        raise FeedError("The feed's server stopped answering (read timeout)") from None
    except urllib3.exceptions.DecodeError:
        raise FeedError("The feed's body was cut off or badly compressed") from None
    except (urllib3.exceptions.ProtocolError, urllib3.exceptions.HTTPError, OSError):
        raise FeedError("The feed's server closed the connection before the feed was complete") from None
    return b"".join(chunks)


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


def parse_feed(body: bytes, *, feed: str, content_type: str = "", url: str = "") -> ParsedFeed:
    """Articles of a feed body (RSS 0.9x/1.0/2.0, Atom, JSON Feed). FeedError if it is not a feed."""
    head = body.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if head in (b"{", b"[") or "json" in content_type.lower():
        return _parse_json_feed(body, feed=feed, url=url)
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
    title = html_to_text(feed_info.get("title", "")) if isinstance(feed_info, dict) else ""
    language = (feed_info.get("language") or "") if isinstance(feed_info, dict) else ""
    articles = []
    for entry in parsed.entries:
        article = _entry_to_article(entry, feed=feed, feed_title=title, language=language)
        if article is not None:
            articles.append(article)
    warning = ""
    if parsed.get("bozo"):
        problem = parsed.get("bozo_exception")
        warning = f"the feed has errors but could be read ({type(problem).__name__ if problem else 'malformed'})"
    return ParsedFeed(title=title, articles=articles, warning=warning)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


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
    return Article(
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
    cleaned = _WP_TAIL.sub("", text)
    cleaned = _WP_TAIL.sub("", cleaned)
    if cleaned != text and cleaned and not cleaned.endswith(("…", ".", "!", "?")):
        cleaned += "…"
    return cleaned.strip()


def _shorten_plain(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + "…"


def _lang(value: str) -> str:
    return value.split("-")[0].split("_")[0].lower()[:8] if value else ""


def _parse_json_feed(body: bytes, *, feed: str, url: str) -> ParsedFeed:
    try:
        data = json.loads(body.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError):
        raise FeedError("The feed looks like JSON but cannot be read as JSON") from None
    if not isinstance(data, dict) or not str(data.get("version", "")).startswith("https://jsonfeed.org/version/"):
        raise FeedError("The feed is JSON but not a JSON Feed (no jsonfeed.org version)")
    title = _text(data.get("title"))
    language = _text(data.get("language"))
    authors = data.get("authors") or ([data["author"]] if isinstance(data.get("author"), dict) else [])
    articles = []
    for item in data.get("items", []) or []:
        if not isinstance(item, dict):
            continue
        link = _text(item.get("url")) or _text(item.get("external_url"))
        if link and url:
            link = urljoin(url, link)
        item_id = str(item.get("id") or "").strip()
        content_html = _text(item.get("content_html"))
        content = html_to_text(content_html) if content_html else _text(item.get("content_text"))
        summary = _text(item.get("summary")) or _first_par(content)
        item_authors = item.get("authors") or ([item["author"]] if isinstance(item.get("author"), dict) else authors)
        author = ", ".join(_text(a.get("name")) for a in item_authors if isinstance(a, dict) and a.get("name"))
        image = _text(item.get("image")) or _text(item.get("banner_image")) or None
        alt = ""
        if not image:
            for attachment in item.get("attachments", []) or []:
                if isinstance(attachment, dict) and _text(attachment.get("mime_type")).startswith("image/"):
                    image = _text(attachment.get("url")) or None
                    break
        if not image and content_html:
            found = first_image(content_html)
            if found:
                image, alt = found
        key = item_id or (canonical_link(link) if link else "")
        item_title = _text(item.get("title"))
        if not key:
            continue
        tags = tuple(str(t) for t in item.get("tags", []) or [] if isinstance(t, str))
        articles.append(
            Article(
                feed=feed,
                key=key,
                link=link,
                title=item_title or _shorten_plain(summary or content, 80),
                summary=summary,
                content=content or summary,
                author=author,
                tags=tags,
                published=_iso(item.get("date_published")) or _iso(item.get("date_modified")),
                updated=_iso(item.get("date_modified")),
                image=image,
                image_alt=alt or item_title,
                feed_title=title,
                language=_lang(_text(item.get("language")) or language),
            )
        )
    return ParsedFeed(title=title, articles=articles)


def _first_par(text: str) -> str:
    return text.split("\n\n", 1)[0] if text else ""


def _iso(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


# --- identity ---------------------------------------------------------------------------

_TRACKING = re.compile(r"^(utm_[a-z_]*|fbclid|gclid|mc_cid|mc_eid|_ga)$", re.I)


def canonical_link(url: str) -> str:
    """A key for "the same article": scheme, host case, default port, trailing slash,
    fragment, utm_* and fbclid ignored. Used only for matching, never published."""
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
    path = re.sub(r"/{2,}", "/", parts.path or "/")
    if len(path) > 1:
        path = path.rstrip("/")
    query = urlencode(sorted((k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _TRACKING.match(k)))
    return urlunsplit(("", host, path, query, "")).lstrip("/")
