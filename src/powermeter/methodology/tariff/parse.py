"""JSON-shaped input → validated engine types: ``rateConfig``, schedules and the seed's ``device``."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from decimal import Decimal

from powermeter.methodology.tariff.load import Window
from powermeter.methodology.tariff.model import (
    BLOCK_BASES,
    D0,
    DAY_KINDS,
    DAYS_PER_TYPICAL_MONTH,
    HOURS_PER_DAY,
    RATE_CONFIG_KEYS,
    RATE_CONFIG_LABELS,
    BlockTier,
    DeviceUsage,
    PowerState,
    RateSpec,
    TariffInputError,
    TouTier,
)
from powermeter.methodology.tariff.numbers import dec, fmt_hours


def parse_rate_config(raw: Mapping[str, object], field: str = "rateConfig") -> RateSpec:
    """Build a :class:`RateSpec` from a JSON-shaped mapping (the seed's ``rateConfig``).

    Accepted keys: ``flat_rate``, ``currency``, ``tou_tiers`` (``name``, ``start_hour``,
    ``end_hour``, ``rate``, optional ``days``, ``months`` or ``season``), ``seasons``
    (name → list of months), ``fixed_daily_charge`` (or ``fixed_monthly_charge``, converted × 12/365),
    ``block_tiers`` (``up_to_kwh``, ``rate`` or ``adj``), ``block_basis``, ``timezone``,
    ``holidays_as_weekend``.
    """
    if not isinstance(raw, Mapping):
        raise TariffInputError(field, "must be an object")
    for key in raw:
        if key not in RATE_CONFIG_KEYS and key not in RATE_CONFIG_LABELS:
            raise TariffInputError(
                f"{field}.{key}", f"unknown field; known fields: {', '.join(sorted(RATE_CONFIG_KEYS))}"
            )
    currency = raw.get("currency", "USD")
    if not isinstance(currency, str) or not (3 <= len(currency) <= 4) or not currency.isalpha():
        raise TariffInputError(f"{field}.currency", "must be an ISO 4217 code such as 'USD'")
    flat_raw = raw.get("flat_rate")
    flat = None if flat_raw is None else dec(flat_raw, f"{field}.flat_rate")

    seasons: dict[str, frozenset[int]] = {}
    seasons_raw = raw.get("seasons") or {}
    if not isinstance(seasons_raw, Mapping):
        raise TariffInputError(f"{field}.seasons", "must be an object of season name → months")
    for sname, season_months in seasons_raw.items():
        seasons[str(sname)] = _months(season_months, f"{field}.seasons.{sname}")

    tiers_raw = raw.get("tou_tiers") or []
    if not isinstance(tiers_raw, Sequence) or isinstance(tiers_raw, str | bytes):
        raise TariffInputError(f"{field}.tou_tiers", "must be a list")
    tiers: list[TouTier] = []
    for i, t in enumerate(tiers_raw):
        tf = f"{field}.tou_tiers[{i}]"
        if not isinstance(t, Mapping):
            raise TariffInputError(tf, "must be an object")
        for key in ("start_hour", "end_hour", "rate"):
            if t.get(key) is None:
                raise TariffInputError(f"{tf}.{key}", "is required")
        days = t.get("days", "all")
        if days not in DAY_KINDS:
            raise TariffInputError(f"{tf}.days", f"must be one of {', '.join(DAY_KINDS)}")
        months: frozenset[int] | None = None
        if t.get("months") is not None:
            months = _months(t["months"], f"{tf}.months")
        elif t.get("season") is not None:
            sname = str(t["season"])
            if sname not in seasons:
                raise TariffInputError(f"{tf}.season", f"unknown season {sname!r}; define it in seasons")
            months = seasons[sname]
        tiers.append(
            TouTier(
                name=str(t.get("name") or f"tier{i}"),
                start_hour=dec(t["start_hour"], f"{tf}.start_hour"),
                end_hour=dec(t["end_hour"], f"{tf}.end_hour"),
                rate=dec(t["rate"], f"{tf}.rate"),
                days=str(days),
                months=months,
            )
        )

    fixed = D0
    if raw.get("fixed_daily_charge") is not None:
        fixed = dec(raw["fixed_daily_charge"], f"{field}.fixed_daily_charge")
    elif raw.get("fixed_monthly_charge") is not None:
        fixed = dec(raw["fixed_monthly_charge"], f"{field}.fixed_monthly_charge") / DAYS_PER_TYPICAL_MONTH

    blocks_raw = raw.get("block_tiers") or []
    if not isinstance(blocks_raw, Sequence) or isinstance(blocks_raw, str | bytes):
        raise TariffInputError(f"{field}.block_tiers", "must be a list")
    blocks: list[BlockTier] = []
    for i, b in enumerate(blocks_raw):
        bf = f"{field}.block_tiers[{i}]"
        if not isinstance(b, Mapping):
            raise TariffInputError(bf, "must be an object")
        up = b.get("up_to_kwh")
        rate_b = b.get("rate")
        blocks.append(
            BlockTier(
                up_to_kwh=None if up is None else dec(up, f"{bf}.up_to_kwh"),
                rate=None if rate_b is None else dec(rate_b, f"{bf}.rate"),
                adj=dec(b.get("adj", 0), f"{bf}.adj"),
            )
        )
    basis = raw.get("block_basis", "month")
    if basis not in BLOCK_BASES:
        raise TariffInputError(f"{field}.block_basis", "must be 'month' or 'day'")
    tz = raw.get("timezone")
    if tz is not None and not isinstance(tz, str):
        raise TariffInputError(f"{field}.timezone", "must be an IANA time zone name")
    return RateSpec(
        currency=currency.upper(),
        flat_rate=flat,
        tou_tiers=tuple(tiers),
        fixed_daily_charge=fixed,
        block_tiers=tuple(blocks),
        block_basis=str(basis),
        timezone=tz,
        holidays_as_weekend=bool(raw.get("holidays_as_weekend", False)),
    )


def _months(value: object, field: str) -> frozenset[int]:
    if not isinstance(value, Sequence) or isinstance(value, str | bytes) or not value:
        raise TariffInputError(field, "must be a non-empty list of months 1–12")
    out: set[int] = set()
    for m in value:
        if isinstance(m, bool) or not isinstance(m, int) or not 1 <= m <= 12:
            raise TariffInputError(field, f"months must be integers 1–12, got {m!r}")
        out.add(m)
    return frozenset(out)


def parse_schedule(raw: object, field: str) -> tuple[tuple[Decimal, Decimal], ...]:
    """Validate ``[[start_hour, end_hour], …]``; windows may run past midnight but may not overlap."""
    if not isinstance(raw, Sequence) or isinstance(raw, str | bytes) or not raw:
        raise TariffInputError(field, "must be a non-empty list of [start_hour, end_hour] pairs")
    out: list[tuple[Decimal, Decimal]] = []
    for i, w in enumerate(raw):
        wf = f"{field}[{i}]"
        if not isinstance(w, Sequence) or isinstance(w, str | bytes) or len(w) != 2:
            raise TariffInputError(wf, "must be a [start_hour, end_hour] pair")
        out.append((dec(w[0], f"{wf}[0]"), dec(w[1], f"{wf}[1]")))
    return check_schedule(out, field)


def check_schedule(windows: Sequence[tuple[Decimal, Decimal]], field: str) -> tuple[tuple[Decimal, Decimal], ...]:
    """The rules between a schedule's hours (numbers already parsed): each window starts in [0, 24) and ends
    after its start, at most 24 h later; windows may run past midnight but may not overlap."""
    if not windows:
        raise TariffInputError(field, "must be a non-empty list of [start_hour, end_hour] pairs")
    for i, (s, e) in enumerate(windows):
        if not D0 <= s < HOURS_PER_DAY:
            raise TariffInputError(f"{field}[{i}][0]", f"start_hour must be in [0, 24), got {s}")
        if not s < e <= s + HOURS_PER_DAY:
            raise TariffInputError(
                f"{field}[{i}][1]",
                f"end_hour must be greater than start_hour and at most start_hour + 24 "
                f"(got [{s}, {e}]; use [22, 30] for 22:00–06:00)",
            )
    if len(windows) > 1:  # one window cannot overlap itself, even past midnight
        pieces: list[tuple[Decimal, Decimal, int]] = []
        for i, (s, e) in enumerate(windows):
            for a, b in Window(s, e, D0).pieces():
                pieces.append((a, b, i))
        pieces.sort()
        for (_a0, b0, i0), (a1, _b1, i1) in itertools.pairwise(pieces):
            if a1 < b0:
                first, second = sorted((i0, i1))
                raise TariffInputError(
                    field,
                    f"windows {first} and {second} overlap between {fmt_hours(a1)} and {fmt_hours(min(b0, _b1))}",
                )
    return tuple((s, e) for s, e in windows)


def parse_device(raw: Mapping[str, object], field: str = "device") -> DeviceUsage:
    """Validate the seed's ``device`` object."""
    if not isinstance(raw, Mapping):
        raise TariffInputError(field, "must be an object")

    def opt(key: str) -> Decimal | None:
        v = raw.get(key)
        return None if v is None else dec(v, f"{field}.{key}")

    schedule = None
    if raw.get("schedule") is not None:
        schedule = parse_schedule(raw["schedule"], f"{field}.schedule")
    states: list[PowerState] = []
    states_raw = raw.get("power_states")
    if states_raw is not None:
        if not isinstance(states_raw, Sequence) or isinstance(states_raw, str | bytes) or not states_raw:
            raise TariffInputError(f"{field}.power_states", "must be a non-empty list of {watts, hours_per_day}")
        for i, s in enumerate(states_raw):
            sf = f"{field}.power_states[{i}]"
            if not isinstance(s, Mapping):
                raise TariffInputError(sf, "must be an object with watts and hours_per_day")
            for key in ("watts", "hours_per_day"):
                if s.get(key) is None:
                    raise TariffInputError(f"{sf}.{key}", "is required")
            w = dec(s["watts"], f"{sf}.watts")
            h = dec(s["hours_per_day"], f"{sf}.hours_per_day")
            sched = None
            if s.get("schedule") is not None:
                sched = parse_schedule(s["schedule"], f"{sf}.schedule")
            states.append(PowerState(str(s.get("name") or f"state{i}"), w, h, sched))
    return device_usage(
        watts=opt("watts"),
        hours_per_day=opt("hours_per_day"),
        schedule=schedule,
        kwh_per_use=opt("kwh_per_use"),
        uses_per_week=opt("uses_per_week"),
        power_states=tuple(states),
        shiftable=bool(raw.get("shiftable", False)),
        field=field,
    )


def device_usage(
    *,
    watts: Decimal | None = None,
    hours_per_day: Decimal | None = None,
    schedule: tuple[tuple[Decimal, Decimal], ...] | None = None,
    kwh_per_use: Decimal | None = None,
    uses_per_week: Decimal | None = None,
    power_states: tuple[PowerState, ...] = (),
    shiftable: bool = False,
    field: str = "device",
) -> DeviceUsage:
    """A :class:`DeviceUsage` from parsed numbers (schedules already checked by :func:`check_schedule`), after
    the device's own rules: no negative power or energy, 0–24 hours a day, power states adding up to ≤ 24 h."""
    total_h = D0
    for i, s in enumerate(power_states):
        if s.watts < 0:
            raise TariffInputError(f"{field}.power_states[{i}].watts", "must be ≥ 0")
        if not D0 <= s.hours_per_day <= HOURS_PER_DAY:
            raise TariffInputError(f"{field}.power_states[{i}].hours_per_day", "must be in [0, 24]")
        total_h += s.hours_per_day
    if total_h > HOURS_PER_DAY:
        raise TariffInputError(
            f"{field}.power_states", f"hours_per_day of all states add up to {total_h} h, more than 24"
        )
    _at_least_0(watts, field, "watts")
    _at_least_0(hours_per_day, field, "hours_per_day")
    if hours_per_day is not None and hours_per_day > HOURS_PER_DAY:
        raise TariffInputError(f"{field}.hours_per_day", f"must be ≤ {HOURS_PER_DAY}, got {hours_per_day}")
    _at_least_0(kwh_per_use, field, "kwh_per_use")
    _at_least_0(uses_per_week, field, "uses_per_week")
    return DeviceUsage(
        watts=watts,
        hours_per_day=hours_per_day,
        schedule=schedule,
        kwh_per_use=kwh_per_use,
        uses_per_week=uses_per_week,
        power_states=power_states,
        shiftable=shiftable,
    )


def _at_least_0(value: Decimal | None, field: str, key: str) -> None:
    if value is not None and value < D0:
        raise TariffInputError(f"{field}.{key}", f"must be ≥ {D0}, got {value}")
