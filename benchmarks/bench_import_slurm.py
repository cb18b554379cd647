"""``powermeter import slurm`` of 100,000 sacct rows, end to end against a local server.

    python benchmarks/bench_import_slurm.py                   # 100,000 rows: jobs with .batch and .extern steps
    python benchmarks/bench_import_slurm.py --steps-per-job 0 # 100,000 rows, each a job (the heaviest case)

Starts ``powermeter serve`` on a free loopback port with a fresh SQLite database, creates a key, writes a
synthetic ``sacct -P`` file (every time and memory form, arrays, a few running/pending jobs), and times:

1. the baseline: ``import slurm --dry-run`` (the same process start, file read and parse, nothing sent);
2. the import itself (parse + ``/v1/batch`` chunks of 10,000 + the server storing and signing);
3. the same import again (nothing new stored).

Goal: the import ≤ 20 s.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.live import create_key, live_server, server_env

HEADER = "JobID|JobName|Partition|Elapsed|AllocCPUS|TotalCPU|ReqMem|MaxRSS|AllocTRES|NNodes|NodeList|State|Start|End"
STATES = (
    ["COMPLETED"] * 80
    + ["FAILED"] * 8
    + ["TIMEOUT"] * 4
    + ["CANCELLED by 1001"] * 4
    + ["OUT_OF_MEMORY"] * 2
    + ["RUNNING", "PENDING"]
)


def _dur(seconds: float, rng: random.Random) -> str:
    s = int(seconds)
    d, rem = divmod(s, 86400)
    h, rem = divmod(rem, 3600)
    m, sec = divmod(rem, 60)
    if d:
        return f"{d}-{h:02d}:{m:02d}:{sec:02d}"
    if h or rng.random() < 0.5:
        return f"{h:02d}:{m:02d}:{sec:02d}"
    return f"{m:02d}:{sec:02d}.{rng.randrange(1000):03d}"


def write_sacct(path: Path, rows: int, steps: int, seed: int = 1) -> int:
    rng = random.Random(seed)
    n = 0
    jobs = 0
    with path.open("w") as fh:
        fh.write(HEADER + "\n")
        while n < rows:
            jid = f"{100000 + jobs}" if rng.random() > 0.1 else f"{100000 + jobs}_{rng.randrange(100)}"
            jobs += 1
            cpus = rng.choice([1, 2, 4, 8, 16, 32, 64])
            elapsed = rng.uniform(30, 3 * 86400)
            total = elapsed * cpus * rng.uniform(0.05, 1.1)
            mem = rng.choice(["4G", "32G", "4000Mc", "250Gn", "1T", "2048M", ""])
            gpus = rng.choice([0, 0, 0, 1, 2, 4])
            tres = f"billing={cpus},cpu={cpus}" + (f",gres/gpu={gpus}" if gpus else "") + ",node=1"
            state = rng.choice(STATES)
            part = "gpu" if gpus else "cpu"
            node = f"{part}-n{rng.randrange(200):03d}"
            fh.write(
                f"{jid}|job|{part}|{_dur(elapsed, rng)}|{cpus}|{_dur(total, rng)}|{mem}||{tres}|1|{node}|{state}|"
                "2026-11-02T10:00:00|2026-11-02T12:00:00\n"
            )
            n += 1
            for step in ("batch", "extern", "0", "1")[:steps]:
                if n >= rows:
                    break
                fh.write(
                    f"{jid}.{step}|{step}||{_dur(elapsed, rng)}|{cpus}|{_dur(total / steps, rng)}||1G|{tres}|1|"
                    f"{node}|{state}|2026-11-02T10:00:00|2026-11-02T12:00:00\n"
                )
                n += 1
    return jobs


def _server_cpu() -> float:
    """CPU seconds so far of the ``powermeter serve`` child of this process."""
    total = 0.0
    for p in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if "serve" in p.cmdline():
                t = p.cpu_times()
                total += t.user + t.system
    return total


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float, float, str]:
    """Wall seconds, the importer's CPU seconds, the server's CPU seconds, the importer's last line."""
    server0 = _server_cpu()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    err = proc.stderr.read()
    _pid, status, ru = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    dt = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {err[-2000:]}")
    return dt, ru.ru_utime + ru.ru_stime, _server_cpu() - server0, err.strip().splitlines()[-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--steps-per-job", type=int, default=2, choices=[0, 1, 2, 3, 4])
    args = ap.parse_args()
    print(f"load average before: {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        sacct = tmp / "sacct.txt"
        jobs = write_sacct(sacct, args.rows, args.steps_per_job)
        env = server_env(tmp, f"sqlite:///{tmp / 'bench.db'}")
        # no daily call / kWh cap: 100,000 synthetic cluster jobs are far above the dev plan's 50 kWh
        env["POWERMETER_PLANS_JSON"] = '{"dev": {"daily_calls": null, "daily_kwh": null}}'
        with live_server(env, tmp / "server.out") as base:
            key = create_key(env, "bench@example.com", "bench")
            client_env = {k: v for k, v in os.environ.items() if not k.startswith("POWERMETER_")}
            client_env.update(POWERMETER_URL=base, POWERMETER_API_KEY=key)
            cmd = [sys.executable, "-m", "powermeter", "import", "slurm", str(sacct), "--geo-iso", "DE"]
            base_s, base_cpu, _, base_msg = timed([*cmd, "--dry-run"], client_env)
            imp_s, imp_cpu, imp_srv, imp_msg = timed(cmd, client_env)
            again_s, again_cpu, again_srv, again_msg = timed(cmd, client_env)
    print(f"{args.rows} rows, {jobs} Slurm jobs ({args.steps_per_job} step rows per job)")
    print(f"baseline, parse only (--dry-run): {base_s:6.2f} s wall, importer CPU {base_cpu:5.2f} s   {base_msg}")
    print(
        f"import:                           {imp_s:6.2f} s wall, importer CPU {imp_cpu:5.2f} s, "
        f"server CPU {imp_srv:5.2f} s   {imp_msg}"
    )
    print(
        f"re-import (nothing new):          {again_s:6.2f} s wall, importer CPU {again_cpu:5.2f} s, "
        f"server CPU {again_srv:5.2f} s   {again_msg}"
    )
    print(
        f"import CPU, importer + server: {imp_cpu + imp_srv:.2f} s (what the import costs whatever the load; "
        "the wall time adds I/O and any wait for a CPU)"
    )
    print(
        f"sending and storing: {imp_s - base_s:.2f} s; import / baseline = {imp_s / base_s:.1f}×; "
        f"goal ≤ 20 s: {'met' if imp_s <= 20 else 'NOT met'}"
    )
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
