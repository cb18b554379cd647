"""keys:manage scope (issue 14 item 6) and the per-minute limit of the account's plan (item 7)."""

from __future__ import annotations

import json

import sqlalchemy as sa
from fastapi.testclient import TestClient

from powermeter.accounts import service
from powermeter.app import create_app
from powermeter.infra.clock import FrozenClock
from powermeter.infra.db import make_engine, migrate
from powermeter.infra.state import AppState
from powermeter.settings import Settings
from tests.accounts import accounts_for
from tests.conftest import MakeKey


def test_a_narrow_key_can_neither_list_nor_revoke_keys(client: TestClient, make_key: MakeKey, state: AppState) -> None:
    full = make_key(name="full")
    narrow = make_key(name="narrow", scopes=["routing"])
    with state.db.begin() as conn:
        full_id = conn.execute(sa.text("SELECT id FROM api_keys WHERE name = 'full'")).scalar_one()
    for method, path in (("GET", "/v1/api-keys"), ("DELETE", f"/v1/api-keys/{full_id}"), ("GET", "/api/v1/me/tokens")):
        r = client.request(method, path, headers={"X-API-Key": narrow})
        assert r.status_code == 403, (path, r.text)
        assert "keys:manage" in r.text
    assert client.get("/v1/me", headers={"X-API-Key": full}).status_code == 200  # not revoked
    r = client.get("/v1/api-keys", headers={"X-API-Key": full})
    assert r.status_code == 200
    assert "keys:manage" in next(k for k in r.json()["data"]["keys"] if k["name"] == "full")["scopes"]
    assert client.delete(f"/v1/api-keys/{full_id}", headers={"X-API-Key": full}).status_code == 200


def test_keys_created_without_scope_have_keys_manage() -> None:
    assert "keys:manage" in service.parse_scopes(None)
    assert "keys:manage" not in service.parse_scopes(["routing"])


def test_the_migration_gives_existing_full_keys_keys_manage(tmp_path: object) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    migrate(engine, "0008")
    old_full = "report:write receipts:read audit:read inference:write history:read devices:read devices:write routing"
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO accounts (id, email, plan, is_admin, created_at) "
                "VALUES ('a', 'a@example.com', 'dev', 0, '2026-01-01 00:00:00')"
            )
        )
        for kid, scopes in (("k1", old_full), ("k2", "routing")):
            conn.execute(
                sa.text(
                    "INSERT INTO api_keys (id, account_id, name, key_hash, last4, scopes, created_at) "
                    "VALUES (:i, 'a', :i, :i, 'abcd', :s, '2026-01-01 00:00:00')"
                ),
                {"i": kid, "s": scopes},
            )
    migrate(engine)
    with engine.begin() as conn:
        got = dict(conn.execute(sa.text("SELECT id, scopes FROM api_keys")).all())
    assert "keys:manage" in got["k1"].split()
    assert got["k2"] == "routing"
    engine.dispose()


def test_the_per_minute_limit_is_the_accounts_plan(settings: Settings, clock: FrozenClock) -> None:
    s = settings.model_copy(update={"plans_json": json.dumps({"dev": {"per_minute": 10}, "core": {"per_minute": 100}})})
    app = create_app(s, clock=clock)
    with TestClient(app) as c:
        st: AppState = app.state.pm
        with st.db.begin() as conn:
            dev = accounts_for(s).create_account(conn, "dev@example.com", clock.now())
            core = accounts_for(s).create_account(conn, "core@example.com", clock.now(), plan="core")
            k_dev = accounts_for(s).create_key(conn, dev, "k", clock.now()).key
            k_core = accounts_for(s).create_key(conn, core, "k", clock.now()).key
        for i in range(11):
            r = c.get("/api/v1/me/tokens", headers={"X-API-Key": k_core})
            assert r.status_code == 200, (i, r.text)
            assert r.headers["RateLimit-Limit"] == "100"
        codes = [c.get("/api/v1/me/tokens", headers={"X-API-Key": k_dev}).status_code for _ in range(11)]
        assert codes == [200] * 10 + [429]
    st.db.dispose()
