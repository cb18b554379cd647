"""``powermeter track [options] -- CMD [ARGS…]`` and ``powermeter track flush``."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from powermeter.tracking.measure import DEFAULT_INTERVAL_S


class _TrackGroup(TyperGroup):
    """``track`` runs a command; ``track flush`` is its only subcommand. Anything that is not a
    subcommand name is the command to run (to run a program called ``flush``, give its path)."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        rest = super().parse_args(ctx, args)
        protected: list[str] = list(getattr(ctx, "_protected_args", []))
        if protected and protected[0] not in self.commands:
            ctx.args = [*protected, *rest]
            ctx._protected_args = []
        out: list[str] = ctx.args
        return out


track_app = typer.Typer(
    cls=_TrackGroup,
    invoke_without_command=True,
    context_settings={"allow_interspersed_args": False, "ignore_unknown_options": True},
    help="Run a command, measure it (CPU time, peak memory, RAPL/NVML energy) and report it.\n\n"
    "  powermeter track --cpu-cores 4 --geo-iso DE -- python train.py\n\n"
    "Server and key: --url/--key or POWERMETER_URL/POWERMETER_API_KEY. If the server cannot be reached "
    "(or answers 5xx/429) the report is spooled; send it later with 'powermeter track flush'. The exit "
    "status is the command's; reporting never makes it fail.",
)

Url = Annotated[
    str | None, typer.Option("--url", help="Server URL (default $POWERMETER_URL, else http://127.0.0.1:8000).")
]
Key = Annotated[str | None, typer.Option("--key", help="API key (default $POWERMETER_API_KEY).")]
SpoolOpt = Annotated[
    str | None,
    typer.Option("--spool", help="Spool directory (default $POWERMETER_SPOOL_DIR, else the user state dir)."),
]


@track_app.callback()
def track(
    ctx: typer.Context,
    job_id: Annotated[str | None, typer.Option("--job-id", help="Job id (default: generated and printed).")] = None,
    interval: Annotated[float, typer.Option(min=0.05, max=3600, help="Seconds between samples.")] = DEFAULT_INTERVAL_S,
    cpu_cores: Annotated[
        float | None, typer.Option(min=0.001, help="Cores allocated (default: the CPUs this process may run on).")
    ] = None,
    memory_gb: Annotated[
        float | None,
        typer.Option(min=0, help="Memory allocated, GB (default: the measured peak RSS of the process tree)."),
    ] = None,
    geo_iso: Annotated[
        str | None,
        typer.Option("--geo-iso", help="Location (default $POWERMETER_GEO_ISO, else WORLD); see GET /v1/locations."),
    ] = None,
    cpu_model: Annotated[str | None, typer.Option(help="CPU model, for the modelled figure.")] = None,
    gpu_model: Annotated[str | None, typer.Option(help="GPU model, for the modelled figure.")] = None,
    pue: Annotated[float | None, typer.Option(min=1.0, max=3.0, help="Data-centre PUE.")] = None,
    url: Url = None,
    key: Key = None,
    spool: SpoolOpt = None,
    powercap_dir: Annotated[
        str | None,
        typer.Option(
            "--powercap-dir",
            help="Powercap sysfs root (default $POWERMETER_POWERCAP_DIR, else /sys/class/powercap).",
        ),
    ] = None,
    gpu: Annotated[bool, typer.Option("--gpu/--no-gpu", help="Read NVIDIA GPUs through NVML when present.")] = True,
    timeout: Annotated[float, typer.Option(min=0.1, help="HTTP timeout, seconds.")] = 10.0,
) -> None:
    if ctx.invoked_subcommand is not None:
        return
    cmd = list(ctx.args)
    if not cmd:
        typer.echo(ctx.get_help(), err=True)
        raise typer.Exit(2)
    from powermeter.tracking.runner import ReportSettings, deliver, describe, generated_job_id, run_command

    jid = job_id or generated_job_id()
    if job_id is None:
        print(f"powermeter: job id {jid}", file=sys.stderr)
    code, measured = run_command(cmd, interval=interval, cpu_cores=cpu_cores, powercap_dir=powercap_dir, use_gpu=gpu)
    if measured is not None:
        try:
            settings = ReportSettings(
                url, key, spool, geo_iso, timeout, {"cpu_model": cpu_model, "gpu_model": gpu_model, "pue": pue}
            )
            for note in measured.notes:
                print(f"powermeter: {note}", file=sys.stderr)
            body = measured.body(jid, settings.geo, memory_gb=memory_gb, extra=settings.extra)
            print(describe(jid, deliver(body, settings)), file=sys.stderr)
        except Exception as exc:  # reporting never changes the command's exit status
            print(f"powermeter: warning: could not report job {jid}: {type(exc).__name__}: {exc}", file=sys.stderr)
    raise typer.Exit(code)


@track_app.command("flush")
def flush_cmd(
    url: Url = None,
    key: Key = None,
    spool: SpoolOpt = None,
    timeout: Annotated[float, typer.Option(min=0.1, help="HTTP timeout, seconds.")] = 30.0,
) -> None:
    """Send the spooled reports (each with its Idempotency-Key: flushing twice never counts a job twice)."""
    from powermeter.tracking.runner import ReportSettings
    from powermeter.tracking.spool import Spool, flush

    settings = ReportSettings(url, key, spool, timeout=timeout)
    sp = Spool(settings.spool_dir)
    res = flush(sp, settings.base_url, settings.key, timeout=timeout)
    print(
        f"powermeter: flushed {sp.dir}: {res.sent} sent, {res.stored} already stored, "
        f"{res.rejected} rejected (moved to {sp.dir / 'rejected'}), {res.left} left",
        file=sys.stderr,
    )
    if res.last_error:
        print(f"powermeter: last error: {res.last_error}", file=sys.stderr)
    if res.left or res.rejected:
        raise typer.Exit(1)


def register(app: Any) -> None:
    app.add_typer(track_app, name="track")
