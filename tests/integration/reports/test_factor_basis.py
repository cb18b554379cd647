"""Issue 20 item 3 (factor basis), item 1 (US residual mix) and item 9 (lines by dataset version),
hand-computed.

The job is the one of test_compliance (0.07488 kWh). Factors used (data files of this repository):

* US, Our World in Data 2023 (lifecycle): 369.47 g/kWh (locations.csv);
* US, EPA eGRID2023 total output rate (combustion): 770.9 lb/MWh × 0.45359237 = 349.7 g/kWh
  (grid/combustion_factors.csv);
* US-TX, eGRID2023 state rate (combustion): 349.8 g/kWh (locations.csv);
* DE, Our World in Data 2023 (lifecycle): 380.95 g/kWh, no combustion counterpart.
"""

from __future__ import annotations

import csv
import io

from fastapi.testclient import TestClient

from powermeter.methodology import reporting as rp
from powermeter.reports import service
from tests.integration.reports.test_compliance import KWH, category, close, job, key, report

__all__ = ["key"]  # the fixture, shared with test_compliance

US_LIFECYCLE = 369.47
US_COMBUSTION = 349.7
TX_COMBUSTION = 349.8


def test_a_us_job_splits_into_scope2_generation_and_scope3_category3(client: TestClient, key: str) -> None:
    job(client, key, ownership="owned", geo_iso="US")
    doc = report(client, key, 2026)
    (line,) = doc["lines"]
    assert close(line["co2e_kg"], KWH * US_LIFECYCLE / 1000)  # as recorded (lifecycle)
    assert close(line["co2e_usage_generation_kg"], KWH * US_COMBUSTION / 1000)  # Scope 2 location-based
    assert close(line["co2e_usage_upstream_kg"], KWH * (US_LIFECYCLE - US_COMBUSTION) / 1000)  # Scope 3 Cat 3
    assert line["location_factor_basis"] == {"combustion": 0, "lifecycle_split": 1, "lifecycle_only": 0, "unknown": 0}
    assert line["location_factor_max_vintage_gap_years"] == 3  # activity 2026, factor year 2023
    (cf,) = doc["combustion_factors"]
    assert (cf["value"], cf["year"], cf["basis"], cf["paired_lifecycle_value"]) == (
        US_COMBUSTION,
        2023,
        "combustion",
        US_LIFECYCLE,
    )
    assert "eGRID2023" in cf["source"]
    (ef,) = doc["emission_factors"]
    assert (ef["basis"], ef["year"]) == ("lifecycle", 2023)
    (entry,) = doc["entries"]
    assert entry["upstream"]["combustion_factor_id"] == cf["id"]
    assert entry["upstream"]["generation_co2e_g"] == KWH * US_COMBUSTION  # re-performable: kWh × listed factor
    e16 = doc["esrs_e1"]["E1-6"]
    assert close(e16["contribution_to_gross_scope_2_location_based_tco2e"], KWH * US_COMBUSTION / 1e6)
    cat3 = next(c for c in e16["scope_3_categories"] if c["category"] == 3)
    assert close(cat3["tco2e"], KWH * (US_LIFECYCLE - US_COMBUSTION) / 1e6)
    assert cat3["records"] == 1
    # market-based: no Green-e residual mix shipped; said so, and the eGRID (combustion) grid average is used
    (mf,) = doc["market_factors"]
    assert (mf["hierarchy_level"], mf["value"], mf["basis"]) == ("no_residual_mix", US_COMBUSTION, "combustion")
    assert "GREEN-E" in mf["label"]
    assert close(category(doc, "scope2")["market_based_co2e_kg"], KWH * US_COMBUSTION / 1000)
    result = service.verify_document(doc)
    assert result.ok, [c for c in result.checks if not c.ok]


def test_lifecycle_only_and_combustion_only_factors_are_flagged_per_line(client: TestClient, key: str) -> None:
    job(client, key, ownership="owned", geo_iso="DE", site="berlin")
    job(client, key, ownership="owned", geo_iso="US-TX", site="dallas")
    doc = report(client, key, 2026, groupBy="site")
    lines = {ln["group"]: ln for ln in doc["lines"]}
    de, tx = lines["berlin"], lines["dallas"]
    assert de["location_factor_basis"]["lifecycle_only"] == 1
    assert close(de["co2e_usage_generation_kg"], de["co2e_kg"])  # not split: stays lifecycle, flagged
    assert de["co2e_usage_upstream_kg"] == 0.0
    assert any("lifecycle factor with no combustion counterpart" in f for f in de["basis_flags"])
    assert tx["location_factor_basis"]["combustion"] == 1
    assert close(tx["co2e_usage_generation_kg"], KWH * TX_COMBUSTION / 1000)
    assert any("upstream (Scope 3 Category 3) emissions are not estimated" in f for f in tx["basis_flags"])
    bases = {f["location"]: f["basis"] for f in doc["emission_factors"]}
    assert bases == {"DE": "lifecycle", "US-TX": "combustion"}
    # Texas: no Green-e figure either; its own eGRID state rate is the labelled fallback
    tx_market = next(m for m in doc["market_factors"] if "US-TX" in m["label"])
    assert (tx_market["hierarchy_level"], tx_market["value"]) == ("no_residual_mix", TX_COMBUSTION)
    assert service.verify_document(doc).ok


def test_every_line_names_the_dataset_versions_of_its_records(client: TestClient, key: str) -> None:
    job(client, key, ownership="owned")
    doc = report(client, key, 2026)
    (line,) = doc["lines"]
    assert set(line["dataset_versions"]) == {"hardware", "locations"}
    (vs,) = doc["dataset_version_sets"]
    assert (vs["id"], vs["versions"], vs["records"]) == (line["dataset_versions_id"], line["dataset_versions"], 1)


def _row(versions: tuple[tuple[str, str], ...], co2: float) -> rp.AggregateRow:
    factor = rp.EmissionFactorRef("DE", 380.95, "Our World in Data", versions[0][1])
    return rp.AggregateRow(
        rp.KIND_JOB,
        "2026-01",
        "2026-01",
        True,
        factor,
        "compute-job/1",
        1,
        co2 / 380.95,
        co2,
        category=rp.SCOPE2.code,
        dataset_versions=versions,
    )


def test_records_made_under_different_dataset_versions_are_never_summed_into_one_line() -> None:
    old = (("hardware", "sha256:aaaa"), ("locations", "sha256:1111"))
    new = (("hardware", "sha256:aaaa"), ("locations", "sha256:2222"))
    fig = rp.build_figures([_row(old, 10.0), _row(new, 20.0), _row(new, 30.0)], "month")
    by_version = {ln["dataset_versions"]["locations"]: ln for ln in fig.lines}
    assert set(by_version) == {"sha256:1111", "sha256:2222"}
    assert (by_version["sha256:1111"]["records"], by_version["sha256:1111"]["co2e_kg"]) == (1, 0.01)
    assert (by_version["sha256:2222"]["records"], by_version["sha256:2222"]["co2e_kg"]) == (2, 0.05)
    assert [v["records"] for v in fig.dataset_version_sets] == [1, 2]
    assert fig.totals["records"] == 3


def test_the_csv_carries_the_split_the_basis_and_the_dataset_versions(client: TestClient, key: str) -> None:
    job(client, key, ownership="owned", geo_iso="US")
    r = client.get(
        "/v1/reports/emissions",
        params={"start": "2026-01-01", "end": "2026-12-31", "format": "csv"},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert r.status_code == 200, r.text
    (line,) = [row for row in csv.DictReader(io.StringIO(r.text, newline="")) if row["row_type"] == "line"]
    assert close(float(line["co2e_usage_generation_kg"]), KWH * US_COMBUSTION / 1000)
    assert close(float(line["co2e_usage_upstream_kg"]), KWH * (US_LIFECYCLE - US_COMBUSTION) / 1000)
    assert line["location_factor_basis"] == "lifecycle_split 1"
    assert "locations sha256:" in line["dataset_versions"]
