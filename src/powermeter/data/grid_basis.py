"""The basis of grid emission factors (generation / combustion vs lifecycle) and the combustion
factors that pair with lifecycle ones, for the GHG Protocol Scope 2 / Scope 3 Category 3 split.

Scope 2 (location-based) is the generation of purchased electricity: direct (combustion) emissions
at the power plants. A lifecycle factor also holds upstream emissions (fuel extraction, processing,
transport; plant construction), which the customer reports under Scope 3 Category 3 (fuel- and
energy-related activities). Which basis each source is on (see docs/methodology.md "Reporting
standards", and the research notes):

* EPA eGRID output emission rates (``STC2ERTA`` and the US total): combustion, measured at the stack
  (research notes compute_anchors.md §grid data; routing_anchors.md §7: "annual, per plant/state/BA");
* AIB European residual mixes: direct (combustion) CO2 only (turn2_anchors.md §5.2, secondary);
* Our World in Data / Ember country intensities: lifecycle (routing_anchors.md §7: "production-based
  lifecycle gCO2eq/kWh"), and the WORLD / EU means derived from them;
* Electricity Maps yearly figures as shipped: lifecycle, consumption-based (stated in their source);
* Google's per-region figures: the research notes do not state the basis (``unknown``).

``data/grid/combustion_factors.csv`` pairs a lifecycle location with a combustion factor of the same
place from another publisher (today only the United States: eGRID2023 US total vs OWID US 2023). The
remainder lifecycle − combustion is then reported as Scope 3 Category 3; because the two figures come
from different publishers it also absorbs their methodological differences (imports, plant coverage),
which the report says.
"""

from __future__ import annotations

import csv
import functools
from dataclasses import dataclass

from powermeter.data.loader import content_version, data_path
from powermeter.methodology.reporting import factor_basis_of

COMBUSTION, LIFECYCLE, UNKNOWN = "combustion", "lifecycle", "unknown"
COMBUSTION_CSV = ("grid", "combustion_factors.csv")

__all__ = [
    "COMBUSTION",
    "LIFECYCLE",
    "UNKNOWN",
    "CombustionFactor",
    "CombustionFactors",
    "basis_of",
    "load_combustion_factors",
]


def basis_of(source: str | None) -> str:
    """``combustion`` / ``lifecycle`` / ``unknown`` of a grid factor, from its source (rules above)."""
    return factor_basis_of(source)


@dataclass(frozen=True, slots=True)
class CombustionFactor:
    location: str  # the lifecycle location code it pairs with
    year: int
    intensity_g_per_kwh: float
    gas: str
    verification: str
    source: str


@dataclass(frozen=True, slots=True)
class CombustionFactors:
    rows: tuple[CombustionFactor, ...]
    version: str

    def lookup(self, location: str, year: int) -> CombustionFactor | None:
        """The combustion factor paired with ``location`` for activity ``year``: that year's when
        present, else the closest earlier, else the earliest later (the caller flags the gap)."""
        mine = [r for r in self.rows if r.location == location.upper()]
        if not mine:
            return None
        earlier = [r for r in mine if r.year <= year]
        return max(earlier, key=lambda r: r.year) if earlier else min(mine, key=lambda r: r.year)


@functools.cache
def load_combustion_factors() -> CombustionFactors:
    path = data_path(*COMBUSTION_CSV)
    rows = []
    with path.open(newline="", encoding="utf-8") as f:
        for line, r in enumerate(csv.DictReader(f), start=2):
            value = float(r["combustion_g_per_kwh"])
            if not (0.0 <= value < 2000.0) or not r["source"].strip():
                raise ValueError(f"{path.name}:{line}: bad intensity or no source")
            rows.append(
                CombustionFactor(
                    r["lifecycle_location"].strip().upper(),
                    int(r["year"]),
                    value,
                    r["gas"],
                    r["verification"],
                    r["source"],
                )
            )
    return CombustionFactors(tuple(rows), content_version(path))
