"""A database written by powermeter 0.1 (tests/fixtures/legacy/v0_1.sql) is migrated to this version, and
everything it holds still checks out: the receipts the old server handed out verify offline against the new
server's public key, the new server serves the same signed receipts, and the hash-chained audit log with its
old checkpoint verifies. Guards every change to migrations, canonical JSON, Merkle trees and signing."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from powermeter.app import create_app
from powermeter.composition import register_tables
from powermeter.infra.clock import FrozenClock
from powermeter.infra.db import make_engine, migrate
from powermeter.jobs.receipts import verify_document
from powermeter.settings import Settings
from tests.conftest import SECRET

LEGACY = Path(__file__).parent.parent / "fixtures" / "legacy"


@pytest.fixture
def legacy() -> dict[str, Any]:
    saved: dict[str, Any] = json.loads((LEGACY / "v0_1_receipts.json").read_text())
    return saved


@pytest.fixture
def legacy_client(tmp_path: Path) -> Iterator[TestClient]:
    db_path = tmp_path / "legacy.db"
    con = sqlite3.connect(db_path)
    con.executescript((LEGACY / "v0_1.sql").read_text())
    con.close()
    register_tables()
    engine = make_engine(f"sqlite:///{db_path}")
    migrate(engine)  # 0008 → head
    engine.dispose()
    settings = Settings(
        env="test",
        data_dir=tmp_path / "data",
        database_url=f"sqlite:///{db_path}",
        secret_key=SECRET,
        log_requests=False,
    )
    app = create_app(settings, clock=FrozenClock(datetime(2026, 11, 23, 9, 0, tzinfo=UTC)))
    with TestClient(app) as c:
        yield c
    app.state.pm.db.dispose()


def test_old_receipts_verify_offline_with_the_new_servers_key(
    legacy_client: TestClient, legacy: dict[str, Any]
) -> None:
    pem = legacy_client.get("/v1/receipts/public-key").json()["data"]["public_key_pem"]
    assert len(legacy["receipts"]) == 4
    for doc in legacy["receipts"]:
        result = verify_document(doc, pem)
        assert result.ok, (doc["data"]["receipt_id"], result)
    # and a changed figure is still caught (the check above can fail)
    tampered = json.loads(json.dumps(legacy["receipts"][0]))
    tampered["data"]["receipt"]["results"]["kwh"] *= 2
    assert not verify_document(tampered, pem).ok


def test_new_server_serves_the_same_signed_receipts(legacy_client: TestClient, legacy: dict[str, Any]) -> None:
    h = {"Authorization": f"Bearer {legacy['api_key']}"}  # the old key still authenticates
    for old in legacy["receipts"]:
        rid = old["data"]["receipt_id"]
        r = legacy_client.get(f"/v1/receipts/{rid}", headers=h)
        assert r.status_code == 200, r.text
        new = r.json()["data"]
        for member in ("receipt", "proof", "signed_tree_head", "kwh", "co2_grams", "job_id", "timestamp"):
            assert new[member] == old["data"][member], member


def test_old_audit_chain_and_checkpoint_verify(legacy_client: TestClient, legacy: dict[str, Any]) -> None:
    h = {"Authorization": f"Bearer {legacy['api_key']}"}
    r = legacy_client.get("/v1/audit/verify", headers=h)
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert data["ok"] is True, data
    assert data["entries_checked"] >= 6  # the old VIEW/DOWNLOAD/key entries, plus this session's views
