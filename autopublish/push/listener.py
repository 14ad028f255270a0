"""The push listener: a small HTTP server, separate from the health and metrics one.

POST /ping             XML-RPC weblogUpdates.ping / extendedPing (WordPress Update Services)
GET|POST /websub/<f>   the WebSub callback of feed f (verification of intent, content distribution)
POST /poll/<f>         an authenticated hook: Authorization: Bearer <AUTOPUBLISH_PUSH_TOKEN>

Requests come from anyone: bodies are size-capped, sockets time out, concurrent requests
are bounded, and no answer says whether a ping named a configured feed.
"""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlsplit

from autopublish.push import xmlrpc

if TYPE_CHECKING:
    from autopublish.push.service import PushService

log = logging.getLogger(__name__)

MAX_CONCURRENT = 32
SOCKET_TIMEOUT = 10.0


def start_listener(address: str, service: PushService) -> ThreadingHTTPServer:
    host, _, port = address.rpartition(":")
    slots = threading.BoundedSemaphore(MAX_CONCURRENT)

    class Handler(BaseHTTPRequestHandler):
        timeout = SOCKET_TIMEOUT  # a client that stalls mid-request is dropped
        server_version = "autopublish-push"
        sys_version = ""

        def log_message(self, format: str, *args: Any) -> None:
            return  # request lines can carry feed names and hub parameters; our own log says what matters

        def _send(self, status: int, body: bytes = b"", ctype: str = "text/plain; charset=utf-8") -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _body(self, limit: int) -> bytes | None:
            length = self.headers.get("Content-Length", "")
            if not length.isdigit():
                self._send(411, b"a Content-Length is required\n")
                return None
            if int(length) > limit:
                self._send(413, b"too large\n")
                self.close_connection = True
                return None
            return self.rfile.read(int(length))

        def _route(self) -> tuple[str, str]:
            path = urlsplit(self.path).path
            for prefix in ("/websub/", "/poll/"):
                if path.startswith(prefix) and len(path) > len(prefix):
                    return prefix.strip("/"), unquote(path[len(prefix):])
            return path, ""

        def _guarded(self, handle: Any) -> None:
            if not slots.acquire(blocking=False):
                self._send(503, b"busy\n")
                self.close_connection = True
                return
            try:
                handle()
            except Exception as exc:  # a hostile request must never take the listener down
                log.error("The push listener could not answer a request (%s)", type(exc).__name__)
                try:
                    self._send(500, b"error\n")
                except OSError:
                    pass
            finally:
                slots.release()

        def do_GET(self) -> None:
            self._guarded(self._get)

        def do_POST(self) -> None:
            self._guarded(self._post)

        def _get(self) -> None:
            route, feed = self._route()
            if route != "websub":
                self._send(404, b"not found\n")
                return
            params = dict(parse_qsl(urlsplit(self.path).query, keep_blank_values=True))
            status, body = service.websub_verify(feed, params)
            self._send(status, body)

        def _post(self) -> None:
            route, feed = self._route()
            if route == "/ping":
                body = self._body(xmlrpc.MAX_PING_BYTES)
                if body is not None:
                    self._send(200, service.ping(body), "text/xml; charset=utf-8")
            elif route == "websub":
                body = self._body(service.max_body())
                if body is not None:
                    status = service.websub_deliver(feed, body, self.headers.get("X-Hub-Signature", ""))
                    self._send(status)
            elif route == "poll":
                status, message = service.hook(feed, self.headers.get("Authorization", ""))
                self._send(status, json.dumps({"message": message}).encode(), "application/json")
            else:
                self._send(404, b"not found\n")

    server = ThreadingHTTPServer((host.strip("[]") or "127.0.0.1", int(port)), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="push-listener", daemon=True).start()
    log.info("Push listener on %s: POST /ping, /websub/<feed>, POST /poll/<feed>", address)
    return server
