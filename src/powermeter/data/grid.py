"""Grid reference data: per-fuel emission factors, fuel-name aliases, region sites and the
region-to-region latency table, the request energy constants, and provider region ids.

Files (all in ``powermeter/data/grid/``):

- ``fuel_factors.csv``: fuel, lifecycle and direct g CO2e/kWh, each with its source;
- ``fuel_aliases.csv``: data-source column name → canonical fuel (or storage / excluded);
- ``sites.csv``: region code → latitude, longitude, site, source;
- ``latency_ms.csv``: region pair → round-trip time (ms), method, generated from ``sites.csv`` by
  :func:`build_latency_rows` (``python -m powermeter.data.grid`` rewrites it); edit rows to put
  measured values in (method ``measured``);
- ``request_energy.csv``: the energy model of a request (kWh per GB), with sources;
- ``provider_regions.csv``: region code → gridstatus ISO, EIA BA, WattTime region, Electricity
  Maps zone.

:func:`load_grid_data` reads them once; ``GridData.version`` is the content hash of all files.
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType

from powermeter.data.loader import content_version, data_path
from powermeter.methodology.grid import EXCLUDED, STORAGE, UNKNOWN, normalise_fuel_name
from powermeter.methodology.routing import (
    RequestEnergyModel,
    great_circle_km,
    modelled_rtt_ms,
)
from powermeter.methodology.units import Factor

GRID_DIR = ("grid",)
FILES = (
    "fuel_factors.csv",
    "fuel_aliases.csv",
    "sites.csv",
    "latency_ms.csv",
    "request_energy.csv",
    "provider_regions.csv",
)
CLOUD_PREFIXES = ("aws", "gcp", "azure")
LATENCY_METHOD_MODELLED = "modelled: 2 x 2.1 x great-circle / (c / 1.4682)"


def grid_file(name: str) -> Path:
    return data_path(*GRID_DIR, name)


def region_key(code: str) -> str:
    """Case-insensitive key of a region code (``caiso`` → ``CAISO``'s key)."""
    return code.strip().casefold()


@dataclass(frozen=True, slots=True)
class FuelFactorSet:
    name: str
    """``lifecycle`` or ``direct``."""
    factors: Mapping[str, Factor]
    version: str

    def values(self) -> dict[str, float]:
        return {fuel: f.value for fuel, f in self.factors.items()}


@dataclass(frozen=True, slots=True)
class Site:
    region: str
    latitude: float
    longitude: float
    site: str
    source: str


@dataclass(frozen=True, slots=True)
class ProviderIds:
    region: str
    gridstatus_iso: str | None
    eia_ba: str | None
    watttime_region: str | None
    electricitymaps_zone: str | None
    source: str


class LatencyTable:
    """Round-trip times between region sites; symmetric; modelled for pairs not in the file."""

    def __init__(self, sites: Mapping[str, Site], rows: Mapping[tuple[str, str], tuple[float, str]]) -> None:
        self._sites = sites
        self._rtt: dict[tuple[str, str], float] = {}
        self._method: dict[tuple[str, str], str] = {}
        for (a, b), (ms, method) in rows.items():
            ka, kb = region_key(a), region_key(b)
            for pair in ((ka, kb), (kb, ka)):
                self._rtt[pair] = ms
                self._method[pair] = method

    def rtt_ms(self, a: str, b: str) -> float | None:
        """RTT between two regions, ``None`` when either has no known site."""
        ka, kb = region_key(a), region_key(b)
        v = self._rtt.get((ka, kb))
        if v is not None:
            return v
        sa, sb = self._sites.get(ka), self._sites.get(kb)
        if sa is None or sb is None:
            return None
        v = round(modelled_rtt_ms(great_circle_km(sa.latitude, sa.longitude, sb.latitude, sb.longitude)), 1)
        self._rtt[(ka, kb)] = self._rtt[(kb, ka)] = v
        self._method[(ka, kb)] = self._method[(kb, ka)] = LATENCY_METHOD_MODELLED
        return v

    def method(self, a: str, b: str) -> str | None:
        if self.rtt_ms(a, b) is None:
            return None
        return self._method.get((region_key(a), region_key(b)))


@dataclass(frozen=True, slots=True)
class GridData:
    factor_sets: Mapping[str, FuelFactorSet]
    fuel_aliases: Mapping[str, str]
    sites: Mapping[str, Site]
    """Keyed by :func:`region_key`."""
    latency: LatencyTable
    request_energy: RequestEnergyModel
    provider_ids: Mapping[str, ProviderIds]
    """Keyed by :func:`region_key`."""
    version: str

    def site(self, code: str) -> Site | None:
        return self.sites.get(region_key(code))

    def resolve_site_code(self, code: str) -> str | None:
        """Canonical code of a site, accepting cloud region names without their provider prefix
        (``us-west1`` → ``gcp:us-west1``, ``us-west-1`` → ``aws:us-west-1``)."""
        s = self.site(code)
        if s is not None:
            return s.region
        if ":" not in code:
            for prefix in CLOUD_PREFIXES:
                s = self.site(f"{prefix}:{code}")
                if s is not None:
                    return s.region
        return None

    def ids(self, code: str) -> ProviderIds | None:
        return self.provider_ids.get(region_key(code))


def _read_csv(name: str) -> list[dict[str, str]]:
    with grid_file(name).open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(row for row in fh if not row.startswith("#")))


def build_latency_rows(sites: Mapping[str, Site]) -> list[tuple[str, str, float]]:
    """Every unordered pair of distinct sites with its modelled RTT (ms, 0.1 ms resolution)."""
    ordered = sorted(sites.values(), key=lambda s: s.region)
    rows = []
    for a, b in itertools.combinations(ordered, 2):
        d = great_circle_km(a.latitude, a.longitude, b.latitude, b.longitude)
        rows.append((a.region, b.region, round(modelled_rtt_ms(d), 1)))
    return rows


def write_latency_table(path: Path | None = None) -> Path:
    """(Re)generate ``latency_ms.csv`` from ``sites.csv``."""
    sites = _load_sites()
    target = path or grid_file("latency_ms.csv")
    with target.open("w", newline="", encoding="utf-8") as fh:
        fh.write(
            "# Round-trip time between region sites (sites.csv). Generated by "
            "`python -m powermeter.data.grid`;\n"
            "# method 'modelled' = 2 x 2.1 x great-circle km / (299.792458 / 1.4682 km/ms), floor 1 ms "
            "(docs/methodology.md).\n"
        )
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["region_a", "region_b", "rtt_ms", "method"])
        for a, b, ms in build_latency_rows(sites):
            w.writerow([a, b, f"{ms:.1f}", "modelled"])
    return target


def _load_sites() -> dict[str, Site]:
    sites: dict[str, Site] = {}
    for r in _read_csv("sites.csv"):
        s = Site(r["region"], float(r["latitude"]), float(r["longitude"]), r["site"], r["source"])
        sites[region_key(s.region)] = s
    return sites


@lru_cache(maxsize=1)
def load_grid_data() -> GridData:
    version = content_version(*(grid_file(n) for n in FILES))

    lifecycle: dict[str, Factor] = {}
    direct: dict[str, Factor] = {}
    for r in _read_csv("fuel_factors.csv"):
        fuel = r["fuel"]
        lifecycle[fuel] = Factor(
            f"ef_{fuel}_lifecycle", float(r["lifecycle_g_per_kwh"]), "g/kWh", r["lifecycle_source"], version
        )
        direct[fuel] = Factor(f"ef_{fuel}_direct", float(r["direct_g_per_kwh"]), "g/kWh", r["direct_source"], version)
    if UNKNOWN not in lifecycle:
        raise ValueError("fuel_factors.csv must define the 'unknown' fuel")
    factor_sets = {
        "lifecycle": FuelFactorSet("lifecycle", MappingProxyType(lifecycle), version),
        "direct": FuelFactorSet("direct", MappingProxyType(direct), version),
    }

    aliases: dict[str, str] = {}
    for r in _read_csv("fuel_aliases.csv"):
        fuel = r["fuel"]
        if fuel not in lifecycle and fuel not in (STORAGE, EXCLUDED):
            raise ValueError(f"fuel_aliases.csv maps {r['name']!r} to unknown fuel {fuel!r}")
        aliases[normalise_fuel_name(r["name"])] = fuel

    sites = _load_sites()
    rows: dict[tuple[str, str], tuple[float, str]] = {}
    for r in _read_csv("latency_ms.csv"):
        method = r["method"] if r["method"] != "modelled" else LATENCY_METHOD_MODELLED
        rows[(r["region_a"], r["region_b"])] = (float(r["rtt_ms"]), method)

    energy: dict[str, Factor] = {}
    for r in _read_csv("request_energy.csv"):
        energy[r["name"]] = Factor(r["name"], float(r["value"]), r["unit"], r["source"], version)

    ids: dict[str, ProviderIds] = {}
    for r in _read_csv("provider_regions.csv"):
        ids[region_key(r["region"])] = ProviderIds(
            r["region"],
            r["gridstatus_iso"] or None,
            r["eia_ba"] or None,
            r["watttime_region"] or None,
            r["electricitymaps_zone"] or None,
            r["source"],
        )

    return GridData(
        factor_sets=MappingProxyType(factor_sets),
        fuel_aliases=MappingProxyType(aliases),
        sites=MappingProxyType(sites),
        latency=LatencyTable(sites, rows),
        request_energy=RequestEnergyModel(
            datacenter_kwh_per_gb=energy["datacenter_kwh_per_gb"],
            network_kwh_per_gb=energy["network_kwh_per_gb"],
        ),
        provider_ids=MappingProxyType(ids),
        version=version,
    )


if __name__ == "__main__":  # pragma: no cover - maintenance entry point
    print(write_latency_table())
