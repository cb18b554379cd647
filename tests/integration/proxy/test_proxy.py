"""The carbon-aware reverse proxy against three real upstream HTTP servers on loopback."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from powermeter.methodology.routing import Policy
from powermeter.proxy.app import CarbonProxy, ProxyConfig, parse_upstream
from powermeter.proxy.asgi import build_server, parse_listen
from powermeter.routing.providers import CsvProvider, IntensityProvider
from tests.integration.routing.conftest import REGIONS, Upstreams, free_port, wait_port

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def write_intensities(path: Path, values: dict[str, float]) -> None:
    """One day of hourly data, constant per region."""
    start = NOW.replace(hour=0)
    lines = ["region,timestamp,intensity"]
    for region, v in values.items():
        for h in range(24):
            lines.append(f"{region},{(start + timedelta(hours=h)).isoformat()},{v}")
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(path)  # atomic: the proxy never reads a half-written file
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))


class RunningProxy:
    """The proxy served by uvicorn on its own event loop in a thread."""

    def __init__(self, proxy: CarbonProxy) -> None:
        self.proxy = proxy
        self.port = free_port()
        self.server = build_server(proxy, "127.0.0.1", self.port)
        self.thread = threading.Thread(target=lambda: asyncio.run(self.server.serve()), daemon=True)

    def __enter__(self) -> RunningProxy:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise TimeoutError("proxy did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def make_proxy(ups: Upstreams, provider: IntensityProvider, **config: Any) -> CarbonProxy:
    cfg = ProxyConfig(
        upstreams=[(name, ups.url(name)) for name in REGIONS],
        refresh_interval_s=config.pop("refresh_interval_s", 0.1),
        health_interval_s=config.pop("health_interval_s", 0.2),
        **config,
    )
    return CarbonProxy(cfg, provider, clock=lambda: NOW)


def wait_until(cond: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        time.sleep(0.02)


def served_by(client: httpx.Client, path: str = "/hello") -> str:
    r = client.get(path)
    assert r.status_code == 200, r.text
    upstream: str = r.json()["upstream"]
    assert r.headers["x-carbon-region"] == upstream
    return upstream


@pytest.mark.parametrize("client_kind", ["lean", "httpx"])
def test_traffic_goes_to_cleanest_moves_with_data_and_survives_a_killed_upstream(
    upstreams: Upstreams, tmp_path: Path, client_kind: str
) -> None:
    data = tmp_path / "grid.csv"
    write_intensities(data, {"CAISO": 100, "PJM": 400, "BPA": 50})
    provider = CsvProvider(data, reload_check_s=0.0)
    proxy = make_proxy(upstreams, provider, client=client_kind)
    with RunningProxy(proxy) as rp, httpx.Client(base_url=rp.url, timeout=10) as client:
        # 1. The cleanest upstream gets the traffic, with the carbon headers.
        r = client.get("/hello?x=1")
        assert r.status_code == 200
        body = r.json()
        assert body["upstream"] == "BPA"
        assert body["path"] == "/hello"
        assert body["forwarded_for"] == "127.0.0.1"
        assert r.headers["x-carbon-region"] == "BPA"
        assert r.headers["x-carbon-intensity"] == "50.0"
        assert r.headers["x-carbon-signal"] == "average"
        assert r.headers["x-carbon-provider"] == "csv"
        assert {served_by(client) for _ in range(20)} == {"BPA"}

        # 2. The data change: CAISO becomes cleanest; the background refresh moves the traffic.
        refreshes = rp.proxy.refreshes
        write_intensities(data, {"CAISO": 20, "PJM": 400, "BPA": 50})
        wait_until(lambda: rp.proxy.refreshes >= refreshes + 2)
        assert {served_by(client) for _ in range(20)} == {"CAISO"}

        # 3. A near-tie does not move it back (margin 10 %): BPA at 19 is only 5 % better.
        write_intensities(data, {"CAISO": 20, "PJM": 400, "BPA": 19})
        refreshes = rp.proxy.refreshes
        wait_until(lambda: rp.proxy.refreshes >= refreshes + 2)
        assert {served_by(client) for _ in range(10)} == {"CAISO"}

        # 4. Kill CAISO mid-load: no idempotent request fails; traffic moves to the next cleanest.
        results: list[tuple[int, str]] = []
        lock = threading.Lock()
        stop = time.monotonic() + 2.0

        def worker() -> None:
            with httpx.Client(base_url=rp.url, timeout=10) as c:
                while time.monotonic() < stop:
                    try:
                        resp = c.get("/load")
                        item = (resp.status_code, resp.headers.get("x-carbon-region", "?"))
                    except httpx.HTTPError as exc:
                        item = (0, type(exc).__name__)
                    with lock:
                        results.append(item)

        with ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(worker) for _ in range(4)]
            time.sleep(0.6)
            upstreams.kill("CAISO")
            for f in futures:
                f.result()
        statuses = Counter(status for status, _ in results)
        regions = Counter(region for _, region in results)
        assert statuses == {200: len(results)}, statuses
        assert regions["CAISO"] > 0
        assert regions["BPA"] > 0
        assert len(results) > 50
        assert {served_by(client) for _ in range(10)} == {"BPA"}
        status = client.get("/.well-known/powermeter-proxy").json()
        caiso = next(u for u in status["upstreams"] if u["region"] == "CAISO")
        assert caiso["healthy"] is False
        assert status["decision"]["chosen"] == "BPA"


@pytest.mark.parametrize("client_kind", ["lean", "httpx"])
def test_bodies_stream_both_ways(upstreams: Upstreams, tmp_path: Path, client_kind: str) -> None:
    data = tmp_path / "grid.csv"
    write_intensities(data, {"CAISO": 100, "PJM": 400, "BPA": 50})
    with (
        RunningProxy(make_proxy(upstreams, CsvProvider(data), client=client_kind)) as rp,
        httpx.Client(base_url=rp.url, timeout=30) as client,
    ):
        payload = os.urandom(3 << 20)

        def chunks() -> Iterator[bytes]:
            for i in range(0, len(payload), 256 << 10):
                yield payload[i : i + (256 << 10)]

        # Chunked upload (no Content-Length) of a non-idempotent request: streamed through.
        r = client.post("/echo", content=chunks())
        assert r.status_code == 200
        assert r.json()["bytes"] == len(payload)
        assert r.json()["sha256"] == hashlib.sha256(payload).hexdigest()
        # HEAD: headers only, and the connection stays usable.
        head = client.head("/hello")
        assert head.status_code == 200
        assert head.content == b""
        assert int(head.headers["content-length"]) > 0
        assert client.get("/hello").json()["upstream"] == "BPA"
        # A large PUT (over the replay buffer) is streamed too.
        r = client.put("/echo", content=payload)
        assert r.json()["bytes"] == len(payload)
        assert r.json()["method"] == "PUT"
        # Streamed download without Content-Length, read incrementally.
        received = 0
        first_chunk_at = None
        t0 = time.monotonic()
        with client.stream("GET", "/stream?chunks=200&size=65536") as resp:
            assert resp.headers["x-carbon-region"] == "BPA"
            assert "content-length" not in resp.headers
            for part in resp.iter_raw():
                if first_chunk_at is None:
                    first_chunk_at = time.monotonic() - t0
                received += len(part)
        assert received == 200 * 65536


@pytest.mark.parametrize("client_kind", ["lean", "httpx"])
def test_only_idempotent_requests_are_retried(upstreams: Upstreams, tmp_path: Path, client_kind: str) -> None:
    data = tmp_path / "grid.csv"
    write_intensities(data, {"CAISO": 100, "PJM": 400, "BPA": 50})
    with (
        RunningProxy(make_proxy(upstreams, CsvProvider(data), client=client_kind)) as rp,
        httpx.Client(base_url=rp.url, timeout=10) as client,
    ):
        # BPA (first) and CAISO answer 503 to /only-on/PJM; a GET walks on to PJM.
        r = client.get("/only-on/PJM")
        assert r.status_code == 200
        assert r.json()["upstream"] == "PJM"
        assert r.headers["x-carbon-region"] == "PJM"
        # A POST is sent once, to the first choice, and its 503 comes back as is.
        r = client.post("/only-on/PJM", json={"n": 1})
        assert r.status_code == 503
        assert r.json()["upstream"] == "BPA"
        # 503s are not health failures: the first choice stays BPA.
        assert served_by(client) == "BPA"


def test_latency_bound_excludes_far_upstreams(upstreams: Upstreams, tmp_path: Path) -> None:
    data = tmp_path / "grid.csv"
    write_intensities(data, {"CAISO": 300, "PJM": 10, "BPA": 200})
    # From N. California, PJM (≈79 ms modelled RTT) breaks a 40 ms bound although it is cleanest.
    proxy = make_proxy(upstreams, CsvProvider(data), source_region="aws:us-west-1", policy=Policy(max_latency_ms=40))
    with RunningProxy(proxy) as rp, httpx.Client(base_url=rp.url, timeout=10) as client:
        assert {served_by(client) for _ in range(5)} == {"BPA"}
        status = client.get("/.well-known/powermeter-proxy").json()
        assert {"region": "PJM", "reason": "latency"} in status["decision"]["excluded"]


def test_all_upstreams_down_gives_502(tmp_path: Path) -> None:
    data = tmp_path / "grid.csv"
    write_intensities(data, {"CAISO": 100})
    cfg = ProxyConfig(upstreams=[("CAISO", f"http://127.0.0.1:{free_port()}")], refresh_interval_s=5)
    with RunningProxy(CarbonProxy(cfg, CsvProvider(data), clock=lambda: NOW)) as rp:
        r = httpx.get(rp.url + "/x", timeout=10)
        assert r.status_code == 502
        assert r.json()["error"] == "bad_gateway"


def test_cli_argument_parsing() -> None:
    assert parse_upstream("CAISO=http://127.0.0.1:8001") == ("CAISO", "http://127.0.0.1:8001")
    assert parse_listen("127.0.0.1:9000") == ("127.0.0.1", 9000)
    with pytest.raises(ValueError, match="REGION=http"):
        parse_upstream("http://no-region")
    with pytest.raises(ValueError, match="http"):
        parse_upstream("CAISO=ftp://x")
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_listen("9000")


def test_cli_command_runs_standalone(upstreams: Upstreams, tmp_path: Path) -> None:
    data = tmp_path / "grid.csv"
    write_intensities(data, {"CAISO": 100, "PJM": 400, "BPA": 50})
    port = free_port()
    env = {**os.environ, "POWERMETER_DATA_DIR": str(tmp_path)}
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "powermeter.proxy.commands", "proxy",
            "--listen", f"127.0.0.1:{port}",
            "--upstream", f"CAISO={upstreams.url('CAISO')}",
            "--upstream", f"BPA={upstreams.url('BPA')}",
            "--csv", str(data),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )  # fmt: skip
    try:
        wait_port(port)
        r = httpx.get(f"http://127.0.0.1:{port}/hi", timeout=10)
        # The CSV covers today only; the proxy's real clock may be any date: the seasonal-naive
        # replay still ranks BPA first.
        assert r.json()["upstream"] == "BPA"
        assert r.headers["x-carbon-provider"] == "csv"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
