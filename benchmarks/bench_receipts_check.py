"""``powermeter receipts check`` over N stored receipts (default 1,000,000) vs reading them.

Goal (issue 14): every stored receipt verified in ≤ 10 s for 1M receipts. The receipts are written by
the real write path (``ComputeJobs.record``: canonical leaves, Merkle tree, Ed25519 signature) in
batches of ``--batch`` jobs, into a SQLite file. Then, in the same process:

* baseline: stream every receipt row and every tree row (what any check must read at least);
* check: ``integrity.check_all`` (rebuild each leaf, compare with its tree, root, signature);
* the same check after one row is altered, which must name exactly that receipt.

    python benchmarks/bench_receipts_check.py [--receipts 1000000] [--batch 10000]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

GEOS = ["US", "EU", "DE", "FR", "US-CA", "CAISO", "aws:us-east-1", "gcp:europe-west1", "azure:westeurope", "IN"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--receipts", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=10_000, help="jobs per signed tree (a /v1/batch request)")
    args = ap.parse_args()

    from powermeter.composition import account_service, register_tables
    from powermeter.infra.db import Database, migrate
    from powermeter.infra.security import Signer
    from powermeter.jobs import integrity
    from powermeter.jobs.schemas import JobIn
    from powermeter.jobs.service import ComputeJobs
    from powermeter.settings import Settings

    tmp = Path(tempfile.mkdtemp(prefix="pm-check-"))
    secret = "bench-secret-0123456789abcdef0123456789"  # noqa: S105 - a benchmark's throwaway key
    settings = Settings(
        env="test", data_dir=tmp, secret_key=secret, plans_json='{"dev": {"daily_calls": null, "daily_kwh": null}}'
    )
    register_tables()
    db = Database(f"sqlite:///{tmp / 'pm.db'}")
    migrate(db.engine)
    signer = Signer(settings.resolved_secret())
    now = datetime(2026, 11, 22, 12, tzinfo=UTC)
    svc = ComputeJobs()
    with db.begin() as conn:
        accounts = account_service(settings, settings.resolved_secret())
        acct = accounts.create_account(conn, "bench@example.com", now)
        accounts.create_key(conn, acct, "k", now)
    principal = accounts.Principal(acct, "bench@example.com", settings.plan("dev"), "key_x", "k", "pm_…", frozenset())
    t0 = time.perf_counter()
    written = 0
    while written < args.receipts:
        n = min(args.batch, args.receipts - written)
        jobs = [
            JobIn(
                job_id=f"j{written + i}",
                duration_minutes=30 + i % 240,
                cpu_cores=1 + i % 32,
                memory_gb=4 * (i % 16),
                gpu_cores=(1 + i % 4) if i % 3 == 0 else 0,
                geo_iso=GEOS[i % len(GEOS)],
            )
            for i in range(n)
        ]
        with db.begin() as conn:
            svc.record(conn, principal, signer, now, jobs, field_prefix="")
        written += n
    print(
        f"wrote {written:,} receipts in {written // args.batch + (written % args.batch > 0):,} trees "
        f"in {time.perf_counter() - t0:.1f} s"
    )

    t0 = time.perf_counter()
    with db.connect() as conn:
        rows = sum(
            1
            for _ in conn.execution_options(stream_results=True, yield_per=10_000).execute(
                sa.text(
                    "SELECT seq, receipt_id, account_id, job_id, tree_seq, leaf_index, profile_index, kwh, "
                    "co2_grams, geo_iso, options FROM receipts ORDER BY seq"
                )
            )
        )
        trees = sum(1 for _ in conn.execute(sa.text("SELECT * FROM receipt_trees ORDER BY seq")))
    baseline = time.perf_counter() - t0
    print(f"baseline: read {rows:,} receipt rows and {trees:,} tree rows in {baseline:.2f} s")

    t0, c0 = time.perf_counter(), time.process_time()
    res = integrity.check_all(db.connect, signer.public_key, signer.key_id)
    check, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert res.ok, res
    assert res.receipts == written, res
    print(
        f"check:    {res.receipts:,} receipts, {res.trees:,} trees verified in {check:.2f} s wall, {cpu:.2f} s CPU "
        f"({check / baseline:.1f}× the baseline read; {cpu / written * 1e6:.1f} µs CPU a receipt → "
        f"{cpu / written * 1e6:.1f} s CPU for 1M; goal ≤ 10 s for 1M)"
    )

    for workers in (2, 4):
        t0 = time.perf_counter()
        res = integrity.check_parallel(str(db.engine.url), secret, workers)
        wall = time.perf_counter() - t0
        assert res.ok, res
        assert res.receipts == written, res
        print(f"check with {workers} processes: {wall:.2f} s wall ({check / wall:.2f}× faster than one process)")

    with db.begin() as conn:
        conn.execute(sa.text("UPDATE receipts SET kwh = kwh * 0.5 WHERE job_id = 'j12345'"))
    t0 = time.perf_counter()
    res = integrity.check_all(db.connect, signer.public_key, signer.key_id)
    print(f"altered:  {[f.job_id for f in res.failures]} found in {time.perf_counter() - t0:.2f} s")
    assert [f.job_id for f in res.failures] == ["j12345"] or args.receipts <= 12345
    print(f"load average: {os.getloadavg()}")
    db.dispose()


if __name__ == "__main__":
    main()
