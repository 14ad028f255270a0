"""The whole exception tree, in the core's words.

    AutopublishError
      ConfigError        refuse to start; carries every problem (file, key, fix)
      FeedError          this poll failed; try next tick
      FetchError         a guarded fetch (autopublish.netguard) failed: deadline, size, redirects
        AddressRefusedError  the URL is not http(s) or names an internal address
      StateError         the store is unusable; stop
      PublishError       one attempt failed (platform, channel, code, detail)
        TransientError     nothing was published; may succeed later
          RateLimitedError   ... and the platform said when (retry_after seconds)
          NotReadyError      ... the platform is still preparing the post: ask again with
                             ``progress`` after retry_after (not a failed try)
        PermanentError     nothing was published; will fail the same way
          AuthError          credentials or permissions: pause the channel, tell admins
          HeldError          refused for a reason only a person can clear (a policy block):
                             hold this post for an editor, alert once
        UncertainError     it may have been published: never retried blindly
        CannotCheckError   a read-back was refused for want of a permission: an editor checks

``message`` is always one plain sentence an editor or admin can act on; platform
codes and trace ids go in attributes, never secrets.
"""

from __future__ import annotations

from dataclasses import dataclass


class AutopublishError(Exception):
    """Base of every error autopublish raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One problem in the configuration: where it is and what to do about it."""

    file: str
    key: str
    problem: str
    fix: str = ""

    def __str__(self) -> str:
        text = f"{self.file}: {self.key}: {self.problem}"
        return f"{text}. Fix: {self.fix}" if self.fix else text


class ConfigError(AutopublishError):
    """The configuration cannot be used; ``problems`` lists every problem found."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        count = len(self.problems)
        head = "1 problem" if count == 1 else f"{count} problems"
        super().__init__(f"The configuration has {head}:\n{lines}")


class FeedError(AutopublishError):
    """A feed could not be fetched or read this time."""

    def __init__(self, message: str, *, feed: str = "", status: int | None = None) -> None:
        super().__init__(message)
        self.feed = feed
        self.status = status


class FetchError(AutopublishError):
    """A URL could not be fetched by the guarded fetcher; ``message`` says why in plain words."""


class AddressRefusedError(FetchError):
    """The URL may not be fetched: not http(s), or it names an internal address (SSRF guard)."""


class StateError(AutopublishError):
    """The state store cannot be used; publishing must stop rather than guess."""


class PublishError(AutopublishError):
    """One publish (or read-back, or check) attempt failed."""

    def __init__(
        self,
        message: str,
        *,
        platform: str = "",
        channel: str = "",
        code: str | int | None = None,
        detail: str = "",
    ) -> None:
        super().__init__(message)
        self.platform = platform
        self.channel = channel
        self.code = code
        self.detail = detail


class TransientError(PublishError):
    """Nothing was published; the same post may succeed later."""


class RateLimitedError(TransientError):
    """Nothing was published; the platform asked us to wait ``retry_after`` seconds."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.retry_after = retry_after


class NotReadyError(TransientError):
    """Nothing was published yet: the platform is still preparing this post.

    Two-step platforms (Threads, Instagram) prepare a media container before it can be
    published. ``progress`` (the container id and its creation time, in the adapter's own
    format) is stored on the delivery and handed back in ``Post.progress`` on the next
    attempt, so the same container is published instead of a new one being made. The core
    waits ``retry_after`` seconds and does not count the attempt as a failed try.
    """

    def __init__(self, message: str, *, retry_after: float, progress: str, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.retry_after = retry_after
        self.progress = progress


class PermanentError(PublishError):
    """Nothing was published, and this post will fail the same way every time."""


class AuthError(PermanentError):
    """Credentials expired or were revoked, or a permission is missing.

    The channel is paused (its queue kept) until an admin fixes it and resumes it.
    ``expires_at`` is set when the platform said when the credentials expired.
    """

    def __init__(self, message: str, *, expires_at: object = None, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.expires_at = expires_at


class HeldError(PermanentError):
    """Nothing was published: the platform refused this post for a reason a person must look
    at (Facebook's policy block, code 368). Held for an editor (retry or skip), one alert."""


class UncertainError(PublishError):
    """The post may have been published: reconcile by reading back, never re-send blindly."""


class CannotCheckError(PublishError):
    """Reading the account back was refused (403, insufficient scope): only settling doubts is affected.

    Raised by ``find_existing``, never by ``publish``. The channel keeps posting; the
    delivery in doubt goes to an editor. ``missing_permission`` names what the token
    lacks in the platform's words (``read:accounts``, ``r_organization_social``), or "".
    """

    def __init__(self, message: str, *, missing_permission: str = "", **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.missing_permission = missing_permission
