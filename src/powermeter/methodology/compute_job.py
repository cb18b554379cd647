"""Energy and carbon of a compute job: the Green Algorithms formula.

Pure: numbers in, numbers + provenance out. No I/O, no clock, no settings. Reference tables (CPU/GPU
TDP, PUE, carbon intensity) are looked up by the caller (``powermeter.data``) through the small
:class:`HardwareCatalog` / location-lookup protocols and arrive here as :class:`Factor` records.

Equation (Lannelongue, Grealey & Inouye, *Green Algorithms*, Adv. Sci. 2021, 8, 2100707; data v3.0)::

    t_h         = duration_minutes / 60
    P_cpu_W     = cpu_cores × W_per_core × u_cpu
    P_gpu_W     = gpus      × W_per_gpu  × u_gpu
    P_mem_W     = memory_GB × 0.3725
    energy_kWh  = t_h × (P_cpu_W + P_gpu_W + P_mem_W) × PUE / 1000
    co2_g       = energy_kWh × intensity_g_per_kWh

The breakdown reports the IT energy of each component (before PUE) and the facility overhead
``IT × (PUE − 1)``; the four parts add up to ``energy_kWh``.

Hot path: everything that depends only on (hardware, utilisation, PUE, location) is folded into a
:class:`JobProfile` once, as three coefficients in kWh per (unit × minute). A job then costs three
multiplications and two additions; :meth:`ComputeJobEstimator.estimate_batch` memoises profiles per
distinct override set and returns columns (lists of floats), so a 10,000-job batch allocates no
per-job objects beyond its result floats.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from powermeter.methodology.units import MINUTES_PER_HOUR, W_PER_KW, Factor

METHOD_ID = "green-algorithms-v3"
METHODOLOGY_VERSION = "compute-job/1"

GA_SOURCE = "Green Algorithms v3.0 (Lannelongue et al., Adv. Sci. 2021, 8, 2100707; data CC BY 4.0)"

#: Unknown CPU: Green Algorithms ``TDP_cpu.csv`` row ``Any`` (unchanged v1.0 → v3.0).
DEFAULT_CPU_W_PER_CORE = Factor(
    "cpu_power_per_core", 12.0, "W/core", f"{GA_SOURCE}, TDP_cpu.csv row 'Any' (unknown CPU)"
)
#: Unknown GPU: Green Algorithms ``GPUs.csv`` row ``Any``.
DEFAULT_GPU_W = Factor("gpu_power", 200.0, "W/GPU", f"{GA_SOURCE}, GPUs.csv row 'Any' (unknown GPU)")
#: Memory: Green Algorithms ``referenceValues.csv`` ``memoryPower``.
MEMORY_W_PER_GB = Factor(
    "memory_power_per_gb",
    0.3725,
    "W/GB",
    f"{GA_SOURCE}, referenceValues.csv memoryPower (doi:10.1145/3076113.3076117; Tom's Hardware i7-5960X)",
)
#: Usage factor: Green Algorithms default (allocated resources fully used: an upper bound).
DEFAULT_UTILIZATION = 1.0
UTILIZATION_SOURCE_DEFAULT = f"{GA_SOURCE}, default usage factor 1.0"
UTILIZATION_SOURCE_REQUEST = "request"
#: Unknown data centre: Green Algorithms v3.0 ``defaults_PUE.csv`` (Uptime Institute 2024 survey).
DEFAULT_PUE = Factor(
    "pue", 1.56, "ratio", f"{GA_SOURCE}, defaults_PUE.csv 'Unknown' (Uptime Institute 2024 Global Survey)"
)

MAX_PUE = 3.0


class UnknownLocationError(ValueError):
    """A location code that is not in the dataset (never silently replaced by a fallback)."""

    def __init__(self, field_name: str, value: str) -> None:
        super().__init__(f"unknown location {value!r} in {field_name}")
        self.field_name = field_name
        self.value = value


class HardwareCatalog(Protocol):
    """Reference tables, implemented by ``powermeter.data.hardware``."""

    def cpu_power_per_core(self, model: str) -> Factor | None: ...

    def gpu_power(self, model: str) -> Factor | None: ...

    def pue(self, provider: str, region: str | None) -> Factor | None: ...


@dataclass(frozen=True, slots=True)
class ResolvedLocation:
    """What the estimator needs to know about a location (built from ``data.locations.Location``)."""

    code: str
    intensity: Factor  # g CO2e/kWh, with source and dataset version
    provider: str | None = None  # cloud provider, for cloud regions
    region: str | None = None  # cloud region name, for cloud regions


LocationLookup = Callable[[str], ResolvedLocation | None]


class JobLike(Protocol):
    """The attributes the estimator reads from a job (satisfied by :class:`JobSpec`)."""

    @property
    def duration_minutes(self) -> float: ...
    @property
    def cpu_cores(self) -> float: ...
    @property
    def memory_gb(self) -> float: ...
    @property
    def gpu_cores(self) -> float: ...
    @property
    def geo_iso(self) -> str: ...
    @property
    def cpu_model(self) -> str | None: ...
    @property
    def gpu_model(self) -> str | None: ...
    @property
    def cpu_utilization(self) -> float | None: ...
    @property
    def gpu_utilization(self) -> float | None: ...
    @property
    def pue(self) -> float | None: ...
    @property
    def provider(self) -> str | None: ...
    @property
    def region(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class JobSpec:
    """One job as submitted: the seed fields plus optional overrides (``None`` = default).

    ``gpu_cores`` keeps the seed API's name; it is the number of GPUs.
    """

    duration_minutes: float
    cpu_cores: float = 0.0
    memory_gb: float = 0.0
    gpu_cores: float = 0.0
    geo_iso: str = "WORLD"
    cpu_model: str | None = None
    gpu_model: str | None = None
    cpu_utilization: float | None = None
    gpu_utilization: float | None = None
    pue: float | None = None
    provider: str | None = None
    region: str | None = None


@dataclass(frozen=True, slots=True)
class JobProfile:
    """Every constant a job of this (hardware, utilisation, PUE, location) uses, folded for speed."""

    location_code: str
    cpu_power_per_core: Factor
    gpu_power: Factor
    memory_power_per_gb: Factor
    cpu_utilization: Factor
    gpu_utilization: Factor
    pue: Factor
    carbon_intensity: Factor
    warnings: tuple[str, ...] = ()
    # kWh of IT energy per (core | GPU | GB) per minute, and the PUE / intensity as plain floats
    k_cpu: float = field(init=False)
    k_gpu: float = field(init=False)
    k_mem: float = field(init=False)
    pue_value: float = field(init=False)
    intensity_g_per_kwh: float = field(init=False)

    def __post_init__(self) -> None:
        per_minute = 1.0 / (MINUTES_PER_HOUR * W_PER_KW)
        object.__setattr__(self, "k_cpu", self.cpu_power_per_core.value * self.cpu_utilization.value * per_minute)
        object.__setattr__(self, "k_gpu", self.gpu_power.value * self.gpu_utilization.value * per_minute)
        object.__setattr__(self, "k_mem", self.memory_power_per_gb.value * per_minute)
        object.__setattr__(self, "pue_value", self.pue.value)
        object.__setattr__(self, "intensity_g_per_kwh", self.carbon_intensity.value)

    @property
    def factors(self) -> tuple[Factor, ...]:
        return (
            self.cpu_power_per_core,
            self.cpu_utilization,
            self.gpu_power,
            self.gpu_utilization,
            self.memory_power_per_gb,
            self.pue,
            self.carbon_intensity,
        )

    def estimate(self, duration_minutes: float, cpu_cores: float, memory_gb: float, gpu_cores: float) -> JobEstimate:
        cpu = duration_minutes * cpu_cores * self.k_cpu
        gpu = duration_minutes * gpu_cores * self.k_gpu
        mem = duration_minutes * memory_gb * self.k_mem
        it = cpu + gpu + mem
        total = it * self.pue_value
        return JobEstimate(
            energy_kwh=total,
            co2_g=total * self.intensity_g_per_kwh,
            cpu_kwh=cpu,
            gpu_kwh=gpu,
            memory_kwh=mem,
            overhead_kwh=total - it,
            profile=self,
        )


@dataclass(frozen=True, slots=True)
class JobEstimate:
    energy_kwh: float
    co2_g: float
    cpu_kwh: float
    gpu_kwh: float
    memory_kwh: float
    overhead_kwh: float  # facility overhead: IT energy × (PUE − 1)
    profile: JobProfile

    def breakdown(self) -> dict[str, float]:
        return {
            "cpu_kwh": self.cpu_kwh,
            "gpu_kwh": self.gpu_kwh,
            "memory_kwh": self.memory_kwh,
            "overhead_kwh": self.overhead_kwh,
            "pue": self.profile.pue_value,
        }


@dataclass(slots=True)
class BatchEstimate:
    """Columnar results of a batch: ``profiles[profile_index[i]]`` holds job *i*'s constants."""

    energy_kwh: list[float]
    co2_g: list[float]
    cpu_kwh: list[float]
    gpu_kwh: list[float]
    memory_kwh: list[float]
    profile_index: list[int]
    profiles: list[JobProfile]
    total_energy_kwh: float
    total_co2_g: float

    def __len__(self) -> int:
        return len(self.energy_kwh)

    def job(self, i: int) -> JobEstimate:
        p = self.profiles[self.profile_index[i]]
        it = self.cpu_kwh[i] + self.gpu_kwh[i] + self.memory_kwh[i]
        return JobEstimate(
            self.energy_kwh[i],
            self.co2_g[i],
            self.cpu_kwh[i],
            self.gpu_kwh[i],
            self.memory_kwh[i],
            self.energy_kwh[i] - it,
            p,
        )


_NORMALISE = re.compile(r"[^a-z0-9+]+")
_VENDOR_WORDS = frozenset({"nvidia", "amd", "intel", "tesla", "google", "instinct", "geforce", "r", "tm"})


def normalise_model(name: str) -> str:
    """Lookup key for a hardware model name: lower case, vendor words and punctuation dropped."""
    key = _NORMALISE.sub(" ", name.lower())
    words = [w for w in key.split() if w not in _VENDOR_WORDS]
    return "".join(words)


def _utilization(name: str, value: float | None) -> Factor:
    if value is None:
        return Factor(name, DEFAULT_UTILIZATION, "fraction", UTILIZATION_SOURCE_DEFAULT)
    if not (0.0 <= value <= 1.0) or math.isnan(value):
        raise ValueError(f"{name} must be between 0 and 1")
    return Factor(name, float(value), "fraction", UTILIZATION_SOURCE_REQUEST)


class ComputeJobEstimator:
    """Resolves a job's constants into a :class:`JobProfile` (memoised) and applies the formula."""

    __slots__ = ("_catalog", "_locate", "_profiles")

    def __init__(self, catalog: HardwareCatalog, locate: LocationLookup) -> None:
        self._catalog = catalog
        self._locate = locate
        self._profiles: dict[tuple[object, ...], JobProfile] = {}

    def profile(self, spec: JobLike) -> JobProfile:
        key = (
            spec.geo_iso, spec.cpu_model, spec.gpu_model, spec.cpu_utilization, spec.gpu_utilization,
            spec.pue, spec.provider, spec.region,
        )  # fmt: skip
        p = self._profiles.get(key)
        if p is None:
            p = self._build_profile(spec)
            if len(self._profiles) > 4096:  # bounded: a pathological mix of overrides cannot grow it
                self._profiles.clear()
            self._profiles[key] = p
        return p

    def _build_profile(self, spec: JobLike) -> JobProfile:
        warnings: list[str] = []
        # Location: region (more specific) wins over geo_iso; both must exist.
        location = self._locate(spec.geo_iso)
        if location is None:
            raise UnknownLocationError("geo_iso", spec.geo_iso)
        if spec.region:
            region_code = f"{spec.provider}:{spec.region}" if spec.provider else spec.region
            located = self._locate(region_code)
            if located is None:
                raise UnknownLocationError("region", region_code)
            location = located
        provider = (spec.provider or location.provider or "").lower() or None
        region = spec.region or location.region

        cpu = DEFAULT_CPU_W_PER_CORE
        if spec.cpu_model:
            found = self._catalog.cpu_power_per_core(spec.cpu_model)
            if found is None:
                warnings.append(f"cpu_model {spec.cpu_model!r} is not in the CPU table; default used")
            else:
                cpu = found
        gpu = DEFAULT_GPU_W
        if spec.gpu_model:
            found = self._catalog.gpu_power(spec.gpu_model)
            if found is None:
                warnings.append(f"gpu_model {spec.gpu_model!r} is not in the GPU table; default used")
            else:
                gpu = found
        if spec.pue is not None:
            if not (1.0 <= spec.pue <= MAX_PUE):
                raise ValueError(f"pue must be between 1.0 and {MAX_PUE}")
            pue = Factor("pue", float(spec.pue), "ratio", "request")
        else:
            pue = (self._catalog.pue(provider, region) if provider else None) or DEFAULT_PUE
            if provider and pue is DEFAULT_PUE:
                warnings.append(f"provider {provider!r} has no PUE in the table; unknown-data-centre PUE used")
        return JobProfile(
            location_code=location.code,
            cpu_power_per_core=cpu,
            gpu_power=gpu,
            memory_power_per_gb=MEMORY_W_PER_GB,
            cpu_utilization=_utilization("cpu_utilization", spec.cpu_utilization),
            gpu_utilization=_utilization("gpu_utilization", spec.gpu_utilization),
            pue=pue,
            carbon_intensity=location.intensity,
            warnings=tuple(warnings),
        )

    def estimate(self, spec: JobLike) -> JobEstimate:
        _check_quantities(spec.duration_minutes, spec.cpu_cores, spec.memory_gb, spec.gpu_cores)
        return self.profile(spec).estimate(spec.duration_minutes, spec.cpu_cores, spec.memory_gb, spec.gpu_cores)

    def estimate_batch(self, jobs: Sequence[JobLike]) -> BatchEstimate:
        """All jobs of a batch, in order. ``jobs`` may be :class:`JobSpec` or any object with the same
        attributes (e.g. the API's validated request models), so no per-job conversion is needed.
        Raises on the first invalid job; callers validate first (schemas)."""
        profiles: list[JobProfile] = []
        coefficients: list[tuple[float, float, float, float, float]] = []
        index_of: dict[tuple[object, ...], int] = {}
        n = len(jobs)
        kwh = [0.0] * n
        co2 = [0.0] * n
        cpu_l = [0.0] * n
        gpu_l = [0.0] * n
        mem_l = [0.0] * n
        pidx = [0] * n
        for i, s in enumerate(jobs):
            key = (
                s.geo_iso, s.cpu_model, s.gpu_model, s.cpu_utilization, s.gpu_utilization, s.pue,
                s.provider, s.region,
            )  # fmt: skip
            j = index_of.get(key)
            if j is None:
                j = index_of[key] = len(profiles)
                p = self.profile(s)
                profiles.append(p)
                coefficients.append((p.k_cpu, p.k_gpu, p.k_mem, p.pue_value, p.intensity_g_per_kwh))
            k_cpu, k_gpu, k_mem, pue, intensity = coefficients[j]
            m = s.duration_minutes
            cores = s.cpu_cores
            gpus = s.gpu_cores
            mem = s.memory_gb
            if not (m >= 0.0 and cores >= 0.0 and mem >= 0.0 and gpus >= 0.0):
                _check_quantities(m, cores, mem, gpus)  # raises, naming the field
            c = m * cores * k_cpu
            g = m * gpus * k_gpu
            mm = m * mem * k_mem
            e = (c + g + mm) * pue
            q = e * intensity
            kwh[i] = e
            co2[i] = q
            cpu_l[i] = c
            gpu_l[i] = g
            mem_l[i] = mm
            pidx[i] = j
        # exact (correctly rounded) sums: a running float sum drifts (3.1200000000005645 for 3.12)
        total_kwh = math.fsum(kwh)
        total_co2 = math.fsum(co2)
        if not math.isfinite(total_co2):
            for s in jobs:
                _check_quantities(s.duration_minutes, s.cpu_cores, s.memory_gb, s.gpu_cores)
            raise ValueError("job quantities too large")
        return BatchEstimate(kwh, co2, cpu_l, gpu_l, mem_l, pidx, profiles, total_kwh, total_co2)


def _check_quantities(duration_minutes: float, cpu_cores: float, memory_gb: float, gpu_cores: float) -> None:
    for name, v in (
        ("duration_minutes", duration_minutes),
        ("cpu_cores", cpu_cores),
        ("memory_gb", memory_gb),
        ("gpu_cores", gpu_cores),
    ):
        if not (v >= 0.0) or math.isinf(v):
            raise ValueError(f"{name} must be a finite number >= 0")


def energy_kwh(
    duration_minutes: float,
    cpu_cores: float,
    memory_gb: float,
    gpu_cores: float,
    *,
    cpu_w_per_core: float = DEFAULT_CPU_W_PER_CORE.value,
    gpu_w: float = DEFAULT_GPU_W.value,
    memory_w_per_gb: float = MEMORY_W_PER_GB.value,
    cpu_utilization: float = DEFAULT_UTILIZATION,
    gpu_utilization: float = DEFAULT_UTILIZATION,
    pue: float = DEFAULT_PUE.value,
) -> float:
    """The bare formula, for documentation and cross-checks: kWh of one job."""
    _check_quantities(duration_minutes, cpu_cores, memory_gb, gpu_cores)
    power_w = (
        cpu_cores * cpu_w_per_core * cpu_utilization + gpu_cores * gpu_w * gpu_utilization + memory_gb * memory_w_per_gb
    )
    return duration_minutes / MINUTES_PER_HOUR * power_w * pue / W_PER_KW
