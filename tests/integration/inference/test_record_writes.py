"""How a record's rows are written: a repeated idempotency key is a unique violation the routes recognise
(409 BATCH_CONFLICT), whichever driver path wrote it (on PostgreSQL the record, its details and its
signature go in one pipelined round trip on the driver, outside SQLAlchemy's error wrapping)."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi.testclient import TestClient

from powermeter.inference import repository as repo
from powermeter.inference.tables import inference_details, inference_records, inference_signatures
from powermeter.infra.db.faults import UNIQUE_VIOLATIONS
from powermeter.infra.state import AppState

BODY = {"provider": "openai", "model": "gpt-4o", "prompt_tokens": 500, "completion_tokens": 300}


def test_a_repeated_idempotency_key_is_a_unique_violation_and_stores_nothing(
    client: TestClient, auth: dict[str, str], state: AppState
) -> None:
    r = client.post("/v1/inference/batch", headers=auth, json={"records": [{**BODY, "idempotency_key": "k-1"}]})
    assert r.status_code == 200, r.text
    with state.db.connect() as conn:
        stored = conn.execute(sa.select(inference_records).where(inference_records.c.idempotency_key == "k-1")).one()
        row = dict(stored._mapping)
        row.pop("seq")
        row["id"] = "0190a000-0000-7000-8000-000000000001"
        signature = {
            "id": row["id"],
            "account_id": row["account_id"],
            "application": None,
            "received_at": "2026-12-03T12:00:00Z",
            "leaf_sha256": "0" * 64,
            "key_id": "k",
            "signature": "s",
        }
    raised: BaseException | None = None
    with state.db.begin() as conn:
        try:
            repo.insert_record(conn, row, "{}", signature)
        except UNIQUE_VIOLATIONS as e:
            raised = e
        conn.rollback()
    assert raised is not None, "the same (account, idempotency key) twice must be refused"
    with state.db.connect() as conn:
        for table in (inference_records, inference_details, inference_signatures):
            assert conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one() == 1, table.name
