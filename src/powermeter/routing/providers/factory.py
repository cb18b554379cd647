"""Build the provider a setting asks for; anything live is wrapped in the cache + ``static`` fallback."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httpx

from powermeter.data.locations import LocationIndex
from powermeter.routing.providers.base import PROVIDER_NAMES, IntensityProvider
from powermeter.routing.providers.cache import CachedProvider, LiveSource, WithFallback
from powermeter.routing.providers.csv import CsvProvider
from powermeter.routing.providers.electricitymaps import ElectricityMapsSource
from powermeter.routing.providers.gridstatus import GridstatusSource, MixFetcher
from powermeter.routing.providers.static import StaticProvider
from powermeter.routing.providers.watttime import WattTimeSource


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    kind: str = "static"
    csv_path: Path | None = None
    watttime_username: str | None = None
    watttime_password: str | None = None
    watttime_signal: Literal["co2_moer", "co2_aoer"] = "co2_moer"
    electricitymaps_token: str | None = None
    eia_api_key: str | None = None
    pjm_api_key: str | None = None

    @classmethod
    def from_settings(cls, settings: Any) -> ProviderConfig:
        """Read the ``POWERMETER_GRID_*`` / provider credential settings (missing ones = None)."""
        csv_path = getattr(settings, "grid_csv_path", None)
        return cls(
            kind=str(getattr(settings, "grid_provider", "static") or "static").lower(),
            csv_path=Path(csv_path) if csv_path else None,
            watttime_username=getattr(settings, "watttime_username", None),
            watttime_password=getattr(settings, "watttime_password", None),
            electricitymaps_token=getattr(settings, "electricitymaps_token", None),
            eia_api_key=getattr(settings, "eia_api_key", None),
            pjm_api_key=getattr(settings, "pjm_api_key", None) or os.environ.get("PJM_API_KEY"),
        )


def build_provider(
    config: ProviderConfig,
    *,
    locations: LocationIndex | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    mix_fetcher: MixFetcher | None = None,
) -> IntensityProvider:
    """The provider a setting asks for; anything live is wrapped in cache + ``static`` fallback."""
    static = StaticProvider(locations)
    kind = config.kind
    if kind == "static":
        return static
    if kind == "csv":
        if config.csv_path is None:
            raise ValueError("grid provider 'csv' needs a CSV path (POWERMETER_GRID_CSV_PATH)")
        return WithFallback(CsvProvider(config.csv_path, locations=static.locations), static)
    source: LiveSource
    if kind == "gridstatus":
        source = GridstatusSource(
            mix_fetcher, eia_api_key=config.eia_api_key, pjm_api_key=config.pjm_api_key, locations=static.locations
        )
    elif kind == "watttime":
        if not (config.watttime_username and config.watttime_password):
            raise ValueError("grid provider 'watttime' needs POWERMETER_WATTTIME_USERNAME and _PASSWORD")
        source = WattTimeSource(
            config.watttime_username,
            config.watttime_password,
            signal_type=config.watttime_signal,
            transport=transport,
            locations=static.locations,
        )
    elif kind == "electricitymaps":
        if not config.electricitymaps_token:
            raise ValueError("grid provider 'electricitymaps' needs POWERMETER_ELECTRICITYMAPS_TOKEN")
        source = ElectricityMapsSource(config.electricitymaps_token, transport=transport, locations=static.locations)
    else:
        raise ValueError(f"unknown grid provider {kind!r}; choose one of {', '.join(PROVIDER_NAMES)}")
    return CachedProvider(source, static)


async def close_provider(provider: IntensityProvider) -> None:
    aclose = getattr(provider, "aclose", None)
    if aclose is not None:
        with contextlib.suppress(Exception):
            await aclose()
