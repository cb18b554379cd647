"""A database written by the version before the composition root and the single canonical-JSON encoder
(commit f91d4ee, ``tests/fixtures/legacy/v0_2.sql``, made by ``generate_v0_2.py``) is migrated to this
version, and everything it holds still checks out: its receipts verify offline and are served unchanged,
its audit chain (key events, anchored tree heads, views, a checkpoint) verifies, the emissions report it
signed verifies offline with this version's verifier, and a report built now from its records covers
them all and verifies."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from powermeter.app import create_app
from powermeter.cli import app as cli
from powermeter.infra.clock import FrozenClock
from powermeter.jobs.receipts import verify_document
from powermeter.settings import Settings
from tests.conftest import SECRET

LEGACY = Path(__file__).parent.parent / "fixtures" / "legacy"


@pytest.fixture
def saved() -> dict[str, Any]:
    receipts: dict[str, Any] = json.loads((LEGACY / "v0_2_receipts.json").read_text())
    report: dict[str, Any] = json.loads((LEGACY / "v0_2_report.json").read_text())
    return receipts | report


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    db_path = tmp_path / "legacy.db"
    con = sqlite3.connect(db_path)
    con.executescript((LEGACY / "v0_2.sql").read_text())
    con.close()
    settings = Settings(
        env="test",
        data_dir=tmp_path / "data",
        database_url=f"sqlite:///{db_path}",
        secret_key=SECRET,
        log_requests=False,
    )
    app = create_app(settings, clock=FrozenClock(datetime(2026, 12, 3, 9, 0, tzinfo=UTC)))
    with TestClient(app) as c:
        yield c
    app.state.pm.db.dispose()


def test_receipts_verify_offline_and_are_served_unchanged(client: TestClient, saved: dict[str, Any]) -> None:
    pem = client.get("/v1/receipts/public-key").json()["data"]["public_key_pem"]
    assert pem == saved["public_key_pem"]
    h = {"Authorization": f"Bearer {saved['api_key']}"}
    assert len(saved["receipts"]) == 4
    for old in saved["receipts"]:
        assert verify_document(old, pem).ok
        new = client.get(f"/v1/receipts/{old['data']['receipt_id']}", headers=h)
        assert new.status_code == 200, new.text
        for member in ("receipt", "proof", "signed_tree_head", "kwh", "co2_grams", "job_id", "timestamp"):
            assert new.json()["data"][member] == old["data"][member], member


def test_audit_chain_with_anchored_tree_heads_verifies(client: TestClient, saved: dict[str, Any]) -> None:
    h = {"Authorization": f"Bearer {saved['api_key']}"}
    data = client.get("/v1/audit/verify", headers=h).json()["data"]
    assert data["ok"] is True, data
    actions = {
        e["action_type"] for e in client.get("/v1/audit/logs", headers=h, params={"limit": 200}).json()["data"]["logs"]
    }
    assert {"ACCOUNT_CREATED", "KEY_CREATED", "VIEW"} <= actions
    anchors = client.get("/v1/audit/logs", headers=h, params={"action_type": "TREE_SIGNED"}).json()["data"]
    assert anchors["total"] == 4  # the report's tree, the batch's tree, two inference records


def test_the_old_signed_report_verifies_with_this_versions_verifier(tmp_path: Path, saved: dict[str, Any]) -> None:
    report = tmp_path / "report.json"
    report.write_text(json.dumps(saved["report"]))
    key = tmp_path / "key.pem"
    key.write_text(saved["public_key_pem"])
    ok = CliRunner().invoke(cli, ["reports", "verify", str(report), "--public-key", str(key)])
    assert ok.exit_code == 0, ok.output
    assert "VALID" in ok.output
    changed = json.loads(json.dumps(saved["report"]))
    changed["data"]["totals"] = {**changed["data"]["totals"], "energy_kwh": 0.0}
    report.write_text(json.dumps(changed))
    bad = CliRunner().invoke(cli, ["reports", "verify", str(report), "--public-key", str(key)])
    assert bad.exit_code == 1, bad.output


def test_a_report_built_now_covers_the_old_records_and_verifies(
    client: TestClient, saved: dict[str, Any], tmp_path: Path
) -> None:
    h = {"Authorization": f"Bearer {saved['api_key']}"}
    r = client.get("/v1/reports/emissions", headers=h, params={"start": "2025-01-01", "end": "2025-12-31"})
    assert r.status_code == 200, r.text
    new, old = r.json()["data"], saved["report"]["data"]
    assert new["totals"]["records"] == old["totals"]["records"] > 0
    assert new["totals"]["inference_records"] == old["totals"]["inference_records"] > 0
    assert new["completeness"]["problems"] == []
    path = tmp_path / "now.json"
    path.write_text(r.text)
    key = tmp_path / "key.pem"
    key.write_text(saved["public_key_pem"])
    res = CliRunner().invoke(cli, ["reports", "verify", str(path), "--public-key", str(key)])
    assert res.exit_code == 0, res.output
