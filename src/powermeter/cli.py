"""The ``powermeter`` command line."""

from __future__ import annotations

import logging
import os
import secrets
import sys
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from powermeter import __version__
from powermeter.infra.db import Database
from powermeter.settings import Settings

if TYPE_CHECKING:
    from powermeter.accounts.service import AccountService

app = typer.Typer(
    name="powermeter",
    help="Energy, carbon, water and cost metering with signed receipts and carbon-aware routing.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
accounts_app = typer.Typer(help="Manage accounts.", no_args_is_help=True)
keys_app = typer.Typer(
    help="Manage API keys (shown once at creation, stored only as a keyed hash).", no_args_is_help=True
)
app.add_typer(accounts_app, name="accounts")
app.add_typer(keys_app, name="keys")

err = Console(stderr=True)
out = Console()


def _db_and_settings() -> tuple[Settings, Database]:
    from powermeter.infra.bootstrap import open_database

    return open_database()


def _accounts(settings: Settings) -> AccountService:
    from powermeter.composition import account_service

    return account_service(settings, settings.resolved_secret())


def _fail(message: str, code: int = 1) -> None:
    err.print(f"[red]error:[/red] {message}")
    raise typer.Exit(code)


@app.callback(invoke_without_command=True)
def _main(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    if version:
        out.print(__version__)
        raise typer.Exit()


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes (use PostgreSQL + Redis to scale out).")] = 1,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
    forwarded_allow_ips: Annotated[
        str | None,
        typer.Option(
            "--forwarded-allow-ips",
            help="Comma-separated IPs/networks of reverse proxies whose X-Forwarded-For/-Proto are trusted "
            "(e.g. 127.0.0.1 behind a local nginx). Default: none trusted, the peer address is the client.",
        ),
    ] = None,
) -> None:
    """Run the API server (migrations are applied at start-up)."""
    import shutil

    import uvicorn

    from powermeter.infra.observability import METRICS_DIR_ENV, prepare_shared_dir

    logging.basicConfig(level=log_level.upper(), format="%(message)s", stream=sys.stderr)
    logging.getLogger("alembic").setLevel(max(logging.WARNING, logging.getLogger().level))
    settings, db = _db_and_settings()
    url = base_url(host, port)
    _bootstrap(settings, db, url)
    db.dispose()
    err.print(
        f"powermeter {__version__} on [bold]{url}[/bold]  (docs: {url}/docs, dashboard: {url}/dashboard)",
        soft_wrap=True,
    )
    err.print(f"database: {_redact(settings.resolved_database_url)}  redis: {_redact(settings.redis_url or '-')}")
    # Several workers: /metrics sums the counts of all of them from files in one directory, set in the
    # environment before the workers start (docs/operations.md, "Metrics").
    metrics_dir, temporary = prepare_shared_dir(os.environ.get(METRICS_DIR_ENV), workers)
    if metrics_dir is not None:
        os.environ[METRICS_DIR_ENV] = str(metrics_dir)
    try:
        uvicorn.run(
            "powermeter.app:app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level=log_level,
            access_log=False,
            # per-IP limits key on the client address: proxy headers count only from proxies named here
            proxy_headers=bool(forwarded_allow_ips),
            forwarded_allow_ips=forwarded_allow_ips or "",
        )
    finally:
        if temporary and metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}" if ":" in creds else url
    return url


def base_url(host: str, port: int) -> str:
    """The URL a client on this machine uses to reach ``--host``/``--port`` (a wildcard bind is
    reached through loopback; an IPv6 literal goes in brackets)."""
    h = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)  # noqa: S104 - a mapping
    if ":" in h and not h.startswith("["):
        h = f"[{h}]"
    return f"http://{h}:{port}"


def _bootstrap(settings: Settings, db: Database, url: str = "http://127.0.0.1:8000") -> None:
    """On an empty database: create a local admin login and an API key, and print them once."""
    from powermeter.accounts import repository as repo
    from powermeter.infra.clock import SystemClock

    now = SystemClock().now()
    with db.begin() as conn:
        if repo.count_accounts(conn) > 0:
            return
        password = secrets.token_urlsafe(12)
        email = "admin@localhost"
        accounts = _accounts(settings)
        acct = accounts.create_account(conn, email, now, password=password, is_admin=True)
        new = accounts.create_key(conn, acct, "first key", now)
    # Plain lines, never wrapped (soft_wrap) nor boxed: a key or command broken by a panel border
    # or the terminal width cannot be pasted.
    out.rule("powermeter: first start", style="green")
    out.print(f"Dashboard login: [bold]{email}[/bold] / [bold]{password}[/bold]", soft_wrap=True, highlight=False)
    out.print(f"API key (shown once): [bold]{new.key}[/bold]", soft_wrap=True, highlight=False)
    out.print("Try it:", highlight=False)
    out.print(
        f"curl -H 'Authorization: Bearer {new.key}' {url}/v1/api-keys/stats",
        markup=False,
        highlight=False,
        soft_wrap=True,
        crop=False,
    )
    out.rule(style="green")


@accounts_app.command("create")
def accounts_create(
    email: Annotated[str, typer.Option(help="Login email of the account.")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read a dashboard password from stdin.")
    ] = False,
    plan: Annotated[
        str | None, typer.Option(help="Plan: dev, core or scale (default: POWERMETER_DEFAULT_PLAN).")
    ] = None,
    admin: Annotated[bool, typer.Option(help="Make the account an administrator.")] = False,
) -> None:
    """Create an account (optionally with a dashboard password)."""
    from powermeter.infra.clock import SystemClock
    from powermeter.infra.errors import ApiError

    password = sys.stdin.readline().rstrip("\n") if password_stdin else None
    settings, db = _db_and_settings()
    try:
        with db.begin() as conn:
            acct = _accounts(settings).create_account(
                conn, email, SystemClock().now(), password=password, plan=plan, is_admin=admin
            )
    except ApiError as e:
        _fail(e.detail)
    out.print(acct)


@keys_app.command("create")
def keys_create(
    email: Annotated[str, typer.Option(help="Account email (see --create-account).")],
    name: Annotated[str, typer.Option(help="A name for the key, e.g. 'CI runner'.")],
    scope: Annotated[
        list[str] | None,
        typer.Option("--scope", help="Scope to grant (repeatable). Default: all scopes, keys:manage included."),
    ] = None,
    plan: Annotated[str | None, typer.Option(help="Plan for a new account (dev, core, scale).")] = None,
    create_account: Annotated[
        bool,
        typer.Option("--create-account", help="Create the account when no account has this email (else: an error)."),
    ] = False,
) -> None:
    """Create an API key and print it alone on stdout (it is shown only this once)."""
    from powermeter.accounts import repository as repo
    from powermeter.accounts import service
    from powermeter.infra.clock import SystemClock
    from powermeter.infra.errors import ApiError

    settings, db = _db_and_settings()
    now = SystemClock().now()
    try:
        service.parse_scopes(scope)  # a bad scope is named before anything else
        with db.begin() as conn:
            row = repo.get_account_by_email(conn, service.normalise_email(email))
            if row is None and not create_account:
                _fail(
                    f"no account with email {email}; check the spelling, or pass --create-account "
                    "(or run 'powermeter accounts create' first)"
                )
            if row is None:
                acct = _accounts(settings).create_account(conn, email, now, plan=plan)
            else:
                acct = row.id
                if plan:
                    service.set_plan(conn, settings, acct, plan)
            new = _accounts(settings).create_key(conn, acct, name, now, scope)
    except ApiError as e:
        _fail(e.detail)
    sys.stdout.write(new.key + "\n")
    sys.stdout.flush()
    err.print(f"created {new.key_id} ({new.masked_key}) with scopes: {' '.join(new.scopes)}")


@keys_app.command("list")
def keys_list(
    email: Annotated[str, typer.Option(help="Account email.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines instead of a table.")] = False,
) -> None:
    """List an account's keys (masked; the full key is never stored)."""
    import json

    from powermeter.accounts import repository as repo
    from powermeter.accounts import service
    from powermeter.infra.errors import ApiError
    from powermeter.infra.security import mask_key

    _settings, db = _db_and_settings()
    try:
        with db.begin() as conn:
            acct = service.resolve_account(conn, email)
            rows = repo.list_keys(conn, acct.id)
    except ApiError as e:
        _fail(e.detail)
    if as_json:
        for r in rows:
            sys.stdout.write(
                json.dumps(
                    {
                        "id": r.id,
                        "name": r.name,
                        "masked_key": mask_key(r.last4),
                        "scopes": r.scopes.split(),
                        "created_at": r.created_at.isoformat(),
                        "last_used_at": r.last_used_at.isoformat() if r.last_used_at else None,
                        "revoked": r.revoked_at is not None,
                    }
                )
                + "\n"
            )
        return
    from rich.text import Text

    from powermeter.infra.validation import escape_control

    table = Table("id", "name", "key", "scopes", "created", "last used", "status")
    for r in rows:
        table.add_row(  # stored text is shown as text: control characters escaped, no Rich markup
            Text(escape_control(r.id)),
            Text(escape_control(r.name)),
            mask_key(r.last4),
            Text(r.scopes),
            r.created_at.strftime("%Y-%m-%d %H:%M"),
            r.last_used_at.strftime("%Y-%m-%d %H:%M") if r.last_used_at else "never",
            "revoked" if r.revoked_at else "active",
        )
    Console(width=max(160, out.width)).print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="Key id (key_…), as shown by 'keys list'.")]) -> None:
    """Revoke a key: it stops working at once."""
    from powermeter.infra.clock import SystemClock
    from powermeter.infra.errors import ApiError

    settings, db = _db_and_settings()
    try:
        with db.begin() as conn:
            _accounts(settings).revoke_key(conn, key_id, SystemClock().now())
    except ApiError as e:
        _fail(e.detail)
    err.print(f"revoked {key_id}")


def _register_capability_commands() -> None:
    import importlib

    for cap in ("jobs", "audit", "cost", "proxy", "reports", "inference", "web", "gateway", "tracking", "imports"):
        try:
            mod = importlib.import_module(f"powermeter.{cap}.commands")
        except ModuleNotFoundError as e:
            if e.name != f"powermeter.{cap}.commands":
                raise
            continue
        register = getattr(mod, "register", None)
        if register is not None:
            register(app)


_register_capability_commands()


def main() -> None:
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    app()
