"""``autopublish connect facebook``: turn a short-lived user token into a Page token in .env.

Steps: exchange the user token from Graph API Explorer for a long-lived one
(``/oauth/access_token``, grant_type=fb_exchange_token, sent as a POST so the app secret
and the token stay out of URLs), list the Pages the user manages (``/me/accounts``), let
the admin choose one, and write ``FACEBOOK_PAGE_TOKEN=<page token>`` into the .env file
(mode 0600, other lines kept). A Page token obtained from a long-lived user token does
not expire on a timer. Tokens are never printed.

Exit codes: 0 done, 1 an operational failure (Facebook refused, unreachable, file not
writable), 2 a usage error (bad option).
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import requests

from autopublish.platforms.base import check_base_url
from autopublish.platforms.meta.graph import GraphError, format_day
from autopublish.platforms.meta.sdk import (
    DEFAULT_API_BASE,
    DEFAULT_API_VERSION,
    GraphAPIError,
    GraphClient,
    GraphResponseError,
    GraphTransportError,
    validate_api_version,
)

TIMEOUT = (5.0, 30.0)
APP_SECRET_ENV = "FACEBOOK_APP_SECRET"
MAX_ACCOUNT_PAGES = 10  # /me/accounts pages of 100 Pages each
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ConnectError(click.ClickException):
    """An operational failure: one plain sentence, exit code 1."""


def _version(ctx: click.Context, param: click.Parameter, value: str) -> str:
    try:
        return validate_api_version(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _base(ctx: click.Context, param: click.Parameter, value: str) -> str:
    try:
        return check_base_url(str(value))
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _env_name(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if not ENV_NAME.match(value):
        raise click.BadParameter("must be a variable name like FACEBOOK_PAGE_TOKEN (letters, digits, _)")
    return value


def _app_id(ctx: click.Context, param: click.Parameter, value: str) -> str:
    value = value.strip()
    if not value.isdigit():
        raise click.BadParameter("the app id is the number shown at the top of the app's dashboard")
    return value


def _not_empty(ctx: click.Context, param: click.Parameter, value: str) -> str:
    value = value.strip()
    if not value:
        raise click.BadParameter("must not be empty")
    return value


@click.command("facebook")
@click.option("--app-id", envvar="FACEBOOK_APP_ID", prompt="Facebook app id", callback=_app_id,
              help="The id of your Meta app (App dashboard, top left). Env: FACEBOOK_APP_ID.")
@click.option("--app-secret", envvar="FACEBOOK_APP_SECRET", prompt="App secret", hide_input=True, callback=_not_empty,
              help="The app secret (App settings > Basic). Prompted without echo if not given. Env: FACEBOOK_APP_SECRET.")
@click.option("--user-token", prompt="User access token from Graph API Explorer", hide_input=True, callback=_not_empty,
              help="A short-lived user token with pages_show_list, pages_read_engagement and pages_manage_posts. Prompted without echo.")
@click.option("--env-file", type=click.Path(dir_okay=False, path_type=Path), default=Path(".env"), show_default=True,
              help="The .env file to write the Page token into.")
@click.option("--api-base", default=DEFAULT_API_BASE, show_default=True, callback=_base, help="Graph API address.")
@click.option("--api-version", default=DEFAULT_API_VERSION, show_default=True, callback=_version, help="Graph API version, like v23.0.")
@click.option("--page", "page_id", default=None, help="The id of the Page to connect (skips the question).")
@click.option("--env-name", default="FACEBOOK_PAGE_TOKEN", show_default=True, callback=_env_name,
              help="The variable to write; the channel's config refers to it as access_token = \"${NAME}\".")
@click.option("--save-app-secret/--no-save-app-secret", default=True, show_default=True,
              help="Also write the app secret to .env as FACEBOOK_APP_SECRET, so that `autopublish check` can read "
                   "the Page token's expiry and permissions (Facebook tells them only to the app).")
def facebook_command(
    app_id: str,
    app_secret: str,
    user_token: str,
    env_file: Path,
    api_base: str,
    api_version: str,
    page_id: str | None,
    env_name: str,
    save_app_secret: bool,
) -> None:
    """Get a Page access token for a Facebook Page and write it into .env."""
    with requests.Session() as session:
        def client(token: str | None) -> GraphClient:
            return GraphClient(session, api_base=api_base, api_version=api_version, access_token=token, timeout=TIMEOUT)

        long_token = exchange_token(client(None), app_id=app_id, app_secret=app_secret, user_token=user_token)
        pages = list_pages(client(long_token))
        page = choose_page(pages, page_id)
        expiry = token_expiry(client(None), str(page["access_token"]), app_token=f"{app_id}|{app_secret}")
    tasks = {str(t) for t in page.get("tasks") or []}
    if tasks and "CREATE_CONTENT" not in tasks:
        click.echo(
            "Warning: your role on this Page does not include creating content; "
            "posts will fail until a Page admin gives you that access.",
            err=True,
        )
    try:
        write_env_value(env_file, env_name, str(page["access_token"]))
        if save_app_secret:
            write_env_value(env_file, APP_SECRET_ENV, app_secret)
    except OSError as exc:
        raise ConnectError(f"Could not write {env_file} ({exc.strerror or type(exc).__name__})") from None
    click.echo(f"Connected the Facebook Page {page.get('name') or '(no name)'} (id {page['id']}).")
    written = f"{env_name} and {APP_SECRET_ENV}" if save_app_secret else env_name
    click.echo(f"Wrote {written} to {env_file} (readable only by you).")
    click.echo(expiry)
    lines = [f'  page_id = "{page["id"]}"', f'  access_token = "${{{env_name}}}"']
    if save_app_secret:
        lines += [f'  app_id = "{app_id}"', f'  app_secret = "${{{APP_SECRET_ENV}}}"']
    click.echo("In the channel's config use:\n" + "\n".join(lines))


# --- steps --------------------------------------------------------------------------------
def exchange_token(client: GraphClient, *, app_id: str, app_secret: str, user_token: str) -> str:
    """A long-lived user token for the short-lived one (about 60 days)."""
    answer = _graph(
        lambda: client.post(
            "oauth/access_token",
            grant_type="fb_exchange_token",
            client_id=app_id,
            client_secret=app_secret,
            fb_exchange_token=user_token,
        ),
        doing="exchange the user token",
    )
    token = answer.get("access_token") if isinstance(answer, dict) else None
    if not token:
        raise ConnectError("Facebook did not return a long-lived token; try again with a new user token")
    return str(token)


def list_pages(client: GraphClient) -> list[dict[str, Any]]:
    """The Pages the user manages, each with its Page token (following the cursor, not the token-bearing link)."""
    pages: list[dict[str, Any]] = []
    after: str | None = None
    for _ in range(MAX_ACCOUNT_PAGES):
        params = {"fields": "id,name,access_token,tasks", "limit": "100"}
        if after:
            params["after"] = after
        answer = _graph(lambda params=params: client.get("me/accounts", **params), doing="list your Pages")
        data = answer.get("data") if isinstance(answer, dict) else None
        if not isinstance(data, list):
            raise ConnectError("Facebook's list of your Pages could not be read; try again later")
        pages.extend(p for p in data if isinstance(p, dict) and p.get("id") and p.get("access_token"))
        paging = answer.get("paging") or {}
        after = (paging.get("cursors") or {}).get("after") if paging.get("next") else None
        if not after:
            break
    if not pages:
        raise ConnectError(
            "Facebook lists no Pages for this user; make sure you manage the Page and that the user token "
            "was created with pages_show_list, pages_read_engagement and pages_manage_posts"
        )
    return pages


def token_expiry(client: GraphClient, page_token: str, *, app_token: str) -> str:
    """One sentence on when the Page token stops working, read with the app token (debug_token
    answers only to the app). Never fails the connect: an unreadable answer says so."""
    try:
        status, body = client.batch_get(f"debug_token?input_token={page_token}", token=app_token)
    except (GraphAPIError, GraphTransportError, GraphResponseError):
        status, body = 0, None
    data = body.get("data") if isinstance(body, dict) else None
    if status != 200 or not isinstance(data, dict):
        return "Facebook did not say when the Page token expires; autopublish check will ask again."
    parts = []
    expires_at = data.get("expires_at")
    if isinstance(expires_at, int) and expires_at > 0:
        parts.append(f"The Page token expires on {format_day(datetime.fromtimestamp(expires_at, UTC))}")
    else:
        parts.append("The Page token does not expire on a timer (a password change or a lost Page role ends it)")
    data_expires = data.get("data_access_expires_at")
    if isinstance(data_expires, int) and data_expires > 0:
        parts.append(f"its data access lasts until {format_day(datetime.fromtimestamp(data_expires, UTC))}")
    return "; ".join(parts) + "."


def choose_page(pages: list[dict[str, Any]], page_id: str | None) -> dict[str, Any]:
    """The page named by --page, else the admin's choice from a numbered list."""
    if page_id is not None:
        for page in pages:
            if str(page["id"]) == page_id.strip():
                return page
        names = ", ".join(f"{p.get('name')} ({p['id']})" for p in pages)
        raise ConnectError(f"You do not manage a Page with id {page_id}; your Pages are: {names}")
    click.echo("Your Pages:")
    for number, page in enumerate(pages, 1):
        click.echo(f"  {number}. {page.get('name') or '(no name)'} (id {page['id']})")
    choice = click.prompt("Which Page should autopublish post to?", type=click.IntRange(1, len(pages)), default=1 if len(pages) == 1 else None)
    return pages[choice - 1]


def write_env_value(path: Path, name: str, value: str) -> None:
    """Set ``name=value`` in a .env file: replace its line (or append), keep the others, mode 0600."""
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    pattern = re.compile(rf"^\s*(?:export\s+)?{re.escape(name)}\s*=")
    if re.search(r"[\s#'\"\\]", value):
        value = "'" + value.replace("'", "") + "'"
    out: list[str] = []
    replaced = False
    for line in lines:
        if pattern.match(line):
            if not replaced:
                out.append(f"{name}={value}")
                replaced = True
            continue
        out.append(line)
    if not replaced:
        out.append(f"{name}={value}")
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write("\n".join(out) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()
    os.chmod(path, 0o600)


def _graph(call: Any, *, doing: str) -> Any:
    """Run one Graph call; failures become one plain sentence (never a URL or a token)."""
    failure: ConnectError | None = None
    try:
        return call()
    except GraphAPIError as exc:
        failure = ConnectError(_graph_sentence(GraphError.from_body(0, exc.result), doing))
    except GraphTransportError as exc:
        if exc.kind == "bad_address":
            failure = ConnectError("The --api-base address is not valid")
        elif exc.kind == "unreachable":
            failure = ConnectError(f"Could not reach Facebook to {doing}; check the network and try again")
        else:
            failure = ConnectError(f"Facebook did not answer in time while trying to {doing}; try again")
    except GraphResponseError as exc:
        failure = ConnectError(f"Facebook answered HTTP {exc.status} in a form that could not be read while trying to {doing}; try again later")
    raise failure


def _graph_sentence(fault: GraphError, doing: str) -> str:
    code, text = fault.code, fault.message.lower()
    if (code == 1 and "client secret" in text) or code == 101:
        return "Facebook did not accept the app id or app secret; copy both again from the app's Settings > Basic page"
    if code in (190, 102):
        return (
            "Facebook did not accept the user token (Graph API Explorer tokens last about an hour); "
            "generate a new one and run this again"
        )
    if code in (10, *range(200, 300)):
        return (
            "The user token lacks a permission needed to list your Pages; in Graph API Explorer add "
            "pages_show_list, pages_read_engagement and pages_manage_posts, generate a new token and run this again"
        )
    if code in (4, 17, 32, 341, 613):
        return "Facebook says too many calls were made; wait a few minutes and try again"
    return f"Facebook refused to {doing} (error {code}); check the app id and token and try again"
