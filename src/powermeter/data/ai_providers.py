"""AI providers' data-centre defaults, EcoLogits' electricity mixes, and the site of a request.

* ``data/ai_providers/providers.json``: per provider its names, usual region (a code of the shared
  locations dataset), PUE and on-site WUE with their source, and how it reports reasoning tokens;
  per cloud (AWS, Google Cloud, Azure) the PUE/WUE used when a request names a cloud region.
* EcoLogits' ``electricity_mixes.json`` (shipped in the ``ecologits`` package, version 0.11.3) gives
  the **off-site water** intensity of electricity (WRI method, L/kWh) per ISO alpha-3 country; it is
  also what the cross-check tests feed to both implementations. Grid **carbon intensity** comes from
  the shared locations dataset (``data/locations``), which resolves cloud regions, grid regions and
  countries.

:func:`resolve_site` decides ``calculationMethod``: ``EXACT_REGION`` when ``detected_region`` is a
known location, ``PROVIDER_DEFAULT`` when the provider's usual region is used, ``GLOBAL_AVERAGE``
(the ``WORLD`` row) otherwise.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from powermeter.data.loader import content_version, data_path
from powermeter.data.locations import Location, LocationIndex
from powermeter.methodology.ai_inference import (
    CALC_EXACT_REGION,
    CALC_GLOBAL_AVERAGE,
    CALC_PROVIDER_DEFAULT,
    SiteFactors,
    calculation_method,
)

PROVIDERS_JSON = ("ai_providers", "providers.json")
WORLD_CODE = "WORLD"
_ECOLOGITS_WORLD = "WOR"
_ECOLOGITS_AGGREGATES = {"WORLD": "WOR", "EU": "EEE"}


def _range(text: str, what: str) -> tuple[float, float]:
    if "-" in text:
        lo_s, hi_s = text.split("-", 1)
        lo, hi = float(lo_s), float(hi_s)
    else:
        lo = hi = float(text)
    if lo > hi or lo < 0:
        raise ValueError(f"{what}: bad range {text!r}")
    return lo, hi


@dataclass(frozen=True, slots=True)
class Efficiency:
    pue: tuple[float, float]
    wue_l_per_kwh: tuple[float, float]
    source: str


@dataclass(frozen=True, slots=True)
class AIProvider:
    key: str
    display: str
    names: tuple[str, ...]
    vendor: str | None  # model-catalog vendor prefix for ids given without one
    operator: str | None
    clouds: tuple[str, ...]
    usual_region: str | None
    efficiency: Efficiency
    ecologits: str | None
    reasoning_in_completion: bool
    source: str


@dataclass(frozen=True, slots=True)
class ElectricityMix:
    zone: str  # ISO 3166-1 alpha-3 or WOR / EEE
    gwp_kg_per_kwh: float
    wue_l_per_kwh: float  # off-site water consumption of generation (WRI)
    world_default_wue: bool  # EcoLogits fell back to the world value for water


class EcoLogitsMixes:
    """EcoLogits' electricity mixes by zone (read from the installed ``ecologits`` package)."""

    SOURCE = (
        "EcoLogits 0.11.3 data/electricity_mixes.json: GWP from Our World in Data, off-site water from "
        "WRI 'Guidance for calculating water use embedded in purchased electricity'"
    )

    def __init__(self, mixes: dict[str, ElectricityMix], version: str) -> None:
        self._mixes = mixes
        self.version = version

    def get(self, zone: str) -> ElectricityMix | None:
        return self._mixes.get(zone.upper())

    def world(self) -> ElectricityMix:
        return self._mixes[_ECOLOGITS_WORLD]

    def __len__(self) -> int:
        return len(self._mixes)


def _ecologits_mix_path() -> Path:
    return Path(str(resources.files("ecologits").joinpath("data", "electricity_mixes.json")))


def load_ecologits_mixes_from(path: Path) -> EcoLogitsMixes:
    raw = json.loads(path.read_text(encoding="utf-8"))
    mixes: dict[str, ElectricityMix] = {}
    for m in raw["electricity_mixes"]:
        warnings = m.get("warnings") or []
        mixes[m["name"]] = ElectricityMix(
            zone=m["name"],
            gwp_kg_per_kwh=float(m["gwp"]),
            wue_l_per_kwh=float(m["wue"]),
            world_default_wue="electricity-mix-wue-world" in warnings,
        )
    if _ECOLOGITS_WORLD not in mixes:
        raise ValueError("EcoLogits electricity mixes have no world (WOR) zone")
    return EcoLogitsMixes(mixes, content_version(path))


class ProviderDirectory:
    """Providers by any accepted name (case-insensitive), plus cloud and generic defaults."""

    def __init__(
        self,
        providers: list[AIProvider],
        clouds: dict[str, tuple[str, Efficiency]],
        generic: Efficiency,
        version: str,
    ) -> None:
        self.version = version
        self.generic = generic
        self.clouds = clouds
        self._providers = {p.key: p for p in providers}
        self._by_name: dict[str, AIProvider] = {}
        for p in providers:
            for n in (p.key, *p.names):
                k = _norm_name(n)
                other = self._by_name.get(k)
                if other is not None and other is not p:
                    raise ValueError(f"provider name {n!r} is used by {other.key} and {p.key}")
                self._by_name[k] = p

    def find(self, name: str | None) -> AIProvider | None:
        if not name:
            return None
        return self._by_name.get(_norm_name(name))

    def all(self) -> list[AIProvider]:
        return list(self._providers.values())


def _norm_name(name: str) -> str:
    return " ".join(name.strip().lower().replace("_", " ").split())


def parse_providers(path: Path) -> tuple[list[AIProvider], dict[str, tuple[str, Efficiency]], Efficiency]:
    raw: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    g = raw["generic"]
    generic = Efficiency(_range(g["pue"], "generic pue"), _range(g["wue"], "generic wue"), g["source"])
    clouds: dict[str, tuple[str, Efficiency]] = {}
    for key, c in raw["clouds"].items():
        eff = Efficiency(_range(c["pue"], f"{key} pue"), _range(c["wue"], f"{key} wue"), c["source"])
        clouds[key] = (c["display"], eff)
    providers: list[AIProvider] = []
    for key, p in raw["providers"].items():
        if not p.get("source"):
            raise ValueError(f"provider {key} has no source")
        if (p["pue"] is None) != (p["wue"] is None):
            raise ValueError(f"provider {key}: give both PUE and WUE or neither")
        eff = (
            generic
            if p["pue"] is None
            else Efficiency(_range(p["pue"], f"{key} pue"), _range(p["wue"], f"{key} wue"), p["source"])
        )
        bad_clouds = set(p["clouds"]) - set(clouds)
        if bad_clouds:
            raise ValueError(f"provider {key}: unknown clouds {sorted(bad_clouds)}")
        providers.append(
            AIProvider(
                key=key,
                display=p["display"],
                names=tuple(p["names"]),
                vendor=p["vendor"],
                operator=p["operator"],
                clouds=tuple(p["clouds"]),
                usual_region=p["usual_region"],
                efficiency=eff,
                ecologits=p["ecologits"],
                reasoning_in_completion=bool(p["reasoning_in_completion"]),
                source=p["source"],
            )
        )
    return providers, clouds, generic


def load_providers_from(path: Path) -> ProviderDirectory:
    providers, clouds, generic = parse_providers(path)
    return ProviderDirectory(providers, clouds, generic, content_version(path))


_lock = threading.Lock()
_providers: ProviderDirectory | None = None
_mixes: EcoLogitsMixes | None = None


def load_providers() -> ProviderDirectory:
    """The shipped provider directory, loaded once per process."""
    global _providers
    if _providers is None:
        with _lock:
            if _providers is None:
                _providers = load_providers_from(data_path(*PROVIDERS_JSON))
    return _providers


def load_ecologits_mixes() -> EcoLogitsMixes:
    """EcoLogits' electricity mixes from the installed package, loaded once per process."""
    global _mixes
    if _mixes is None:
        with _lock:
            if _mixes is None:
                _mixes = load_ecologits_mixes_from(_ecologits_mix_path())
    return _mixes


# -- the site of one request -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ResolvedSite:
    calculation_method: str  # EXACT_REGION | PROVIDER_DEFAULT | GLOBAL_AVERAGE
    final_region: str
    final_provider: str
    location: Location
    factors: SiteFactors
    efficiency_source: str
    water_zone: str  # EcoLogits zone of the off-site water factor
    water_world_default: bool

    def audit_dict(self) -> dict[str, str]:
        return {
            "calculationMethod": self.calculation_method,
            "finalRegion": self.final_region,
            "finalProvider": self.final_provider,
        }

    def factors_dict(self) -> dict[str, Any]:
        f = self.factors
        return {
            "gridIntensityGPerKwh": f.intensity_g_per_kwh,
            "gridIntensitySource": self.location.source,
            "gridIntensityYear": self.location.year,
            "location": self.location.code,
            "pue": _range_out(f.pue_min, f.pue_max),
            "wueSiteLPerKwh": _range_out(f.wue_site_min_l_per_kwh, f.wue_site_max_l_per_kwh),
            "efficiencySource": self.efficiency_source,
            "wueOffsiteLPerKwh": f.wue_offsite_l_per_kwh,
            "wueOffsiteZone": self.water_zone,
            "wueOffsiteSource": EcoLogitsMixes.SOURCE
            + (" (world value: no country data)" if self.water_world_default else ""),
        }


def _range_out(lo: float, hi: float) -> float | dict[str, float]:
    return lo if lo == hi else {"min": lo, "max": hi}


class SiteResolver:
    """Maps (provider, detected_region) to a site; results are cached (inputs repeat a lot)."""

    def __init__(self, providers: ProviderDirectory, locations: LocationIndex, mixes: EcoLogitsMixes) -> None:
        self.providers = providers
        self.locations = locations
        self.mixes = mixes
        world = locations.resolve(WORLD_CODE)
        if world is None:
            raise ValueError("the locations dataset has no WORLD row")
        self._world = world
        self._cache: dict[tuple[str, str], ResolvedSite] = {}

    @property
    def version(self) -> str:
        return f"{self.providers.version}+{self.locations.version}+{self.mixes.version}"

    def _find_region(self, region: str, provider: AIProvider | None) -> Location | None:
        region = region.strip()
        if not region:
            return None
        if ":" not in region and "/" not in region and provider is not None:
            for cloud in provider.clouds:
                loc = self.locations.resolve(f"{cloud}:{region}")
                if loc is not None:
                    return loc
        return self.locations.resolve(region)

    def _water(self, loc: Location) -> ElectricityMix:
        zone = _ECOLOGITS_AGGREGATES.get(loc.code.upper())
        if zone is None and loc.country:
            country = self.locations.resolve(loc.country)
            if country is not None:
                zone = next((a.upper() for a in country.aliases if len(a) == 3 and a.isalpha()), None)
        mix = self.mixes.get(zone) if zone else None
        return mix if mix is not None else self.mixes.world()

    def resolve(self, provider_name: str | None, detected_region: str | None) -> ResolvedSite:
        key = ((provider_name or "").strip().lower(), (detected_region or "").strip().lower())
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        site = self._resolve(provider_name, detected_region)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key] = site
        return site

    def _resolve(self, provider_name: str | None, detected_region: str | None) -> ResolvedSite:
        provider = self.providers.find(provider_name)
        loc = self._find_region(detected_region, provider) if detected_region else None
        usual = None
        if loc is None and provider is not None and provider.usual_region:
            usual = self.locations.resolve(provider.usual_region)
        method = calculation_method(loc is not None, usual is not None)
        eff = provider.efficiency if provider is not None else self.providers.generic
        if loc is not None:  # EXACT_REGION
            site_loc = loc
            final_region = (detected_region or loc.code).strip()
            if loc.kind == "cloud" and loc.provider in self.providers.clouds:
                # a named cloud region: that cloud's published PUE/WUE are the most specific figures
                final_provider, eff = self.providers.clouds[loc.provider]
            else:
                final_provider = _provider_label(provider, provider_name)
        elif usual is not None:  # PROVIDER_DEFAULT
            site_loc = usual
            final_region = usual.code
            final_provider = _provider_label(provider, provider_name)
        else:
            site_loc = self._world
            final_region = self._world.code
            final_provider = _provider_label(provider, provider_name)
        water = self._water(site_loc)
        factors = SiteFactors(
            pue_min=eff.pue[0],
            pue_max=eff.pue[1],
            wue_site_min_l_per_kwh=eff.wue_l_per_kwh[0],
            wue_site_max_l_per_kwh=eff.wue_l_per_kwh[1],
            intensity_g_per_kwh=site_loc.intensity_g_per_kwh,
            wue_offsite_l_per_kwh=water.wue_l_per_kwh,
        )
        return ResolvedSite(
            calculation_method=method,
            final_region=final_region,
            final_provider=final_provider,
            location=site_loc,
            factors=factors,
            efficiency_source=eff.source,
            water_zone=water.zone,
            water_world_default=water.world_default_wue or water.zone == _ECOLOGITS_WORLD,
        )


def _provider_label(provider: AIProvider | None, provider_name: str | None) -> str:
    if provider is not None:
        return provider.operator or provider.display
    return (provider_name or "").strip() or "unknown"


__all__ = [
    "CALC_EXACT_REGION",
    "CALC_GLOBAL_AVERAGE",
    "CALC_PROVIDER_DEFAULT",
    "AIProvider",
    "EcoLogitsMixes",
    "Efficiency",
    "ProviderDirectory",
    "ResolvedSite",
    "SiteResolver",
    "load_ecologits_mixes",
    "load_providers",
]
