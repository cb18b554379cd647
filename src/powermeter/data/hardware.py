"""Hardware reference tables: CPU TDP and core counts, GPU TDP, data-centre PUE.

Files in ``data/hardware/`` (sources per row, summary in ``data/hardware/SOURCES.md``):

* ``cpus.csv``  ``model,tdp_w,cores,source,aliases`` — W per core = TDP / cores;
* ``gpus.csv``  ``model,tdp_w,source,aliases``;
* ``pue.csv``   ``provider,region,pue,source`` — ``region`` empty for the provider default.

:class:`HardwareTables` implements :class:`powermeter.methodology.compute_job.HardwareCatalog`;
model names are matched on a normalised key (case, punctuation and vendor words ignored), so
``"NVIDIA H100 SXM5"``, ``"h100-sxm5"`` and the alias ``"H100"`` are the same row.
"""

from __future__ import annotations

import csv
import threading
from dataclasses import dataclass
from pathlib import Path

from powermeter.data.loader import content_version, data_path
from powermeter.methodology.compute_job import normalise_model
from powermeter.methodology.units import Factor

CPUS_CSV = ("hardware", "cpus.csv")
GPUS_CSV = ("hardware", "gpus.csv")
PUE_CSV = ("hardware", "pue.csv")


@dataclass(frozen=True, slots=True)
class CpuModel:
    model: str
    tdp_w: float
    cores: int
    source: str

    @property
    def w_per_core(self) -> float:
        return self.tdp_w / self.cores


@dataclass(frozen=True, slots=True)
class GpuModel:
    model: str
    tdp_w: float
    source: str


@dataclass(frozen=True, slots=True)
class PueEntry:
    provider: str
    region: str | None
    pue: float
    source: str


def _aliases(raw: str) -> list[str]:
    return [a.strip() for a in raw.split(";") if a.strip()]


def _index(key_names: list[tuple[str, object]], table: str) -> dict[str, object]:
    out: dict[str, object] = {}
    for name, row in key_names:
        key = normalise_model(name)
        if not key:
            raise ValueError(f"{table}: empty model key for {name!r}")
        if key in out and out[key] is not row:
            raise ValueError(f"{table}: {name!r} collides with another model")
        out[key] = row
    return out


class HardwareTables:
    """The three tables, indexed; one content-hash version over all three files."""

    def __init__(self, cpus_path: Path, gpus_path: Path, pue_path: Path) -> None:
        self.version = content_version(cpus_path, gpus_path, pue_path)
        self.cpus: list[CpuModel] = []
        self.gpus: list[GpuModel] = []
        self.pues: list[PueEntry] = []
        cpu_keys: list[tuple[str, object]] = []
        gpu_keys: list[tuple[str, object]] = []
        with cpus_path.open(newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                cpu = CpuModel(row["model"].strip(), float(row["tdp_w"]), int(row["cores"]), row["source"])
                if not (0 < cpu.tdp_w <= 1000 and 0 < cpu.cores <= 512 and cpu.source):
                    raise ValueError(f"cpus.csv: implausible row {row}")
                self.cpus.append(cpu)
                cpu_keys += [(cpu.model, cpu)] + [(a, cpu) for a in _aliases(row["aliases"])]
        with gpus_path.open(newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                gpu = GpuModel(row["model"].strip(), float(row["tdp_w"]), row["source"])
                if not (0 < gpu.tdp_w <= 2000 and gpu.source):
                    raise ValueError(f"gpus.csv: implausible row {row}")
                self.gpus.append(gpu)
                gpu_keys += [(gpu.model, gpu)] + [(a, gpu) for a in _aliases(row["aliases"])]
        with pue_path.open(newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                entry = PueEntry(
                    row["provider"].strip().lower(),
                    row["region"].strip().lower() or None,
                    float(row["pue"]),
                    row["source"],
                )
                if not (1.0 <= entry.pue <= 3.0 and entry.source):
                    raise ValueError(f"pue.csv: implausible row {row}")
                self.pues.append(entry)
        self._cpu = _index(cpu_keys, "cpus.csv")
        self._gpu = _index(gpu_keys, "gpus.csv")
        self._pue = {(e.provider, e.region): e for e in self.pues}
        self._cpu_factor: dict[str, Factor] = {}
        self._gpu_factor: dict[str, Factor] = {}

    # --- HardwareCatalog -------------------------------------------------------------------------
    def cpu_power_per_core(self, model: str) -> Factor | None:
        key = normalise_model(model)
        factor = self._cpu_factor.get(key)
        if factor is None:
            cpu = self._cpu.get(key)
            if not isinstance(cpu, CpuModel):
                return None
            factor = Factor(
                "cpu_power_per_core",
                cpu.w_per_core,
                "W/core",
                f"{cpu.model}: TDP {cpu.tdp_w:g} W / {cpu.cores} cores ({cpu.source})",
                self.version,
            )
            self._cpu_factor[key] = factor
        return factor

    def gpu_power(self, model: str) -> Factor | None:
        key = normalise_model(model)
        factor = self._gpu_factor.get(key)
        if factor is None:
            gpu = self._gpu.get(key)
            if not isinstance(gpu, GpuModel):
                return None
            factor = Factor("gpu_power", gpu.tdp_w, "W/GPU", f"{gpu.model}: TDP ({gpu.source})", self.version)
            self._gpu_factor[key] = factor
        return factor

    def pue(self, provider: str, region: str | None) -> Factor | None:
        p = provider.strip().lower()
        entry = None
        if region:
            entry = self._pue.get((p, region.strip().lower()))
        if entry is None:
            entry = self._pue.get((p, None))
        if entry is None:
            return None
        where = f"{entry.provider} {entry.region}" if entry.region else entry.provider
        return Factor("pue", entry.pue, "ratio", f"{where} ({entry.source})", self.version)

    def default_pue(self) -> Factor:
        found = self.pue("unknown", None)
        if found is None:
            raise ValueError("pue.csv has no 'unknown' row")
        return found


_lock = threading.Lock()
_cached: HardwareTables | None = None


def load_hardware() -> HardwareTables:
    """The shipped hardware tables, loaded once per process."""
    global _cached
    if _cached is None:
        with _lock:
            if _cached is None:
                _cached = HardwareTables(data_path(*CPUS_CSV), data_path(*GPUS_CSV), data_path(*PUE_CSV))
    return _cached
