"""Restatement (``?recompute=latest``): the same period's records under the current datasets, beside
the as-recorded figures (GHG Protocol Corporate Standard ch. 5; ESRS 2 BP-2 §13–14).

Compute jobs are re-estimated from their signed inputs with the current hardware and locations
datasets (the same Green Algorithms formula). AI inference records keep their recorded energy and
embodied share; only the grid factor of their location is replaced by the current one (re-running
EcoLogits on a changed model catalog is not done here, and the section says so).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from powermeter.data.hardware import load_hardware
from powermeter.data.locations import load_locations, location_lookup
from powermeter.methodology.compute_job import ComputeJobEstimator, JobSpec, UnknownLocationError

_SPEC_FIELDS = (
    "duration_minutes",
    "cpu_cores",
    "memory_gb",
    "gpu_cores",
    "geo_iso",
    "cpu_model",
    "gpu_model",
    "cpu_utilization",
    "gpu_utilization",
    "pue",
    "provider",
    "region",
)

NOTE = (
    "as_recorded: the figures stored on each record; latest: compute jobs re-estimated from their signed inputs "
    "with the current hardware and locations datasets; AI inference records with their recorded energy and "
    "embodied share and the current grid factor of their location (the model profile is not re-run)."
)


def restate(entries: Sequence[Mapping[str, Any]], lines: Sequence[Mapping[str, Any]],
            inputs_of: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:  # fmt: skip
    """The restatement section: per line and in total, as-recorded vs latest kg CO2e, the current
    dataset versions, and the records grouped by the dataset versions they were made with."""
    hardware = load_hardware()
    locations = load_locations()
    estimator = ComputeJobEstimator(hardware, location_lookup(locations))
    latest_by_line: dict[int, list[float]] = {}
    recorded_by_line: dict[int, list[float]] = {}
    unrestated: list[str] = []
    by_version: dict[tuple[str, str], list[float]] = {}
    for e in entries:
        line = int(e["line"])
        recorded = float(e["co2e_g"])
        latest = recorded
        if e["kind"] == "job":
            spec_in = {k: v for k, v in (inputs_of.get(str(e["id"])) or {}).items() if k in _SPEC_FIELDS}
            try:
                latest = estimator.estimate(JobSpec(**spec_in)).co2_g
            except (UnknownLocationError, TypeError, ValueError):
                unrestated.append(str(e["id"]))
        else:
            loc = locations.resolve(str(e.get("location") or ""))
            if loc is None:
                unrestated.append(str(e["id"]))
            else:
                latest = float(e["energy_kwh"]) * loc.intensity_g_per_kwh + float(e["co2e_embodied_g"])
        latest_by_line.setdefault(line, []).append(latest)
        recorded_by_line.setdefault(line, []).append(recorded)
        for name, version in (lines[line].get("dataset_versions") or {}).items():
            by_version.setdefault((str(name), str(version)), []).append(recorded)
    out_lines = []
    for i, ln in enumerate(lines):
        rec = math.fsum(recorded_by_line.get(i, [])) / 1000.0
        lat = math.fsum(latest_by_line.get(i, [])) / 1000.0
        out_lines.append(
            {
                "line": i,
                "group": ln["group"],
                "ghg": ln["ghg"]["code"],
                "as_recorded_co2e_kg": rec,
                "latest_co2e_kg": lat,
                "difference_kg": lat - rec,
            }
        )
    total_rec = math.fsum(x["as_recorded_co2e_kg"] for x in out_lines)
    total_lat = math.fsum(x["latest_co2e_kg"] for x in out_lines)
    return {
        "recompute": "latest",
        "note": NOTE,
        "current_dataset_versions": {"hardware": hardware.version, "locations": locations.version},
        "lines": out_lines,
        "totals": {
            "as_recorded_co2e_kg": total_rec,
            "latest_co2e_kg": total_lat,
            "difference_kg": total_lat - total_rec,
        },
        "by_dataset_version": [
            {
                "dataset": name,
                "version": version,
                "records": len(v),
                "as_recorded_co2e_kg": math.fsum(v) / 1000.0,
                "current": version == {"hardware": hardware.version, "locations": locations.version}.get(name),
            }
            for (name, version), v in sorted(by_version.items())
        ],
        "not_restated": unrestated,
    }
