"""Migrations, health, metrics, OpenAPI, settings safety."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from fastapi.testclient import TestClient

from powermeter.app import create_app
from powermeter.composition import register_tables
from powermeter.infra.db import make_engine, migrate
from powermeter.settings import Settings
from tests.conftest import PG_URL, pg_schema_url


def _fresh_url(tmp_path: Path) -> tuple[str, Any]:
    if PG_URL:
        schema = "m_" + uuid.uuid4().hex[:12]
        admin = sa.create_engine(PG_URL)
        with admin.begin() as c:
            c.exec_driver_sql(f'CREATE SCHEMA "{schema}"')

        def drop() -> None:
            with admin.begin() as c:
                c.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
            admin.dispose()

        return pg_schema_url(PG_URL, schema), drop
    return f"sqlite:///{tmp_path / 'fresh.db'}", lambda: None


def test_migrations_from_empty_match_the_table_definitions(tmp_path: Path) -> None:
    url, cleanup = _fresh_url(tmp_path)
    try:
        engine = make_engine(url)
        migrate(engine)
        migrate(engine)  # idempotent
        metadata = register_tables()
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
            tables = set(sa.inspect(conn).get_table_names())
        assert {"accounts", "api_keys", "usage_counters", "idempotency_keys"} <= tables
        assert diff == [], f"migrations and tables.py disagree: {diff}"
        engine.dispose()
    finally:
        cleanup()


def test_healthz_is_ok_with_a_working_database(client: TestClient) -> None:
    r = client.get("/healthz")
    assert r.status_code == 200
    assert r.json()["checks"]["database"] == "ok"


def test_healthz_is_503_naming_the_database_when_it_is_unreachable(tmp_path: Path) -> None:
    s = Settings(
        env="test",
        data_dir=tmp_path,
        secret_key="x" * 40,
        database_url="postgresql+psycopg://nobody@127.0.0.1:9/none?connect_timeout=1",
    )
    app = create_app(s, run_migrations=False)
    with TestClient(app) as c:
        r = c.get("/healthz")
    assert r.status_code == 503
    assert r.json()["status"] == "unavailable"
    assert r.json()["checks"]["database"].startswith("down")


def test_healthz_is_503_naming_redis_when_it_is_unreachable(settings: Settings) -> None:
    s = settings.model_copy(update={"redis_url": "redis://127.0.0.1:9/0"})
    app = create_app(s)
    with TestClient(app) as c:
        r = c.get("/healthz")
    assert r.status_code == 503
    assert r.json()["checks"]["redis"].startswith("down")
    assert r.json()["checks"]["database"] == "ok"
    app.state.pm.db.dispose()


def test_metrics_count_requests_by_route_template(client: TestClient, api_key: str) -> None:
    client.get("/v1/me", headers={"X-API-Key": api_key})
    client.get("/v1/me")
    text = client.get("/metrics").text
    assert 'powermeter_http_requests_total{method="GET",route="/v1/me",status="200"} 1' in text
    assert 'powermeter_http_requests_total{method="GET",route="/v1/me",status="401"} 1' in text
    assert "powermeter_http_request_duration_seconds_bucket" in text


def test_openapi_is_3_1_and_declares_error_statuses(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert spec["openapi"].startswith("3.1")
    me = spec["paths"]["/v1/me"]["get"]
    assert {"401", "429"} <= set(me["responses"])
    assert client.get("/docs").status_code == 200


@pytest.mark.parametrize("secret", [None, "changeme", "short-secret"])
def test_production_refuses_a_missing_weak_or_default_secret(tmp_path: Path, secret: str | None) -> None:
    s = Settings(env="production", data_dir=tmp_path, secret_key=secret)
    with pytest.raises(RuntimeError, match="POWERMETER_SECRET_KEY"):
        create_app(s)


def test_development_generates_and_keeps_a_secret(tmp_path: Path) -> None:
    s = Settings(env="development", data_dir=tmp_path)
    first = s.resolved_secret()
    assert len(first) >= 40
    assert Settings(env="development", data_dir=tmp_path).resolved_secret() == first
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


def test_unknown_default_plan_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="not a plan"):
        create_app(Settings(data_dir=tmp_path, default_plan="gold", secret_key="x" * 40))


def test_each_request_is_logged_as_one_json_line(
    settings: Settings, api_key: str, caplog: pytest.LogCaptureFixture
) -> None:
    import json
    import logging

    app = create_app(settings.model_copy(update={"log_requests": True}))
    with caplog.at_level(logging.INFO, logger="powermeter.request"), TestClient(app) as c:
        r = c.get("/v1/me", headers={"X-API-Key": api_key, "X-Request-ID": "trace-123"})
    assert r.headers["x-request-id"] == "trace-123"
    lines = [json.loads(rec.getMessage()) for rec in caplog.records if rec.name == "powermeter.request"]
    assert len(lines) == 1
    line = lines[0]
    assert line["request_id"] == "trace-123"
    assert line["route"] == "/v1/me"
    assert line["status"] == 200
    assert line["duration_ms"] > 0
    assert api_key not in json.dumps(line)
    app.state.pm.db.dispose()
