"""``powermeter reports …``: export an account's emissions report, verify a report file offline."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

reports_app = typer.Typer(
    help="Emissions reports (GHG Protocol / ESRS E1): export, verify, retention.", no_args_is_help=True
)

#: Accounts with at least this many records get a progress bar while their records are listed.
PROGRESS_THRESHOLD = 20_000


class _Bar:
    """A Rich progress bar on stderr, started once the record count is known to be large."""

    def __init__(self) -> None:
        self.progress: Any = None
        self.task: Any = None

    def __call__(self, done: int, total: int) -> None:
        if self.progress is None:
            if total < PROGRESS_THRESHOLD:
                return
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.progress = Progress(
                TextColumn("listing and hashing records"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self.progress.start()
            self.task = self.progress.add_task("records", total=total)
        self.progress.update(self.task, completed=done)

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()


@reports_app.command("emissions")
def emissions(
    email: Annotated[str, typer.Option(help="Account to report on.")],
    start: Annotated[
        str | None, typer.Option(help="ISO date (inclusive) or date-time, UTC; default 1 January.")
    ] = None,
    end: Annotated[
        str | None, typer.Option(help="ISO date (inclusive) or date-time (exclusive); default today.")
    ] = None,
    group_by: Annotated[
        str, typer.Option("--group-by", help="month, location, provider, model, key, site or application.")
    ] = "month",
    fmt: Annotated[str, typer.Option("--format", help="json, csv, html or esrs.")] = "json",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here (default: stdout).")] = None,
) -> None:
    """Build, sign and write an account's emissions report; records a DOWNLOAD audit entry."""
    from powermeter.accounts import repository as accounts_repo
    from powermeter.accounts.service import normalise_email
    from powermeter.infra.bootstrap import open_database
    from powermeter.infra.clock import SystemClock
    from powermeter.infra.errors import ApiError
    from powermeter.infra.security import Signer
    from powermeter.reports import service

    if fmt not in service.FORMATS:
        typer.echo(f"error: --format must be one of {', '.join(service.FORMATS)}", err=True)
        raise typer.Exit(2)
    if group_by not in service.GROUP_BY:
        typer.echo(f"error: --group-by must be one of {', '.join(service.GROUP_BY)}", err=True)
        raise typer.Exit(2)
    settings, db = open_database()
    signer = Signer(settings.resolved_secret())
    now = SystemClock().now()
    bar = _Bar()
    try:
        with db.begin() as conn:
            row = accounts_repo.get_account_by_email(conn, normalise_email(email))
            if row is None:
                typer.echo(f"error: no account with email {email}", err=True)
                raise typer.Exit(2)
            period = service.parse_period(start, end, now)
            with service.snapshot(db, conn) as rconn:
                doc = service.build_document(
                    rconn,
                    signer,
                    account_id=row.id,
                    email=row.email,
                    period=period,
                    group_by=group_by,
                    view="esrs" if fmt == "esrs" else "report",
                    now=now,
                    db=db,
                    progress=bar,
                )
            bar.stop()
            body, _media, _name = service.render_document(doc, fmt)
            service.record_download(conn, doc, fmt, now, actor_key_id=None, actor_masked_key=None, via="cli")
            # written inside the transaction: a failed write rolls the DOWNLOAD entry back
            if output is None:
                sys.stdout.buffer.write(body)
                sys.stdout.buffer.flush()
            else:
                output.write_bytes(body)
    except ApiError as exc:
        bar.stop()
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(2) from None
    finally:
        db.dispose()
    if output is not None:
        totals = doc["totals"]
        root = doc["coverage"]["merkle_root_sha256"]
        signed = f", Merkle root {root[:16]}…" if root else " (CSV: not signed; verify the JSON or HTML form)"
        typer.echo(
            f"{output}: {doc['report_id']}, {totals['records']} records, {totals['energy_kwh']:.6g} kWh, "
            f"{totals['co2e_kg']:.6g} kg CO2e{signed}",
            err=True,
        )


@reports_app.command("verify")
def verify(
    file: Annotated[Path, typer.Argument(help="A report saved as JSON (also the API's {status, data}), ESRS or HTML.")],
    public_key: Annotated[
        Path | None,
        typer.Option("--public-key", help="PEM of the server's key (GET /v1/receipts/public-key) to trust."),
    ] = None,
) -> None:
    """Check a report offline: its covered records hash to the signed Merkle root, its figures to the
    signed digest, and the Ed25519 signature verifies. Exits 1 on any failure."""
    from powermeter.reports import service

    try:
        doc = service.load_report_file(file)
    except (OSError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    pem = public_key.read_text() if public_key is not None else None
    result = service.verify_document(doc, pem)
    for c in result.checks:
        typer.echo(f"{'ok  ' if c.ok else 'FAIL'}  {c.name}: {c.detail}")
    if result.ok:
        typer.echo(f"VALID  report {result.report_id}: {result.records} records covered")
        return
    typer.echo(f"INVALID  report {result.report_id}", err=True)
    raise typer.Exit(1)


@reports_app.command("anchor")
def anchor(
    email: Annotated[str, typer.Option(help="The account whose records to anchor.")],
) -> None:
    """Bring records stored before signed anchoring under the completeness proof: anchor every receipt
    tree that has no TREE_SIGNED audit entry, and sign and anchor every unsigned AI inference record.
    This attests the records as they are now (the audit entries carry today's time), not as they were
    when they arrived."""
    from powermeter.accounts import repository as accounts_repo
    from powermeter.accounts.service import normalise_email
    from powermeter.infra.bootstrap import open_database
    from powermeter.infra.clock import SystemClock
    from powermeter.infra.security import Signer
    from powermeter.reports import legacy

    settings, db = open_database()
    signer = Signer(settings.resolved_secret())
    now = SystemClock().now()
    try:
        with db.begin() as conn:
            row = accounts_repo.get_account_by_email(conn, normalise_email(email))
            if row is None:
                typer.echo(f"error: no account with email {email}", err=True)
                raise typer.Exit(2)
            trees, records = legacy.anchor_legacy(conn, signer, row.id, now)
    finally:
        db.dispose()
    typer.echo(f"anchored {trees} receipt trees and {records} inference records of {email}")


@reports_app.command("retention")
def retention_run(
    months: Annotated[
        int | None,
        typer.Option(help="Keep this many whole months (default: POWERMETER_RETENTION_MONTHS).", min=1, max=1200),
    ] = None,
    include_closed_periods: Annotated[
        bool | None,
        typer.Option(
            "--include-closed-periods/--keep-closed-periods",
            help="Also delete records of closed reporting years (default: "
            "POWERMETER_RETENTION_INCLUDE_CLOSED_PERIODS, else keep them).",
        ),
    ] = None,
) -> None:
    """Delete receipts and inference records older than the retention period now; prints what went (JSON)."""
    import orjson

    from powermeter.infra.bootstrap import open_database
    from powermeter.infra.clock import SystemClock
    from powermeter.reports import retention

    settings, db = open_database()
    n = months if months is not None else settings.retention_months
    if n is None:
        typer.echo("error: give --months or set POWERMETER_RETENTION_MONTHS", err=True)
        raise typer.Exit(2)
    closed = settings.retention_include_closed_periods if include_closed_periods is None else include_closed_periods
    try:
        res = retention.apply(db, SystemClock().now(), retention.Policy(n, closed, settings.retention_batch_rows))
    finally:
        db.dispose()
    sys.stdout.write(orjson.dumps(res.as_json(), option=orjson.OPT_INDENT_2).decode() + "\n")


def register(app: typer.Typer) -> None:
    """Add ``powermeter reports`` to the CLI."""
    app.add_typer(reports_app, name="reports")
