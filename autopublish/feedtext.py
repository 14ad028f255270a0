"""Cleaning text that came from a feed, at parse time, before anything else sees it.

Feed text ends up in terminals (``autopublish log``), log lines, e-mail subjects, the
database and platform APIs. Lone surrogates (valid in JSON escapes, invalid in UTF-8)
break every encoder downstream; control characters carry terminal escape sequences
(ESC [ ...) and, in one-line fields, newlines forge extra log lines or mail headers.
"""

from __future__ import annotations

import re

_SURROGATES = re.compile("[\ud800-\udfff]")
# C0 controls except tab and newline, DEL, and C1 controls (0x80-0x9F, which some
# terminals read as escape sequences too).
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_LINE_BREAKS = re.compile("[\t\n\u2028\u2029\x85\r]+")


def clean_text(value: str) -> str:
    """Multi-line text: surrogates become U+FFFD, CR LF becomes LF, other control characters go."""
    if value.replace("\n", "").replace("\t", "").isprintable():
        return value  # nothing to clean (surrogates, controls and CR are all non-printable): skips three scans
    value = _SURROGATES.sub("\ufffd", value)
    value = value.replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROLS.sub("", value)


def clean_line(value: str) -> str:
    """One-line text (titles, names, addresses): as ``clean_text``, and line breaks become spaces."""
    if value.isprintable():
        return value.strip()  # no surrogate, control character or line break in it
    value = _SURROGATES.sub("\ufffd", value)
    value = _LINE_BREAKS.sub(" ", value)
    return _CONTROLS.sub("", value).strip()
