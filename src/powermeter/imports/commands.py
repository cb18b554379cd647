"""``powermeter import slurm FILE|-`` and ``powermeter import csv FILE|-``."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, tzinfo
from typing import Annotated, Any, TextIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import typer

import_app = typer.Typer(
    help="Import finished jobs from a scheduler and report them (POST /v1/batch).", no_args_is_help=True
)

Url = Annotated[
    str | None, typer.Option("--url", help="Server URL (default $POWERMETER_URL, else http://127.0.0.1:8000).")
]
Key = Annotated[str | None, typer.Option("--key", help="API key (default $POWERMETER_API_KEY).")]
GeoIso = Annotated[
    str | None,
    typer.Option(
        "--geo-iso", help="Where the jobs ran (default $POWERMETER_GEO_ISO, else WORLD); see GET /v1/locations."
    ),
]
Chunk = Annotated[int, typer.Option(min=1, max=10_000, help="Jobs per /v1/batch request.")]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Parse and summarise; send nothing.")]


@contextmanager
def _open(path: str) -> Iterator[TextIO]:
    if path == "-":
        yield sys.stdin
        return
    try:
        fh = open(path, encoding="utf-8", newline="")  # noqa: SIM115 - closed below
    except OSError as exc:
        print(f"error: cannot read {path}: {exc.strerror or exc}", file=sys.stderr)
        raise typer.Exit(2) from None
    try:
        yield fh
    finally:
        fh.close()


def _send(jobs: list[dict[str, Any]], labels: list[str], url: str | None, key: str | None, chunk: int) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from powermeter.imports.send import ImportStopped, send_jobs
    from powermeter.tracking.runner import ReportSettings

    settings = ReportSettings(url, key)
    columns = (TextColumn("importing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    tty = sys.stderr.isatty()
    done = [0]

    def lines(n: int) -> None:  # no terminal (a log file, CI): one line per chunk instead of a bar
        done[0] += n
        print(f"importing: {done[0]}/{len(jobs)} jobs sent", file=sys.stderr)

    try:
        with Progress(*columns, transient=False, disable=not tty) as bar:
            task = bar.add_task("import", total=len(jobs))
            res = send_jobs(
                jobs,
                settings.base_url,
                settings.key,
                chunk_size=chunk,
                labels=labels,
                progress=(lambda n: bar.advance(task, n)) if tty else lines,
            )
    except ImportStopped as exc:
        print(
            f"error: import stopped: {exc} (jobs sent so far are stored; re-running the import is safe)",
            file=sys.stderr,
        )
        return 1
    print(
        f"stored {res.stored} new job(s), {res.kwh:.6g} kWh, {res.co2_grams:.6g} g CO2e; "
        f"{res.already} already stored; {len(res.rejected)} refused",
        file=sys.stderr,
    )
    for line in res.rejected[:20]:
        print(f"  refused: {line}", file=sys.stderr)
    if len(res.rejected) > 20:
        print(f"  … and {len(res.rejected) - 20} more", file=sys.stderr)
    return 1 if res.rejected else 0


def _bad_rows(rows: list[str]) -> None:
    for line in rows[:20]:
        print(f"  skipped: {line}", file=sys.stderr)
    if len(rows) > 20:
        print(f"  … and {len(rows) - 20} more", file=sys.stderr)


@import_app.command("slurm")
def import_slurm(
    file: Annotated[str, typer.Argument(help="sacct -P output, or - for stdin.")],
    prefix: Annotated[str, typer.Option(help="Job id prefix: job 123 becomes <prefix>123.")] = "slurm-",
    geo_iso: GeoIso = None,
    pue: Annotated[float | None, typer.Option(min=1.0, max=3.0, help="The cluster's PUE.")] = None,
    cpu_model: Annotated[
        list[str] | None,
        typer.Option(
            "--cpu-model", help="PARTITION_OR_NODE_PREFIX=MODEL (repeatable), e.g. --cpu-model 'cpu=Xeon Gold 6248'."
        ),
    ] = None,
    gpu_model: Annotated[
        list[str] | None,
        typer.Option("--gpu-model", help="PARTITION_OR_NODE_PREFIX=MODEL (repeatable), e.g. --gpu-model gpu=A100."),
    ] = None,
    url: Url = None,
    key: Key = None,
    chunk: Chunk = 10_000,
    dry_run: DryRun = False,
    timezone: Annotated[
        str | None,
        typer.Option(
            "--timezone",
            help="IANA zone sacct printed Start in (the cluster's local time), e.g. Europe/Berlin; "
            "default: this machine's zone. Start is sent as started_at so reports book each job when it ran.",
        ),
    ] = None,
) -> None:
    """Report the finished jobs of a `sacct -P` export (steps folded into their job).

    Export with:  sacct -a -P --noconvert -S 2026-11-01 -E 2026-12-01
    --format=JobID,JobName,Partition,Elapsed,AllocCPUS,TotalCPU,ReqMem,MaxRSS,AllocTRES,NNodes,NodeList,State,Start,End
    """
    from powermeter.imports.slurm import SacctFormatError, parse_mapping, parse_sacct, to_report
    from powermeter.tracking.runner import ReportSettings

    try:
        cpu_map = parse_mapping(cpu_model or [], "--cpu-model")
        gpu_map = parse_mapping(gpu_model or [], "--gpu-model")
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise typer.Exit(2) from None
    with _open(file) as fh:
        try:
            parsed = parse_sacct(fh)
        except SacctFormatError as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise typer.Exit(2) from None
    geo = ReportSettings(geo_iso=geo_iso).geo
    try:
        zone = _zone(timezone)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise typer.Exit(2) from None
    jobs = [
        to_report(j, prefix=prefix, geo_iso=geo, pue=pue, cpu_models=cpu_map, gpu_models=gpu_map, timezone=zone)
        for j in parsed.jobs
    ]
    print(
        f"{parsed.rows} row(s), {len(jobs)} finished job(s) to report; skipped: "
        f"{parsed.skipped_not_finished} running/pending, {parsed.skipped_never_ran} never ran (Elapsed 0), "
        f"{parsed.skipped_unknown_state} unknown state, {len(parsed.bad_rows)} unreadable row(s)",
        file=sys.stderr,
    )
    _bad_rows(parsed.bad_rows)
    if dry_run or not jobs:
        return
    raise typer.Exit(_send(jobs, [f"job {j.job_id}" for j in parsed.jobs], url, key, chunk))


def _zone(name: str | None) -> tzinfo:
    """The IANA zone ``name``, else this machine's local zone."""
    if name is None:
        local = datetime.now().astimezone().tzinfo
        return local if local is not None else UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"--timezone: unknown IANA time zone {name!r} (e.g. Europe/Berlin, America/Chicago, UTC)"
        ) from None


@import_app.command("csv")
def import_csv(
    file: Annotated[str, typer.Argument(help="CSV file, or - for stdin.")],
    geo_iso: Annotated[str | None, typer.Option("--geo-iso", help="geo_iso of rows that have none.")] = None,
    url: Url = None,
    key: Key = None,
    chunk: Chunk = 10_000,
    dry_run: DryRun = False,
) -> None:
    """Report jobs from a CSV whose columns are the /v1/report fields.

    Columns: job_id, duration_minutes, geo_iso (required; geo_iso may come from --geo-iso), cpu_cores,
    memory_gb, gpu_cores, cpu_model, gpu_model, cpu_utilization, gpu_utilization, pue, provider, region,
    measured_cpu_kwh, measured_memory_kwh, measured_gpu_kwh, started_at (recorded). Empty cell = not given.
    """
    from powermeter.imports.csv_import import CsvFormatError, parse_csv

    with _open(file) as fh:
        try:
            parsed = parse_csv(fh, geo_iso=geo_iso)
        except CsvFormatError as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise typer.Exit(2) from None
    print(f"{len(parsed.jobs)} job(s) to report, {len(parsed.bad_rows)} unreadable row(s)", file=sys.stderr)
    _bad_rows(parsed.bad_rows)
    if dry_run or not parsed.jobs:
        raise typer.Exit(1 if parsed.bad_rows else 0)
    code = _send(parsed.jobs, [f"line {n}" for n in parsed.lines], url, key, chunk)
    raise typer.Exit(code or (1 if parsed.bad_rows else 0))


def register(app: Any) -> None:
    app.add_typer(import_app, name="import")
