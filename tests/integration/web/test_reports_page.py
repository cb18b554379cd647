"""The dashboard's Reports page: presets, inclusive dates in the page and in file names, all four
formats (ESRS included), one report id per query, a CSV rounded for people, the methodology shown."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, date, datetime

import orjson
from fastapi.testclient import TestClient

from powermeter.infra.clock import FrozenClock
from powermeter.reports import service as reports
from powermeter.web.routes_reports import human_number, inclusive_label, presets

from .helpers import create_key, signup

JOB = {
    "job_id": "q3-train",
    "duration_minutes": 125,
    "cpu_cores": 7,
    "memory_gb": 31,
    "gpu_cores": 1,
    "geo_iso": "DE",
    "ownership": "cloud",
}


def test_presets_and_inclusive_labels() -> None:
    by_id = {p["id"]: p for p in presets(date(2026, 11, 14))}
    assert (by_id["this-quarter"]["start"], by_id["this-quarter"]["end"]) == ("2026-10-01", "2026-11-14")
    assert (by_id["last-quarter"]["start"], by_id["last-quarter"]["end"]) == ("2026-07-01", "2026-09-30")
    assert (by_id["ytd"]["start"], by_id["ytd"]["end"]) == ("2026-01-01", "2026-11-14")
    assert (by_id["last-month"]["start"], by_id["last-month"]["end"]) == ("2026-10-01", "2026-10-31")
    jan = presets(date(2026, 2, 3))
    assert [(p["start"], p["end"]) for p in jan if p["id"] == "last-quarter"] == [("2025-10-01", "2025-12-31")]
    assert inclusive_label(datetime(2026, 7, 1, tzinfo=UTC), datetime(2026, 10, 1, tzinfo=UTC)) == "1 Jul – 30 Sep 2026"
    assert inclusive_label(datetime(2025, 12, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)) == (
        "1 Dec 2025 – 1 Jan 2026"
    )
    assert human_number("0.123456789") == "0.1235"
    assert human_number("12.3456789") == "12.346"
    assert human_number("0.000012346") == "0.00001235"
    assert human_number("42") == "42"


def test_last_quarter_downloads_in_four_formats_named_by_inclusive_dates(
    client: TestClient, clock: FrozenClock
) -> None:
    clock.set(datetime(2026, 8, 20, 12, tzinfo=UTC))
    csrf = signup(client)
    key = create_key(client, csrf)
    r = client.post("/v1/report", json=JOB, headers={"Authorization": f"Bearer {key}"})
    assert r.status_code in (200, 201), r.text
    clock.set(datetime(2026, 10, 14, 9, tzinfo=UTC))
    from .helpers import login

    login(client)
    page = client.get("/dashboard/reports")
    assert "Last quarter" in page.text
    href = re.search(r'href="(/dashboard/reports\?start=2026-07-01&amp;end=2026-09-30[^"]*)"', page.text)
    assert href
    preview = client.get(href.group(1).replace("&amp;", "&"))
    assert preview.status_code == 200
    assert 'data-testid="report-period">1 Jul – 30 Sep 2026<' in preview.text
    assert "Download ESRS (JSON)" in preview.text
    assert "Methodology and limits" in preview.text
    assert preview.text.count("Scope 3 Cat 1") == 1  # said once, not on every row
    params = {"start": "2026-07-01", "end": "2026-09-30", "group_by": "month"}
    got = {}
    for fmt in ("json", "esrs", "csv", "html"):
        d = client.get("/dashboard/reports/download", params={**params, "format": fmt})
        assert d.status_code == 200, (fmt, d.text)
        name = re.search(r'filename="([^"]+)"', d.headers["content-disposition"])
        assert name
        assert name.group(1).startswith("emissions-report-2026-07-01-to-2026-09-30"), name.group(1)
        got[fmt] = d
    assert got["esrs"].headers["content-disposition"].endswith('.esrs.json"')
    ids = {fmt: d.headers["x-report-id"] for fmt, d in got.items()}
    assert len(set(ids.values())) == 1, ids
    assert ids["csv"] in got["csv"].text
    assert ids["csv"] in got["html"].text
    doc = orjson.loads(got["json"].content)
    assert reports.verify_document(doc).ok
    assert reports.verify_document(orjson.loads(got["esrs"].content)).ok
    exact = doc["totals"]["energy_kwh"]
    rows = list(csv.DictReader(io.StringIO(got["csv"].text)))
    total = next(r for r in rows if r["row_type"] == "total")
    assert total["energy_kwh"] == human_number(repr(exact))
    assert len(total["energy_kwh"].partition(".")[2]) <= 4 < len(repr(exact).partition(".")[2])
