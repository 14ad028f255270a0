"""HTML to plain text for posts: tags removed, entities decoded, paragraphs kept.

A small block-aware walker over the standard library's HTMLParser: it drops
script/style content (which text_content()-style extractors keep) and turns block
elements into paragraph breaks, which is all a social post needs.
"""

from __future__ import annotations

import re
from html import unescape
from html.parser import HTMLParser

_BLOCK = {
    "p", "div", "section", "article", "header", "footer", "aside", "blockquote", "pre",
    "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "table", "tr", "figure", "figcaption",
    "dl", "dt", "dd", "hr", "main", "nav", "address",
}
_SKIP = {"script", "style", "noscript", "iframe", "object", "embed", "template", "svg", "math", "head", "title"}
_VOID = {"br", "img", "hr", "input", "meta", "link", "source", "wbr", "area", "base", "col", "param", "track"}


class _TextParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip_depth = 0
        self.images: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            if tag not in _VOID:
                self.skip_depth += 1
            return
        if tag == "img":
            found = dict(attrs)
            src = found.get("src") or found.get("data-src") or ""
            if src:
                self.images.append((src, found.get("alt") or ""))
            return
        if self.skip_depth:
            return
        if tag == "br":
            self.parts.append("\n")
        elif tag == "li":
            self.parts.append("\n• ")
        elif tag in ("td", "th"):
            self.parts.append(" ")
        elif tag in _BLOCK:
            self.parts.append("\n\n")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag in _SKIP and tag not in _VOID:
            self.skip_depth = max(0, self.skip_depth - 1)

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self.skip_depth = max(0, self.skip_depth - 1)
            return
        if self.skip_depth:
            return
        if tag in _BLOCK or tag == "li":
            self.parts.append("\n\n" if tag != "li" else "\n")

    def handle_data(self, data: str) -> None:
        if not self.skip_depth:
            self.parts.append(data)


_SPACES = re.compile(r"[ \t\r\f\v\u00a0]+")
_MANY_BREAKS = re.compile(r"\n\s*\n(\s*\n)*")


def html_to_text(html: str) -> str:
    """Plain text of an HTML fragment; never raises on broken markup."""
    if not html:
        return ""
    if "<" not in html:
        # no tags: what the parser would hand over is exactly the unescaped text (~5x faster)
        return _tidy(unescape(html) if "&" in html else html)
    parser = _TextParser()
    try:
        parser.feed(html)
        parser.close()
    except Exception:  # HTMLParser is lenient, but never let markup crash a poll
        return _tidy(re.sub(r"<[^>]*>", " ", html))
    return _tidy("".join(parser.parts))


def first_image(html: str) -> tuple[str, str] | None:
    """(src, alt) of the first <img> in an HTML fragment, if any."""
    if not html or "<img" not in html.lower():
        return None
    parser = _TextParser()
    try:
        parser.feed(html)
        parser.close()
    except Exception:
        return None
    return parser.images[0] if parser.images else None


def _squeeze(line: str) -> str:
    """_SPACES.sub(" ", line), skipped when every run of spaces is already one plain space (the usual case, ~20x faster)."""
    if "  " in line or "\t" in line or "\r" in line or "\f" in line or "\v" in line or "\u00a0" in line:
        return _SPACES.sub(" ", line)
    return line


def _tidy(text: str) -> str:
    if "\n" not in text and "\r" not in text:
        return _squeeze(text).strip()  # one line (titles, names, categories): what the general case gives, without the split and join
    lines = [_squeeze(line).strip() for line in text.replace("\r\n", "\n").split("\n")]
    joined = "\n".join(lines)
    # lines are stripped, so only three or more newlines in a row can change
    return (_MANY_BREAKS.sub("\n\n", joined) if "\n\n\n" in joined else joined).strip()
