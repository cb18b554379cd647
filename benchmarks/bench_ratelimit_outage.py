"""What a dead or hung Redis costs one rate-limit decision, against the same limiter with Redis up.

    python benchmarks/bench_ratelimit_outage.py [--n 2000]

Starts a throwaway ``redis-server`` on a free port (needs it installed), then times ``RateLimiter.hit``:
Redis up; Redis killed (the first call, which finds it dead, and the calls during the back-off);
a "hung" Redis that accepts connections and never answers (the first call waits for the socket
timeout). It prints medians and p99 in microseconds, with ratios against Redis up.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time

from powermeter.infra.ratelimit import RateLimiter


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _time(limiter: RateLimiter, n: int, spec: str = "1000000/minute") -> list[float]:
    out = []
    for i in range(n):
        t = time.perf_counter()
        limiter.hit(spec, "key", str(i % 50))
        out.append((time.perf_counter() - t) * 1e6)
    return out


def _summary(xs: list[float]) -> str:
    xs = sorted(xs)
    return f"median {statistics.median(xs):8.1f} µs   p99 {xs[int(len(xs) * 0.99) - 1]:8.1f} µs"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    n = ap.parse_args().n
    server = shutil.which("redis-server")
    if not server:
        raise SystemExit("redis-server is not installed")
    print(f"load average: {os.getloadavg()}")
    port = _port()
    work = tempfile.mkdtemp()
    proc = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", work],
        stdout=subprocess.DEVNULL,
    )
    try:
        limiter = RateLimiter(f"redis://127.0.0.1:{port}/0", key_prefix="bench")
        deadline = time.monotonic() + 10
        while True:
            try:
                limiter.ping()
                break
            except ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        up = _time(limiter, n)
        print(f"Redis up               {_summary(up)}")
        proc.kill()
        proc.wait()
        first = _time(limiter, 1)[0]
        down = _time(limiter, n)
        print(f"Redis killed: 1st call {first:8.1f} µs (finds it dead, starts the back-off)")
        ratio = statistics.median(down) / statistics.median(up)
        print(f"Redis killed: back-off {_summary(down)}   ratio to up {ratio:.2f}")
    finally:
        proc.kill()
        shutil.rmtree(work, ignore_errors=True)

    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(16)
    try:
        hung = RateLimiter(f"redis://127.0.0.1:{hole.getsockname()[1]}/0", key_prefix="bench")
        first = _time(hung, 1)[0]
        after = _time(hung, n)
        print(f"Redis hung: 1st call   {first:8.1f} µs (bounded by the {0.1 * 1e6:.0f} µs socket timeout)")
        print(f"Redis hung: back-off   {_summary(after)}")
    finally:
        hole.close()


if __name__ == "__main__":
    main()
