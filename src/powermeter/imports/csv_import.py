"""A CSV of jobs from any scheduler: one row per job, columns named as the ``/v1/report`` fields.

Columns (header row required, any order; an empty cell is "not given"):

- required: ``job_id``, ``duration_minutes``, ``geo_iso`` (or ``--geo-iso`` for every row);
- optional numbers: ``cpu_cores``, ``memory_gb``, ``gpu_cores``, ``cpu_utilization``, ``gpu_utilization``,
  ``pue``, ``measured_cpu_kwh``, ``measured_memory_kwh``, ``measured_gpu_kwh``;
- optional text: ``cpu_model``, ``gpu_model``, ``provider``, ``region``;
- ``started_at`` (ISO 8601 instant with offset, e.g. ``2026-11-02T08:00:00Z``): when the job ran; reports
  book it then.

Any other column is an error (so a typo is not silently ignored). Values are checked by the server,
which names the job (by index in its chunk) and the field; the importer reports them by line.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

NUMBER_COLUMNS = (
    "duration_minutes", "cpu_cores", "memory_gb", "gpu_cores", "cpu_utilization", "gpu_utilization", "pue",
    "measured_cpu_kwh", "measured_memory_kwh", "measured_gpu_kwh",
)  # fmt: skip
TEXT_COLUMNS = ("job_id", "geo_iso", "cpu_model", "gpu_model", "provider", "region")
RECORDED_COLUMNS = ("started_at",)
COLUMNS = (*TEXT_COLUMNS[:1], *NUMBER_COLUMNS, *TEXT_COLUMNS[1:], *RECORDED_COLUMNS)


class CsvFormatError(ValueError):
    pass


@dataclass(slots=True)
class CsvResult:
    jobs: list[dict[str, Any]] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)  # the line of each job
    started_at: list[str | None] = field(default_factory=list)  # per job, also sent as started_at
    bad_rows: list[str] = field(default_factory=list)


def parse_csv(lines: Iterable[str], *, geo_iso: str | None = None) -> CsvResult:
    reader = csv.reader(lines)
    header: list[str] | None = None
    for row in reader:
        if any(c.strip() for c in row):
            header = [c.strip().lstrip("\ufeff") for c in row]
            break
    if header is None:
        raise CsvFormatError("empty input: expected a header row naming the columns")
    unknown = [c for c in header if c not in COLUMNS]
    if unknown:
        raise CsvFormatError(f"unknown column(s) {', '.join(unknown)}; allowed: {', '.join(COLUMNS)}")
    if len(set(header)) != len(header):
        raise CsvFormatError("a column appears twice in the header")
    need = ["job_id", "duration_minutes"] + ([] if geo_iso else ["geo_iso"])
    missing = [c for c in need if c not in header]
    if missing:
        raise CsvFormatError(f"missing column(s) {', '.join(missing)}" + ("" if geo_iso else " (or give --geo-iso)"))
    out = CsvResult()
    for row in reader:
        line = reader.line_num
        if not any(c.strip() for c in row):
            continue
        if len(row) != len(header):
            out.bad_rows.append(f"line {line}: {len(row)} fields, the header has {len(header)}")
            continue
        job: dict[str, Any] = {}
        started: str | None = None
        try:
            for name, raw in zip(header, row, strict=True):
                value = raw.strip()
                if not value:
                    continue
                if name in NUMBER_COLUMNS:
                    try:
                        job[name] = float(value)
                    except ValueError:
                        raise ValueError(f"{name}: {value!r} is not a number") from None
                elif name == "started_at":
                    started = value
                else:
                    job[name] = value
            if "job_id" not in job or "duration_minutes" not in job:
                raise ValueError("job_id and duration_minutes are required")
        except ValueError as exc:
            out.bad_rows.append(f"line {line}: {exc}")
            continue
        if "geo_iso" not in job and geo_iso:
            job["geo_iso"] = geo_iso
        if started:
            job["started_at"] = started  # reports book the job at this instant (the server checks its form)
        out.jobs.append(job)
        out.lines.append(line)
        out.started_at.append(started)
    return out
