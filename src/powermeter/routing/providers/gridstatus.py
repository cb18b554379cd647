"""``gridstatus``: live ISO fuel mix (via the optional gridstatus package) × the pinned factor set."""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from powermeter.data.grid import GridData, load_grid_data
from powermeter.data.locations import LocationIndex, load_locations
from powermeter.methodology.grid import (
    Series,
    intensity_from_fuel_mix,
    seasonal_naive_forecast,
)
from powermeter.routing.providers.base import (
    IntensityPoint,
    ProviderUnavailable,
    RegionNotCovered,
    Signal,
    grid_target,
    parse_time,
    utc,
)

MixRows = list[tuple[datetime, dict[str, float]]]
MixFetcher = Callable[[str, "str | tuple[datetime, datetime]"], Awaitable[MixRows]]


def frame_records_to_rows(records: Sequence[Mapping[str, Any]], respondent: str | None = None) -> MixRows:
    """gridstatus fuel-mix records (``DataFrame.to_dict("records")``) → (time, {fuel: MW}) rows."""
    rows: MixRows = []
    for rec in records:
        if respondent is not None and str(rec.get("Respondent", respondent)) != respondent:
            continue
        raw_t = rec.get("Interval Start", rec.get("Time"))
        if raw_t is None:
            continue
        ts = utc(raw_t) if isinstance(raw_t, datetime) else parse_time(str(raw_t))
        mix: dict[str, float] = {}
        for k, v in rec.items():
            if k in ("Interval Start", "Interval End", "Time", "Respondent", "Respondent Name"):
                continue
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                mix[k] = float(v)
        rows.append((ts, mix))
    rows.sort(key=lambda r: r[0])
    return rows


def gridstatus_fetcher(eia_api_key: str | None = None, pjm_api_key: str | None = None) -> MixFetcher:
    """Fetch fuel mixes with the optional ``gridstatus`` package (``pip install gridstatus``).

    ISO classes: ``get_fuel_mix("latest")`` or ``get_fuel_mix(start=, end=)``; ``EIA:<BA>`` targets
    use ``EIA.get_dataset("electricity/rto/fuel-type-data", ...)`` filtered to the balancing
    authority. Runs the blocking client in a worker thread.
    """

    async def fetch(target: str, when: str | tuple[datetime, datetime]) -> MixRows:
        def run() -> MixRows:
            try:
                import gridstatus  # type: ignore[import-not-found,unused-ignore]
            except ImportError as exc:  # pragma: no cover - depends on the optional extra
                raise ProviderUnavailable("the gridstatus package is not installed (pip install gridstatus)") from exc
            if target.startswith("EIA:"):
                if not eia_api_key:
                    raise ProviderUnavailable("EIA data need POWERMETER_EIA_API_KEY")
                ba = target.split(":", 1)[1]
                if isinstance(when, tuple):
                    start, end = when
                else:
                    end = datetime.now(UTC)
                    start = end - timedelta(hours=6)
                df = gridstatus.EIA(api_key=eia_api_key).get_dataset(
                    "electricity/rto/fuel-type-data", start=start, end=end
                )
                return frame_records_to_rows(df.to_dict("records"), respondent=ba)
            cls = getattr(gridstatus, target)
            iso = cls(api_key=pjm_api_key) if target == "PJM" else cls()
            kwargs = {"date": when[0], "end": when[1]} if isinstance(when, tuple) else {"date": "latest"}
            df = iso.get_fuel_mix(**kwargs)
            return frame_records_to_rows(df.to_dict("records"))

        return await asyncio.to_thread(run)

    return fetch


class GridstatusSource:
    """Live ISO fuel mix (via gridstatus) converted to intensity with the pinned factor set."""

    name = "gridstatus"
    signal: Signal = "average"

    def __init__(
        self,
        fetch: MixFetcher | None = None,
        *,
        factor_set: str = "lifecycle",
        eia_api_key: str | None = None,
        pjm_api_key: str | None = None,
        grid: GridData | None = None,
        locations: LocationIndex | None = None,
    ) -> None:
        self.grid = grid or load_grid_data()
        self.locations = locations or load_locations()
        self.factors = self.grid.factor_sets[factor_set]
        self._factor_values = self.factors.values()
        self.eia_api_key = eia_api_key
        self.pjm_api_key = pjm_api_key
        self._injected = fetch is not None
        self._fetch = fetch or gridstatus_fetcher(eia_api_key, pjm_api_key)

    def _target(self, region: str) -> tuple[str, str]:
        grid_region, _ = grid_target(region, self.locations)
        ids = self.grid.ids(grid_region)
        if ids is None:
            raise RegionNotCovered(f"gridstatus has no data for {region!r}")
        # PJM's API and EIA need keys when gridstatus itself does the fetching.
        if ids.gridstatus_iso and (ids.gridstatus_iso != "PJM" or self.pjm_api_key or self._injected):
            return grid_region, ids.gridstatus_iso
        if ids.eia_ba and (self.eia_api_key or self._injected):
            return grid_region, f"EIA:{ids.eia_ba}"
        raise RegionNotCovered(f"gridstatus needs an API key for {grid_region} (PJM_API_KEY or EIA_API_KEY)")

    def regions(self) -> Sequence[str]:
        out = []
        for ids in self.grid.provider_ids.values():
            iso_ok = ids.gridstatus_iso is not None and (ids.gridstatus_iso != "PJM" or bool(self.pjm_api_key))
            if iso_ok or (ids.eia_ba and self.eia_api_key):
                out.append(ids.region)
        return out

    def _points(self, region: str, target: str, rows: MixRows) -> list[IntensityPoint]:
        if not rows:
            raise ProviderUnavailable(f"gridstatus returned no fuel mix for {target}")
        starts = [t.timestamp() for t, _ in rows]
        gaps = [b - a for a, b in itertools.pairwise(starts) if b > a]
        # One row: CAISO/ERCOT/MISO/NYISO/SPP publish 5-minute mixes, PJM and EIA hourly ones.
        step = min(gaps) if gaps else (3600.0 if target.startswith("EIA:") or target == "PJM" else 300.0)
        out = []
        for t, mix in rows:
            try:
                r = intensity_from_fuel_mix(mix, self._factor_values, self.grid.fuel_aliases)
            except ValueError:
                continue
            detail = f"{target} fuel mix × {self.factors.name} factors (grid data {self.grid.version})"
            if r.unmapped:
                detail += f"; unmapped columns counted as unknown: {', '.join(r.unmapped)}"
            out.append(
                IntensityPoint(region, t, timedelta(seconds=step), r.intensity_g_per_kwh, "average", self.name, detail)
            )
        if not out:
            raise ProviderUnavailable(f"no usable fuel-mix rows for {target}")
        return out

    async def fetch_current(self, region: str, now: datetime) -> IntensityPoint:
        _, target = self._target(region)
        return self._points(region, target, await self._fetch(target, "latest"))[-1]

    async def fetch_history(self, region: str, start: datetime, end: datetime) -> list[IntensityPoint]:
        _, target = self._target(region)
        return self._points(region, target, await self._fetch(target, (utc(start), utc(end))))

    async def fetch_forecast(self, region: str, now: datetime, horizon: timedelta) -> list[IntensityPoint]:
        """ISOs publish no intensity forecast: seasonal-naive from the last 24 h of fuel mix."""
        hist = await self.fetch_history(region, utc(now) - timedelta(days=1), utc(now))
        s = Series.from_points([(p.timestamp, p.intensity_g_per_kwh) for p in hist])
        now_s = utc(now).timestamp()
        steps = max(1, math.ceil(horizon.total_seconds() / s.step_s))
        first = s.starts_s[-1] + s.step_s if s.end_s <= now_s else now_s
        detail = hist[-1].detail + "; seasonal-naive forecast (same time yesterday)"
        return [
            IntensityPoint(
                region,
                datetime.fromtimestamp(t, UTC),
                timedelta(seconds=s.step_s),
                v,
                "average",
                self.name,
                detail,
                is_forecast=True,
                is_estimated=True,
            )
            for t, v in seasonal_naive_forecast(s, first, steps)
        ]

    async def aclose(self) -> None:
        return None
