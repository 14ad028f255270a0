"""One path from a Graph error answer to the core's errors, for Facebook, Threads and Instagram.

``Publisher.classify`` asks ``refine`` first: an answer that carries Graph's error envelope is
read through the one code table (``graph.classify``: code and subcode before the HTTP status,
since Graph answers 400 even for rate limits) and put into plain words here; an answer
without one (a proxy's error page) takes the shared HTTP rules, with ``auth_fix`` and
``refusal`` in Meta's words. Each platform names its own token and how to get a new one,
and ``refine_graph`` takes the errors only it has (containers, a Page that is not there).
"""

from __future__ import annotations

import re
from abc import abstractmethod
from typing import Any, ClassVar

import requests

from autopublish.errors import AuthError, CannotCheckError, HeldError, PermanentError, PublishError, RateLimitedError, UncertainError
from autopublish.platforms.base import OptionsT, Publisher, json_object
from autopublish.platforms.meta.graph import PERMISSION_CODES, GraphError, Kind, as_int, classify, expiry_from_message, format_day, token_problem, usage_wait
from autopublish.secrets import Redactor

LONG_BLOCK_WAIT = 6 * 3600.0  # seconds, for 368/1390008 "posting too fast": a long temporary block
# Permissions as Meta names them in its error messages ("(#200) ... requires pages_manage_posts").
PERMISSION_PATTERN = re.compile(
    r"\b(pages_[a-z_]+|publish_[a-z_]+|business_management|read_insights|threads_[a-z_]+|instagram_[a-z_]+)\b"
)
NAMED_TOKEN_SUBCODES = frozenset({458, 459, 460, 464, 492})  # token_problem() has words for these


class GraphPublisher(Publisher[OptionsT]):
    """Base of the three Meta adapters: Graph's error answers read once, in one place."""

    token_name: ClassVar[str] = "access token"  # "Page token" on Facebook
    account: ClassVar[str] = "this account"  # where posting can be blocked: "this Page"
    policy_check: ClassVar[str] = "the account"  # what an editor looks at after a policy block
    posts_of: ClassVar[str] = "the account's posts"  # what read-back lists: "the Page's posts"
    long_block_wait: ClassVar[float] = LONG_BLOCK_WAIT

    # --- for subclasses -------------------------------------------------------------
    @abstractmethod
    def secrets(self) -> list[str]:
        """The channel's secret values, masked out of every text Meta sends back."""

    @abstractmethod
    def token_env_name(self) -> str:
        """The .env name of the channel's token, as an admin is told to set it."""

    @abstractmethod
    def new_token(self, granting: str = "") -> str:
        """How an admin gets a new token, as a verb phrase; ``granting`` ("permission(s)") when one is missing."""

    @abstractmethod
    def needed_permissions(self, *, writes: bool) -> list[str]:
        """The permissions to name when Meta's message names none (at least one)."""

    def refine_graph(self, fault: GraphError, kind: Kind, response: requests.Response, *, writes: bool, what: str) -> PublishError | None:
        """The adapter's own reading of a Graph error; None takes the shared one."""
        return None

    # --- the shared reading ----------------------------------------------------------
    def redact(self, text: str) -> str:
        return Redactor(self.secrets())(text)

    def graph_fault(self, response: requests.Response) -> GraphError | None:
        """Graph's error envelope in ``response`` (secrets masked); None when it has none."""
        body = json_object(response)
        if not isinstance(body.get("error"), dict):
            return None
        return GraphError.from_body(response.status_code, body, self.secrets())

    def fault_fields(self, fault: GraphError) -> dict[str, Any]:
        """The ``code`` and ``detail`` of an error made from ``fault`` (the status where Graph gave no code)."""
        return {"code": fault.code if fault.code is not None else fault.status, "detail": self.redact(fault.detail)}

    def auth_fix(self) -> str:
        return f"{self.new_token()}, put it in .env as {self.token_env_name()} and run: autopublish resume {self.channel}"

    def refusal(self, response: requests.Response, *, what: str, status: int, detail: str) -> str:
        return f"{self.label} refused the request with HTTP {status} ({detail or 'no reason given'})"

    def refine(self, response: requests.Response, *, writes: bool, what: str, detail: str) -> PublishError | None:
        """Graph's error envelope through the one code table; None without an envelope (a proxy's page)."""
        fault = self.graph_fault(response)
        if fault is None:
            return None
        kind = classify(fault)
        own = self.refine_graph(fault, kind, response, writes=writes, what=what)
        if own is not None:
            return own
        fields = self.fault_fields(fault)
        if kind is Kind.TOKEN:
            return self.token_error(fault)
        if kind is Kind.PERMISSION:
            return self.permission_error(fault, writes=writes)
        if kind is Kind.POSTING_TOO_FAST:
            wait = max(usage_wait(response.headers) or 0.0, self.long_block_wait)
            return self.error(RateLimitedError, f"{self.label} has temporarily blocked posting to {self.account} (posting too fast); "
                                                f"will try again in about {round(wait / 3600)} hours", retry_after=wait, **fields)
        if kind is Kind.POLICY_BLOCK:
            said = f": \"{self.redact(fault.reason)}\"" if fault.reason else ""
            return self.error(HeldError, f"{self.label} blocked this post{said}. An editor should check {self.policy_check}, "
                                         "then retry or skip it", **fields)
        if kind is Kind.SPAM:
            return self.error(PermanentError, f"{self.label} blocked the post as possible spam; an admin should check the account "
                                              f"in the {self.label} app", **fields)
        if kind in (Kind.RATE_LIMIT, Kind.QUOTA):  # the app's or account's call budget; the usage headers say how long
            return self.rate_limited(response, what=what, wait=usage_wait(response.headers), **fields)
        if kind is Kind.DUPLICATE and writes:
            return self.error(UncertainError, f"{self.label} refused the post as a duplicate of a recent one; it may already have been published",
                              **fields)
        if kind is Kind.SERVER:  # codes 1/2 and is_transient after a write may have been applied (platform-apis §1)
            return self.server_error(fault.status, writes=writes, what=what, **fields)
        if kind is Kind.BAD_IMAGE:
            return self.error(PermanentError, f"{self.label} could not use the article's image", **fields)
        said = f": \"{self.redact(fault.reason)}\"" if fault.reason else ""  # Meta's own words tell an editor what to fix
        return self.error(PermanentError, f"{self.label} refused the request (error {fields['code']}){said}", **fields)

    def token_error(self, fault: GraphError) -> AuthError:
        """A dead token (190/102 or a token subcode such as 463 or 467): pause the channel with the fix."""
        said, fix = f"{self.label} says the {self.token_name}", self.auth_fix()
        expires_at = expiry_from_message(fault.message)
        if expires_at is not None:
            message = f"{said} expired on {format_day(expires_at)}; {fix}"
        elif fault.subcode == 463 or "expired" in fault.message.lower():
            message = f"{said} has expired; {fix}"
        elif fault.subcode in NAMED_TOKEN_SUBCODES:
            message = f"{said} is no longer valid because {token_problem(fault.subcode)}; {fix}"
        else:
            message = f"{said} is invalid or was revoked; {fix}"
        return self.error(AuthError, message, expires_at=expires_at, **self.fault_fields(fault))

    def permission_error(self, fault: GraphError, *, writes: bool) -> AuthError:
        """A missing permission: named from Meta's message where it says which, else the adapter's."""
        named = list(dict.fromkeys(PERMISSION_PATTERN.findall(fault.message))) or self.needed_permissions(writes=writes)
        return self.missing_permission(named, **self.fault_fields(fault))

    def missing_permission(self, named: list[str], **fields: Any) -> AuthError:
        """The token lacks the ``named`` permissions: pause the channel, saying how to get a token with them."""
        noun = "permission" if len(named) == 1 else "permissions"
        message = (
            f"{self.label} says this needs the {' and '.join(named)} {noun}, which the {self.token_name} lacks; "
            f"{self.new_token(noun)}, put it in .env as {self.token_env_name()} and run: autopublish resume {self.channel}"
        )
        return self.error(AuthError, message, **fields)

    def cannot_check(self, exc: AuthError, permission: str) -> PublishError:
        """A read-back refused for a missing ``permission``: CannotCheckError, since only settling doubts is
        affected (the channel keeps posting, an editor settles this one); any other refusal stays ``exc``."""
        if as_int(exc.code) not in PERMISSION_CODES:
            return exc
        return CannotCheckError(f"{self.label} refused to list {self.posts_of}: the {self.token_name} lacks {permission}",
                                missing_permission=permission, platform=self.name, channel=self.channel, code=exc.code, detail=exc.detail)
