"""Receipts: listing and pagination, signed documents that verify offline, tampering, audit events."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from fastapi.testclient import TestClient

from powermeter.infra.state import AppState
from powermeter.jobs.receipts import verify_document
from tests.conftest import SECRET, MakeKey

POWERMETER = [sys.executable, "-m", "powermeter"]


def _batch(client: TestClient, auth: dict[str, str], n: int, prefix: str = "job") -> list[dict[str, Any]]:
    jobs = [
        {"job_id": f"{prefix}-{i:03d}", "duration_minutes": 10 + i, "cpu_cores": 1 + i % 4, "geo_iso": "DE"}
        for i in range(n)
    ]
    r = client.post("/v1/batch", headers=auth, json={"jobs": jobs})
    assert r.status_code == 200, r.text
    out: list[dict[str, Any]] = r.json()["data"]["jobs"]
    return out


def test_listing_is_paginated_newest_first(client: TestClient, auth: dict[str, str]) -> None:
    made = _batch(client, auth, 7)
    r = client.get("/v1/receipts", headers=auth)
    data = r.json()["data"]
    assert data["total"] == 7
    assert data["has_more"] is False
    assert [x["receipt_id"] for x in data["receipts"]] == [m["receipt_id"] for m in reversed(made)]
    first = data["receipts"][0]
    assert set(first) == {"receipt_id", "job_id", "kwh", "co2_grams", "timestamp"}
    assert first["timestamp"] == "2026-11-22T12:00:00Z"

    pages: list[str] = []
    offset = 0
    while True:
        page = client.get(f"/v1/receipts?limit=3&offset={offset}", headers=auth).json()["data"]
        pages += [x["receipt_id"] for x in page["receipts"]]
        assert page["total"] == 7
        assert page["has_more"] == (offset + 3 < 7)
        if not page["has_more"]:
            break
        offset += 3
    assert pages == [x["receipt_id"] for x in data["receipts"]]

    one = client.get("/v1/receipts?job_id=job-004", headers=auth).json()["data"]
    assert one["total"] == 1
    assert one["receipts"][0]["job_id"] == "job-004"
    assert client.get("/v1/receipts?job_id=nope", headers=auth).json()["data"] == {
        "receipts": [], "total": 0, "has_more": False,
    }  # fmt: skip


def test_limit_bounds(client: TestClient, auth: dict[str, str]) -> None:
    assert client.get("/v1/receipts?limit=1000", headers=auth).status_code == 200
    for bad in ("limit=1001", "limit=0", "offset=-1"):
        r = client.get(f"/v1/receipts?{bad}", headers=auth)
        assert r.status_code == 400, bad


def test_receipts_are_private_to_the_account(client: TestClient, auth: dict[str, str], make_key: MakeKey) -> None:
    rid = _batch(client, auth, 1)[0]["receipt_id"]
    other = {"Authorization": f"Bearer {make_key(email='other@example.com')}"}
    assert client.get(f"/v1/receipts/{rid}", headers=other).status_code == 404
    assert client.get("/v1/receipts", headers=other).json()["data"]["total"] == 0
    r = client.get("/v1/receipts/rcpt_doesnotexist", headers=auth)
    assert r.status_code == 404
    assert r.json()["error_code"] == "RECEIPT_NOT_FOUND"


def _public_key(client: TestClient) -> str:
    r = client.get("/v1/receipts/public-key")  # no authentication
    assert r.status_code == 200
    data = r.json()["data"]
    assert data["algorithm"] == "Ed25519"
    assert data["key_id"].startswith("ed25519:")
    pem: str = data["public_key_pem"]
    return pem


def test_every_receipt_of_a_batch_verifies_alone(client: TestClient, auth: dict[str, str]) -> None:
    made = _batch(client, auth, 13)
    pem = _public_key(client)
    for m in made:
        doc = client.get(f"/v1/receipts/{m['receipt_id']}", headers=auth).json()
        result = verify_document(doc, pem)
        assert result.ok, result.reason
        data = doc["data"]
        assert data["proof"]["tree_size"] == 13
        assert data["receipt"]["results"]["kwh"] == m["kwh"]
        # the leaf is the receipt's RFC 8785 canonical form
        assert json.loads(rfc8785.dumps(data["receipt"])) == data["receipt"]


def test_a_zero_kwh_receipt_verifies_and_a_number_sent_as_text_does_not(
    client: TestClient, auth: dict[str, str]
) -> None:
    # a job with no cores, memory or GPUs uses 0 kWh: the signed leaf writes the double 0.0 as "0"
    # (RFC 8785), which parses as an integer, while the document's own "kwh" is 0.0
    r = client.post("/v1/report", headers=auth, json={"job_id": "idle", "duration_minutes": 5, "geo_iso": "US"})
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert data["kwh"] == 0.0
    doc = client.get(f"/v1/receipts/{data['receipt_id']}", headers=auth).json()
    pem = _public_key(client)
    result = verify_document(doc, pem)
    assert result.ok, result.reason
    for forged in ("0", False, None, 0.5):
        bad = json.loads(json.dumps(doc))
        bad["data"]["kwh"] = forged
        assert verify_document(bad, pem).reason == "the document's kwh differs from the signed receipt's", forged


def test_the_receipt_holds_what_the_issue_lists(client: TestClient, auth: dict[str, str]) -> None:
    rid = _batch(client, auth, 1)[0]["receipt_id"]
    receipt = client.get(f"/v1/receipts/{rid}", headers=auth).json()["data"]["receipt"]
    assert set(receipt) == {
        "account_id", "dataset_versions", "factors", "inputs", "issued_at", "job_id", "location", "methodology",
        "receipt_id", "results", "type", "warnings",
    }  # fmt: skip
    assert receipt["inputs"] == {
        "cpu_cores": 1,
        "duration_minutes": 10,
        "geo_iso": "DE",
        "gpu_cores": 0,
        "memory_gb": 0,
    }
    assert set(receipt["dataset_versions"]) == {"hardware", "locations"}
    assert receipt["receipt_id"] == rid


def test_a_wrong_key_or_an_altered_byte_fails(client: TestClient, auth: dict[str, str]) -> None:
    rid = _batch(client, auth, 5)[2]["receipt_id"]
    raw = client.get(f"/v1/receipts/{rid}/download", headers=auth).content
    pem = _public_key(client)
    assert verify_document(json.loads(raw), pem).ok

    from powermeter.infra.security import Signer

    other = Signer("another-secret-0123456789abcdef0123456789abcdef").public_key_pem()
    assert "key" in verify_document(json.loads(raw), other).reason

    # Change any one byte of the file (to a non-blank character): either it is no longer JSON, or
    # the verification fails. Whitespace between tokens is the only thing that may change.
    accepted = []
    for pos in range(len(raw)):
        old = raw[pos : pos + 1]
        if old in (b" ", b"\n"):
            continue
        new = b"7" if old != b"7" else b"8"
        if old.isalpha():
            new = b"q" if old != b"q" else b"r"
        mutated = raw[:pos] + new + raw[pos + 1 :]
        try:
            doc = json.loads(mutated)
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        if not isinstance(doc, dict):
            continue
        if verify_document(doc, pem).ok:
            accepted.append((pos, raw[max(0, pos - 20) : pos + 20]))
    assert accepted == []


def test_saved_receipt_verifies_with_the_cli_and_fails_when_altered(
    client: TestClient, auth: dict[str, str], tmp_path: Path
) -> None:
    rid = _batch(client, auth, 3)[1]["receipt_id"]
    saved = tmp_path / "receipt.json"
    saved.write_bytes(client.get(f"/v1/receipts/{rid}", headers=auth).content)  # the API response as is
    key = tmp_path / "key.pem"
    key.write_text(_public_key(client))
    env = {k: v for k, v in os.environ.items() if not k.startswith("POWERMETER_")}
    env["POWERMETER_DATA_DIR"] = str(tmp_path / "data")

    ok = subprocess.run(
        [*POWERMETER, "receipts", "verify", str(saved), "--public-key", str(key)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    assert "VALID" in ok.stdout

    # the CLI on the server itself finds the key from the server's secret
    server_env = {**env, "POWERMETER_SECRET_KEY": SECRET}
    ok2 = subprocess.run(
        [*POWERMETER, "receipts", "verify", str(saved)],
        capture_output=True,
        text=True,
        env=server_env,
        timeout=60,
        check=False,
    )
    assert ok2.returncode == 0, ok2.stderr

    doc = json.loads(saved.read_text())
    doc["data"]["receipt"]["results"]["kwh"] *= 0.5  # the cheat a receipt must catch
    doc["data"]["kwh"] = doc["data"]["receipt"]["results"]["kwh"]
    saved.write_text(json.dumps(doc))
    bad = subprocess.run(
        [*POWERMETER, "receipts", "verify", str(saved), "--public-key", str(key)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 1
    assert "does not hash to the signed Merkle root" in bad.stderr

    no_key = subprocess.run(
        [*POWERMETER, "receipts", "verify", str(saved)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert no_key.returncode == 2
    assert "--public-key" in no_key.stderr


def test_viewing_and_downloading_a_receipt_are_audited(
    client: TestClient, auth: dict[str, str], state: AppState
) -> None:
    rid = _batch(client, auth, 1)[0]["receipt_id"]
    assert client.get(f"/v1/receipts/{rid}", headers=auth).status_code == 200
    r = client.get(f"/v1/receipts/{rid}/download", headers=auth)
    assert r.status_code == 200
    assert r.headers["content-disposition"] == f'attachment; filename="{rid}.json"'
    logs = client.get(f"/v1/audit/logs?receipt_id={rid}", headers=auth).json()["data"]["logs"]
    assert sorted(entry["action_type"] for entry in logs) == ["DOWNLOAD", "VIEW"]
    # a refused view (unknown receipt) leaves no audit entry
    client.get("/v1/receipts/rcpt_missing", headers=auth)
    assert client.get("/v1/audit/logs?receipt_id=rcpt_missing", headers=auth).json()["data"]["total"] == 0


@pytest.mark.parametrize("n", [1, 2, 3, 64])
def test_tree_sizes_verify_end_to_end(client: TestClient, auth: dict[str, str], n: int) -> None:
    made = _batch(client, auth, n, prefix=f"n{n}")
    pem = _public_key(client)
    last = client.get(f"/v1/receipts/{made[-1]['receipt_id']}", headers=auth).json()
    assert verify_document(last, pem).ok


def _doc_snippet() -> str:
    text = (Path(__file__).resolve().parents[3] / "docs" / "receipts.md").read_text()
    blocks = text.split("```python\n")
    assert len(blocks) == 2, "docs/receipts.md should hold one Python snippet"
    return blocks[1].split("```")[0]


def test_the_python_snippet_of_docs_receipts_md_verifies_and_rejects(
    client: TestClient, auth: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The snippet imports the real rfc8785 package (a test dependency, imported above so that its absence
    # fails here): the published recipe is checked against the reference implementation, not our encoder.
    rid = _batch(client, auth, 6)[4]["receipt_id"]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "receipt.json").write_bytes(client.get(f"/v1/receipts/{rid}", headers=auth).content)
    (tmp_path / "powermeter.pem").write_text(_public_key(client))
    code = _doc_snippet()
    exec(compile(code, "docs/receipts.md", "exec"), {})  # noqa: S102 - our own documentation

    doc = json.loads((tmp_path / "receipt.json").read_text())
    doc["data"]["receipt"]["results"]["co2_grams"] += 1
    (tmp_path / "receipt.json").write_text(json.dumps(doc))
    with pytest.raises(AssertionError, match="not in the signed tree"):
        exec(compile(code, "docs/receipts.md", "exec"), {})  # noqa: S102
