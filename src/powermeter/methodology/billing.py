"""Interval billing: what a meter's readings cost under a tariff, month by month.

Pure functions (stdlib ``decimal`` and ``zoneinfo`` plus the tariff engine); no I/O, settings or clock.

Method (docs/methodology.md, section "Bills from meter readings"):

* A reading is ``kwh`` measured over ``[start, start + interval)``; ``start`` is an absolute instant.
  It is placed in the tariff's time zone and priced over the *local wall-clock* span it covers:
  ``cost = kwh × ∫ price dh / interval`` (energy assumed uniform inside the interval). Readings on a
  25-hour day (DST ends) and a 23-hour day (DST starts) land on the wall-clock hours they really
  fell in, because the conversion is done per instant, never by counting hours from midnight.
* The weekday/weekend/holiday, season (month) and hour of a reading come from its local date/time.
* The bill is split by local calendar month (``YYYY-MM``). The billing period runs from the local
  date of the first reading to the local date of the last one; each month covers the days of that
  period that fall in it.
* Block (tier) limits reset every billing month: ``month`` limits apply in full to a whole month and
  are prorated by ``covered days / days in month`` for a partial one; ``day`` limits are × covered days.
* Fixed charges: ``fixed_daily_charge`` × covered days; ``fixed_monthly_charge`` × covered days / days
  in month.
* Negative readings are energy exported to the grid, credited at the tariff's ``export_rate``
  (a flat price per kWh); without one the bill is refused (:class:`BillingInputError` naming the field).
  Blocks apply to imported kWh only.
* Money is :class:`~decimal.Decimal`, never rounded here.
"""

from __future__ import annotations

import calendar
import itertools
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from operator import itemgetter
from typing import NamedTuple
from zoneinfo import ZoneInfo

from powermeter.methodology.tariff import D0, CompiledRate, Profile

ALLOWED_INTERVALS_MIN = (5, 10, 15, 30, 60)
INFERRED_INTERVALS_MIN = (5, 10, 15, 30, 60)
MAX_EXAMPLES = 5
EXPORT_PERIOD = "export"
DAYS_PER_YEAR = Decimal(365)


class BillingInputError(ValueError):
    """Readings or rate that cannot be billed; ``field`` names the offending input."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class Reading(NamedTuple):
    """``kwh`` over ``[start, start + interval)``; ``start`` is timezone-aware; ``ref`` numbers its origin
    (the index in a JSON list or the line of a file), named in messages by ``ref_format``."""

    start: datetime
    kwh: Decimal
    ref: int


@dataclass(frozen=True, slots=True)
class BillRate:
    """A compiled tariff plus what only a bill needs."""

    rate: CompiledRate
    export_rate: Decimal | None = None
    fixed_monthly_charge: Decimal = D0
    export_field: str = "rateConfig.export_rate"  # the field to name when an export rate is missing
    label: str = "the rate"


@dataclass(frozen=True, slots=True)
class BillWarning:
    code: str  # gap | overlap | duplicate | export | dst | partial_month
    message: str
    count: int = 0
    examples: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PeriodUse:
    kwh: Decimal
    cost: Decimal


@dataclass(frozen=True, slots=True)
class BlockUse:
    up_to_kwh: Decimal | None  # limit for this billing month (after proration); None = open-ended
    kwh: Decimal
    cost: Decimal


@dataclass(frozen=True, slots=True)
class MonthBill:
    month: str  # YYYY-MM, local time
    start: date
    end: date
    days: int  # billing days of this month covered by the period
    days_in_month: int
    kwh: Decimal  # net = imported − exported
    import_kwh: Decimal
    export_kwh: Decimal
    energy_cost: Decimal  # imports (after blocks) − export credit
    export_credit: Decimal
    fixed_cost: Decimal
    by_period: dict[str, PeriodUse]
    blocks: tuple[BlockUse, ...] = ()

    @property
    def total(self) -> Decimal:
        return self.energy_cost + self.fixed_cost


@dataclass(frozen=True, slots=True)
class Bill:
    currency: str
    timezone: str
    interval_minutes: int
    interval_inferred: bool
    start: date
    end: date
    days: int
    readings: int  # readings billed (after exact duplicates were dropped)
    covered_hours: Decimal  # readings × interval
    months: tuple[MonthBill, ...]
    warnings: tuple[BillWarning, ...] = field(default=())

    @property
    def kwh(self) -> Decimal:
        return sum((m.kwh for m in self.months), D0)

    @property
    def energy_cost(self) -> Decimal:
        return sum((m.energy_cost for m in self.months), D0)

    @property
    def fixed_cost(self) -> Decimal:
        return sum((m.fixed_cost for m in self.months), D0)

    @property
    def total(self) -> Decimal:
        return self.energy_cost + self.fixed_cost

    @property
    def annualized_total(self) -> Decimal:
        """The period's total scaled linearly to 365 days (honest only for a full year of readings)."""
        return self.total * DAYS_PER_YEAR / Decimal(self.days)


# ---------------------------------------------------------------------------------------------
# series checks: order, interval, duplicates, gaps


def _local_label(u: datetime, tz: ZoneInfo) -> str:
    return u.astimezone(tz).isoformat(timespec="minutes")


def infer_interval(starts: Sequence[int]) -> int:
    """The most common spacing (minutes) between consecutive distinct starts (POSIX seconds, sorted);
    one of 5/10/15/30/60."""
    return _interval_from(Counter(b - a for a, b in itertools.pairwise(starts)))


def _interval_from(diffs: Counter[int]) -> int:
    diffs = Counter({d: c for d, c in diffs.items() if d > 0})
    if not diffs:
        raise BillingInputError(
            "interval_minutes", "cannot infer the interval from fewer than two distinct readings; give interval_minutes"
        )
    seconds, _ = max(diffs.items(), key=lambda kv: (kv[1], -kv[0]))
    if seconds % 60 or seconds // 60 not in INFERRED_INTERVALS_MIN:
        raise BillingInputError(
            "interval_minutes",
            f"cannot infer the interval: readings are most often {seconds / 60:g} min apart, expected "
            f"{', '.join(map(str, INFERRED_INTERVALS_MIN))} min; give interval_minutes",
        )
    return seconds // 60


def _prepare(
    readings: Sequence[Reading], tz: ZoneInfo, interval_minutes: int | None, ref_format: str
) -> tuple[list[tuple[int, Reading]], int, bool, list[BillWarning]]:
    if not readings:
        raise BillingInputError("readings", "at least one reading is required")
    stamped = [(int(r.start.timestamp()), r) for r in readings]
    stamped.sort(key=itemgetter(0))
    name = ref_format.format
    unique = stamped
    dupes: list[str] = []
    if any(a[0] == b[0] for a, b in itertools.pairwise(stamped)):  # rare: only then walk them one by one
        unique = [stamped[0]]
        for p in stamped[1:]:
            prev = unique[-1]
            if p[0] == prev[0]:
                r, q = p[1], prev[1]
                if r.kwh != q.kwh:
                    raise BillingInputError(
                        name(r.ref),
                        f"starts at the same instant as {name(q.ref)} ({_local_label(r.start, tz)}) with a "
                        f"different value ({r.kwh} vs {q.kwh} kWh); remove one of them",
                    )
                dupes.append(f"{name(r.ref)} = {name(q.ref)} ({_local_label(r.start, tz)})")
                continue
            unique.append(p)
    diffs = Counter(b[0] - a[0] for a, b in itertools.pairwise(unique))
    inferred = interval_minutes is None
    if interval_minutes is None:
        interval_minutes = _interval_from(diffs)
    elif interval_minutes not in ALLOWED_INTERVALS_MIN:
        raise BillingInputError(
            "interval_minutes", f"must be one of {', '.join(map(str, ALLOWED_INTERVALS_MIN))}, got {interval_minutes}"
        )
    step = interval_minutes * 60
    overlaps: list[str] = []
    gaps: list[str] = []
    missing = 0
    regular = not diffs or (len(diffs) == 1 and step in diffs)  # every spacing is the interval
    for (t0, q), (t1, r) in () if regular else itertools.pairwise(unique):
        d = t1 - t0
        if d == step:
            continue
        if d < step:
            overlaps.append(f"{name(r.ref)} starts {d / 60:g} min after {name(q.ref)}")
        else:
            n = d // step - (0 if d % step else 1)
            missing += n
            gaps.append(
                f"{_local_label(q.start + timedelta(seconds=step), tz)} → {_local_label(r.start, tz)} "
                f"({n} readings missing)"
            )
    warnings: list[BillWarning] = []
    if dupes:
        warnings.append(
            BillWarning(
                "duplicate",
                f"{len(dupes)} exact duplicate reading(s) dropped (same start, same kWh)",
                len(dupes),
                tuple(dupes[:MAX_EXAMPLES]),
            )
        )
    if overlaps:
        warnings.append(
            BillWarning(
                "overlap",
                f"{len(overlaps)} reading(s) overlap the previous one (closer than {interval_minutes} min); all billed",
                len(overlaps),
                tuple(overlaps[:MAX_EXAMPLES]),
            )
        )
    if gaps:
        hours = Decimal(missing * interval_minutes) / 60
        warnings.append(
            BillWarning(
                "gap",
                f"{len(gaps)} gap(s): {missing} reading(s) ({hours:g} h) missing; missing energy is not billed "
                "and fixed charges still apply",
                len(gaps),
                tuple(gaps[:MAX_EXAMPLES]),
            )
        )
    return unique, interval_minutes, inferred, warnings


def _dst_days(start: date, end: date, tz: ZoneInfo) -> list[str]:
    out: list[str] = []
    d = start
    midnight = time()
    u0 = datetime.combine(d, midnight, tz).astimezone(UTC)
    while d <= end:
        nxt = d + timedelta(days=1)
        u1 = datetime.combine(nxt, midnight, tz).astimezone(UTC)
        hours = (u1 - u0).total_seconds() / 3600
        if hours != 24:
            kind = "DST ends" if hours > 24 else "DST starts"
            out.append(f"{d.isoformat()} has {hours:g} hours ({kind})")
        d, u0 = nxt, u1
    return out


# ---------------------------------------------------------------------------------------------
# pricing


_Parts = tuple[tuple[str, Decimal, Decimal], ...]  # (period name, share of kWh, price per kWh)


def _split(profile: Profile, next_profile: Profile, sod: int, dur: int) -> _Parts:
    """Period names, kWh shares and prices of a reading spanning ``dur`` s from second-of-day ``sod``."""
    h0 = Decimal(sod) / 3600
    dur_h = Decimal(dur) / 3600
    h1 = h0 + dur_h
    acc: dict[str, tuple[Decimal, Decimal]] = {}
    spans = [(profile, h0, min(h1, Decimal(24)))]
    if h1 > 24:
        spans.append((next_profile, D0, h1 - 24))
    for prof, a, b in spans:
        for name, (hours, integral) in prof.by_name(a, b).items():
            h_0, i_0 = acc.get(name, (D0, D0))
            acc[name] = (h_0 + hours, i_0 + integral)
    # share of the reading's kWh in each period, and that period's mean price inside the reading
    return tuple((name, hours / dur_h, integral / hours) for name, (hours, integral) in acc.items() if hours > 0)


def _apply_blocks(
    rate: CompiledRate, import_kwh: Decimal, time_cost: Decimal, scale: Decimal
) -> tuple[Decimal, tuple[BlockUse, ...]]:
    """Energy cost of one billing month's imported kWh once its block limits (× ``scale``) apply.

    A block with a ``rate`` replaces the time-based price; one without adds ``adj`` to the month's
    load-weighted time-based price (the tariff engine's convention)."""
    blocks = rate.spec.block_tiers
    if not blocks:
        return time_cost, ()
    mean = time_cost / import_kwh if import_kwh > 0 else (rate.flat_or_average)
    used: list[BlockUse] = []
    cost = D0
    lower = D0
    done = False
    for b in blocks:
        upper = None if b.up_to_kwh is None else b.up_to_kwh * scale
        in_block = D0
        if not done and import_kwh > lower:
            in_block = import_kwh - lower if upper is None else max(D0, min(import_kwh, upper) - lower)
        price = b.rate if b.rate is not None else mean + b.adj
        c = in_block * price
        cost += c
        used.append(BlockUse(upper, in_block, c))
        if upper is None or import_kwh <= upper:
            done = True
        else:
            lower = upper
    return cost, tuple(used)


@dataclass
class _MonthAcc:
    # parts index → kWh; cost = Σ share × price × kWh per part (multiplied once per bucket, not per reading)
    buckets: dict[int, Decimal] = field(default_factory=dict)
    export_kwh: Decimal = D0


_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_DAY = 86400


class _Offsets:
    """UTC offset (s) of a POSIX second in ``tz``: one zone lookup per UTC day when the offset is the same
    at both ends of that day, else per second asked (the few days with a DST change)."""

    def __init__(self, tz: ZoneInfo) -> None:
        self.tz = tz
        self.days: dict[int, int | None] = {}

    def _at(self, ts: int) -> int:
        off = datetime.fromtimestamp(ts, self.tz).utcoffset()
        return int(off.total_seconds()) if off is not None else 0

    def __call__(self, ts: int) -> int:
        day = ts // _DAY
        try:
            off = self.days[day]
        except KeyError:
            a, b = self._at(day * _DAY), self._at(day * _DAY + _DAY - 1)
            off = self.days[day] = a if a == b else None
        return self._at(ts) if off is None else off


def bill_readings(
    rate: BillRate,
    readings: Sequence[Reading],
    tz: ZoneInfo,
    *,
    interval_minutes: int | None = None,
    holidays: frozenset[date] = frozenset(),
    ref_format: str = "readings[{}]",
) -> Bill:
    """Bill ``readings`` under ``rate`` in time zone ``tz`` (see the module docstring for the method).

    ``ref_format`` names a reading in messages from its ``ref`` (``"readings[{}]"`` or ``"line {}"``).
    """
    kept, interval, inferred, warnings = _prepare(readings, tz, interval_minutes, ref_format)
    name = ref_format.format
    dur = interval * 60
    cr = rate.rate
    parts_index: dict[tuple[int, int, int], int] = {}
    parts_list: list[_Parts] = []
    # local day number → (month key, price profile); profiles are shared objects, so id() keys the split cache
    day_cache: dict[int, tuple[tuple[int, int], Profile]] = {}
    months: dict[tuple[int, int], _MonthAcc] = {}
    exports: list[str] = []
    offset = _Offsets(tz)

    def day_info(n: int) -> tuple[tuple[int, int], Profile]:
        info = day_cache.get(n)
        if info is None:
            d = date.fromordinal(_EPOCH_ORDINAL + n)
            info = day_cache[n] = ((d.year, d.month), cr.profile_on(d, holidays))
        return info

    last_month: tuple[int, int] | None = None
    acc = _MonthAcc()
    day_offsets = offset.days
    for ts, r in kept:
        kwh = r[1]
        off = day_offsets.get(ts // _DAY)
        wall = ts + (off if off is not None else offset(ts))
        n = wall // _DAY
        sod = wall - n * _DAY
        key_m, prof = day_cache[n] if n in day_cache else day_info(n)
        if key_m != last_month:
            acc = months.get(key_m) or months.setdefault(key_m, _MonthAcc())
            last_month = key_m
        if kwh < 0:
            if rate.export_rate is None:
                raise BillingInputError(
                    rate.export_field,
                    f"{name(r.ref)} is negative ({kwh} kWh, energy exported to the grid) but {rate.label} has no "
                    f"export rate; give {rate.export_field} (price per exported kWh) or remove negative readings",
                )
            acc.export_kwh -= kwh
            if len(exports) < MAX_EXAMPLES:
                exports.append(f"{name(r.ref)} ({_local_label(r.start, tz)}): {kwh} kWh")
            continue
        nxt = day_info(n + 1)[1] if sod + dur > _DAY else prof
        pkey = (id(prof), sod, id(nxt))
        pi = parts_index.get(pkey)
        if pi is None:
            pi = parts_index[pkey] = len(parts_list)
            parts_list.append(_split(prof, nxt, sod, dur))
        b = acc.buckets
        b[pi] = b[pi] + kwh if pi in b else kwh

    first_date = kept[0][1].start.astimezone(tz).date()
    last_date = kept[-1][1].start.astimezone(tz).date()
    n_export = sum(1 for _, r in kept if r.kwh < 0)
    if n_export:
        warnings.append(
            BillWarning(
                "export",
                f"{n_export} negative reading(s) treated as energy exported to the grid, credited at "
                f"{rate.export_rate} {cr.currency}/kWh",
                n_export,
                tuple(exports),
            )
        )
    dst = _dst_days(first_date, last_date, tz)
    if dst:
        warnings.append(
            BillWarning(
                "dst",
                f"{len(dst)} day(s) with a daylight-saving change; each reading is priced at the local hour it fell in",
                len(dst),
                tuple(dst[:MAX_EXAMPLES]),
            )
        )

    out: list[MonthBill] = []
    partial: list[str] = []
    y, m = first_date.year, first_date.month
    while (y, m) <= (last_date.year, last_date.month):
        dim = calendar.monthrange(y, m)[1]
        m_start = max(first_date, date(y, m, 1))
        m_end = min(last_date, date(y, m, dim))
        days = (m_end - m_start).days + 1
        if days < dim:
            partial.append(f"{y:04d}-{m:02d}: {days} of {dim} days")
        macc = months.get((y, m)) or _MonthAcc()
        by_name: dict[str, list[Decimal]] = {}
        import_kwh = D0
        time_cost = D0
        for pi, total_kwh in macc.buckets.items():
            for pname, share, price in parts_list[pi]:
                kwh = total_kwh * share if share != 1 else total_kwh
                c = kwh * price
                slot = by_name.setdefault(pname, [D0, D0])
                slot[0] += kwh
                slot[1] += c
                import_kwh += kwh
                time_cost += c
        scale = Decimal(days) if cr.spec.block_basis == "day" else Decimal(days) / Decimal(dim)
        import_cost, blocks = _apply_blocks(cr, import_kwh, time_cost, scale)
        by_period: dict[str, PeriodUse] = {}
        for pname, (kwh, c) in sorted(by_name.items()):
            if blocks:  # allocate the block-adjusted cost by time-based cost (or kWh when prices are 0)
                share = c / time_cost if time_cost else (kwh / import_kwh if import_kwh else D0)
                c = import_cost * share
            by_period[pname] = PeriodUse(kwh, c)
        credit = D0
        if macc.export_kwh:
            credit = macc.export_kwh * (rate.export_rate or D0)
            by_period[EXPORT_PERIOD] = PeriodUse(-macc.export_kwh, -credit)
        fixed = cr.spec.fixed_daily_charge * days + rate.fixed_monthly_charge * Decimal(days) / Decimal(dim)
        out.append(
            MonthBill(
                month=f"{y:04d}-{m:02d}",
                start=m_start,
                end=m_end,
                days=days,
                days_in_month=dim,
                kwh=import_kwh - macc.export_kwh,
                import_kwh=import_kwh,
                export_kwh=macc.export_kwh,
                energy_cost=import_cost - credit,
                export_credit=credit,
                fixed_cost=fixed,
                by_period=by_period,
                blocks=blocks,
            )
        )
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    if partial and (rate.fixed_monthly_charge or cr.spec.block_tiers):
        warnings.append(
            BillWarning(
                "partial_month",
                "partial billing month(s): monthly charges and block limits prorated by days",
                len(partial),
                tuple(partial[:MAX_EXAMPLES]),
            )
        )
    return Bill(
        currency=cr.currency,
        timezone=tz.key,
        interval_minutes=interval,
        interval_inferred=inferred,
        start=first_date,
        end=last_date,
        days=(last_date - first_date).days + 1,
        readings=len(kept),
        covered_hours=Decimal(len(kept) * interval) / 60,
        months=tuple(out),
        warnings=tuple(warnings),
    )


__all__ = [
    "ALLOWED_INTERVALS_MIN",
    "Bill",
    "BillRate",
    "BillWarning",
    "BillingInputError",
    "BlockUse",
    "MonthBill",
    "PeriodUse",
    "Reading",
    "bill_readings",
    "infer_interval",
]
