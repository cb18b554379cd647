"""Emissions-report methodology: GHG categories, folding partial sums, ESRS E1, coverage trees."""

from __future__ import annotations

import copy
import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from powermeter.methodology import reporting as rp
from powermeter.methodology.merkle import leaf_hash, merkle_root


def test_own_hardware_jobs_are_scope_2_and_purchased_services_scope_3_category_1() -> None:
    assert rp.ghg_category("job", own_hardware=True) is rp.SCOPE2_LOCATION
    assert rp.ghg_category("job", own_hardware=False) is rp.SCOPE3_CAT1
    # an inference request is always a purchased service, whatever the flag says
    assert rp.ghg_category("inference", own_hardware=True) is rp.SCOPE3_CAT1
    assert rp.SCOPE2_LOCATION.scope == 2
    assert "location-based" in rp.SCOPE2_LOCATION.method
    assert (rp.SCOPE3_CAT1.scope, rp.SCOPE3_CAT1.category) == (3, 1)
    with pytest.raises(ValueError, match="unknown record kind"):
        rp.ghg_category("device", own_hardware=False)


@given(st.integers(min_value=0, max_value=300))
@settings(max_examples=60, deadline=None)
def test_coverage_root_equals_the_rfc6962_root(n: int) -> None:
    entries = [f"job:rcpt_{i}:{i:064x}" for i in range(n)]
    root, size = rp.coverage_root(entries)
    assert size == n
    assert root == merkle_root([leaf_hash(e.encode()) for e in entries])


FACTORS = [
    rp.EmissionFactorRef("US", 367.0, "EIA 2024", "sha256:aaaaaaaaaaaa"),
    rp.EmissionFactorRef("FR", 21.7, "Ember 2024", "sha256:aaaaaaaaaaaa"),
    None,
]

row_strategy = st.builds(
    rp.AggregateRow,
    kind=st.sampled_from(["job", "inference"]),
    month=st.sampled_from(["2026-01", "2026-02", "2026-11"]),
    group=st.sampled_from(["a", "b", "c"]),
    own_hardware=st.booleans(),
    factor=st.sampled_from(FACTORS),
    methodology_version=st.sampled_from(["compute-job/1", "ai-inference/1"]),
    records=st.integers(min_value=1, max_value=10_000),
    energy_kwh=st.floats(min_value=0, max_value=1e6, allow_nan=False),
    co2e_g=st.floats(min_value=0, max_value=1e9, allow_nan=False),
    water_ml=st.floats(min_value=0, max_value=1e6, allow_nan=False),
    water_records=st.integers(min_value=0, max_value=3),
)


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-9)


@given(st.lists(row_strategy, max_size=40), st.sampled_from(rp.GROUP_BY))
@settings(max_examples=150, deadline=None)
def test_lines_categories_and_series_each_add_up_to_the_totals(rows: list[rp.AggregateRow], group_by: str) -> None:
    fig = rp.build_figures(rows, group_by)
    t = fig.totals
    assert t["records"] == sum(r.records for r in rows)
    assert _close(t["energy_kwh"], math.fsum(r.energy_kwh for r in rows))
    assert _close(t["co2e_kg"], math.fsum(r.co2e_g for r in rows) / 1000)
    for parts in (fig.lines, fig.by_ghg_category, fig.series):
        assert sum(p["records"] for p in parts) == t["records"]
        assert _close(math.fsum(p["energy_kwh"] for p in parts), t["energy_kwh"])
        assert _close(math.fsum(p["co2e_kg"] for p in parts), t["co2e_kg"])
        assert sum(p["compute_job_receipts"] for p in parts) == sum(r.records for r in rows if r.kind == "job")
    scope2 = sum(r.records for r in rows if r.kind == "job" and r.own_hardware)
    got = {c["ghg"]["code"]: c["records"] for c in fig.by_ghg_category}
    assert got.get("scope2", 0) == scope2
    assert sum(f["records"] for f in fig.emission_factors) == sum(r.records for r in rows if r.factor)


def test_lines_name_their_category_factors_and_methodology() -> None:
    rows = [
        rp.AggregateRow("job", "2026-01", "US", True, FACTORS[0], "compute-job/1", 3, 2.0, 734.0),
        rp.AggregateRow("job", "2026-01", "US", False, FACTORS[0], "compute-job/1", 1, 1.0, 367.0),
        rp.AggregateRow("inference", "2026-02", "FR", False, FACTORS[1], "ai-inference/1", 5, 0.5, 20.0, 900.0, 5),
    ]
    fig = rp.build_figures(rows, "location", {"US": "United States"})
    assert [(ln["group"], ln["ghg"]["code"]) for ln in fig.lines] == [
        ("US", "scope2"),
        ("US", "scope3_cat1"),
        ("FR", "scope3_cat1"),
    ]
    us2 = fig.lines[0]
    assert us2["group_label"] == "United States"
    assert us2["emission_factor_ids"] == ["EF2"]  # factors are numbered in (location, value) order
    ef = {f["id"]: f for f in fig.emission_factors}
    assert ef["EF2"]["location"] == "US"
    assert ef["EF2"]["source"] == "EIA 2024"
    assert ef["EF2"]["records"] == 4
    assert ef["EF2"]["dataset_version"] == "sha256:aaaaaaaaaaaa"
    assert us2["water_l"] is None  # compute jobs carry no water estimate: unknown, not zero
    assert fig.lines[2]["water_l"] == pytest.approx(0.9)
    assert fig.methodology_versions == ["ai-inference/1", "compute-job/1"]


def test_esrs_view_reports_what_the_data_support_and_states_the_gaps() -> None:
    rows = [
        rp.AggregateRow("job", "2026-01", "x", True, FACTORS[0], "compute-job/1", 2, 1500.0, 550_500.0),
        rp.AggregateRow(
            "inference", "2026-01", "x", False, FACTORS[1], "ai-inference/1", 9, 250.0, 2_000_000.0, 4_000_000.0, 9
        ),
    ]
    view = rp.esrs_e1_view(rp.build_figures(rows, "month"))
    e15, e16 = view["E1-5"], view["E1-6"]
    assert e15["contribution_to_total_energy_consumption_own_operations_mwh"] == pytest.approx(1.5)
    assert e15["value_chain_context"]["purchased_cloud_and_ai_energy_mwh"] == pytest.approx(0.25)
    assert e16["contribution_to_gross_scope_2_location_based_tco2e"] == pytest.approx(0.5505)
    assert e16["contribution_to_gross_scope_3_tco2e"] == pytest.approx(2.0)
    assert e16["contribution_to_total_ghg_emissions_location_based_tco2e"] == pytest.approx(2.5505)
    assert e16["contribution_to_gross_scope_2_market_based_tco2e"] is None  # these rows carry no market figure
    assert e16["contribution_to_total_ghg_emissions_market_based_tco2e"] is None
    assert {d["status"] for d in view["datapoint_coverage"]} == {"present", "partial", "not covered"}
    assert view["display"]["scope_2_location_based_tco2e"] == "0.550"  # 0.5505 t, half-even to 1 kg
    assert view["display"]["scope_3_category_1_tco2e"] == "2.000"
    assert view["display"]["scope_2_market_based_tco2e"] is None
    assert e16["gross_scope_1_tco2e"] is None
    assert view["E3-4_context"]["purchased_ai_inference_water_m3"] == pytest.approx(4.0)
    assert any("market-based" in limit for limit in view["data_limits"])


def _document(n: int = 5) -> dict[str, Any]:
    entries = [rp.coverage_entry("job" if i % 2 else "inference", f"id_{i}", f"{i:064x}") for i in range(n)]
    root, size = rp.coverage_root(entries)
    doc: dict[str, Any] = {
        "type": rp.REPORT_TYPE,
        "report_id": "rpt_test",
        "generated_at": "2026-11-22T12:00:00Z",
        "totals": {"records": n, "energy_kwh": 1.25},
        "lines": [{"group": "2026-01", "energy_kwh": 1.25}],
        "coverage": {"merkle_root_sha256": root.hex(), "tree_size": size, "entries": entries},
    }
    head = rp.report_head(
        report_id="rpt_test",
        report_type=rp.REPORT_TYPE,
        generated_at="2026-11-22T12:00:00Z",
        merkle_root_hex=root.hex(),
        tree_size=size,
        content_sha256=rp.content_digest(doc),
        key_id="ed25519:test",
    )
    doc["signature"] = {"head": head, "value": "not checked here"}
    # what a verifier reads back from the file
    return dict(json.loads(json.dumps(doc)))


def _failed(doc: dict[str, Any]) -> set[str]:
    checks, _ = rp.check_document(doc)
    return {c.name for c in checks if not c.ok}


def test_an_untouched_report_passes_every_check_and_its_head_is_what_gets_signed() -> None:
    doc = _document()
    checks, head = rp.check_document(doc)
    assert all(c.ok for c in checks), checks
    assert head == doc["signature"]["head"]
    assert rp.signed_bytes(head).startswith(b'{"content_sha256":')


def test_removing_adding_or_editing_covered_records_fails() -> None:
    removed = _document()
    del removed["coverage"]["entries"][2]
    assert {"merkle root", "record count"} <= _failed(removed)

    added = _document()
    added["coverage"]["entries"].append(rp.coverage_entry("job", "rcpt_extra", "f" * 64))
    assert {"merkle root", "record count"} <= _failed(added)

    duplicated = _document()
    duplicated["coverage"]["entries"].append(duplicated["coverage"]["entries"][0])
    assert "no duplicates" in _failed(duplicated)

    swapped = _document()
    e = swapped["coverage"]["entries"]
    e[0], e[1] = e[1], e[0]
    assert _failed(swapped) == {"merkle root"}

    edited = _document()
    edited["lines"][0]["energy_kwh"] = 1.0
    assert _failed(edited) == {"content digest"}

    recount = copy.deepcopy(removed)  # trying to hide the removal by editing the counts too
    recount["totals"]["records"] = 4
    recount["coverage"]["tree_size"] = 4
    assert {"merkle root", "content digest", "record count"} <= _failed(recount)


def test_a_file_without_signature_or_coverage_is_refused() -> None:
    doc = _document()
    del doc["signature"]
    checks, head = rp.check_document(doc)
    assert head is None
    assert not checks[0].ok


@given(
    st.text(max_size=20) | st.just("inf_\ud800"),
    st.text(max_size=12),
    st.text(max_size=12),
    st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from([0.917244, 12.5, 1e-5, 0.0, 1e16]),
    st.floats(min_value=0, max_value=1e12) | st.sampled_from([0.00843, 2.0, 1e-4]),
    st.floats(min_value=0, max_value=1e30) | st.sampled_from([1.23456, 9999999999999998.0]),
)
@settings(max_examples=200, deadline=None)
def test_inference_record_hash_is_the_sha256_of_its_canonical_json(
    rid: str, provider: str, model: str, energy: float, co2: float, water: float
) -> None:
    import hashlib

    import rfc8785

    from powermeter.methodology.canonical import reference_bytes

    record = {
        "id": rid,
        "logDate": "2026-03-01T10:00:00Z",
        "provider": provider,
        "modelId": model,
        "energyWh": energy,
        "co2Grams": co2,
        "waterMl": water,
    }
    expected = hashlib.sha256(reference_bytes(record)).hexdigest()
    if all(c < "\ud800" or c > "\udfff" for c in rid + provider + model):
        assert expected == hashlib.sha256(rfc8785.dumps(record)).hexdigest()
    got = rp.inference_record_sha256(rid, "2026-03-01T10:00:00Z", provider, model, energy, co2, water)
    assert got == expected


def test_a_job_is_own_hardware_by_its_flag_or_else_by_an_on_premises_provider() -> None:
    assert rp.is_own_hardware("On-Prem")
    assert rp.is_own_hardware(" self-hosted ")
    assert not rp.is_own_hardware("aws")
    assert not rp.is_own_hardware(None)
    assert rp.is_own_hardware("aws", "true")
    assert rp.is_own_hardware(None, "1")
    assert not rp.is_own_hardware("on-prem", "false")


def test_csv_numbers_have_a_dot_decimal_and_never_an_exponent() -> None:
    from powermeter.reports.render import fixed

    assert fixed(1e-7) == "0.0000001"
    assert fixed(2.5e21) == "2500000000000000000000"
    assert fixed(0.1 + 0.2) == "0.30000000000000004"  # every digit of the double, nothing rounded away
    assert fixed(1234567.5) == "1234567.5"
    assert fixed(3.0) == "3"
    assert fixed(-0.0) == "0"
    assert fixed(7) == "7"
    assert fixed(None) == ""
    for x in (1e-7, 2.5e21, 0.1 + 0.2, 1234567.5):
        assert float(fixed(x)) == x
