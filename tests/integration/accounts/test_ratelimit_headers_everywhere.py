"""Issue 15 item 4: the ``RateLimit-*`` headers are on every response of a limited route, 200s included
(report, batch, receipts, stats, inference), not only on 4xx responses."""

from __future__ import annotations

from fastapi.testclient import TestClient

HEADERS = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "RateLimit-Policy")
JOB = {"job_id": "h-1", "duration_minutes": 5, "cpu_cores": 1, "geo_iso": "US"}
INFERENCE = {"provider": "OpenAI", "model": "gpt-4o", "prompt_tokens": 10, "completion_tokens": 20}


def test_every_v1_success_carries_the_daily_quota_headers(client: TestClient, auth: dict[str, str]) -> None:
    report = client.post("/v1/report", headers=auth, json=JOB)
    rid = report.json()["data"]["receipt_id"]
    responses = {
        "report": report,
        "report (re-report)": client.post("/v1/report", headers=auth, json=JOB),
        "batch": client.post("/v1/batch", headers=auth, json={"jobs": [{**JOB, "job_id": "h-2"}]}),
        "receipts": client.get("/v1/receipts", headers=auth),
        "receipt": client.get(f"/v1/receipts/{rid}", headers=auth),
        "receipt download": client.get(f"/v1/receipts/{rid}/download", headers=auth),
        "stats": client.get("/v1/api-keys/stats", headers=auth),
        "inference": client.post("/v1/inference", headers=auth, json=INFERENCE),
        "inference history": client.get("/v1/inference/history", headers=auth),
        "audit logs": client.get("/v1/audit/logs", headers=auth),
    }
    remaining = []
    for name, r in responses.items():
        assert r.status_code == 200, (name, r.text[:300])
        for h in HEADERS:
            assert h in r.headers, (name, h)
        assert r.headers["RateLimit-Limit"] == "1000", name
        assert len(r.headers.get_list("RateLimit-Remaining")) == 1, name  # added once, never twice
        remaining.append(int(r.headers["RateLimit-Remaining"]))
    # each counted call lowers the remaining count by one, in order
    assert remaining == sorted(remaining, reverse=True)
    assert len(set(remaining)) == len(remaining)


def test_errors_still_carry_them_once(client: TestClient, auth: dict[str, str]) -> None:
    r = client.post("/v1/report", headers=auth, json={**JOB, "duration_minutes": -1})
    assert r.status_code == 400
    assert len(r.headers.get_list("RateLimit-Remaining")) == 1
