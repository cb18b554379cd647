"""Routing service: ``POST /route``, the grid endpoints and the Carbon Aware SDK subset.

One :class:`RoutingService` per app, built from the settings by the composition root
(``powermeter.composition``): the grid provider (``POWERMETER_GRID_PROVIDER``), the locations dataset and the grid
reference data. ``/route`` never waits on the network: it reads :meth:`current_nowait`, which for
live providers is the cached value refreshed by the background task :func:`keep_warm`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from powermeter.accounts import repository as account_repo
from powermeter.accounts.service import Principal, month_period
from powermeter.data.grid import GridData, load_grid_data
from powermeter.data.locations import Location, LocationIndex, load_locations
from powermeter.infra.clock import Clock, utc_iso
from powermeter.infra.db import Database
from powermeter.infra.db.unit_of_work import defer
from powermeter.infra.errors import BadRequest, Forbidden, RateLimited, Unprocessable
from powermeter.methodology.grid import rolling_window_means
from powermeter.methodology.routing import DEFAULT_MARGIN, Candidate, Policy, decide, payload_gb, request_footprint
from powermeter.routing import repository
from powermeter.routing.providers import (
    CachedProvider,
    IntensityPoint,
    IntensityProvider,
    ProviderConfig,
    StaticProvider,
    build_provider,
    close_provider,
)
from powermeter.routing.schemas import RouteIn
from powermeter.settings import Plan

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

log = logging.getLogger(__name__)

GRID_REGIONS = ("CAISO", "BPA", "ERCOT", "PJM", "MISO", "NYISO", "ISONE", "SPP")
"""The US ISO/RTO grid regions: CAISO (seed 002's first region) and the 'beta regions'."""
ROUTE_METRIC = "route_calls"
PLAN_REGION_TEXT = {
    "caiso": "California ISO (CAISO and cloud regions on the CAISO grid)",
    "beta": "CAISO + beta regions (the US ISOs: CAISO, BPA, ERCOT, PJM, MISO, NYISO, ISONE, SPP, and cloud "
    "regions on them)",
    "global": "every region",
}


@dataclass(frozen=True, slots=True)
class RouteResult:
    body: dict[str, Any]
    headers: dict[str, str]


def _round(x: float, digits: int) -> float:
    return float(round(x, digits))


def whole_g_per_kwh(x: float) -> int:
    """An intensity as the seed's integer g/kWh, rounded half up (263.5 → 264)."""
    return math.floor(x + 0.5)


def point_out(p: IntensityPoint) -> dict[str, Any]:
    return {
        "region": p.region,
        "intensity_g_per_kwh": _round(p.intensity_g_per_kwh, 3),
        "signal_type": p.signal,
        "provider": p.provider,
        "timestamp": utc_iso(p.timestamp),
        "duration_s": p.duration.total_seconds(),
        "is_forecast": p.is_forecast,
        "is_estimated": p.is_estimated,
        "detail": p.detail,
        "fallback_reason": p.fallback_reason,
    }


def timespan(d: timedelta) -> str:
    """.NET ``TimeSpan`` text as System.Text.Json writes it: ``[d.]hh:mm:ss``."""
    total = int(d.total_seconds())
    days, rest = divmod(total, 86_400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    core = f"{h:02d}:{m:02d}:{s:02d}"
    return f"{days}.{core}" if days else core


def iso_offset(dt: datetime) -> str:
    """``2026-11-22T12:00:00+00:00`` (DateTimeOffset as the Carbon Aware SDK serialises it)."""
    return dt.astimezone(UTC).isoformat(timespec="seconds")


class RouteCallCounter:
    """Monthly ``/route`` call counts with group commit.

    ``/route`` is a hot, read-mostly path; with SQLite at ``synchronous=FULL`` a counter upsert per
    call would put one fsync on every request. Instead each process checks the plan's limit
    against ``stored + pending`` and adds to ``pending``; :meth:`flush` writes all pending counts in
    one transaction (every ``flush_interval_s`` from the background task, and at shutdown).
    Trade-offs, documented in docs/methodology.md: a crash loses at most one interval of counts (in
    the caller's favour), and with several workers the limit can be overshot by what the other
    workers counted since their last flush.
    """

    def __init__(self, metric: str = "route_calls", flush_interval_s: float = 0.2) -> None:
        self.metric = metric
        self.flush_interval_s = flush_interval_s
        self._lock = threading.Lock()
        self._stored: dict[tuple[str, str], int] = {}
        self._pending: dict[tuple[str, str], int] = {}

    def has_pending(self) -> bool:
        return bool(self._pending)

    def count(self, conn: Connection, principal: Principal, limit: int | None, now: datetime) -> int:
        """Count one call (raises 429 ``MONTHLY_QUOTA_EXCEEDED`` over the limit; not counted then)."""
        key = (principal.account_id, month_period(now))
        stored = self._stored.get(key)
        if stored is None:
            stored = account_repo.get_usage(conn, key[0], self.metric, key[1])
        with self._lock:
            self._stored.setdefault(key, stored)
            used = self._stored[key] + self._pending.get(key, 0) + 1
            if limit is not None and used > limit:
                nxt = (now.replace(day=28) + timedelta(days=4)).replace(
                    day=1, hour=0, minute=0, second=0, microsecond=0
                )
                raise RateLimited(
                    f"monthly limit of {limit} route calls reached for plan {principal.plan.name}; "
                    f"resets on {nxt.date()}",
                    retry_after=max(1, int((nxt - now).total_seconds())),
                    code="MONTHLY_QUOTA_EXCEEDED",
                )
            self._pending[key] = self._pending.get(key, 0) + 1
        return used

    def flush_into(self, conn: Connection) -> int:
        """Write the pending counts with ``conn`` (inside the caller's transaction); returns how many
        calls were written. On failure the counts go back to pending for the next flush."""
        with self._lock:
            pending, self._pending = self._pending, {}
        if not pending:
            return 0
        try:
            stored = {key: account_repo.add_usage(conn, key[0], self.metric, key[1], n) for key, n in pending.items()}
        except BaseException:
            self._restore(pending)
            raise
        with self._lock:
            self._stored.update(stored)
            if len(self._stored) > 100_000:  # past months are done: forget them
                self._stored = {k: v for k, v in self._stored.items() if k in self._pending or k in stored}
        return sum(pending.values())

    def _restore(self, pending: dict[tuple[str, str], int]) -> None:
        with self._lock:
            for key, n in pending.items():
                self._pending[key] = self._pending.get(key, 0) + n

    def flush(self, db: Any) -> int:
        """Write the pending counts in a transaction of their own (shutdown, tests)."""
        with db.begin() as conn:
            return self.flush_into(conn)


class RoutingService:
    def __init__(
        self,
        provider: IntensityProvider,
        *,
        locations: LocationIndex | None = None,
        grid: GridData | None = None,
        margin: float = DEFAULT_MARGIN,
    ) -> None:
        self.provider = provider
        self.locations = locations or load_locations()
        self.static = StaticProvider(self.locations)
        self.grid = grid or load_grid_data()
        self.margin = margin
        self.data_version = f"locations {self.locations.version}; grid {self.grid.version}"
        self.calls = RouteCallCounter(ROUTE_METRIC)

    @classmethod
    def from_settings(cls, settings: Any) -> RoutingService:
        config = ProviderConfig.from_settings(settings)
        locations = load_locations()
        return cls(build_provider(config, locations=locations), locations=locations)

    # ------------------------------------------------------------------ regions and plans

    def resolve(self, code: str, field: str) -> Location:
        loc = self.locations.resolve(code)
        if loc is None:
            site_code = self.grid.resolve_site_code(code)
            loc = self.locations.resolve(site_code) if site_code else None
        if loc is None:
            raise BadRequest(
                f"{field}: unknown region {code!r}; GET /v1/grid/regions lists the known ones",
                code="UNKNOWN_REGION",
            )
        return loc

    @staticmethod
    def grid_of(loc: Location) -> str | None:
        return loc.code if loc.kind == "grid" else loc.grid_region

    def allowed(self, plan: Plan, loc: Location) -> bool:
        if plan.route_regions == "global":
            return True
        g = self.grid_of(loc)
        if plan.route_regions == "caiso":
            return g == "CAISO"
        return g in GRID_REGIONS

    @staticmethod
    def default_candidates(plan: Plan) -> list[str]:
        return ["CAISO"] if plan.route_regions == "caiso" else list(GRID_REGIONS)

    # ------------------------------------------------------------------ intensities

    def points_nowait(self, codes: Sequence[str], now: datetime) -> dict[str, IntensityPoint]:
        """Current points for ``codes``; if they would mix providers or signals, ``static`` for all
        (one decision compares like with like)."""
        points = {c: self.provider.current_nowait(c, now) for c in codes}
        if len({(p.provider, p.signal) for p in points.values()}) > 1:
            mixed = ", ".join(sorted({f"{p.region}: {p.provider}/{p.signal}" for p in points.values()}))
            points = {
                c: _with_reason(self.static.current_nowait(c, now), f"candidates mixed data sources ({mixed})")
                for c in codes
            }
        return points

    # ------------------------------------------------------------------ POST /route

    def route(self, conn: Connection, principal: Principal, req: RouteIn, now: datetime) -> RouteResult:
        plan = principal.plan
        self.calls.count(conn, principal, plan.route_monthly_calls, now)

        src = self.resolve(req.source_region, "source_region")
        codes: list[str] = []
        raw = req.candidates if req.candidates is not None else self.default_candidates(plan)
        for i, c in enumerate(raw):
            loc = self.resolve(c, f"candidates[{i}]")
            if not self.allowed(plan, loc):
                raise Forbidden(
                    f"candidates[{i}]: region {loc.code} is not included in the {plan.name} plan, which covers "
                    f"{PLAN_REGION_TEXT[plan.route_regions]}",
                    code="REGION_NOT_IN_PLAN",
                )
            if loc.code not in codes:
                codes.append(loc.code)

        points = self.points_nowait([*codes, src.code] if src.code not in codes else codes, now)
        src_point = points.pop(src.code) if src.code not in codes else points[src.code]
        latency = self.grid.latency
        candidates = [Candidate(c, points[c].intensity_g_per_kwh, latency.rtt_ms(src.code, c), True) for c in codes]
        policy = Policy(carbon_weight=req.carbon_weight, max_latency_ms=req.max_latency_ms, margin=self.margin)
        context = _context_key(src.code, codes, req.max_latency_ms, req.carbon_weight)
        current = repository.get_choice(conn, principal.account_id, context)
        decision = decide(candidates, policy, current)
        if decision.chosen is None:
            near = min(((c.rtt_ms, c.region) for c in candidates if c.rtt_ms is not None), default=None)
            hint = f"; the nearest candidate is {near[1]} at {near[0]:.0f} ms" if near else ""
            raise Unprocessable(
                f"no candidate region is within max_latency_ms={req.max_latency_ms:g} of {src.code}{hint}",
                code="NO_ELIGIBLE_REGION",
            )
        chosen = decision.chosen
        if chosen.region != current:
            account_id, region, existed = principal.account_id, chosen.region, current is not None

            def remember(c: Connection) -> None:
                repository.set_choice(c, account_id, context, region, now, existed=existed)

            # In a PostgreSQL lane the choice row is written just before the batch's COMMIT, in the global
            # order of hot rows (infra/db/unit_of_work.py): two lanes updating two contexts of one account
            # mid-request would otherwise wait on each other (a deadlock, answered 503). Requests of the
            # same open batch then read the committed choice, not each other's (at most one batch, ≤ 20 ms).
            if not defer(conn, ("2route", account_id, context), remember):
                remember(conn)

        cp = points[chosen.region]
        # Seed 002 reports intensities as integers; the integer shown is the one the emissions use,
        # so a client can recompute total_emissions_g from the response (precise value alongside).
        dest_ci = whole_g_per_kwh(cp.intensity_g_per_kwh)
        fp = request_footprint(
            payload_gb(req.payload_size, req.payload_unit),
            self.grid.request_energy,
            dest_ci,
            whole_g_per_kwh(src_point.intensity_g_per_kwh) if src_point.provider == cp.provider else None,
        )
        body = {
            "chosen_region": chosen.region,
            "co2_g_per_kwh": dest_ci,
            "co2_g_per_kwh_precise": _round(cp.intensity_g_per_kwh, 3),
            "total_emissions_g": _round(fp.emissions_g, 6),
            "alternatives": [
                {
                    "region": r.region,
                    "co2_g_per_kwh": whole_g_per_kwh(r.intensity_g_per_kwh),
                    "co2_g_per_kwh_precise": _round(r.intensity_g_per_kwh, 3),
                }
                for r in decision.ranked
            ],
            "provider": cp.provider,
            "signal_type": cp.signal,
            "data_timestamp": utc_iso(cp.timestamp),
        }
        headers = {
            "X-Grid-Data-Version": self.data_version,
            "X-Energy-Kwh": f"{fp.energy_kwh:.6g}",
        }
        if cp.fallback_reason:
            headers["X-Carbon-Fallback"] = _header_safe(cp.fallback_reason)
        if decision.kept_current and decision.best is not None:
            headers["X-Carbon-Kept-Current"] = f"best={decision.best.region}; margin={self.margin:g}"
        return RouteResult(body, headers)

    # ------------------------------------------------------------------ /v1/grid

    def regions(self, plan: Plan, kind: str | None) -> dict[str, Any]:
        out = []
        for loc in self.locations.all():
            if kind is not None and loc.kind != kind:
                continue
            site = self.grid.site(loc.code)
            out.append(
                {
                    "code": loc.code,
                    "name": loc.name,
                    "kind": loc.kind,
                    "country": loc.country,
                    "grid_region": loc.grid_region,
                    "cloud_provider": loc.provider,
                    "annual_intensity_g_per_kwh": loc.intensity_g_per_kwh,
                    "annual_year": loc.year,
                    "annual_source": loc.source,
                    "site": None
                    if site is None
                    else {"name": site.site, "latitude": site.latitude, "longitude": site.longitude},
                    "available_on_plan": self.allowed(plan, loc),
                }
            )
        return {
            "regions": out,
            "total": len(out),
            "provider": self.provider.name,
            "signal_type": self.provider.signal,
            "dataset_version": self.data_version,
        }

    async def intensity(
        self,
        code: str,
        now: datetime,
        start: datetime | None = None,
        end: datetime | None = None,
        horizon_hours: float | None = None,
    ) -> dict[str, Any]:
        loc = self.resolve(code, "region")
        data: dict[str, Any] = {"current": point_out(await self.provider.current(loc.code, now))}
        if start is not None or end is not None:
            s = start or (now - timedelta(hours=24))
            e = end or now
            if e <= s:
                raise BadRequest("end must be after start", code="INVALID_TIME_RANGE")
            if e - s > timedelta(days=31):
                raise BadRequest("history is limited to 31 days per request", code="INVALID_TIME_RANGE")
            data["history"] = [point_out(p) for p in await self.provider.history(loc.code, s, e)]
        if horizon_hours is not None:
            fc = await self.provider.forecast(loc.code, now, timedelta(hours=horizon_hours))
            data["forecast"] = [point_out(p) for p in fc]
        return data

    # ------------------------------------------------------------------ Carbon Aware SDK

    async def casdk_emissions(
        self, names: Sequence[str], now: datetime, time: datetime | None, to_time: datetime | None
    ) -> list[dict[str, Any]]:
        """``/emissions/bylocation(s)``: the points of each location overlapping ``[time, toTime]``
        (``time`` defaults to now, ``toTime`` to ``time``)."""
        locs = [(n, self.resolve(n, "location")) for n in names]
        start = time or now
        end = to_time or start
        if end < start:
            raise BadRequest("toTime must not be before time", code="INVALID_TIME_RANGE")
        out: list[dict[str, Any]] = []

        async def one(name: str, loc: Location) -> list[dict[str, Any]]:
            if time is None and to_time is None:
                points = [await self.provider.current(loc.code, now)]
            else:
                points = await self.provider.history(loc.code, start, max(end, start + timedelta(milliseconds=1)))
            return [
                {
                    "location": name,
                    "time": iso_offset(p.timestamp),
                    "rating": p.intensity_g_per_kwh,
                    "duration": timespan(p.duration),
                }
                for p in points
            ]

        for rows in await asyncio.gather(*(one(n, loc) for n, loc in locs)):
            out.extend(rows)
        return out

    @staticmethod
    def best(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """CASDK's ``GetOptimalEmissions``: the minimum rating, every tie kept."""
        if not rows:
            return []
        low = min(r["rating"] for r in rows)
        return [r for r in rows if r["rating"] == low]

    async def casdk_forecasts(
        self,
        names: Sequence[str],
        now: datetime,
        data_start: datetime | None,
        data_end: datetime | None,
        window_minutes: int | None,
    ) -> list[dict[str, Any]]:
        locs = [(n, self.resolve(n, "location")) for n in names]
        horizon_end = data_end or (now + timedelta(hours=24))
        horizon = max(horizon_end - now, timedelta(hours=1))
        if window_minutes is not None and window_minutes < 0:
            raise BadRequest("windowSize must not be negative", code="INVALID_WINDOW")

        async def one(name: str, loc: Location) -> dict[str, Any]:
            points = await self.provider.forecast(loc.code, now, horizon)
            if data_start is not None:
                points = [p for p in points if p.timestamp + p.duration > data_start]
            if data_end is not None:
                points = [p for p in points if p.timestamp <= data_end]
            step_s = points[0].duration.total_seconds() if points else 0.0
            window_s = window_minutes * 60.0 if window_minutes else step_s
            pairs = [(p.timestamp.timestamp(), p.intensity_g_per_kwh) for p in points]
            means = rolling_window_means(pairs, step_s, window_s) if pairs else []
            dur_min = int(step_s // 60)

            def dto(t: float, v: float) -> dict[str, Any]:
                return {
                    "location": name,
                    "timestamp": iso_offset(datetime.fromtimestamp(t, UTC)),
                    "duration": int(window_s // 60) if window_minutes else dur_min,
                    "value": _round(v, 3),
                }

            low = min((v for _, v in means), default=math.nan)
            return {
                "generatedAt": iso_offset(now),
                "requestedAt": iso_offset(now),
                "location": name,
                "dataStartAt": iso_offset(data_start or (points[0].timestamp if points else now)),
                "dataEndAt": iso_offset(data_end or (points[-1].timestamp if points else now)),
                "windowSize": int(window_s // 60),
                "optimalDataPoints": [dto(t, v) for t, v in means if v == low],
                "forecastData": [dto(t, v) for t, v in means],
            }

        return list(await asyncio.gather(*(one(n, loc) for n, loc in locs)))

    async def casdk_average(self, name: str, start: datetime, end: datetime) -> dict[str, Any]:
        from powermeter.methodology.grid import time_weighted_mean

        loc = self.resolve(name, "location")
        if end <= start:
            raise BadRequest("endTime must be after startTime", code="INVALID_TIME_RANGE")
        points = await self.provider.history(loc.code, start, end)
        pairs = [(p.timestamp.timestamp(), p.intensity_g_per_kwh) for p in points]
        step = points[0].duration.total_seconds() if points else 0.0
        try:
            value = time_weighted_mean(pairs, step, start.timestamp(), end.timestamp())
        except ValueError as exc:
            raise BadRequest(f"no data covering the whole period for {name}: {exc}", code="NO_DATA") from exc
        return {
            "location": name,
            "startTime": iso_offset(start),
            "endTime": iso_offset(end),
            "carbonIntensity": _round(value, 3),
        }

    def casdk_locations(self) -> dict[str, dict[str, Any]]:
        return {
            s.region: {"Latitude": s.latitude, "Longitude": s.longitude, "Name": s.region}
            for s in self.grid.sites.values()
        }


def _with_reason(p: IntensityPoint, reason: str) -> IntensityPoint:
    import dataclasses

    return dataclasses.replace(p, fallback_reason=reason)


def _header_safe(text: str) -> str:
    return text.encode("ascii", "replace").decode("ascii").replace("\r", " ").replace("\n", " ")[:300]


def _context_key(src: str, codes: Sequence[str], max_latency_ms: float | None, carbon_weight: float) -> str:
    return _context_key_of(src, tuple(codes), max_latency_ms, carbon_weight)


@functools.lru_cache(maxsize=4096)  # a client asks the same few questions again and again
def _context_key_of(src: str, codes: tuple[str, ...], max_latency_ms: float | None, carbon_weight: float) -> str:
    raw = f"{src}|{','.join(sorted(codes))}|{max_latency_ms}|{carbon_weight}"
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


# ---------------------------------------------------------------------- app wiring


def startup(svc: RoutingService) -> None:
    """Start-up step (on the event loop): bind a live provider's cache to the loop."""
    if isinstance(svc.provider, CachedProvider):
        with contextlib.suppress(RuntimeError):
            svc.provider.bind_loop(asyncio.get_running_loop())


async def flush_route_calls(svc: RoutingService, db: Database) -> None:
    """Background task: write the pending ``/route`` call counts every ``flush_interval_s`` in a unit of
    work of the app's database (so they join its group commit), and once more at shutdown."""
    import anyio

    try:
        while True:
            await asyncio.sleep(svc.calls.flush_interval_s)
            if not svc.calls.has_pending():
                continue
            try:
                async with db.units.unit() as conn:
                    if db.is_sqlite:
                        svc.calls.flush_into(conn)
                    else:
                        await anyio.to_thread.run_sync(svc.calls.flush_into, conn)
            except Exception:
                log.exception("routing: flushing route call counts failed; will retry")
    finally:
        with contextlib.suppress(Exception):
            svc.calls.flush(db)


async def keep_warm(svc: RoutingService, clock: Clock, interval_s: float | None = None) -> None:
    """Background task: refresh the live provider's current values of the grid regions before they
    go stale, so ``/route`` answers from a warm cache."""
    provider = svc.provider
    try:
        if not isinstance(provider, CachedProvider):
            return
        provider.bind_loop(asyncio.get_running_loop())
        every = interval_s or max(5.0, provider.ttl_s / 2)
        while True:
            with contextlib.suppress(Exception):
                await provider.refresh(GRID_REGIONS, clock.now())
            await asyncio.sleep(every)
    finally:
        if isinstance(provider, CachedProvider):
            await close_provider(provider)
