"""POST /v1/report throughput on one uvicorn worker vs a bare FastAPI route returning a constant.

Goal (issue 3): ≥ 35 % of the bare route's requests/s, same load tool (wrk), same run. Every request
carries a new job_id (a wrk Lua counter behind a per-run nonce), so each one stores a receipt, signs
a one-leaf tree and moves the kWh counter, as a real client's would.

    python benchmarks/bench_report.py [--duration 5] [--connections 32]

Scale-out (issue 13), in one run: SQLite on one worker against PostgreSQL + Redis on ``--workers 2``,
4 accounts and one account alone (goals: ≥ 1.0× and ≥ 0.7× of SQLite). Plans carry finite daily quotas
and kWh caps (far above what a run uses), so every request is admitted through the quota path:

    python benchmarks/bench_report.py --scaleout --postgres postgresql+psycopg://postgres@127.0.0.1:5432/test \
        --redis redis://127.0.0.1:6379/0 [--duration 5]
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

from benchmarks.httpbench import _taskset, bare_baseline, make_key, pg_schema, powermeter_env, report, server

LUA = """
counter = 0
nonce = "%(nonce)s"
keys = {%(keys)s}
request = function()
  counter = counter + 1
  local body = string.format('{"job_id":"%%s-%%d","duration_minutes":120,"cpu_cores":8,"memory_gb":32,' ..
                             '"gpu_cores":2,"geo_iso":"US"}', nonce, counter)
  local key = keys[(counter %% #keys) + 1]
  return wrk.format("POST", "/v1/report", {["Authorization"] = "Bearer " .. key,
                                          ["Content-Type"] = "application/json"}, body)
end
done = function(summary, latency, requests)
  io.write(string.format("NON2XX %%d\\n", summary.errors.status))
end
"""


def wrk_report(base: str, key: str | list[str], duration_s: int, connections: int) -> dict[str, float]:
    keys = [key] if isinstance(key, str) else key

    def run(seconds: int) -> str:
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
            fh.write(LUA % {"nonce": secrets.token_hex(6), "keys": ", ".join(f'"{k}"' for k in keys)})
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
    ap.add_argument("--scaleout", action="store_true", help="SQLite 1 worker vs PostgreSQL + Redis 2 workers")
    ap.add_argument("--redis", metavar="URL", help="Redis for --scaleout")
    ap.add_argument("--workers", type=int, default=2, help="PostgreSQL workers in --scaleout")
    args = ap.parse_args()
    if args.scaleout:
        if not (args.postgres and args.redis):
            raise SystemExit("--scaleout needs --postgres URL and --redis URL")
        scaleout(args)
        return
    with tempfile.TemporaryDirectory() as tmp, pg_schema(args.postgres) as db_url:
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


SCALEOUT_PLANS = {
    # finite quotas far above a run's use: every request goes through admission (Redis on PostgreSQL)
    "dev": {"daily_calls": 1_000_000_000, "daily_kwh": 1_000_000_000.0, "per_minute": 10_000_000},
}


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def scaleout(args: argparse.Namespace) -> None:
    """One run: SQLite 1 worker and PostgreSQL + Redis N workers, 4 accounts and 1 account each."""
    import json

    results: dict[tuple[str, int], dict[str, float]] = {}
    setups: list[tuple[str, str | None, int]] = [("SQLite", None, 1), ("PostgreSQL+Redis", args.postgres, args.workers)]
    for label, pg, workers in setups:
        for n_accounts in (4, 1):
            with tempfile.TemporaryDirectory() as tmp, pg_schema(pg) as db_url:
                extra = {"POWERMETER_PLANS_JSON": json.dumps(SCALEOUT_PLANS)}
                if db_url:
                    extra |= {
                        "POWERMETER_DATABASE_URL": db_url,
                        "POWERMETER_REDIS_URL": args.redis,
                        "POWERMETER_RATELIMIT_PREFIX": "bench-" + secrets.token_hex(4),
                    }
                env = powermeter_env(Path(tmp), **extra)
                keys = [make_key(env, f"bench{i}@example.com") for i in range(n_accounts)]
                load_before = _load()
                with _serve(env, workers) as base:
                    r = wrk_report(base, keys, args.duration, args.connections)
                results[(label, n_accounts)] = r
                print(
                    f"{label}, {workers} worker(s), {n_accounts} account(s): {r['rps']:.0f} req/s, "
                    f"p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, non-2xx {r['non2xx']:.0f} "
                    f"(load average before: {load_before}; after: {_load()})",
                    flush=True,
                )
    pg = setups[1][0]
    r4 = results[(pg, 4)]["rps"] / results[("SQLite", 4)]["rps"]
    r1 = results[(pg, 1)]["rps"] / results[("SQLite", 1)]["rps"]
    print(f"ratio, 4 accounts: {r4:.2f}x SQLite (goal >= 1.0x)")
    print(f"ratio, 1 account: {r1:.2f}x SQLite (goal >= 0.7x)")


@contextlib.contextmanager
def _serve(env: dict[str, str], workers: int) -> Iterator[str]:
    """``powermeter serve --workers N`` (not pinned: N workers share the cores with the database)."""
    import time

    import httpx
    from benchmarks.httpbench import ROOT, free_port

    port = free_port()
    cmd = [sys.executable, "-m", "powermeter", "serve", "--port", str(port), "--workers", str(workers)]
    cmd += ["--log-level", "warning"]
    full_env = {**os.environ, **env, "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}"}
    proc = subprocess.Popen(cmd, env=full_env, cwd=ROOT, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.time() > deadline or proc.poll() is not None:
                raise RuntimeError("powermeter serve did not start")
            time.sleep(0.2)
        time.sleep(1.0 if workers > 1 else 0)  # every worker up
        yield base
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=15)
        if proc.poll() is None:
            proc.kill()


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


if __name__ == "__main__":
    main()
