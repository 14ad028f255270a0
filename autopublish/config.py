"""TOML + environment -> frozen settings. Every problem is reported at once, with file, key and fix.

Secrets are written ``"${NAME}"`` and resolved from the environment (the CLI merges
``.env`` beneath the real environment); they are never stored in settings as plain str.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote, unquote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, PlainValidator, ValidationError, ValidationInfo, field_validator

from autopublish.durations import parse_duration, parse_size
from autopublish.errors import ConfigError, ConfigProblem
from autopublish.platforms import PUBLISHERS, publisher_class
from autopublish.platforms.base import PlatformOptions
from autopublish.render import TemplateError, template_fields
from autopublish.secrets import MASK, Redactor, Secret, SecretRef

SAMPLES = Path(__file__).parent / "samples"
DEFAULT_PATH = Path("config/autopublish.toml")
EMBEDDED_DEFAULT = SAMPLES / "default.toml"

Duration = Annotated[float, BeforeValidator(parse_duration)]
Size = Annotated[int, BeforeValidator(parse_size)]


def _optional_duration(value: object) -> float | None:
    if value in (None, "off", "none", "never", 0, "0"):
        return None
    return parse_duration(value)


OptionalDuration = Annotated[float | None, BeforeValidator(_optional_duration)]
_REFERENCE_IN_TEXT = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _database_url(value: object, info: ValidationInfo) -> Secret:
    """``postgresql://user:${DB_PASSWORD}@host:5432/db``: references are filled from the environment; the whole is a Secret."""
    if isinstance(value, Secret):
        return value
    if not isinstance(value, str) or not value.startswith(("postgresql://", "postgres://")):
        raise ValueError('must be a PostgreSQL address like "postgresql://autopublish:${DB_PASSWORD}@db.example:5432/autopublish" '
                         "(leave it out to use SQLite in state_dir)")
    env: Mapping[str, str] = (info.context or {}).get("env", {})
    missing = [name for name in _REFERENCE_IN_TEXT.findall(value) if not env.get(name)]
    if missing:
        raise ValueError(f"the environment variable {missing[0]} is not set; add {missing[0]}=... to .env or the service's environment")
    password = urlsplit(value).password
    if password and not _REFERENCE_IN_TEXT.search(value.split("@", 1)[0]):
        raise ValueError('the password is not written in the config; write "${DB_PASSWORD}" in its place and put DB_PASSWORD=... in .env')
    return Secret(_REFERENCE_IN_TEXT.sub(lambda m: quote(env[m.group(1)], safe=""), value), "database")


DatabaseUrl = Annotated[Secret, PlainValidator(_database_url), PlainSerializer(lambda s: MASK, return_type=str)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SettingsModel(_Strict):
    state_dir: str = "queue"
    poll_interval: Duration = 300.0
    first_run: str = "skip"
    max_age: OptionalDuration = 3 * 86400.0
    max_tries: int = Field(8, ge=1, le=100)
    give_up_after: Duration = 2 * 86400.0
    retry_base: Duration = 60.0
    retry_cap: Duration = 6 * 3600.0
    reconcile_after: Duration = 60.0
    reconcile_give_up_after: Duration = 86400.0  # a post in doubt goes to an editor after this long
    check_interval: Duration = 6 * 3600.0
    log_retention: Duration = 365 * 86400.0
    flood_threshold: int = Field(20, ge=1)
    fetch_timeout: Duration = 20.0
    fetch_deadline: Duration = 60.0
    max_feed_size: Size = 10 * 1024 * 1024
    max_redirects: int = Field(5, ge=0, le=20)
    fetch_concurrency: int = Field(16, ge=1, le=256)  # feeds fetched at once (at most 2 per host)
    feed_down_after: Duration = 6 * 3600.0
    publish_timeout: Duration = 30.0
    sweep_interval: Duration = 30.0
    timezone: str = "UTC"
    # Hosts whose internal addresses may be fetched when feed data names them (images,
    # enclosures); every other internal address is refused (autopublish.netguard).
    allow_private_hosts: tuple[str, ...] = ()
    # Several nodes: "postgresql://user:${DB_PASSWORD}@host:5432/db"; unset = SQLite in state_dir.
    database: DatabaseUrl | None = None
    heartbeat: Duration = 10.0  # a node is dead after 3 heartbeats without one
    # Off by default: every check_interval, ask the site for each article with live posts
    # (posted within watch_removed_for); a 404 or 410 alerts the editors with a retract link.
    watch_removed: bool = False
    watch_removed_for: Duration = 14 * 86400.0

    _first_run = field_validator("first_run")(lambda value: _check_first_run(value))

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        return _check_zone(value)

    @field_validator("allow_private_hosts")
    @classmethod
    def _private_hosts(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for host in value:
            if not _HOST.fullmatch(host.strip()):
                raise ValueError(f'{host!r} is not a host name or IP address; write only the host, like "media.intranet" or "10.0.0.5" '
                                 "(no scheme, port or path)")
        return tuple(h.strip().lower() for h in value)


_HOST = re.compile(r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})(?:\.[A-Za-z0-9-]{1,63})*\.?|\d{1,3}(?:\.\d{1,3}){3}|\[?[0-9A-Fa-f:.]+\]?")


def _check_first_run(value: str) -> str:
    if value == "skip" or re.fullmatch(r"latest:\d+", value) or value == "all":
        return value
    raise ValueError('must be "skip", "latest:N" (for example "latest:3") or "all"')


def _check_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f'{value!r} is not a time zone; use a name like "Asia/Jakarta" or "UTC"') from None
    return value


class FeedModel(_Strict):
    url: str
    channels: list[str] = []
    poll_interval: Duration | None = None
    first_run: str | None = None
    max_age: OptionalDuration = None
    enabled: bool = True

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.match(r"^(https?://[^\s/]+|file://|sample:)", value):
            raise ValueError('must be an http(s) address like "https://example.org/feed/"')
        return value

    @field_validator("first_run")
    @classmethod
    def _first_run(cls, value: str | None) -> str | None:
        return None if value is None else _check_first_run(value)


class PacingModel(_Strict):
    max_per_hour: int | None = Field(None, ge=1)
    max_per_day: int | None = Field(None, ge=1)
    min_gap: Duration = 0.0
    # A new article waits this long before it goes out: time to fix a typo on the site (the post goes out
    # corrected) or to retract it, and for the site's cache and the platforms' link previews to catch up.
    delay: Duration = 0.0
    quiet_hours: str | None = None  # "22:00-06:00" in the channel's timezone
    timezone: str = "UTC"

    @field_validator("quiet_hours")
    @classmethod
    def _quiet(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d", value.strip()):
            raise ValueError('must be a range like "22:00-06:00"')
        return value.strip()

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        return _check_zone(value)


COMMON_CHANNEL_KEYS = {
    "platform", "template", "enabled", "include_categories", "exclude_categories",
    "include_keywords", "exclude_keywords", "max_age", "pacing", "on_edit",
}


class ChannelCommonModel(_Strict):
    platform: str
    template: str | None = None
    enabled: bool = True
    include_categories: list[str] = []
    exclude_categories: list[str] = []
    include_keywords: list[str] = []
    exclude_keywords: list[str] = []
    max_age: OptionalDuration = None
    pacing: PacingModel = PacingModel()
    on_edit: Literal["update", "ignore"] = "update"  # an article edited on the site updates its live posts


class WebUserModel(_Strict):
    name: str
    password_hash: str
    role: str = "editor"
    language: str | None = None

    @field_validator("role")
    @classmethod
    def _role(cls, value: str) -> str:
        if value not in ("editor", "viewer"):
            raise ValueError('must be "editor" or "viewer"')
        return value

    @field_validator("password_hash")
    @classmethod
    def _password_hash(cls, value: str) -> str:
        from autopublish.web.passwords import password_hash_problem

        problem = password_hash_problem(value)
        if problem:
            raise ValueError(f"{problem}; make a new hash with: autopublish hash-password, and paste its last line here")
        return value


class WebModel(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    secret_key: SecretRef | None = None
    users: list[WebUserModel] = []
    refresh: Duration = 30.0
    public_url: str | None = None  # the page's address as editors open it (for links in alerts)
    session_idle_timeout: Duration = 8 * 3600.0   # a session unused this long ends
    session_lifetime: Duration = 7 * 86400.0      # and every session ends this long after sign-in
    trusted_proxies: list[str] = []               # addresses/networks whose X-Forwarded-For/-Proto count
    secure_cookies: bool = False                  # Secure cookies always (on by itself for HTTPS via a trusted proxy)

    @field_validator("session_idle_timeout")
    @classmethod
    def _idle(cls, value: float) -> float:
        if not 300 <= value <= 30 * 86400:
            raise ValueError('must be between 5 minutes and 30 days, for example "8h"')
        return value

    @field_validator("session_lifetime")
    @classmethod
    def _lifetime(cls, value: float) -> float:
        if not 300 <= value <= 365 * 86400:
            raise ValueError('must be between 5 minutes and 365 days, for example "7d"')
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, value: list[str]) -> list[str]:
        import ipaddress

        for entry in value:
            try:
                ipaddress.ip_network(entry.strip(), strict=False)
            except ValueError:
                raise ValueError(f'"{entry}" is not an IP address or network; write one like "127.0.0.1" or "10.0.0.0/8"') from None
        return [entry.strip() for entry in value]


class DaemonModel(_Strict):
    metrics: str | None = None

    @field_validator("metrics")
    @classmethod
    def _metrics(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[\w.\-\[\]:]+:\d{1,5}", value):
            raise ValueError('must be "host:port", for example "127.0.0.1:9464"')
        return value


class PushModel(_Strict):
    """[push]: the listener that turns pings, WebSub deliveries and hooks into an immediate poll (off by default)."""

    listen: str | None = None
    public_url: str | None = None  # how hubs reach the listener; enables WebSub subscriptions
    token: SecretRef | None = None  # Bearer token of POST /poll/<feed>; also keys the WebSub secrets
    coalesce: Duration = 2.0  # at most one extra push poll per feed within this time (keeps a second post within ~2 s)
    websub: bool = True
    lease: Duration = 7 * 86400.0  # the lease asked of WebSub hubs

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[\w.\-\[\]:]+:\d{1,5}", value):
            raise ValueError('must be "host:port", for example "0.0.0.0:8765"')
        return value

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", value):
            raise ValueError('must be the http(s) address that reaches the listener, like "https://autopublish.example.org"')
        return value.rstrip("/") if value else value


class AlertsModel(_Strict):
    channels: list[str] = []
    email: list[str] = []
    repeat: Duration = 86400.0


class SmtpModel(_Strict):
    host: str
    port: int = 587
    user: str | None = None
    password: SecretRef | None = None
    starttls: bool = True
    sender: str | None = None


class RootModel(_Strict):
    settings: SettingsModel = SettingsModel()
    feeds: dict[str, dict[str, Any]] = {}
    channels: dict[str, dict[str, Any]] = {}
    web: WebModel = WebModel()
    daemon: DaemonModel = DaemonModel()
    alerts: AlertsModel = AlertsModel()
    smtp: SmtpModel | None = None
    push: PushModel = PushModel()


# --- the result ------------------------------------------------------------------


@dataclass(frozen=True)
class FeedConfig:
    name: str
    url: str  # with ${NAME} parts resolved: for fetching only, never shown
    channels: tuple[str, ...]
    poll_interval: float
    first_run: str
    max_age: float | None
    enabled: bool = True
    display_url: str = ""  # as written (${NAME} parts kept, credentials masked): for logs, check, the store, the web page

    def __post_init__(self) -> None:
        if not self.display_url:
            object.__setattr__(self, "display_url", redact_url(self.url))


@dataclass(frozen=True)
class ChannelConfig:
    name: str
    platform: str
    template: str
    options: PlatformOptions
    enabled: bool = True
    include_categories: tuple[str, ...] = ()
    exclude_categories: tuple[str, ...] = ()
    include_keywords: tuple[str, ...] = ()
    exclude_keywords: tuple[str, ...] = ()
    max_age: float | None = None
    pacing: PacingModel = field(default_factory=PacingModel)
    on_edit: str = "update"


@dataclass(frozen=True)
class Config:
    path: Path
    embedded: bool
    settings: SettingsModel
    state_dir: Path
    feeds: dict[str, FeedConfig]
    channels: dict[str, ChannelConfig]
    web: WebModel
    daemon: DaemonModel
    alerts: AlertsModel
    smtp: SmtpModel | None
    secrets: tuple[Secret, ...] = ()
    push: PushModel = field(default_factory=PushModel)

    def secret_values(self) -> list[str]:
        return [s.reveal() for s in self.secrets]

    @property
    def database(self) -> Secret | None:
        """The PostgreSQL address (with its password), or None for SQLite in state_dir."""
        return self.settings.database


# --- loading -----------------------------------------------------------------------


def find_config(explicit: str | None, environ: Mapping[str, str], cwd: Path) -> tuple[Path, bool]:
    """(path, embedded): the flag, else AUTOPUBLISH_CONFIG, else config/autopublish.toml, else the built-in demo."""
    if explicit:
        return Path(explicit), False
    if environ.get("AUTOPUBLISH_CONFIG"):
        return Path(environ["AUTOPUBLISH_CONFIG"]), False
    default = cwd / DEFAULT_PATH
    if default.exists():
        return default, False
    return EMBEDDED_DEFAULT, True


def load_config(path: Path, environ: Mapping[str, str], *, cwd: Path | None = None, embedded: bool = False) -> Config:
    """Read, validate and resolve a config file. Raises ConfigError listing every problem."""
    shown = str(path)
    try:
        raw_text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([ConfigProblem(shown, "(file)", "the file does not exist",
                                         "copy config/autopublish.example.toml to config/autopublish.toml and edit it, or pass --config PATH")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([ConfigProblem(shown, "(file)", f"the file cannot be read ({exc})", "check its permissions and that it is UTF-8 text")]) from None
    try:
        raw = tomllib.loads(raw_text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([ConfigProblem(shown, "(syntax)", f"this is not valid TOML: {exc}",
                                         "fix the line named; strings need quotes, each [section] may appear once")]) from None
    return parse_config(raw, environ, path=path, cwd=cwd or Path.cwd(), embedded=embedded)


def parse_config(raw: dict[str, Any], environ: Mapping[str, str], *, path: Path, cwd: Path, embedded: bool = False) -> Config:
    shown = str(path)
    problems: list[ConfigProblem] = []
    context = {"env": environ}
    secrets: list[Secret] = []

    try:
        root = RootModel.model_validate(raw, context=context)
    except ValidationError as exc:
        problems.extend(_problems(shown, exc, ()))
        # keep going with what can be read, to report channel problems too
        root = RootModel.model_construct(
            settings=_safe(SettingsModel, raw.get("settings"), context) or SettingsModel(),
            feeds=_table(raw.get("feeds")),
            channels=_table(raw.get("channels")),
            web=_safe(WebModel, raw.get("web"), context) or WebModel(),
            daemon=_safe(DaemonModel, raw.get("daemon"), context) or DaemonModel(),
            alerts=_safe(AlertsModel, raw.get("alerts"), context) or AlertsModel(),
            smtp=_safe(SmtpModel, raw.get("smtp"), context),
            push=_safe(PushModel, raw.get("push"), context) or PushModel(),
        )
    settings = root.settings

    channels: dict[str, ChannelConfig] = {}
    channel_tables: dict[str, object] = dict(root.channels)  # after a failed validation, entries may be anything
    for name, body in channel_tables.items():
        where = ("channels", name)
        if not isinstance(body, dict):
            problems.append(ConfigProblem(shown, _key(where), "must be a table", f"write it as [channels.{name}] with keys below it"))
            continue
        if not re.fullmatch(r"[A-Za-z0-9_-]+", name):
            problems.append(ConfigProblem(shown, _key(where), "channel names may use letters, digits, - and _ only", "rename the channel"))
        common_raw = {k: v for k, v in body.items() if k in COMMON_CHANNEL_KEYS}
        platform_raw = {k: v for k, v in body.items() if k not in COMMON_CHANNEL_KEYS}
        try:
            common = ChannelCommonModel.model_validate(common_raw, context=context)
        except ValidationError as exc:
            problems.extend(_problems(shown, exc, where))
            continue
        if common.platform not in PUBLISHERS:
            close = difflib.get_close_matches(common.platform, PUBLISHERS, n=1)
            hint = f'did you mean "{close[0]}"? ' if close else ""
            problems.append(ConfigProblem(shown, _key((*where, "platform")), f'unknown platform "{common.platform}"',
                                          f"{hint}known platforms: {', '.join(PUBLISHERS)}"))
            continue
        try:
            cls = publisher_class(common.platform)
        except ImportError as exc:
            problems.append(ConfigProblem(shown, _key((*where, "platform")), f'the {common.platform} platform cannot be loaded ({exc})',
                                          "reinstall autopublish with its dependencies: pip install ."))
            continue
        try:
            options = cls.Options.model_validate(platform_raw, context=context)
        except ValidationError as exc:
            problems.extend(_problems(shown, exc, where, known=set(cls.Options.model_fields) | COMMON_CHANNEL_KEYS))
            continue
        template = common.template or cls.default_template
        try:
            template_fields(template)
        except TemplateError as exc:
            problems.append(ConfigProblem(shown, _key((*where, "template")), str(exc), "edit the template"))
            continue
        secrets.extend(_secrets_in(options))
        channels[name] = ChannelConfig(
            name=name,
            platform=common.platform,
            template=template,
            options=options,
            enabled=common.enabled,
            include_categories=tuple(common.include_categories),
            exclude_categories=tuple(common.exclude_categories),
            include_keywords=tuple(common.include_keywords),
            exclude_keywords=tuple(common.exclude_keywords),
            max_age=common.max_age,
            pacing=common.pacing,
            on_edit=common.on_edit,
        )

    alert_channels = set(root.alerts.channels)
    feeds: dict[str, FeedConfig] = {}
    fed: set[str] = set()
    feed_tables: dict[str, object] = dict(root.feeds)  # after a failed validation, entries may be anything
    for name, body in feed_tables.items():
        where = ("feeds", name)
        if not isinstance(body, dict):
            problems.append(ConfigProblem(shown, _key(where), "must be a table", f"write it as [feeds.{name}] with url = ... below it"))
            continue
        try:
            feed = FeedModel.model_validate(body, context=context)
        except ValidationError as exc:
            problems.extend(_problems(shown, exc, where))
            continue
        seen_here: set[str] = set()
        for index, channel in enumerate(feed.channels):
            key = _key((*where, "channels", index))
            if channel in seen_here:
                problems.append(ConfigProblem(shown, key, f'the channel "{channel}" is listed twice', "list each channel once"))
            seen_here.add(channel)
            if channel not in root.channels:
                close = difflib.get_close_matches(channel, list(root.channels), n=1)
                hint = f'did you mean "{close[0]}"? ' if close else ""
                problems.append(ConfigProblem(shown, key, f'no channel is named "{channel}"',
                                              f"{hint}add a [channels.{channel}] section or fix the name"))
            if channel in alert_channels:
                problems.append(
                    ConfigProblem(shown, key, f'"{channel}" is an alert channel and cannot also receive articles', "use a separate channel for alerts")
                )
        fed.update(feed.channels)
        url, url_secrets, missing = _resolve_references(feed.url, environ)
        for variable in missing:
            problems.append(ConfigProblem(shown, _key((*where, "url")), f"the environment variable {variable} is not set",
                                          f"add {variable}=... to .env (see .env.example) or to the service's environment"))
        secrets.extend(url_secrets)
        feeds[name] = FeedConfig(
            name=name,
            url=url,
            display_url=redact_url(feed.url),
            channels=tuple(feed.channels),
            poll_interval=feed.poll_interval or settings.poll_interval,
            first_run=feed.first_run or settings.first_run,
            max_age=feed.max_age if "max_age" in body else settings.max_age,
            enabled=feed.enabled,
        )

    for index, channel in enumerate(root.alerts.channels):
        if channel not in root.channels:
            problems.append(ConfigProblem(shown, _key(("alerts", "channels", index)), f'no channel is named "{channel}"',
                                          f"add a [channels.{channel}] section or fix the name"))
    if root.alerts.email and root.smtp is None:
        problems.append(ConfigProblem(shown, "alerts.email", "alert e-mail needs an [smtp] section", "add [smtp] with host, port, user and password"))
    names = [u.name for u in root.web.users]
    for dup in sorted({n for n in names if names.count(n) > 1}):
        problems.append(ConfigProblem(shown, "web.users", f'the user "{dup}" is listed twice', "give each user a unique name"))
    problems.extend(_push_problems(shown, root))
    if not feeds and not embedded:
        problems.append(ConfigProblem(shown, "feeds", "no feed is configured", "add a [feeds.NAME] section with url and channels"))

    if problems:
        raise ConfigError(problems)

    for model in (root.web, root.smtp, root.push):
        if model is not None:
            secrets.extend(_secrets_in(model))
    if settings.database is not None:
        secrets.append(settings.database)
        password = urlsplit(settings.database.reveal()).password
        if password:
            secrets.extend(Secret(value, "database password") for value in {password, unquote(password)})
    state_dir = Path(settings.state_dir)
    if not state_dir.is_absolute():
        state_dir = (cwd / state_dir).resolve()
    return Config(
        path=path,
        embedded=embedded,
        settings=settings,
        state_dir=state_dir,
        feeds=feeds,
        channels=channels,
        web=root.web,
        daemon=root.daemon,
        alerts=root.alerts,
        smtp=root.smtp,
        secrets=tuple(secrets),
        push=root.push,
    )


def _table(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _push_problems(file: str, root: RootModel) -> list[ConfigProblem]:
    push = root.push
    found = []
    if push.public_url and not push.listen:
        found.append(ConfigProblem(file, "push.public_url", "is set but nothing listens", 'add listen = "HOST:PORT" to [push]'))
    if push.public_url and push.websub and push.token is None:
        found.append(ConfigProblem(file, "push.token", "WebSub needs a token (each subscription's secret is derived from it)",
                                   'add token = "${AUTOPUBLISH_PUSH_TOKEN}" and a long random AUTOPUBLISH_PUSH_TOKEN to .env'))
    if push.token is not None and len(push.token.reveal()) < 16:
        found.append(ConfigProblem(file, "push.token", "the token is too short to be safe", "use at least 16 random characters (openssl rand -hex 32)"))
    if push.listen and push.listen == root.daemon.metrics:
        found.append(ConfigProblem(file, "push.listen", "uses the same address as daemon.metrics", "give the push listener its own port"))
    return found


_REFERENCE_PART = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _resolve_references(text: str, environ: Mapping[str, str]) -> tuple[str, list[Secret], list[str]]:
    """``text`` with each ``${NAME}`` replaced from the environment: (resolved, the secrets used, names not set)."""
    used: list[Secret] = []
    missing: list[str] = []

    def value_of(match: re.Match[str]) -> str:
        name = match.group(1)
        value = environ.get(name)
        if not value:
            missing.append(name)
            return match.group(0)
        used.append(Secret(value, name))
        return value

    return _REFERENCE_PART.sub(value_of, text), used, missing


def redact_url(url: str) -> str:
    """A URL fit to show: a password in it and token-like query values masked (``${NAME}`` parts stay as written)."""
    shown = re.sub(r"^([a-zA-Z][a-zA-Z0-9+.-]*://[^/@\s:]*):[^/@\s]*@", r"\1:***@", url.strip())
    return Redactor()(shown)


def _safe(model: type[BaseModel], value: Any, context: dict[str, Any]) -> Any:
    try:
        return model.model_validate(value if value is not None else {}, context=context)
    except ValidationError:
        return None


def _secrets_in(model: BaseModel) -> list[Secret]:
    return [value for value in vars(model).values() if isinstance(value, Secret)]


def _key(parts: tuple[Any, ...]) -> str:
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


_ALL_KEYS: set[str] = set()
for _model in (SettingsModel, FeedModel, PacingModel, ChannelCommonModel, WebModel, WebUserModel, DaemonModel, AlertsModel, SmtpModel, PushModel, RootModel):
    _ALL_KEYS.update(_model.model_fields)


def _problems(file: str, exc: ValidationError, prefix: tuple[Any, ...], known: set[str] | None = None) -> list[ConfigProblem]:
    found = []
    for error in exc.errors(include_url=False, include_input=False):
        loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        key = _key((*prefix, *loc))
        kind = error["type"]
        message = error["msg"]
        if message.startswith("Value error, "):
            message = message[len("Value error, "):]
        if kind == "extra_forbidden":
            name = str(loc[-1]) if loc else ""
            close = difflib.get_close_matches(name, sorted(known or _ALL_KEYS), n=1)
            fix = f'did you mean "{close[0]}"?' if close else "remove it; the example config lists every key"
            found.append(ConfigProblem(file, key, "is not a known key", fix))
        elif kind == "missing":
            found.append(ConfigProblem(file, key, "is required", "add it (see config/autopublish.example.toml)"))
        elif kind == "value_error":
            found.append(ConfigProblem(file, key, message, ""))
        else:
            found.append(ConfigProblem(file, key, message.lower() if message[:1].isupper() else message,
                                       "see config/autopublish.example.toml for the expected form"))
    return found
