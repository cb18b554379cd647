"""API keys: format and checksum, hashing at rest, both headers, scopes, revocation, the 10-key cap."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import event

from powermeter.accounts import service
from powermeter.accounts.deps import Auth, Tx
from powermeter.accounts.tables import api_keys
from powermeter.infra.errors import Conflict
from powermeter.infra.security import KEY_PREFIX, checksum, generate_api_key, key_is_well_formed
from powermeter.infra.state import AppState
from tests.accounts import accounts_for
from tests.conftest import PG_URL, MakeKey

KEY_RE = re.compile(r"^pm_live_[0-9A-Za-z]{43}$")


def test_generated_keys_have_the_documented_format_and_a_valid_checksum() -> None:
    keys = {generate_api_key() for _ in range(200)}
    assert len(keys) == 200
    for k in keys:
        assert KEY_RE.match(k)
        assert key_is_well_formed(k)
        assert k[-6:] == checksum(k[len(KEY_PREFIX) : -6])


def test_every_single_character_typo_is_caught_by_the_checksum() -> None:
    key = generate_api_key()
    body = key[len(KEY_PREFIX) :]
    caught = 0
    total = 0
    for i in range(len(body)):
        for c in "0aZ":
            if body[i] == c:
                continue
            typo = KEY_PREFIX + body[:i] + c + body[i + 1 :]
            total += 1
            caught += not key_is_well_formed(typo)
    assert caught == total


def test_mistyped_key_is_refused_without_touching_the_database(
    client: TestClient, api_key: str, state: AppState
) -> None:
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    typo = api_key[:-7] + ("A" if api_key[-7] != "A" else "B") + api_key[-6:]
    event.listen(state.db.engine, "before_cursor_execute", count)
    try:
        r = client.get("/v1/me", headers={"Authorization": f"Bearer {typo}"})
    finally:
        event.remove(state.db.engine, "before_cursor_execute", count)
    assert r.status_code == 401
    assert r.json()["error_code"] == "INVALID_API_KEY"
    assert "checksum" in r.json()["detail"]
    assert statements == []


def test_keys_are_stored_only_as_a_keyed_hash(client: TestClient, api_key: str, state: AppState, settings: Any) -> None:
    assert client.get("/v1/me", headers={"X-API-Key": api_key}).status_code == 200
    with state.db.begin() as conn:
        rows = conn.execute(sa.select(api_keys)).mappings().all()
    assert rows
    for row in rows:
        for value in row.values():
            assert api_key not in str(value)
            assert api_key[len(KEY_PREFIX) : -6] not in str(value)
    if PG_URL is None:
        state.db.dispose()
        db_file = Path(settings.resolved_database_url.split("///", 1)[1])
        blob = b"".join(p.read_bytes() for p in db_file.parent.glob(db_file.name + "*"))
        assert api_key.encode() not in blob
        assert api_key[len(KEY_PREFIX) : -6].encode() not in blob


def test_both_auth_headers_work_on_both_families(client: TestClient, api_key: str) -> None:
    for headers in ({"Authorization": f"Bearer {api_key}"}, {"X-API-Key": api_key}):
        r = client.get("/v1/me", headers=headers)
        assert r.status_code == 200, r.text
        assert r.json()["data"]["key"]["masked_key"] == f"pm_live_...{api_key[-4:]}"
        r2 = client.get("/api/v1/me/tokens", headers=headers)
        assert r2.status_code == 200
        assert r2.json()[0]["masked_key"].endswith(api_key[-4:])


def test_missing_and_unknown_keys_get_each_family_s_401(client: TestClient) -> None:
    r = client.get("/v1/me")
    assert r.status_code == 401
    body = r.json()
    assert set(body) == {"detail", "error_code", "timestamp"}
    assert body["error_code"] == "INVALID_API_KEY"
    assert body["timestamp"] == "2026-11-22T12:00:00Z"
    unknown = generate_api_key()  # well formed, never issued
    r = client.get("/api/v1/me/tokens", headers={"X-API-Key": unknown})
    assert r.status_code == 401
    assert r.json() == {"error": "invalid_api_key"}


def _scoped_app(app: FastAPI) -> None:
    r = APIRouter()

    @r.get("/v1/test/needs-routing")
    def v1_needs_routing(tx: Tx = Auth("routing")) -> dict[str, str]:
        return {"ok": tx.principal.key_name}

    @r.get("/api/v1/test/needs-devices-write")
    def api_needs_devices_write(tx: Tx = Auth("devices:write")) -> dict[str, str]:
        return {"ok": tx.principal.key_name}

    app.include_router(r)


def test_scopes_are_enforced_with_a_403_in_each_family(app: FastAPI, client: TestClient, make_key: MakeKey) -> None:
    _scoped_app(app)
    narrow = make_key(scopes=["receipts:read"])
    full = make_key(name="full")
    r = client.get("/v1/test/needs-routing", headers={"Authorization": f"Bearer {narrow}"})
    assert r.status_code == 403
    assert r.json()["error_code"] == "INSUFFICIENT_SCOPE"
    assert "routing" in r.json()["detail"]
    r = client.get("/api/v1/test/needs-devices-write", headers={"X-API-Key": narrow})
    assert r.status_code == 403
    assert r.json()["error"] == "insufficient_scope"
    assert client.get("/v1/test/needs-routing", headers={"X-API-Key": full}).json() == {"ok": "full"}
    assert client.get("/api/v1/test/needs-devices-write", headers={"X-API-Key": full}).status_code == 200


def test_a_key_without_scope_option_has_every_scope(client: TestClient, api_key: str) -> None:
    scopes = client.get("/v1/me", headers={"X-API-Key": api_key}).json()["data"]["key"]["scopes"]
    assert set(scopes) == set(service.ALL_SCOPES)


def test_unknown_scope_is_refused_by_name(state: AppState, clock: Any) -> None:
    with state.db.begin() as conn:
        acct = accounts_for(state.settings).create_account(conn, "s@example.com", clock.now())
        with pytest.raises(Exception, match="unknown scope 'reports:write'"):
            accounts_for(state.settings).create_key(conn, acct, "k", clock.now(), ["reports:write"])


def test_revoked_key_stops_working_at_once(client: TestClient, make_key: MakeKey) -> None:
    key = make_key()
    other = make_key(name="other")
    h = {"Authorization": f"Bearer {key}"}
    assert client.get("/v1/me", headers=h).status_code == 200
    keys = client.get("/v1/api-keys", headers={"X-API-Key": other}).json()["data"]["keys"]
    target = next(k for k in keys if k["masked_key"].endswith(key[-4:]))
    r = client.delete(f"/v1/api-keys/{target['id']}", headers={"X-API-Key": other})
    assert r.status_code == 200
    r = client.get("/v1/me", headers=h)
    assert r.status_code == 401
    assert "revoked" in r.json()["detail"]
    listed = client.get("/v1/api-keys", headers={"X-API-Key": other}).json()["data"]["keys"]
    assert next(k for k in listed if k["id"] == target["id"])["revoked_at"] == "2026-11-22T12:00:00Z"


def test_an_account_has_at_most_ten_active_keys(state: AppState, clock: Any) -> None:
    with state.db.begin() as conn:
        acct = accounts_for(state.settings).create_account(conn, "ten@example.com", clock.now())
        made = [accounts_for(state.settings).create_key(conn, acct, f"k{i}", clock.now()) for i in range(10)]
    with state.db.begin() as conn, pytest.raises(Conflict, match="10 active keys"):
        accounts_for(state.settings).create_key(conn, acct, "eleventh", clock.now())
    with state.db.begin() as conn:
        accounts_for(state.settings).revoke_key(conn, made[0].key_id, clock.now())
        accounts_for(state.settings).create_key(conn, acct, "replacement", clock.now())


def test_last_used_is_recorded(client: TestClient, api_key: str, clock: Any) -> None:
    client.get("/v1/me", headers={"X-API-Key": api_key})
    keys = client.get("/v1/api-keys", headers={"X-API-Key": api_key}).json()["data"]["keys"]
    assert keys[0]["last_used_at"] == "2026-11-22T12:00:00Z"
