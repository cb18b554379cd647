"""``powermeter rates …``: import OpenEI URDB tariffs, list the rate regions and imported tariffs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

rates_app = typer.Typer(help="Electricity rates: import OpenEI URDB tariffs, list regions.", no_args_is_help=True)


@rates_app.command("import-urdb")
def import_urdb_cmd(
    file: Annotated[Path, typer.Argument(help='An OpenEI URDB JSON export ({"items": [...]}, a list, or one rate).')],
    region: Annotated[
        str | None,
        typer.Option("--region", help="Region code for every rate (e.g. US-CA). Default: the rate's state."),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Check and show, store nothing.")] = False,
) -> None:
    """Add tariffs from a URDB export. Rates the engine cannot price (kWh/kW tiers, differing tier ladders,
    no energy charges) are refused and listed, not imported approximately. Exit 1 if nothing was imported."""
    from datetime import UTC, datetime

    from rich.console import Console

    from powermeter.cost import repository
    from powermeter.data.rates import import_urdb, load_rates
    from powermeter.infra.bootstrap import open_database

    console = Console()
    try:
        doc = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        console.print(f"[red]cannot read {file}: {exc}[/red]")
        raise typer.Exit(2) from None
    tariffs, errors = import_urdb(doc, load_rates(), region=region)
    for err in errors:
        console.print(f"[yellow]refused[/yellow] {err}")
    if not tariffs:
        console.print("[red]no tariff imported[/red]")
        raise typer.Exit(1)
    if dry_run:
        for t in tariffs:
            console.print(f"would import {t['id']} ({t['region']}, {t['utility']} {t['plan']})")
        return
    _, db = open_database()
    now = datetime.now(UTC)
    try:
        with db.begin() as conn:
            for t in tariffs:
                replaced = repository.upsert_tariff(conn, t, str(file), now)
                verb = "replaced" if replaced else "imported"
                console.print(f"{verb} [bold]{t['id']}[/bold] → {t['region']} ({t['utility']} {t['plan']})")
                for note in t.get("notes", []):
                    console.print(f"  note: {note}")
    finally:
        db.dispose()
    console.print(
        f"{len(tariffs)} tariff(s) stored; the calculator serves them within 60 s "
        "(GET /calc/api/rates/<region>, or tariffId in requests)."
    )


@rates_app.command("list")
def list_cmd(
    imported: Annotated[bool, typer.Option("--imported", help="Only tariffs imported from URDB.")] = False,
) -> None:
    """List rate regions (code, currency, flat price, default tariff) or the imported tariffs."""
    from rich.console import Console
    from rich.table import Table

    from powermeter.data.rates import load_rates

    console = Console()
    if imported:
        from powermeter.cost import repository
        from powermeter.infra.bootstrap import open_database

        _, db = open_database()
        try:
            with db.connect() as conn:
                rows = repository.list_imported(conn)
        finally:
            db.dispose()
        table = Table("id", "region", "source file", "imported at")
        for r in rows:
            table.add_row(r["id"], r["region"], r["source_file"], str(r["imported_at"]))
        console.print(table)
        return
    rates = load_rates()
    table = Table("region", "name", "currency", "flat rate", "year", "default tariff", title=f"rates {rates.version}")
    for reg in rates.regions.values():
        flat = "" if reg.flat_rate is None else str(reg.flat_rate)
        table.add_row(reg.code, reg.name, reg.currency, flat, str(reg.year), reg.default_tariff or "")
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add this capability's commands to the ``powermeter`` CLI."""
    app.add_typer(rates_app, name="rates")
    from powermeter.cost.bill_commands import bill_cmd

    app.command("bill")(bill_cmd)
