"""Schemathesis against a live ``powermeter serve`` on loopback (issue 14): every operation of the
served OpenAPI document, a bounded number of generated examples each (``PM_SCHEMATHESIS_EXAMPLES``,
default 8), no server error and no response off its declared schema (status code, content type, body)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PG_URL
from tests.live import create_key, live_server, server_env

schemathesis = pytest.importorskip("schemathesis")

EXAMPLES = int(os.environ.get("PM_SCHEMATHESIS_EXAMPLES", "8"))
PLANS = {"dev": {"daily_calls": None, "daily_kwh": None, "per_minute": 1_000_000, "route_monthly_calls": None}}


@pytest.mark.slow
@pytest.mark.skipif(PG_URL is not None, reason="runs once, on SQLite")
def test_every_operation_stays_on_schema_without_server_errors(tmp_path: Path) -> None:
    from schemathesis.checks import (
        content_type_conformance,
        not_a_server_error,
        response_schema_conformance,
        status_code_conformance,
    )

    env = server_env(tmp_path, f"sqlite:///{tmp_path / 'pm.db'}")
    env["POWERMETER_PLANS_JSON"] = json.dumps(PLANS)
    key = create_key(env, email="fuzz@example.com")
    auth = {"Authorization": f"Bearer {key}"}
    checks = [not_a_server_error, response_schema_conformance, status_code_conformance, content_type_conformance]
    failures: list[str] = []
    calls: list[str] = []
    with live_server(env, tmp_path / "server.log") as base:
        schema = schemathesis.openapi.from_url(base + "/openapi.json")
        ops = [r.ok() for r in schema.get_all_operations()]
        assert len(ops) >= 40
        for op in ops:
            if op.method.upper() == "DELETE" and op.path == "/v1/api-keys/{key_id}":
                continue  # could revoke the key the run uses; revocation is covered by its own tests

            error = _run_operation(op, base, auth, checks, calls)
            if error is not None:
                failures.append(f"{op.method.upper()} {op.path}: {error[:1500]}")
        log = (tmp_path / "server.log").read_text()
    print("CALLS", len(calls), len(set(calls)))
    assert failures == [], "\n\n".join(failures)
    assert "Traceback" not in log, log[-5000:]


def _run_operation(op: Any, base: str, auth: dict[str, str], checks: list[Any], calls: list[str]) -> str | None:
    """Run ``op``'s generated cases; the first failure's text, or ``None``."""
    from hypothesis import HealthCheck, Phase, given, settings

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=op.as_strategy())
    def run(case: Any) -> None:
        calls.append(op.path)
        case.call_and_validate(base_url=base, headers=auth, checks=checks, timeout=60)

    try:
        run()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None
