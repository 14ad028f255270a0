"""Secrets: values from the environment, written in the config as ``${NAME}``.

A ``Secret`` never shows its value in ``repr``/``str``/f-strings; code that needs the
value calls ``reveal()``. ``Redactor`` masks known secret values in any text, as a
second line of defence for logs and error messages.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import PlainSerializer, PlainValidator, ValidationInfo, WithJsonSchema

REFERENCE = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")
MASK = "***"


class Secret:
    """A secret value that refuses to print itself."""

    __slots__ = ("_value", "env_name")

    def __init__(self, value: str, env_name: str = "") -> None:
        self._value = value
        self.env_name = env_name

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({self.env_name or MASK!s})" if self.env_name else f"Secret({MASK})"

    def __str__(self) -> str:
        return MASK

    def __format__(self, spec: str) -> str:
        return MASK

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> Any:  # never pickled with its value
        raise TypeError("a Secret cannot be pickled")


def _resolve(value: object, info: ValidationInfo) -> Secret:
    """Pydantic hook: turn ``"${NAME}"`` into a Secret from the validation context's env."""
    if isinstance(value, Secret):
        return value
    if not isinstance(value, str):
        raise ValueError('must be a reference to an environment variable, like "${NAME}"')
    match = REFERENCE.match(value.strip())
    if not match:
        raise ValueError(
            'secrets are not written in the config; write a reference like "${NAME}" '
            "and put NAME=... in .env or the environment"
        )
    name = match.group(1)
    env: Mapping[str, str] = (info.context or {}).get("env", {})
    found = env.get(name)
    if found is None or found == "":
        raise ValueError(
            f"the environment variable {name} is not set; add {name}=... to .env "
            "(see .env.example) or to the service's environment"
        )
    return Secret(found, name)


SecretRef = Annotated[
    Secret,
    PlainValidator(_resolve),
    PlainSerializer(lambda s: MASK, return_type=str),
    WithJsonSchema({"type": "string"}),
]


class Redactor:
    """Masks every known secret value (and URL-borne tokens) in a piece of text."""

    URL_TOKENS = re.compile(
        r"(?i)((?:access_token|input_token|appsecret_proof|client_secret|fb_exchange_token|password|token)=)[^&\s'\"]+"
    )
    BOT_PATH = re.compile(r"/bot\d+:[A-Za-z0-9_-]+")

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._values: list[str] = []
        self.add(values)

    def add(self, values: Iterable[str]) -> None:
        for value in values:
            candidates = [value]
            if value.startswith(("http://", "https://")):
                # Webhook URLs are secrets; HTTP client logs print only their path.
                path = urlsplit(value).path
                if len(path) >= 12:
                    candidates.append(path)
            for candidate in candidates:
                if candidate and len(candidate) >= 4 and candidate not in self._values:
                    self._values.append(candidate)
        self._values.sort(key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for value in self._values:
            if value in text:
                text = text.replace(value, MASK)
        text = self.URL_TOKENS.sub(r"\1" + MASK, text)
        return self.BOT_PATH.sub("/bot" + MASK, text)


class RedactingFilter(logging.Filter):
    """Logging filter: renders each record once, then masks secrets in the result."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = self.redactor(message)
        if record.exc_info and record.exc_info[1] is not None:
            # Exception text from HTTP libraries can carry URLs with tokens.
            exc = record.exc_info[1]
            record.exc_text = self.redactor(f"{type(exc).__name__}: {exc}")
            record.exc_info = None
        record.msg, record.args = clean, None
        for key, value in list(vars(record).items()):
            if isinstance(value, str) and key not in {
                "msg",
                "name",
                "levelname",
                "pathname",
                "filename",
                "module",
                "funcName",
                "processName",
                "threadName",
                "taskName",
            }:
                setattr(record, key, self.redactor(value))
        return True
