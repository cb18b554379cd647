"""``/metrics`` of ``powermeter serve --workers 2`` counts the requests of both workers, whichever one
answers the scrape, and keeps a killed worker's counts after uvicorn restarts it (issue 13)."""

from __future__ import annotations

import os
import re
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from powermeter.infra.observability import counter_files, read_counter_file
from tests.live import live_server, server_env

pytestmark = pytest.mark.slow  # a live 2-worker server and a worker restart: 12-40 s on a loaded 2-core machine

ROUTE = "/v1/me"


def _per_worker(directory: Path) -> dict[int, int]:
    """Requests to ROUTE counted in each worker's own file (the file name starts with its pid)."""
    return {int(f.name.split("-")[0]): read_counter_file(f).request_count(ROUTE) for f in counter_files(directory)}


def _send(base: str, n: int) -> None:
    """``n`` requests, each on a new connection (so the kernel hands them to either worker)."""

    def one(_: int) -> int:
        return httpx.get(base + ROUTE, timeout=30).status_code  # no key: a 401 (or a 429), no database write

    with ThreadPoolExecutor(4) as pool:
        codes = list(pool.map(one, range(n)))
    assert set(codes) <= {401, 429}


def _send_until_each_served(base: str, directory: Path, pids: set[int], sent: int) -> int:
    """Send in rounds until every worker in ``pids`` counted some; return the total sent."""
    for _ in range(40):
        _send(base, 20)
        sent += 20
        counts = _per_worker(directory)
        if all(counts.get(p, 0) > 0 for p in pids):
            return sent
    raise AssertionError(f"a worker got no request: {counts}")


def _scrape(base: str) -> str:
    r = httpx.get(base + "/metrics", timeout=30)  # a new connection each time: either worker answers
    assert r.status_code == 200
    return r.text


def _sum(text: str, metric: str) -> float:
    pattern = rf'^{metric}\{{method="GET",route="{re.escape(ROUTE)}"[^}}]*\}} (\S+)$'
    return sum(float(v) for v in re.findall(pattern, text, re.M))


def _assert_totals(base: str, sent: int) -> None:
    for _ in range(6):
        text = _scrape(base)
        assert _sum(text, "powermeter_http_requests_total") == sent
        assert _sum(text, "powermeter_http_request_duration_seconds_count") == sent
        inf = 'powermeter_http_request_duration_seconds_bucket{method="GET",route="/v1/me",le="+Inf"}'
        assert f"{inf} {sent}\n" in text
        assert text.count("# TYPE powermeter_http_requests_total counter") == 1


def _live_pids(directory: Path) -> set[int]:
    alive = set()
    for pid in _per_worker(directory):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        alive.add(pid)
    return alive


def test_metrics_sum_both_workers_and_survive_a_killed_worker(tmp_path: Path) -> None:
    directory = tmp_path / "metrics"
    env = server_env(tmp_path, f"sqlite:///{tmp_path / 'pm.db'}")
    env["POWERMETER_METRICS_DIR"] = str(directory)
    with live_server(env, tmp_path / "serve.log", workers=2) as base:
        deadline = time.monotonic() + 60
        while len(_live_pids(directory)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        workers = _live_pids(directory)
        assert len(workers) == 2, _per_worker(directory)

        sent = _send_until_each_served(base, directory, workers, 0)
        assert all(_per_worker(directory)[p] > 0 for p in workers)  # both served some
        _assert_totals(base, sent)

        # kill one worker outright: uvicorn starts another; the dead one's counts stay in the totals
        victim = min(workers)
        before = _per_worker(directory)[victim]
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            now = _live_pids(directory)
            if len(now) == 2 and victim not in now:
                break
            time.sleep(0.2)
        replaced = _live_pids(directory)
        assert victim not in replaced
        assert len(replaced) == 2, _per_worker(directory)
        sent = _send_until_each_served(base, directory, replaced, sent)
        assert _per_worker(directory)[victim] == before
        _assert_totals(base, sent)
