"""/v1/audit/*: the seed's log shape, verification naming the tampered entry, signed checkpoints."""

from __future__ import annotations

import base64
import json
import re
import time
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fastapi.testclient import TestClient

from powermeter.app import create_app
from powermeter.audit import service
from powermeter.infra.clock import FrozenClock
from powermeter.infra.state import AppState
from powermeter.methodology.audit_chain import chain_entry
from powermeter.settings import Settings
from tests.conftest import MakeKey
from tests.integration.audit.conftest import Account, Append, seq_of, sql

HEX64 = re.compile(r"^[0-9a-f]{64}$")
COLUMNS = [
    "id",
    "action_type",
    "receipt_id",
    "actor_key_id",
    "actor_masked_key",
    "details",
    "timestamp",
    "prev_hash",
    "entry_hash",
    "seq",
]


def verify(client: TestClient, account: Account) -> dict:  # type: ignore[type-arg]
    r = client.get("/v1/audit/verify", headers=account.headers)
    assert r.status_code == 200, r.text
    data: dict = r.json()["data"]  # type: ignore[type-arg]
    return data


# ---------------------------------------------------------------- the seed's shape


def test_logs_have_the_seed_shape_newest_first(client: TestClient, account: Account, append: Append) -> None:
    made = append(3, "VIEW", "rcpt_abc123") + append(1, "DOWNLOAD", "rcpt_def456")
    r = client.get("/v1/audit/logs?action_type=VIEW&limit=50", headers=account.headers)
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "success"
    logs = body["data"]["logs"]
    assert body["data"]["total"] == 3
    assert [x["id"] for x in logs] == [e.id for e in reversed(made[:3])]
    for log in logs:
        assert log["id"].startswith("audit_")
        assert log["action_type"] == "VIEW"
        assert log["receipt_id"] == "rcpt_abc123"
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", log["timestamp"])
        assert HEX64.match(log["signature"])
        assert log["verified"] is True
    assert logs[0]["signature"] == made[2].entry_hash


def test_logs_filter_by_receipt_and_limit_and_default_to_100(
    client: TestClient, account: Account, append: Append
) -> None:
    append(2, "VIEW", "rcpt_one")
    append(1, "EDIT", "rcpt_two")
    r = client.get("/v1/audit/logs", params={"receipt_id": "rcpt_two"}, headers=account.headers)
    assert [(x["action_type"], x["receipt_id"]) for x in r.json()["data"]["logs"]] == [("EDIT", "rcpt_two")]
    r = client.get("/v1/audit/logs", params={"limit": 1}, headers=account.headers)
    data = r.json()["data"]
    assert len(data["logs"]) == 1
    assert data["total"] == 5  # ACCOUNT_CREATED, KEY_CREATED and the three above
    append(110, "VIEW", "rcpt_many")
    assert len(client.get("/v1/audit/logs", headers=account.headers).json()["data"]["logs"]) == 100


def test_key_and_account_lifecycle_is_logged(client: TestClient, account: Account, make_key: MakeKey) -> None:
    second = make_key(email="auditor@example.com", name="second")
    keys = client.get("/v1/api-keys", headers=account.headers).json()["data"]["keys"]
    second_id = next(k["id"] for k in keys if k["name"] == "second")
    assert client.delete(f"/v1/api-keys/{second_id}", headers=account.headers).status_code == 200
    logs = client.get("/v1/audit/logs", headers=account.headers).json()["data"]["logs"]
    assert [x["action_type"] for x in logs] == ["KEY_REVOKED", "KEY_CREATED", "KEY_CREATED", "ACCOUNT_CREATED"]
    assert logs[0]["details"]["key_id"] == second_id
    assert logs[0]["details"]["masked_key"].endswith(second[-4:])
    assert all(x["verified"] for x in logs)


def test_logs_need_the_audit_scope_and_a_valid_filter(client: TestClient, make_key: MakeKey, account: Account) -> None:
    assert client.get("/v1/audit/logs").status_code == 401
    other = make_key(email="nosee@example.com", scopes=["report:write"])
    r = client.get("/v1/audit/logs", headers={"Authorization": f"Bearer {other}"})
    assert r.status_code == 403
    assert "audit:read" in r.json()["detail"]
    r = client.get("/v1/audit/logs?action_type=DELETE", headers=account.headers)
    assert r.status_code == 400
    assert set(r.json()) >= {"detail", "error_code", "timestamp"}
    assert client.get("/v1/audit/logs?limit=0", headers=account.headers).status_code == 400


def test_accounts_see_only_their_own_log(
    client: TestClient, account: Account, make_key: MakeKey, append: Append
) -> None:
    append(2)
    other = make_key(email="other@example.com", scopes=["audit:read"])
    logs = client.get("/v1/audit/logs", headers={"Authorization": f"Bearer {other}"}).json()["data"]["logs"]
    assert [x["action_type"] for x in logs] == ["KEY_CREATED", "ACCOUNT_CREATED"]


# ---------------------------------------------------------------- verification


def test_an_untouched_log_verifies(client: TestClient, account: Account, append: Append) -> None:
    append(20)
    data = verify(client, account)
    assert data["ok"] is True
    assert data["status"] == "ok"
    assert data["entries_checked"] == 22
    assert data["verified_through_seq"] == 22
    assert data["first_break"] is None


@pytest.mark.parametrize("column", COLUMNS)
def test_changing_any_field_of_a_stored_entry_is_detected_naming_it(
    client: TestClient, account: Account, append: Append, state: AppState, column: str
) -> None:
    made = append(6)
    target = made[2]  # seq 5
    new_value = {
        "seq": 99,
        "details": '{"via":"dashboard"}',
        "timestamp": "2026-11-22T12:00:09.000Z",
        "entry_hash": "0" * 63 + "1",
        "prev_hash": "0" * 63 + "1",
        "receipt_id": "rcpt_other",
    }.get(column, "x_" + column)
    sql(state, f"UPDATE audit_entries SET {column} = :v WHERE id = :id", v=new_value, id=target.id)
    data = verify(client, account)
    assert data["ok"] is False
    br = data["first_break"]
    assert br["entry_id"] == (target.id if column != "id" else new_value)
    assert br["kind"] == "changed"
    assert data["verified_through_seq"] == target.seq - 1
    logs = client.get("/v1/audit/logs", headers=account.headers).json()["data"]["logs"]
    flags = {x["seq"]: x["verified"] for x in logs}
    assert all(v is (s < target.seq) for s, v in flags.items())


def test_deleting_an_entry_is_detected_naming_it(
    client: TestClient, account: Account, append: Append, state: AppState
) -> None:
    made = append(6)
    sql(state, "DELETE FROM audit_entries WHERE id = :id", id=made[1].id)
    br = verify(client, account)["first_break"]
    assert br["kind"] == "deleted"
    assert br["seq"] == made[1].seq
    assert f"seq {made[1].seq} deleted" in br["message"]
    assert br["entry_id"] == made[2].id  # where the gap shows


def test_inserting_an_entry_is_detected_naming_it(
    client: TestClient, account: Account, append: Append, state: AppState
) -> None:
    made = append(6)
    k = made[2].seq  # the forged entry takes this seq; the rest move up one
    sql(state, "UPDATE audit_entries SET seq = -seq WHERE account_id = :a AND seq >= :k", a=account.account_id, k=k)
    sql(state, "UPDATE audit_entries SET seq = 1 - seq WHERE account_id = :a AND seq < 0", a=account.account_id)
    forged = chain_entry(
        account_id=account.account_id,
        seq=k,
        entry_id="audit_forged",
        action_type="VIEW",
        receipt_id="rcpt_abc123",
        actor_key_id="key_test",
        actor_masked_key="pm_live_...wxyz",
        details={},
        timestamp=made[1].timestamp,
        prev_hash=made[1].entry_hash,
    )
    sql(
        state,
        "INSERT INTO audit_entries (account_id, seq, id, action_type, receipt_id, actor_key_id, "
        "actor_masked_key, details, timestamp, prev_hash, entry_hash) VALUES (:a, :s, :i, 'VIEW', 'rcpt_abc123', "
        "'key_test', 'pm_live_...wxyz', '{}', :t, :p, :h)",
        a=account.account_id,
        s=k,
        i=forged.id,
        t=forged.timestamp,
        p=forged.prev_hash,
        h=forged.entry_hash,
    )
    br = verify(client, account)["first_break"]
    assert br["kind"] == "inserted"
    assert br["entry_id"] == "audit_forged"


def test_reordering_two_entries_is_detected_naming_them(
    client: TestClient, account: Account, append: Append, state: AppState
) -> None:
    made = append(6)
    a, b = made[1], made[4]
    sql(state, "UPDATE audit_entries SET seq = -1 WHERE id = :id", id=a.id)
    sql(state, "UPDATE audit_entries SET seq = :s WHERE id = :id", s=a.seq, id=b.id)
    sql(state, "UPDATE audit_entries SET seq = :s WHERE id = :id", s=b.seq, id=a.id)
    data = verify(client, account)
    br = data["first_break"]
    assert br["kind"] == "reordered"
    assert br["entry_id"] == b.id
    assert br["seq"] == a.seq
    assert data["verified_through_seq"] == a.seq - 1


def test_a_rewritten_entry_with_a_recomputed_hash_is_named(
    client: TestClient, account: Account, append: Append, state: AppState
) -> None:
    made = append(5)
    t = made[1]
    redo = chain_entry(
        account_id=account.account_id,
        seq=t.seq,
        entry_id=t.id,
        action_type="EDIT",
        receipt_id=t.receipt_id,
        actor_key_id=t.actor_key_id,
        actor_masked_key=t.actor_masked_key,
        details={"via": "api"},
        timestamp=t.timestamp,
        prev_hash=t.prev_hash,
    )
    sql(
        state,
        "UPDATE audit_entries SET action_type = 'EDIT', entry_hash = :h WHERE id = :id",
        h=redo.entry_hash,
        id=t.id,
    )
    br = verify(client, account)["first_break"]
    assert (br["kind"], br["entry_id"]) == ("rewritten", t.id)


# ---------------------------------------------------------------- checkpoints


def test_checkpoints_are_signed_and_checkable_by_a_third_party(
    client: TestClient, account: Account, append: Append
) -> None:
    append(3)
    r = client.post("/v1/audit/checkpoints", headers=account.headers)
    assert r.status_code == 201
    cp = r.json()["data"]
    assert cp["seq"] == 5
    listed = client.get("/v1/audit/checkpoints", headers=account.headers).json()["data"]
    assert listed["total"] == 1
    assert listed["checkpoints"][0] == cp
    pem = listed["public_keys"][0]["public_key_pem"]
    # What a third party does: canonical JSON of the payload (here: sorted, compact, ASCII-only) + Ed25519.
    payload = {k: v for k, v in cp.items() if k != "signature"}
    message = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    public = serialization.load_pem_public_key(pem.encode())
    assert isinstance(public, Ed25519PublicKey)
    public.verify(base64.b64decode(cp["signature"]), message)  # raises if it does not verify
    logs = client.get("/v1/audit/logs", headers=account.headers).json()["data"]["logs"]
    assert cp["head_hash"] == logs[0]["signature"]
    data = verify(client, account)
    assert data["ok"] is True
    assert data["anchored_through_seq"] == 5
    assert data["last_checkpoint"] == cp


def test_checkpoints_chain_to_each_other(client: TestClient, account: Account, append: Append) -> None:
    first = client.post("/v1/audit/checkpoints", headers=account.headers).json()["data"]
    append(2)
    second = client.post("/v1/audit/checkpoints", headers=account.headers).json()["data"]
    assert first["prev_checkpoint_hash"] is None
    assert HEX64.match(second["prev_checkpoint_hash"])
    assert second["seq"] == first["seq"] + 2


def test_truncating_the_tail_after_a_checkpoint_is_detected(
    client: TestClient, account: Account, append: Append, state: AppState
) -> None:
    made = append(6)
    client.post("/v1/audit/checkpoints", headers=account.headers)
    # Cut the last three entries and cover the tracks in the head record too.
    sql(state, "DELETE FROM audit_entries WHERE account_id = :a AND seq > :s", a=account.account_id, s=made[2].seq)
    sql(
        state,
        "UPDATE audit_chain_heads SET seq = :s, head_hash = :h WHERE account_id = :a",
        s=made[2].seq,
        h=made[2].entry_hash,
        a=account.account_id,
    )
    data = verify(client, account)
    br = data["first_break"]
    assert br["kind"] == "truncated"
    assert br["seq"] == made[3].seq
    assert br["checkpoint_seq"] == made[5].seq


def test_truncating_the_tail_is_detected_by_the_head_record_too(
    client: TestClient, account: Account, append: Append, state: AppState
) -> None:
    made = append(4)
    sql(state, "DELETE FROM audit_entries WHERE id = :id", id=made[-1].id)
    br = verify(client, account)["first_break"]
    assert br["kind"] == "truncated"
    assert br["seq"] == made[-1].seq


def test_rewriting_the_whole_chain_is_caught_by_a_checkpoint(
    client: TestClient, account: Account, append: Append, state: AppState
) -> None:
    made = append(4)
    client.post("/v1/audit/checkpoints", headers=account.headers)
    # Recompute every hash from seq 3 on after changing entry 3: internally consistent again.
    with state.db.begin() as conn:
        rows = list(service.repo.iter_rows(conn, account.account_id))
    prev = rows[1][9]
    for row in rows[2:]:
        action = "EDIT" if row[0] == 3 else row[2]
        e = chain_entry(
            account_id=account.account_id,
            seq=row[0],
            entry_id=row[1],
            action_type=action,
            receipt_id=row[3],
            actor_key_id=row[4],
            actor_masked_key=row[5],
            details=json.loads(row[6]),
            timestamp=row[7],
            prev_hash=prev,
        )
        sql(
            state,
            "UPDATE audit_entries SET action_type = :t, prev_hash = :p, entry_hash = :h WHERE id = :id",
            t=action,
            p=e.prev_hash,
            h=e.entry_hash,
            id=row[1],
        )
        prev = e.entry_hash
    sql(state, "UPDATE audit_chain_heads SET head_hash = :h WHERE account_id = :a", h=prev, a=account.account_id)
    data = verify(client, account)
    br = data["first_break"]
    assert br["kind"] == "rewritten"
    assert br["entry_id"] == made[-1].id
    assert br["checkpoint_seq"] == made[-1].seq
    assert data["verified_through_seq"] == 0


def test_a_forged_checkpoint_is_detected(client: TestClient, account: Account, append: Append, state: AppState) -> None:
    append(2)
    client.post("/v1/audit/checkpoints", headers=account.headers)
    sql(state, "UPDATE audit_checkpoints SET seq = 3 WHERE account_id = :a", a=account.account_id)
    br = verify(client, account)["first_break"]
    assert br["kind"] == "checkpoint_invalid"
    assert "signature" in br["message"]


def test_the_background_run_checkpoints_only_chains_that_moved(
    state: AppState, account: Account, append: Append, clock: FrozenClock
) -> None:
    made = service.checkpoint_all(state.db, state.signer, clock.now())
    assert made == 1  # account + key creation moved the chain
    assert service.checkpoint_all(state.db, state.signer, clock.now()) == 0
    append(1)
    clock.advance(timedelta(hours=1))
    assert service.checkpoint_all(state.db, state.signer, clock.now()) == 1
    with state.db.begin() as conn:
        cps, total = service.list_checkpoints(conn, account.account_id, limit=10)
        report = service.verify_account(conn, account.account_id, [service.PublicKey.of(state.signer)])
    assert total == 2
    assert cps[0].seq == 3
    assert report.ok
    assert report.anchored_through_seq == 3


def test_seq_numbers_are_contiguous_per_account(state: AppState, account: Account, append: Append) -> None:
    append(5)
    assert [s for s, _ in seq_of(state, account.account_id)] == list(range(1, 8))


def test_the_server_checkpoints_at_start_up_and_then_every_interval(
    settings: Settings, clock: FrozenClock, state: AppState, account: Account, append: Append
) -> None:
    """A restarted server signs what moved while it was down, then keeps signing on its schedule."""
    append(2)
    fast = settings.model_copy(update={"checkpoint_interval_s": 1})
    app = create_app(fast, clock=clock)
    try:
        with TestClient(app):
            with state.db.begin() as conn:
                assert service.list_checkpoints(conn, account.account_id, limit=5)[1] == 1  # at start-up
            append(1)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                with state.db.begin() as conn:
                    cps, total = service.list_checkpoints(conn, account.account_id, limit=5)
                if total == 2:
                    break
                time.sleep(0.2)
            assert total == 2
            assert cps[0].seq == 5
    finally:
        app.state.pm.db.dispose()
