"""A loopback WordPress site: its RSS feed (tests.fakes.feed_server) plus the update pings its cron sends.

What a ping looks like is taken from WordPress itself (wp-includes/comment.php, weblog_ping(), and
wp-includes/class-wp-http-ixr-client.php, WP_HTTP_IXR_Client::query()):
- a POST to the Update Services URL, ``Content-Type: text/xml``, user agent
  ``The Incutio XML-RPC PHP Library -- WordPress/<version>``, a 3-second timeout;
- the body is IXR_Request's XML: ``weblogUpdates.extendedPing(blogname, trailingslashit(home_url()),
  get_bloginfo('rss2_url'))``, each argument as ``<string>`` escaped with htmlspecialchars;
- the call counts as failed on a transport error, a status other than 200, an unparsable body or a
  fault; only then WordPress sends ``weblogUpdates.ping(blogname, home)``.
"""

from __future__ import annotations

import html
import xmlrpc.client
from dataclasses import dataclass

import requests

from tests.fakes.base import Request, Response
from tests.fakes.feed_server import FeedServer, Item

WP_VERSION = "6.1"
USER_AGENT = f"The Incutio XML-RPC PHP Library -- WordPress/{WP_VERSION}"


def ixr_request(method: str, *args: str) -> bytes:
    """IXR_Request::__construct's XML, byte for byte (strings only, as weblog_ping sends)."""
    xml = f'<?xml version="1.0"?>\n<methodCall>\n<methodName>{method}</methodName>\n<params>\n'
    for arg in args:
        xml += f"<param><value><string>{html.escape(arg, quote=True)}</string></value></param>\n"
    xml += "</params></methodCall>"
    return xml.encode("utf-8")


@dataclass
class PingResult:
    method: str
    status: int
    ok: bool
    answer: object


def ixr_query(url: str, method: str, *args: str) -> PingResult:
    """WP_HTTP_IXR_Client::query(): True only for HTTP 200 with a parsable, non-fault answer."""
    response = requests.post(url, data=ixr_request(method, *args), headers={"Content-Type": "text/xml", "User-Agent": USER_AGENT},
                             timeout=3)
    if response.status_code != 200:
        return PingResult(method, response.status_code, False, None)
    try:
        answer, _ = xmlrpc.client.loads(response.content)
    except xmlrpc.client.Fault as fault:
        return PingResult(method, 200, False, fault)
    except Exception:  # IXR_Message::parse() failed: "parse error. not well formed"
        return PingResult(method, 200, False, None)
    return PingResult(method, 200, True, answer[0] if answer else None)


def weblog_ping(server: str, blogname: str, home: str, rss2_url: str) -> list[PingResult]:
    """weblog_ping(): extendedPing, then a plain ping only if that failed."""
    home = home if home.endswith("/") else home + "/"  # trailingslashit( home_url() )
    first = ixr_query(server, "weblogUpdates.extendedPing", blogname, home, rss2_url)
    if first.ok:
        return [first]
    return [first, ixr_query(server, "weblogUpdates.ping", blogname, home)]


class FakeWordPress(FeedServer):
    """Serves /feed/; ``publish(item)`` adds a post and pings every Update Services URL, as wp-cron does.

    ``hub`` set: the feed names a WebSub hub in its Link header, as WordPress's WebSub plugin does.
    """

    blogname = "Jakarta Berketahanan"
    home = "https://jakberketahanan.example.go.id/"  # the <link> render_rss declares; never fetched

    def __init__(self, items: list[Item] | None = None, *, update_services: list[str] | None = None, hub: str = "", **kwargs: object) -> None:
        super().__init__(items, **kwargs)  # type: ignore[arg-type]
        self.update_services = list(update_services or [])
        self.hub = hub
        self.pings: list[PingResult] = []

    @property
    def feed_url(self) -> str:
        return f"{self.url}/feed/"

    def publish(self, item: Item) -> list[PingResult]:
        self.add(item)
        results = []
        for server in self.update_services:
            results.extend(weblog_ping(server, self.blogname, self.home, self.feed_url))
        self.pings.extend(results)
        return results

    def feed_requests(self) -> int:
        return sum(1 for r in self.requests if r.path.startswith("/feed"))

    def route(self, request: Request) -> Response:
        response = super().route(request)
        if self.hub and request.path.startswith("/feed"):
            response.headers["Link"] = f'<{self.hub}>; rel="hub", <{self.feed_url}>; rel="self"'
        return response
