"""A validated :class:`RateSpec` compiled into price profiles per (month, day kind) and a typical day."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from fractions import Fraction

from powermeter.methodology.tariff.local_time import (
    DAY_TYPES,
    day_type_label,
    is_weekend,
    tier_applies,
    typical_year_weight,
)
from powermeter.methodology.tariff.model import D0, D1, HOURS_PER_DAY, RateSpec, TariffInputError, TouTier
from powermeter.methodology.tariff.numbers import fmt_hours
from powermeter.methodology.tariff.profile import Profile


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
                f"tier {t.name!r} overlaps tier {other!r} "
                f"between {fmt_hours(a)} and {fmt_hours(min(cursor, b))}{where}",
            )
        if a > cursor:
            if flat is None:
                raise TariffInputError(
                    f"{field}.tou_tiers",
                    f"tiers leave {fmt_hours(cursor)}–{fmt_hours(a)} uncovered{where} and there is no flat_rate",
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
                f"tiers leave {fmt_hours(cursor)}–24:00 uncovered{where} and there is no flat_rate",
            )
        prices.append(flat)
        names.append("flat")
        breaks.append(HOURS_PER_DAY)
    return Profile.build(breaks, prices, names)


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
        return self.profiles[(day.month, is_weekend(day, holidays, self.spec.holidays_as_weekend))]


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
        flat_profiles = dict.fromkeys(DAY_TYPES, prof)
        return CompiledRate(spec, False, flat_profiles, ((prof, D1),), prof, flat)

    groups: dict[tuple[int, bool], tuple[int, ...]] = {
        (m, weekend): tuple(i for i, t in enumerate(spec.tou_tiers) if tier_applies(t.days, t.months, m, weekend))
        for m, weekend in DAY_TYPES
    }
    built: dict[tuple[int, ...], Profile] = {}
    profiles: dict[tuple[int, bool], Profile] = {}
    weights: dict[tuple[int, ...], Fraction] = {}
    for (m, weekend), idxs in groups.items():
        if idxs not in built:
            where = day_type_label(m, weekend)
            built[idxs] = _build_profile([(i, spec.tou_tiers[i]) for i in idxs], flat, field, where)
        profiles[(m, weekend)] = built[idxs]
        weights[idxs] = weights.get(idxs, Fraction(0)) + typical_year_weight(m, weekend)
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
