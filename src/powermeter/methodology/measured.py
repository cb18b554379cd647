"""Measured energy on a compute job: replace a component's modelled figure, and check it is plausible.

Pure: numbers in, numbers + provenance out. A job may carry measured IT energy (before PUE) per
component, as ``powermeter track`` reads it:

- ``measured_cpu_kwh``: CPU package energy from Intel/AMD RAPL (``energy_uj`` counters of the Linux
  powercap tree, wrap-around corrected), for the whole socket(s) during the job;
- ``measured_memory_kwh``: DRAM energy from the RAPL ``dram`` domain;
- ``measured_gpu_kwh``: GPU energy from NVML (``nvmlDeviceGetTotalEnergyConsumption`` deltas, or its
  power readings integrated over time).

A measured component replaces the Green Algorithms figure for that component; PUE and the carbon
intensity then apply as for a modelled job. Every measured figure is compared with the model's figure
for the same inputs (``ratio = measured / modelled``); it is ``plausible`` when the ratio lies in
[:data:`PLAUSIBLE_LOW`, :data:`PLAUSIBLE_HIGH`] (or both are 0). An implausible figure is kept (it is
what was measured) and flagged, with a warning in the response: RAPL counts the whole socket, so a
small job on a busy machine reads high, and a mostly idle job with utilisation 1 assumed reads low.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from powermeter.methodology.compute_job import METHOD_ID, BatchEstimate

#: (component, request field, measuring source)
COMPONENTS: tuple[tuple[str, str, str], ...] = (
    ("cpu", "measured_cpu_kwh", "rapl"),
    ("gpu", "measured_gpu_kwh", "nvml"),
    ("memory", "measured_memory_kwh", "rapl"),
)
MEASURED_FIELDS = tuple(c[1] for c in COMPONENTS)
#: A measured figure within a factor of ten of the model's is plausible (documented in methodology.md).
PLAUSIBLE_LOW = 0.1
PLAUSIBLE_HIGH = 10.0


def modelled_sources() -> dict[str, dict[str, Any]]:
    """``energy_sources`` of a job without any measurement."""
    return {comp: {"method": "modelled", "source": METHOD_ID} for comp, _f, _s in COMPONENTS}


def is_plausible(measured_kwh: float, modelled_kwh: float) -> bool:
    if modelled_kwh <= 0.0:
        return measured_kwh == 0.0
    return PLAUSIBLE_LOW <= measured_kwh / modelled_kwh <= PLAUSIBLE_HIGH


def apply_measurements(jobs: Sequence[Any], batch: BatchEstimate) -> list[dict[str, Any] | None] | None:
    """Put measured components into ``batch`` (in place: breakdown, kWh, g CO2e and totals).

    Returns, per job, its ``energy_sources`` (``None`` for a job without measurement), or ``None``
    when no job of the batch has any (the common case, which costs one attribute scan).
    """
    try:  # the hot path: one pass of plain attribute reads over a batch (~1 ms per 10,000 jobs)
        flagged = [
            i for i, j in enumerate(jobs)
            if j.measured_cpu_kwh is not None or j.measured_memory_kwh is not None or j.measured_gpu_kwh is not None
        ]  # fmt: skip
    except AttributeError:  # job objects without the measured fields (e.g. ``JobSpec``)
        flagged = [i for i, j in enumerate(jobs) if any(getattr(j, n, None) is not None for n in MEASURED_FIELDS)]
    if not flagged:
        return None
    out: list[dict[str, Any] | None] = [None] * len(jobs)
    columns = {"cpu": batch.cpu_kwh, "gpu": batch.gpu_kwh, "memory": batch.memory_kwh}
    for i in flagged:
        job = jobs[i]
        values = [getattr(job, name, None) for name in MEASURED_FIELDS]
        profile = batch.profiles[batch.profile_index[i]]
        sources: dict[str, dict[str, Any]] = {}
        for (comp, _field, source), value in zip(COMPONENTS, values, strict=True):
            if value is None:
                sources[comp] = {"method": "modelled", "source": METHOD_ID}
                continue
            modelled = columns[comp][i]
            measured = float(value)
            sources[comp] = {
                "method": "measured",
                "source": source,
                "measured_kwh": measured,
                "modelled_kwh": modelled,
                "plausible": is_plausible(measured, modelled),
            }
            columns[comp][i] = measured
        it = batch.cpu_kwh[i] + batch.gpu_kwh[i] + batch.memory_kwh[i]
        energy = it * profile.pue_value
        co2 = energy * profile.intensity_g_per_kwh
        batch.total_energy_kwh += energy - batch.energy_kwh[i]
        batch.total_co2_g += co2 - batch.co2_g[i]
        batch.energy_kwh[i] = energy
        batch.co2_g[i] = co2
        out[i] = sources
    return out


def implausibility_warnings(sources: dict[str, Any] | None) -> list[str]:
    """Human-readable warnings for the response (the signed receipt carries the ``plausible`` flags)."""
    if not sources:
        return []
    out = []
    for comp, s in sources.items():
        if s.get("method") == "measured" and not s.get("plausible"):
            out.append(
                f"measured {comp} energy {s['measured_kwh']:.6g} kWh ({s['source']}) is not within "
                f"×{PLAUSIBLE_LOW:g}–×{PLAUSIBLE_HIGH:g} of the model's {s['modelled_kwh']:.6g} kWh; kept and flagged"
            )
    return out
