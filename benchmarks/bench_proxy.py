"""``powermeter proxy`` overhead: latency added to a loopback upstream (goal ≤ 1 ms median) and throughput
passed compared with hitting the upstream directly (goal ≥ 50 %).

The upstream is the bare FastAPI app (``bare_app.py``, one uvicorn worker pinned to CPU 0); wrk runs on
CPU 1. The machine has two cores, so the proxy has to share one: ``--proxy-cpu`` picks which (default 1,
with wrk). Besides wrk's figures the script reads the CPU time each process used (``/proc/<pid>/stat``)
and prints the proxy's CPU cost per request next to the upstream's: that ratio is what the proxy can pass
on a core of its own, independent of the co-location.

    python benchmarks/bench_proxy.py [--duration 8] [--proxy-cpu 1]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.httpbench import free_port, server, wrk  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its children that were waited for."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / TICK


def server_pid(port: int) -> int:
    out = subprocess.run(["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True, check=True).stdout
    return int(out.split("pid=")[1].split(",")[0])


@contextlib.contextmanager
def proxy(upstream: str, cpu: int) -> Iterator[tuple[str, int]]:
    port = free_port()
    pin = ["taskset", "-c", str(cpu)] if shutil.which("taskset") and (os.cpu_count() or 1) > 1 else []
    cmd = [*pin, sys.executable, "-m", "powermeter.proxy.commands", "proxy", "--listen", f"127.0.0.1:{port}",
           "--upstream", f"CAISO={upstream}", "--log-level", "warning"]  # fmt: skip
    tmp = tempfile.mkdtemp(prefix="pm-bench-proxy-")
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}", "POWERMETER_DATA_DIR": tmp}
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                httpx.get(base + "/ping", timeout=1)
                break
            except httpx.HTTPError:
                if time.time() > deadline or proc.poll() is not None:
                    raise RuntimeError("proxy did not start") from None
                time.sleep(0.2)
        yield base, proc.pid
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        if proc.poll() is None:
            proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)


def measured(url: str, pids: dict[str, int], duration: int, connections: int) -> dict[str, float]:
    before = {k: cpu_seconds(p) for k, p in pids.items()}
    res = wrk(url, duration_s=duration, connections=connections, warmup_s=0)
    total = res["rps"] * duration
    for k, p in pids.items():
        res[f"{k}_cpu_ms_per_req"] = (cpu_seconds(p) - before[k]) * 1000 / max(total, 1)
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=8)
    ap.add_argument("--proxy-cpu", type=int, default=1)
    args = ap.parse_args()
    with server("benchmarks.bare_app:app") as up:
        up_pid = server_pid(int(up.rsplit(":", 1)[1]))
        wrk(up + "/ping", duration_s=2, warmup_s=0)  # warm-up
        direct = measured(up + "/ping", {"upstream": up_pid}, args.duration, 32)
        direct1 = measured(up + "/ping", {"upstream": up_pid}, args.duration, 1)
        with proxy(up, args.proxy_cpu) as (px, px_pid):
            wrk(px + "/ping", duration_s=2, warmup_s=0)
            via = measured(px + "/ping", {"upstream": up_pid, "proxy": px_pid}, args.duration, 32)
            via1 = measured(px + "/ping", {"upstream": up_pid, "proxy": px_pid}, args.duration, 1)
            headers = httpx.get(px + "/ping").headers
    print(f"headers via proxy: X-Carbon-Region={headers.get('x-carbon-region')} "
          f"X-Carbon-Intensity={headers.get('x-carbon-intensity')}")  # fmt: skip
    print(f"c=1  direct: p50 {direct1['p50_ms']:.3f} ms, p99 {direct1['p99_ms']:.3f} ms, {direct1['rps']:.0f} req/s")
    print(f"c=1  proxy : p50 {via1['p50_ms']:.3f} ms, p99 {via1['p99_ms']:.3f} ms, {via1['rps']:.0f} req/s")
    print(f"added median latency: {via1['p50_ms'] - direct1['p50_ms']:.3f} ms (goal ≤ 1 ms)")
    print(f"c=32 direct: {direct['rps']:.0f} req/s, p50 {direct['p50_ms']:.2f} ms, non-2xx {direct['non2xx']:.0f}")
    print(f"c=32 proxy : {via['rps']:.0f} req/s, p50 {via['p50_ms']:.2f} ms, non-2xx {via['non2xx']:.0f} "
          f"(proxy on CPU {args.proxy_cpu})")  # fmt: skip
    print(f"throughput ratio (wrk): {via['rps'] / direct['rps']:.1%} (goal ≥ 50%)")
    up_cost = direct["upstream_cpu_ms_per_req"]
    px_cost = via["proxy_cpu_ms_per_req"]
    print(f"CPU per request: upstream {up_cost:.3f} ms, proxy {px_cost:.3f} ms → a proxy core passes "
          f"{up_cost / px_cost:.1%} of what an upstream core serves")  # fmt: skip


if __name__ == "__main__":
    main()
