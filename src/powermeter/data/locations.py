"""Carbon-intensity locations: countries, subdivisions, aggregates, grid regions and cloud regions.

The dataset is ``data/locations/locations.csv`` (built by ``scripts/build_locations.py``; sources and
licences in ``data/locations/SOURCES.md``). Every row has a g CO2e/kWh figure, its year and its source.
:func:`load_locations` reads it once per process; :meth:`LocationIndex.resolve` maps any accepted
spelling of a location to its row in O(1).

Accepted spellings (case-insensitive, surrounding blanks ignored):

* ISO 3166-1 alpha-2 and alpha-3 (``US``, ``USA``), ISO 3166-2 where we have data (``US-CA``, ``CA-QC``);
* aggregates ``EU`` (also ``EU27``) and ``WORLD``;
* grid regions ``CAISO``, ``ERCOT``, ``PJM``, ``BPA``, ``MISO``, ``NYISO``, ``ISONE``, ``SPP`` (also their
  Electricity Maps zone ids, e.g. ``US-CAL-CISO``);
* cloud regions ``provider:region`` (``aws:us-west-1``, ``gcp:europe-west1``, ``azure:westeurope``),
  ``provider/region``, and the bare region name when exactly one provider uses it.
"""

from __future__ import annotations

import csv
import threading
from dataclasses import dataclass, field
from pathlib import Path

from powermeter.data.loader import content_version, data_path
from powermeter.methodology.compute_job import LocationLookup, ResolvedLocation
from powermeter.methodology.units import Factor

KINDS = ("country", "subdivision", "aggregate", "grid", "cloud")
CLOUD_PROVIDERS = ("aws", "gcp", "azure")
LOCATIONS_CSV = ("locations", "locations.csv")


@dataclass(frozen=True, slots=True)
class Location:
    code: str
    name: str
    kind: str  # country | subdivision | aggregate | grid | cloud
    intensity_g_per_kwh: float
    year: int
    source: str
    country: str | None
    grid_region: str | None
    provider: str | None  # cloud provider for cloud regions
    aliases: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict[str, object]:
        return {
            "code": self.code,
            "name": self.name,
            "kind": self.kind,
            "intensity_g_per_kwh": self.intensity_g_per_kwh,
            "year": self.year,
            "source": self.source,
            "country": self.country,
            "grid_region": self.grid_region,
            "provider": self.provider,
            "aliases": list(self.aliases),
        }


class LocationIndex:
    """All locations of one dataset version, indexed by every accepted spelling."""

    __slots__ = ("_by_key", "_locations", "path", "version")

    def __init__(self, locations: list[Location], version: str, path: Path | None = None) -> None:
        self.version = version
        self.path = path
        self._locations = list(locations)
        self._by_key: dict[str, Location] = {}
        bare: dict[str, list[Location]] = {}
        for loc in self._locations:
            self._add(loc.code, loc)
            for alias in loc.aliases:
                self._add(alias, loc)
            if loc.kind == "cloud" and loc.provider:
                region = loc.code.split(":", 1)[1]
                self._add(f"{loc.provider}/{region}", loc)
                bare.setdefault(region.upper(), []).append(loc)
        for key, locs in bare.items():
            # A bare region name resolves only when unambiguous and not already another code.
            if len(locs) == 1 and key not in self._by_key:
                self._by_key[key] = locs[0]

    def _add(self, key: str, loc: Location) -> None:
        k = key.strip().upper()
        other = self._by_key.get(k)
        if other is not None and other is not loc:
            raise ValueError(f"location key {key!r} is used by both {other.code} and {loc.code}")
        self._by_key[k] = loc

    def resolve(self, code: str) -> Location | None:
        """The location for ``code`` in any accepted spelling, or ``None`` if unknown."""
        loc = self._by_key.get(code.upper())
        if loc is None:
            loc = self._by_key.get(code.strip().upper())
        return loc

    def all(self) -> list[Location]:
        """Every location, in dataset order."""
        return list(self._locations)

    def __len__(self) -> int:
        return len(self._locations)


def _opt(value: str) -> str | None:
    value = value.strip()
    return value or None


def parse_locations_csv(path: Path) -> list[Location]:
    """Parse and validate the dataset file; raises ``ValueError`` naming the bad row."""
    out: list[Location] = []
    with path.open(newline="", encoding="utf-8") as f:
        for lineno, row in enumerate(csv.DictReader(f), start=2):
            try:
                loc = Location(
                    code=row["code"].strip(),
                    name=row["name"].strip(),
                    kind=row["kind"].strip(),
                    intensity_g_per_kwh=float(row["intensity_g_per_kwh"]),
                    year=int(row["year"]),
                    source=row["source"].strip(),
                    country=_opt(row["country"]),
                    grid_region=_opt(row["grid_region"]),
                    provider=_opt(row["provider"]),
                    aliases=tuple(a.strip() for a in row["aliases"].split(";") if a.strip()),
                )
            except (KeyError, ValueError, AttributeError) as exc:
                raise ValueError(f"{path.name}:{lineno}: {exc}") from exc
            if loc.kind not in KINDS:
                raise ValueError(f"{path.name}:{lineno}: unknown kind {loc.kind!r}")
            if not loc.code or not loc.source:
                raise ValueError(f"{path.name}:{lineno}: code and source are required")
            if not 0.0 <= loc.intensity_g_per_kwh <= 1500.0:
                raise ValueError(f"{path.name}:{lineno}: implausible intensity {loc.intensity_g_per_kwh}")
            if loc.kind == "cloud" and (loc.provider not in CLOUD_PROVIDERS or ":" not in loc.code):
                raise ValueError(f"{path.name}:{lineno}: cloud rows need provider:region codes")
            out.append(loc)
    return out


def load_locations_from(path: Path) -> LocationIndex:
    return LocationIndex(parse_locations_csv(path), content_version(path), path)


_lock = threading.Lock()
_cached: LocationIndex | None = None


def load_locations() -> LocationIndex:
    """The shipped locations dataset, loaded once per process."""
    global _cached
    if _cached is None:
        with _lock:
            if _cached is None:
                _cached = load_locations_from(data_path(*LOCATIONS_CSV))
    return _cached


def location_lookup(index: LocationIndex) -> LocationLookup:
    """Adapter for :class:`powermeter.methodology.compute_job.ComputeJobEstimator`: code → resolved
    location with its intensity as a :class:`Factor` (memoised per spelling)."""
    cache: dict[str, ResolvedLocation | None] = {}

    def lookup(code: str) -> ResolvedLocation | None:
        if code in cache:
            return cache[code]
        loc = index.resolve(code)
        resolved = None
        if loc is not None:
            resolved = ResolvedLocation(
                code=loc.code,
                intensity=Factor(
                    "carbon_intensity",
                    loc.intensity_g_per_kwh,
                    "gCO2e/kWh",
                    f"{loc.code} ({loc.name}), {loc.year}: {loc.source}",
                    index.version,
                ),
                provider=loc.provider,
                region=loc.code.split(":", 1)[1] if loc.kind == "cloud" else None,
            )
        if len(cache) < 10_000:
            cache[code] = resolved
        return resolved

    return lookup
