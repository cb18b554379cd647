"""``powermeter bill FILE``: the same bill and comparison as the API, as a table or JSON."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from powermeter.cli import app

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "meter"


def test_bill_json_matches_the_api(client: TestClient) -> None:
    api = client.post(
        "/calc/api/bill?tariffId=pge-e-tou-c",
        content=(FIXTURES / "pge_opower.csv").read_bytes(),
        headers={"Content-Type": "text/csv"},
    ).json()
    res = CliRunner().invoke(app, ["bill", str(FIXTURES / "sdge.csv"), "--tariff", "pge-e-tou-c", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["total"] == api["total"]
    assert out["months"] == api["months"]


def test_bill_table_and_compare_table() -> None:
    res = CliRunner().invoke(app, ["bill", str(FIXTURES / "espi.xml"), "--tariff", "pge-e-tou-c"])
    assert res.exit_code == 0, res.output
    assert "2026-11" in res.stdout
    assert "25 hours" in res.stdout
    res = CliRunner().invoke(
        app, ["bill", str(FIXTURES / "sce.csv"), "--compare", "US-CA", "--current", "pge-e-tou-c", "--json"]
    )
    assert res.exit_code == 0, res.output
    ranked = json.loads(res.stdout)["tariffs"]
    assert len(ranked) >= 6
    assert [t["total"] for t in ranked] == sorted(t["total"] for t in ranked)


def test_bill_bad_file_exits_2_naming_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,kwh\n2026-06-01T00:00:00-07:00,0.5\n2026-06-01T01:00:00-07:00,lots\n")
    res = CliRunner().invoke(app, ["bill", str(bad), "--tariff", "pge-e-tou-c"])
    assert res.exit_code == 2
    assert "line 3" in res.output
    res = CliRunner().invoke(app, ["bill", str(bad)])
    assert res.exit_code == 2
