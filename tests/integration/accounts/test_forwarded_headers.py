"""``powermeter serve`` trusts X-Forwarded-For only from --forwarded-allow-ips (issue 14 item 11)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import PG_URL
from tests.live import POWERMETER, free_port, server_env

BODY = {"battery_wh": 13500, "charge_rate": 0.12, "discharge_rate": 0.4}


def _serve(env: dict[str, str], *extra: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [*POWERMETER, "serve", "--port", str(port), "--log-level", "warning", *extra],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError("server did not start")


def _spoofed_codes(base: str) -> list[int]:
    return [
        httpx.post(base + "/calc/api/arbitrage", json=BODY, headers={"X-Forwarded-For": f"10.0.0.{i}"}).status_code
        for i in range(4)
    ]


@pytest.mark.slow
@pytest.mark.skipif(PG_URL is not None, reason="one run is enough")
def test_forwarded_for_is_ignored_unless_the_proxy_is_trusted(tmp_path: Path) -> None:
    env = server_env(tmp_path, f"sqlite:///{tmp_path / 'pm.db'}")
    env["POWERMETER_PLANS_JSON"] = json.dumps({"dev": {"per_minute": 3}})
    proc, base = _serve(env)
    try:
        assert _spoofed_codes(base) == [200, 200, 200, 429]  # one client (127.0.0.1), whatever the header says
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    env["POWERMETER_RATELIMIT_PREFIX"] = "second-run"
    proc, base = _serve(env, "--forwarded-allow-ips", "127.0.0.1")
    try:
        assert _spoofed_codes(base) == [200, 200, 200, 200]  # behind a trusted proxy: each client its own limit
    finally:
        proc.terminate()
        proc.wait(timeout=15)
