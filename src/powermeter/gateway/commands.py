"""CLI of the AI gateway: ``powermeter gateway``.

Registered on the main CLI by :func:`register`; also runs standalone:
``python -m powermeter.gateway.commands gateway --listen 127.0.0.1:8400 --upstream openai=https://api.openai.com``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer


def default_spool_dir(port: int) -> Path:
    base = os.environ.get("POWERMETER_DATA_DIR")
    root = Path(base) if base else Path.home() / ".cache" / "powermeter"
    return root / f"gateway-spool-{port}"


def gateway(
    upstream: Annotated[
        list[str],
        typer.Option(
            "--upstream",
            "-u",
            help="NAME=URL[@PROVIDER], repeatable: openai=https://api.openai.com, "
            "anthropic=https://api.anthropic.com, local=http://10.0.0.5:8000@meta. Callers use "
            "http://GATEWAY/NAME/… ; PROVIDER (for the footprint) defaults to NAME.",
        ),
    ],
    listen: Annotated[str, typer.Option(help="HOST:PORT to listen on.")] = "127.0.0.1:8400",
    url: Annotated[
        str | None, typer.Option(help="powermeter server that stores the records. Default: POWERMETER_URL.")
    ] = None,
    key: Annotated[
        str | None,
        typer.Option(help="The gateway's powermeter API key (scope inference:write). Default: POWERMETER_API_KEY."),
    ] = None,
    spool_dir: Annotated[
        Path | None,
        typer.Option(
            help="Where records wait until the server has them. Default: "
            "$POWERMETER_DATA_DIR/gateway-spool-PORT or ~/.cache/powermeter/gateway-spool-PORT."
        ),
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=1000, help="Records per batch sent (1 to 1000).")] = 500,
    flush_seconds: Annotated[
        float, typer.Option(min=0.05, max=3600, help="Send queued records at least this often.")
    ] = 1.0,
    max_spool_records: Annotated[
        int, typer.Option(min=1000, help="Records kept on disk while the server is away (then dropped).")
    ] = 1_000_000,
    fsync: Annotated[bool, typer.Option(help="fsync every record (survives power loss; slower).")] = False,
    region: Annotated[
        str | None, typer.Option(help="Data-centre region of the upstreams, if known (detected_region).")
    ] = None,
    read_timeout: Annotated[
        float, typer.Option(min=1, max=86400, help="Seconds to wait for an upstream's response headers.")
    ] = 600.0,
    http_server: Annotated[
        str, typer.Option(help="HTTP server: lean (the gateway's own HTTP/1.1 server, fastest) or uvicorn.")
    ] = "lean",
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "warning",
) -> None:
    """LLM API gateway: forwards calls to the providers and records each call's footprint with exact tokens."""
    from powermeter.gateway.app import Gateway, GatewayConfig, parse_upstream
    from powermeter.gateway.recorder import Recorder, Spool
    from powermeter.gateway.server import GatewayServer
    from powermeter.proxy.asgi import build_server, parse_listen

    logging.basicConfig(level=log_level.upper(), format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    url = url or os.environ.get("POWERMETER_URL")
    key = key or os.environ.get("POWERMETER_API_KEY")
    if not url or not key:
        typer.echo(
            "error: the gateway records calls on a powermeter server: give --url and --key "
            "(or POWERMETER_URL and POWERMETER_API_KEY); create a key with scope inference:write",
            err=True,
        )
        raise typer.Exit(2)
    if http_server not in ("lean", "uvicorn"):
        typer.echo(f"error: --http-server must be lean or uvicorn, got {http_server!r}", err=True)
        raise typer.Exit(2)
    try:
        upstreams = tuple(parse_upstream(u) for u in upstream)
        host, port = parse_listen(listen)
        config = GatewayConfig(upstreams=upstreams, detected_region=region, read_timeout_s=read_timeout)
        spool = Spool(spool_dir or default_spool_dir(port), max_records=max_spool_records, fsync=fsync)
        recorder = Recorder(spool, url, key, batch_size=batch_size, flush_interval_s=flush_seconds)
        app = Gateway(config, recorder)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(
        f"powermeter gateway on http://{host}:{port} → "
        + ", ".join(f"/{u.name} = {u.url} ({u.provider})" for u in upstreams)
        + f"; records → {url} (spool {spool.directory})",
        err=True,
    )
    server: Any
    if http_server == "lean":
        server = GatewayServer(app, host, port)
    else:
        server = build_server(app, host, port, log_level=log_level)
    with contextlib.suppress(KeyboardInterrupt):
        server.run()  # on uvloop when installed


def register(app: typer.Typer) -> None:
    """Add this capability's commands to the ``powermeter`` CLI."""
    app.command("gateway")(gateway)


app = typer.Typer(help="AI gateway commands.", no_args_is_help=True, add_completion=False)
register(app)


@app.callback()
def _root() -> None:
    """AI gateway commands."""


if __name__ == "__main__":  # pragma: no cover
    app()
