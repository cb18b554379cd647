"""POST /route: the in-process decision for 10 candidates (goal ≤ 50 µs) and the HTTP throughput of
one uvicorn worker against the bare FastAPI route (goal ≥ 50 %).

    python benchmarks/bench_route.py [--duration 8] [--no-http]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CANDIDATES = ["CAISO", "BPA", "ERCOT", "PJM", "MISO", "NYISO", "ISONE", "SPP", "aws:us-west-2", "gcp:us-central1"]


def _timeit(fn, n: int, reps: int = 7) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """(median µs per call over ``reps`` batches of ``n`` calls, p99 µs of single calls)."""
    for _ in range(n // 10):
        fn()
    batches = []
    for _ in range(reps):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        batches.append((time.perf_counter() - t0) / n * 1e6)
    singles = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        singles.append((time.perf_counter() - t0) * 1e6)
    singles.sort()
    return statistics.median(batches), singles[int(len(singles) * 0.99)]


def in_process() -> None:
    from powermeter.data.grid import load_grid_data
    from powermeter.methodology.routing import Candidate, Policy, decide, payload_gb, request_footprint
    from powermeter.routing.providers import StaticProvider

    grid = load_grid_data()
    static = StaticProvider()
    now = datetime(2026, 11, 22, 12, tzinfo=UTC)
    points = {c: static.current_nowait(c, now) for c in CANDIDATES}
    cands = [
        Candidate(c, points[c].intensity_g_per_kwh, grid.latency.rtt_ms("gcp:us-west1", c), True) for c in CANDIDATES
    ]
    pure = Policy()
    bounded = Policy(carbon_weight=0.7, max_latency_ms=60)

    med, p99 = _timeit(lambda: decide(cands, pure, "BPA"), 20_000)
    print(
        f"decide(), 10 candidates, carbon only, with hysteresis: median {med:.2f} µs/call, p99 {p99:.2f} µs (goal ≤ 50)"
    )
    med, p99 = _timeit(lambda: decide(cands, bounded, "BPA"), 20_000)
    print(
        f"decide(), 10 candidates, weight 0.7 + 60 ms bound:     median {med:.2f} µs/call, p99 {p99:.2f} µs (goal ≤ 50)"
    )

    def full() -> None:
        pts = {c: static.current_nowait(c, now) for c in CANDIDATES}
        cs = [
            Candidate(c, pts[c].intensity_g_per_kwh, grid.latency.rtt_ms("gcp:us-west1", c), True) for c in CANDIDATES
        ]
        d = decide(cs, bounded, "BPA")
        assert d.chosen is not None
        request_footprint(payload_gb(128, "MB"), grid.request_energy, pts[d.chosen.region].intensity_g_per_kwh)

    med, p99 = _timeit(full, 10_000)
    print(f"lookups + latency table + decide + energy model:       median {med:.2f} µs/call, p99 {p99:.2f} µs")


def http(duration: int) -> None:
    from benchmarks.httpbench import bare_baseline, make_key, powermeter_env, report, server, wrk

    body = json.dumps({"source_region": "us-west1", "payload_size": 128, "candidates": CANDIDATES}).encode()
    bare_body = json.dumps({"source_region": "us-west1", "payload_size": 128, "candidates": CANDIDATES}).encode()
    with tempfile.TemporaryDirectory() as tmp:
        plans = {"dev": {"daily_calls": None, "daily_kwh": None, "per_minute": 10_000_000,
                         "route_monthly_calls": None, "route_regions": "global"}}  # fmt: skip
        env = powermeter_env(Path(tmp), POWERMETER_PLANS_JSON=json.dumps(plans))
        key = make_key(env)
        bare = bare_baseline(duration, post_body=bare_body)
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        with server("powermeter.app:app_from_env", env=env, factory=True) as base:
            floor = wrk(base + "/v1/me", headers={"Authorization": f"Bearer {key}"}, duration_s=duration)
            one = wrk(base + "/route", method="POST", body=body, headers=headers, duration_s=duration, connections=1)
            ours = wrk(base + "/route", method="POST", body=body, headers=headers, duration_s=duration)
        with server("benchmarks.bare_app:app") as base:
            ct = {"Content-Type": "application/json"}
            bare_one = wrk(base + "/echo", method="POST", body=bare_body, headers=ct, duration_s=duration,
                           connections=1)  # fmt: skip
        report("POST /route, 10 candidates (auth + monthly quota + hysteresis state), c=32", ours, bare, 0.5)
        share = f"{ours['rps'] / floor['rps']:.1%}" if floor["rps"] else "n/a"
        print(
            f"authentication floor, GET /v1/me, c=32: {floor['rps']:.0f} req/s, p50 {floor['p50_ms']:.2f} ms "
            f"({floor['rps'] / bare['rps']:.1%} of bare); /route = {share} of it"
        )
        print(
            f"c=1: /route p50 {one['p50_ms']:.2f} ms ({one['rps']:.0f} req/s); "
            f"bare p50 {bare_one['p50_ms']:.2f} ms ({bare_one['rps']:.0f} req/s)"
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=8)
    ap.add_argument("--no-http", action="store_true")
    args = ap.parse_args()
    in_process()
    if not args.no_http:
        http(args.duration)


if __name__ == "__main__":
    main()
