"""One measurement of a running job: process-tree CPU time and peak RSS (psutil), RAPL, NVML.

``cpu_utilization = CPU seconds of the tree / (wall seconds × cpu_cores)``, capped at 1. CPU seconds are
user + system time of every process seen in the tree (each process's last reading, so processes that
ended between samples still count), or, for a command run by ``powermeter track``, the ``wait4``
resource usage of the command (which includes every descendant it waited for), whichever is larger.
Peak memory is the largest sum of the tree's resident set sizes over the samples.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psutil

from powermeter.tracking.nvml import NvmlMeter
from powermeter.tracking.rapl import RaplMeter

DEFAULT_INTERVAL_S = 1.0
BYTES_PER_GB = 1e9


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity mask), else the logical CPU count."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class TreeSampler:
    """CPU time and RSS of a process and all its descendants (recursive), sampled on demand."""

    def __init__(self, pid: int, *, include_root_children_times: bool = False) -> None:
        self.root = psutil.Process(pid)
        self._include_children = include_root_children_times
        self._procs: dict[int, psutil.Process] = {pid: self.root}
        self._cpu: dict[tuple[int, float], float] = {}
        self._base: dict[tuple[int, float], float] = {}
        self.peak_rss = 0
        self.samples = 0

    def _child_pids(self) -> list[int] | None:
        """Descendants from Linux's ``/proc/PID/task/TID/children`` (≈ 0.1 ms), instead of psutil's
        walk of every process of the machine (≈ 8 ms with ~120 processes: most of the sampling cost).
        ``None`` where the files do not exist. The kernel documents the list as exact only for stopped
        tasks: a child born or gone mid-read may be missed by one sample (CPU time still comes from its
        last reading, and from ``wait4`` for a tracked command)."""
        root = self.root.pid
        if not os.path.exists(f"/proc/{root}/task/{root}/children"):
            return None
        found: list[int] = []
        stack = [root]
        while stack:
            pid = stack.pop()
            try:
                tids = os.listdir(f"/proc/{pid}/task")
            except OSError:
                continue
            for tid in tids:
                try:
                    with open(f"/proc/{pid}/task/{tid}/children", encoding="ascii") as fh:
                        kids = [int(x) for x in fh.read().split()]
                except (OSError, ValueError):
                    continue
                found.extend(kids)
                stack.extend(kids)
        return found

    def _tree(self) -> list[psutil.Process]:
        procs = [self.root]
        pids = self._child_pids()
        if pids is None:
            try:
                children = self.root.children(recursive=True)
            except psutil.Error:
                children = []
        else:
            children = []
            for pid in pids:
                known = self._procs.get(pid)
                if known is not None and known.is_running():
                    children.append(known)
                    continue
                try:
                    children.append(psutil.Process(pid))
                except psutil.Error:
                    continue
        for c in children:
            known = self._procs.get(c.pid)
            if known is None or not known.is_running():
                self._procs[c.pid] = known = c
            procs.append(known)
        return procs

    def sample(self) -> None:
        rss = 0
        for p in self._tree():
            try:
                with p.oneshot():
                    t = p.cpu_times()
                    mem = p.memory_info().rss
                    key = (p.pid, p.create_time())
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
            cpu = t.user + t.system
            if self._include_children and p is self.root:
                cpu += t.children_user + t.children_system
            self._base.setdefault(key, cpu)
            self._cpu[key] = cpu
            rss += mem
        self.peak_rss = max(self.peak_rss, rss)
        self.samples += 1

    def cpu_seconds(self, *, since_first_sample: bool = False) -> float:
        if since_first_sample:
            return sum(v - self._base.get(k, 0.0) for k, v in self._cpu.items())
        return sum(self._cpu.values())


@dataclass(slots=True)
class Measured:
    """What one run measured: the tracker's data model, sent as a ``/v1/report`` body by :meth:`body`."""

    started_at: datetime  # real start (UTC), sent as started_at (reports book the job then)
    ended_at: datetime
    wall_seconds: float
    cpu_seconds: float
    cpu_cores: float
    peak_rss_bytes: int
    gpus: int = 0
    gpu_utilization: float | None = None
    energy_kwh: dict[str, float] = field(default_factory=dict)  # cpu, memory (RAPL), gpu (NVML)
    notes: list[str] = field(default_factory=list)
    exit_status: int | None = None

    @property
    def cpu_utilization(self) -> float:
        if self.wall_seconds <= 0 or self.cpu_cores <= 0:
            return 0.0
        return min(1.0, max(0.0, self.cpu_seconds / (self.wall_seconds * self.cpu_cores)))

    def body(
        self, job_id: str, geo_iso: str, *, memory_gb: float | None = None, extra: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "job_id": job_id,
            "duration_minutes": max(self.wall_seconds, 0.001) / 60.0,
            "cpu_cores": self.cpu_cores,
            "cpu_utilization": round(self.cpu_utilization, 6),
            "memory_gb": memory_gb if memory_gb is not None else round(self.peak_rss_bytes / BYTES_PER_GB, 6),
            "geo_iso": geo_iso,
        }
        if self.gpus:
            body["gpu_cores"] = self.gpus
            if self.gpu_utilization is not None:
                body["gpu_utilization"] = round(self.gpu_utilization, 6)
        for comp in ("cpu", "memory", "gpu"):
            if comp in self.energy_kwh:
                body[f"measured_{comp}_kwh"] = self.energy_kwh[comp]
        body["started_at"] = self.started_at.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        body.update({k: v for k, v in (extra or {}).items() if v is not None})
        return body


@dataclass(slots=True)
class Meters:
    """The energy counters and the clock, opened (first reading taken) before the command starts."""

    rapl: RaplMeter
    nvml: NvmlMeter | None
    started_at: datetime
    t0: float

    @classmethod
    def open(cls, powercap_dir: str | None = None, use_gpu: bool = True) -> Meters:
        rapl = RaplMeter.open(powercap_dir)
        nvml = NvmlMeter.open() if use_gpu else None
        return cls(rapl, nvml, datetime.now(UTC), time.monotonic())


class Measurement:
    """Samples a process tree, RAPL and NVML every ``interval`` seconds (call :meth:`tick`, or run
    :meth:`start_thread` for the current process), then :meth:`finish`."""

    def __init__(
        self,
        pid: int,
        *,
        cpu_cores: float | None = None,
        powercap_dir: str | None = None,
        use_gpu: bool = True,
        include_root_children_times: bool = False,
        since_first_sample: bool = False,
        meters: Meters | None = None,
    ) -> None:
        meters = meters or Meters.open(powercap_dir, use_gpu)
        self.started_at = meters.started_at
        self._t0 = meters.t0
        self.cpu_cores = float(cpu_cores) if cpu_cores else float(available_cpus())
        self.tree = TreeSampler(pid, include_root_children_times=include_root_children_times)
        self._since_first = since_first_sample
        self.rapl = meters.rapl
        self.nvml = meters.nvml
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.tick()

    def tick(self) -> None:
        with self._lock:
            self.tree.sample()
            self.rapl.sample()
            if self.nvml is not None:
                self.nvml.sample()

    def start_thread(self, interval: float) -> None:
        def run() -> None:
            while not self._stop.wait(interval):
                try:
                    self.tick()
                except Exception:  # noqa: S112 - never let measuring break the measured code
                    continue

        self._thread = threading.Thread(target=run, name="powermeter-track", daemon=True)
        self._thread.start()

    def finish(self, *, rusage_cpu_seconds: float = 0.0, rusage_maxrss_bytes: int = 0) -> Measured:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        wall = time.monotonic() - self._t0
        # the final reading (a command's tree is gone by now; RAPL/NVML are not); if it fails, the earlier stand
        with contextlib.suppress(Exception):
            self.tick()
        notes: list[str] = []
        energy = self.rapl.energy_kwh() if self.rapl.available else {}
        if not self.rapl.available and self.rapl.unavailable_reason:
            notes.append(f"CPU/memory energy modelled: {self.rapl.unavailable_reason}")
        if self.rapl.skipped_wraps:
            notes.append(f"{self.rapl.skipped_wraps} RAPL sample(s) skipped: counter went back without a known range")
        gpus, gpu_util = 0, None
        if self.nvml is not None:
            if self.nvml.count:
                gpus = self.nvml.count
                gpu_util = self.nvml.mean_utilization()
                energy["gpu"] = self.nvml.energy_kwh()
            self.nvml.close()
        return Measured(
            started_at=self.started_at,
            ended_at=datetime.now(UTC),
            wall_seconds=wall,
            cpu_seconds=max(self.tree.cpu_seconds(since_first_sample=self._since_first), rusage_cpu_seconds),
            cpu_cores=self.cpu_cores,
            # ru_maxrss counts the forked child before exec (a copy of this interpreter): a fallback only
            peak_rss_bytes=self.tree.peak_rss or rusage_maxrss_bytes,
            gpus=gpus,
            gpu_utilization=gpu_util,
            energy_kwh=energy,
            notes=notes,
        )
