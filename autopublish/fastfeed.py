"""A fast path for plain, well-formed RSS 2.0 and Atom 1.0 on lxml; None means "use feedparser".

feedparser takes ~35 ms for a 97 KB WordPress feed; this takes a few. It builds the
same entry dictionaries feedparser would (only the keys feeds.py reads), so the
mapping to Article stays in one place. It is deliberately narrow: a DOCTYPE, an
encoding other than UTF-8, xml:base, an element it does not know inside an item,
a relative link or image, a repeated single-valued element... anything unusual
returns None and feedparser, which handles every oddity, reads the feed instead.
tests/test_fastfeed.py proves both paths give the same articles wherever this one
accepts a feed (on vendored feeds and, where present, feedparser's 2,107-file corpus).
"""

from __future__ import annotations

import re
from typing import Any

from lxml import etree

from autopublish.textify import first_image

try:  # the same date parser and cp1252 table feedparser uses, so dates and text match exactly
    from feedparser.datetimes import _parse_date
    from feedparser.html import _cp1252
except ImportError:  # pragma: no cover - a feedparser without them: always fall back
    _parse_date = None
    _cp1252 = None

Entry = dict[str, Any]
Links = dict[str, str]  # the feed's own home, hub and self links, as feedparser reports them

_ATOM = "http://www.w3.org/2005/Atom"
_CONTENT = "http://purl.org/rss/1.0/modules/content/"
_DC = "http://purl.org/dc/elements/1.1/"
_MEDIA = "http://search.yahoo.com/mrss/"
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
_ABSOLUTE = re.compile(r"^https?://[^\s<>\"']+$", re.IGNORECASE)
_ENTITY = re.compile(r"&#?\w+;")
_DECL = re.compile(rb"^<\?xml[^>]*?encoding\s*=\s*[\"']([^\"']+)[\"']", re.IGNORECASE)

# RSS <item> children this path understands; anything else sends the feed to feedparser.
_RSS_ITEM = {
    "title", "link", "guid", "pubDate", "description", "category", "comments",
    f"{{{_CONTENT}}}encoded", f"{{{_DC}}}creator", "enclosure", f"{{{_MEDIA}}}content", f"{{{_MEDIA}}}thumbnail",
    "{http://wellformedweb.org/CommentAPI/}commentRss", "{http://purl.org/rss/1.0/modules/slash/}comments",
}
_RSS_SINGLE = {"title", "link", "guid", "pubDate", "description", f"{{{_CONTENT}}}encoded", f"{{{_DC}}}creator", "comments"}
_ATOM_ITEM = {f"{{{_ATOM}}}{name}" for name in ("id", "title", "link", "updated", "published", "summary", "content", "author", "category")}
_ATOM_SINGLE = {f"{{{_ATOM}}}{name}" for name in ("id", "title", "updated", "published", "summary", "content", "author")}
_TEXT_TYPES = {"text", "html"}
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, remove_comments=True,
                          remove_pis=True, recover=False)


class _Unsure(Exception):
    """Something this path does not read exactly like feedparser: fall back."""


def parse_fast(body: bytes, content_type: str = "") -> tuple[str, str, list[Entry], Links] | None:
    """(feed title, language, entries, links) of a plain RSS 2.0 / Atom 1.0 feed, or None to use feedparser."""
    if _parse_date is None or not _plain_utf8(body, content_type):
        return None
    try:
        root = etree.fromstring(body, _PARSER)
        # Without a DTD (refused here) and in UTF-8, an xml: attribute is spelled out in the bytes:
        # where they lack it, the tree cannot have it, and the walk over every node is skipped.
        if root.getroottree().docinfo.doctype or (b"xml:base" in body and _has_xml_base(root)):
            return None
        maybe_lang = b"xml:lang" in body
        if root.tag == "rss" and root.get("version") in ("2.0", "2.0.1", "2.01"):
            return _rss(root, maybe_lang)
        if root.tag == f"{{{_ATOM}}}feed":
            return _atom(root, maybe_lang)
    except (etree.XMLSyntaxError, _Unsure, ValueError, TypeError):
        return None
    return None


def _plain_utf8(body: bytes, content_type: str) -> bool:
    """UTF-8 by every signal (HTTP charset, XML declaration, bytes), so encoding detection cannot differ."""
    media, _, params = content_type.partition(";")
    media = media.strip().lower()
    if media and not (media.startswith("application/") and media.endswith("xml")):
        return False  # text/xml defaults to us-ascii under RFC 3023: feedparser's rules apply
    charset = re.search(r"charset\s*=\s*\"?([^\s;\"]+)", params, re.IGNORECASE)
    if charset and charset.group(1).lower() not in ("utf-8", "utf8"):
        return False
    if body.startswith((b"\xef\xbb\xbf", b"\xfe\xff", b"\xff\xfe")) or not body.startswith(b"<"):
        return False
    declared = _DECL.match(body[:200])
    if declared and declared.group(1).lower() not in (b"utf-8", b"utf8"):
        return False
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


_ANY_XML_BASE = etree.XPath("boolean(//@xml:base)")
_ANY_XML_LANG = etree.XPath("boolean(//@xml:lang)")
_XML_LANG_BELOW_ROOT = etree.XPath("boolean(/*//*/@xml:lang)")


def _has_xml_base(root: Any) -> bool:
    return bool(_ANY_XML_BASE(root))


# --- text, as feedparser leaves it -------------------------------------------------------

def _fix(text: str) -> str:
    """feedparser's last steps on every value: the mis-declared-UTF-8 repair and cp1252 mapping."""
    if text.isascii():
        return text  # both steps leave ASCII as it is
    try:
        text = text.encode("iso-8859-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        pass
    return text.translate(_cp1252)


def _text(el: Any) -> str:
    if len(el):
        raise _Unsure("markup inside a text element")
    return _fix((el.text or "").strip())


def _plain(el: Any) -> str:
    """A value feedparser may guess to be HTML and sanitize: accept only text with no markup."""
    value = _text(el)
    if "<" in value or _ENTITY.search(value):
        raise _Unsure("markup-like text")  # feedparser's looks_like_html may treat it as HTML
    return value


def _html(el: Any) -> str:
    """An HTML value: sanitizing and resolving it (as feedparser does) must not change its text or first image."""
    value = _text(el)
    if "<" not in value:
        return value
    lowered = value.lower()
    if "data-src" in lowered or "<base" in lowered or "<![cdata[" in lowered:
        raise _Unsure("markup feedparser's sanitizer rewrites")
    found = first_image(value) if "<img" in lowered else None
    if found is not None and not _ABSOLUTE.match(found[0]):
        raise _Unsure("a relative or odd image address")
    return value


def _url(value: str) -> str:
    if not _ABSOLUTE.match(value) or "&" in value or "/." in value:
        raise _Unsure("a link feedparser would resolve or rewrite")
    return value


def _date(el: Any) -> Any:
    value = _text(el)
    return _parse_date(value) if value else None


def _children(item: Any, allowed: set[str], single: set[str]) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    for child in item:
        tag = child.tag
        if not isinstance(tag, str) or tag not in allowed:
            raise _Unsure(f"unknown element {tag!r}")
        if child.get(_XML_LANG) is not None:
            raise _Unsure("xml:lang inside an entry")
        found.setdefault(tag, []).append(child)
        if tag in single and len(found[tag]) > 1:
            raise _Unsure(f"repeated {tag}")
    return found


def _media(found: dict[str, list[Any]], entry: Entry) -> None:
    contents, thumbnails = found.get(f"{{{_MEDIA}}}content", []), found.get(f"{{{_MEDIA}}}thumbnail", [])
    for el in contents + thumbnails:
        if len(el) or (el.text or "").strip() or not _ABSOLUTE.match(el.get("url", "")):
            raise _Unsure("media element with content or an odd url")
    if contents:
        entry["media_content"] = [dict(el.attrib) for el in contents]
    if thumbnails:
        entry["media_thumbnail"] = [dict(el.attrib) for el in thumbnails]


# --- RSS 2.0 -------------------------------------------------------------------------------

def _rss(root: Any, maybe_lang: bool = True) -> tuple[str, str, list[Entry], Links]:
    channels = [el for el in root if isinstance(el.tag, str)]
    if len(channels) != 1 or channels[0].tag != "channel" or len(root.attrib) > 1 or (root.text and root.text.strip()):
        raise _Unsure("not one plain channel")
    channel = channels[0]
    if maybe_lang and _ANY_XML_LANG(root):
        raise _Unsure("xml:lang")
    title, language = "", ""
    entries = []
    links: Links = {"home": "", "hub": "", "self": ""}
    seen: set[str] = set()
    for el in channel:
        tag = el.tag
        if not isinstance(tag, str):
            continue
        if tag == "item":
            entries.append(_rss_item(el))
        elif tag in ("title", "language", "link"):
            if tag in seen:
                raise _Unsure(f"repeated channel {tag}")
            seen.add(tag)
            if tag == "title":
                title = _plain(el)
            elif tag == "link":
                links["home"] = _url(_text(el))
            else:
                language = _text(el)
        elif tag == f"{{{_ATOM}}}link":
            _feed_link(el, links, alternate_allowed=False)
        elif tag in ("textinput", "textInput") or tag.startswith((f"{{{_DC}}}", f"{{{_ATOM}}}")):
            raise _Unsure(f"channel element {tag!r}")
    return title, language, entries, links


def _feed_link(el: Any, links: Links, *, alternate_allowed: bool) -> None:
    """A feed-level atom:link: hub and self are kept (the first of each), an alternate page is the home."""
    rel, kind = el.get("rel", "alternate"), el.get("type", "text/html")
    if len(el) or (el.text or "").strip():
        raise _Unsure("a link with content")
    href = _url(el.get("href", ""))
    if rel in ("hub", "self"):
        links[rel] = links[rel] or href
    elif rel == "alternate" and alternate_allowed and kind in ("text/html", "application/xhtml+xml") and not links["home"]:
        links["home"] = href
    elif rel not in ("related", "via", "license", "search", "edit", "first", "next", "previous", "last"):
        raise _Unsure(f"a feed link rel={rel}")


def _rss_item(item: Any) -> Entry:
    found = _children(item, _RSS_ITEM, _RSS_SINGLE)
    entry: Entry = {}
    if "title" in found:
        entry["title"] = _plain(found["title"][0])
    if "guid" in found:
        guid = found["guid"][0]
        value = _text(guid)
        if guid.get("isPermaLink", "true").lower() != "false":
            raise _Unsure("a permalink guid")  # feedparser resolves it and may make it the link
        entry["id"] = value
    if "link" in found:
        entry["link"] = _url(_text(found["link"][0]))
    if "pubDate" in found:
        entry["published_parsed"] = _date(found["pubDate"][0])
    content = found.get(f"{{{_CONTENT}}}encoded")
    if content:
        entry["content"] = [{"value": _html(content[0])}]
    if "description" in found:
        entry["summary"] = _html(found["description"][0])
    elif content:
        entry["summary"] = entry["content"][0]["value"]  # feedparser copies content to a missing summary
    creator = found.get(f"{{{_DC}}}creator")
    if creator:
        entry["author"] = _plain(creator[0])
        if "@" in entry["author"] or "(" in entry["author"]:
            raise _Unsure("an author feedparser splits")
    tags = []
    for el in found.get("category", []):
        term = _plain(el)
        if el.attrib or not term:
            raise _Unsure("a category with a domain or no term")
        tags.append({"term": term, "label": None})
    if tags:
        entry["tags"] = tags
    enclosures = []
    for el in found.get("enclosure", []):
        if len(el) or (el.text or "").strip():
            raise _Unsure("an enclosure with content")
        enclosures.append({"href": _url(el.get("url", "")), "type": el.get("type", "")})
    if enclosures:
        entry["enclosures"] = enclosures
    _media(found, entry)
    _updated_fallback(entry)
    return entry


def _updated_fallback(entry: Entry) -> None:
    """feedparser's entry.updated_parsed falls back to published_parsed."""
    if entry.get("updated_parsed") is None and entry.get("published_parsed") is not None:
        entry["updated_parsed"] = entry["published_parsed"]


# --- Atom 1.0 -------------------------------------------------------------------------------

def _atom(root: Any, maybe_lang: bool = True) -> tuple[str, str, list[Entry], Links]:
    language = root.get(_XML_LANG) or ""
    if maybe_lang and _XML_LANG_BELOW_ROOT(root):
        raise _Unsure("xml:lang below the feed")
    title = ""
    entries = []
    links: Links = {"home": "", "hub": "", "self": ""}
    for el in root:
        tag = el.tag
        if not isinstance(tag, str):
            continue
        if tag == f"{{{_ATOM}}}link":
            _feed_link(el, links, alternate_allowed=True)
        elif tag == f"{{{_ATOM}}}entry":
            entries.append(_atom_entry(el))
        elif tag == f"{{{_ATOM}}}title":
            if title:
                raise _Unsure("repeated feed title")
            title = _atom_text(el) or ""
            if "<" in title or "&" in title:
                raise _Unsure("markup in the feed title")
        elif not tag.startswith(f"{{{_ATOM}}}"):
            raise _Unsure(f"feed element {tag!r}")
    if not links["home"]:
        raise _Unsure("no alternate link for the feed")  # feedparser may take the feed's id as its link
    return title, language.replace("_", "-"), entries, links


def _atom_text(el: Any) -> str:
    kind = el.get("type", "text")
    if kind not in _TEXT_TYPES or el.get("src") is not None or el.get("mode") is not None:
        raise _Unsure(f"Atom {kind} text")
    return _html(el) if kind == "html" else _plain(el)


def _atom_entry(item: Any) -> Entry:
    found = _children(item, _ATOM_ITEM, _ATOM_SINGLE)
    entry: Entry = {}
    a = f"{{{_ATOM}}}"
    if a + "title" in found:
        entry["title"] = _atom_text(found[a + "title"][0])
    if a + "id" in found:
        entry["id"] = _text(found[a + "id"][0])
    alternates = []
    for el in found.get(a + "link", []):
        rel, kind = el.get("rel", "alternate"), el.get("type", "text/html")
        if len(el) or rel not in ("alternate", "replies", "edit", "self", "related"):
            raise _Unsure(f"an Atom link rel={rel}")
        href = _url(el.get("href", ""))
        if rel == "alternate":
            if kind not in ("text/html", "application/xhtml+xml"):
                raise _Unsure("an alternate link that is not a web page")
            alternates.append(href)
    if len(alternates) != 1:
        raise _Unsure("not exactly one alternate link")  # without one, feedparser may take the id as the link
    entry["link"] = alternates[0]
    if a + "published" in found:
        entry["published_parsed"] = _date(found[a + "published"][0])
    if a + "updated" in found:
        entry["updated_parsed"] = _date(found[a + "updated"][0])
    if a + "content" in found:
        entry["content"] = [{"value": _atom_text(found[a + "content"][0])}]
    if a + "summary" in found:
        entry["summary"] = _atom_text(found[a + "summary"][0])
    elif "content" in entry:
        entry["summary"] = entry["content"][0]["value"]
    if a + "author" in found:
        author = found[a + "author"][0]
        names = [child for child in author if child.tag == a + "name"]
        if len(names) != 1 or any(child.tag not in (a + "name", a + "uri") for child in author if isinstance(child.tag, str)):
            raise _Unsure("an author with more than a name")
        entry["author"] = _plain(names[0])
    tags = []
    for el in found.get(a + "category", []):
        if len(el) or set(el.attrib) - {"term", "label", "scheme"}:
            raise _Unsure("an odd category")
        term = _fix((el.get("term") or "").strip())
        label = el.get("label")
        if not term or "<" in term or "&" in term or (label is not None and ("<" in label or "&" in label)):  # attributes: be strict
            raise _Unsure("an odd category")
        tags.append({"term": term, "label": _fix(label.strip()) if label is not None else None})
    if tags:
        entry["tags"] = tags
    _updated_fallback(entry)
    return entry
