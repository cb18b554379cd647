"""Slurm accounting (``sacct -P``) → one compute job per Slurm job.

The command to export (``-P``: ``|``-separated with a header; ``--noconvert``: memory in one unit;
``-a``: every user's jobs, when run by an administrator)::

    sacct -a -P --noconvert -S 2026-11-01 -E 2026-12-01 \\
      --format=JobID,JobName,Partition,Elapsed,AllocCPUS,TotalCPU,ReqMem,MaxRSS,AllocTRES,NNodes,NodeList,State,Start,End

Required columns: ``JobID, Elapsed, AllocCPUS, TotalCPU, ReqMem, AllocTRES, State``; used when present:
``JobName, Partition, MaxRSS, NNodes, NodeList, Start, End``. Rules (docs/methodology.md, "Slurm import"):

- Steps (``123.batch``, ``123.extern``, ``123.0``) fold into their job (``123``): elapsed, CPUs, memory,
  GPUs, state and start come from the job's allocation row; CPU time is the larger of the allocation
  row's ``TotalCPU`` and the sum over its steps. Array tasks (``123_4``) and heterogeneous components
  (``123+1``) are jobs of their own (each has its own allocation).
- ``Elapsed``/``TotalCPU``: ``[D-]HH:MM:SS[.fff]``, ``MM:SS[.fff]`` or ``SS[.fff]``.
- ``ReqMem``: a number with an optional unit ``K``/``M``/``G``/``T`` (powers of 1024, as Slurm counts;
  no unit = ``M``) and an optional suffix ``n`` (per node: × ``NNodes``) or ``c`` (per CPU: ×
  ``AllocCPUS``); newer Slurm prints the job total without suffix.
- GPUs: ``gres/gpu=N`` in ``AllocTRES`` (else the sum of typed ``gres/gpu:TYPE=N``).
- ``cpu_utilization = TotalCPU / (Elapsed × AllocCPUS)``, capped at 1 (Green Algorithms for HPC's usage
  factor), sent rounded to 0.01; not sent when ``TotalCPU`` is empty or 0 (the server's default, 1, applies).
- States: RUNNING, PENDING (and the other not-finished states) are skipped and counted; COMPLETED,
  FAILED, TIMEOUT, CANCELLED, OUT_OF_MEMORY, NODE_FAIL, PREEMPTED, BOOT_FAIL, DEADLINE are reported when
  ``Elapsed > 0`` (a job cancelled before it started is skipped and counted).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any

UTILIZATION_DECIMALS = 2
REQUIRED = ("JobID", "Elapsed", "AllocCPUS", "TotalCPU", "ReqMem", "AllocTRES", "State")
SACCT_COMMAND = (
    "sacct -a -P --noconvert -S YYYY-MM-DD -E YYYY-MM-DD --format=JobID,JobName,Partition,Elapsed,AllocCPUS,"
    "TotalCPU,ReqMem,MaxRSS,AllocTRES,NNodes,NodeList,State,Start,End"
)
FINISHED = frozenset(
    {"COMPLETED", "FAILED", "TIMEOUT", "CANCELLED", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL", "DEADLINE"}
)
NOT_FINISHED = frozenset(
    {"RUNNING", "PENDING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "RESIZING", "SUSPENDED", "SIGNALING",
     "STAGE_OUT", "STOPPED", "CONFIGURING", "COMPLETING", "SPECIAL_EXIT", "RESV_DEL_HOLD", "REVOKED"}
)  # fmt: skip
_GB_PER_UNIT = {"K": 1 / 1024**2, "M": 1 / 1024, "G": 1.0, "T": 1024.0, "P": 1024.0**2}
_REQMEM = re.compile(r"^(\d+(?:\.\d+)?)([KMGTP]?)([cn]?)$")


class SacctFormatError(ValueError):
    """The input is not ``sacct -P`` output with the columns we need."""


_DURATION = re.compile(r"(?:(\d+)-(?=\d+:\d+:))?(?:(?:(\d+):)?(\d+):)?(\d+)(?:\.(\d+))?")
_NO_DURATION = frozenset({"", "INVALID", "UNLIMITED", "PARTITION_LIMIT", "UNKNOWN"})


def parse_duration(text: str) -> float | None:
    """Seconds of a Slurm duration (``[D-]HH:MM:SS[.frac]``, ``MM:SS[.frac]``, ``SS``); ``None`` if empty."""
    s = text.strip()
    m = _DURATION.fullmatch(s)
    if m is None:
        if s.upper() in _NO_DURATION:
            return None
        raise ValueError(f"bad duration {text!r}")
    groups: tuple[str | None, ...] = m.groups()
    d, h, mi, sec, frac = groups
    if sec is None:  # pragma: no cover - the pattern always captures the seconds
        raise ValueError(f"bad duration {text!r}")
    seconds = int(sec)
    if mi is not None:
        minutes = int(mi)
        if seconds >= 60 or (h is not None and minutes >= 60):
            raise ValueError(f"bad duration {text!r}")
        seconds += minutes * 60
    if h is not None:
        seconds += int(h) * 3600
    if d is not None:
        seconds += int(d) * 86400
    if frac is not None:
        return seconds + int(frac) / 10.0 ** len(frac)  # by digit count: .018 is 18 ms, .000018 is 18 µs
    return float(seconds)


def parse_reqmem(text: str, alloc_cpus: int, nodes: int) -> float:
    """GB requested (0 when empty)."""
    s = text.strip()
    if not s:
        return 0.0
    m = _REQMEM.match(s)
    if not m:
        raise ValueError(f"bad ReqMem {text!r} (expected e.g. 32G, 4000M, 4Gc, 250Gn)")
    value = float(m.group(1)) * _GB_PER_UNIT[m.group(2) or "M"]
    if m.group(3) == "c":
        value *= max(alloc_cpus, 1)
    elif m.group(3) == "n":
        value *= max(nodes, 1)
    return value


def parse_gpus(alloc_tres: str) -> int:
    """``gres/gpu=N``, else the sum of the typed ``gres/gpu:TYPE=N`` entries (never both: no double count)."""
    if "gres/gpu" not in alloc_tres:
        return 0
    untyped: int | None = None
    typed = 0
    for item in alloc_tres.strip().split(","):
        name, _eq, value = item.strip().partition("=")
        if not value.isdigit():
            continue
        if name == "gres/gpu":
            untyped = int(value)
        elif name.startswith("gres/gpu:"):
            typed += int(value)
    return untyped if untyped is not None else typed


def _int(text: str, name: str, default: int = 0) -> int:
    s = text.strip()
    if not s:
        return default
    if not s.isdigit():
        raise ValueError(f"bad {name} {text!r}")
    return int(s)


def _time(text: str) -> datetime | None:
    s = text.strip()
    if not s or s in ("Unknown", "None"):
        return None
    try:
        t = datetime.fromisoformat(s)
    except ValueError:
        return None
    return t  # sacct prints the cluster's local time without an offset: kept naive, as printed


def state_word(state: str) -> str:
    """``CANCELLED by 1234`` → ``CANCELLED``; a truncated ``CANCELLED+`` too."""
    words = state.strip().split()
    return words[0].rstrip("+").upper() if words else ""


@dataclass(slots=True)
class SlurmJob:
    job_id: str  # 123, 123_4, 123+1
    name: str = ""
    partition: str = ""
    node_list: str = ""
    state: str = ""
    elapsed_s: float = 0.0
    alloc_total_cpu_s: float | None = None
    steps_total_cpu_s: float = 0.0
    alloc_cpus: int = 0
    nodes: int = 1
    req_mem_gb: float = 0.0
    gpus: int = 0
    max_rss: str = ""
    start: datetime | None = None  # the job's real start, as sacct printed it (cluster-local, naive)
    end: datetime | None = None
    has_allocation_row: bool = False

    @property
    def total_cpu_s(self) -> float | None:
        values = [v for v in (self.alloc_total_cpu_s, self.steps_total_cpu_s) if v]
        return max(values) if values else None

    @property
    def cpu_utilization(self) -> float | None:
        total = self.total_cpu_s
        if not total or self.elapsed_s <= 0 or self.alloc_cpus <= 0:
            return None
        return min(1.0, total / (self.elapsed_s * self.alloc_cpus))


@dataclass(slots=True)
class ParseResult:
    jobs: list[SlurmJob] = field(default_factory=list)
    rows: int = 0
    skipped_not_finished: int = 0
    skipped_never_ran: int = 0
    skipped_unknown_state: int = 0
    bad_rows: list[str] = field(default_factory=list)

    @property
    def finished(self) -> list[SlurmJob]:
        return [j for j in self.jobs if state_word(j.state) in FINISHED and j.elapsed_s > 0]


def _split_header(line: str) -> list[str]:
    return [c.strip() for c in line.rstrip("\r\n").split("|")]


def parse_sacct(lines: Iterable[str]) -> ParseResult:
    """Parse ``sacct -P`` output and fold steps into jobs. Bad rows are counted (with the line number
    and the reason), never fatal; a missing required column is (:class:`SacctFormatError`)."""
    it = iter(lines)
    header: list[str] | None = None
    for line in it:
        if line.strip():
            header = _split_header(line.lstrip("\ufeff"))
            break
    if header is None:
        raise SacctFormatError("empty input: expected sacct -P output with a header line")
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise SacctFormatError(
            f"missing column(s) {', '.join(missing)} in the header {'|'.join(header)[:200]!r}; export with: "
            + SACCT_COMMAND
        )
    col = {name: i for i, name in enumerate(header)}
    width = len(header)
    result = ParseResult()
    jobs: dict[str, SlurmJob] = {}

    i_id, i_total = col["JobID"], col["TotalCPU"]

    def get(row: list[str], name: str) -> str:
        i = col.get(name)
        return row[i] if i is not None else ""

    for lineno, line in enumerate(it, start=2):
        if not line.strip():
            continue
        result.rows += 1
        row = line.rstrip("\r\n").split("|")
        if len(row) != width:
            if len(result.bad_rows) < 1000:
                result.bad_rows.append(f"line {lineno}: {len(row)} fields, the header has {width}")
            continue
        raw_id = row[i_id].strip()
        base, dot, _step = raw_id.partition(".")
        job = jobs.get(base)
        if dot and job is not None and job.has_allocation_row:
            # a step of a job already seen (sacct prints the allocation row first): only its CPU time counts
            try:
                job.steps_total_cpu_s += parse_duration(row[i_total]) or 0.0
            except ValueError as exc:
                if len(result.bad_rows) < 1000:
                    result.bad_rows.append(f"line {lineno} ({raw_id}): {exc}")
            continue
        try:
            if not base:
                raise ValueError("empty JobID")
            elapsed = parse_duration(get(row, "Elapsed"))
            total = parse_duration(get(row, "TotalCPU"))
            cpus = _int(get(row, "AllocCPUS"), "AllocCPUS")
            nodes = _int(get(row, "NNodes"), "NNodes", 1)
            mem = parse_reqmem(get(row, "ReqMem"), cpus, nodes)
            gpus = parse_gpus(get(row, "AllocTRES"))
        except ValueError as exc:
            if len(result.bad_rows) < 1000:
                result.bad_rows.append(f"line {lineno} ({raw_id}): {exc}")
            continue
        if job is None:
            job = jobs[base] = SlurmJob(base)
        if not dot:  # the allocation row: the job's own figures
            job.has_allocation_row = True
            job.name = get(row, "JobName")
            job.partition = get(row, "Partition").split(",")[0]
            job.node_list = get(row, "NodeList")
            job.state = get(row, "State")
            job.elapsed_s = elapsed or 0.0
            job.alloc_total_cpu_s = total
            job.alloc_cpus = cpus
            job.nodes = nodes
            job.req_mem_gb = mem
            job.gpus = gpus
            job.max_rss = get(row, "MaxRSS") or job.max_rss
            job.start = _time(get(row, "Start"))
            job.end = _time(get(row, "End"))
        else:  # a step: its CPU time adds up; the rest only fills gaps (no allocation row seen)
            job.steps_total_cpu_s += total or 0.0
            if not job.has_allocation_row:
                job.state = job.state or get(row, "State")
                job.elapsed_s = max(job.elapsed_s, elapsed or 0.0)
                job.alloc_cpus = max(job.alloc_cpus, cpus)
                job.req_mem_gb = max(job.req_mem_gb, mem)
                job.gpus = max(job.gpus, gpus)
                job.node_list = job.node_list or get(row, "NodeList")
                job.start = job.start or _time(get(row, "Start"))
    for job in jobs.values():
        word = state_word(job.state)
        if word in FINISHED:
            if job.elapsed_s > 0:
                result.jobs.append(job)
            else:
                result.skipped_never_ran += 1
        elif word in NOT_FINISHED:
            result.skipped_not_finished += 1
        else:
            result.skipped_unknown_state += 1
    return result


def parse_mapping(items: Iterable[str], option: str) -> dict[str, str]:
    """``KEY=MODEL`` items (KEY: a partition name or a node-name prefix)."""
    out: dict[str, str] = {}
    for item in items:
        key, eq, model = item.partition("=")
        if not eq or not key.strip() or not model.strip():
            raise ValueError(f"{option} expects PARTITION_OR_NODE_PREFIX=MODEL, got {item!r}")
        out[key.strip()] = model.strip()
    return out


def model_for(job: SlurmJob, mapping: Mapping[str, str]) -> str | None:
    """The model mapped to the job's partition, else to the longest prefix of its node list."""
    if not mapping:
        return None
    if job.partition in mapping:
        return mapping[job.partition]
    best = max((k for k in mapping if job.node_list.startswith(k)), key=len, default=None)
    return mapping[best] if best is not None else None


def to_report(
    job: SlurmJob,
    *,
    prefix: str,
    geo_iso: str,
    pue: float | None = None,
    cpu_models: Mapping[str, str] | None = None,
    gpu_models: Mapping[str, str] | None = None,
    timezone: tzinfo | None = None,
) -> dict[str, Any]:
    """The job as a ``/v1/report`` / ``/v1/batch`` item. With ``timezone`` (the zone sacct printed its
    times in), the job's Start is sent as ``started_at`` so reports book the job when it ran."""
    body: dict[str, Any] = {
        "job_id": f"{prefix}{job.job_id}",
        "duration_minutes": job.elapsed_s / 60.0,
        "cpu_cores": job.alloc_cpus,
        "memory_gb": job.req_mem_gb,
        "gpu_cores": job.gpus,
        "geo_iso": geo_iso,
    }
    util = job.cpu_utilization
    if util is not None:
        # to 1 percentage point: sacct's CPU accounting warrants no more, and the server folds each
        # distinct value into a factor profile (a 10,000-job chunk of all-distinct values is ~8× slower)
        body["cpu_utilization"] = round(util, UTILIZATION_DECIMALS)
    if pue is not None:
        body["pue"] = pue
    cpu_model = model_for(job, cpu_models or {})
    if cpu_model:
        body["cpu_model"] = cpu_model
    gpu_model = model_for(job, gpu_models or {})
    if gpu_model and job.gpus:
        body["gpu_model"] = gpu_model
    if job.start is not None and timezone is not None:
        local = job.start if job.start.tzinfo is not None else job.start.replace(tzinfo=timezone)
        body["started_at"] = local.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    return body
