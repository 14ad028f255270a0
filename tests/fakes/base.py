"""FakeServer: a real HTTP server on 127.0.0.1 that records requests and can be scripted.

Subclasses speak one platform's API: they implement ``route(request)`` and
``error_response(kind, request)`` for the kinds "rate_limit", "auth", "bad_request",
"server_error" (in the platform's own error envelope), and ``is_publish(request)``.

Faults are scripted per request:
    fake.script("rate_limit")        # next publish request gets the platform's 429
    fake.script("hang")              # next publish request is acted on, then no answer
    fake.script("drop")              # next publish request is acted on, then the socket closes
    fake.script("server_error", when=lambda r: r.path.endswith("/photos"))
    fake.chaos(0.3, ("rate_limit", "drop"), random.Random(7))  # random faults on publish requests

The server stops by itself after ``lifetime`` seconds and every wait is bounded.
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import random
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

FAULT_KINDS = ("rate_limit", "auth", "bad_request", "server_error", "hang", "drop")

# A valid 1x1 PNG, served by every fake at /_image/<name> so adapters that upload the
# article's image download it from loopback, never from the internet.
TINY_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201e2e0"
    "9f8e0000000049454e44ae426082"
)

# A 1x1 JPEG (SOI, DQT, arithmetic-coded SOF9, DAC, SOS, EOI), for platforms that take JPEG only.
TINY_JPEG = bytes.fromhex(
    "ffd8ffdb004300030202020202030202020303030304060404040404080606050609080a0a090809090a0c0f0c0a0b0e0b09090d110d0e0f101011100a0c12131210130f101010"
    "ffc9000b080001000101011100ffcc000600101005ffda0008010100003f00d2cf20ffd9"
)


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes
    form: dict[str, list[str]] = field(default_factory=dict)
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # name -> (filename, data)
    json: Any = None

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name.lower(), default)

    def param(self, name: str, default: str | None = None) -> str | None:
        """A value from the form, the JSON object or the query string, in that order."""
        if name in self.form:
            return self.form[name][0]
        if isinstance(self.json, dict) and name in self.json:
            value = self.json[name]
            return value if isinstance(value, str) else json.dumps(value)
        if name in self.query:
            return self.query[name][0]
        return default


@dataclass
class Response:
    status: int = 200
    body: bytes | str | Any = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json_body(cls, status: int, data: Any, headers: dict[str, str] | None = None) -> Response:
        merged = {"Content-Type": "application/json; charset=UTF-8", **(headers or {})}
        return cls(status, json.dumps(data).encode(), merged)


@dataclass
class _Fault:
    kind: str
    when: Callable[[Request], bool] | None
    times: int


def parse_body(headers: dict[str, str], body: bytes) -> tuple[dict[str, list[str]], dict[str, tuple[str, bytes]], Any]:
    """Form fields, uploaded files and JSON from a request body."""
    ctype = headers.get("content-type", "")
    form: dict[str, list[str]] = {}
    files: dict[str, tuple[str, bytes]] = {}
    data: Any = None
    if ctype.startswith("application/x-www-form-urlencoded"):
        form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    elif ctype.startswith("multipart/form-data"):
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + body
        )
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            filename = part.get_filename()
            payload = part.get_payload(decode=True) or b""
            if filename is not None:
                files[str(name)] = (filename, payload)
            else:
                form.setdefault(str(name), []).append(payload.decode("utf-8", "replace"))
    elif "json" in ctype and body:
        try:
            data = json.loads(body)
        except ValueError:
            data = None
    return form, files, data


class FakeServer:
    """Base of every platform fake. Use as a context manager or call start()/stop()."""

    hang_seconds = 3.0  # longer than the read timeout tests give the client

    def __init__(self, lifetime: float = 300.0) -> None:
        self.requests: list[Request] = []
        self.faults: list[_Fault] = []
        self.faults_fired: list[str] = []
        self.chaos_rate = 0.0
        self.chaos_kinds: tuple[str, ...] = ()
        self.chaos_rng = random.Random(0)
        self.lock = threading.RLock()
        self._stopping = threading.Event()
        self.lifetime = lifetime
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._timer: threading.Timer | None = None
        self._connections: set[socket.socket] = set()
        self.images: dict[str, tuple[bytes, str]] = {}  # name -> (body, type) served at /_image/<name>; else TINY_PNG
        self.server_errors: list[str] = []  # the fake's own failures, kept out of the product's output
        self.port = 0

    # --- lifecycle -------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def image_url(self, name: str = "kunjungan.png") -> str:
        """An image URL this fake serves (a real PNG), for articles in tests."""
        return f"{self.url}/_image/{name}"

    def start(self, port: int = 0) -> FakeServer:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                return

            def setup(self) -> None:
                super().setup()
                with fake.lock:
                    fake._connections.add(self.connection)

            def finish(self) -> None:
                with fake.lock:
                    fake._connections.discard(self.connection)
                super().finish()

            def handle(self) -> None:
                try:
                    super().handle()
                except ConnectionError:  # the client hung up (a reset after a body it did not read): as a real server, no traceback
                    self.close_connection = True

            def _handle(self) -> None:
                fake._serve(self)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _handle

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                """socketserver prints a handler's exception to sys.stderr, which a CliRunner
                captures as the product's output. A client that hangs up (a deadline, a
                closed keep-alive connection) is normal here and not recorded; anything else
                is kept on the fake and written to the real stderr."""
                error = sys.exc_info()[1]
                if isinstance(error, ConnectionError):
                    return
                with fake.lock:
                    fake.server_errors.append(traceback.format_exc())
                print(f"fake server {type(fake).__name__}: {error!r}", file=sys.__stderr__)

        server = Server(("127.0.0.1", port), Handler)
        server.daemon_threads = True
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        self._timer = threading.Timer(self.lifetime, self.stop)
        self._timer.daemon = True
        self._timer.start()
        return self

    def stop(self) -> None:
        """Stop listening and close every open connection, as a server that went away does
        (a kept-alive connection would otherwise go on being served)."""
        self._stopping.set()
        if self._timer is not None:
            self._timer.cancel()
        if self._server is not None:
            server, self._server = self._server, None
            server.shutdown()
            server.server_close()
        with self.lock:
            connections, self._connections = list(self._connections), set()
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- scripting -------------------------------------------------------------
    def script(self, kind: str, *, times: int = 1, when: Callable[[Request], bool] | None = None) -> None:
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}")
        with self.lock:
            self.faults.append(_Fault(kind, when, times))

    def chaos(self, rate: float, kinds: tuple[str, ...], rng: random.Random) -> None:
        """From now on, each publish request meets one of ``kinds`` with probability ``rate``."""
        for kind in kinds:
            if kind not in FAULT_KINDS:
                raise ValueError(f"unknown fault {kind!r}")
        with self.lock:
            self.chaos_rate, self.chaos_kinds, self.chaos_rng = rate, kinds, rng

    def _take_fault(self, request: Request) -> str | None:
        with self.lock:
            for fault in self.faults:
                matches = fault.when(request) if fault.when else self.is_publish(request)
                if matches:
                    fault.times -= 1
                    if fault.times <= 0:
                        self.faults.remove(fault)
                    self.faults_fired.append(fault.kind)
                    return fault.kind
            if self.chaos_rate and self.is_publish(request) and self.chaos_rng.random() < self.chaos_rate:
                kind = self.chaos_rng.choice(self.chaos_kinds)
                self.faults_fired.append(kind)
                return kind
        return None

    # --- for subclasses ----------------------------------------------------------
    def grant(self, scopes: set[str] | tuple[str, ...] | list[str]) -> None:
        """Let the fake's credentials hold exactly these permissions (OAuth scopes, tier names).

        A fake that models permissions overrides this and refuses, as its platform does,
        every call the granted set does not allow; the contract suite grants each platform's
        ``ContractCase.minimal_scopes``.
        """
        raise NotImplementedError(f"{type(self).__name__} does not model permissions")

    def route(self, request: Request) -> Response:
        raise NotImplementedError

    def error_response(self, kind: str, request: Request) -> Response:
        raise NotImplementedError

    def is_publish(self, request: Request) -> bool:
        return request.method == "POST"

    # --- serving -----------------------------------------------------------------
    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        split = urlsplit(handler.path)
        headers = {k.lower(): v for k, v in handler.headers.items()}
        length = int(headers.get("content-length", "0") or 0)
        body = handler.rfile.read(length) if length else b""
        form, files, data = parse_body(headers, body)
        request = Request(
            method=handler.command,
            path=split.path,
            query=parse_qs(split.query, keep_blank_values=True),
            headers=headers,
            body=body,
            form=form,
            files=files,
            json=data,
        )
        if request.path.startswith("/_image/"):
            body, ctype = self.images.get(request.path[len("/_image/"):], (TINY_PNG, "image/png"))
            self._write(handler, Response(200, body, {"Content-Type": ctype}))
            return
        with self.lock:
            self.requests.append(request)
        fault = self._take_fault(request)
        if fault in ("rate_limit", "auth", "bad_request", "server_error"):
            response = self.error_response(fault, request)
        else:
            try:
                with self.lock:
                    response = self.route(request)
            except Exception as exc:  # a bug in a fake shows as a 599, not a hang
                response = Response(599, f"fake error: {type(exc).__name__}: {exc}".encode())
            if fault == "hang":
                self._stopping.wait(self.hang_seconds)
                handler.close_connection = True
                return
            if fault == "drop":
                try:
                    handler.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                handler.close_connection = True
                return
        self._write(handler, response)

    def _write(self, handler: BaseHTTPRequestHandler, response: Response) -> None:
        body = response.body
        if isinstance(body, str):
            body = body.encode("utf-8")
        elif not isinstance(body, bytes):
            body = json.dumps(body).encode()
            response.headers.setdefault("Content-Type", "application/json; charset=UTF-8")
        try:
            handler.send_response(response.status)
            for name, value in response.headers.items():
                handler.send_header(name, value)
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            if handler.command != "HEAD":
                handler.wfile.write(body)
        except OSError:
            handler.close_connection = True


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.05) -> bool:
    """Poll ``predicate`` until true or ``timeout`` seconds pass (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


class CannedReplies(FakeServer):
    """A fake that can answer the next matching request with a given response, acting on nothing
    (a reply no fault kind covers: a 429 with a particular Retry-After, an HTML 503 on a read).
    Its ``route()`` asks ``self._canned(request)`` first."""

    def __init__(self, lifetime: float = 300.0) -> None:
        super().__init__(lifetime=lifetime)
        self.canned: list[tuple[Callable[[Request], bool], Response]] = []

    def reply_next(self, response: Response, when: Callable[[Request], bool] | None = None) -> None:
        """Answer the next matching request (default: the next publish) with ``response``, acting on nothing."""
        with self.lock:
            self.canned.append((when or self.is_publish, response))

    def _canned(self, request: Request) -> Response | None:
        with self.lock:
            for i, (when, response) in enumerate(self.canned):
                if when(request):
                    del self.canned[i]
                    return response
        return None
