"""CPU time per request of each hot route, in process (no HTTP server, no load tool).

    python benchmarks/bench_cpu_routes.py [--requests 3000] [--concurrency 32] [--profile ROUTE]
        [--postgres URL --redis URL]

Drives the ASGI apps directly (the bare ``async def`` app of ``bare_app.py`` and powermeter on a fresh
SQLite database) with ``--concurrency`` requests in flight, and prints the process CPU time per request
for each route. Process CPU time barely depends on what else the machine runs, so this is the figure to
watch while changing the hot path; the req/s ratios of the issues are measured over HTTP by
``bench_hot_routes.py`` and ``bench_report.py``. ``--profile 'POST /v1/inference'`` prints the top of a
cProfile of that route (``PROFILE_SORT=cumulative`` and ``PROFILE_LINES=70`` in the environment change its
order and length). With ``--postgres URL`` (a fresh schema, dropped at the end) and ``--redis URL``
powermeter runs on the scale path (PostgreSQL group-commit lanes); the figure is then this process's CPU
only, not the database's.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import itertools
import json
import os
import pstats
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from benchmarks.bench_hot_routes import CALC, INFERENCE, PLANS, ROUTE
from benchmarks.capacity import Req, call
from benchmarks.httpbench import pg_schema

REPORT = {"duration_minutes": 120, "cpu_cores": 8, "memory_gb": 32, "gpu_cores": 2, "geo_iso": "US"}


def _scope(method: str, path: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


async def _one(app: Any, method: str, path: str, headers: list[tuple[bytes, bytes]], body: bytes) -> int:
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    status = 0

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    if body:
        headers = [*headers, (b"content-length", str(len(body)).encode())]
    await app(_scope(method, path, headers), receive, send)
    return status


async def _drive(app: Any, make: Callable[[int], Req], headers: list[tuple[bytes, bytes]], n: int, c: int) -> float:
    """Process CPU µs per request over ``n`` requests, ``c`` in flight (capacity.py's ASGI caller)."""
    counter = itertools.count()
    bad: list[int] = []

    async def worker() -> None:
        while (i := next(counter)) < n:
            status, _ = await call(app, make(i), headers)
            if status != 200:
                bad.append(status)

    t0 = time.process_time()
    await asyncio.gather(*(worker() for _ in range(c)))
    cpu = time.process_time() - t0
    if bad:
        raise SystemExit(f"non-200 answers: {sorted(set(bad))} ({len(bad)})")
    return cpu / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--profile", metavar="ROUTE", help="e.g. 'POST /v1/inference'")
    ap.add_argument("--only", metavar="ROUTE", action="append", help="measure only these routes")
    ap.add_argument("--postgres", metavar="URL", help="run powermeter on a fresh schema of this database")
    ap.add_argument("--redis", metavar="URL", help="with --postgres: the shared admission store")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, pg_schema(args.postgres, "bench_cpu_routes") as db_url:
        if db_url:
            os.environ["POWERMETER_DATABASE_URL"] = db_url
        if args.redis:
            os.environ["POWERMETER_REDIS_URL"] = args.redis
            os.environ["POWERMETER_RATELIMIT_PREFIX"] = "bench-cpu-" + os.urandom(4).hex()
        os.environ.update(
            POWERMETER_DATA_DIR=tmp,
            POWERMETER_SECRET_KEY="bench-secret-0123456789abcdef0123456789abcdef",  # noqa: S106 (a benchmark's)
            POWERMETER_LOG_REQUESTS="false",
            POWERMETER_PLANS_JSON=json.dumps(PLANS),
            POWERMETER_DEFAULT_PLAN="dev",
        )
        from benchmarks.bare_app import app as bare
        from benchmarks.httpbench import make_key

        from powermeter.app import create_app

        key = make_key(dict(os.environ))
        app = create_app()
        asyncio.run(_run(app, bare, key, args))


async def _run(app: Any, bare: Any, key: str, args: Any) -> None:
    auth = [(b"authorization", f"Bearer {key}".encode())]
    nonce = os.urandom(4).hex()

    def fixed(method: str, path: str, payload: Any) -> Callable[[int], Req]:
        req = Req(method, path, json.dumps(payload).encode() if payload is not None else b"")
        return lambda _i: req

    job_ids = itertools.count()  # every report a new job (warm-up included): none is a re-report

    def report(_i: int) -> Req:
        return Req("POST", "/v1/report", json.dumps({"job_id": f"{nonce}-{next(job_ids)}", **REPORT}).encode())

    routes: dict[str, tuple[Any, Callable[[int], Req], list[tuple[bytes, bytes]]]] = {
        "bare GET /ping": (bare, fixed("GET", "/ping", None), []),
        "bare POST /echo": (bare, fixed("POST", "/echo", INFERENCE), []),
        "POST /v1/report": (app, report, auth),
        "POST /v1/inference": (app, fixed("POST", "/v1/inference", INFERENCE), auth),
        "POST /route": (app, fixed("POST", "/route", ROUTE), auth),
        "POST /calc/api/cost": (app, fixed("POST", "/calc/api/cost", CALC), []),
        "GET /v1/me": (app, fixed("GET", "/v1/me", None), auth),
    }
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    async with app.router.lifespan_context(app):
        for name, (target, make, headers) in routes.items():
            if args.only and name not in args.only and not name.startswith("bare"):
                continue
            await _drive(target, make, headers, min(300, args.requests), args.concurrency)  # warm-up
            if args.profile == name:
                prof = cProfile.Profile()
                prof.enable()
            us = await _drive(target, make, headers, args.requests, args.concurrency)
            if args.profile == name:
                prof.disable()
                stats = pstats.Stats(prof)
                stats.sort_stats(os.environ.get("PROFILE_SORT", "tottime"))
                stats.print_stats(int(os.environ.get("PROFILE_LINES", "35")))
            print(f"{name:24s} {us:8.1f} µs CPU per request")


if __name__ == "__main__":
    main()
