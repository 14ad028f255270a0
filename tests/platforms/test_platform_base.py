"""The shared pieces of platforms/base.py: the HTTP-answer classifier, BaseUrl, link comparison.

The classifier is exercised against a real HTTP server on 127.0.0.1 that answers each path's
status (``/<status>``) with the headers the test asks for.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar
from urllib.parse import parse_qsl, urlsplit

import pydantic
import pytest
import requests

from autopublish.errors import AuthError, PermanentError, PublishError, RateLimitedError, TransientError, UncertainError
from autopublish.models import Post, PostLimits, Receipt
from autopublish.platforms.base import BaseUrl, PlatformOptions, Publisher, PublisherEnv, json_object, link_key, same_link

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        status = int(parts.path.strip("/"))
        self.send_response(status)
        body = b""
        for key, value in parse_qsl(parts.query):
            if key == "body":  # the answer's body; every other parameter is a header
                body = value.encode()
            else:
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


class _Options(PlatformOptions):
    api_base: BaseUrl = "https://api.example.org"


class _Plain(Publisher[_Options]):
    name = "plain"
    label = "Plain"
    Options = _Options
    limits = PostLimits(max_length=500)

    def publish(self, post: Post) -> Receipt:
        raise NotImplementedError


class _Idempotent(_Plain):
    idempotent: ClassVar[bool] = True


class _Refining(_Plain):
    def refine(self, response: requests.Response, *, writes: bool, what: str, detail: str) -> PublishError | None:
        if response.status_code == 404:
            return self.error(AuthError, "the account is gone")
        return None


def _answer(server: str, publisher_class: type[_Plain], tmp_path: Path, status: int, *, writes: bool, **headers: str) -> PublishError:
    env = PublisherEnv(session=requests.Session(), state_dir=tmp_path, timeout=(1.0, 2.0), now=lambda: NOW)
    publisher = publisher_class("main", _Options(api_base=server), env)
    response = requests.get(f"{server}/{status}", params=headers, timeout=5)
    return publisher.classify(response, writes=writes)


@pytest.mark.parametrize(
    ("status", "writes", "expected"),
    [
        (401, True, AuthError),
        (403, False, AuthError),
        (408, True, TransientError),
        (500, True, UncertainError),  # a non-idempotent write may have posted
        (503, False, TransientError),
        (502, True, UncertainError),
        (400, True, PermanentError),
        (404, False, PermanentError),
    ],
)
def test_the_classifier_maps_each_status(server, tmp_path, status, writes, expected):
    error = _answer(server, _Plain, tmp_path, status, writes=writes)
    assert type(error) is expected
    assert error.code == status and error.platform == "plain" and error.channel == "main"


def test_auth_errors_carry_the_adapters_fix(server, tmp_path):
    error = _answer(server, _Plain, tmp_path, 401, writes=True)
    assert "autopublish resume main" in error.message


def test_a_server_error_after_an_idempotent_write_is_transient(server, tmp_path):
    assert type(_answer(server, _Idempotent, tmp_path, 500, writes=True)) is TransientError


def test_rate_limits_take_retry_after_in_seconds_or_as_a_date(server, tmp_path):
    seconds = _answer(server, _Plain, tmp_path, 429, writes=True, **{"Retry-After": "42"})
    dated = _answer(server, _Plain, tmp_path, 429, writes=True, **{"Retry-After": "Sun, 01 Mar 2026 12:02:00 GMT"})
    missing = _answer(server, _Plain, tmp_path, 429, writes=False)
    assert isinstance(seconds, RateLimitedError) and seconds.retry_after == 42
    assert isinstance(dated, RateLimitedError) and dated.retry_after == 120
    assert isinstance(missing, RateLimitedError) and missing.retry_after == _Plain.rate_limit_wait


def test_refine_wins_and_none_takes_the_default(server, tmp_path):
    assert type(_answer(server, _Refining, tmp_path, 404, writes=False)) is AuthError
    assert type(_answer(server, _Refining, tmp_path, 500, writes=True)) is UncertainError


def test_error_returns_the_class_it_was_given(tmp_path):
    env = PublisherEnv(session=requests.Session(), state_dir=tmp_path)
    error = _Plain("main", _Options(), env).error(RateLimitedError, "slow down", retry_after=5.0)
    assert type(error) is RateLimitedError and error.retry_after == 5.0  # no isinstance narrowing needed


@pytest.mark.parametrize(
    ("value", "expected"),
    [("https://api.example.org/", "https://api.example.org"), ("  http://127.0.0.1:8080 ", "http://127.0.0.1:8080")],
)
def test_base_url_is_stripped(value, expected):
    assert _Options(api_base=value).api_base == expected


@pytest.mark.parametrize(
    ("value", "words"),
    [("api.example.org", "https://"), ("ftp://api.example.org", "https://"), ("https://api.example.org/v2", "no path"),
     ("https://api.example.org?x=1", "no path")],
)
def test_base_url_refuses_what_adapters_cannot_append_to(value, words):
    with pytest.raises(pydantic.ValidationError) as info:
        _Options(api_base=value)
    assert words in str(info.value)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("https://example.org/a/", "http://www.example.org/a"),
        ("https://example.org/a?utm_source=x", "https://EXAMPLE.org/a#top"),
        ("example.org/a", "https://example.org/a"),  # a bare domain, as X shows expanded links
    ],
)
def test_the_same_article_link_matches(first, second):
    assert same_link(first, second) and link_key(first) == link_key(second)


@pytest.mark.parametrize(
    ("first", "second"), [("https://example.org/a", "https://example.org/b"), ("https://example.org/a?id=1", "https://example.org/a?id=2"), ("", "")]
)
def test_different_links_do_not_match(first, second):
    assert not same_link(first, second)


# --- the hooks an adapter refines with ------------------------------------------------------
class _Worded(_Plain):
    """An adapter with its own words for a refusal and its own default wait."""

    rate_limit_wait: ClassVar[float] = 30.0

    def refusal(self, response: requests.Response, *, what: str, status: int, detail: str) -> str:
        return f"Plain refused the post: {detail}"


def _publisher(server: str, publisher_class: type[_Plain], tmp_path: Path) -> _Plain:
    env = PublisherEnv(session=requests.Session(), state_dir=tmp_path, timeout=(1.0, 2.0), now=lambda: NOW)
    return publisher_class("main", _Options(api_base=server), env)


def test_the_status_in_the_body_overrides_an_http_200(server, tmp_path):
    """Telegram's shape: HTTP 200 with ``ok: false`` and an error_code; the body's status decides."""
    publisher = _publisher(server, _Plain, tmp_path)
    ok = requests.get(f"{server}/200", timeout=5)
    assert type(publisher.classify(ok, writes=True, status=400)) is PermanentError
    assert type(publisher.classify(ok, writes=True, status=502)) is UncertainError
    limited = publisher.classify(ok, writes=False, status=429, retry_after=12.0)
    assert isinstance(limited, RateLimitedError) and limited.retry_after == 12 and limited.code == 429


def test_the_platforms_own_wait_comes_before_retry_after(server, tmp_path):
    publisher = _publisher(server, _Worded, tmp_path)
    response = requests.get(f"{server}/429", params={"Retry-After": "42"}, timeout=5)
    hinted = publisher.classify(response, writes=True, retry_after=7.0)
    unhinted = publisher.classify(response, writes=True, retry_after=None)
    bare = publisher.classify(requests.get(f"{server}/429", timeout=5), writes=True, retry_after=0.0)
    assert isinstance(hinted, RateLimitedError) and hinted.retry_after == 7
    assert isinstance(unhinted, RateLimitedError) and unhinted.retry_after == 42
    assert isinstance(bare, RateLimitedError) and bare.retry_after == 30  # the adapter's rate_limit_wait
    assert "slow down" in hinted.message and "7 seconds" in hinted.message


def test_refusal_words_only_the_permanent_answers(server, tmp_path):
    publisher = _publisher(server, _Worded, tmp_path)
    refused = publisher.classify(requests.get(f"{server}/400", timeout=5), writes=True, detail="too long")
    assert type(refused) is PermanentError and refused.message == "Plain refused the post: too long" and refused.detail == "too long"
    assert type(publisher.classify(requests.get(f"{server}/401", timeout=5), writes=True)) is AuthError  # the shared rules still decide


def test_a_server_error_told_in_the_body_does_not_claim_an_http_5xx(tmp_path):
    publisher = _Plain("main", _Options(), PublisherEnv(session=requests.Session(), state_dir=tmp_path))
    said = publisher.server_error(400, writes=True, code=2)
    assert type(said) is UncertainError and said.code == 2 and "HTTP" not in said.message
    assert type(_Idempotent("main", _Options(), publisher.env).server_error(400, writes=True)) is TransientError


def test_auth_refused_pauses_with_the_adapters_fix_and_code(tmp_path):
    publisher = _Plain("main", _Options(), PublisherEnv(session=requests.Session(), state_dir=tmp_path))
    error = publisher.auth_refused(400, code="ExpiredToken", detail="ExpiredToken: Token has expired")
    assert type(error) is AuthError and error.code == "ExpiredToken" and "autopublish resume main" in error.message


@pytest.mark.parametrize(
    ("kind", "writes", "expected"),
    [("unreachable", True, TransientError), ("bad_address", True, PermanentError), ("no_answer", True, UncertainError),
     ("no_answer", False, TransientError), ("other", True, UncertainError), ("other", False, TransientError)],
)
def test_a_transport_failure_kind_maps_like_the_exception(tmp_path, kind, writes, expected):
    """Facebook's sdk transport hands over only the kind; it must mean what the exception would."""
    publisher = _Plain("main", _Options(), PublisherEnv(session=requests.Session(), state_dir=tmp_path))
    error = publisher.transport_failed(kind, "ReadTimeout", writes=writes, what="Plain")
    assert type(error) is expected and error.detail == "ReadTimeout"


@pytest.mark.parametrize(
    ("body", "expected"),
    [('{"ok": false, "error_code": 400}', {"ok": False, "error_code": 400}), ("", {}), ("<html>Bad Gateway</html>", {}), ("[1, 2]", {})],
)
def test_json_object_reads_an_object_and_nothing_else(server, body, expected):
    assert json_object(requests.get(f"{server}/502", params={"body": body}, timeout=5)) == expected
