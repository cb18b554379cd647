"""SQLite on a small filesystem (a tmpfs of a few MB) that fills up, and then goes read-only: a clear
507 / 503 naming the cause, never a 500; the database intact (``PRAGMA integrity_check``); service
resumes when space (or writability) returns; every 200 answered is stored."""

from __future__ import annotations

import errno
import json
import os
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from powermeter.app import create_app
from powermeter.settings import Settings
from tests.accounts import accounts_for
from tests.conftest import SECRET
from tests.integration.faults.services import remount, small_fs_skip_reason, small_tmpfs

pytestmark = pytest.mark.slow

JOB = {"duration_minutes": 1, "cpu_cores": 1, "memory_gb": 1, "geo_iso": "US"}


@pytest.fixture
def fs(tmp_path: Path) -> Iterator[Path]:
    skip = small_fs_skip_reason(tmp_path / "probe")
    if skip:
        pytest.skip(skip)
    with small_tmpfs(tmp_path / "fs", "6m") as where:
        yield where


@pytest.fixture
def db_file(fs: Path, sqlite_template: Path) -> Path:
    path = fs / "powermeter.db"
    path.write_bytes(sqlite_template.read_bytes())  # the migrated schema
    return path


def _app(tmp_path: Path, db_file: Path) -> Any:
    settings = Settings(
        env="test",
        data_dir=tmp_path / "data",
        database_url=f"sqlite:///{db_file}",
        redis_url=None,
        secret_key=SECRET,
        log_requests=False,
        plans_json=json.dumps({"dev": {"daily_calls": None, "daily_kwh": None}}),
    )
    app = create_app(settings)
    st = app.state.pm
    with st.db.begin() as conn:
        acct = accounts_for(st.settings).create_account(conn, "disk@example.com", st.clock.now())
        key = accounts_for(st.settings).create_key(conn, acct, "disk", st.clock.now(), None).key
    return app, {"Authorization": f"Bearer {key}"}, {"X-API-Key": key}


def _fill(fs: Path) -> Path:
    """Write a file until the filesystem has no byte left."""
    filler = fs / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for size in (65536, 4096, 512, 1):
            while True:
                try:
                    os.write(fd, b"\0" * size)
                except OSError as e:
                    if e.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)
    return filler


def _batch(c: TestClient, h: dict[str, str], tag: str, n: int) -> Any:
    jobs = [{"job_id": f"{tag}-{i}", **JOB} for i in range(n)]
    return c.post("/v1/batch", headers=h, json={"jobs": jobs})


def _check_stored(db_file: Path, acknowledged: set[str], v1_ok: int) -> None:
    con = sqlite3.connect(db_file)
    try:
        assert con.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        stored = {r[0] for r in con.execute("SELECT job_id FROM receipts")}
        assert acknowledged <= stored, f"{len(acknowledged - stored)} acknowledged jobs lost"
        # nothing half-stored: SQLite reports no success it did not commit, so exactly the 200s are there,
        # each with its signed tree and counted once against the daily quota
        assert stored == acknowledged
        tree_sizes = con.execute("SELECT COALESCE(SUM(tree_size), 0) FROM receipt_trees").fetchone()[0]
        assert tree_sizes == len(stored)
        calls = con.execute("SELECT COALESCE(SUM(value), 0) FROM usage_counters WHERE metric = 'calls'").fetchone()[0]
        assert calls == v1_ok
    finally:
        con.close()


def test_sqlite_disk_full_answers_507_keeps_the_database_intact_and_resumes(
    tmp_path: Path,
    fs: Path,
    db_file: Path,
) -> None:
    app, h, _ = _app(tmp_path, db_file)
    acknowledged: set[str] = set()
    v1_ok = 0
    with TestClient(app) as c:
        for i in range(5):
            r = _batch(c, h, f"before{i}", 20)
            assert r.status_code == 200, r.text
            acknowledged |= {f"before{i}-{j}" for j in range(20)}
            v1_ok += 1
        filler = _fill(fs)

        answers = []
        for i in range(60):  # the WAL reuses its own pages at first; new pages soon need space
            r = _batch(c, h, f"full{i}", 200)
            answers.append(r)
            if r.status_code == 200:
                acknowledged |= {f"full{i}-{j}" for j in range(200)}
                v1_ok += 1
            if sum(1 for a in answers if a.status_code != 200) >= 3:
                break
        refused = [a for a in answers if a.status_code != 200]
        assert refused, "the full disk never refused a write"
        for r in refused:
            assert r.status_code == 507, r.text
            body = r.json()
            assert body["error_code"] == "INSUFFICIENT_STORAGE"
            assert "disk is full" in body["detail"]
            assert int(r.headers["Retry-After"]) == body["retry_after"] >= 1
        health = c.get("/healthz")
        assert health.status_code == 503
        assert health.json()["checks"]["database"] == "down: disk full"
        assert 'powermeter_db_unavailable_total{cause="disk full",status="507"}' in c.get("/metrics").text

        filler.unlink()  # space returns
        r = _batch(c, h, "after", 20)
        assert r.status_code == 200, r.text
        acknowledged |= {f"after-{j}" for j in range(20)}
        v1_ok += 1
        assert c.get("/healthz").status_code == 200
    app.state.pm.db.dispose()
    _check_stored(db_file, acknowledged, v1_ok)


def test_sqlite_read_only_disk_answers_503_naming_it_and_resumes(tmp_path: Path, fs: Path, db_file: Path) -> None:
    """Linux refuses to remount a filesystem read-only while files on it are open for writing, so the
    app's connections are closed first (as the app does itself after a failed write); the next request
    opens the database on the read-only disk."""
    app, h, hk = _app(tmp_path, db_file)
    st = app.state.pm
    acknowledged: set[str] = set()
    v1_ok = 0
    with TestClient(app) as c:
        r = _batch(c, h, "before", 10)
        assert r.status_code == 200
        acknowledged |= {f"before-{j}" for j in range(10)}
        v1_ok += 1

        login_page = c.get("/dashboard/login")
        assert login_page.status_code == 200
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', login_page.text)
        assert csrf

        st.db.units.bind()
        st.db.dispose()
        remount(fs, "ro")
        try:
            r = c.post("/v1/report", headers=h, json={"job_id": "ro", **JOB})
            assert r.status_code == 503, r.text
            assert r.json()["error_code"] == "DATABASE_READ_ONLY"
            assert int(r.headers["Retry-After"]) >= 1
            # the idempotency layer reads the database before the route: the same answer, no traceback
            replayable = c.post("/v1/report", headers={**h, "Idempotency-Key": "ro-1"}, json={"job_id": "ro1", **JOB})
            assert replayable.status_code == 503, replayable.text
            assert replayable.json()["error_code"] == "DATABASE_READ_ONLY"
            dev = c.post("/api/v1/me/devices", headers=hk, json={"name": "lamp", "watts": 10})
            assert dev.status_code == 503, dev.text
            assert dev.json()["error"] == "database_read_only"  # the {"error": ...} shape of seed 001
            health = c.get("/healthz")
            assert health.status_code == 503
            assert health.json()["checks"]["database"].startswith("down: read-only")
            page = c.post(
                "/dashboard/login",
                data={
                    "csrf_token": csrf.group(1),
                    "email": "disk@example.com",
                    "password": "whatever",
                    "next": "/dashboard/",
                },
            )
            assert page.status_code == 503  # the dashboard says so on a page, not a 500
            assert page.headers["content-type"].startswith("text/html")
            assert "read-only" in page.text
            assert int(page.headers["Retry-After"]) >= 1
        finally:
            remount(fs, "rw")
        r = c.post("/v1/report", headers=h, json={"job_id": "after", **JOB})
        assert r.status_code == 200, r.text
        acknowledged.add("after")
        v1_ok += 1
        assert c.get("/healthz").status_code == 200
    app.state.pm.db.dispose()
    _check_stored(db_file, acknowledged, v1_ok)
