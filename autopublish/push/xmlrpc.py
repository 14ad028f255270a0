"""weblogUpdates.ping and weblogUpdates.extendedPing over XML-RPC (the weblogs.com ping API).

WordPress sends, from wp-cron, to every address under Settings > Writing > Update Services
(wp-includes/comment.php, weblog_ping()): ``weblogUpdates.extendedPing(blog name, home URL
with a trailing slash, RSS2 feed URL)`` and, only if that call fails, ``weblogUpdates.ping(
blog name, home URL)``. The body comes from anyone on the network: it is size-capped and
parsed with defusedxml's expat parser (no DTD, no entities), never with a plain parser.
"""

from __future__ import annotations

import xmlrpc.client
from dataclasses import dataclass
from xml.parsers.expat import ExpatError

from defusedxml import DefusedXmlException
from defusedxml.xmlrpc import DefusedExpatParser

MAX_PING_BYTES = 64 * 1024
# method -> (fewest, most) parameters; extendedPing is (name, url, changes/feed url, [feed url], [tags])
METHODS = {"weblogUpdates.ping": (2, 2), "weblogUpdates.extendedPing": (3, 5)}
# The same answer for every well-formed ping, whether or not it named a configured feed.
THANKS = "Thanks for the ping."

# Fault codes from the XML-RPC fault code interoperability spec (xmlrpc-epi.sourceforge.net/specs/rfc.fault_codes.php)
PARSE_ERROR, METHOD_NOT_FOUND, INVALID_PARAMS = -32700, -32601, -32602


class PingError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Ping:
    method: str
    name: str
    urls: tuple[str, ...]  # every http(s) parameter after the name


def read_ping(body: bytes) -> Ping:
    """The ping in ``body``. Raises PingError (with an XML-RPC fault code) for anything else."""
    if len(body) > MAX_PING_BYTES:
        raise PingError(PARSE_ERROR, "The request is too large for a ping")
    unmarshaller = xmlrpc.client.Unmarshaller()
    parser = DefusedExpatParser(unmarshaller, forbid_dtd=True)
    try:
        parser.feed(body)
        parser.close()
        params = unmarshaller.close()
        method = unmarshaller.getmethodname()
    except (ExpatError, DefusedXmlException, xmlrpc.client.Error, ValueError, TypeError, KeyError, IndexError, OverflowError):
        raise PingError(PARSE_ERROR, "The request is not a well-formed XML-RPC call") from None
    if method not in METHODS:
        raise PingError(METHOD_NOT_FOUND, "Only weblogUpdates.ping and weblogUpdates.extendedPing are served here")
    fewest, most = METHODS[method]
    strings = [p for p in params if isinstance(p, str)]
    if not fewest <= len(params) <= most or len(strings) != len(params):
        raise PingError(INVALID_PARAMS, f"{method} takes {fewest} to {most} strings")
    urls = tuple(p.strip() for p in strings[1:] if p.strip().lower().startswith(("http://", "https://")) and len(p) <= 2048)
    return Ping(method, strings[0], urls)


def thanks() -> bytes:
    """The weblogs.com success answer: a struct with flerror false and a message."""
    return xmlrpc.client.dumps(({"flerror": False, "message": THANKS},), methodresponse=True, encoding="utf-8").encode()


def fault(error: PingError) -> bytes:
    return xmlrpc.client.dumps(xmlrpc.client.Fault(error.code, error.message), methodresponse=True, encoding="utf-8").encode()


def ping_request(method: str, *params: str) -> bytes:
    """An XML-RPC call as a client sends it (used by tests and the bench)."""
    return xmlrpc.client.dumps(tuple(params), methodname=method, encoding="utf-8").encode()
