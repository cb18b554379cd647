"""CLI command of the carbon-aware proxy: ``powermeter proxy``.

Registered on the main CLI by :func:`register`; also runs standalone:
``python -m powermeter.proxy.commands proxy --listen 127.0.0.1:9000 --upstream CAISO=http://…``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from powermeter.methodology.routing import DEFAULT_MARGIN, Policy

PROVIDER_HELP = "Grid data: static (offline, default), csv, gridstatus, watttime, electricitymaps."


def proxy(
    upstream: Annotated[
        list[str],
        typer.Option(
            "--upstream",
            "-u",
            help="REGION=URL, repeatable (e.g. CAISO=http://10.0.0.5:8080, aws:us-west-2=https://…).",
        ),
    ],
    listen: Annotated[str, typer.Option(help="HOST:PORT to listen on.")] = "127.0.0.1:9000",
    provider: Annotated[str | None, typer.Option(help=PROVIDER_HELP + " Default: POWERMETER_GRID_PROVIDER.")] = None,
    csv: Annotated[
        Path | None, typer.Option("--csv", help="CSV series region,timestamp,intensity (provider csv).")
    ] = None,
    source_region: Annotated[
        str | None, typer.Option(help="Where the proxy runs (region or cloud region), for --max-latency-ms.")
    ] = None,
    max_latency_ms: Annotated[
        float | None, typer.Option(help="Exclude upstreams whose modelled RTT from --source-region exceeds this.")
    ] = None,
    carbon_weight: Annotated[float, typer.Option(help="1 = cleanest wins, 0 = nearest wins.")] = 1.0,
    margin: Annotated[float, typer.Option(help="Relative gain needed to move traffic (hysteresis).")] = DEFAULT_MARGIN,
    refresh_seconds: Annotated[float, typer.Option(help="Seconds between routing decisions.")] = 30.0,
    health_seconds: Annotated[float, typer.Option(help="Seconds between upstream health probes.")] = 5.0,
    health_path: Annotated[
        str | None, typer.Option(help="HTTP path to probe (status < 500 = healthy); default: TCP connect.")
    ] = None,
    client: Annotated[
        str, typer.Option(help="Upstream HTTP client: lean (keep-alive HTTP/1.1, fastest) or httpx.")
    ] = "lean",
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "warning",
) -> None:
    """Reverse proxy that sends every request to the cleanest healthy upstream."""
    from powermeter.proxy.app import CarbonProxy, ProxyConfig, parse_upstream
    from powermeter.proxy.asgi import parse_listen, serve
    from powermeter.routing.providers import ProviderConfig, build_provider

    logging.basicConfig(level=log_level.upper(), format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        upstreams = [parse_upstream(u) for u in upstream]
        host, port = parse_listen(listen)
        policy = Policy(carbon_weight=carbon_weight, max_latency_ms=max_latency_ms, margin=margin)
        config = ProviderConfig.from_settings(_settings())
        if provider is not None:
            config = dataclasses.replace(config, kind=provider.lower())
        if csv is not None:
            config = dataclasses.replace(config, csv_path=csv, kind=(provider or "csv").lower())
        grid_provider = build_provider(config)
    except (ValueError, OSError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    if max_latency_ms is not None and source_region is None:
        typer.echo("error: --max-latency-ms needs --source-region", err=True)
        raise typer.Exit(2)
    cfg = ProxyConfig(
        upstreams=upstreams,
        source_region=source_region,
        policy=policy,
        refresh_interval_s=refresh_seconds,
        health_interval_s=health_seconds,
        health_path=health_path,
        client=client,
    )
    try:
        app = CarbonProxy(cfg, grid_provider)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(
        f"powermeter proxy on http://{host}:{port} → {', '.join(f'{r}={u}' for r, u in upstreams)} "
        f"(grid data: {grid_provider.name}; status: http://{host}:{port}{cfg.status_path})",
        err=True,
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(app, host, port, log_level=log_level))


def _settings() -> object:
    """POWERMETER_* settings if they load, else defaults (the proxy needs no database)."""
    try:
        from powermeter.settings import Settings

        return Settings()
    except Exception:
        return object()


def register(app: typer.Typer) -> None:
    """Add this capability's commands to the ``powermeter`` CLI."""
    app.command("proxy")(proxy)


app = typer.Typer(help="Carbon-aware proxy commands.", no_args_is_help=True, add_completion=False)
register(app)


@app.callback()
def _root() -> None:
    """Carbon-aware proxy commands."""


if __name__ == "__main__":  # pragma: no cover
    app()
