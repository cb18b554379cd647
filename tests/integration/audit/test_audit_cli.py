"""`powermeter audit verify | export | verify-file`, and the seed's examples against a running server."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from powermeter.infra.state import AppState
from tests.conftest import SECRET, MakeKey
from tests.integration.audit.conftest import EMAIL, Account, Append, sql
from tests.live import live_server

POWERMETER = [sys.executable, "-m", "powermeter"]


@pytest.fixture
def env(tmp_path: Path, database_url: str) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("POWERMETER_")}
    e.update(
        {
            "POWERMETER_DATA_DIR": str(tmp_path / "data"),
            "POWERMETER_DATABASE_URL": database_url,
            "POWERMETER_SECRET_KEY": SECRET,  # the same key the test app signs with
            "POWERMETER_LOG_REQUESTS": "false",
        }
    )
    return e


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*POWERMETER, *args], env=env, capture_output=True, text=True, timeout=120, check=False)


def test_audit_verify_passes_an_untouched_log_and_names_the_first_bad_entry(
    env: dict[str, str], account: Account, append: Append, state: AppState, make_key: MakeKey
) -> None:
    made = append(5)
    make_key(email="zed@example.com")
    ok = run(["audit", "verify"], env)
    assert ok.returncode == 0, ok.stderr
    assert re.search(rf"OK\s+{EMAIL}.*7 entries", ok.stdout)
    sql(state, "UPDATE audit_entries SET receipt_id = 'rcpt_other' WHERE id = :id", id=made[3].id)
    bad = run(["audit", "verify"], env)
    assert bad.returncode == 1
    assert f"first bad entry {made[3].id} (seq {made[3].seq})" in bad.stdout
    assert re.search(r"OK\s+zed@example.com.*2 entries", bad.stdout)  # the other account still checks out
    as_json = json.loads(run(["audit", "verify", "--json"], env).stdout.splitlines()[0])
    assert as_json["first_break"]["entry_id"] == made[3].id


def test_audit_verify_detects_deletion_and_reordering(
    env: dict[str, str], account: Account, append: Append, state: AppState
) -> None:
    made = append(5)
    sql(state, "UPDATE audit_entries SET seq = -1 WHERE id = :id", id=made[0].id)
    sql(state, "UPDATE audit_entries SET seq = :s WHERE id = :id", s=made[0].seq, id=made[1].id)
    sql(state, "UPDATE audit_entries SET seq = :s WHERE id = :id", s=made[1].seq, id=made[0].id)
    res = run(["audit", "verify"], env)
    assert res.returncode == 1
    assert f"entry {made[1].id} (seq {made[0].seq}) [reordered]" in res.stdout
    sql(state, "DELETE FROM audit_entries WHERE id IN (:a, :b)", a=made[0].id, b=made[1].id)
    res = run(["audit", "verify"], env)
    assert res.returncode == 1
    assert f"seq {made[0].seq}–{made[1].seq} deleted" in res.stdout


def test_export_verifies_offline_and_tampering_the_file_is_caught(
    env: dict[str, str], account: Account, append: Append, tmp_path: Path
) -> None:
    append(4, details={"note": "ünïcode ✓", "kwh": 2.45})
    out = tmp_path / "audit.jsonl"
    res = run(["audit", "export", "--email", EMAIL, str(out)], env)
    assert res.returncode == 0, res.stderr
    lines = out.read_text().splitlines()
    kinds = [json.loads(x)["type"] for x in lines]
    assert kinds == ["header"] + ["entry"] * 6 + ["powermeter.audit.checkpoint"]  # export signs a fresh one
    # Offline: no database, no secret.
    bare = {k: v for k, v in env.items() if k not in ("POWERMETER_DATABASE_URL", "POWERMETER_SECRET_KEY")}
    ok = run(["audit", "verify-file", str(out)], bare)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "signed through seq 6" in ok.stdout

    # The server's public key obtained independently also works; a different key does not.
    header = json.loads(lines[0])
    pem = tmp_path / "server.pem"
    pem.write_text(header["public_keys"][0]["public_key_pem"])
    assert run(["audit", "verify-file", str(out), "--public-key", str(pem)], bare).returncode == 0
    other = tmp_path / "other.pem"
    other.write_bytes(
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    res = run(["audit", "verify-file", str(out), "--public-key", str(other)], bare)
    assert res.returncode == 1
    assert "checkpoint_invalid" in res.stdout

    # Change one entry's field in the file.
    entry = json.loads(lines[3])
    entry["action_type"] = "DOWNLOAD"
    (tmp_path / "changed.jsonl").write_text("\n".join([*lines[:3], json.dumps(entry), *lines[4:]]) + "\n")
    res = run(["audit", "verify-file", str(tmp_path / "changed.jsonl")], bare)
    assert res.returncode == 1
    assert f"first bad entry {entry['id']} (seq {entry['seq']}) [changed]" in res.stdout

    # Cut the tail: the checkpoint in the file still covers it.
    (tmp_path / "cut.jsonl").write_text("\n".join([*lines[:5], lines[-1]]) + "\n")
    res = run(["audit", "verify-file", str(tmp_path / "cut.jsonl")], bare)
    assert res.returncode == 1
    assert "[truncated]" in res.stdout


# ---------------------------------------------------------------- the seed's examples, unchanged but for URL and key

SEED_PYTHON = """
import requests
api_key = "pm_live_your_api_key_here"
response = requests.get(
"https://app.powermeterapi.dev/v1/audit/logs?action_type=VIEW&limit=50",
headers={"Authorization": f"Bearer {api_key}"}
)
logs = response.json()['data']['logs']
for log in logs:
    print(f"{log['timestamp']}: {log['action_type']} on {log['receipt_id']}")
"""


@pytest.fixture
def server(env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    with live_server(env, tmp_path / "server.out") as base:
        yield base


def test_the_seed_examples_work_with_only_base_url_and_key_changed(
    server: str, account: Account, append: Append
) -> None:
    append(2, "VIEW", "rcpt_abc123")
    append(1, "EDIT", "rcpt_abc123")
    code = SEED_PYTHON.replace("https://app.powermeterapi.dev", server).replace(
        "pm_live_your_api_key_here", account.key
    )
    try:
        import requests  # noqa: F401

        runner = [sys.executable, "-c", code]
    except ImportError:
        # `requests` is not a dependency here; run the snippet with httpx standing in for it
        # (the same get(url, headers=...) and .json() calls).
        shim = "import sys, httpx; sys.modules['requests'] = httpx\n"
        runner = [sys.executable, "-c", shim + code]
    res = subprocess.run(runner, capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 0, res.stderr
    printed = res.stdout.splitlines()
    assert len(printed) == 2
    assert all(re.match(r"^\d{4}-\d\d-\d\dT[\d:.]+Z: VIEW on rcpt_abc123$", p) for p in printed)

    curl = subprocess.run(
        [
            "curl",
            "-s",
            "-X",
            "GET",
            f"{server}/v1/audit/logs?action_type=VIEW&limit=50",
            "-H",
            f"Authorization: Bearer {account.key}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    body = json.loads(curl.stdout)
    assert body["status"] == "success"
    assert body["data"]["total"] == 2
    assert {"id", "action_type", "receipt_id", "timestamp", "signature", "verified"} <= set(body["data"]["logs"][0])
    assert body["data"]["logs"][0]["verified"] is True
