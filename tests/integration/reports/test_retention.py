"""Issue 13: retention deletes whole receipt trees and inference records older than N months in bounded
transactions, on SQLite and PostgreSQL alike, and keeps an account's closed reporting years unless told
otherwise. A report over the kept months still verifies; one over deleted months names what is gone."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from powermeter.cli import app as cli_app
from powermeter.composition import build_services, retention_policy
from powermeter.inference.tables import inference_daily, inference_details, inference_records, inference_signatures
from powermeter.infra.clock import FrozenClock
from powermeter.infra.state import AppState
from powermeter.jobs.tables import receipt_trees, receipts
from powermeter.reports import retention, service
from powermeter.settings import Settings
from tests.conftest import SECRET, MakeKey

OLD = datetime(2025, 3, 10, 12, tzinfo=UTC)  # before the cut-off of 12 months on NOW
NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)  # cut-off 2025-11-01
KEEP_12 = retention.Policy(12)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def job(client: TestClient, key: str, **fields: Any) -> str:
    body = {"job_id": f"j-{uuid.uuid4().hex[:10]}", "duration_minutes": 60, "cpu_cores": 4, "geo_iso": "DE", **fields}
    r = client.post("/v1/report", json=body, headers=bearer(key))
    assert r.status_code == 200, r.text
    return str(r.json()["data"]["receipt_id"])


def batch(client: TestClient, key: str, n: int) -> list[str]:
    jobs = [{"job_id": f"b-{uuid.uuid4().hex[:10]}", "duration_minutes": 30, "geo_iso": "FR"} for _ in range(n)]
    r = client.post("/v1/batch", json={"jobs": jobs}, headers=bearer(key))
    assert r.status_code == 200, r.text
    return [str(x["receipt_id"]) for x in r.json()["data"]["jobs"]]


def inference(client: TestClient, key: str) -> str:
    body = {"provider": "OpenAI", "model": "gpt-4o", "prompt_tokens": 500, "completion_tokens": 300}
    r = client.post("/v1/inference", json=body, headers=bearer(key))
    assert r.status_code == 200, r.text
    return str(r.json()["id"])


def report(client: TestClient, key: str, year: int) -> dict[str, Any]:
    r = client.get(
        "/v1/reports/emissions", params={"start": f"{year}-01-01", "end": f"{year}-12-31"}, headers=bearer(key)
    )
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()["data"]
    return data


def stored(state: AppState) -> dict[str, set[str]]:
    with state.db.begin() as conn:
        return {
            "receipts": {str(r[0]) for r in conn.execute(sa.select(receipts.c.receipt_id))},
            "trees": {str(r[0]) for r in conn.execute(sa.select(receipt_trees.c.tree_id))},
            "inference": {str(r[0]) for r in conn.execute(sa.select(inference_records.c.id))},
            "details": {str(r[0]) for r in conn.execute(sa.select(inference_details.c.id))},
            "signatures": {str(r[0]) for r in conn.execute(sa.select(inference_signatures.c.id))},
            "days": {str(r[0])[:10] for r in conn.execute(sa.select(inference_daily.c.day))},
        }


@pytest.fixture
def key(make_key: MakeKey) -> str:
    return make_key(email=f"r-{uuid.uuid4().hex[:8]}@example.com", plan="scale")


@pytest.fixture
def two_years(client: TestClient, clock: FrozenClock, key: str) -> dict[str, list[str]]:
    """Records made in March 2025 (older than 12 months on NOW) and in November 2026."""
    clock.set(OLD)
    old = {"jobs": [job(client, key), *batch(client, key, 3)], "inference": [inference(client, key)]}
    clock.set(NOW)
    new = {"jobs": [job(client, key), *batch(client, key, 2)], "inference": [inference(client, key)]}
    return {"old_jobs": old["jobs"], "old_inference": old["inference"], "new_jobs": new["jobs"],
            "new_inference": new["inference"]}  # fmt: skip


def test_cutoff_is_the_first_day_of_the_month_n_months_back() -> None:
    assert retention.cutoff(datetime(2026, 11, 22, 12, tzinfo=UTC), 12) == datetime(2025, 11, 1, tzinfo=UTC)
    assert retention.cutoff(datetime(2026, 1, 31, tzinfo=UTC), 1) == datetime(2025, 12, 1, tzinfo=UTC)
    assert retention.cutoff(datetime(2026, 3, 1, tzinfo=UTC), 26) == datetime(2024, 1, 1, tzinfo=UTC)


def test_retention_deletes_old_trees_and_inference_and_keeps_the_rest(
    client: TestClient, state: AppState, key: str, two_years: dict[str, list[str]]
) -> None:
    before = stored(state)
    assert set(two_years["old_jobs"]) <= before["receipts"]
    assert "2025-03-10" in before["days"]

    res = retention.apply(state.db, NOW, KEEP_12)

    after = stored(state)
    assert res.cutoff == datetime(2025, 11, 1, tzinfo=UTC)
    assert res.receipts == 4
    assert res.receipt_trees == 2
    assert res.inference_records == 1
    assert after["receipts"] == before["receipts"] - set(two_years["old_jobs"])
    assert set(two_years["new_jobs"]) <= after["receipts"]
    assert len(after["trees"]) == len(before["trees"]) - 2
    for table in ("inference", "details", "signatures"):
        assert after[table] == before[table] - set(two_years["old_inference"]), table
    assert "2025-03-10" not in after["days"]
    assert "2026-11-22" in after["days"]

    # the kept year still verifies: nothing of it is missing
    doc26 = report(client, key, 2026)
    assert doc26["completeness"]["problems"] == []
    assert doc26["totals"]["records"] == 4
    assert service.verify_document(doc26).ok
    # the deleted months are reported as missing records (their anchors stay in the audit chain)
    doc25 = report(client, key, 2025)
    named = {p["record"] for p in doc25["completeness"]["problems"] if p["problem"] == "missing"}
    assert set(two_years["old_jobs"]) | set(two_years["old_inference"]) <= named
    assert client.get("/v1/audit/verify", headers=bearer(key)).json()["data"]["status"] == "ok"

    # a second run finds nothing more
    again = retention.apply(state.db, NOW, KEEP_12)
    assert (again.receipts, again.receipt_trees, again.inference_records) == (0, 0, 0)


def test_retention_works_in_bounded_transactions(
    client: TestClient, clock: FrozenClock, state: AppState, key: str
) -> None:
    clock.set(OLD)
    old_jobs = [job(client, key) for _ in range(5)]
    old_inference = [inference(client, key) for _ in range(7)]
    clock.set(NOW)

    res = retention.apply(state.db, NOW, retention.Policy(12, batch_rows=2))

    assert res.receipts == 5
    assert res.inference_records == 7
    assert res.transactions == 3 + 4  # 5 one-receipt trees by 2, 7 records by 2
    after = stored(state)
    assert not set(old_jobs) & after["receipts"]
    assert not set(old_inference) & after["inference"]


def test_closed_periods_are_kept_unless_the_setting_says_so(
    client: TestClient, clock: FrozenClock, state: AppState, key: str, make_key: MakeKey, tmp_path: Path
) -> None:
    other = make_key(email=f"o-{uuid.uuid4().hex[:8]}@example.com", plan="scale")
    clock.set(OLD)
    closed_job, closed_inf = job(client, key), inference(client, key)
    open_job, open_inf = job(client, other), inference(client, other)
    clock.set(NOW)
    r = client.post("/v1/reports/periods/2025/close", headers=bearer(key))
    assert r.status_code == 200, r.text
    signed = client.get("/v1/reports/emissions", params={"start": "2025-01-01", "end": "2025-12-31"},
                        headers=bearer(key))  # fmt: skip
    saved = tmp_path / "closed-2025.json"
    saved.write_bytes(signed.content)

    res = retention.apply(state.db, NOW, KEEP_12)

    after = stored(state)
    assert closed_job in after["receipts"]  # the closed year stays
    assert closed_inf in after["inference"]
    assert open_job not in after["receipts"]  # the other account's goes
    assert open_inf not in after["inference"]
    assert list(res.kept_from.values()) == [datetime(2025, 1, 1, tzinfo=UTC)]
    assert report(client, key, 2025)["completeness"]["problems"] == []

    res = retention.apply(state.db, NOW, retention.Policy(12, include_closed_periods=True))

    after = stored(state)
    assert closed_job not in after["receipts"]
    assert closed_inf not in after["inference"]
    assert res.receipts == 1
    assert res.inference_records == 1
    # a signed report saved before still verifies offline: its file carries everything it proves
    verified = CliRunner().invoke(cli_app, ["reports", "verify", str(saved)])
    assert verified.exit_code == 0, verified.output


def test_retention_is_off_by_default_and_runs_as_a_background_task(
    client: TestClient, state: AppState, clock: FrozenClock, key: str, settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    assert retention_policy(settings) is None
    on = settings.model_copy(update={"retention_months": 12, "retention_batch_rows": 100})
    assert retention_policy(on) == retention.Policy(12, False, 100)
    for st, n in ((state, 3), (dataclasses.replace(state, settings=on), 4)):
        tasks = build_services(st).background_tasks()
        names = [t.__qualname__ for t in tasks]
        for t in tasks:
            t.close()
        assert len(tasks) == n, names
        assert ("retention_task" in names) == (n == 4), names

    clock.set(OLD)
    old = job(client, key)
    clock.set(NOW)
    monkeypatch.setattr(retention, "FIRST_RUN_DELAY_S", 0.0)

    async def run_once() -> None:
        policy = retention_policy(on)
        assert policy is not None
        task = asyncio.create_task(retention.retention_task(state.db, clock, policy, 3600))
        for _ in range(200):
            await asyncio.sleep(0.05)
            if old not in stored(state)["receipts"]:
                break
        task.cancel()

    asyncio.run(run_once())
    assert old not in stored(state)["receipts"]


def test_retention_command(
    client: TestClient, clock: FrozenClock, state: AppState, key: str, settings: Settings,
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:  # fmt: skip
    monkeypatch.setenv("POWERMETER_DATABASE_URL", settings.resolved_database_url)
    monkeypatch.setenv("POWERMETER_SECRET_KEY", SECRET)
    monkeypatch.setenv("POWERMETER_DATA_DIR", str(tmp_path / "cli-data"))
    monkeypatch.setenv("POWERMETER_ENV", "test")
    monkeypatch.delenv("POWERMETER_RETENTION_MONTHS", raising=False)
    clock.set(datetime(2020, 5, 1, tzinfo=UTC))  # older than any cut-off the real clock gives
    old = job(client, key)

    missing = CliRunner().invoke(cli_app, ["reports", "retention"])
    assert missing.exit_code == 2
    assert "POWERMETER_RETENTION_MONTHS" in missing.output

    res = CliRunner().invoke(cli_app, ["reports", "retention", "--months", "12"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["deleted"]["receipts"] == 1
    assert out["deleted"]["receipt_trees"] == 1
    assert old not in stored(state)["receipts"]
