"""Cost of the foundation on an authenticated route: GET /v1/me (key check, HMAC, key lookup) vs a bare
FastAPI route, one uvicorn worker each, wrk on loopback.

    python benchmarks/bench_auth.py [--duration 8]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.httpbench import bare_baseline, make_key, powermeter_env, report, server, wrk


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=8)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = powermeter_env(Path(tmp))
        key = make_key(env)
        bare = bare_baseline(args.duration)
        with server("powermeter.app:app_from_env", env=env, factory=True) as base:
            ours = wrk(base + "/v1/me", headers={"Authorization": f"Bearer {key}"}, duration_s=args.duration)
            counted = wrk(base + "/v1/api-keys", headers={"Authorization": f"Bearer {key}"}, duration_s=args.duration)
        report("GET /v1/me (auth, no quota)", ours, bare)
        report("GET /v1/api-keys (auth + list)", counted, bare)


if __name__ == "__main__":
    main()
