"""Dashboard pages over the other capabilities, in-process: receipts (search, page, verify, audit VIEW),
usage, audit log, devices and costs, calculator, reports (preview and downloads)."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from powermeter.infra.clock import FrozenClock

from .helpers import create_key, signup

JOB = {"job_id": "train-001", "duration_minutes": 120, "cpu_cores": 8, "memory_gb": 32, "gpu_cores": 2, "geo_iso": "US"}


def _report(client: TestClient, key: str, job_id: str = "train-001") -> str:
    r = client.post("/v1/report", json={**JOB, "job_id": job_id}, headers={"Authorization": f"Bearer {key}"})
    assert r.status_code in (200, 201), r.text
    listed = client.get("/v1/receipts", params={"job_id": job_id}, headers={"Authorization": f"Bearer {key}"})
    return str(listed.json()["data"]["receipts"][0]["receipt_id"])


def test_receipts_are_listed_searchable_and_verified_and_viewing_is_audited(client: TestClient) -> None:
    csrf = signup(client)
    key = create_key(client, csrf, scopes=["report:write", "receipts:read", "audit:read"])
    rid = _report(client, key)
    _report(client, key, "other-job")

    listing = client.get("/dashboard/receipts")
    assert listing.status_code == 200
    assert rid in listing.text
    assert "other-job" in listing.text
    found = client.get("/dashboard/receipts", params={"q": "train-001"})
    assert rid in found.text
    assert "other-job" not in found.text
    by_id = client.get("/dashboard/receipts", params={"q": rid})
    assert rid in by_id.text
    assert "1 receipt" in by_id.text
    none = client.get("/dashboard/receipts", params={"q": "nope"})
    assert "No receipt matches" in none.text

    page = client.get(f"/dashboard/receipts/{rid}")
    assert page.status_code == 200
    assert re.search(r'data-testid="verify-result">Verified', page.text)
    logs = client.get("/v1/audit/logs", params={"action_type": "VIEW"}, headers={"Authorization": f"Bearer {key}"})
    assert [e["receipt_id"] for e in logs.json()["data"]["logs"]] == [rid]

    audit = client.get("/dashboard/audit", params={"action": "VIEW"})
    assert audit.status_code == 200
    assert "Chain intact" in audit.text
    assert rid in audit.text

    assert client.get("/dashboard/receipts/rcpt_missing").status_code == 404


def test_usage_reports_devices_and_calculator_pages(client: TestClient) -> None:
    csrf = signup(client)
    key = create_key(client, csrf)
    _report(client, key)
    for granularity in ("day", "week", "month"):
        for group in ("location", "provider", "model"):
            r = client.get("/dashboard/usage", params={"granularity": granularity, "group_by": group})
            assert r.status_code == 200, r.text
            assert 'data-chart="chart-energy-1-data"' in r.text
    usage = client.get("/dashboard/usage")
    kwh = re.search(r'data-testid="usage-job-kwh">([^<]+)<', usage.text)
    assert kwh
    assert kwh.group(1) != "0"
    partial = client.get("/dashboard/usage", params={"granularity": "week"}, headers={"HX-Request": "true"})
    assert partial.text.startswith('<div id="usage-body">')

    reports = client.get("/dashboard/reports", params={"group_by": "location"})
    assert reports.status_code == 200
    assert "Download CSV" in reports.text
    csv = client.get("/dashboard/reports/download", params={"format": "csv", "group_by": "location"})
    assert csv.status_code == 200
    assert csv.headers["content-type"].startswith("text/csv")
    assert "attachment" in csv.headers["content-disposition"]
    html = client.get("/dashboard/reports/download", params={"format": "html"})
    assert html.status_code == 200
    assert html.headers["content-type"].startswith("text/html")
    bad = client.get("/dashboard/reports", params={"start": "2026-05-01", "end": "2026-01-01"})
    assert bad.status_code == 400
    assert 'role="alert"' in bad.text

    assert client.get("/dashboard/devices").status_code == 200
    calc = client.get("/dashboard/calculator")
    assert calc.status_code == 200
    assert 'action="/calc/api/cost"' in calc.text


def test_pages_need_a_session(client: TestClient) -> None:
    for path in (
        "/dashboard/usage",
        "/dashboard/receipts",
        "/dashboard/audit",
        "/dashboard/devices",
        "/dashboard/calculator",
        "/dashboard/reports",
    ):
        r = client.get(path, follow_redirects=False)
        assert r.status_code == 303, path
        assert r.headers["location"].startswith("/dashboard/login?next=")


def test_receipts_substring_search_filters_sorting_and_csv(client: TestClient) -> None:
    csrf = signup(client)
    key = create_key(client, csrf)
    for job_id, geo in (("Nightly-ETL-01", "DE"), ("nightly-etl-02", "FR"), ("train_big", "US")):
        r = client.post(
            "/v1/report", json={**JOB, "job_id": job_id, "geo_iso": geo}, headers={"Authorization": f"Bearer {key}"}
        )
        assert r.status_code in (200, 201), r.text
    found = client.get("/dashboard/receipts", params={"q": "ETL"})
    assert "2 receipts" in found.text
    assert "train_big" not in found.text
    assert "1 receipt" in client.get("/dashboard/receipts", params={"q": "N_B"}).text  # _ is not a wildcard
    assert "No receipt matches" in client.get("/dashboard/receipts", params={"q": "%"}).text
    by_loc = client.get("/dashboard/receipts", params={"location": "FR"})
    assert "nightly-etl-02" in by_loc.text
    assert "Nightly-ETL-01" not in by_loc.text
    assert "No receipt matches" in client.get("/dashboard/receipts", params={"from": "2030-01-01"}).text
    asc = client.get("/dashboard/receipts", params={"sort": "job", "dir": "asc"}).text
    assert asc.index("Nightly-ETL-01") < asc.index("nightly-etl-02") < asc.index("train_big")
    desc = client.get("/dashboard/receipts", params={"sort": "job", "dir": "desc"}).text
    assert desc.index("train_big") < desc.index("nightly-etl-02")
    assert client.get("/dashboard/receipts", params={"sort": "nope"}).status_code == 400
    exported = client.get("/dashboard/receipts.csv", params={"q": "etl", "sort": "job", "dir": "asc"})
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    lines = exported.text.strip().splitlines()
    assert lines[0] == "receipt_id,job_id,energy_kwh,co2e_grams,location,issued_at"
    assert [line.split(",")[1] for line in lines[1:]] == ["Nightly-ETL-01", "nightly-etl-02"]


def test_receipt_page_labels_download_and_verify_command(client: TestClient) -> None:
    csrf = signup(client)
    key = create_key(client, csrf, scopes=["report:write", "receipts:read", "audit:read"])
    rid = _report(client, key)
    page = client.get(f"/dashboard/receipts/{rid}")
    assert "CPU energy" in page.text
    assert "breakdown · cpu_kwh" not in page.text
    assert f'value="powermeter receipts verify {rid}.json"' in page.text
    assert re.search(r'<code class="hash">sha256:[0-9a-f]+</code>', page.text)  # dataset versions never wrap
    d = client.get(f"/dashboard/receipts/{rid}/download")
    assert d.status_code == 200
    assert d.headers["content-disposition"] == f'attachment; filename="{rid}.json"'
    from powermeter.jobs import receipts as rc

    assert rc.verify_document(d.json(), _server_pem(client)).ok
    logs = client.get("/v1/audit/logs", params={"action_type": "DOWNLOAD"}, headers={"Authorization": f"Bearer {key}"})
    assert [e["receipt_id"] for e in logs.json()["data"]["logs"]] == [rid]


def _server_pem(client: TestClient) -> str:
    return str(client.app.state.pm.signer.public_key_pem())  # type: ignore[attr-defined]


def test_overview_leads_with_this_month_and_new_accounts_see_how_to_start(client: TestClient) -> None:
    csrf = signup(client)
    empty = client.get("/dashboard/")
    assert 'data-testid="first-report"' in empty.text
    assert 'data-testid="month-kwh"' not in empty.text
    usage = client.get("/dashboard/usage")
    assert 'data-testid="first-report"' in usage.text
    assert "data-chart=" not in usage.text
    key = create_key(client, csrf, scopes=["report:write", "receipts:read", "inference:write"])
    _report(client, key)
    r = client.post(
        "/v1/inference",
        json={"provider": "OpenAI", "model": "gpt-4o", "prompt_tokens": 1000, "completion_tokens": 500},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert r.status_code in (200, 201), r.text
    full = client.get("/dashboard/")
    assert 'data-testid="first-report"' not in full.text
    kwh = re.search(r'data-testid="month-kwh">([^<]+)<', full.text)
    assert kwh
    assert kwh.group(1) != "0"
    assert 'data-testid="top-location">' in full.text
    assert re.search(r'data-testid="top-model">[^<]*(gpt-4o|compute job)', full.text)


def _rows(html: str, testid: str) -> dict[str, list[str]]:
    """A dashboard table's body rows by their first cell (its text, tags stripped)."""
    table = re.search(rf'data-testid="{testid}">(.*?)</table>', html, re.S)
    assert table, f"no table {testid}"
    rows: dict[str, list[str]] = {}
    for tr in re.findall(r"<tr>(.*?)</tr>", table.group(1).split("<tbody>")[1], re.S):
        cells = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", tr, re.S)]
        rows[cells[0]] = cells[1:]
    return rows


def test_usage_page_shows_gateway_traffic_by_model_and_tag_and_nothing_else(
    client: TestClient, clock: FrozenClock
) -> None:
    """Calls recorded by ``powermeter gateway`` (source ``gateway``) appear on the usage page by model and by
    caller tag, with their exact tokens; an estimate from another source does not."""
    csrf = signup(client)
    key = create_key(client, csrf, scopes=["inference:write", "history:read"])
    empty = client.get("/dashboard/usage")
    assert 'data-testid="gateway-usage"' in empty.text
    assert "No gateway traffic in this period" in empty.text

    now = int(clock.now().timestamp() * 1000)

    def rec(i: int, model: str, tag: str | None, source: str = "gateway") -> dict[str, object]:
        r: dict[str, object] = {
            "provider": "openai", "model": model, "source": source, "prompt_tokens": 500, "completion_tokens": 300,
            "startTimeMs": now - 60_000 + i, "endTimeMs": now - 59_000 + i, "idempotency_key": f"gw-{i}",
        }  # fmt: skip
        if tag is not None:
            r["tag"] = tag
        return r

    records = [rec(0, "gpt-4o", "search"), rec(1, "gpt-4o", "search"), rec(2, "gpt-4o-mini", None)]
    records.append({**rec(3, "gpt-4o", "search", source="dom_estimated"), "is_estimated": True})
    r = client.post("/v1/inference/batch", json={"records": records}, headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200, r.text
    assert r.json()["created"] == 4, r.text

    page = client.get("/dashboard/usage")
    assert page.status_code == 200
    assert "No gateway traffic" not in page.text
    assert "3 calls" in page.text  # the gateway's calls only, not the page estimate
    by_model = _rows(page.text, "gateway-model")
    assert set(by_model) == {"openai/gpt-4o", "openai/gpt-4o-mini"}
    assert by_model["openai/gpt-4o"][:3] == ["2", "1,000", "600"]  # calls, input tokens, output tokens
    assert by_model["openai/gpt-4o-mini"][:3] == ["1", "500", "300"]
    by_tag = _rows(page.text, "gateway-tag")
    assert set(by_tag) == {"search", "(no tag)"}
    assert by_tag["search"][:3] == ["2", "1,000", "600"]
    assert by_tag["(no tag)"][0] == "1"
    # the API's history filters the same way the page groups
    hist = client.get(
        "/v1/inference/history",
        params={"source": "gateway", "tag": "search"},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert hist.status_code == 200, hist.text
    rows = hist.json()["data"]
    assert [(h["source"], h["tag"], h["model"], h["inputTokens"]) for h in rows] == [
        ("gateway", "search", "gpt-4o", 500)
    ] * 2
