"""A loopback site that serves a WordPress-style RSS feed, with WordPress 6.1's validators.

WordPress computes Last-Modified from the newest post's time at one-second resolution
and derives its ETag from that, so a post published in the same second as a fetch is
answered 304 until the next post. ``wordpress_resolution=True`` reproduces that.
"""

from __future__ import annotations

import email.utils
import gzip
import hashlib
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from xml.sax.saxutils import escape

from tests.fakes.base import FakeServer, Request, Response


@dataclass
class Item:
    title: str
    link: str
    guid: str
    published: datetime
    categories: list[str] = field(default_factory=list)
    summary: str = ""
    content: str = ""
    image: str | None = None
    modified: datetime | None = None  # set by FeedServer.edit


SEED_TITLE = "Mendampingi CRO dalam Menerima Kunjungan dari Pemerintah Myanmar dan Cordaid Myanmar"


def seed_item(published: datetime | None = None) -> Item:
    when = published or datetime.now(UTC) - timedelta(minutes=5)
    return Item(
        title=SEED_TITLE,
        link="https://jakberketahanan.example.go.id/2026/11/27/mendampingi-cro-kunjungan-myanmar-cordaid/",
        guid="https://jakberketahanan.example.go.id/?p=4242",
        published=when,
        categories=["Berita", "Jakarta Berketahanan", "Kegiatan"],
        summary="Tim mendampingi Chief Resilience Officer menerima kunjungan delegasi Myanmar dan Cordaid Myanmar.",
        content="<p>Tim mendampingi Chief Resilience Officer menerima kunjungan delegasi Myanmar.</p><p>Diskusi membahas ketahanan kota &amp; kerja sama.</p>",
    )


def older_items(count: int = 10, now: datetime | None = None) -> list[Item]:
    base = (now or datetime.now(UTC)) - timedelta(days=count + 1)
    return [
        Item(
            title=f"Berita lama nomor {i}",
            link=f"https://jakberketahanan.example.go.id/2026/10/{i:02d}/berita-lama-{i}/",
            guid=f"https://jakberketahanan.example.go.id/?p={1000 + i}",
            published=base + timedelta(days=i),
            categories=["Berita"],
            summary=f"Ringkasan berita lama {i}.",
        )
        for i in range(1, count + 1)
    ]


def render_rss(items: list[Item], title: str = "Jakarta Berketahanan") -> bytes:
    parts = []
    for item in sorted(items, key=lambda i: i.published, reverse=True):
        cats = "".join(f"<category><![CDATA[{c}]]></category>" for c in item.categories)
        enclosure = f'<enclosure url="{escape(item.image)}" length="1000" type="image/png" />' if item.image else ""
        parts.append(
            f"<item><title>{escape(item.title)}</title><link>{escape(item.link)}</link>"
            f"<dc:creator><![CDATA[admin]]></dc:creator><pubDate>{email.utils.format_datetime(item.published)}</pubDate>{cats}"
            f'<guid isPermaLink="false">{escape(item.guid)}</guid>'
            f"<description><![CDATA[{item.summary} [&#8230;]]]></description>"
            f"<content:encoded><![CDATA[{item.content or item.summary}]]></content:encoded>{enclosure}</item>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/"><channel>'
        f"<title>{escape(title)}</title><link>https://jakberketahanan.example.go.id</link><language>id-ID</language>"
        + "".join(parts)
        + "</channel></rss>"
    ).encode()


@dataclass
class Trickle:
    """A 200 answer whose body arrives one chunk every ``interval`` seconds, without end
    (until the server stops); ``stall=True`` sends the headers and then nothing."""

    chunk: bytes = b"<rss><channel><title>slow</title>"
    interval: float = 0.1
    stall: bool = False
    content_type: str = "application/rss+xml"


class FeedServer(FakeServer):
    """Serves /feed/ from ``items``; scripted bodies can replace it for bad-input tests."""

    def __init__(self, items: list[Item] | None = None, *, wordpress_resolution: bool = True, lifetime: float = 300.0) -> None:
        super().__init__(lifetime=lifetime)
        self.items: list[Item] = list(items or [])
        self.wordpress_resolution = wordpress_resolution
        self.override: Response | Trickle | None = None
        self.gzip = False
        self.statuses: list[int] = []
        self.pages: dict[str, int] = {}  # path -> HTTP status of an article page
        self.mutex = threading.Lock()

    def add(self, item: Item) -> None:
        with self.mutex:
            self.items.append(item)

    def edit(self, guid: str, **changes: object) -> None:
        """Change a published item as an editor would (title, summary, content...), moving its modified time on."""
        with self.mutex:
            item = next(i for i in self.items if i.guid == guid)
            later = max(datetime.now(UTC), self.last_modified() + timedelta(seconds=1))
            for name, value in changes.items():
                setattr(item, name, value)
            item.modified = later

    def last_modified(self) -> datetime:
        # WordPress feeds send get_lastpostmodified(): an edited post moves Last-Modified too.
        newest = max((i.modified or i.published for i in self.items), default=datetime(2026, 1, 1, tzinfo=UTC))
        return newest.replace(microsecond=0) if self.wordpress_resolution else newest

    def route(self, request: Request) -> Response:
        if self.override is not None:
            return self.override  # type: ignore[return-value]
        if request.path in self.pages:  # an article page of the site: 200, or 404/410 once withdrawn
            status = self.pages[request.path]
            return Response(status, b"<html><body>article</body></html>", {"Content-Type": "text/html"})
        if request.path not in ("/feed/", "/feed"):
            return Response(404, b"<html><body>Not found</body></html>", {"Content-Type": "text/html"})
        with self.mutex:
            modified = self.last_modified()
            last_modified = email.utils.format_datetime(modified, usegmt=True)
            etag = '"' + hashlib.md5(last_modified.encode()).hexdigest() + '"'
            if request.header("if-none-match") == etag or request.header("if-modified-since") == last_modified:
                self.statuses.append(304)
                return Response(304, b"", {"ETag": etag, "Last-Modified": last_modified})
            body = render_rss(self.items)
        headers = {"Content-Type": "application/rss+xml; charset=UTF-8", "ETag": etag, "Last-Modified": last_modified}
        if self.gzip and "gzip" in request.header("accept-encoding"):
            body = gzip.compress(body)
            headers["Content-Encoding"] = "gzip"
        self.statuses.append(200)
        return Response(200, body, headers)

    def is_publish(self, request: Request) -> bool:
        return request.method == "GET"

    def _write(self, handler, response) -> None:  # type: ignore[no-untyped-def]
        if not isinstance(response, Trickle):
            super()._write(handler, response)
            return
        try:
            handler.send_response(200)
            handler.send_header("Content-Type", response.content_type)
            handler.end_headers()
            handler.wfile.flush()
            while not self._stopping.wait(response.interval):
                if not response.stall:
                    handler.wfile.write(response.chunk)
                    handler.wfile.flush()
        except OSError:
            pass
        handler.close_connection = True
