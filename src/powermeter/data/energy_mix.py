"""Electricity generation shares (fossil / nuclear / renewable) per country, for the ESRS E1-5 split
of consumed electricity (location-based). Dataset and sources: ``data/energy_mix/``."""

from __future__ import annotations

import csv
import functools
from dataclasses import dataclass

from powermeter.data.loader import content_version, data_path

SOURCE = (
    "Our World in Data (Ember / Energy Institute) electricity generation by source, via codecarbon 3.3.2 "
    "global_energy_mix.json, CC BY 4.0"
)


@dataclass(frozen=True, slots=True)
class Shares:
    country: str
    year: int
    fossil: float
    nuclear: float
    renewable: float
    other: float


@dataclass(frozen=True, slots=True)
class EnergyMixes:
    by_country: dict[str, Shares]
    version: str

    def get(self, country: str | None) -> Shares | None:
        return self.by_country.get(country.upper()) if country else None


@functools.cache
def load_energy_mixes() -> EnergyMixes:
    path = data_path("energy_mix", "generation_shares.csv")
    out: dict[str, Shares] = {}
    with path.open(newline="", encoding="utf-8") as f:
        for line, r in enumerate(csv.DictReader(f), start=2):
            s = Shares(
                r["country"],
                int(r["year"]),
                float(r["fossil_share"]),
                float(r["nuclear_share"]),
                float(r["renewable_share"]),
                float(r["other_share"]),
            )
            if abs(s.fossil + s.nuclear + s.renewable + s.other - 1.0) > 1e-5:
                raise ValueError(f"{path.name}:{line}: shares do not add up to 1")
            out[s.country] = s
    return EnergyMixes(out, content_version(path))
