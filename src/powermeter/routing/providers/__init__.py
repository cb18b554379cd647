"""Grid carbon-intensity providers.

Every provider answers ``current``, ``history`` and ``forecast`` in g CO2e/kWh; every value is an
:class:`IntensityPoint` carrying its signal type (``average`` or ``marginal``), the provider that
produced it, the time it describes and how it was obtained.

- :class:`StaticProvider` (``static``): the annual figure per region from the shared locations
  dataset. Offline, always available, the fallback of every other provider.
- :class:`CsvProvider` (``csv``): replays a user time series ``region,timestamp,intensity`` (e.g. an
  EIA-930 derived series or an Electricity Maps portal export); history from the file, a
  seasonal-naive forecast (same time yesterday) beyond it. Reloads when the file changes.
- Live sources, opt-in by setting, wrapped in :class:`CachedProvider` (TTL cache,
  stale-while-revalidate, coalesced refreshes, exponential backoff, fallback to ``static`` with the
  reason in ``fallback_reason``):
  :class:`GridstatusSource` (ISO fuel mix × pinned factor set; BPA through EIA),
  :class:`WattTimeSource` (v3 API, marginal ``co2_moer`` or average ``co2_aoer``),
  :class:`ElectricityMapsSource` (``carbon-intensity/latest|past-range|forecast``).

Live sources talk HTTP through ``httpx.AsyncClient``; tests pass a transport that serves recorded
responses from ``tests/fixtures/grid/`` (no test touches the network).
"""

from powermeter.routing.providers.base import (
    PROVIDER_NAMES,
    IntensityPoint,
    IntensityProvider,
    ProviderError,
    ProviderUnavailable,
    RegionNotCovered,
    Signal,
    parse_time,
    utc,
)
from powermeter.routing.providers.cache import CachedProvider, LiveSource, WithFallback
from powermeter.routing.providers.csv import CsvProvider
from powermeter.routing.providers.electricitymaps import ElectricityMapsSource
from powermeter.routing.providers.factory import ProviderConfig, build_provider, close_provider
from powermeter.routing.providers.gridstatus import (
    GridstatusSource,
    MixFetcher,
    MixRows,
    frame_records_to_rows,
    gridstatus_fetcher,
)
from powermeter.routing.providers.static import StaticProvider
from powermeter.routing.providers.watttime import WattTimeSource

__all__ = [
    "PROVIDER_NAMES",
    "CachedProvider",
    "CsvProvider",
    "ElectricityMapsSource",
    "GridstatusSource",
    "IntensityPoint",
    "IntensityProvider",
    "LiveSource",
    "MixFetcher",
    "MixRows",
    "ProviderConfig",
    "ProviderError",
    "ProviderUnavailable",
    "RegionNotCovered",
    "Signal",
    "StaticProvider",
    "WattTimeSource",
    "WithFallback",
    "build_provider",
    "close_provider",
    "frame_records_to_rows",
    "gridstatus_fetcher",
    "parse_time",
    "utc",
]
