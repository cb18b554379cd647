"""GET /v1/reports/emissions and ``powermeter reports``: totals from the real receipts and inference
records, GHG categories, signed coverage, CSV/HTML/ESRS formats, the DOWNLOAD audit entry, the CLI."""

from __future__ import annotations

import csv
import io
import json
import math
import re
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from powermeter.cli import app as cli_app
from powermeter.inference.tables import inference_records
from powermeter.infra.clock import FrozenClock
from powermeter.infra.state import AppState
from powermeter.jobs.tables import receipt_trees, receipts
from powermeter.reports import service
from powermeter.settings import Settings
from tests.conftest import SECRET, MakeKey

URL = "/v1/reports/emissions"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def at(clock: FrozenClock, month: int, day: int = 10, year: int = 2026, hour: int = 12) -> None:
    clock.set(datetime(year, month, day, hour, tzinfo=UTC))


def post_job(client: TestClient, key: str, **job: Any) -> dict[str, Any]:
    body = {"job_id": f"job-{uuid.uuid4().hex[:10]}", "duration_minutes": 60, "cpu_cores": 4, "geo_iso": "US", **job}
    r = client.post("/v1/report", json=body, headers=bearer(key))
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()["data"]
    return data


def post_inference(client: TestClient, key: str, **fields: Any) -> dict[str, Any]:
    body = {"provider": "OpenAI", "model": "gpt-4o", "prompt_tokens": 500, "completion_tokens": 300, **fields}
    r = client.post("/v1/inference", json=body, headers=bearer(key))
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def report(client: TestClient, key: str, **params: str) -> dict[str, Any]:
    q = {"start": "2026-01-01", "end": "2026-12-31", **params}
    r = client.get(URL, params=q, headers=bearer(key))
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()["data"]
    return data


@pytest.fixture
def scale_key(make_key: MakeKey) -> str:
    return make_key(email=f"r-{uuid.uuid4().hex[:8]}@example.com", plan="scale")


@pytest.fixture
def mixed(client: TestClient, clock: FrozenClock, scale_key: str) -> dict[str, Any]:
    """A year of activity: cloud jobs, on-premises jobs, AI inference, plus records outside 2026."""
    made: dict[str, Any] = {"jobs": [], "inference": []}
    at(clock, 12, 31, year=2025, hour=23)
    post_job(client, scale_key)  # just before the period
    at(clock, 1, 15)
    made["jobs"].append(post_job(client, scale_key, geo_iso="FR", provider="on-prem", gpu_cores=2, memory_gb=64))
    made["jobs"].append(post_job(client, scale_key, geo_iso="aws:us-west-1", provider="aws", region="us-west-1"))
    at(clock, 3, 2)
    made["inference"].append(post_inference(client, scale_key))
    made["inference"].append(post_inference(client, scale_key, provider="Google", model="gemini-3-pro"))
    at(clock, 11, 20)
    made["jobs"].append(post_job(client, scale_key, geo_iso="DE", gpu_model="H100", gpu_cores=1))
    made["inference"].append(post_inference(client, scale_key, provider="Anthropic", model="claude-sonnet-4"))
    at(clock, 1, 1, year=2027, hour=0)
    post_inference(client, scale_key)  # just after the period
    at(clock, 11, 22)
    return made


# --- totals ------------------------------------------------------------------------------------------


def _stored(state: AppState, account_email: str) -> tuple[list[Any], list[Any]]:
    """The underlying rows, read straight from the two capabilities' tables."""
    from powermeter.accounts.tables import accounts

    with state.db.begin() as conn:
        acct = conn.execute(sa.select(accounts.c.id).where(accounts.c.email == account_email)).scalar_one()
        jobs = conn.execute(
            sa.select(
                receipts.c.kwh, receipts.c.co2_grams, receipts.c.options, receipt_trees.c.created_at, receipts.c.job_id
            )
            .join(receipt_trees, receipt_trees.c.seq == receipts.c.tree_seq)
            .where(receipts.c.account_id == acct)
        ).all()
        infs = conn.execute(
            sa.select(
                inference_records.c.energy_wh,
                inference_records.c.co2_grams,
                inference_records.c.water_ml,
                inference_records.c.log_date,
            ).where(inference_records.c.account_id == acct)
        ).all()
    return list(jobs), list(infs)


def _in_2026(ts: datetime) -> bool:
    return ts.replace(tzinfo=UTC).year == 2026 if ts.tzinfo is None else ts.astimezone(UTC).year == 2026


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


job_st = st.fixed_dictionaries(
    {
        "kind": st.just("job"),
        "month": st.integers(1, 12),
        "day": st.integers(1, 28),
        "year": st.sampled_from([2026, 2026, 2026, 2025]),
        "duration_minutes": st.integers(1, 24 * 60),
        "cpu_cores": st.integers(0, 64),
        "gpu_cores": st.integers(0, 4),
        "geo_iso": st.sampled_from(["US", "FR", "DE", "IN", "aws:us-west-1", "EU"]),
        "provider": st.sampled_from([None, "aws", "gcp", "on-prem", "self-hosted"]),
    }
)
inference_st = st.fixed_dictionaries(
    {
        "kind": st.just("inference"),
        "month": st.integers(1, 12),
        "day": st.integers(1, 28),
        "year": st.sampled_from([2026, 2026, 2026, 2027]),
        "pm": st.sampled_from(
            [
                ("OpenAI", "gpt-4o"),
                ("Google", "gemini-3-pro"),
                ("Anthropic", "claude-sonnet-4"),
                ("OpenAI", "gpt-4o-mini"),
            ]
        ),
        "prompt_tokens": st.integers(0, 20_000),
        "completion_tokens": st.integers(1, 4_000),
    }
)


@given(
    records=st.lists(st.one_of(job_st, inference_st), min_size=0, max_size=14),
    group_by=st.sampled_from(service.GROUP_BY),
)
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_totals_equal_the_sums_of_the_underlying_records(
    client: TestClient,
    clock: FrozenClock,
    make_key: MakeKey,
    state: AppState,
    records: list[dict[str, Any]],
    group_by: str,
) -> None:
    email = f"p-{uuid.uuid4().hex[:10]}@example.com"
    key = make_key(email=email, plan="scale")
    occurred: dict[str, datetime] = {}  # job id → received time minus duration (no started_at sent)
    for rec in records:
        at(clock, rec["month"], rec["day"], year=rec["year"])
        if rec["kind"] == "job":
            fields = {k: rec[k] for k in ("duration_minutes", "cpu_cores", "gpu_cores", "geo_iso", "provider")}
            made = post_job(client, key, **{k: v for k, v in fields.items() if v is not None})
            occurred[made["job_id"]] = clock.now() - timedelta(minutes=rec["duration_minutes"])
        else:
            provider, model = rec["pm"]
            post_inference(
                client,
                key,
                provider=provider,
                model=model,
                prompt_tokens=rec["prompt_tokens"],
                completion_tokens=rec["completion_tokens"],
            )
    at(clock, 12, 31)
    doc = report(client, key, groupBy=group_by)

    jobs, infs = _stored(state, email)
    jobs = [j for j in jobs if _in_2026(occurred[j.job_id])]
    infs = [i for i in infs if _in_2026(i.log_date)]
    t = doc["totals"]
    assert t["records"] == len(jobs) + len(infs) == doc["coverage"]["tree_size"]
    assert t["compute_job_receipts"] == len(jobs)
    assert t["inference_records"] == len(infs)
    assert _close(t["energy_kwh"], math.fsum([*(j.kwh for j in jobs), *(i.energy_wh / 1000 for i in infs)]))
    assert _close(t["co2e_kg"], math.fsum([*(j.co2_grams for j in jobs), *(i.co2_grams for i in infs)]) / 1000)
    if infs:
        assert _close(t["water_l"], math.fsum(i.water_ml for i in infs) / 1000)
    else:
        assert t["water_l"] is None
    own = [j for j in jobs if json.loads(j.options or "{}").get("provider") in ("on-prem", "self-hosted")]
    unclassified = [j for j in jobs if not json.loads(j.options or "{}").get("provider")]
    cats = {c["ghg"]["code"]: c for c in doc["by_ghg_category"]}
    assert set(cats) == {"scope2", "scope3_cat1", "unclassified"}  # every bucket in every report
    assert cats["scope2"]["records"] == len(own)
    assert cats["unclassified"]["records"] == len(unclassified)
    if own:
        assert _close(cats["scope2"]["co2e_kg"], math.fsum(j.co2_grams for j in own) / 1000)
    for parts in (doc["lines"], doc["by_ghg_category"], doc["series"]):
        assert sum(p["records"] for p in parts) == t["records"]
        assert _close(math.fsum(p["energy_kwh"] for p in parts), t["energy_kwh"])
        assert _close(math.fsum(p["co2e_kg"] for p in parts), t["co2e_kg"])


def test_each_line_names_its_ghg_category_factors_datasets_and_methodology(
    client: TestClient, scale_key: str, mixed: dict[str, Any]
) -> None:
    doc = report(client, scale_key, groupBy="location")
    lines = {(ln["group"], ln["ghg"]["code"]): ln for ln in doc["lines"]}
    fr = lines[("FR", "scope2")]  # the on-premises job
    assert fr["ghg"]["scope"] == 2
    assert "location-based" in fr["ghg"]["method"]
    assert fr["group_label"] == "France (FR)"
    assert fr["records"] == 1
    assert fr["water_l"] is None
    assert _close(fr["co2e_kg"], mixed["jobs"][0]["co2_grams"] / 1000)
    assert lines[("DE", "unclassified")]["records"] == 1  # sent with neither ownership nor provider
    assert all(ln["ghg"]["code"] == "scope3_cat1" for key, ln in lines.items() if key[0] not in ("FR", "DE"))
    factors = {f["id"]: f for f in doc["emission_factors"]}
    for ln in doc["lines"]:
        assert ln["emission_factor_ids"]
        for fid in ln["emission_factor_ids"]:
            f = factors[fid]
            assert f["unit"] == "gCO2e/kWh"
            assert f["value"] > 0
            assert f["source"]
            assert re.fullmatch(r"sha256:[0-9a-f]{12}", f["dataset_version"])
        assert ln["methodology_versions"]
    ef_fr = factors[fr["emission_factor_ids"][0]]
    assert ef_fr["location"] == "FR"
    assert _close(ef_fr["value"], mixed["jobs"][0]["location"]["intensity_g_per_kwh"])
    names = {d["name"] for d in doc["datasets"]}
    assert {"locations", "hardware", "modelCatalog"} <= names
    assert doc["methodology"]["report_version"] == "reports/1"
    assert any(v.startswith("compute-job/") for v in doc["methodology"]["record_methodology_versions"])
    assert any(v.startswith("ai-inference/") for v in doc["methodology"]["record_methodology_versions"])
    assert doc["totals"]["records"] == 6  # the records just outside 2026 are left out


def test_group_by_month_provider_model_and_key(client: TestClient, scale_key: str, mixed: dict[str, Any]) -> None:
    by_month = report(client, scale_key, groupBy="month")
    # 2026-11: the inference record (Scope 3) and the DE job sent without provider (unclassified)
    assert [(ln["group"], ln["ghg"]["code"]) for ln in by_month["lines"]] == [
        ("2026-01", "scope2"),
        ("2026-01", "scope3_cat1"),
        ("2026-03", "scope3_cat1"),
        ("2026-11", "scope3_cat1"),
        ("2026-11", "unclassified"),
    ]
    by_provider = {ln["group"]: ln for ln in report(client, scale_key, groupBy="provider")["lines"]}
    assert {"on-prem", "aws", "openai", "google", "anthropic", "(provider not given)"} == set(by_provider)
    assert by_provider["openai"]["group_label"] == "OpenAI"
    by_model = {ln["group"] for ln in report(client, scale_key, groupBy="model")["lines"]}
    assert "compute job: H100" in by_model
    assert "compute job: hardware not given" in by_model
    assert any("gpt-4o" in g for g in by_model)
    by_key = report(client, scale_key, groupBy="key")["lines"]
    inference_line = next(ln for ln in by_key if ln["inference_records"])
    assert inference_line["group_label"].startswith("test key (pm_live_...")
    assert inference_line["inference_records"] == 3
    assert next(ln for ln in by_key if ln["compute_job_receipts"])["group"] == service.NO_KEY_GROUP


def test_an_empty_period_gives_zero_totals_and_an_empty_signed_tree(client: TestClient, scale_key: str) -> None:
    doc = report(client, scale_key)
    assert doc["lines"] == []
    assert doc["totals"]["records"] == 0
    assert doc["totals"]["energy_kwh"] == 0
    assert doc["coverage"]["tree_size"] == 0
    assert service.verify_document(doc).ok


# --- verification --------------------------------------------------------------------------------------


def _save(tmp_path: Path, name: str, content: bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(content)
    return p


def test_a_report_verifies_and_adding_or_removing_a_receipt_fails(
    client: TestClient, scale_key: str, mixed: dict[str, Any], tmp_path: Path, state: AppState
) -> None:
    r = client.get(URL, params={"start": "2026-01-01", "end": "2026-12-31"}, headers=bearer(scale_key))
    good = _save(tmp_path, "report.json", r.content)
    runner = CliRunner()
    pem = _save(tmp_path, "server.pem", state.signer.public_key_pem().encode())
    ok = runner.invoke(cli_app, ["reports", "verify", str(good), "--public-key", str(pem)])
    assert ok.exit_code == 0, ok.output
    assert "VALID" in ok.output
    assert "6 records covered" in ok.output

    doc = orjson.loads(r.content)
    entries = doc["data"]["coverage"]["entries"]
    receipt_ids = {j["receipt_id"] for j in mixed["jobs"]}
    assert {e.split(":")[1] for e in entries if e.startswith("job:")} == receipt_ids

    def verify(name: str, doc: Any) -> Any:
        return runner.invoke(cli_app, ["reports", "verify", str(_save(tmp_path, name, json.dumps(doc).encode()))])

    removed = json.loads(r.content)
    gone = f"job:{mixed['jobs'][1]['receipt_id']}:"
    removed["data"]["coverage"]["entries"] = [e for e in entries if not e.startswith(gone)]
    res = verify("removed.json", removed)
    assert res.exit_code == 1
    assert "FAIL  merkle root" in res.output

    added = json.loads(r.content)
    added["data"]["coverage"]["entries"].append(entries[0].replace(entries[0].split(":")[1], "rcpt_forged0000"))
    res = verify("added.json", added)
    assert res.exit_code == 1
    assert "FAIL  merkle root" in res.output

    edited = json.loads(r.content)
    edited["data"]["totals"]["co2e_kg"] /= 2
    res = verify("edited.json", edited)
    assert res.exit_code == 1
    assert "FAIL  content digest" in res.output

    other = Settings(env="test", secret_key="another-secret-0123456789abcdef0123456789")
    from powermeter.infra.security import Signer

    wrong_pem = _save(tmp_path, "other.pem", Signer(other.secret_key or "").public_key_pem().encode())
    res = runner.invoke(cli_app, ["reports", "verify", str(good), "--public-key", str(wrong_pem)])
    assert res.exit_code == 1
    assert "FAIL  signature" in res.output


def test_a_covered_inference_hash_matches_the_record_in_the_history(
    client: TestClient, scale_key: str, mixed: dict[str, Any]
) -> None:
    import hashlib

    import rfc8785

    doc = report(client, scale_key)
    hist = client.get(
        "/v1/inference/history", params={"startDate": "2026-01-01", "endDate": "2026-12-31"}, headers=bearer(scale_key)
    ).json()["data"]
    assert len(hist) == 3
    entries = {e.split(":")[1]: e.split(":")[2] for e in doc["coverage"]["entries"] if e.startswith("inference:")}
    for row in hist:
        fields = {k: row[k] for k in ("co2Grams", "energyWh", "id", "logDate", "modelId", "provider", "waterMl")}
        assert entries[row["id"]] == hashlib.sha256(rfc8785.dumps(fields)).hexdigest()


def test_a_covered_job_hash_is_the_receipt_s_own_merkle_leaf(
    client: TestClient, scale_key: str, mixed: dict[str, Any]
) -> None:
    import rfc8785

    from powermeter.methodology.merkle import leaf_hash

    doc = report(client, scale_key)
    entries = {e.split(":")[1]: e.split(":")[2] for e in doc["coverage"]["entries"] if e.startswith("job:")}
    rid = mixed["jobs"][0]["receipt_id"]
    saved = client.get(f"/v1/receipts/{rid}", headers=bearer(scale_key)).json()["data"]
    assert entries[rid] == leaf_hash(rfc8785.dumps(saved["receipt"])).hex()


# --- formats -------------------------------------------------------------------------------------------


def test_csv_opens_as_a_spreadsheet_expects(client: TestClient, scale_key: str, mixed: dict[str, Any]) -> None:
    r = client.get(
        URL,
        params={"start": "2026-01-01", "end": "2026-12-31", "format": "csv", "groupBy": "location"},
        headers=bearer(scale_key),
    )
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv; charset=utf-8")
    assert r.headers["content-disposition"] == 'attachment; filename="emissions-report-2026-01-01-2027-01-01.csv"'
    raw = r.content
    assert not raw.startswith(b"\xef\xbb\xbf")
    text = raw.decode("utf-8")
    assert "\r\n" in text
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    header = next(csv.reader(io.StringIO(text, newline="")))
    assert header[:4] == ["row_type", "report_id", "period_start", "period_end_exclusive"]
    assert {"energy_kwh", "co2e_kg", "water_l", "ghg_scope", "ghg_category"} <= set(header)
    assert all(len(row) == len(header) and None not in row for row in rows)
    for row in rows:
        assert date.fromisoformat(row["period_start"]) == date(2026, 1, 1)
        assert date.fromisoformat(row["period_end_exclusive"]) == date(2027, 1, 1)
        for col in ("energy_kwh", "co2e_kg", "records"):
            assert re.fullmatch(r"-?\d+(\.\d+)?", row[col]), row[col]  # dot decimals, no exponent or separators
        assert row["water_l"] == "" or re.fullmatch(r"\d+(\.\d+)?", row["water_l"])
    lines = [row for row in rows if row["row_type"] == "line"]
    total = next(row for row in rows if row["row_type"] == "total")
    assert [row["row_type"] for row in rows].count("total") == 1
    assert math.isclose(sum(float(row["co2e_kg"]) for row in lines), float(total["co2e_kg"]), rel_tol=1e-12)
    assert int(total["records"]) == 6
    fr = next(row for row in lines if row["group"] == "FR")
    assert (fr["ghg_scope"], fr["ghg_category"]) == ("2", "")
    assert fr["emission_factors"].startswith("EF")
    doc = report(client, scale_key)
    assert math.isclose(float(total["energy_kwh"]), doc["totals"]["energy_kwh"], rel_tol=1e-15)


def test_csv_keeps_non_ascii_labels_in_utf8(client: TestClient, clock: FrozenClock, make_key: MakeKey) -> None:
    key = make_key(email=f"u-{uuid.uuid4().hex[:6]}@example.com", name="Équipe données ✓", plan="scale")
    at(clock, 5)
    post_inference(client, key)
    at(clock, 11, 22)
    r = client.get(URL, params={"format": "csv", "groupBy": "key"}, headers=bearer(key))
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8"), newline="")))
    assert rows[0]["group_label"].startswith("Équipe données ✓ (pm_live_...")


def test_html_is_a_printable_self_contained_page_that_verifies(
    client: TestClient, scale_key: str, mixed: dict[str, Any], tmp_path: Path
) -> None:
    r = client.get(
        URL,
        params={"start": "2026-01-01", "end": "2026-12-31", "format": "html", "groupBy": "provider"},
        headers=bearer(scale_key),
    )
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    html = r.text
    assert html.count("<svg") >= 3
    assert "@media print" in html
    assert not re.search(r"<script[^>]+src=|<link[^>]+href=|https?://(?!www\.w3\.org/2000/svg)", html)
    assert "Scope 3 Category 1" in html
    assert "E1-6 gross Scope 2, market-based" in html
    saved = _save(tmp_path, "report.html", r.content)
    res = CliRunner().invoke(cli_app, ["reports", "verify", str(saved)])
    assert res.exit_code == 0, res.output
    # tamper with the embedded document: drop one covered record
    doc = service.load_report_file(saved)
    doc["coverage"]["entries"].pop()
    assert not service.verify_document(doc).ok


def test_esrs_view_gives_the_supported_figures_and_states_the_limits(
    client: TestClient, scale_key: str, mixed: dict[str, Any], tmp_path: Path
) -> None:
    r = client.get(
        URL, params={"start": "2026-01-01", "end": "2026-12-31", "format": "esrs"}, headers=bearer(scale_key)
    )
    doc = r.json()["data"]
    assert doc["type"] == "powermeter.esrs-e1-report/1"
    e16 = doc["esrs_e1"]["E1-6"]
    on_prem = mixed["jobs"][0]
    assert _close(e16["contribution_to_gross_scope_2_location_based_tco2e"], on_prem["co2_grams"] / 1e6)
    assert _close(
        doc["esrs_e1"]["E1-5"]["contribution_to_total_energy_consumption_own_operations_mwh"], on_prem["kwh"] / 1000
    )
    purchased = [mixed["jobs"][1], *mixed["inference"]]  # jobs[2] was sent without provider: unclassified
    expected_s3_g = math.fsum(x["co2_grams"] for x in purchased)
    assert math.isclose(e16["contribution_to_gross_scope_3_tco2e"], expected_s3_g / 1e6, rel_tol=1e-6)
    assert _close(e16["unclassified_tco2e"], mixed["jobs"][2]["co2_grams"] / 1e6)
    # FR has a residual mix (AIB 2023: 40.74 gCO2/kWh): the market-based figure is kWh × that factor
    assert _close(e16["contribution_to_gross_scope_2_market_based_tco2e"], on_prem["kwh"] * 40.74 / 1e6)
    assert {d["status"] for d in doc["esrs_e1"]["datapoint_coverage"]} == {"present", "partial", "not covered"}
    assert doc["esrs_e1"]["data_limits"]
    assert service.verify_document(r.json()).ok


# --- audit, auth, validation ---------------------------------------------------------------------------


def test_downloading_a_report_writes_a_download_audit_entry(
    client: TestClient, scale_key: str, mixed: dict[str, Any]
) -> None:
    r = client.get(URL, params={"start": "2026-01-01", "end": "2026-12-31", "format": "csv"}, headers=bearer(scale_key))
    rid = r.headers["x-report-id"]
    logs = client.get("/v1/audit/logs", params={"action_type": "DOWNLOAD"}, headers=bearer(scale_key)).json()
    entries = logs["data"]["logs"]
    assert len(entries) == 1
    assert entries[0]["action_type"] == "DOWNLOAD"
    assert entries[0]["verified"] is True
    assert entries[0]["timestamp"].startswith("2026-11-22T12:00:00")
    assert entries[0]["details"]["report_id"] == rid
    assert entries[0]["details"]["records"] == 6
    assert entries[0]["details"]["merkle_root_sha256"] == r.headers["x-report-merkle-root"]  # CSVs are signed too
    signed = client.get(URL, params={"start": "2026-01-01", "end": "2026-12-31"}, headers=bearer(scale_key))
    latest = client.get("/v1/audit/logs", params={"action_type": "DOWNLOAD"}, headers=bearer(scale_key)).json()
    assert latest["data"]["logs"][0]["details"]["merkle_root_sha256"] == signed.headers["x-report-merkle-root"]
    assert latest["data"]["logs"][0]["details"]["format"] == "json"


def test_the_report_needs_the_receipts_read_scope(client: TestClient, make_key: MakeKey) -> None:
    narrow = make_key(scopes=["inference:write"])
    r = client.get(URL, headers=bearer(narrow))
    assert r.status_code == 403
    assert r.json()["error_code"] == "INSUFFICIENT_SCOPE"
    assert client.get(URL).status_code == 401


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"start": "2026-13-01"}, "start"),
        ({"start": "2026-05-01", "end": "2026-04-30"}, "end"),
        ({"start": "2000-01-01", "end": "2026-01-01"}, "end"),
        ({"groupBy": "week"}, "groupBy"),
        ({"format": "pdf"}, "format"),
    ],
)
def test_bad_parameters_get_a_400_naming_the_field(
    client: TestClient, auth: dict[str, str], params: dict[str, str], field: str
) -> None:
    r = client.get(URL, params=params, headers=auth)
    assert r.status_code == 400, r.text
    body = r.json()
    assert set(body) >= {"detail", "error_code", "timestamp"}
    assert field in body["detail"]


def test_default_period_is_the_current_calendar_year(client: TestClient, scale_key: str) -> None:
    r = client.get(URL, headers=bearer(scale_key))
    assert r.json()["data"]["period"] == {
        "start": "2026-01-01T00:00:00Z",
        "end": "2026-11-23T00:00:00Z",
        "end_exclusive": True,
        "timezone": "UTC",
    }


# --- CLI -----------------------------------------------------------------------------------------------


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, settings: Settings, tmp_path: Path) -> None:
    monkeypatch.setenv("POWERMETER_DATABASE_URL", settings.resolved_database_url)
    monkeypatch.setenv("POWERMETER_SECRET_KEY", SECRET)
    monkeypatch.setenv("POWERMETER_DATA_DIR", str(tmp_path / "cli-data"))
    monkeypatch.setenv("POWERMETER_ENV", "test")


def test_cli_exports_a_csv_and_a_verifiable_json(
    client: TestClient, scale_key: str, mixed: dict[str, Any], tmp_path: Path, cli_env: None
) -> None:
    email = report(client, scale_key)["account"]["email"]
    runner = CliRunner()
    out_csv = tmp_path / "r.csv"
    res = runner.invoke(
        cli_app,
        [
            "reports",
            "emissions",
            "--email",
            email,
            "--start",
            "2026-01-01",
            "--end",
            "2026-12-31",
            "--format",
            "csv",
            "--output",
            str(out_csv),
        ],
    )
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(out_csv.open(encoding="utf-8", newline="")))
    assert int(next(r for r in rows if r["row_type"] == "total")["records"]) == 6
    out_json = tmp_path / "r.json"
    res = runner.invoke(
        cli_app,
        [
            "reports",
            "emissions",
            "--email",
            email,
            "--start",
            "2026-01-01",
            "--end",
            "2026-12-31",
            "--output",
            str(out_json),
        ],
    )
    assert res.exit_code == 0, res.output
    assert runner.invoke(cli_app, ["reports", "verify", str(out_json)]).exit_code == 0
    logs = client.get("/v1/audit/logs", params={"action_type": "DOWNLOAD"}, headers=bearer(scale_key)).json()
    downloads = logs["data"]["logs"]
    assert [e["action_type"] for e in downloads] == ["DOWNLOAD", "DOWNLOAD", "DOWNLOAD"]
    assert [e["details"]["via"] for e in downloads] == ["cli", "cli", "api"]
    assert [e["details"]["format"] for e in downloads] == ["json", "csv", "json"]
    res = runner.invoke(
        cli_app, ["reports", "emissions", "--email", "nobody@example.com", "--output", str(tmp_path / "x")]
    )
    assert res.exit_code == 2
    assert "no account" in res.output


def test_cli_verify_refuses_a_csv(tmp_path: Path) -> None:
    p = _save(tmp_path, "r.csv", b"row_type,report_id\r\nline,rpt_x\r\n")
    res = CliRunner().invoke(cli_app, ["reports", "verify", str(p)])
    assert res.exit_code == 2
    assert "CSV exports carry no signature" in res.output
