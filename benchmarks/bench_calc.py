"""Throughput of the public calculator: POST /calc/api/cost vs a bare FastAPI POST route (same run, same tool),
plus the tariff engine's own cost per call in-process.

    python benchmarks/bench_calc.py [--duration 5] [--engine-only]

Goal (issue 5): /calc/api/cost answers at ≥ 50 % of the bare route's throughput.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from benchmarks.httpbench import bare_baseline, powermeter_env, report, server, wrk

FLAT = {"device": {"watts": 100, "hours_per_day": 8}, "rateConfig": {"flat_rate": 0.15}}
TOU = {
    "device": {"watts": 100, "hours_per_day": 8, "schedule": [[22, 30]]},
    "rateConfig": {
        "flat_rate": 0.15,
        "currency": "USD",
        "tou_tiers": [
            {"name": "off-peak", "start_hour": 0, "end_hour": 9, "rate": 0.12},
            {"name": "peak", "start_hour": 9, "end_hour": 24, "rate": 0.30},
        ],
    },
}
REGION = {"device": {"watts": 1500, "hours_per_day": 2, "schedule": [[17, 19]]}, "regionCode": "US-CA"}


def engine(n: int = 20000) -> None:
    from powermeter.cost import service
    from powermeter.data.rates import load_rates

    rates = load_rates()
    for name, body in (("flat", FLAT), ("tou", TOU), ("region US-CA tou", REGION)):
        for _ in range(500):
            service.cost(body, rates)
        t0 = time.perf_counter()
        for _ in range(n):
            service.cost(body, rates)
        us = (time.perf_counter() - t0) / n * 1e6
        print(f"engine {name}: {us:.1f} µs per request body → response dict")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--engine-only", action="store_true")
    args = ap.parse_args()
    engine()
    if args.engine_only:
        return
    with tempfile.TemporaryDirectory() as tmp:
        env = powermeter_env(Path(tmp))  # per-minute limits raised so wrk is not rate-limited
        bare = bare_baseline(args.duration, post_body=json.dumps(FLAT).encode())
        results = {}
        with server("powermeter.app:app_from_env", env=env, factory=True) as base:
            for name, body in (("flat", FLAT), ("tou", TOU), ("region", REGION)):
                results[name] = wrk(
                    base + "/calc/api/cost",
                    method="POST",
                    body=json.dumps(body).encode(),
                    headers={"Content-Type": "application/json"},
                    duration_s=args.duration,
                )
        for name, res in results.items():
            report(f"POST /calc/api/cost ({name})", res, bare, goal_ratio=0.5)


if __name__ == "__main__":
    main()
