"""The facebook-sdk transport: facebook-sdk 3.1.0's GraphAPI, made safe for a daemon.

facebook-sdk (the user's choice) builds paths and parses Graph's JSON; everything it gets
wrong for an unattended daemon is fixed underneath it by ``GraphTransport``, the object
handed to ``GraphAPI(session=...)``:

- the base URL: facebook-sdk's fixed ``https://graph.facebook.com/`` prefix is rewritten
  to the configured ``api_base`` (tests point it at a loopback fake);
- the version: ``GraphAPI`` rejects two-digit versions in its constructor, so it is built
  without one and ``.version`` is set afterwards from the validated option;
- timeouts: every call gets the channel's (connect, read) timeouts;
- secrecy: facebook-sdk puts ``access_token`` in the query string of GETs, where
  exception texts and urllib3's DEBUG request lines would show it. The transport moves
  it to an ``Authorization: OAuth`` header; POSTs keep it in the form body. Calls whose
  parameters are themselves secrets (debug_token's ``input_token``) go through Graph's
  batch endpoint, in a POST body. No URL ever reaches a log line or an error message;
  requests' exceptions (whose text holds the URL) are translated, never chained;
- HTTP status: facebook-sdk ignores it (a 500 with a JSON body is "success", an HTML
  error page a vague "Maintype" error). The transport records every status and refuses
  any answer facebook-sdk would misread.

Replacing facebook-sdk with plain requests later touches this file only.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import warnings
from collections.abc import Mapping
from typing import Any

import requests

from autopublish.platforms.base import transport_failure

with warnings.catch_warnings():
    # facebook-sdk 3.1.0 has a non-raw regex literal ("\d"): a Deprecation/SyntaxWarning
    # when its source is compiled, an ImportError under -W error.
    warnings.simplefilter("ignore", DeprecationWarning)
    warnings.simplefilter("ignore", SyntaxWarning)
    import facebook

SDK_GRAPH_URL = "https://graph.facebook.com/"  # facebook.FACEBOOK_GRAPH_URL, the prefix we rewrite
DEFAULT_API_BASE = "https://graph.facebook.com"
DEFAULT_API_VERSION = "v23.0"
VERSION_PATTERN = re.compile(r"^v\d{2}\.\d$")

GraphAPI = facebook.GraphAPI
GraphAPIError = facebook.GraphAPIError


def validate_api_version(value: object) -> str:
    """``"v23.0"`` (a leading v is added to ``"23.0"``); ValueError with the fix otherwise."""
    text = str(value).strip()
    if re.fullmatch(r"\d{2}\.\d", text):
        text = "v" + text
    if not VERSION_PATTERN.match(text):
        raise ValueError(
            f'api_version must look like "{DEFAULT_API_VERSION}" (v, two-digit major, dot, minor); got {str(value)!r}'
        )
    return text



# --- the transport under facebook-sdk ----------------------------------------------
class GraphTransportError(Exception):
    """The request failed below HTTP. ``sent`` is False only when it surely never left.

    Carries no text from requests (it holds the URL, and so the token).
    """

    def __init__(self, kind: str, name: str) -> None:
        super().__init__(kind)
        self.kind = kind  # "unreachable" | "no_answer" | "bad_address" | "other"
        self.name = name
        self.sent = kind not in ("unreachable", "bad_address")


class GraphResponseError(Exception):
    """An answer facebook-sdk would misread: not JSON, unparsable, or an error status
    without Graph's error envelope (an HTML 5xx page, a proxy error)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"HTTP {status}: {reason}")
        self.status = status
        self.reason = reason


def _classify_transport(exc: requests.RequestException) -> GraphTransportError:
    return GraphTransportError(transport_failure(exc), type(exc).__name__)


class GraphTransport:
    """What facebook-sdk calls ``session``: forwards to the shared requests.Session.

    Rewrites the Graph prefix to ``api_base``, adds timeouts, keeps tokens out of URLs
    (query ``access_token`` -> Authorization header; ``appsecret_proof`` added when an app
    secret is set), records the last answer (status, headers, response), and raises GraphTransportError /
    GraphResponseError instead of handing facebook-sdk something it would misread.
    """

    def __init__(
        self,
        session: requests.Session,
        *,
        api_base: str,
        timeout: tuple[float, float],
        app_secret: str | None = None,
    ) -> None:
        self.session = session
        self.api_base = api_base.rstrip("/") + "/"
        self.timeout = timeout
        self.app_secret = app_secret
        self.last_status: int | None = None
        self.last_headers: Mapping[str, str] = {}
        self.last_response: requests.Response | None = None  # for the adapter's error classifier

    def _proof(self, token: str) -> str:
        assert self.app_secret is not None
        return hmac.new(self.app_secret.encode(), token.encode(), hashlib.sha256).hexdigest()

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        if url.startswith(SDK_GRAPH_URL):
            url = self.api_base + url[len(SDK_GRAPH_URL) :]
        params = dict(kwargs.pop("params", None) or {})
        data = kwargs.pop("data", None)
        headers = dict(kwargs.pop("headers", None) or {})
        token = params.pop("access_token", None)
        if token:
            headers["Authorization"] = f"OAuth {token}"
            if self.app_secret:
                params["appsecret_proof"] = self._proof(token)
        if isinstance(data, dict) and data.get("access_token") and self.app_secret:
            data = {**data, "appsecret_proof": self._proof(str(data["access_token"]))}
        kwargs.pop("timeout", None)
        kwargs.pop("proxies", None)  # the shared session's own proxy settings apply
        if not kwargs.get("files"):
            kwargs.pop("files", None)
        self.last_status, self.last_headers, self.last_response = None, {}, None
        failure: GraphTransportError | None = None
        try:
            response = self.session.request(
                method, url, params=params or None, data=data, headers=headers,
                timeout=self.timeout, allow_redirects=False, **kwargs,
            )
        except requests.RequestException as exc:
            failure = _classify_transport(exc)
        if failure is not None:
            raise failure  # outside the except block: the URL-bearing exception is not chained
        self.last_status, self.last_headers, self.last_response = response.status_code, response.headers, response
        self._vet(response)
        return response

    @staticmethod
    def _vet(response: requests.Response) -> None:
        """Refuse answers facebook-sdk would turn into success, KeyError or vague errors."""
        ctype = response.headers.get("Content-Type", "")
        status = response.status_code
        if "json" not in ctype.lower():
            raise GraphResponseError(status, "the answer was not JSON")
        try:
            body = json.loads(response.content or b"null")
        except ValueError:
            raise GraphResponseError(status, "the JSON could not be read") from None
        if status >= 300 and not (isinstance(body, dict) and isinstance(body.get("error"), dict)):
            raise GraphResponseError(status, "an error status without Graph's error details")


class GraphClient:
    """facebook-sdk's GraphAPI over a GraphTransport, for the adapter and ``connect``."""

    def __init__(
        self,
        session: requests.Session,
        *,
        api_base: str,
        api_version: str,
        access_token: str | None,
        timeout: tuple[float, float],
        app_secret: str | None = None,
    ) -> None:
        self.transport = GraphTransport(session, api_base=api_base, timeout=timeout, app_secret=app_secret)
        # No version= here: GraphAPI.__init__ only accepts "2.8".."3.1"; paths use .version.
        self.graph = facebook.GraphAPI(access_token=access_token, timeout=timeout, session=self.transport)
        self.graph.version = validate_api_version(api_version)

    @property
    def version(self) -> str:
        return str(self.graph.version)

    def get(self, path: str, **params: str) -> Any:
        """GET ``/{version}/{path}`` (the token travels in a header)."""
        return self.graph.request(f"{self.version}/{path}", args=dict(params))

    def post(self, path: str, **fields: str) -> Any:
        """POST form fields to ``/{version}/{path}`` (the token travels in the body)."""
        return self.graph.request(f"{self.version}/{path}", post_args=dict(fields), method="POST")

    def batch_get(self, relative_url: str, *, token: str | None = None) -> tuple[int, Any]:
        """One GET through Graph's batch endpoint, so its query (a secret) rides in a POST body.

        ``token``: the access token for this call instead of the client's (the app token
        ``app_id|app_secret`` that debug_token needs). Returns (HTTP code of the inner
        call, its parsed body or None).
        """
        post_args = {"batch": json.dumps([{"method": "GET", "relative_url": relative_url}]), "include_headers": "false"}
        args: dict[str, str] = {}
        if token:  # in both places: facebook-sdk would otherwise add the client's own token as well
            post_args["access_token"] = args["access_token"] = token
        answer = self.graph.request(f"{self.version}/", args=args, post_args=post_args, method="POST")
        if not isinstance(answer, list) or not answer or not isinstance(answer[0], dict):
            raise GraphResponseError(self.transport.last_status or 0, "the batch answer could not be read")
        item = answer[0]
        try:
            body = json.loads(item.get("body") or "null")
        except (TypeError, ValueError):
            body = None
        return int(item.get("code") or 0), body

