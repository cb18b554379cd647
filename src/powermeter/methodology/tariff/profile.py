"""A piecewise-constant price over one local day, with exact integrals."""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from powermeter.methodology.tariff.model import D0, HOURS_PER_DAY


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
