"""Residual mixes for market-based Scope 2 (AIB European Residual Mixes; Green-e for the US), loaded
once.

The dataset is ``data/residual_mixes/residual_mixes.csv`` (sources and verification status in its
``SOURCES.md``); its version is the content hash, recorded in every report that uses it.
"""

from __future__ import annotations

import csv
import functools
from dataclasses import dataclass

from powermeter.data.loader import content_version, data_path

COMBUSTION, LIFECYCLE = "combustion", "lifecycle"


@dataclass(frozen=True, slots=True)
class ResidualMix:
    country: str
    scheme: str
    data_year: int
    edition: str
    intensity_g_per_kwh: float
    gas: str
    basis: str
    verification: str
    source: str


@dataclass(frozen=True, slots=True)
class Unavailable:
    """A market with no residual-mix figure in the data, said explicitly (``unavailable.csv``)."""

    country: str
    scheme: str
    reason: str
    fallback: str


@dataclass(frozen=True, slots=True)
class ResidualMixes:
    rows: tuple[ResidualMix, ...]
    version: str
    unavailable: tuple[Unavailable, ...] = ()

    def unavailable_for(self, country: str | None) -> Unavailable | None:
        """Why ``country`` has no residual mix here, when the dataset says so."""
        if not country:
            return None
        return next((u for u in self.unavailable if u.country == country.upper()), None)

    def lookup(self, country: str | None, year: int) -> ResidualMix | None:
        """The mix of ``country`` for the activity ``year``: that year's edition when present, else the
        closest earlier one, else the earliest later one (the caller flags the vintage gap)."""
        if not country:
            return None
        mine = [r for r in self.rows if r.country == country.upper()]
        if not mine:
            return None
        earlier = [r for r in mine if r.data_year <= year]
        if earlier:
            return max(earlier, key=lambda r: r.data_year)
        return min(mine, key=lambda r: r.data_year)


@functools.cache
def load_residual_mixes() -> ResidualMixes:
    path = data_path("residual_mixes", "residual_mixes.csv")
    rows = []
    with path.open(newline="", encoding="utf-8") as f:
        for line, r in enumerate(csv.DictReader(f), start=2):
            value = float(r["intensity_g_per_kwh"])
            if not (0.0 <= value < 2000.0) or r["basis"] not in (COMBUSTION, LIFECYCLE):
                raise ValueError(f"{path.name}:{line}: bad intensity or basis")
            rows.append(
                ResidualMix(
                    r["country"].strip().upper(),
                    r["scheme"],
                    int(r["data_year"]),
                    r["edition"],
                    value,
                    r["gas"],
                    r["basis"],
                    r["verification"],
                    r["source"],
                )
            )
    missing_path = data_path("residual_mixes", "unavailable.csv")
    with missing_path.open(newline="", encoding="utf-8") as f:
        missing = tuple(
            Unavailable(r["country"].strip().upper(), r["scheme"], r["reason"], r["fallback"])
            for r in csv.DictReader(f)
        )
    return ResidualMixes(tuple(rows), content_version(path, missing_path), missing)
