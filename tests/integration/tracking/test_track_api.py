"""``powermeter.client.track``: a context manager and a decorator measuring this process."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from powermeter.client import PowermeterClient, track
from powermeter.tracking.spool import Spool, flush
from tests.integration.tracking.helpers import Live, started


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with started(tmp_path_factory.mktemp("api")) as lv:
        yield lv


def _spin(seconds: float) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        pass


def test_with_track_reports_the_block(live: Live, tmp_path: Path) -> None:
    with (
        PowermeterClient(live.url, live.key) as pm,
        track("api-busy", cpu_cores=1, client=pm, geo_iso="DE", interval=0.2, spool_dir=tmp_path, quiet=True) as t,
    ):
        c0 = time.process_time()
        t0 = time.monotonic()
        _spin(1.0)
        self_ratio = (time.process_time() - c0) / (time.monotonic() - t0)
    assert t.receipt is not None
    assert t.spooled is None
    assert t.measured is not None
    assert t.measured.started_at < t.measured.ended_at
    inputs = live.receipt_of("api-busy")["receipt"]["inputs"]
    assert inputs["geo_iso"] == "DE"
    assert inputs["cpu_cores"] == 1
    assert inputs["cpu_utilization"] == pytest.approx(min(1.0, self_ratio), abs=0.15)


def test_an_idle_block_uses_almost_no_cpu(live: Live, tmp_path: Path) -> None:
    with track("api-idle", cpu_cores=1, url=live.url, api_key=live.key, spool_dir=tmp_path, quiet=True) as t:
        time.sleep(1.0)
    assert t.receipt is not None
    assert live.receipt_of("api-idle")["receipt"]["inputs"]["cpu_utilization"] <= 0.05


def test_decorator_reports_one_job_per_call_and_exceptions_pass_through(live: Live, tmp_path: Path) -> None:
    @track("api-dec", url=live.url, api_key=live.key, spool_dir=tmp_path, quiet=True, interval=0.1)
    def work(fail: bool) -> int:
        time.sleep(0.1)
        if fail:
            raise KeyError("boom")
        return 42

    assert work(False) == 42
    assert work(False) == 42
    with pytest.raises(KeyError, match="boom"):
        work(True)
    jobs = [r["job_id"] for r in live.receipts()["receipts"] if r["job_id"].startswith("api-dec-")]
    assert len(jobs) == 3
    assert len(set(jobs)) == 3


def test_server_away_spools_to_the_same_spool_as_the_cli(live: Live, tmp_path: Path) -> None:
    with track("api-offline", url="http://127.0.0.1:9", api_key=live.key, spool_dir=tmp_path, quiet=True) as t:
        time.sleep(0.1)
    assert t.receipt is None
    assert t.spooled is not None
    assert t.spooled.parent == tmp_path
    res = flush(Spool(tmp_path), live.url, live.key)
    assert (res.sent, res.left) == (1, 0)
    assert live.receipts("api-offline")["total"] == 1
