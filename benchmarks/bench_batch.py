"""POST /v1/batch with 10,000 jobs on one uvicorn worker vs the bare pipeline for the same payload.

Goal (issue 3): the server's median latency ≤ 3× the bare pipeline measured in the same run. The bare
pipeline is what any implementation must do at least, done the fastest way we know: Pydantic's JSON
parse and validation (``model_validate_json``, as our route does; ~10 % faster than ``orjson.loads`` +
``model_validate``) + the formula + one SQLite ``executemany`` of the results, fed from the columns
(no row list). Ours adds authentication, the quota and kWh-cap counters, a canonical receipt per job,
the Merkle tree, one Ed25519 signature and the JSON response.

    python benchmarks/bench_batch.py [--requests 15] [--jobs 10000] [--postgres URL]

With ``--postgres`` (issue 13: goal ≤ 4×) the server runs on a fresh schema of that database and the bare
pipeline stores its rows there with one ``COPY`` (psycopg's fastest bulk load) and one commit.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sqlite3
import statistics
import sys
import tempfile
import time
from operator import attrgetter
from pathlib import Path
from typing import Any

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from benchmarks.httpbench import make_key, pg_schema, powermeter_env, server

GEOS = ["US", "EU", "DE", "FR", "US-CA", "CAISO", "aws:us-east-1", "gcp:europe-west1", "azure:westeurope", "IN"]


def payload(n: int, nonce: str) -> bytes:
    jobs = []
    for i in range(n):
        job: dict[str, object] = {
            "job_id": f"{nonce}-{i}",
            "duration_minutes": 30 + i % 240,
            "cpu_cores": 1 + i % 32,
            "memory_gb": 4 * (i % 16),
            "geo_iso": GEOS[i % len(GEOS)],
        }
        if i % 3 == 0:
            job["gpu_cores"] = 1 + i % 4
        jobs.append(job)
    return orjson.dumps({"jobs": jobs})


def bare_pipeline(body: bytes, db: Any) -> float:
    """Pydantic JSON parse and validation + the formula + one SQLite executemany (PostgreSQL: one COPY);
    seconds."""
    from powermeter.jobs.schemas import BatchIn
    from powermeter.jobs.service import gc_paused

    svc = _jobs()
    start = time.perf_counter()
    with gc_paused():  # the same collector pause our route uses, so the baseline is not handicapped
        batch = BatchIn.model_validate_json(body)
        est = svc.estimator.estimate_batch(batch.jobs)
        rows = zip(map(_JOB_ID, batch.jobs), est.energy_kwh, est.co2_g, strict=True)
        if isinstance(db, sqlite3.Connection):
            db.execute("BEGIN IMMEDIATE")
            db.executemany("INSERT INTO results (job_id, kwh, co2_grams) VALUES (?, ?, ?)", rows)
            db.execute("COMMIT")
        else:
            with db.cursor() as cur, cur.copy("COPY results (job_id, kwh, co2_grams) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            db.commit()
    return time.perf_counter() - start


_JOBS: list[Any] = []
_JOB_ID = attrgetter("job_id")


def _jobs() -> Any:
    """One compute-job service for the bare pipeline (datasets loaded once, as in the app)."""
    from powermeter.jobs.service import ComputeJobs

    if not _JOBS:
        _JOBS.append(ComputeJobs())
    return _JOBS[0]


def _pure_parts(body: bytes) -> tuple[float, float]:
    """Best-of-5 times of the formula over the batch and of the Merkle root over 10,000 leaf hashes."""
    import hashlib

    from powermeter.jobs.schemas import BatchIn
    from powermeter.methodology.merkle import merkle_root

    jobs = BatchIn.model_validate_json(body).jobs
    est = _jobs().estimator
    hashes = [hashlib.sha256(str(i).encode()).digest() for i in range(len(jobs))]

    def best(fn: object) -> float:
        times = []
        for _ in range(5):
            t = time.perf_counter()
            fn()  # type: ignore[operator]
            times.append(time.perf_counter() - t)
        return min(times)

    return best(lambda: est.estimate_batch(jobs)), best(lambda: merkle_root(hashes))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=15)
    ap.add_argument("--jobs", type=int, default=10_000)
    ap.add_argument("--postgres", metavar="URL", help="run the server and the bare pipeline on PostgreSQL")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name, pg_schema(args.postgres) as db_url:
        tmp = Path(tmp_name)
        env = powermeter_env(tmp, **({"POWERMETER_DATABASE_URL": db_url} if db_url else {}))
        key = make_key(env)
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        bodies = [payload(args.jobs, secrets.token_hex(4)) for _ in range(args.requests + 2)]
        db: Any
        if db_url:
            import psycopg

            schema = db_url.rsplit("%3D", 1)[1]
            db = psycopg.connect(args.postgres.replace("postgresql+psycopg://", "postgresql://"))
            db.execute(f'SET search_path TO "{schema}"')
            db.execute("CREATE TABLE results (job_id TEXT PRIMARY KEY, kwh FLOAT8, co2_grams FLOAT8)")
            db.commit()
        else:
            db = sqlite3.connect(str(tmp / "bare.db"), isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")  # as the server's database
            db.execute("CREATE TABLE results (job_id TEXT PRIMARY KEY, kwh REAL, co2_grams REAL)")
        # The bare pipeline runs in this process on the CPU the server uses (CPU 0), right after each
        # of our requests (while the server idles): pairs measured seconds apart see the same machine
        # load. The HTTP client itself runs on CPU 1, like wrk in the other benchmarks.
        pin = hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1
        ours: list[float] = []
        bare: list[float] = []
        with server("powermeter.app:app_from_env", env=env, factory=True) as base, httpx.Client(timeout=120) as c:
            for i, body in enumerate(bodies):
                if pin:
                    os.sched_setaffinity(0, {1})
                t = time.perf_counter()
                r = c.post(base + "/v1/batch", content=body, headers=headers)
                dt = time.perf_counter() - t
                if r.status_code != 200:
                    raise SystemExit(f"batch failed: {r.status_code} {r.text[:300]}")
                if pin:
                    os.sched_setaffinity(0, {0})
                b = bare_pipeline(body, db)
                if i >= 2:  # two warm-up pairs
                    ours.append(dt)
                    bare.append(b)
        db.close()
    size_kb = len(bodies[0]) / 1024
    m_ours, m_bare = statistics.median(ours), statistics.median(bare)
    where = "PostgreSQL" if args.postgres else "SQLite"
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"POST /v1/batch on {where}, {args.jobs} jobs ({size_kb:.0f} KiB), {len(ours)} requests, one worker")
    print(f"  ours: median {m_ours * 1000:.1f} ms (min {min(ours) * 1000:.1f}, max {max(ours) * 1000:.1f})")
    print(f"  bare pipeline: median {m_bare * 1000:.1f} ms (min {min(bare) * 1000:.1f}, max {max(bare) * 1000:.1f})")
    pair = statistics.median(o / b for o, b in zip(ours, bare, strict=True))
    formula, tree = _pure_parts(bodies[0])
    print(f"  pure parts of ours, in-process: formula {formula * 1000:.1f} ms, Merkle root {tree * 1000:.1f} ms")
    goal = 4 if args.postgres else 3
    print(f"  ratio of medians: {m_ours / m_bare:.2f}×, median of paired ratios: {pair:.2f}× (goal ≤ {goal}×)")


if __name__ == "__main__":
    main()
