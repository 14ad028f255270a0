"""X's weighted post length: the twitter-text v3 rules, written for this project.

The rules (twitter/twitter-text ``config/v3.json``): the text is NFC-normalised; every
URL counts ``transformedURLLength`` (23); every emoji sequence (one grapheme: a ZWJ
family, a flag, a skin-tone or keycap sequence) counts the default weight (2); every
other code point counts 1 in the ranges U+0000-U+10FF, U+2000-U+200D, U+2010-U+201F and
U+2032-U+2037, else 2. A post is valid up to a weighted length of 280.

URL detection follows twitter-text's extractor closely enough for posts we write:
``http(s)://`` URLs whose host labels are valid (at most 63 characters once
punycode-encoded, no leading/trailing hyphen) and bare domains on common generic TLDs,
or on a country TLD when followed by a path (as twitter-text does). It is not the full
extractor (no complete TLD list, no userinfo); the conformance cases it must agree
with are in tests/platforms/test_x.py.
"""

from __future__ import annotations

import ipaddress
import unicodedata

import regex

MAX_WEIGHTED_LENGTH = 280
SCALE = 100
DEFAULT_WEIGHT = 200
TRANSFORMED_URL_LENGTH = 23
LIGHT_RANGES = ((0x0000, 0x10FF, 100), (0x2000, 0x200D, 100), (0x2010, 0x201F, 100), (0x2032, 0x2037, 100))

_CLUSTER = regex.compile(r"\X")
_EMOJI_PART = regex.compile(r"[\p{Extended_Pictographic}\p{Regional_Indicator}\u20e3]")
_EMOJI_PRESENTATION = regex.compile(r"\p{Emoji_Presentation}")

# Characters that may not stand right before a URL (twitter-text's "preceding chars").
_NOT_BEFORE_URL = r"A-Za-z0-9@\uff20$#\uff03"
_URL_CHARS = r"[^\s<>\"'`\p{Cc}\p{Cf}]"  # format characters (bidi marks) end a URL
_PROTOCOL_URL = regex.compile(rf"(?i)(?<![{_NOT_BEFORE_URL}])https?://{_URL_CHARS}+")
_BARE_URL = regex.compile(
    rf"(?<![{_NOT_BEFORE_URL}_./\-\w])(?:[\w\-]+\.)+(?P<tld>[A-Za-z]{{2,24}})(?![\w\-])(?P<rest>[/?#]{_URL_CHARS}*)?"
)
# Generic TLDs a bare domain is recognised on. twitter-text knows every TLD; this list
# covers what news sites and their posts use. Country TLDs need a path (see module doc).
_GENERIC_TLDS = frozenset(
    [
        "com", "net", "org", "edu", "gov", "mil", "int", "info", "biz", "name", "pro", "mobi", "app", "dev", "xyz", "online",
        "site", "tech", "store", "blog", "news", "media", "agency", "asia", "jobs", "travel", "museum", "aero", "coop", "cat",
        "tel", "post", "shop", "club", "live", "page", "link", "space", "website", "world", "today", "cloud", "digital", "email",
        "network", "solutions", "services", "social", "group", "center", "company", "foundation", "institute", "school",
        "university", "academy",
    ]
)
_TRAILING_PUNCTUATION = ".,:;!?'\"*…)]}"
_LABEL = regex.compile(r"^[\w\-]+$")


def weighted_length(text: str) -> int:
    """The length X measures for ``text`` (valid when 1 <= length <= 280)."""
    text = unicodedata.normalize("NFC", text)
    total, last = 0, 0
    for start, end in url_spans(text):
        total += _weigh(text[last:start]) + TRANSFORMED_URL_LENGTH * SCALE
        last = end
    total += _weigh(text[last:])
    return total // SCALE


def is_valid(text: str) -> bool:
    """True when X would accept ``text`` as a post's length (not empty, within 280)."""
    return bool(text.strip()) and weighted_length(text) <= MAX_WEIGHTED_LENGTH


def url_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each URL X would shorten to t.co, in order, not overlapping."""
    spans: list[tuple[int, int]] = []
    for match in _PROTOCOL_URL.finditer(text):
        end = _url_end(text, match.start(), match.end(), match.group(0).index("//") + 2)
        if end is not None:
            spans.append((match.start(), end))
    for match in _BARE_URL.finditer(text):
        if any(s <= match.start() < e for s, e in spans):
            continue
        tld = match.group("tld").lower()
        host = text[match.start() : match.end("tld")]
        has_path = match.group("rest") is not None and match.group("rest").startswith("/")
        if tld not in _GENERIC_TLDS and not (len(tld) == 2 and (has_path or host.lower() == "t.co")):
            continue
        end = _url_end(text, match.start(), match.end(), 0)
        if end is not None:
            spans.append((match.start(), end))
    spans.sort()
    return spans


def _url_end(text: str, start: int, end: int, host_at: int) -> int | None:
    """End of the URL that starts at ``start`` (candidate up to ``end``), or None if invalid."""
    candidate = text[start:end]
    split = regex.search(r"[/?#]", candidate[host_at:])
    host_end = host_at + split.start() if split else len(candidate)
    host = candidate[host_at:host_end]
    if split is None:
        # A bare host ends at trailing punctuation: "see example.com." is example.com
        stripped = host.rstrip(_TRAILING_PUNCTUATION)
        candidate, host = candidate[: host_at + len(stripped)], stripped
    else:
        candidate = candidate[:host_end] + _trim_path(candidate[host_end:])
    host = regex.sub(r":\d{1,5}$", "", host)
    if not _valid_host(host):
        return None
    return start + len(candidate)


def _trim_path(rest: str) -> str:
    """Drop trailing punctuation from a path/query, keeping balanced closing parentheses."""
    while rest and rest[-1] in _TRAILING_PUNCTUATION:
        if rest[-1] == ")" and rest.count("(") >= rest.count(")"):
            break
        rest = rest[:-1]
    return rest


def _valid_host(host: str) -> bool:
    if host.startswith("[") and host.endswith("]"):
        try:
            ipaddress.IPv6Address(host[1:-1])
            return True
        except ValueError:
            return False
    if regex.fullmatch(r"[\d.]+", host):
        try:
            ipaddress.IPv4Address(host)
            return True
        except ValueError:
            return False
    labels = host.split(".")
    if len(labels) < 2 or not all(labels):
        return False
    tld = labels[-1]
    if not regex.fullmatch(r"\p{L}{2,}", tld):
        return False
    for index, label in enumerate(labels):
        if not _LABEL.match(label) or label.startswith("-") or label.endswith("-"):
            return False
        if "_" in label and index >= len(labels) - 2:
            return False  # underscores only in subdomains
        if len(_ace(label)) > 63:
            return False
    return True


def _ace(label: str) -> str:
    """The ASCII form of a domain label (punycode for non-ASCII labels)."""
    if label.isascii():
        return label
    return "xn--" + label.lower().encode("punycode").decode("ascii")


def _weigh(segment: str) -> int:
    """Weighted length of text without URLs, in SCALE units."""
    total = 0
    for cluster in _CLUSTER.findall(segment):
        if _is_emoji(cluster):
            total += DEFAULT_WEIGHT
        else:
            total += sum(_code_point_weight(ord(ch)) for ch in cluster)
    return total


def _is_emoji(cluster: str) -> bool:
    """One emoji sequence, counted once whatever its code points (v3 emoji parsing)."""
    if len(cluster) == 1:
        return bool(_EMOJI_PRESENTATION.match(cluster))
    return bool(_EMOJI_PART.search(cluster))


def _code_point_weight(code: int) -> int:
    for low, high, weight in LIGHT_RANGES:
        if low <= code <= high:
            return weight
    return DEFAULT_WEIGHT
