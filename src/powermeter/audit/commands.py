"""``powermeter audit …``: verify the stored chains, export an account's log, verify an export offline."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from powermeter.infra.db import Database
    from powermeter.methodology.audit_chain import ChainReport
    from powermeter.settings import Settings

audit_app = typer.Typer(help="The tamper-evident audit log: verify, export, checkpoint.", no_args_is_help=True)


def _db() -> tuple[Settings, Database]:
    from powermeter.infra.bootstrap import open_database

    return open_database()


def _describe(report: ChainReport, label: str) -> str:
    if report.ok:
        anchor = (
            f", signed through seq {report.anchored_through_seq}" if report.anchored_through_seq else ", no checkpoint"
        )
        return f"OK      {label}: {report.entries_checked} entries{anchor}"
    br = report.first_break
    if br is None:  # pragma: no cover - not ok means there is a break
        return f"BROKEN  {label}"
    where = f"entry {br.entry_id} (seq {br.seq})" if br.entry_id else f"seq {br.seq}"
    return f"BROKEN  {label}: first bad {where} [{br.kind.value}]: {br.message}"


@audit_app.command("verify")
def verify(
    email: Annotated[str | None, typer.Option(help="Only this account (default: every account).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON report per account.")] = False,
) -> None:
    """Recompute every account's chain from the database and check it against its signed checkpoints.

    Exits 1 naming the first bad entry of each broken chain; 0 when every chain checks out.
    """
    from powermeter.accounts.service import normalise_email
    from powermeter.audit import repository as repo
    from powermeter.audit import service
    from powermeter.infra.security import Signer

    settings, db = _db()
    keys = [service.PublicKey.of(Signer(settings.resolved_secret()))]
    broken = 0
    with db.begin() as conn:
        targets = repo.account_ids_with_logs(conn, normalise_email(email) if email else None)
        if email and not targets:
            typer.echo(f"error: no account with email {email}", err=True)
            raise typer.Exit(2)
        for account_id, account_email in targets:
            report = service.verify_account(conn, account_id, keys)
            broken += 0 if report.ok else 1
            if as_json:
                typer.echo(json.dumps({"email": account_email, **report.as_json()}))
            else:
                typer.echo(_describe(report, f"{account_email} ({account_id})"))
    db.dispose()
    if broken:
        typer.echo(f"{broken} broken chain(s)", err=True)
        raise typer.Exit(1)


@audit_app.command("export")
def export(
    email: Annotated[str, typer.Option(help="Account whose log to export.")],
    file: Annotated[Path, typer.Argument(help="Output file (JSON lines); '-' for stdout.")],
    checkpoint: Annotated[
        bool, typer.Option(help="Sign a fresh checkpoint first, so the whole export is covered.")
    ] = True,
) -> None:
    """Write the account's log and its checkpoints as JSON lines that `audit verify-file` checks offline."""
    from powermeter.accounts.service import resolve_account
    from powermeter.audit import service
    from powermeter.infra.clock import SystemClock
    from powermeter.infra.errors import ApiError
    from powermeter.infra.security import Signer

    settings, db = _db()
    signer = Signer(settings.resolved_secret())
    now = SystemClock().now()
    try:
        with db.begin() as conn:
            account = resolve_account(conn, email)
            if checkpoint:
                service.checkpoint_if_moved(conn, signer, account.id, now)
        lines = 0
        with db.begin() as conn:
            sink = sys.stdout if str(file) == "-" else file.open("w", encoding="utf-8")
            try:
                for line in service.export_lines(conn, account.id, account.email, [service.PublicKey.of(signer)], now):
                    sink.write(line + "\n")
                    lines += 1
            finally:
                if sink is not sys.stdout:
                    sink.close()
    except ApiError as e:
        typer.echo(f"error: {e.detail}", err=True)
        raise typer.Exit(2) from None
    finally:
        db.dispose()
    typer.echo(f"wrote {lines} lines for {account.email} to {file}", err=True)


@audit_app.command("verify-file")
def verify_file(
    file: Annotated[Path, typer.Argument(help="A file written by `powermeter audit export`.")],
    public_key: Annotated[
        Path | None,
        typer.Option(help="PEM file of the server's Ed25519 public key (default: trust the key in the file)."),
    ] = None,
    key_id: Annotated[str | None, typer.Option(help="Key id of --public-key (default: the file's key id).")] = None,
) -> None:
    """Verify an exported log offline: every hash, every link and every checkpoint signature.

    Needs neither the server nor its database. Exits 1 naming the first bad entry.
    """
    from powermeter.audit import service

    try:
        with file.open(encoding="utf-8") as fh:
            parsed = service.parse_export(fh)
    except (OSError, ValueError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    keys = None
    if public_key is not None:
        kid = key_id or (parsed.public_keys[0].key_id if parsed.public_keys else "")
        try:
            keys = [service.PublicKey.from_pem(public_key.read_bytes(), kid)]
        except (OSError, ValueError) as e:
            typer.echo(f"error: {public_key}: {e}", err=True)
            raise typer.Exit(2) from None
    else:
        typer.echo(
            "note: checking checkpoint signatures with the public key inside the file; "
            "pass --public-key to use one you obtained independently",
            err=True,
        )
    report = service.verify_export(parsed, keys)
    typer.echo(_describe(report, f"{parsed.header.get('email', '')} ({parsed.account_id})"))
    if report.ok and not report.checkpoints_checked:
        typer.echo("warning: the file has no checkpoint; its entries are consistent but not signed", err=True)
    if not report.ok:
        raise typer.Exit(1)


@audit_app.command("checkpoint")
def checkpoint_cmd(
    email: Annotated[str | None, typer.Option(help="Only this account (default: every account that moved).")] = None,
) -> None:
    """Sign checkpoints now (the server also does this every POWERMETER_CHECKPOINT_INTERVAL_S)."""
    from powermeter.accounts.service import resolve_account
    from powermeter.audit import service
    from powermeter.infra.clock import SystemClock
    from powermeter.infra.errors import ApiError
    from powermeter.infra.security import Signer

    settings, db = _db()
    signer = Signer(settings.resolved_secret())
    now = SystemClock().now()
    try:
        if email:
            with db.begin() as conn:
                cp = service.create_checkpoint(conn, signer, resolve_account(conn, email).id, now)
            typer.echo(json.dumps(cp.as_json()))
        else:
            typer.echo(f"signed {service.checkpoint_all(db, signer, now)} checkpoint(s)")
    except ApiError as e:
        typer.echo(f"error: {e.detail}", err=True)
        raise typer.Exit(2) from None
    finally:
        db.dispose()


def register(app: typer.Typer) -> None:
    """Add ``powermeter audit …`` to the CLI."""
    app.add_typer(audit_app, name="audit")
