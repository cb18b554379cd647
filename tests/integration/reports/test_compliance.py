"""Issue 20 acceptance: hand-computed compliance reports.

Both Scope 2 methods (residual mix, entered supplier rate), the unclassified bucket, booking by
occurrence time (jobs' started_at, inference startTimeMs), late arrivals after a period is closed,
completeness (a deleted or edited receipt or inference row makes ``reports verify`` fail naming it),
and re-performable line arithmetic.

Hand computation of the job used throughout: 60 min, 4 cores, no memory, no GPU, unknown CPU and data
centre → 1 h × 4 × 12 W × 1.0 × PUE 1.56 / 1000 = 0.07488 kWh (Green Algorithms defaults).
"""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from powermeter.cli import app as cli_app
from powermeter.inference.tables import inference_details, inference_records
from powermeter.infra.clock import FrozenClock
from powermeter.infra.db.unit_of_work import ConcurrentTransactions
from powermeter.infra.state import AppState
from powermeter.jobs.tables import receipts
from powermeter.reports import service
from powermeter.settings import Settings
from tests.conftest import SECRET, MakeKey

URL = "/v1/reports/emissions"
KWH = 0.07488  # the hand-computed energy of the job above
DE_LOCATION = 380.95  # locations.csv DE (Our World in Data 2023), gCO2e/kWh
DE_RESIDUAL = 719.9  # AIB European Residual Mixes 2023, DE, gCO2/kWh (residual_mixes.csv)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


@pytest.fixture
def key(make_key: MakeKey) -> str:
    return make_key(email=f"c-{uuid.uuid4().hex[:8]}@example.com", plan="scale")


def job(client: TestClient, key: str, **fields: Any) -> dict[str, Any]:
    body = {"job_id": f"j-{uuid.uuid4().hex[:10]}", "duration_minutes": 60, "cpu_cores": 4, "geo_iso": "DE", **fields}
    r = client.post("/v1/report", json=body, headers=bearer(key))
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()["data"]
    return data


def inference(client: TestClient, key: str, **fields: Any) -> dict[str, Any]:
    body = {"provider": "OpenAI", "model": "gpt-4o", "prompt_tokens": 500, "completion_tokens": 300, **fields}
    r = client.post("/v1/inference", json=body, headers=bearer(key))
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def report(client: TestClient, key: str, year: int, **params: str) -> dict[str, Any]:
    r = client.get(URL, params={"start": f"{year}-01-01", "end": f"{year}-12-31", **params}, headers=bearer(key))
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()["data"]
    return data


def category(doc: dict[str, Any], code: str) -> dict[str, Any]:
    return next(c for c in doc["by_ghg_category"] if c["ghg"]["code"] == code)


# --- Scope 2, both methods -------------------------------------------------------------------------


def test_location_and_market_based_scope2_for_a_de_job_on_the_residual_mix(client: TestClient, key: str) -> None:
    made = job(client, key, ownership="owned")
    assert close(made["kwh"], KWH)
    doc = report(client, key, 2026)
    s2 = category(doc, "scope2")
    assert s2["records"] == 1
    assert close(s2["co2e_kg"], KWH * DE_LOCATION / 1000)  # location-based: 0.0285255… kg
    assert close(s2["market_based_co2e_kg"], KWH * DE_RESIDUAL / 1000)  # market-based: 0.0539061… kg
    (mf,) = doc["market_factors"]
    assert (mf["hierarchy_level"], mf["value"], mf["year"], mf["basis"]) == (
        "residual_mix",
        DE_RESIDUAL,
        2023,
        "combustion",
    )
    assert mf["verification"] == "secondary"
    assert "AIB" in mf["source"]
    (entry,) = doc["entries"]
    assert entry["quality"]["residual_mix_vintage_gap_years"] == 3  # activity 2026, data year 2023
    e16 = doc["esrs_e1"]["E1-6"]
    assert close(e16["contribution_to_gross_scope_2_market_based_tco2e"], KWH * DE_RESIDUAL / 1e6)
    assert close(e16["contribution_to_gross_scope_2_location_based_tco2e"], KWH * DE_LOCATION / 1e6)
    # E1-5: DE 2023 generation shares (generation_shares.csv: fossil 0.458567, nuclear 0.017334, renewable
    # 0.524099) applied to the job's 0.07488 kWh = 0.00007488 MWh
    split = doc["esrs_e1"]["E1-5"]["fossil_nuclear_renewable_breakdown"]
    assert close(split["fossil_mwh"], 0.00007488 * 0.458567)
    assert close(split["nuclear_mwh"], 0.00007488 * 0.017334)
    assert close(split["renewable_mwh"], 0.00007488 * 0.524099)
    assert split["unknown_mwh"] == 0.0


def test_an_entered_supplier_rate_gives_the_market_based_figure(client: TestClient, key: str) -> None:
    r = client.put(
        "/v1/reports/sites/berlin-dc",
        headers=bearer(key),
        json={"type": "supplier_rate", "rate_g_per_kwh": 120, "year": 2026, "source": "Stadtwerke disclosure 2026"},
    )
    assert r.status_code == 200, r.text
    job(client, key, ownership="colocation", site="berlin-dc")
    job(client, key, ownership="leased", site="munich")  # no instrument: residual mix
    doc = report(client, key, 2026, groupBy="site")
    lines = {ln["group"]: ln for ln in doc["lines"]}
    assert close(lines["berlin-dc"]["market_based_co2e_kg"], KWH * 120 / 1000)
    assert close(lines["munich"]["market_based_co2e_kg"], KWH * DE_RESIDUAL / 1000)
    assert close(category(doc, "scope2")["market_based_co2e_kg"], KWH * (120 + DE_RESIDUAL) / 1000)
    assert close(category(doc, "scope2")["co2e_kg"], 2 * KWH * DE_LOCATION / 1000)
    assert doc["boundary"]["sites"] == ["berlin-dc", "munich"]
    levels = {m["hierarchy_level"] for m in doc["market_factors"]}
    assert levels == {"instrument", "residual_mix"}
    # a partial instrument: half at 0 g (certificates), half at the residual mix
    client.put(
        "/v1/reports/sites/berlin-dc",
        headers=bearer(key),
        json={
            "type": "energy_attribute_certificates",
            "rate_g_per_kwh": 0,
            "covered_share": 0.5,
            "year": 2026,
            "source": "GO registry id 123",
        },
    )
    doc = report(client, key, 2026, groupBy="site")
    lines = {ln["group"]: ln for ln in doc["lines"]}
    assert close(lines["berlin-dc"]["market_based_co2e_kg"], KWH * 0.5 * DE_RESIDUAL / 1000)
    bad = client.put(
        "/v1/reports/sites/x",
        headers=bearer(key),
        json={"type": "supplier_rate", "rate_g_per_kwh": -1, "year": 2026, "source": "s"},
    )
    assert bad.status_code == 400
    assert "rate_g_per_kwh" in bad.text


def test_a_job_without_provider_or_ownership_is_unclassified_in_every_report(client: TestClient, key: str) -> None:
    job(client, key)
    job(client, key, provider="aws", geo_iso="aws:eu-central-1")
    doc = report(client, key, 2026)
    un = category(doc, "unclassified")
    assert un["records"] == 1
    assert close(un["co2e_kg"], KWH * DE_LOCATION / 1000)
    assert category(doc, "scope2")["records"] == 0
    assert category(doc, "scope3_cat1")["records"] == 1
    empty = report(client, key, 2024)
    assert {c["ghg"]["code"] for c in empty["by_ghg_category"]} == {"scope2", "scope3_cat1", "unclassified"}


# --- occurrence time ---------------------------------------------------------------------------------


def test_a_job_started_in_2025_is_in_the_2025_report_not_2026(client: TestClient, key: str) -> None:
    made = job(client, key, ownership="owned", started_at="2025-12-31T23:30:00Z")
    assert report(client, key, 2025)["totals"]["compute_job_receipts"] == 1
    assert report(client, key, 2026)["totals"]["compute_job_receipts"] == 0
    (entry,) = report(client, key, 2025)["entries"]
    assert entry["id"] == made["receipt_id"]
    assert entry["occurred_at"] == "2025-12-31T23:30:00Z"
    future = client.post(
        "/v1/report",
        headers=bearer(key),
        json={"job_id": "f", "duration_minutes": 1, "geo_iso": "DE", "started_at": "2030-01-01T00:00:00Z"},
    )
    assert future.status_code == 400
    assert "started_at" in future.text
    naive = client.post(
        "/v1/report",
        headers=bearer(key),
        json={"job_id": "g", "duration_minutes": 1, "geo_iso": "DE", "started_at": "2025-01-01T00:00:00"},
    )
    assert naive.status_code == 400
    assert "started_at" in naive.text


def test_an_inference_started_in_2025_is_in_the_2025_report_not_2026(client: TestClient, key: str) -> None:
    start_ms = int(datetime(2025, 12, 31, 23, 30, tzinfo=UTC).timestamp() * 1000)
    made = inference(client, key, startTimeMs=start_ms, application="chatbot")
    doc25 = report(client, key, 2025)
    assert doc25["totals"]["inference_records"] == 1
    assert report(client, key, 2026)["totals"]["inference_records"] == 0
    (entry,) = doc25["entries"]
    assert entry["id"] == made["id"]
    assert entry["application"] == "chatbot"
    assert close(entry["co2e_usage_g"] + entry["co2e_embodied_g"], entry["co2e_g"]) or math.isclose(
        entry["co2e_usage_g"] + entry["co2e_embodied_g"], entry["co2e_g"], abs_tol=3e-6
    )
    assert entry["co2e_embodied_g"] > 0
    bad = client.post(
        "/v1/inference",
        headers=bearer(key),
        json={"provider": "OpenAI", "model": "gpt-4o", "prompt_tokens": 1, "completion_tokens": 1, "startTimeMs": 5},
    )
    assert bad.status_code == 400
    assert "startTimeMs" in bad.text


def test_a_late_arrival_after_closing_a_period_is_listed_as_late(
    client: TestClient, clock: FrozenClock, key: str
) -> None:
    job(client, key, ownership="owned", started_at="2025-06-01T00:00:00Z")
    r = client.post("/v1/reports/periods/2025/close", headers=bearer(key))
    assert r.status_code == 200
    assert r.json()["data"]["newly_closed"] is True
    before = report(client, key, 2025)
    clock.set(datetime(2026, 11, 23, 9, tzinfo=UTC))
    late = job(client, key, ownership="owned", started_at="2025-07-01T00:00:00Z")
    doc = report(client, key, 2025)
    assert doc["totals"]["records"] == before["totals"]["records"] == 1
    assert close(doc["totals"]["co2e_kg"], before["totals"]["co2e_kg"])
    assert doc["late_arrivals"]["records"] == 1
    (listed,) = doc["completeness"]["late_arrivals"]
    assert listed["id"] == late["receipt_id"]
    assert listed["late"] is True
    assert close(listed["co2e_g"], KWH * DE_LOCATION)
    assert doc["boundary"]["closed_periods"][0]["year"] == 2025
    assert service.verify_document(doc).ok  # late arrivals are accounted for, not missing
    assert client.post("/v1/reports/periods/2999/close", headers=bearer(key)).status_code == 400


# --- completeness ------------------------------------------------------------------------------------------


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, settings: Settings, tmp_path: Path) -> None:
    monkeypatch.setenv("POWERMETER_DATABASE_URL", settings.resolved_database_url)
    monkeypatch.setenv("POWERMETER_SECRET_KEY", SECRET)
    monkeypatch.setenv("POWERMETER_DATA_DIR", str(tmp_path / "cli-data"))
    monkeypatch.setenv("POWERMETER_ENV", "test")


def _verify_file(client: TestClient, key: str, tmp_path: Path) -> tuple[int, str]:
    r = client.get(URL, params={"start": "2026-01-01", "end": "2026-12-31"}, headers=bearer(key))
    assert r.status_code == 200, r.text
    path = tmp_path / f"r-{uuid.uuid4().hex[:6]}.json"
    path.write_bytes(r.content)
    res = CliRunner().invoke(cli_app, ["reports", "verify", str(path)])
    return res.exit_code, res.output


@pytest.fixture
def activity(client: TestClient, key: str) -> dict[str, Any]:
    jobs = [job(client, key, ownership="owned") for _ in range(2)]
    batch = client.post(
        "/v1/batch",
        headers=bearer(key),
        json={
            "jobs": [
                {
                    "job_id": f"b{i}-{uuid.uuid4().hex[:6]}",
                    "duration_minutes": 30 + i,
                    "cpu_cores": 2,
                    "geo_iso": "FR",
                    "ownership": "cloud",
                }
                for i in range(3)
            ]
        },
    )
    assert batch.status_code == 200, batch.text
    infs = [inference(client, key) for _ in range(2)]
    # three records in one request: under group commit one batch, so one signed tree of three leaves
    many = client.post(
        "/v1/inference/batch",
        headers=bearer(key),
        json={
            "records": [
                {"idempotency_key": f"k{i}-{uuid.uuid4().hex[:6]}", "provider": "OpenAI", "model": "gpt-4o",
                 "prompt_tokens": 500, "completion_tokens": 300}
                for i in range(3)
            ]
        },
    )  # fmt: skip
    assert many.status_code == 200, many.text
    created = many.json()["data"]
    assert [r["status"] for r in created] == ["created"] * 3
    return {"jobs": jobs, "batch": batch.json()["data"]["jobs"], "inference": infs, "inference_tree": created}


@pytest.mark.parametrize(
    "tamper",
    [
        "delete_receipt",
        "edit_receipt",
        "delete_batch_receipt",
        "delete_inference",
        "edit_inference",
        "delete_tree_leaf",
        "edit_tree_leaf",
        "edit_inference_details",
    ],
)
def test_deleting_or_editing_any_row_makes_verify_fail_naming_it(
    client: TestClient,
    key: str,
    state: AppState,
    activity: dict[str, Any],
    tmp_path: Path,
    cli_env: None,
    tamper: str,
) -> None:
    code, out = _verify_file(client, key, tmp_path)
    assert code == 0, out
    with state.db.begin() as conn:
        if tamper == "delete_receipt":
            name = activity["jobs"][0]["receipt_id"]
            conn.execute(receipts.delete().where(receipts.c.receipt_id == name))
        elif tamper == "edit_receipt":
            name = activity["jobs"][1]["receipt_id"]
            conn.execute(receipts.update().where(receipts.c.receipt_id == name).values(kwh=0.001, co2_grams=0.1))
        elif tamper == "delete_batch_receipt":
            name = activity["batch"][1]["receipt_id"]
            conn.execute(receipts.delete().where(receipts.c.receipt_id == name))
        elif tamper in ("delete_inference", "delete_tree_leaf"):  # a one-record tree's record, a batch tree's
            name = (activity["inference"][0] if tamper == "delete_inference" else activity["inference_tree"][1])["id"]
            conn.execute(inference_details.delete().where(inference_details.c.id == name))
            conn.execute(inference_records.delete().where(inference_records.c.id == name))
        elif tamper == "edit_inference":
            name = activity["inference"][1]["id"]
            conn.execute(inference_records.update().where(inference_records.c.id == name).values(co2_grams=0.0))
        elif tamper == "edit_tree_leaf":
            name = activity["inference_tree"][2]["id"]
            conn.execute(inference_records.update().where(inference_records.c.id == name).values(energy_wh=0.0))
        else:
            name = activity["inference"][1]["id"]
            d = orjson.loads(
                conn.execute(sa.select(inference_details.c.details).where(inference_details.c.id == name)).scalar_one()
            )
            d["breakdown"]["co2_embodied_grams"] = 0.0
            conn.execute(
                inference_details.update()
                .where(inference_details.c.id == name)
                .values(details=orjson.dumps(d).decode())
            )
    code, out = _verify_file(client, key, tmp_path)
    assert code != 0
    assert name in out, out


def _group_commit(state: AppState) -> bool:
    """Whether the requests' work is committed in batches (SQLite; PostgreSQL lanes, with Redis)."""
    return not isinstance(state.db.units, ConcurrentTransactions)


def test_a_batch_tree_of_inference_records_is_listed_whole_and_verifies(
    client: TestClient, key: str, state: AppState, activity: dict[str, Any], tmp_path: Path, cli_env: None
) -> None:
    doc = report(client, key, 2026)
    ids = [r["id"] for r in activity["inference_tree"]]
    if _group_commit(state):  # one group commit: one tree of three leaves, in request order
        holder = next(e["tree_id"] for e in doc["entries"] if e["id"] == ids[0])
        tree = next(t for t in doc["completeness"]["trees"] if t["tree_id"] == holder)
        assert tree["kind"] == "inference_tree"
        assert tree["head"]["tree_size"] == len(tree["leaf_hashes"]) == 3
        placed = {
            (e["tree_id"], e["leaf_index"]): e["id"] for e in doc["entries"] if e.get("tree_id") == tree["tree_id"]
        }
        assert placed == {(tree["tree_id"], i): rid for i, rid in enumerate(ids)}
    else:  # PostgreSQL without Redis: a one-leaf tree per record, named by the record
        trees = {t["tree_id"]: t for t in doc["completeness"]["trees"] if t["kind"] == "inference_record"}
        assert all(trees[rid]["head"]["tree_size"] == 1 for rid in ids)
    code, out = _verify_file(client, key, tmp_path)
    assert code == 0, out


def test_a_batch_is_sealed_as_one_tree_per_booking_month(client: TestClient, key: str, state: AppState) -> None:
    """Records of one batch booked in different months go to different trees, so retention (which cuts at the
    first day of a month) never deletes part of a tree."""
    october = int(datetime(2026, 10, 31, 23, 0, tzinfo=UTC).timestamp() * 1000)
    november = int(datetime(2026, 11, 1, 1, 0, tzinfo=UTC).timestamp() * 1000)
    records = [
        {"idempotency_key": f"m{i}-{uuid.uuid4().hex[:6]}", "provider": "OpenAI", "model": "gpt-4o",
         "prompt_tokens": 500, "completion_tokens": 300, "startTimeMs": t}
        for i, t in enumerate([october, november, october, november])
    ]  # fmt: skip
    r = client.post("/v1/inference/batch", headers=bearer(key), json={"records": records})
    assert r.status_code == 200, r.text
    ids = [d["id"] for d in r.json()["data"]]
    logs = client.get("/v1/audit/logs", params={"action_type": "TREE_SIGNED"}, headers=bearer(key)).json()["data"]
    trees = sorted((e["details"] for e in logs["logs"]), key=lambda d: d["occurred_from"])
    if _group_commit(state):
        assert [t["object"] for t in trees] == ["inference_tree", "inference_tree"]
        assert [t["record_ids"] for t in trees] == [[ids[0], ids[2]], [ids[1], ids[3]]]  # request order within
        assert [(t["occurred_from"][:7], t["occurred_to"][:7]) for t in trees] == [("2026-10",) * 2, ("2026-11",) * 2]
    else:
        assert len(trees) == 4
    for month, wanted in (("10", {ids[0], ids[2]}), ("11", {ids[1], ids[3]})):
        doc = client.get(
            URL, params={"start": f"2026-{month}-01", "end": f"2026-{month}-{'31' if month == '10' else '30'}"},
            headers=bearer(key),
        ).json()["data"]  # fmt: skip
        assert {e["id"] for e in doc["entries"] if e["kind"] == "inference"} == wanted
        assert doc["completeness"]["other_leaves"] == []
        assert doc["completeness"]["problems"] == []


def test_an_added_row_is_an_extra_record(
    client: TestClient, key: str, state: AppState, activity: dict[str, Any], tmp_path: Path, cli_env: None
) -> None:
    with state.db.begin() as conn:
        row = conn.execute(sa.select(receipts).where(receipts.c.receipt_id == activity["jobs"][0]["receipt_id"])).one()
        values = dict(row._mapping)
        values.pop("seq")
        values.update(receipt_id="rcpt_forged0000000001", job_id="forged")
        conn.execute(receipts.insert().values(**values))
    code, out = _verify_file(client, key, tmp_path)
    assert code != 0
    assert "rcpt_forged0000000001" in out, out


# --- re-performance --------------------------------------------------------------------------------------------


def test_every_line_re_performs_from_its_entries_and_factors(client: TestClient, key: str, activity: Any) -> None:
    job(client, key)  # an unclassified one too
    for group_by in ("month", "location", "provider", "application"):
        doc = report(client, key, 2026, groupBy=group_by)
        factors = {f["id"]: f for f in doc["emission_factors"]}
        markets = {f["id"]: f for f in doc["market_factors"]}
        assert len(doc["entries"]) == doc["totals"]["records"] == 11
        for i, line in enumerate(doc["lines"]):
            mine = [e for e in doc["entries"] if e["line"] == i]
            assert len(mine) == line["records"]
            assert close(math.fsum(e["co2e_g"] for e in mine) / 1000, line["co2e_kg"])
            assert close(math.fsum(e["co2e_usage_g"] for e in mine) / 1000, line["co2e_usage_kg"])
            assert close(math.fsum(e["co2e_embodied_g"] for e in mine) / 1000, line["co2e_embodied_kg"])
            assert line["co2e_min_kg"] <= line["co2e_kg"] <= line["co2e_max_kg"]
            assert set(line["data_quality"]) >= {"records_with_defaults", "estimated_records", "measured_records"}
            for e in mine:
                f = factors[e["factor_id"]]
                assert f["id"] in line["emission_factor_ids"]
                if e["kind"] == "job":
                    assert e["co2e_g"] == e["energy_kwh"] * f["value"]  # exactly: the same multiplication
                    assert e["co2e_embodied_g"] == 0.0
                else:
                    assert math.isclose(e["co2e_usage_g"], e["energy_kwh"] * f["value"], abs_tol=2e-6)
                if "market" in e:
                    assert close(e["market"]["co2e_g"], e["energy_kwh"] * markets[e["market"]["factor_id"]]["value"])
        assert service.verify_document(doc).ok
    # editing one entry's figure in the file breaks the signature and the arithmetic checks
    doc["entries"][0]["co2e_g"] *= 2
    result = service.verify_document(doc)
    failed = {c.name for c in result.checks if not c.ok}
    assert {"content digest", "entry arithmetic"} <= failed


def test_boundary_settings_are_stated_in_the_report(client: TestClient, key: str) -> None:
    r = client.put(
        "/v1/reports/settings",
        headers=bearer(key),
        json={"consolidation_approach": "financial_control", "entity": "Acme GmbH"},
    )
    assert r.status_code == 200, r.text
    doc = report(client, key, 2026)
    assert doc["boundary"]["consolidation_approach"] == "financial_control"
    assert doc["boundary"]["entity"] == "Acme GmbH"
    bad = client.put("/v1/reports/settings", headers=bearer(key), json={"consolidation_approach": "vibes"})
    assert bad.status_code == 400
    assert "consolidation_approach" in bad.text


# --- restatement and SCI ------------------------------------------------------------------------------------


def test_recompute_latest_restates_beside_the_as_recorded_figures(client: TestClient, key: str) -> None:
    job(client, key, ownership="owned")
    inference(client, key)
    doc = report(client, key, 2026, recompute="latest")
    rs = doc["restatement"]
    assert close(rs["totals"]["as_recorded_co2e_kg"], doc["totals"]["co2e_kg"])
    # the datasets have not changed since the records were made: latest = as recorded
    assert math.isclose(rs["totals"]["latest_co2e_kg"], rs["totals"]["as_recorded_co2e_kg"], rel_tol=1e-6)
    assert {v["dataset"] for v in rs["by_dataset_version"]} >= {"locations", "hardware"}
    assert all(v["current"] for v in rs["by_dataset_version"] if v["dataset"] in ("locations", "hardware"))
    assert "restatement" not in report(client, key, 2026)
    bad = client.get(URL, params={"recompute": "earliest"}, headers=bearer(key))
    assert bad.status_code == 400
    assert "recompute" in bad.text


def test_sci_per_application(client: TestClient, key: str) -> None:
    made = [inference(client, key, application="chatbot") for _ in range(3)]
    inference(client, key, application="other")
    job(client, key, ownership="owned", application="chatbot")
    r = client.get(
        "/v1/reports/sci",
        headers=bearer(key),
        params={
            "application": "chatbot",
            "start": "2026-01-01",
            "end": "2026-12-31",
            "functionalUnits": 30,
            "functionalUnit": "conversation",
        },
    )
    assert r.status_code == 200, r.text
    d = r.json()["data"]
    assert d["records"] == {"total": 4, "compute_jobs": 1, "inference": 3}
    # the job (60 min, 4 cores, no GPU): 1,610,379.2 g × (1 h / 35,040 h) × (4 / 96) = 1.91497…
    job_m = 1_610_379.2 * (1 / 35040) * (4 / 96)
    assert close(d["M_compute_jobs_gco2e"], job_m)
    expected_m = math.fsum(m["breakdown"]["co2_embodied_grams"] for m in made) + job_m
    expected_o = math.fsum(m["breakdown"]["co2_usage_grams"] for m in made) + KWH * DE_LOCATION
    assert close(d["M_gco2e"], expected_m)
    assert close(d["E_times_I_gco2e"], expected_o)
    assert close(d["sci_gco2e_per_unit"], (expected_o + expected_m) / 30)
    bad = client.get("/v1/reports/sci", headers=bearer(key), params={"application": "chatbot", "functionalUnits": 0})
    assert bad.status_code == 400
    assert "functionalUnits" in bad.text


def test_ingest_anchors_are_in_the_chain_but_listed_only_by_name(client: TestClient, key: str, state: AppState) -> None:
    job(client, key, ownership="owned")
    made = inference(client, key)
    default = client.get("/v1/audit/logs", headers=bearer(key)).json()["data"]
    assert all(e["action_type"] != "TREE_SIGNED" for e in default["logs"])
    anchors = client.get("/v1/audit/logs", params={"action_type": "TREE_SIGNED"}, headers=bearer(key)).json()["data"]
    assert anchors["total"] == 2
    # with group commit (SQLite; PostgreSQL with Redis) an inference record is a leaf of its batch's tree (one
    # here: the batch of one request); otherwise a one-leaf tree of its own
    kinds = {e["details"]["object"] for e in anchors["logs"]}
    if _group_commit(state):
        assert kinds == {"receipt_tree", "inference_tree"}
        tree = next(e["details"] for e in anchors["logs"] if e["details"]["object"] == "inference_tree")
        assert tree["record_ids"] == [made["id"]]
        assert tree["tree_size"] == len(tree["leaf_sha256"]) == 1
    else:
        assert kinds == {"receipt_tree", "inference_record"}
    assert all(e["verified"] for e in anchors["logs"])
    assert client.get("/v1/audit/verify", headers=bearer(key)).json()["data"]["status"] == "ok"


def test_records_from_before_anchoring_fail_until_anchored_by_the_cli(
    client: TestClient, key: str, state: AppState, tmp_path: Path, cli_env: None
) -> None:
    from powermeter.inference import repository as inference_repo

    made = inference(client, key)
    with state.db.begin() as conn:  # a record as stored before signing existed: no signature, no anchor
        q = sa.select(inference_records).where(inference_records.c.id == made["id"])
        row = dict(conn.execute(q).one()._mapping)
        details = conn.execute(
            sa.select(inference_details.c.details).where(inference_details.c.id == made["id"])
        ).scalar_one()
        row.pop("seq")
        row["id"] = str(uuid.uuid4())
        inference_repo.insert_records(conn, [row], [details])
        email = conn.execute(sa.text("SELECT email FROM accounts WHERE id = :a"), {"a": row["account_id"]}).scalar_one()
    code, out = _verify_file(client, key, tmp_path)
    assert code != 0
    assert row["id"] in out
    res = CliRunner().invoke(cli_app, ["reports", "anchor", "--email", email])
    assert res.exit_code == 0, res.output
    assert "0 receipt trees and 1 inference records" in res.output
    code, out = _verify_file(client, key, tmp_path)
    assert code == 0, out


def test_removing_an_anchor_with_its_records_breaks_the_chain_and_the_report(
    client: TestClient, key: str, state: AppState, activity: dict[str, Any], tmp_path: Path, cli_env: None
) -> None:
    from powermeter.audit.tables import audit_entries
    from powermeter.jobs.tables import receipt_trees

    name = activity["jobs"][0]["receipt_id"]
    with state.db.begin() as conn:
        tree_seq = conn.execute(sa.select(receipts.c.tree_seq).where(receipts.c.receipt_id == name)).scalar_one()
        tree_id = conn.execute(sa.select(receipt_trees.c.tree_id).where(receipt_trees.c.seq == tree_seq)).scalar_one()
        conn.execute(receipts.delete().where(receipts.c.tree_seq == tree_seq))
        conn.execute(receipt_trees.delete().where(receipt_trees.c.seq == tree_seq))
        conn.execute(
            audit_entries.delete().where(
                audit_entries.c.action_type == "TREE_SIGNED", audit_entries.c.details.contains(tree_id)
            )
        )
    code, out = _verify_file(client, key, tmp_path)
    assert code != 0
    assert "audit chain" in out, out
