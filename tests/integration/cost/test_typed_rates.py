"""Issue 15 items 3 and 9: the calculator returns numbers and booleans as JSON numbers and booleans,
and no flat rate older than 2024 is served without a ``stale`` flag and a reason."""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from powermeter.cost import service as cost_service
from powermeter.data import rates as rates_data
from powermeter.data.rates import REGIONS_FILE, RatesDataError, load_rates

NUMBER_TEXT = re.compile(r"^-?\d+(\.\d+)?$")


def _strings(doc: Any, path: str = "") -> list[tuple[str, str]]:
    """Every (path, string) in a JSON document."""
    if isinstance(doc, dict):
        return [x for k, v in doc.items() for x in _strings(v, f"{path}.{k}")]
    if isinstance(doc, list):
        return [x for i, v in enumerate(doc) for x in _strings(v, f"{path}[{i}]")]
    return [(path, doc)] if isinstance(doc, str) else []


def _typed(doc: Any) -> list[tuple[str, str]]:
    """Strings that should have been a number or a boolean (names, plans and ids excepted)."""
    bad = []
    for path, s in _strings(doc):
        if path.endswith((".name", ".plan", ".id", ".period", ".effective_date", ".tariffId")):
            continue
        if NUMBER_TEXT.match(s) or s in ("true", "false"):
            bad.append((path, s))
    return bad


def test_every_rate_document_is_typed(client: TestClient) -> None:
    index = client.get("/calc/api/rates/index").json()
    assert not _typed(index)
    assert all(isinstance(r["stale"], bool) for r in index)
    rates = load_rates()
    for region in index:
        # every region through the route's own function and serializer (60 HTTP calls/minute per IP)
        body = orjson.loads(orjson.dumps(cost_service.rate_detail(region["regionCode"], rates)))
        assert _typed(body) == [], region["regionCode"]
        assert isinstance(body["verified"], bool)
        for tier in body["tou_tiers"]:
            assert isinstance(tier["rate"], float | int)
        for tariff in body["tariffs"]:
            for tier in tariff.get("tou_tiers", []) + tariff.get("block_tiers", []):
                assert isinstance(tier["rate"], float | int)
            if "fixed_daily_charge" in tariff:
                assert isinstance(tariff["fixed_daily_charge"], float)
    for code in ("GB", "CA-ON", "IN-DL", "PL"):
        assert _typed(client.get(f"/calc/api/rates/{code}").json()) == [], code
    ca = client.get("/calc/api/rates/US-CA").json()
    assert ca["tou_tiers"][0]["rate"] == 0.5224  # was the string "0.5224"
    assert ca["verified"] is True  # was the string "true"


def test_cost_responses_with_region_tariffs_are_typed(client: TestClient) -> None:
    rates = load_rates()
    for tariff in rates.tariffs.values():
        body = {
            "device": {"watts": 1500, "hours_per_day": 2, "schedule": [[17, 19]]},
            "regionCode": tariff.region,
            "tariffId": tariff.id,
            "breakdown": True,
        }
        r = client.post("/calc/api/cost", json=body)
        assert r.status_code == 200, (tariff.id, r.text)
        assert _typed(r.json()) == [], tariff.id


def test_no_rate_older_than_2024_without_a_flag(client: TestClient) -> None:
    rows = list(csv.DictReader(REGIONS_FILE.open(newline="", encoding="utf-8")))
    old = [r for r in rows if r["flat_rate"] and int(r["year"]) < rates_data.STALE_BEFORE_YEAR]
    assert old, "the dataset still has old rates; this test checks they are flagged"
    rates = load_rates()
    for r in old:
        assert r["stale"] == "true", r["code"]
        assert r["stale_note"].strip(), r["code"]
        body = cost_service.rate_detail(r["code"], rates)
        assert body["stale"] is True, r["code"]
        assert body["stale_note"], r["code"]
    pl = client.get("/calc/api/rates/PL").json()
    assert pl["stale"] is True
    assert "2022" in pl["stale_note"]
    fresh = [r for r in rows if r["flat_rate"] and int(r["year"]) >= rates_data.STALE_BEFORE_YEAR]
    assert all(r["stale"] == "false" for r in fresh)


def test_an_old_rate_without_a_flag_is_refused_at_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = REGIONS_FILE.read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    pl = next(i for i, line in enumerate(lines) if line.startswith("PL,"))
    row = next(csv.reader([lines[pl]]))
    header = next(csv.reader([lines[0]]))
    row[header.index("stale")] = "false"
    import io

    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(row)
    lines[pl] = buf.getvalue()
    bad = tmp_path / "regions.csv"
    bad.write_text("".join(lines), encoding="utf-8")
    monkeypatch.setattr(rates_data, "REGIONS_FILE", bad)
    load_rates.cache_clear()
    try:
        with pytest.raises(RatesDataError, match="PL: flat rate of 2022 is older than 2024"):
            load_rates()
    finally:
        load_rates.cache_clear()
