"""The process-tree sampler on real processes: descendants found, CPU time and RSS summed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from powermeter.tracking.measure import TreeSampler

SPIN = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.5:\n    pass\ntime.sleep(30)\n"


def test_grandchildren_are_sampled(tmp_path: Path) -> None:
    spin = tmp_path / "spin.py"
    spin.write_text(SPIN)
    script = f"{sys.executable} {spin} & {sys.executable} {spin} & wait"
    proc = subprocess.Popen(["sh", "-c", script])
    try:
        sampler = TreeSampler(proc.pid)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            sampler.sample()
            if len(sampler._cpu) == 3 and sampler.cpu_seconds() >= 0.95:
                break
            time.sleep(0.2)
        assert len(sampler._cpu) == 3  # sh and its two python children
        # both spun 0.5 s of CPU (by their own clock); /proc counts whole 10 ms ticks, so allow one each
        assert sampler.cpu_seconds() >= 0.95
        assert sampler.peak_rss > 10_000_000  # two interpreters' resident memory at least
    finally:
        for p in TreeSampler(proc.pid)._tree()[1:]:
            os.kill(p.pid, signal.SIGKILL)
        proc.wait()
