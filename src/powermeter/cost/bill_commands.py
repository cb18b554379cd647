"""``powermeter bill FILE``: bill a meter file (Green Button CSV/ESPI XML, plain CSV or JSON) or compare tariffs."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer


def bill_cmd(
    file: Annotated[
        Path,
        typer.Argument(
            help="Meter readings: Green Button CSV (PG&E/ComEd/PECO, SDG&E, SCE layouts), Green Button ESPI XML, "
            'a \'timestamp,kwh\' CSV, or JSON {"readings": [{"start", "kwh"}, …]}.'
        ),
    ],
    tariff: Annotated[str | None, typer.Option("--tariff", help="Tariff id, e.g. pge-e-tou-c.")] = None,
    compare: Annotated[
        str | None, typer.Option("--compare", help="Rank every tariff of this region instead (e.g. US-CA).")
    ] = None,
    current: Annotated[
        str | None, typer.Option("--current", help="With --compare: your current tariff (savings are against it).")
    ] = None,
    timezone: Annotated[
        str | None, typer.Option("--timezone", help="IANA zone of the file's local times (default: the tariff's).")
    ] = None,
    interval: Annotated[
        int | None, typer.Option("--interval", help="Reading length in minutes (default: inferred).")
    ] = None,
    export_rate: Annotated[
        float | None, typer.Option("--export-rate", help="Credit per exported kWh for negative readings.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the API's JSON answer instead of a table.")] = False,
) -> None:
    """Bill meter readings under a tariff (month by month), or rank a region's tariffs with --compare.

    Same method and answer as POST /calc/api/bill and /calc/api/compare (shipped tariffs). Exit 2 on bad input.
    """
    from rich.console import Console

    from powermeter.cost import bills
    from powermeter.data.rates import load_rates
    from powermeter.infra.errors import ApiError

    err = Console(stderr=True)
    if (tariff is None) == (compare is None):
        err.print("[red]give --tariff ID or --compare REGION (one of them)[/red]")
        raise typer.Exit(2)
    try:
        raw = file.read_bytes()
    except OSError as exc:
        err.print(f"[red]cannot read {file}: {exc.strerror}[/red]")
        raise typer.Exit(2) from None
    if len(raw) > bills.MAX_BODY_BYTES:
        err.print(f"[red]{file} is larger than {bills.MAX_BODY_BYTES:,} bytes[/red]")
        raise typer.Exit(2)
    params: dict[str, Any] = {}
    body: bytes | None = raw
    content_type = "application/xml" if raw.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] == b"<" else "text/csv"
    if file.suffix.lower() == ".json" or raw.lstrip()[:1] in (b"{", b"["):
        try:
            doc = json.loads(raw)
        except ValueError as exc:
            err.print(f"[red]{file} is not valid JSON: {exc}[/red]")
            raise typer.Exit(2) from None
        params = dict(doc) if isinstance(doc, dict) else {"readings": doc}
        body = None
        content_type = "application/json"
    for key, value in (
        ("tariffId", tariff),
        ("regionCode", compare),
        ("currentTariffId", current),
        ("timezone", timezone),
        ("interval_minutes", interval),
        ("export_rate", export_rate),
    ):
        if value is not None:
            params[key] = value
    if compare is not None:
        params.pop("tariffId", None)
        params.pop("rateConfig", None)
    try:
        if compare is not None:
            out = bills.compare(params, body, content_type, load_rates())
        else:
            out = bills.bill(params, body, content_type, load_rates())
    except ApiError as exc:
        err.print(f"[red]error:[/red] {exc.detail}")
        raise typer.Exit(2) from None
    if as_json:
        sys.stdout.write(json.dumps(out, indent=2, ensure_ascii=False) + "\n")
        return
    console = Console()
    if compare is not None:
        _print_compare(console, out)
    else:
        _print_bill(console, out)


def _print_bill(console: Any, out: dict[str, Any]) -> None:
    from rich.table import Table

    cur = out["currency"]
    p = out["period"]
    title = (
        f"{out['tariff']['tariff_id'] or out['tariff']['region_code'] or 'rate'}: {p['start']} → {p['end']} "
        f"({p['days']} days, {p['readings']} readings of {p['interval_minutes']} min, {p['timezone']})"
    )
    table = Table(title=title)
    for col in ("Month", "kWh", f"Energy ({cur})", f"Fixed ({cur})", f"Total ({cur})", "By period (kWh / cost)"):
        table.add_column(col, justify="left" if col.startswith(("Month", "By")) else "right")
    for m in out["months"]:
        periods = ", ".join(f"{n} {v['kwh']:.2f} / {v['cost']:.2f}" for n, v in m["by_period"].items())
        table.add_row(
            m["month"],
            f"{m['kwh']:.2f}",
            f"{m['energy_cost']:.2f}",
            f"{m['fixed_cost']:.2f}",
            f"{m['total']:.2f}",
            periods,
        )
    table.add_row(
        "total",
        f"{out['kwh']:.2f}",
        f"{out['energy_cost']:.2f}",
        f"{out['fixed_cost']:.2f}",
        f"[bold]{out['total']:.2f}[/bold]",
        "",
    )
    console.print(table)
    for w in out["warnings"]:
        console.print(
            f"[yellow]{w['code']}[/yellow]: {w['message']}" + (f" (e.g. {w['examples'][0]})" if w["examples"] else "")
        )


def _print_compare(console: Any, out: dict[str, Any]) -> None:
    from rich.table import Table

    cur = out["currency"]
    cov = out["coverage"]
    table = Table(title=f"{out['regionCode']} tariffs for {cov['start']} → {cov['end']} ({cov['days']} days)")
    cols = ["#", "Tariff", "Name", f"Period ({cur})", f"Per year ({cur})"]
    if out["currentTariffId"]:
        cols.append(f"Saving/yr vs {out['currentTariffId']}")
    for col in cols:
        table.add_column(col, justify="right" if "(" in col or col.startswith(("#", "Saving")) else "left")
    for t in out["tariffs"]:
        row = [str(t["rank"]), t["tariffId"], t["name"] or "", f"{t['total']:.2f}", f"{t['per_year']:.2f}"]
        if "savings_vs" in t:
            row.append(f"{t['savings_vs']['per_year']:.2f}")
        table.add_row(*row)
    console.print(table)
    console.print(f"[dim]{cov['annualization']}[/dim]")
    for n in out["not_priced"]:
        console.print(f"[yellow]not priced[/yellow] {n['tariffId']}: {n['error']}")
    for w in out["warnings"]:
        console.print(f"[yellow]{w['code']}[/yellow]: {w['message']}")
