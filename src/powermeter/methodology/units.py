"""Units and provenance shared by every methodology module.

Units live in names (``energy_kwh``, ``intensity_g_per_kwh``, ``power_w``); this module holds the
conversion constants and the :class:`Factor` record that carries a number's provenance.
"""

from __future__ import annotations

from dataclasses import dataclass

WH_PER_KWH = 1000.0
W_PER_KW = 1000.0
MINUTES_PER_HOUR = 60.0
SECONDS_PER_HOUR = 3600.0
MS_PER_SECOND = 1000.0
G_PER_KG = 1000.0
ML_PER_L = 1000.0


@dataclass(frozen=True, slots=True)
class Factor:
    """One constant used in a calculation, with where it comes from.

    ``dataset_version`` is the content hash of the dataset the value was read from
    (``None`` for constants written in code, whose source is the methodology version).
    """

    name: str
    value: float
    unit: str
    source: str
    dataset_version: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "value": self.value,
            "unit": self.unit,
            "source": self.source,
            "dataset_version": self.dataset_version,
        }


@dataclass(frozen=True, slots=True)
class Estimate:
    """A central value with an optional [min, max] range, in the unit named by the caller."""

    value: float
    min: float | None = None
    max: float | None = None

    def scaled(self, k: float) -> Estimate:
        return Estimate(
            self.value * k,
            None if self.min is None else self.min * k,
            None if self.max is None else self.max * k,
        )
