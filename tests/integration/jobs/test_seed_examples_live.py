"""Seed 000's examples against a real server (``powermeter serve``), changing only the base URL and
the key: its curl commands run with curl, its Python examples with ``requests`` (or, when that
package is not installed, httpx behind the same three names the examples use)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.live import create_key, live_server, server_env

POWERMETER = [sys.executable, "-m", "powermeter"]


@pytest.fixture
def live(tmp_path: Path, database_url: str) -> Iterator[tuple[str, str]]:
    env = server_env(tmp_path, database_url, "seed-test-secret-0123456789abcdef0123456789")
    with live_server(env, tmp_path / "server.out") as base:
        yield base + "/", create_key(env, "dev@example.com", "seed")


def _requests_module() -> Any:
    try:
        import requests  # type: ignore[import-untyped]

        return requests
    except ImportError:
        shim = types.ModuleType("requests")
        shim.post = lambda url, headers=None, json=None: httpx.post(url, headers=headers, json=json)  # type: ignore[attr-defined]
        shim.get = lambda url, headers=None: httpx.get(url, headers=headers)  # type: ignore[attr-defined]
        return shim


def _run_python(code: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setitem(sys.modules, "requests", _requests_module())
    scope: dict[str, Any] = {}
    exec(compile(code, "seed-000-example", "exec"), scope)  # noqa: S102 - the seed's example, transcribed
    return scope


def _curl(*args: str) -> dict[str, Any]:
    out = subprocess.run(["curl", "-s", *args], capture_output=True, text=True, timeout=60, check=True).stdout
    parsed: dict[str, Any] = json.loads(out)
    return parsed


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_every_seed_example_works_against_a_local_server(
    live: tuple[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    base_url, api_key = live

    # POST /v1/report (curl)
    r = _curl(
        "-X",
        "POST",
        f"{base_url}v1/report",
        "-H",
        f"Authorization: Bearer {api_key}",
        "-H",
        "Content-Type: application/json",
        "-d",
        '{\n"job_id": "ml-training-001",\n"duration_minutes": 120,\n"cpu_cores": 8,\n"memory_gb": 32,\n'
        '"gpu_cores": 2,\n"geo_iso": "US"\n}',
    )
    assert r["status"] == "success"
    assert set(r["data"]) >= {"job_id", "kwh", "co2_grams", "receipt_id"}
    first = r["data"]

    # POST /v1/report (Python): the seed sends the same job id again, with the same inputs, so it gets
    # the same receipt back (issue 15), not an error and not a second record.
    scope = _run_python(
        f'''
import requests
api_key = "{api_key}"
base_url = "{base_url}"
response = requests.post(
    f"{{base_url}}v1/report",
    headers={{"Authorization": f"Bearer {{api_key}}"}},
    json={{
        "job_id": "ml-training-001",
        "duration_minutes": 120,
        "cpu_cores": 8,
        "memory_gb": 32,
        "gpu_cores": 2,
        "geo_iso": "US"
    }}
)
data = response.json()
print(f"Receipt ID: {{data['data']['receipt_id']}}")
print(f"Energy: {{data['data']['kwh']}} kWh")
print(f"CO2: {{data['data']['co2_grams']}} grams")
''',
        monkeypatch,
    )
    assert scope["response"].status_code == 200
    again = scope["data"]["data"]
    assert again["receipt_id"] == first["receipt_id"]
    assert (again["kwh"], again["co2_grams"], again["timestamp"]) == (
        first["kwh"],
        first["co2_grams"],
        first["timestamp"],
    )
    out = capsys.readouterr().out
    assert re.search(r"Receipt ID: rcpt_\w+\nEnergy: [\d.]+ kWh\nCO2: [\d.]+ grams", out)

    # POST /v1/batch (Python)
    _run_python(
        f'''
import requests
api_key = "{api_key}"
jobs_data = [
    {{"job_id": "job-001", "duration_minutes": 60, "cpu_cores": 4, "geo_iso": "US"}},
    {{"job_id": "job-002", "duration_minutes": 90, "cpu_cores": 8, "gpu_cores": 1, "geo_iso": "EU"}}
]
response = requests.post(
    "{base_url}v1/batch",
    headers={{"Authorization": f"Bearer {{api_key}}"}},
    json={{"jobs": jobs_data}}
)
data = response.json()
print(f"Total energy: {{data['data']['total_kwh']}} kWh")
print(f"Jobs processed: {{data['data']['total_jobs']}}")
''',
        monkeypatch,
    )
    out = capsys.readouterr().out
    assert "Jobs processed: 2" in out
    total = re.search(r"Total energy: ([\d.]+) kWh", out)
    assert total

    # GET /v1/receipts?limit=10 (curl and Python)
    r = _curl("-X", "GET", f"{base_url}v1/receipts?limit=10", "-H", f"Authorization: Bearer {api_key}")
    assert r["data"]["total"] == 3  # ml-training-001 once, job-001, job-002
    assert r["data"]["has_more"] is False
    assert set(r["data"]["receipts"][0]) == {"receipt_id", "job_id", "kwh", "co2_grams", "timestamp"}
    _run_python(
        f'''
import requests
api_key = "{api_key}"
# Get recent receipts
response = requests.get(
    "{base_url}v1/receipts?limit=10",
    headers={{"Authorization": f"Bearer {{api_key}}"}}
)
data = response.json()
for receipt in data['data']['receipts']:
    print(f"Job: {{receipt['job_id']}} - {{receipt['kwh']}} kWh")
''',
        monkeypatch,
    )
    out = capsys.readouterr().out
    assert out.count("Job: ") == 3
    assert "Job: job-002 - " in out

    # GET /v1/api-keys/stats (Python)
    _run_python(
        f'''
import requests
api_key = "{api_key}"
response = requests.get(
    "{base_url}v1/api-keys/stats",
    headers={{"Authorization": f"Bearer {{api_key}}"}}
)
stats = response.json()['data']
print(f"API calls today: {{stats['daily_api_calls']}}/{{stats['daily_limit']}}")
print(f"Energy tracked: {{stats['daily_usage_kwh']}} kWh")
''',
        monkeypatch,
    )
    out = capsys.readouterr().out
    assert "API calls today: 6/1000" in out  # 2 reports, 1 batch, 2 receipt listings, this call
    tracked = re.search(r"Energy tracked: ([\d.]+) kWh", out)
    assert tracked
    # the re-reported job is counted once
    assert float(tracked.group(1)) == pytest.approx(first["kwh"] + float(total.group(1)), abs=2e-6)
