"""POST /v1/report throughput on one uvicorn worker vs a bare FastAPI route returning a constant.

Goal (issue 3): ≥ 35 % of the bare route's requests/s, same load tool (wrk), same run. Every request
carries a new job_id (a wrk Lua counter behind a per-run nonce), so each one stores a receipt, signs
a one-leaf tree and moves the kWh counter, as a real client's would.

    python benchmarks/bench_report.py [--duration 5] [--connections 32]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import secrets
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.httpbench import _taskset, bare_baseline, make_key, powermeter_env, report, server

LUA = """
counter = 0
nonce = "%(nonce)s"
request = function()
  counter = counter + 1
  local body = string.format('{"job_id":"%%s-%%d","duration_minutes":120,"cpu_cores":8,"memory_gb":32,' ..
                             '"gpu_cores":2,"geo_iso":"US"}', nonce, counter)
  return wrk.format("POST", "/v1/report", {["Authorization"] = "Bearer %(key)s",
                                          ["Content-Type"] = "application/json"}, body)
end
done = function(summary, latency, requests)
  io.write(string.format("NON2XX %%d\\n", summary.errors.status))
end
"""


def wrk_report(base: str, key: str, duration_s: int, connections: int) -> dict[str, float]:
    def run(seconds: int) -> str:
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
            fh.write(LUA % {"nonce": secrets.token_hex(6), "key": key})
            script = fh.name
        try:
            cmd = [*_taskset(1), "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", script, base]
            return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        finally:
            os.unlink(script)

    run(2)  # warm-up
    out = run(duration_s)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non2xx = int(re.search(r"NON2XX (\d+)", out).group(1))  # type: ignore[union-attr]

    def pct(p: str) -> float:
        m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out)
        if not m:
            return float("nan")
        v, unit = float(m.group(1)), m.group(2)
        return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v

    return {"rps": rps, "p50_ms": pct("50"), "p99_ms": pct("99"), "non2xx": non2xx}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--connections", type=int, default=32, help="as the bare baseline (httpbench: 32)")
    ap.add_argument("--postgres", metavar="URL", help="run the server on PostgreSQL (a fresh schema) instead of SQLite")
    ap.add_argument(
        "--sqlite-normal",
        action="store_true",
        help="what-if: SQLite synchronous=NORMAL, not the foundation FULL (no fsync per commit)",
    )
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, _database(args.postgres) as db_url:
        env = powermeter_env(Path(tmp), **({"POWERMETER_DATABASE_URL": db_url} if db_url else {}))
        key = make_key(env)
        bare = bare_baseline(args.duration)
        target = "benchmarks.bench_report:app_sqlite_normal" if args.sqlite_normal else "powermeter.app:app_from_env"
        with server(target, env=env, factory=True) as base:
            ours = wrk_report(base, key, args.duration, args.connections)
        label = "PostgreSQL" if db_url else "SQLite (synchronous=NORMAL)" if args.sqlite_normal else "SQLite"
        report(
            f"POST /v1/report on {label} (auth, quota, kWh counter, receipt + signed tree)", ours, bare, goal_ratio=0.35
        )


def app_sqlite_normal() -> Any:
    """The app with every SQLite connection switched to ``synchronous=NORMAL`` (benchmark what-if only)."""
    from sqlalchemy import event

    from powermeter.app import app_from_env

    app = app_from_env()
    engine = app.state.pm.db.engine

    @event.listens_for(engine, "connect")
    def _normal(dbapi_conn: Any, _rec: Any) -> None:  # runs after the foundation's listener (FULL)
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    engine.dispose()  # connections opened during start-up are re-opened with the listener
    return app


@contextlib.contextmanager
def _database(pg_url: str | None) -> Iterator[str | None]:
    if not pg_url:
        yield None
        return
    import sqlalchemy as sa

    schema = "bench_" + secrets.token_hex(6)
    admin = sa.create_engine(pg_url)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    try:
        sep = "&" if "?" in pg_url else "?"
        yield f"{pg_url}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.dispose()


if __name__ == "__main__":
    main()
