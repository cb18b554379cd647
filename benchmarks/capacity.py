"""Capacity figures (issue 13): bytes per stored record and CPU time per request, in-process.

    python benchmarks/capacity.py [--n 20000] [--requests 5000] [--concurrency 16] [--accounts 1] [--postgres URL]

Builds the real app (``create_app``, its lifespan running) on a fresh SQLite file, or on a fresh
PostgreSQL schema with ``--postgres URL``, and drives it as an ASGI application: no network, no HTTP
parser, no client library (a scope, a body and a ``send`` that keeps the answer), ``--concurrency``
requests in flight on one event loop, as uvicorn would hand them over. For each route it reports:

* CPU time per request: this process's CPU time (every thread: the event loop, the thread pool,
  SQLite, the group-commit writer) divided by the requests. With PostgreSQL, also the CPU time of
  the server processes that serve this benchmark's connections (found by ``application_name`` in
  ``pg_stat_activity``, read with psutil; the server's shared background processes are not counted).
* For the routes that store something: bytes of the database per stored item, tables and their
  indexes included (SQLite: ``dbstat``, the pages each table and index occupies; PostgreSQL:
  ``pg_total_relation_size`` of every table of the schema: heap, indexes, TOAST, free-space and
  visibility maps), measured before and after the phase. And, with PostgreSQL, the WAL written per
  item (``pg_current_wal_lsn`` before and after: cluster-wide, so any other client's writes during
  the phase are included).

Routes: POST /v1/report (a new job_id each), POST /v1/batch (``--batch-size`` jobs a request; figures
per job), POST /v1/inference (the seed's example body), POST /route (seed 002 example), POST
/calc/api/cost (seed 003 flat example), GET /v1/me. Quotas and per-minute limits are lifted
(plans JSON) so no request is refused; any non-2xx stops the run.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import platform
import secrets
import sqlite3
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from benchmarks.bench_batch import GEOS, payload
from benchmarks.httpbench import pg_schema

SECRET = "bench-secret-0123456789abcdef0123456789abcdef"  # noqa: S105 - a throwaway benchmark database
PLANS = {
    "dev": {
        "daily_calls": None,
        "daily_kwh": None,
        "per_minute": 1_000_000_000,
        "route_monthly_calls": None,
        "route_regions": "global",
    }
}
ROUTE = {
    "source_region": "us-west1",
    "payload_size": 128,
    "candidates": ["CAISO", "BPA", "ERCOT", "PJM", "MISO", "NYISO", "ISONE", "SPP", "aws:us-west-2", "gcp:us-central1"],
}
CALC = {"device": {"watts": 100, "hours_per_day": 8}, "rateConfig": {"flat_rate": 0.15}}


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# -- driving the ASGI app ------------------------------------------------------------------------


@dataclass
class Req:
    method: str
    path: str
    body: bytes = b""


async def call(app: Any, req: Req, headers: list[tuple[bytes, bytes]]) -> tuple[int, bytes]:
    """One request through the app, as uvicorn would hand it over (no network)."""
    hdrs = [(b"host", b"capacity.local"), *headers]
    if req.body:
        hdrs += [(b"content-type", b"application/json"), (b"content-length", str(len(req.body)).encode())]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": req.method,
        "scheme": "http",
        "path": req.path,
        "raw_path": req.path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": hdrs,
        "client": ("127.0.0.1", 50000),
        "server": ("capacity.local", 80),
        "state": {},
    }
    done = asyncio.Event()
    delivered = False
    status = 0
    chunks: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": req.body, "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                done.set()

    await app(scope, receive, send)
    done.set()
    return status, b"".join(chunks)


async def drive(app: Any, reqs: list[Req], concurrency: int, keys: list[list[tuple[bytes, bytes]]]) -> None:
    """Every request of ``reqs`` (built beforehand, so their making is not timed), ``concurrency`` in
    flight, request i with the headers ``keys[i % len(keys)]`` (the accounts take turns); stop at the
    first non-2xx."""
    pending = iter(enumerate(reqs))

    async def worker() -> None:
        for i, req in pending:
            status, body = await call(app, req, keys[i % len(keys)])
            if not 200 <= status < 300:
                raise SystemExit(f"{req.method} {req.path}: {status} {body[:300]!r}")

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def bare_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The harness alone: reads the body, answers a constant (its CPU time is the driver's share)."""
    await receive()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b'{"ok":true}'})


# -- what a phase costs --------------------------------------------------------------------------


class Probe:
    """Database bytes, WAL position and database-server CPU, read before and after a phase."""

    def __init__(self, app: Any, sqlite_path: Path | None, app_name: str | None) -> None:
        self.app = app
        self.sqlite_path = sqlite_path
        self.app_name = app_name

    def sizes(self) -> dict[str, int]:
        """Bytes per table, its indexes included."""
        if self.sqlite_path is not None:
            con = sqlite3.connect(f"file:{self.sqlite_path}?mode=ro", uri=True)
            try:
                owner = dict(con.execute("SELECT name, tbl_name FROM sqlite_master WHERE type IN ('table', 'index')"))
                out: dict[str, int] = {}
                for name, size in con.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name"):
                    table = owner.get(name, name)  # sqlite_autoindex_* belong to their table too
                    out[table] = out.get(table, 0) + int(size)
                return out
            finally:
                con.close()
        with self.app.state.pm.db.engine.connect() as conn:
            rows = conn.exec_driver_sql(
                "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')"
            ).all()
        return {str(r[0]): int(r[1]) for r in rows}

    def wal(self) -> int | None:
        if self.sqlite_path is not None:
            return None
        with self.app.state.pm.db.engine.connect() as conn:
            return int(conn.exec_driver_sql("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn").scalar_one())

    def server_cpu(self) -> dict[int, float] | None:
        """CPU seconds of each PostgreSQL backend serving this benchmark (None: not on this machine)."""
        if self.app_name is None:
            return None
        import psutil

        with self.app.state.pm.db.engine.connect() as conn:
            pids = [
                int(r[0])
                for r in conn.exec_driver_sql(
                    "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (self.app_name,)
                ).all()
            ]
        out = {}
        for pid in pids:
            try:
                t = psutil.Process(pid).cpu_times()
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                return None
            out[pid] = t.user + t.system
        return out


@dataclass
class Result:
    route: str
    unit: str
    items: int
    cpu_s: float
    wall_s: float
    concurrency: int
    db_cpu_s: float | None = None
    bytes_total: int | None = None
    bytes_by_table: dict[str, int] | None = None
    wal_bytes: int | None = None


async def phase(
    probe: Probe,
    route: str,
    unit: str,
    items: int,
    run: Callable[[], Awaitable[None]],
    storing: bool,
    concurrency: int,
) -> Result:
    before = probe.sizes() if storing else {}
    wal0 = probe.wal() if storing else None
    db0 = probe.server_cpu()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await run()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    db1 = probe.server_cpu()
    res = Result(route, unit, items, cpu, wall, concurrency)
    if db0 is not None and db1 is not None:
        res.db_cpu_s = sum(t - db0.get(pid, 0.0) for pid, t in db1.items())
    if storing:
        after = probe.sizes()
        delta = {t: after.get(t, 0) - before.get(t, 0) for t in after}
        res.bytes_by_table = {t: d for t, d in sorted(delta.items(), key=lambda kv: -kv[1]) if d}
        res.bytes_total = sum(delta.values())
        wal1 = probe.wal()
        res.wal_bytes = wal1 - wal0 if wal0 is not None and wal1 is not None else None
    print(f"  {route}: {items:,} {unit}s in {wall:.1f} s  (load {load()})", flush=True)
    return res


# -- the run -------------------------------------------------------------------------------------


def _requests(nonce: str, batch_size: int) -> dict[str, Callable[[int], Req]]:
    def report(i: int) -> Req:
        job = {
            "job_id": f"{nonce}-r{i}",
            "duration_minutes": 30 + i % 240,
            "cpu_cores": 1 + i % 32,
            "memory_gb": 4 * (i % 16),
            "gpu_cores": i % 3,
            "geo_iso": GEOS[i % len(GEOS)],
        }
        return Req("POST", "/v1/report", orjson.dumps(job))

    def batch(i: int) -> Req:
        return Req("POST", "/v1/batch", payload(batch_size, f"{nonce}-b{i}"))  # bench_batch.py's jobs

    def inference(i: int) -> Req:
        body = {
            "provider": ("Google", "OpenAI", "Anthropic")[i % 3],
            "model": ("gemini-3-pro", "gpt-4o", "claude-sonnet-4")[i % 3],
            "prompt_tokens": 300 + i % 900,
            "completion_tokens": 100 + i % 400,
            "reasoning_tokens": 0,
            "cached_tokens": 0,
            "startTimeMs": 1_764_000_000_000 + i * 1000,
            "firstTokenTimeMs": 1_764_000_000_400 + i * 1000,
            "source": "dom_estimated",
            "is_estimated": True,
            "estimation_method": "dom_gpt_tokenizer_v1",
        }
        return Req("POST", "/v1/inference", orjson.dumps(body))

    route, calc = orjson.dumps(ROUTE), orjson.dumps(CALC)
    return {
        "POST /v1/report": report,
        "POST /v1/batch": batch,
        "POST /v1/inference": inference,
        "POST /route": lambda i: Req("POST", "/route", route),
        "POST /calc/api/cost": lambda i: Req("POST", "/calc/api/cost", calc),
        "GET /v1/me": lambda i: Req("GET", "/v1/me"),
    }


async def measure(app: Any, probe: Probe, keys: list[str], args: argparse.Namespace) -> list[Result]:
    headers = [[(b"authorization", f"Bearer {key}".encode())] for key in keys]
    results = []
    async with app.router.lifespan_context(app):
        c, n, m = args.concurrency, args.n, args.requests
        conc = {"POST /v1/batch": 2}
        if args.postgres:
            # POST /route is an ``async def`` that runs its SQL on the event loop: on PostgreSQL a second
            # /route of the same account waits for the first one's row lock (route_choices) on the loop,
            # and the first can then never commit; the process hangs. One at a time until that is fixed.
            conc["POST /route"] = 1
        warm = _requests("warm" + secrets.token_hex(4), 10)
        for name, make in warm.items():  # every code path once, caches filled, before measuring
            count = 3 if name == "POST /v1/batch" else 20 * args.concurrency
            await drive(app, [make(i) for i in range(count)], conc.get(name, c), headers)
        await drive(bare_app, [Req("GET", "/")] * 200, 4, headers)
        reqs = _requests(secrets.token_hex(6), args.batch_size)
        n_batches = max(1, n // args.batch_size)
        plan: list[tuple[str, str, int, int, bool]] = [
            # route, unit, items, requests, stores
            ("POST /v1/report", "receipt", n, n, True),
            ("POST /v1/batch", "job", n_batches * args.batch_size, n_batches, True),
            ("POST /v1/inference", "record", n, n, True),
            ("POST /route", "request", m, m, False),
            ("POST /calc/api/cost", "request", m, m, False),
            ("GET /v1/me", "request", m, m, False),
        ]
        for route, unit, items, count, stores in plan:
            batch = [reqs[route](i) for i in range(count)]
            run = functools.partial(drive, app, batch, conc.get(route, c), headers)
            results.append(await phase(probe, route, unit, items, run, stores, conc.get(route, c)))
        run = functools.partial(drive, bare_app, [Req("POST", "/", reqs["POST /route"](0).body)] * m, c, headers)
        results.append(await phase(probe, "harness (bare ASGI)", "request", m, run, False, c))
    return results


def table(results: list[Result], label: str) -> None:
    has_db = any(r.db_cpu_s is not None for r in results)
    head = f"{'route':<20} {'per':<8} {'items':>7} {'conc':>4} {'CPU µs/item':>12}"
    head += f" {'DB CPU µs':>10}" if has_db else ""
    head += f" {'bytes/item':>11} {'WAL B/item':>11} {'wall s':>7}"
    print(f"\n{label}\n{head}")
    for r in results:
        line = f"{r.route:<20} {r.unit:<8} {r.items:>7,} {r.concurrency:>4} {r.cpu_s / r.items * 1e6:>12.0f}"
        if has_db:
            line += f" {r.db_cpu_s / r.items * 1e6:>10.0f}" if r.db_cpu_s is not None else f" {'-':>10}"
        line += f" {r.bytes_total / r.items:>11.0f}" if r.bytes_total is not None else f" {'-':>11}"
        line += f" {r.wal_bytes / r.items:>11.0f}" if r.wal_bytes is not None else f" {'-':>11}"
        line += f" {r.wall_s:>7.1f}"
        print(line)
    print("\nbytes per stored item, by table (tables and their indexes):")
    for r in results:
        if r.bytes_by_table:
            parts = ", ".join(f"{t} {b / r.items:.0f}" for t, b in r.bytes_by_table.items() if abs(b / r.items) >= 1)
            print(f"  {r.route} (per {r.unit}): {parts}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20_000, help="receipts, batch jobs and inference records to store")
    ap.add_argument("--batch-size", type=int, default=10_000, help="jobs per POST /v1/batch")
    ap.add_argument("--requests", type=int, default=5_000, help="requests for the routes that store nothing")
    ap.add_argument("--concurrency", type=int, default=16, help="requests in flight")
    ap.add_argument(
        "--accounts",
        type=int,
        default=1,
        help="accounts (one key each) taking turns; 1 is the worst case for the per-account hot rows "
        "(usage counters, audit chain head)",
    )
    ap.add_argument("--postgres", metavar="URL", help="a fresh schema in this PostgreSQL database instead of SQLite")
    args = ap.parse_args()

    from powermeter.app import create_app
    from powermeter.composition import account_service
    from powermeter.settings import Settings

    app_name = "pm_capacity_" + secrets.token_hex(4)
    print(
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; load average before: {load()}"
    )
    with tempfile.TemporaryDirectory() as tmp, pg_schema(args.postgres, app_name) as pg_url:
        sqlite_path = None if pg_url else Path(tmp) / "capacity.db"
        settings = Settings(
            env="test",
            data_dir=Path(tmp) / "data",
            database_url=pg_url or f"sqlite:///{sqlite_path}",
            redis_url=None,
            secret_key=SECRET,
            log_requests=False,
            plans_json=orjson.dumps(PLANS).decode(),
            default_plan="dev",
        )
        app = create_app(settings)
        st = app.state.pm
        keys = []
        with st.db.begin() as conn:
            accounts = account_service(settings, st.secret)
            for a in range(args.accounts):
                acct = accounts.create_account(conn, f"capacity{a}@example.com", st.clock.now())
                keys.append(accounts.create_key(conn, acct, "capacity", st.clock.now(), None).key)
        probe = Probe(app, sqlite_path, app_name if pg_url else None)
        results = asyncio.run(measure(app, probe, keys, args))
        label = "PostgreSQL" if pg_url else "SQLite (WAL, synchronous=FULL)"
        if pg_url:
            with st.db.engine.connect() as conn:
                label += " " + str(conn.exec_driver_sql("SHOW server_version").scalar_one())
        st.db.dispose()
    table(results, f"{label}; {args.accounts} account(s); concurrency {args.concurrency}; load average after: {load()}")


if __name__ == "__main__":
    main()
