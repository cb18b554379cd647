"""Household device catalog: typical and standby watts with a source per entry.

File: ``powermeter/data/devices/catalog.csv`` with columns ``slug, name, category, typical_watts,
standby_watts, watts_min, watts_max, basis, source, notes``. ``basis`` says what the watts are:
``nameplate`` (a maximum; DOE: "the wattage listed is the maximum power drawn"), ``label``,
``measured``, ``rated`` or ``unverified``. The dataset version is the file's content hash.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

from powermeter.data.loader import content_version, data_path

CATALOG_FILE = data_path("devices", "catalog.csv")
BASES = frozenset({"nameplate", "label", "measured", "rated", "unverified"})
_SLUG = re.compile(r"^[a-z0-9][a-z0-9.\-]*$")


class CatalogDataError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class CatalogDevice:
    slug: str
    name: str
    category: str
    typical_watts: Decimal
    standby_watts: Decimal | None
    watts_min: Decimal | None
    watts_max: Decimal | None
    basis: str
    source: str
    notes: str

    def as_dict(self) -> dict[str, Any]:
        def f(v: Decimal | None) -> float | None:
            return None if v is None else float(v)

        return {
            "slug": self.slug,
            "name": self.name,
            "category": self.category,
            "typical_watts": float(self.typical_watts),
            "standby_watts": f(self.standby_watts),
            "watts_range": None if self.watts_min is None else [f(self.watts_min), f(self.watts_max)],
            "basis": self.basis,
            "source": self.source,
            "notes": self.notes or None,
        }


@dataclass(frozen=True, slots=True)
class DeviceCatalog:
    devices: tuple[CatalogDevice, ...]
    by_slug: dict[str, CatalogDevice]
    version: str

    def get(self, slug: str) -> CatalogDevice | None:
        return self.by_slug.get(slug)

    def listing(self, category: str | None = None) -> list[dict[str, Any]]:
        return [d.as_dict() for d in self.devices if category is None or d.category == category]


def _opt(v: str, slug: str, col: str) -> Decimal | None:
    if not v.strip():
        return None
    d = Decimal(v)
    if d < 0:
        raise CatalogDataError(f"{slug}: {col} must be ≥ 0")
    return d


def load_catalog_from(path: Path) -> DeviceCatalog:
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    devices: list[CatalogDevice] = []
    by_slug: dict[str, CatalogDevice] = {}
    for row in rows:
        slug = row["slug"].strip()
        if not _SLUG.match(slug):
            raise CatalogDataError(f"bad slug {slug!r}")
        if slug in by_slug:
            raise CatalogDataError(f"duplicate slug {slug}")
        if row["basis"] not in BASES:
            raise CatalogDataError(f"{slug}: basis {row['basis']!r} not in {sorted(BASES)}")
        if not row["source"].strip():
            raise CatalogDataError(f"{slug}: missing source")
        typical = _opt(row["typical_watts"], slug, "typical_watts")
        if typical is None or typical <= 0:
            raise CatalogDataError(f"{slug}: typical_watts must be > 0")
        lo = _opt(row["watts_min"], slug, "watts_min")
        hi = _opt(row["watts_max"], slug, "watts_max")
        if (lo is None) != (hi is None) or (lo is not None and hi is not None and not lo <= typical <= hi):
            raise CatalogDataError(f"{slug}: typical_watts must lie in [watts_min, watts_max]")
        standby = _opt(row["standby_watts"], slug, "standby_watts")
        if standby is not None and standby > typical:
            raise CatalogDataError(f"{slug}: standby_watts above typical_watts")
        dev = CatalogDevice(
            slug=slug,
            name=row["name"].strip(),
            category=row["category"].strip(),
            typical_watts=typical,
            standby_watts=standby,
            watts_min=lo,
            watts_max=hi,
            basis=row["basis"],
            source=row["source"].strip(),
            notes=row.get("notes", "").strip(),
        )
        devices.append(dev)
        by_slug[slug] = dev
    return DeviceCatalog(tuple(devices), by_slug, content_version(path))


@lru_cache(maxsize=1)
def load_catalog() -> DeviceCatalog:
    return load_catalog_from(CATALOG_FILE)


__all__ = ["CATALOG_FILE", "CatalogDataError", "CatalogDevice", "DeviceCatalog", "load_catalog", "load_catalog_from"]
