"""Emissions report over a year of records (issue 8 goal: 1,000,000 receipts + inference records ≤ 5 s).

    python benchmarks/bench_reports.py [--jobs 500000] [--inference 500000] [--db PATH]
    python benchmarks/bench_reports.py --postgres postgresql+psycopg://postgres@127.0.0.1:5432/test \
        --jobs 900000 --inference 100000 --repeat 1 --formats json

Builds (once; reused when ``--db`` names an existing file) an account with ``--jobs`` compute-job
receipts made through ``POST /v1/batch`` (10,000 jobs a request, spread over 2026, so the trees,
profiles and leaf hashes are the real ones) and ``--inference`` AI inference records bulk-inserted
from three real records (new ids and dates). Then times:

* ``GET /v1/reports/emissions`` for the year, JSON and CSV (in-process client: the whole request —
  authentication, aggregation, listing and hashing every covered record, Merkle root, signature,
  DOWNLOAD audit entry, rendering);
* the phases inside it: SQL aggregation, coverage (list + hash + Merkle), the rest.

``--postgres URL`` runs against PostgreSQL in a fresh schema (dropped at the end unless ``--keep``);
its inference records are seeded with ``COPY`` (the benchmark's seeding only). Setting
POWERMETER_TEST_POSTGRES_URL instead reuses the schema ``bench_reports`` between runs.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

YEAR_START = datetime(2026, 1, 1, tzinfo=UTC)
EMAIL = "bench-reports@example.com"
SECRET = "bench-secret-0123456789abcdef0123456789abcdef"  # noqa: S105 - a benchmark database
LOCATIONS = ("US", "FR", "DE", "IN", "aws:us-west-1", "gcp:europe-west1", "EU", "US-CA")


def _settings(db_url: str, data_dir: Path) -> Any:
    from powermeter.settings import Settings

    return Settings(
        env="test",
        data_dir=data_dir,
        database_url=db_url,
        secret_key=SECRET,
        log_requests=False,
        plans_json='{"scale": {"daily_calls": 100000000, "daily_kwh": 1e12}}',
    )


def _app(settings: Any, clock: Any) -> Any:
    from powermeter.app import create_app

    return create_app(settings, clock=clock)


def build(settings: Any, n_jobs: int, n_inference: int) -> str:
    from fastapi.testclient import TestClient

    from powermeter.composition import account_service
    from powermeter.inference import repository as inference_repo
    from powermeter.inference.tables import inference_records
    from powermeter.infra.clock import FrozenClock

    clock = FrozenClock(YEAR_START)
    app = _app(settings, clock)
    st = app.state.pm
    with st.db.begin() as conn:
        accounts = account_service(settings, st.secret)
        acct = accounts.create_account(conn, EMAIL, clock.now(), plan="scale")
        key = accounts.create_key(conn, acct, "bench", clock.now(), None).key
    h = {"Authorization": f"Bearer {key}"}
    rnd = random.Random(8)
    t0 = time.perf_counter()
    batches = max(1, n_jobs // 10_000)
    with TestClient(app) as client:
        done = 0
        for b in range(batches):
            size = min(10_000, n_jobs - done)
            if size <= 0:
                break
            clock.set(YEAR_START + timedelta(days=360 * b / batches, hours=rnd.randint(0, 23)))
            jobs = []
            for i in range(size):
                job: dict[str, Any] = {
                    "job_id": f"b{b}-{i}",
                    "duration_minutes": rnd.randint(1, 600),
                    "cpu_cores": rnd.choice((2, 4, 8, 16)),
                    "memory_gb": rnd.choice((8, 16, 64)),
                    "gpu_cores": rnd.choice((0, 0, 1, 2)),
                    "geo_iso": rnd.choice(LOCATIONS),
                }
                if i % 4 == 0:
                    job["provider"] = "on-prem"
                jobs.append(job)
            r = client.post("/v1/batch", json={"jobs": jobs}, headers=h)
            r.raise_for_status()
            done += size
        print(f"built {done:,} receipts in {batches} batches in {time.perf_counter() - t0:.1f} s")
        clock.set(YEAR_START)
        for provider, model in (("OpenAI", "gpt-4o"), ("Google", "gemini-3-pro"), ("Anthropic", "claude-sonnet-4")):
            client.post(
                "/v1/inference",
                json={"provider": provider, "model": model, "prompt_tokens": 800, "completion_tokens": 300},
                headers=h,
            ).raise_for_status()
    t0 = time.perf_counter()
    with st.db.begin() as conn:
        templates = [
            dict(r._mapping)
            for r in conn.execute(inference_records.select().where(inference_records.c.account_id == acct))
        ]
        template_details = [inference_repo.get_details(conn, t["id"]) or "{}" for t in templates]
    step = timedelta(seconds=360 * 86400 / max(n_inference, 1))
    for lo in range(3, n_inference, 20_000):
        rows, details = [], []
        for i in range(lo, min(lo + 20_000, n_inference)):
            details.append(template_details[i % 3])
            t = dict(templates[i % 3])
            t.pop("seq", None)
            t["id"] = str(uuid.UUID(int=i + 1))
            t["log_date"] = YEAR_START + step * i
            t["energy_wh"] = t["energy_wh"] * (0.5 + (i % 100) / 100)
            rows.append(t)
        with st.db.begin() as conn:
            if conn.dialect.name == "postgresql":
                _copy_records(conn, rows, details)
            else:
                inference_repo.insert_records(conn, rows, details)
    with st.db.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    print(f"built {n_inference:,} inference records in {time.perf_counter() - t0:.1f} s")
    st.db.dispose()
    return key


def time_retention(settings: Any) -> None:
    """Retention of the oldest month: on 2027-02-15 with 12 months kept, everything before 2026-02-01 goes
    (receipt trees made in January 2026 with their receipts, inference records booked in January)."""
    from powermeter.infra.db import Database
    from powermeter.reports import retention

    db = Database(settings.resolved_database_url)
    t0, c0, load0 = time.perf_counter(), time.process_time(), os.getloadavg()[0]
    res = retention.apply(db, datetime(2027, 2, 15, tzinfo=UTC), retention.Policy(12, batch_rows=5000))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    d = res.as_json()["deleted"]
    print(
        f"retention (cut-off {res.cutoff:%Y-%m-%d}, batches of 5,000): {d['receipts']:,} receipts in "
        f"{d['receipt_trees']:,} trees, {d['inference_records']:,} inference records, "
        f"{d['inference_daily_rows']:,} rollup rows in {res.transactions} transactions: {wall:.2f} s wall, "
        f"{cpu:.2f} s CPU of this process; load average {load0:.1f} → {os.getloadavg()[0]:.1f}"
    )
    db.dispose()


def _copy_records(conn: Any, rows: list[dict[str, Any]], details: list[str]) -> None:
    """PostgreSQL: ``COPY`` the records and their details (seeding only; the rollups are not needed)."""
    cols = list(rows[0])
    cur = conn.connection.driver_connection.cursor()
    with cur.copy(f"COPY inference_records ({', '.join(cols)}) FROM STDIN") as copy:
        for r in rows:
            copy.write_row([r[c] for c in cols])
    with cur.copy("COPY inference_details (id, details) FROM STDIN") as copy:
        for r, d in zip(rows, details, strict=True):
            copy.write_row((r["id"], d))


def run(
    settings: Any, key: str, repeat: int, formats: tuple[str, ...] = ("json", "csv"), *, phases: bool = True
) -> None:
    from fastapi.testclient import TestClient

    from powermeter.infra.clock import FrozenClock
    from powermeter.reports import service

    clock = FrozenClock(datetime(2026, 12, 31, 12, tzinfo=UTC))
    app = _app(settings, clock)
    st = app.state.pm
    h = {"Authorization": f"Bearer {key}"}
    params = {"start": "2026-01-01", "end": "2026-12-31"}
    with TestClient(app) as client:
        for fmt in formats:
            times, cpus = [], []
            for _ in range(repeat):
                t0, c0 = time.perf_counter(), time.process_time()
                r = client.get("/v1/reports/emissions", params={**params, "format": fmt}, headers=h)
                r.raise_for_status()
                size = len(r.content)
                times.append(time.perf_counter() - t0)
                cpus.append(time.process_time() - c0)
            load = os.getloadavg()[0]
            print(
                f"GET /v1/reports/emissions format={fmt}: {r.headers['x-report-records']} records, "
                f"{size / 1e6:.1f} MB, best {min(times):.2f} s, median {statistics.median(times):.2f} s "
                f"(goal ≤ 5 s); this process's CPU best {min(cpus):.2f} s; load average {load:.1f}"
            )
    r = None  # the response body (~0.8 kB a record) is not needed for the phases
    if not phases:
        st.db.dispose()
        return
    # phases, in one transaction like the request
    period = service.parse_period("2026-01-01", "2026-12-31", clock.now())
    with st.db.begin() as conn:
        from powermeter.accounts import repository as accounts_repo
        from powermeter.methodology import reporting as rp
        from powermeter.reports import boundary, compose, ledger

        acct = accounts_repo.get_account_by_email(conn, EMAIL).id
        with service.snapshot(st.db, conn) as rconn:
            t0 = time.perf_counter()
            led = ledger.collect(rconn, acct, period.start, period.end)
            t_ledger = time.perf_counter() - t0
            t0 = time.perf_counter()
            comp = compose.compose(
                led.records,
                period.start,
                period.end,
                "month",
                boundary.load(rconn, acct),
                service._inference_site,
                service.JOB_METHODOLOGY,
            )
            t_compose = time.perf_counter() - t0
            t0 = time.perf_counter()
            rp.build_figures(comp.rows, "month", comp.labels)
            t_fig = time.perf_counter() - t0
            t0 = time.perf_counter()
            doc = service.build_document(
                rconn,
                st.signer,
                account_id=acct,
                email=EMAIL,
                period=period,
                group_by="month",
                view="report",
                now=clock.now(),
            )
            t_doc = time.perf_counter() - t0
            t0 = time.perf_counter()
            rp.content_digest(doc)
            t_digest = time.perf_counter() - t0
    print(
        f"phases over {len(comp.entries):,} entries ({len(led.records):,} records, {len(led.trees):,} trees, "
        f"{len(led.problems):,} problems): ledger (read + rebuild + re-hash) {t_ledger:.2f} s; compose "
        f"{t_compose:.2f} s; figures {t_fig:.2f} s; whole document {t_doc:.2f} s, of which content digest "
        f"{t_digest:.2f} s"
    )
    st.db.dispose()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=500_000)
    ap.add_argument("--inference", type=int, default=500_000)
    ap.add_argument("--db", help="SQLite file to build or reuse")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--postgres", metavar="URL", help="PostgreSQL server: a fresh schema for this run")
    ap.add_argument("--keep", action="store_true", help="keep --postgres's schema (its name is printed)")
    ap.add_argument("--formats", default="json,csv", help="report formats to time (comma-separated)")
    ap.add_argument("--no-phases", action="store_true", help="skip the phase breakdown (a second build)")
    ap.add_argument("--retention", action="store_true", help="then time retention of the oldest month")
    args = ap.parse_args()
    formats = tuple(f.strip() for f in args.formats.split(",") if f.strip())
    data_dir = Path(tempfile.mkdtemp())
    if args.postgres:
        with _fresh_schema(args.postgres, keep=args.keep) as url:
            settings = _settings(url, data_dir)
            key = build(settings, args.jobs, args.inference)
            print(f"database: PostgreSQL (fresh schema); load average {os.getloadavg()[0]:.1f}")
            run(settings, key, args.repeat, formats, phases=not args.no_phases)
            if args.retention:
                time_retention(settings)
        return
    pg = os.environ.get("POWERMETER_TEST_POSTGRES_URL")
    if pg:
        import sqlalchemy as sa
        from tests.conftest import pg_schema_url

        schema = "bench_reports"
        admin = sa.create_engine(pg)
        with admin.begin() as conn:
            exists = conn.exec_driver_sql(
                "SELECT 1 FROM information_schema.schemata WHERE schema_name = %s", (schema,)
            ).first()
            if not exists:
                conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        admin.dispose()
        url = pg_schema_url(pg, schema)
        fresh = not exists
    else:
        path = Path(args.db) if args.db else data_dir / "reports.db"
        fresh = not path.exists()
        url = f"sqlite:///{path}"
    settings = _settings(url, data_dir)
    marker = data_dir / "key" if not args.db else Path(args.db + ".key")
    if pg:
        marker = Path(tempfile.gettempdir()) / "bench_reports_pg.key"
    if fresh or not marker.exists():
        key = build(settings, args.jobs, args.inference)
        marker.write_text(key)
    else:
        key = marker.read_text().strip()
    print(f"database: {'PostgreSQL' if pg else 'SQLite'}")
    run(settings, key, args.repeat, formats, phases=not args.no_phases)
    if args.retention:
        time_retention(settings)


@contextmanager
def _fresh_schema(pg_url: str, *, keep: bool) -> Iterator[str]:
    """A new schema on ``pg_url`` (like benchmarks/bench_report.py), dropped afterwards unless ``keep``."""
    import secrets

    import sqlalchemy as sa

    schema = "bench_reports_" + secrets.token_hex(6)
    admin = sa.create_engine(pg_url)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    try:
        sep = "&" if "?" in pg_url else "?"
        yield f"{pg_url}{sep}options=-csearch_path%3D{schema}"
    finally:
        if keep:
            print(f"schema kept: {schema}")
        else:
            with admin.begin() as conn:
                conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.dispose()


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
