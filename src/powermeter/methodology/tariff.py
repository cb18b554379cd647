"""Electricity tariff engine: what running a device costs under a flat, time-of-use or block tariff.

Pure functions only (stdlib ``decimal``, ``fractions``, ``zoneinfo``); no I/O, settings or clock.

Conventions (documented in docs/methodology.md, section "cost"):

* Money and energy are :class:`~decimal.Decimal`, built from strings, never rounded inside the
  engine; :func:`round_money` is applied by the caller at the response edge (4 decimals).
* A *typical year* has 365 days; ``annual = daily × 365`` and ``monthly = annual / 12``.
  Seasonal and weekday/weekend prices are averaged over a non-leap year (each month weighted by its
  days, weekdays 5/7 and weekend days 2/7).
* Tariff windows (``start_hour``, ``end_hour``) are *local wall-clock* hours. A window may wrap
  midnight (``end_hour < start_hour`` or ``end_hour > 24``); wrapped windows apply per calendar day
  (URDB semantics: ``[21, 8]`` means 21:00–24:00 and 00:00–08:00 of every day the tier applies to).
* Device schedules ``[start_hour, end_hour]`` belong to the local date they start on; ``end_hour``
  may exceed 24 (``[22, 30]`` = 22:00 → 06:00 next day). When real dates and a time zone are given,
  the engine computes on absolute (UTC) time, so a 22→30 window lasts 7 h on a spring-forward night
  and 9 h on a fall-back night.
"""

from __future__ import annotations

import bisect
import calendar
import itertools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from fractions import Fraction
from zoneinfo import ZoneInfo

D0 = Decimal(0)
D1 = Decimal(1)
HOURS_PER_DAY = Decimal(24)
DAYS_PER_TYPICAL_YEAR = Decimal(365)
MONTHS_PER_YEAR = Decimal(12)
DAYS_PER_WEEK = Decimal(7)
DAYS_PER_TYPICAL_MONTH = DAYS_PER_TYPICAL_YEAR / MONTHS_PER_YEAR  # 30.4166…
W_PER_KW = Decimal(1000)
WH_PER_KWH = Decimal(1000)
MAX_PERIOD_DAYS = 366

# Defaults whose provenance is in the research note (cost_anchors.md §5) and docs/methodology.md.
DEFAULT_EV_CHARGING_EFFICIENCY = Decimal("0.88")  # L2 / wallbox; support.evcs.com 88–94 %, ADAC 5–10 % loss
DEFAULT_ADAPTER_EFFICIENCY = Decimal("0.85")  # assumption: 0.80–0.90 reasonable, no stored source
DEFAULT_ROUND_TRIP_EFFICIENCY = Decimal("0.90")  # Powerwall 2 owner report; HOMER splits √RTE each way
DEFAULT_CYCLES_PER_YEAR = 365

DAY_KINDS = ("all", "weekday", "weekend")
BLOCK_BASES = ("month", "day")

_FOUR_PLACES = Decimal("0.0001")

RATE_CONFIG_KEYS = frozenset(
    {
        "flat_rate",
        "currency",
        "tou_tiers",
        "seasons",
        "fixed_daily_charge",
        "fixed_monthly_charge",
        "block_tiers",
        "block_basis",
        "timezone",
        "holidays_as_weekend",
        "holidays_calendar",
    }
)
# descriptive keys a client may carry along with a rate (ignored by the engine)
RATE_CONFIG_LABELS = frozenset(
    {"id", "name", "utility", "plan", "region", "source", "source_url", "notes", "description", "effective_date"}
)


class TariffInputError(ValueError):
    """Invalid tariff, schedule or device input; ``field`` names the offending input."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


# ---------------------------------------------------------------------------------------------
# number helpers


# Physical bounds of every number the calculator accepts (docs/methodology.md, "Input bounds"). Each is far
# above any real household, fleet or grid-scale figure, and small enough that every product the engine
# forms (W × h × price × 365, kWh ÷ efficiency…) stays exact in 28-digit Decimal arithmetic, so money
# rounds without overflow. Keyed by the field's last name; ``(low, high)`` on the value itself.
_BIG = Decimal(10**9)
_PRICE = Decimal(10**6)  # per kWh in any currency (above hyper-inflated currencies' tariffs)
INPUT_BOUNDS: dict[str, tuple[Decimal, Decimal]] = {
    "watts": (-_BIG, _BIG),  # 1 GW: a large power station
    "kwh_per_use": (-_BIG, _BIG),
    "uses_per_week": (-Decimal(100_000), Decimal(100_000)),  # about one use every 6 s
    "rate": (-_PRICE, _PRICE),
    "flat_rate": (-_PRICE, _PRICE),
    "adj": (-_PRICE, _PRICE),
    "rate_per_kwh": (-_PRICE, _PRICE),
    "ratePerKwh": (-_PRICE, _PRICE),
    "charge_rate": (-_PRICE, _PRICE),
    "discharge_rate": (-_PRICE, _PRICE),
    "degradation_cost_per_kwh": (-_PRICE, _PRICE),
    "fixed_daily_charge": (-_PRICE, _PRICE),
    "fixed_monthly_charge": (-_PRICE, _PRICE),
    "up_to_kwh": (-_BIG, _BIG),
    "battery_kwh": (-Decimal(10**6), Decimal(10**6)),  # 1 GWh: the largest grid batteries
    "battery_wh": (-_BIG, _BIG),
    "battery_mah": (-_BIG, _BIG),
    "voltage": (-Decimal(1_000_000), Decimal(1_000_000)),  # 1 MV: transmission lines
    "miles_per_month": (-Decimal(10**7), Decimal(10**7)),
    "efficiency_mi_per_kwh": (Decimal("0.01"), Decimal(1000)),
    "charges_per_day": (-Decimal(10_000), Decimal(10_000)),
    "charges_per_week": (-Decimal(70_000), Decimal(70_000)),
    # efficiencies and depth of discharge: a fraction (0.01–1) or a percent (1–100)
    "charging_efficiency": (Decimal("0.01"), Decimal(100)),
    "chargingEfficiency": (Decimal("0.01"), Decimal(100)),
    "charger_efficiency": (Decimal("0.01"), Decimal(100)),
    "round_trip_efficiency": (Decimal("0.01"), Decimal(100)),
    "efficiency": (Decimal("0.01"), Decimal(100)),
    "depth_of_discharge": (Decimal("0.01"), Decimal(100)),
    "cycles_per_year": (Decimal(0), Decimal(3660)),
}
_DEFAULT_BOUNDS = (-_BIG, _BIG)
_INDEX_RE = re.compile(r"\[\d+\]")


def bounds_of(field: str) -> tuple[Decimal, Decimal]:
    """The accepted range of a calculator input, by its name (``device.power_states[0].watts`` → watts)."""
    leaf = _INDEX_RE.sub("", field).rsplit(".", 1)[-1]
    return INPUT_BOUNDS.get(leaf, _DEFAULT_BOUNDS)


def dec(value: object, field: str) -> Decimal:
    """A finite Decimal from an int, str, Decimal or float (floats go through ``repr``), within the
    field's physical bounds (:data:`INPUT_BOUNDS`)."""
    if isinstance(value, bool):
        raise TariffInputError(field, "must be a number")
    if isinstance(value, Decimal):
        d = value
    elif isinstance(value, int):
        d = Decimal(value)
    elif isinstance(value, float):
        d = Decimal(repr(value))
    elif isinstance(value, str):
        try:
            d = Decimal(value.strip())
        except InvalidOperation:
            raise TariffInputError(field, f"must be a number, got {value!r}") from None
    else:
        raise TariffInputError(field, "must be a number")
    if not d.is_finite():
        raise TariffInputError(field, "must be a finite number")
    lo, hi = bounds_of(field)
    if not lo <= d <= hi:
        raise TariffInputError(field, f"must be between {lo:g} and {hi:g}, got {_short(d)}")
    return d


def _short(d: Decimal) -> str:
    text = str(d)
    return text if len(text) <= 24 else f"{d:.6e}"


def round_money(value: Decimal, places: Decimal = _FOUR_PLACES) -> Decimal:
    """Round half-up at the response edge (4 decimals unless told)."""
    return value.quantize(places, rounding=ROUND_HALF_UP)


def _fmt_h(h: Decimal) -> str:
    total_min = int((h * 60).to_integral_value(rounding=ROUND_HALF_UP))
    return f"{total_min // 60:02d}:{total_min % 60:02d}"


# ---------------------------------------------------------------------------------------------
# tariff model


@dataclass(frozen=True, slots=True)
class TouTier:
    """One time-of-use price window in local wall-clock hours.

    ``end_hour < start_hour`` or ``end_hour > 24`` wraps midnight. ``days`` is ``all``, ``weekday``
    or ``weekend``; ``months`` (1–12) restricts the tier to a season (``None`` = all year).
    """

    name: str
    start_hour: Decimal
    end_hour: Decimal
    rate: Decimal
    days: str = "all"
    months: frozenset[int] | None = None


@dataclass(frozen=True, slots=True)
class BlockTier:
    """A consumption block: kWh up to ``up_to_kwh`` (cumulative, per ``block_basis``).

    ``rate`` replaces the time-based price for kWh in the block; when ``rate`` is ``None`` the block
    adds ``adj`` to the time-based price (baseline credits, URDB tier adjustments).
    """

    up_to_kwh: Decimal | None
    rate: Decimal | None = None
    adj: Decimal = D0


@dataclass(frozen=True, slots=True)
class RateSpec:
    currency: str = "USD"
    flat_rate: Decimal | None = None
    tou_tiers: tuple[TouTier, ...] = ()
    fixed_daily_charge: Decimal = D0
    block_tiers: tuple[BlockTier, ...] = ()
    block_basis: str = "month"
    timezone: str | None = None
    holidays_as_weekend: bool = False


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


# ---------------------------------------------------------------------------------------------
# price profiles: piecewise-constant price over one local day


@dataclass(frozen=True, slots=True)
class Profile:
    """Price over local hours [0, 24): ``prices[i]`` applies on ``[breaks[i], breaks[i+1])``."""

    breaks: tuple[Decimal, ...]
    prices: tuple[Decimal, ...]
    names: tuple[str, ...]
    cum: tuple[Decimal, ...]  # ∫ price from 0 to breaks[i]

    @staticmethod
    def build(breaks: Sequence[Decimal], prices: Sequence[Decimal], names: Sequence[str]) -> Profile:
        # merge neighbours with identical price and name
        b: list[Decimal] = [breaks[0]]
        p: list[Decimal] = []
        n: list[str] = []
        for i, price in enumerate(prices):
            if p and p[-1] == price and n[-1] == names[i]:
                b[-1] = breaks[i + 1]
            else:
                p.append(price)
                n.append(names[i])
                b.append(breaks[i + 1])
        cum = [D0]
        for i, price in enumerate(p):
            cum.append(cum[-1] + (b[i + 1] - b[i]) * price)
        return Profile(tuple(b), tuple(p), tuple(n), tuple(cum))

    def _index(self, h: Decimal) -> int:
        i = bisect.bisect_right(self.breaks, h) - 1
        return min(max(i, 0), len(self.prices) - 1)

    def price_at(self, h: Decimal) -> Decimal:
        return self.prices[self._index(h)]

    def name_at(self, h: Decimal) -> str:
        return self.names[self._index(h)]

    def _F(self, x: Decimal) -> Decimal:
        i = self._index(x)
        return self.cum[i] + (x - self.breaks[i]) * self.prices[i]

    def integral(self, a: Decimal, b: Decimal) -> Decimal:
        """∫ price dh over [a, b], 0 ≤ a ≤ b ≤ 24 (currency·h per kW)."""
        return self._F(b) - self._F(a)

    def integral_wrapped(self, a: Decimal, b: Decimal) -> Decimal:
        """Like :meth:`integral` for 0 ≤ a < 24, a ≤ b ≤ a + 24; hours past 24 wrap to the next day."""
        if b <= HOURS_PER_DAY:
            return self.integral(a, b)
        return self.integral(a, HOURS_PER_DAY) + self.integral(D0, b - HOURS_PER_DAY)

    def by_name(self, a: Decimal, b: Decimal) -> dict[str, tuple[Decimal, Decimal]]:
        """Hours and ∫price per tier name over [a, b] ⊂ [0, 24]."""
        out: dict[str, tuple[Decimal, Decimal]] = {}
        i = self._index(a)
        while i < len(self.prices) and self.breaks[i] < b:
            lo = max(a, self.breaks[i])
            hi = min(b, self.breaks[i + 1])
            if hi > lo:
                h0, c0 = out.get(self.names[i], (D0, D0))
                out[self.names[i]] = (h0 + (hi - lo), c0 + (hi - lo) * self.prices[i])
            i += 1
        return out

    @property
    def mean_price(self) -> Decimal:
        return self.cum[-1] / HOURS_PER_DAY


def _tier_pieces(t: TouTier, field: str) -> list[tuple[Decimal, Decimal]]:
    s, e = t.start_hour, t.end_hour
    if not D0 <= s < HOURS_PER_DAY:
        raise TariffInputError(f"{field}.start_hour", f"must be in [0, 24), got {s}")
    if e == s:
        raise TariffInputError(f"{field}.end_hour", "must differ from start_hour (use [0, 24] for a full day)")
    if e < D0 or e > s + HOURS_PER_DAY:
        raise TariffInputError(f"{field}.end_hour", f"must be in [0, start_hour + 24] (got {e} with start_hour {s})")
    if e < s:  # wraps midnight: [s, 24) + [0, e)
        pieces = [(s, HOURS_PER_DAY), (D0, e)]
    elif e > HOURS_PER_DAY:
        pieces = [(s, HOURS_PER_DAY), (D0, e - HOURS_PER_DAY)]
    else:
        pieces = [(s, e)]
    return [(a, b) for a, b in pieces if b > a]


def _build_profile(
    tiers: Sequence[tuple[int, TouTier]],
    flat: Decimal | None,
    field: str,
    where: str,
) -> Profile:
    pieces: list[tuple[Decimal, Decimal, int, TouTier]] = []
    for idx, t in tiers:
        for a, b in _tier_pieces(t, f"{field}.tou_tiers[{idx}]"):
            pieces.append((a, b, idx, t))
    pieces.sort(key=lambda p: (p[0], p[1]))
    breaks: list[Decimal] = [D0]
    prices: list[Decimal] = []
    names: list[str] = []
    cursor = D0
    last: TouTier | None = None
    for a, b, idx, t in pieces:
        if a < cursor:
            other = last.name if last is not None else "?"
            raise TariffInputError(
                f"{field}.tou_tiers[{idx}]",
                f"tier {t.name!r} overlaps tier {other!r} between {_fmt_h(a)} and {_fmt_h(min(cursor, b))}{where}",
            )
        if a > cursor:
            if flat is None:
                raise TariffInputError(
                    f"{field}.tou_tiers",
                    f"tiers leave {_fmt_h(cursor)}–{_fmt_h(a)} uncovered{where} and there is no flat_rate",
                )
            prices.append(flat)
            names.append("flat")
            breaks.append(a)
        prices.append(t.rate)
        names.append(t.name)
        breaks.append(b)
        cursor = b
        last = t
    if cursor < HOURS_PER_DAY:
        if flat is None:
            raise TariffInputError(
                f"{field}.tou_tiers",
                f"tiers leave {_fmt_h(cursor)}–24:00 uncovered{where} and there is no flat_rate",
            )
        prices.append(flat)
        names.append("flat")
        breaks.append(HOURS_PER_DAY)
    return Profile.build(breaks, prices, names)


_NONLEAP_MONTH_DAYS = tuple(calendar.monthrange(2025, m)[1] for m in range(1, 13))


@dataclass(frozen=True, slots=True)
class CompiledRate:
    """A validated rate with every lookup precomputed (build once per rate, reuse per request)."""

    spec: RateSpec
    has_tou: bool
    profiles: Mapping[tuple[int, bool], Profile]  # (month, is_weekend) → profile
    weighted: tuple[tuple[Profile, Decimal], ...]  # distinct profiles and typical-year weights
    typical: Profile  # typical-year average price by local hour
    average_price: Decimal  # time-weighted mean of the typical profile

    @property
    def currency(self) -> str:
        return self.spec.currency

    @property
    def flat_or_average(self) -> Decimal:
        return self.spec.flat_rate if self.spec.flat_rate is not None else self.average_price

    def profile_on(self, day: date, holidays: frozenset[date] = frozenset()) -> Profile:
        weekend = day.weekday() >= 5 or (self.spec.holidays_as_weekend and day in holidays)
        return self.profiles[(day.month, weekend)]


def compile_rate(spec: RateSpec, field: str = "rateConfig") -> CompiledRate:
    """Validate ``spec`` and precompute its price profiles.

    Raises :class:`TariffInputError` naming the field when tiers overlap, leave hours uncovered
    without a ``flat_rate``, have out-of-range hours, or when neither flat nor TOU prices exist.
    """
    if spec.flat_rate is None and not spec.tou_tiers and not any(b.rate is not None for b in spec.block_tiers):
        raise TariffInputError(field, "give flat_rate, tou_tiers or block_tiers with rates")
    _validate_blocks(spec, field)
    flat = spec.flat_rate
    if flat is None and not spec.tou_tiers:
        flat = next(b.rate for b in spec.block_tiers if b.rate is not None)
    if not spec.tou_tiers and flat is not None:
        prof = Profile.build([D0, HOURS_PER_DAY], [flat], ["flat"])
        flat_profiles = {(m, w): prof for m in range(1, 13) for w in (False, True)}
        return CompiledRate(spec, False, flat_profiles, ((prof, D1),), prof, flat)

    groups: dict[tuple[int, bool], tuple[int, ...]] = {}
    for m in range(1, 13):
        for weekend in (False, True):
            groups[(m, weekend)] = tuple(
                i
                for i, t in enumerate(spec.tou_tiers)
                if (t.months is None or m in t.months) and (t.days == "all" or (t.days == "weekend") == weekend)
            )
    built: dict[tuple[int, ...], Profile] = {}
    profiles: dict[tuple[int, bool], Profile] = {}
    weights: dict[tuple[int, ...], Fraction] = {}
    for (m, weekend), idxs in groups.items():
        if idxs not in built:
            where = f" ({'weekend' if weekend else 'weekday'}s in {calendar.month_abbr[m]})"
            built[idxs] = _build_profile([(i, spec.tou_tiers[i]) for i in idxs], flat, field, where)
        profiles[(m, weekend)] = built[idxs]
        w = Fraction(_NONLEAP_MONTH_DAYS[m - 1], 365) * (Fraction(2, 7) if weekend else Fraction(5, 7))
        weights[idxs] = weights.get(idxs, Fraction(0)) + w
    distinct = [(built[k], w) for k, w in weights.items()]
    if len(distinct) == 1:
        typical = distinct[0][0]
        weighted: tuple[tuple[Profile, Decimal], ...] = ((typical, D1),)
    else:
        cuts = sorted({b for p, _ in distinct for b in p.breaks})
        prices: list[Decimal] = []
        names: list[str] = []
        for a, b in itertools.pairwise(cuts):
            mid = (a + b) / 2
            acc = Fraction(0)
            seen: set[str] = set()
            for p, w in distinct:
                acc += w * Fraction(p.price_at(mid))
                seen.add(p.name_at(mid))
            prices.append(Decimal(acc.numerator) / Decimal(acc.denominator))
            names.append(seen.pop() if len(seen) == 1 else "mixed")
        typical = Profile.build(cuts, prices, names)
        weighted = tuple((p, Decimal(w.numerator) / Decimal(w.denominator)) for p, w in distinct)
    return CompiledRate(spec, True, profiles, weighted, typical, typical.mean_price)


def _validate_blocks(spec: RateSpec, field: str) -> None:
    prev: Decimal | None = None
    for i, b in enumerate(spec.block_tiers):
        bf = f"{field}.block_tiers[{i}]"
        if b.up_to_kwh is None:
            if i != len(spec.block_tiers) - 1:
                raise TariffInputError(f"{bf}.up_to_kwh", "only the last block may be open-ended")
            continue
        if b.up_to_kwh <= 0 or (prev is not None and b.up_to_kwh <= prev):
            raise TariffInputError(f"{bf}.up_to_kwh", "block limits must be positive and increasing")
        prev = b.up_to_kwh
    if spec.block_tiers and spec.block_tiers[-1].up_to_kwh is not None:
        raise TariffInputError(f"{field}.block_tiers", "the last block must be open-ended (up_to_kwh null)")


# ---------------------------------------------------------------------------------------------
# loads: when a device draws power during a local day


@dataclass(frozen=True, slots=True)
class Window:
    """A run window owned by its start day: ``start`` in [0, 24), ``start < end ≤ start + 24``."""

    start: Decimal
    end: Decimal
    power_kw: Decimal  # average draw inside the window (duty cycle folded in)

    @property
    def hours(self) -> Decimal:
        return self.end - self.start

    def pieces(self) -> tuple[tuple[Decimal, Decimal], ...]:
        if self.end <= HOURS_PER_DAY:
            return ((self.start, self.end),)
        return ((self.start, HOURS_PER_DAY), (D0, self.end - HOURS_PER_DAY))


def parse_schedule(raw: object, field: str) -> tuple[tuple[Decimal, Decimal], ...]:
    """Validate ``[[start_hour, end_hour], …]``; windows may run past midnight but may not overlap."""
    if not isinstance(raw, Sequence) or isinstance(raw, str | bytes) or not raw:
        raise TariffInputError(field, "must be a non-empty list of [start_hour, end_hour] pairs")
    out: list[tuple[Decimal, Decimal]] = []
    for i, w in enumerate(raw):
        wf = f"{field}[{i}]"
        if not isinstance(w, Sequence) or isinstance(w, str | bytes) or len(w) != 2:
            raise TariffInputError(wf, "must be a [start_hour, end_hour] pair")
        s = dec(w[0], f"{wf}[0]")
        e = dec(w[1], f"{wf}[1]")
        if not D0 <= s < HOURS_PER_DAY:
            raise TariffInputError(f"{wf}[0]", f"start_hour must be in [0, 24), got {s}")
        if not s < e <= s + HOURS_PER_DAY:
            raise TariffInputError(
                f"{wf}[1]",
                f"end_hour must be greater than start_hour and at most start_hour + 24 "
                f"(got [{s}, {e}]; use [22, 30] for 22:00–06:00)",
            )
        out.append((s, e))
    pieces: list[tuple[Decimal, Decimal, int]] = []
    for i, (s, e) in enumerate(out):
        for a, b in Window(s, e, D0).pieces():
            pieces.append((a, b, i))
    pieces.sort()
    for (_a0, b0, i0), (a1, _b1, i1) in itertools.pairwise(pieces):
        if a1 < b0:
            first, second = sorted((i0, i1))
            raise TariffInputError(
                field,
                f"windows {first} and {second} overlap between {_fmt_h(a1)} and {_fmt_h(min(b0, _b1))}",
            )
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Load:
    windows: tuple[Window, ...]

    @property
    def kwh_per_day(self) -> Decimal:
        return sum((w.power_kw * w.hours for w in self.windows), D0)


def scheduled_load(
    watts: Decimal,
    schedule: Sequence[tuple[Decimal, Decimal]],
    hours_per_day: Decimal | None,
    field: str = "device",
) -> Load:
    """Spread ``hours_per_day`` of running at ``watts`` evenly over the schedule windows.

    Without ``hours_per_day`` the device runs the whole schedule. ``hours_per_day`` larger than the
    schedule's span is an error (the device cannot run longer than it is scheduled).
    """
    span = sum((e - s for s, e in schedule), D0)
    if hours_per_day is None:
        hours_per_day = span
    if hours_per_day > span:
        raise TariffInputError(
            f"{field}.hours_per_day",
            f"{hours_per_day} h exceeds the schedule's {span} h; lengthen the schedule or lower hours_per_day",
        )
    kw = watts / W_PER_KW * (hours_per_day / span)
    return Load(tuple(Window(s, e, kw) for s, e in schedule))


# ---------------------------------------------------------------------------------------------
# typical-day pricing


@dataclass(frozen=True, slots=True)
class TierUse:
    name: str
    kwh: Decimal
    cost: Decimal


@dataclass(frozen=True, slots=True)
class DayCost:
    kwh: Decimal
    energy_cost: Decimal  # before fixed charges
    tiers: tuple[TierUse, ...] = ()


def time_cost(rate: CompiledRate, load: Load) -> Decimal:
    """Typical-year cost of one day of ``load`` at time-based prices (no blocks, no fixed charge)."""
    prof = rate.typical
    total = D0
    for w in load.windows:
        total += w.power_kw * prof.integral_wrapped(w.start, w.end)
    return total


def tier_breakdown(rate: CompiledRate, load: Load) -> tuple[TierUse, ...]:
    """kWh and cost per tier name on a typical day (weekday/weekend and seasons weighted)."""
    acc: dict[str, tuple[Decimal, Decimal]] = {}
    for prof, weight in rate.weighted:
        for w in load.windows:
            for a, b in w.pieces():
                for name, (hours, integral) in prof.by_name(a, b).items():
                    k0, c0 = acc.get(name, (D0, D0))
                    acc[name] = (k0 + weight * w.power_kw * hours, c0 + weight * w.power_kw * integral)
    return tuple(TierUse(n, k, c) for n, (k, c) in sorted(acc.items()))


def apply_blocks(rate: CompiledRate, kwh: Decimal, time_based_cost: Decimal, days: Decimal) -> Decimal:
    """Energy cost of ``kwh`` used over ``days`` days once block tiers are applied.

    Block limits are per month (prorated by ``days / (365/12)``) or per day (× ``days``). kWh in a
    block with a ``rate`` pay that rate; kWh in a block without one pay their load-weighted
    time-based price plus the block's ``adj``. Blocks apply to the kWh being priced (a single device
    on the calculator; the whole household on ``/api/v1/me/costs``).
    """
    blocks = rate.spec.block_tiers
    if not blocks or kwh <= 0:
        return time_based_cost
    scale = days if rate.spec.block_basis == "day" else days / DAYS_PER_TYPICAL_MONTH
    mean_price = time_based_cost / kwh
    cost = D0
    lower = D0
    for b in blocks:
        upper = None if b.up_to_kwh is None else b.up_to_kwh * scale
        in_block = kwh - lower if upper is None else max(D0, min(kwh, upper) - lower)
        if in_block > 0:
            price = b.rate if b.rate is not None else mean_price + b.adj
            cost += in_block * price
        if upper is None or kwh <= upper:
            break
        lower = upper
    return cost


def typical_day_cost(rate: CompiledRate, load: Load, *, with_tiers: bool = False) -> DayCost:
    """Energy and cost of one typical day of ``load`` under ``rate`` (TOU, seasons, blocks)."""
    kwh = load.kwh_per_day
    tc = time_cost(rate, load)
    month_kwh = kwh * DAYS_PER_TYPICAL_MONTH
    if rate.spec.block_tiers:
        if rate.spec.block_basis == "day":
            cost = apply_blocks(rate, kwh, tc, D1)
        else:
            cost = apply_blocks(rate, month_kwh, tc * DAYS_PER_TYPICAL_MONTH, DAYS_PER_TYPICAL_MONTH)
            cost = cost / DAYS_PER_TYPICAL_MONTH
    else:
        cost = tc
    return DayCost(kwh, cost, tier_breakdown(rate, load) if with_tiers else ())


def energy_only_day_cost(rate: CompiledRate, kwh_per_day: Decimal) -> Decimal:
    """Cost of ``kwh_per_day`` with no time information: flat rate (or the mean TOU price) + blocks."""
    price = rate.flat_or_average
    if not rate.spec.block_tiers:
        return kwh_per_day * price
    if rate.spec.block_basis == "day":
        return apply_blocks(rate, kwh_per_day, kwh_per_day * price, D1)
    month_kwh = kwh_per_day * DAYS_PER_TYPICAL_MONTH
    return apply_blocks(rate, month_kwh, month_kwh * price, DAYS_PER_TYPICAL_MONTH) / DAYS_PER_TYPICAL_MONTH


@dataclass(frozen=True, slots=True)
class Periods:
    daily: Decimal
    monthly: Decimal
    annual: Decimal

    @staticmethod
    def from_daily(daily: Decimal) -> Periods:
        annual = daily * DAYS_PER_TYPICAL_YEAR
        return Periods(daily, annual / MONTHS_PER_YEAR, annual)


# ---------------------------------------------------------------------------------------------
# device cost: the calculator's modes


@dataclass(frozen=True, slots=True)
class PowerState:
    name: str
    watts: Decimal
    hours_per_day: Decimal
    schedule: tuple[tuple[Decimal, Decimal], ...] | None = None


@dataclass(frozen=True, slots=True)
class DeviceUsage:
    watts: Decimal | None = None
    hours_per_day: Decimal | None = None
    schedule: tuple[tuple[Decimal, Decimal], ...] | None = None
    kwh_per_use: Decimal | None = None
    uses_per_week: Decimal | None = None
    power_states: tuple[PowerState, ...] = ()
    shiftable: bool = False


def parse_device(raw: Mapping[str, object], field: str = "device") -> DeviceUsage:
    """Validate the seed's ``device`` object."""
    if not isinstance(raw, Mapping):
        raise TariffInputError(field, "must be an object")

    def opt(key: str, lo: Decimal | None = D0, hi: Decimal | None = None) -> Decimal | None:
        v = raw.get(key)
        if v is None:
            return None
        d = dec(v, f"{field}.{key}")
        if lo is not None and d < lo:
            raise TariffInputError(f"{field}.{key}", f"must be ≥ {lo}, got {d}")
        if hi is not None and d > hi:
            raise TariffInputError(f"{field}.{key}", f"must be ≤ {hi}, got {d}")
        return d

    schedule = None
    if raw.get("schedule") is not None:
        schedule = parse_schedule(raw["schedule"], f"{field}.schedule")
    states: list[PowerState] = []
    states_raw = raw.get("power_states")
    if states_raw is not None:
        if not isinstance(states_raw, Sequence) or isinstance(states_raw, str | bytes) or not states_raw:
            raise TariffInputError(f"{field}.power_states", "must be a non-empty list of {watts, hours_per_day}")
        total_h = D0
        for i, s in enumerate(states_raw):
            sf = f"{field}.power_states[{i}]"
            if not isinstance(s, Mapping):
                raise TariffInputError(sf, "must be an object with watts and hours_per_day")
            for key in ("watts", "hours_per_day"):
                if s.get(key) is None:
                    raise TariffInputError(f"{sf}.{key}", "is required")
            w = dec(s["watts"], f"{sf}.watts")
            h = dec(s["hours_per_day"], f"{sf}.hours_per_day")
            if w < 0:
                raise TariffInputError(f"{sf}.watts", "must be ≥ 0")
            if not D0 <= h <= HOURS_PER_DAY:
                raise TariffInputError(f"{sf}.hours_per_day", "must be in [0, 24]")
            sched = None
            if s.get("schedule") is not None:
                sched = parse_schedule(s["schedule"], f"{sf}.schedule")
            total_h += h
            states.append(PowerState(str(s.get("name") or f"state{i}"), w, h, sched))
        if total_h > HOURS_PER_DAY:
            raise TariffInputError(
                f"{field}.power_states", f"hours_per_day of all states add up to {total_h} h, more than 24"
            )
    return DeviceUsage(
        watts=opt("watts"),
        hours_per_day=opt("hours_per_day", D0, HOURS_PER_DAY),
        schedule=schedule,
        kwh_per_use=opt("kwh_per_use"),
        uses_per_week=opt("uses_per_week"),
        power_states=tuple(states),
        shiftable=bool(raw.get("shiftable", False)),
    )


@dataclass(frozen=True, slots=True)
class CostResult:
    mode: str
    kwh_per_day: Decimal
    energy: Periods
    fixed_daily: Decimal
    currency: str
    tou_note: str | None = None
    tiers: tuple[TierUse, ...] = ()

    @property
    def total(self) -> Periods:
        return Periods.from_daily(self.energy.daily + self.fixed_daily)


_NOTE_NO_SCHEDULE = "TOU tiers exist for this rate but the device has no schedule; priced at the {what}"
_NOTE_ANNUAL = "TOU tiers are not applied in annual_kwh mode; priced at the {what}"
_NOTE_STATES = "TOU tiers apply to power_states only when every state has a schedule; priced at the {what}"


def _flat_what(rate: CompiledRate) -> str:
    return "flat rate" if rate.spec.flat_rate is not None else "time-weighted average TOU price"


def device_cost(
    rate: CompiledRate,
    device: DeviceUsage,
    *,
    include_fixed: bool = False,
    with_tiers: bool = False,
    field: str = "device",
) -> CostResult:
    """Daily/monthly/annual cost of a device; the mode is chosen as the seed describes.

    ``power_states`` → mode ``power_states``; ``kwh_per_use`` + ``uses_per_week`` → ``annual_kwh``;
    ``watts`` + ``hours_per_day`` (or a schedule) → ``tou`` when a schedule meets TOU tiers, else
    ``flat``.
    """
    fixed = rate.spec.fixed_daily_charge if include_fixed else D0
    note: str | None = None
    tiers: tuple[TierUse, ...] = ()
    if device.power_states:
        mode = "power_states"
        if rate.has_tou and all(s.schedule for s in device.power_states):
            windows: list[Window] = []
            for i, s in enumerate(device.power_states):
                windows += scheduled_load(
                    s.watts, s.schedule or (), s.hours_per_day, f"{field}.power_states[{i}]"
                ).windows
            dc = typical_day_cost(rate, Load(tuple(windows)), with_tiers=with_tiers)
            kwh, cost, tiers = dc.kwh, dc.energy_cost, dc.tiers
        else:
            kwh = sum((s.watts * s.hours_per_day for s in device.power_states), D0) / W_PER_KW
            cost = energy_only_day_cost(rate, kwh)
            if rate.has_tou:
                note = _NOTE_STATES.format(what=_flat_what(rate))
    elif device.kwh_per_use is not None or device.uses_per_week is not None:
        if device.kwh_per_use is None or device.uses_per_week is None:
            missing = "kwh_per_use" if device.kwh_per_use is None else "uses_per_week"
            raise TariffInputError(f"{field}.{missing}", "annual_kwh mode needs kwh_per_use and uses_per_week")
        mode = "annual_kwh"
        kwh = device.kwh_per_use * device.uses_per_week / DAYS_PER_WEEK
        cost = energy_only_day_cost(rate, kwh)
        if rate.has_tou:
            note = _NOTE_ANNUAL.format(what=_flat_what(rate))
    elif device.watts is not None:
        if device.schedule is not None and rate.has_tou:
            mode = "tou"
            load = scheduled_load(device.watts, device.schedule, device.hours_per_day, field)
            dc = typical_day_cost(rate, load, with_tiers=with_tiers)
            kwh, cost, tiers = dc.kwh, dc.energy_cost, dc.tiers
        else:
            mode = "flat"
            if device.hours_per_day is None and device.schedule is None:
                raise TariffInputError(f"{field}.hours_per_day", "is required with watts (or give a schedule)")
            if device.schedule is not None:
                hours = scheduled_load(device.watts, device.schedule, device.hours_per_day, field).kwh_per_day
                kwh = hours
            else:
                kwh = device.watts * (device.hours_per_day or D0) / W_PER_KW
            cost = energy_only_day_cost(rate, kwh)
            if rate.has_tou:
                note = _NOTE_NO_SCHEDULE.format(what=_flat_what(rate))
    else:
        raise TariffInputError(field, "give watts + hours_per_day, kwh_per_use + uses_per_week, or power_states")
    return CostResult(mode, kwh, Periods.from_daily(cost), fixed, rate.currency, note, tiers)


@dataclass(frozen=True, slots=True)
class HouseholdCost:
    devices: tuple[CostResult, ...]
    kwh_per_day: Decimal
    energy: Periods
    fixed_daily: Decimal

    @property
    def total(self) -> Periods:
        return Periods.from_daily(self.energy.daily + self.fixed_daily)


def household_cost(
    rate: CompiledRate, devices: Sequence[DeviceUsage], *, include_fixed: bool = False
) -> HouseholdCost:
    """Every device's cost and the household total under one rate.

    Without block tiers the total is the sum of the devices. With block tiers the blocks apply to the
    household's combined kWh (that is how the bill is computed); each device is then charged its share
    of the household energy cost in proportion to its time-based cost (or its kWh when prices are 0),
    so the device costs add up to the total.
    """
    fixed = rate.spec.fixed_daily_charge if include_fixed else D0
    if not rate.spec.block_tiers:
        results = tuple(device_cost(rate, d, field=f"devices[{i}]") for i, d in enumerate(devices))
        kwh = sum((r.kwh_per_day for r in results), D0)
        daily = sum((r.energy.daily for r in results), D0)
        return HouseholdCost(results, kwh, Periods.from_daily(daily), fixed)
    spec = rate.spec
    flat = spec.flat_rate
    if flat is None and not spec.tou_tiers:
        flat = next(b.rate for b in spec.block_tiers if b.rate is not None)
    base = compile_rate(replace(spec, block_tiers=(), flat_rate=flat))
    pre = tuple(device_cost(base, d, field=f"devices[{i}]") for i, d in enumerate(devices))
    kwh = sum((r.kwh_per_day for r in pre), D0)
    time_based = sum((r.energy.daily for r in pre), D0)
    if spec.block_basis == "day":
        daily = apply_blocks(rate, kwh, time_based, D1)
    else:
        m = DAYS_PER_TYPICAL_MONTH
        daily = apply_blocks(rate, kwh * m, time_based * m, m) / m
    results_list: list[CostResult] = []
    for r in pre:
        share = r.energy.daily / time_based if time_based > 0 else r.kwh_per_day / kwh if kwh > 0 else D0
        results_list.append(replace(r, energy=Periods.from_daily(daily * share)))
    return HouseholdCost(tuple(results_list), kwh, Periods.from_daily(daily), fixed)


# ---------------------------------------------------------------------------------------------
# real dates: absolute-time pricing across DST


def _wall_to_utc(day: date, hours: Decimal, tz: ZoneInfo, fold: int = 0) -> datetime:
    micro = int((hours * 3_600_000_000).to_integral_value(rounding=ROUND_HALF_UP))
    wall = datetime.combine(day, time()) + timedelta(microseconds=micro)
    return wall.replace(tzinfo=tz, fold=fold).astimezone(UTC)


def _hours_between(a: datetime, b: datetime) -> Decimal:
    return Decimal((b - a) // timedelta(microseconds=1)) / Decimal(3_600_000_000)


def _wall_hour(u: datetime, tz: ZoneInfo) -> tuple[date, Decimal]:
    w = u.astimezone(tz)
    h = (
        Decimal(w.hour)
        + Decimal(w.minute) / 60
        + Decimal(w.second) / 3600
        + Decimal(w.microsecond) / Decimal(3_600_000_000)
    )
    return w.date(), h


def _transitions(day: date, tz: ZoneInfo) -> list[datetime]:
    """UTC instants where the zone's offset changes during local ``day`` (bisected to the second)."""
    lo = _wall_to_utc(day, D0, tz)
    hi = _wall_to_utc(day + timedelta(days=1), D0, tz)
    if lo.astimezone(tz).utcoffset() == hi.astimezone(tz).utcoffset():
        return []
    off_lo = lo.astimezone(tz).utcoffset()
    a, b = 0, int((hi - lo).total_seconds())
    while b - a > 1:
        mid = (a + b) // 2
        if (lo + timedelta(seconds=mid)).astimezone(tz).utcoffset() == off_lo:
            a = mid
        else:
            b = mid
    return [lo + timedelta(seconds=b)]


@dataclass(frozen=True, slots=True)
class DayUse:
    day: date
    hours: Decimal  # elapsed hours the device ran (its windows starting this day)
    kwh: Decimal
    energy_cost: Decimal  # time-based, before blocks


@dataclass(frozen=True, slots=True)
class PeriodCost:
    start: date
    end: date
    days: int
    kwh: Decimal
    energy_cost: Decimal
    fixed_cost: Decimal
    per_day: tuple[DayUse, ...]

    @property
    def total_cost(self) -> Decimal:
        return self.energy_cost + self.fixed_cost


def _interval_cost(rate: CompiledRate, u0: datetime, u1: datetime, tz: ZoneInfo, holidays: frozenset[date]) -> Decimal:
    """∫ price dt (per kW) over the absolute interval [u0, u1), cut at every local price edge."""
    d0 = u0.astimezone(tz).date() - timedelta(days=1)
    d1 = u1.astimezone(tz).date() + timedelta(days=1)
    cuts: set[datetime] = {u0, u1}
    d = d0
    while d <= d1:
        for b in rate.profile_on(d, holidays).breaks[:-1]:
            for fold in (0, 1):
                u = _wall_to_utc(d, b, tz, fold)
                if u0 < u < u1:
                    cuts.add(u)
        for u in _transitions(d, tz):
            if u0 < u < u1:
                cuts.add(u)
        d += timedelta(days=1)
    ordered = sorted(cuts)
    total = D0
    for ua, ub in itertools.pairwise(ordered):
        mid = ua + (ub - ua) / 2
        wd, wh = _wall_hour(mid, tz)
        total += _hours_between(ua, ub) * rate.profile_on(wd, holidays).price_at(wh)
    return total


def period_cost(
    rate: CompiledRate,
    load: Load,
    start: date,
    end: date,
    tz: ZoneInfo,
    *,
    holidays: frozenset[date] = frozenset(),
    include_fixed: bool = False,
) -> PeriodCost:
    """Cost of ``load`` on every local date from ``start`` to ``end`` (inclusive), on real elapsed time.

    Each window is placed on its start date in local wall time, converted to UTC (non-existent times
    move forward, ambiguous times take their first occurrence), and priced piecewise between every
    local tariff edge, so 23- and 25-hour days bill the hours that really elapsed.
    """
    if end < start:
        raise TariffInputError("period.end", "must not be before period.start")
    n_days = (end - start).days + 1
    if n_days > MAX_PERIOD_DAYS:
        raise TariffInputError("period", f"at most {MAX_PERIOD_DAYS} days, got {n_days}")
    per_day: list[DayUse] = []
    total_kwh = D0
    total_cost = D0
    d = start
    while d <= end:
        hours = D0
        kwh = D0
        cost = D0
        for w in load.windows:
            u0 = _wall_to_utc(d, w.start, tz)
            u1 = _wall_to_utc(d, w.end, tz)
            if u1 <= u0:
                continue
            h = _hours_between(u0, u1)
            hours += h
            kwh += w.power_kw * h
            if rate.has_tou:
                cost += w.power_kw * _interval_cost(rate, u0, u1, tz, holidays)
            else:
                cost += w.power_kw * h * rate.typical.prices[0]
        per_day.append(DayUse(d, hours, kwh, cost))
        total_kwh += kwh
        total_cost += cost
        d += timedelta(days=1)
    energy = apply_blocks(rate, total_kwh, total_cost, Decimal(n_days))
    fixed = rate.spec.fixed_daily_charge * n_days if include_fixed else D0
    return PeriodCost(start, end, n_days, total_kwh, energy, fixed, tuple(per_day))


# ---------------------------------------------------------------------------------------------
# shift savings: cheapest continuous window


@dataclass(frozen=True, slots=True)
class ShiftResult:
    duration_h: Decimal
    power_kw: Decimal
    current_cost: Decimal  # per day
    optimal_cost: Decimal  # per day
    optimal_start: Decimal
    baseline: str  # "schedule" or "average_start"

    @property
    def optimal_window(self) -> tuple[Decimal, Decimal]:
        return (self.optimal_start, self.optimal_start + self.duration_h)

    @property
    def daily_savings(self) -> Decimal:
        return self.current_cost - self.optimal_cost

    @property
    def annual_savings(self) -> Decimal:
        return self.daily_savings * DAYS_PER_TYPICAL_YEAR


def cheapest_start(profile: Profile, duration_h: Decimal) -> tuple[Decimal, Decimal]:
    """Start hour in [0, 24) minimising ∫ price over [start, start + duration) (cyclic day).

    The integral of a piecewise-constant price over a sliding window is piecewise linear in the
    start, so its minimum lies where the window's start or end meets a price edge: candidates are
    every edge ``b`` and ``b − duration`` (mod 24). Ties go to the earliest start.
    Returns ``(start, ∫price)``.
    """
    if not D0 < duration_h <= HOURS_PER_DAY:
        raise TariffInputError("device.hours_per_day", "must be in (0, 24] to search for a window")
    candidates = set()
    for b in profile.breaks[:-1]:
        candidates.add(b)
        back = b - duration_h
        candidates.add(back + HOURS_PER_DAY if back < 0 else back)  # Decimal % keeps the sign
    best_start = D0
    best = profile.integral_wrapped(D0, duration_h)
    for s in sorted(candidates):
        c = profile.integral_wrapped(s, s + duration_h)
        if c < best:
            best, best_start = c, s
    return best_start, best


def shift_savings(rate: CompiledRate, device: DeviceUsage, field: str = "device") -> ShiftResult | None:
    """Cheapest continuous daily run for a shiftable device; ``None`` when the rate has no TOU tiers.

    Baseline (``current_cost``): the device's schedule when it has one, else a run whose start is
    spread evenly over the day (equivalently the mean over all start times: duration × mean price).
    """
    if device.watts is None:
        raise TariffInputError(f"{field}.watts", "is required for shift-savings")
    if not device.shiftable:
        raise TariffInputError(f"{field}.shiftable", "must be true for shift-savings")
    if not rate.has_tou:
        return None
    if device.hours_per_day is None and device.schedule is None:
        raise TariffInputError(f"{field}.hours_per_day", "is required for shift-savings")
    if device.schedule is not None:
        load = scheduled_load(device.watts, device.schedule, device.hours_per_day, field)
        span = sum((w.hours for w in load.windows), D0)
        duration = device.hours_per_day if device.hours_per_day is not None else span
        current = time_cost(rate, load)
        baseline = "schedule"
    else:
        duration = device.hours_per_day or D0
        current = device.watts / W_PER_KW * duration * rate.average_price
        baseline = "average_start"
    if duration <= 0:
        raise TariffInputError(f"{field}.hours_per_day", "must be greater than 0")
    kw = device.watts / W_PER_KW
    start, integral = cheapest_start(rate.typical, duration)
    return ShiftResult(duration, kw, current, kw * integral, start, baseline)


# ---------------------------------------------------------------------------------------------
# batteries: EV and gadget charging, home-battery arbitrage


@dataclass(frozen=True, slots=True)
class ChargingCost:
    kwh_to_battery_per_day: Decimal
    kwh_from_wall_per_day: Decimal
    efficiency: Decimal
    price_per_kwh: Decimal
    cost: Periods
    full_charge_kwh_from_wall: Decimal
    full_charge_cost: Decimal
    cost_per_mile: Decimal | None = None
    charges_per_month: Decimal | None = None


def ev_charging_cost(
    battery_kwh: Decimal,
    miles_per_month: Decimal,
    efficiency_mi_per_kwh: Decimal,
    price_per_kwh: Decimal,
    charging_efficiency: Decimal = DEFAULT_EV_CHARGING_EFFICIENCY,
) -> ChargingCost:
    """EV charging: ``kWh_wall = miles / (mi/kWh) / η_charge``; monthly = the given month, annual = ×12.

    ``efficiency_mi_per_kwh`` is battery-side (what the car shows); pass ``charging_efficiency = 1``
    when it already includes charger losses (EPA ratings do).
    """
    _positive(efficiency_mi_per_kwh, "efficiency_mi_per_kwh")
    _fraction(charging_efficiency, "charging_efficiency")
    _positive(battery_kwh, "battery_kwh")
    if miles_per_month < 0:
        raise TariffInputError("miles_per_month", "must be ≥ 0")
    kwh_batt_month = miles_per_month / efficiency_mi_per_kwh
    kwh_wall_month = kwh_batt_month / charging_efficiency
    monthly = kwh_wall_month * price_per_kwh
    annual = monthly * MONTHS_PER_YEAR
    daily = annual / DAYS_PER_TYPICAL_YEAR
    per_day_batt = kwh_batt_month * MONTHS_PER_YEAR / DAYS_PER_TYPICAL_YEAR
    full_wall = battery_kwh / charging_efficiency
    return ChargingCost(
        kwh_to_battery_per_day=per_day_batt,
        kwh_from_wall_per_day=per_day_batt / charging_efficiency,
        efficiency=charging_efficiency,
        price_per_kwh=price_per_kwh,
        cost=Periods(daily, monthly, annual),
        full_charge_kwh_from_wall=full_wall,
        full_charge_cost=full_wall * price_per_kwh,
        cost_per_mile=None if miles_per_month == 0 else monthly / miles_per_month,
        charges_per_month=kwh_batt_month / battery_kwh,
    )


def electronics_charging_cost(
    battery_wh: Decimal,
    charges_per_day: Decimal,
    price_per_kwh: Decimal,
    adapter_efficiency: Decimal = DEFAULT_ADAPTER_EFFICIENCY,
) -> ChargingCost:
    """Gadget charging: ``kWh_wall/day = Wh × charges/day / η_adapter / 1000``."""
    _positive(battery_wh, "battery_wh")
    _fraction(adapter_efficiency, "charger_efficiency")
    if charges_per_day < 0:
        raise TariffInputError("charges_per_day", "must be ≥ 0")
    kwh_batt = battery_wh * charges_per_day / WH_PER_KWH
    kwh_wall = kwh_batt / adapter_efficiency
    full_wall = battery_wh / WH_PER_KWH / adapter_efficiency
    return ChargingCost(
        kwh_to_battery_per_day=kwh_batt,
        kwh_from_wall_per_day=kwh_wall,
        efficiency=adapter_efficiency,
        price_per_kwh=price_per_kwh,
        cost=Periods.from_daily(kwh_wall * price_per_kwh),
        full_charge_kwh_from_wall=full_wall,
        full_charge_cost=full_wall * price_per_kwh,
    )


@dataclass(frozen=True, slots=True)
class ArbitrageResult:
    usable_kwh: Decimal  # delivered per cycle
    kwh_bought_per_cycle: Decimal
    revenue_per_cycle: Decimal
    charge_cost_per_cycle: Decimal
    degradation_cost_per_cycle: Decimal
    savings_per_cycle: Decimal
    cycles_per_year: int
    annual_savings: Decimal
    breakeven_discharge_rate: Decimal
    profitable: bool


def arbitrage(
    battery_wh: Decimal,
    charge_rate: Decimal,
    discharge_rate: Decimal,
    *,
    round_trip_efficiency: Decimal = DEFAULT_ROUND_TRIP_EFFICIENCY,
    depth_of_discharge: Decimal = D1,
    cycles_per_year: int = DEFAULT_CYCLES_PER_YEAR,
    degradation_cost_per_kwh: Decimal = D0,
) -> ArbitrageResult:
    """Charge cheap, discharge dear: ``E_out = Wh/1000 × DoD``, ``E_in = E_out / RTE``;
    ``saving = E_out·p_dis − E_in·p_ch − E_out·c_deg`` per cycle (degradation per kWh *discharged*).
    """
    _positive(battery_wh, "battery_wh")
    _fraction(round_trip_efficiency, "round_trip_efficiency")
    _fraction(depth_of_discharge, "depth_of_discharge")
    if cycles_per_year < 0 or cycles_per_year > 3660:
        raise TariffInputError("cycles_per_year", "must be in [0, 3660]")
    if degradation_cost_per_kwh < 0:
        raise TariffInputError("degradation_cost_per_kwh", "must be ≥ 0")
    e_out = battery_wh / WH_PER_KWH * depth_of_discharge
    e_in = e_out / round_trip_efficiency
    revenue = e_out * discharge_rate
    charge_cost = e_in * charge_rate
    degradation = e_out * degradation_cost_per_kwh
    per_cycle = revenue - charge_cost - degradation
    return ArbitrageResult(
        usable_kwh=e_out,
        kwh_bought_per_cycle=e_in,
        revenue_per_cycle=revenue,
        charge_cost_per_cycle=charge_cost,
        degradation_cost_per_cycle=degradation,
        savings_per_cycle=per_cycle,
        cycles_per_year=cycles_per_year,
        annual_savings=per_cycle * cycles_per_year,
        breakeven_discharge_rate=charge_rate / round_trip_efficiency + degradation_cost_per_kwh,
        profitable=per_cycle > 0,
    )


def _positive(v: Decimal, field: str) -> None:
    if v <= 0:
        raise TariffInputError(field, f"must be greater than 0, got {v}")


def _fraction(v: Decimal, field: str) -> None:
    if not D0 < v <= D1:
        raise TariffInputError(field, f"must be in (0, 1], got {v}")


def mean_price_over(rate: CompiledRate, schedule: Iterable[tuple[Decimal, Decimal]]) -> Decimal:
    """Time-weighted typical-year price over schedule windows (e.g. an EV charging window)."""
    hours = D0
    integral = D0
    for s, e in schedule:
        hours += e - s
        integral += rate.typical.integral_wrapped(s, e)
    if hours <= 0:
        return rate.flat_or_average
    return integral / hours


__all__ = [
    "ArbitrageResult",
    "BlockTier",
    "ChargingCost",
    "CompiledRate",
    "CostResult",
    "DayCost",
    "DeviceUsage",
    "HouseholdCost",
    "Load",
    "PeriodCost",
    "Periods",
    "PowerState",
    "Profile",
    "RateSpec",
    "ShiftResult",
    "TariffInputError",
    "TierUse",
    "TouTier",
    "Window",
    "arbitrage",
    "cheapest_start",
    "compile_rate",
    "dec",
    "device_cost",
    "electronics_charging_cost",
    "energy_only_day_cost",
    "ev_charging_cost",
    "household_cost",
    "mean_price_over",
    "parse_device",
    "parse_rate_config",
    "parse_schedule",
    "period_cost",
    "round_money",
    "scheduled_load",
    "shift_savings",
    "time_cost",
    "typical_day_cost",
]
