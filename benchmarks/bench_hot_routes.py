"""Every hot route against the honest baseline, in one run (issue 19).

    python benchmarks/bench_hot_routes.py [--duration 5] [--rounds 3] [--connections 32]

Starts the bare FastAPI app (``bare_app.py``, its ``async def`` routes: the fastest plain FastAPI
route) and powermeter (uvicorn, one worker each, pinned to CPU 0; wrk on CPU 1), then measures, round
after round, the bare routes and each hot route in turn, so a change of load hits all of them alike.
Prints each figure's range over the rounds, the ratio of the medians, the goal, the lowest and the median
of the ratios within each round (a route and its baseline measured seconds apart), and the load average
before and after.

Routes: ``POST /v1/inference`` (500/300 tokens, gpt-4o) ≥ 0.35 × bare; ``POST /route`` (seed 002
example) ≥ 0.50; ``POST /calc/api/cost`` (seed 003 flat example, the per-minute limit lifted) ≥ 0.50;
``GET /v1/me`` ≥ 0.60. POST routes are compared with the bare ``POST /echo`` (same body), GET with the
bare ``GET /ping``. The last column is the ratio to ``bare_app.raw_app`` (a plain ASGI callable, no
framework): the floor no route doing real work can beat. ``--postgres URL [--redis URL]`` runs powermeter
on the scale path instead of its embedded SQLite (the baselines are the same).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from benchmarks.httpbench import make_key, pg_schema, powermeter_env, server, wrk

INFERENCE = {"provider": "OpenAI", "model": "gpt-4o", "prompt_tokens": 500, "completion_tokens": 300}
ROUTE = {
    "source_region": "us-west1",
    "payload_size": 128,
    "candidates": ["CAISO", "BPA", "ERCOT", "PJM", "MISO", "NYISO", "ISONE", "SPP", "aws:us-west-2", "gcp:us-central1"],
}
CALC = {"device": {"watts": 100, "hours_per_day": 8}, "rateConfig": {"flat_rate": 0.15}}

# every limit lifted: the benchmarks measure the work, not the 429s
PLANS = {
    "dev": {
        "daily_calls": 1_000_000_000,
        "daily_kwh": None,
        "per_minute": 10_000_000,
        "route_monthly_calls": None,
        "route_regions": "global",
    }
}

GOALS = {"POST /v1/inference": 0.35, "POST /route": 0.50, "POST /calc/api/cost": 0.50, "GET /v1/me": 0.60}


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--postgres", metavar="URL", help="powermeter on a fresh schema of PostgreSQL")
    ap.add_argument("--redis", metavar="URL", help="with --postgres: Redis (quota admission, group-commit lanes)")
    args = ap.parse_args()
    d, c = args.duration, args.connections
    where = "PostgreSQL" + (" + Redis" if args.redis else "") if args.postgres else "SQLite"
    print(f"powermeter on {where}; load average before: {load()}  (cores: {os.cpu_count()})")
    with tempfile.TemporaryDirectory() as tmp, pg_schema(args.postgres) as db_url:
        extra = {"POWERMETER_DATABASE_URL": db_url} if db_url else {}
        if db_url and args.redis:
            extra["POWERMETER_REDIS_URL"] = args.redis
        env = powermeter_env(Path(tmp), POWERMETER_PLANS_JSON=json.dumps(PLANS), POWERMETER_DEFAULT_PLAN="dev", **extra)
        key = make_key(env)
        auth = {"Authorization": f"Bearer {key}"}
        ct = {"Content-Type": "application/json"}
        runs: dict[str, list[float]] = {}
        with (
            server("benchmarks.bare_app:app") as bare,
            server("benchmarks.bare_app:raw_app") as raw,
            server("powermeter.app:app_from_env", env=env, factory=True) as pm,
        ):

            def post(url: str, payload: object, headers: dict[str, str]) -> Callable[[], Any]:
                body = json.dumps(payload).encode()
                return lambda: wrk(url, method="POST", body=body, headers=headers, duration_s=d, connections=c)

            cases = [
                ("bare async GET /ping", lambda: wrk(bare + "/ping", duration_s=d, connections=c)),
                ("bare async POST /echo", post(bare + "/echo", ROUTE, ct)),
                ("raw ASGI GET /ping", lambda: wrk(raw + "/ping", duration_s=d, connections=c)),
                ("raw ASGI POST /echo", post(raw + "/echo", ROUTE, ct)),
                ("POST /v1/inference", post(pm + "/v1/inference", INFERENCE, {**auth, **ct})),
                ("POST /route", post(pm + "/route", ROUTE, {**auth, **ct})),
                ("POST /calc/api/cost", post(pm + "/calc/api/cost", CALC, ct)),
                ("GET /v1/me", lambda: wrk(pm + "/v1/me", headers=auth, duration_s=d, connections=c)),
            ]
            for r in range(args.rounds):
                for name, run in cases:
                    res = run()
                    if res["non2xx"]:
                        raise SystemExit(f"{name}: {res['non2xx']:.0f} non-2xx answers")
                    runs.setdefault(name, []).append(res["rps"])
                print(
                    f"round {r + 1}: " + ", ".join(f"{n} {v[-1]:.0f}" for n, v in runs.items()) + f"  (load {load()})",
                    flush=True,
                )
    med = {n: statistics.median(v) for n, v in runs.items()}
    print(f"\nload average after: {load()}")
    print(
        f"{'route':<24} {'req/s (min–max)':>18} {'median':>8} {'÷ bare':>7} {'range':>13}  goal        ÷ raw ASGI"
        "  per round (min / median)"
    )
    for name, v in runs.items():
        line = f"{name:<24} {min(v):>8.0f}–{max(v):<9.0f} {med[name]:>8.0f}"
        if name in GOALS:
            base = runs["bare async GET /ping" if name.startswith("GET") else "bare async POST /echo"]
            lo, hi = min(v) / max(base), max(v) / min(base)
            ratio = med[name] / statistics.median(base)
            ok = "met" if ratio >= GOALS[name] else "NOT met"
            floor = statistics.median(runs["raw ASGI GET /ping" if name.startswith("GET") else "raw ASGI POST /echo"])
            line += f" {ratio:>7.2f} {lo:>6.2f}–{hi:<6.2f}  ≥ {GOALS[name]:.2f} {ok:<8} {med[name] / floor:.2f}"
            # the route and its baseline measured seconds apart in the same round: the ratio a drift of the
            # machine's speed between rounds does not move
            per_round = [x / b for x, b in zip(v, base, strict=True)]
            every = "every round" if min(per_round) >= GOALS[name] else "not every round"
            line += f"        {min(per_round):.2f} / {statistics.median(per_round):.2f} ({every})"
        print(line)


if __name__ == "__main__":
    main()
