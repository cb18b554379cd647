"""Carbon-aware routing decision, the latency model and the energy model of a request.

Pure functions; see docs/methodology.md "Carbon-aware routing" for every equation and source.

Decision (:func:`decide`):

1. Candidates that are unhealthy, or break ``max_latency_ms`` (or have no known latency when a
   bound is set), are excluded: the latency bound is a hard constraint (as in CASPER,
   Souza et al. 2023).
2. Each remaining candidate ``i`` gets a score, lower is better::

       S_i = w · CI_i / max(CI) + (1 − w) · RTT_i / RTT_ref

   with ``w = carbon_weight`` (1 = cleanest wins, 0 = nearest wins), ``max(CI)`` over the
   feasible candidates and ``RTT_ref = max_latency_ms`` when given, else the largest known RTT.
   Dividing by the maximum (not min-max) keeps the score scale-free and defined when all
   candidates are equal; with ``w = 1`` the ranking is the intensity ranking.
3. Hysteresis: the current choice is kept unless the best candidate's score is lower by more
   than ``margin`` (relative): switch iff ``S_best < S_current · (1 − margin)``. Ties and
   near-ties therefore keep the current region, which stops flapping between two regions whose
   intensities cross back and forth within the data's noise.

Ties in score break on lower RTT, then on the region code, so the result is deterministic.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from powermeter.methodology.units import Factor

# --------------------------------------------------------------------------------------------
# Decision
# --------------------------------------------------------------------------------------------

DEFAULT_MARGIN = 0.10
"""Relative gain needed to leave the current region (10 %): about the MAPE of published grid
intensity forecasts (UK NGESO 48 h regional forecasts ≈ 7.1 %; CarbonX 9.59 % on 13 grids), so
a switch is not triggered by a difference smaller than the data's own error."""

ExclusionReason = Literal["unhealthy", "latency", "latency_unknown"]


@dataclass(frozen=True, slots=True)
class Candidate:
    region: str
    intensity_g_per_kwh: float
    rtt_ms: float | None = None
    healthy: bool = True


@dataclass(frozen=True, slots=True)
class Policy:
    carbon_weight: float = 1.0
    max_latency_ms: float | None = None
    margin: float = DEFAULT_MARGIN

    def __post_init__(self) -> None:
        if not 0.0 <= self.carbon_weight <= 1.0:
            raise ValueError("carbon_weight must be within [0, 1]")
        if not 0.0 <= self.margin < 1.0:
            raise ValueError("margin must be within [0, 1)")
        if self.max_latency_ms is not None and self.max_latency_ms <= 0:
            raise ValueError("max_latency_ms must be positive")


@dataclass(frozen=True, slots=True)
class Ranked:
    region: str
    intensity_g_per_kwh: float
    rtt_ms: float | None
    score: float


@dataclass(frozen=True, slots=True)
class Excluded:
    region: str
    reason: ExclusionReason


@dataclass(frozen=True, slots=True)
class Decision:
    chosen: Ranked | None
    """``None`` when no candidate is feasible."""
    ranked: tuple[Ranked, ...]
    """Feasible candidates, the chosen one first, then by score."""
    excluded: tuple[Excluded, ...]
    best: Ranked | None
    """The lowest score, before hysteresis."""
    kept_current: bool
    """True when hysteresis kept the current region although another scored lower."""


def _sort_key(r: Ranked) -> tuple[float, float, str]:
    return (r.score, math.inf if r.rtt_ms is None else r.rtt_ms, r.region)


def decide(candidates: Sequence[Candidate], policy: Policy, current: str | None = None) -> Decision:
    """Pick a region (see the module docstring). Allocation-light: one pass to filter, one to
    score, one sort; about 10 µs for 10 candidates on the reference machine."""
    max_lat = policy.max_latency_ms
    feasible: list[Candidate] = []
    excluded: list[Excluded] = []
    for c in candidates:
        if not c.healthy:
            excluded.append(Excluded(c.region, "unhealthy"))
        elif max_lat is not None and c.rtt_ms is None:
            excluded.append(Excluded(c.region, "latency_unknown"))
        elif max_lat is not None and c.rtt_ms is not None and c.rtt_ms > max_lat:
            excluded.append(Excluded(c.region, "latency"))
        else:
            feasible.append(c)
    if not feasible:
        return Decision(None, (), tuple(excluded), None, False)

    w = policy.carbon_weight
    ci_ref = max(c.intensity_g_per_kwh for c in feasible)
    inv_ci = 1.0 / ci_ref if ci_ref > 1e-9 else 0.0  # all ~zero: carbon term is 0 for all
    lat_w = 1.0 - w
    if lat_w > 0.0:
        if max_lat is not None:
            rtt_ref = max_lat
        else:
            known = [c.rtt_ms for c in feasible if c.rtt_ms is not None]
            rtt_ref = max(known) if known else 0.0
        inv_rtt = 1.0 / rtt_ref if rtt_ref > 1e-9 else 0.0
        ranked = [
            Ranked(
                c.region,
                c.intensity_g_per_kwh,
                c.rtt_ms,
                # Unknown latency scores as the worst (reference) latency.
                w * c.intensity_g_per_kwh * inv_ci + lat_w * ((rtt_ref if c.rtt_ms is None else c.rtt_ms) * inv_rtt),
            )
            for c in feasible
        ]
    else:
        ranked = [Ranked(c.region, c.intensity_g_per_kwh, c.rtt_ms, c.intensity_g_per_kwh * inv_ci) for c in feasible]
    ranked.sort(key=_sort_key)
    best = ranked[0]
    kept = False
    if current is not None and best.region != current:
        for i, r in enumerate(ranked):
            if r.region == current:
                if not best.score < r.score * (1.0 - policy.margin):
                    kept = True
                    ranked.insert(0, ranked.pop(i))
                break
    return Decision(ranked[0], tuple(ranked), tuple(excluded), best, kept)


# --------------------------------------------------------------------------------------------
# Latency model
# --------------------------------------------------------------------------------------------

EARTH_RADIUS_KM = 6371.0088
"""Mean Earth radius (IUGG), for the haversine great-circle distance."""

FIBRE_GROUP_INDEX = 1.4682
"""Group index of standard single-mode fibre (Corning SMF-28 at 1550 nm): light covers
c / 1.4682 ≈ 204,190 km/s ≈ 204.19 km/ms in the glass."""

SPEED_OF_LIGHT_KM_PER_MS = 299.792458

ROUTE_INFLATION = 2.1
"""Rule of thumb from Internet latency measurements: 'multiply line-of-sight distance by 2.1,
then divide by the speed of light in fiber' (Bozkurt et al., 'Dissecting Latency in the
Internet's Fiber Infrastructure', 2018). Cloud backbones are often better, so the bound is
conservative: it excludes too much rather than too little."""

MIN_RTT_MS = 1.0
"""Floor for two sites in the same place (same metro / same data-centre campus)."""


def great_circle_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1 = math.radians(lat1)
    p2 = math.radians(lat2)
    dp = p2 - p1
    dl = math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


def modelled_rtt_ms(distance_km: float) -> float:
    """Round-trip time: ``max(1 ms, 2 · 2.1 · d / (c / n_fibre))``."""
    one_way = ROUTE_INFLATION * distance_km / (SPEED_OF_LIGHT_KM_PER_MS / FIBRE_GROUP_INDEX)
    return max(MIN_RTT_MS, 2.0 * one_way)


LATENCY_MODEL_FACTORS = (
    Factor("route_inflation", ROUTE_INFLATION, "1", "Bozkurt et al. 2018, arXiv:1811.10737"),
    Factor("fibre_group_index", FIBRE_GROUP_INDEX, "1", "Corning SMF-28 specification, 1550 nm"),
    Factor("min_rtt_ms", MIN_RTT_MS, "ms", "modelling floor for co-located sites"),
)


# --------------------------------------------------------------------------------------------
# Energy model of a request
# --------------------------------------------------------------------------------------------

BYTES_PER_UNIT: dict[str, float] = {"B": 1.0, "KB": 1e3, "MB": 1e6, "GB": 1e9}
"""Decimal units, as the Sustainable Web Design Model's per-GB figures use (1 GB = 10⁹ bytes)."""


@dataclass(frozen=True, slots=True)
class RequestEnergyModel:
    datacenter_kwh_per_gb: Factor
    network_kwh_per_gb: Factor


@dataclass(frozen=True, slots=True)
class RequestFootprint:
    payload_gb: float
    compute_kwh: float
    network_kwh: float
    emissions_g: float

    @property
    def energy_kwh(self) -> float:
        return self.compute_kwh + self.network_kwh


def payload_gb(size: float, unit: str = "MB") -> float:
    try:
        return size * BYTES_PER_UNIT[unit] / 1e9
    except KeyError:
        raise ValueError(f"unknown payload unit {unit!r}; use one of {sorted(BYTES_PER_UNIT)}") from None


def request_footprint(
    size_gb: float,
    model: RequestEnergyModel,
    destination_g_per_kwh: float,
    source_g_per_kwh: float | None = None,
) -> RequestFootprint:
    """Energy and emissions of moving and serving ``size_gb`` of payload.

    ``E_compute = size · e_dc`` is spent in the destination's data centre, at its intensity;
    ``E_network = size · e_net`` is spent along the path, at the mean of the source's and the
    destination's intensities (the destination's alone when the source is unknown)::

        emissions_g = E_compute · CI_dest + E_network · (CI_src + CI_dest) / 2
    """
    if size_gb < 0:
        raise ValueError("payload size must not be negative")
    compute_kwh = size_gb * model.datacenter_kwh_per_gb.value
    network_kwh = size_gb * model.network_kwh_per_gb.value
    path_ci = destination_g_per_kwh if source_g_per_kwh is None else 0.5 * (source_g_per_kwh + destination_g_per_kwh)
    return RequestFootprint(
        size_gb,
        compute_kwh,
        network_kwh,
        compute_kwh * destination_g_per_kwh + network_kwh * path_ci,
    )
