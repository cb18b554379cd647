"""CPU package and DRAM energy from the Linux powercap tree (Intel RAPL; AMD since Linux 5.8).

Each RAPL domain is a directory ``intel-rapl:N`` (package ``N``) or ``intel-rapl:N:M`` (its sub-domains:
``core``, ``uncore``, ``dram``) holding ``name``, ``energy_uj`` (a counter in microjoules) and
``max_energy_range_uj`` (the value at which the counter wraps to 0). ``intel-rapl-mmio:N`` exposes the
same domains through MMIO. We read:

- ``package-*`` domains → CPU energy (``core``/``uncore`` are parts of the package: never added);
- ``dram`` domains → memory energy;
- ``psys`` is ignored (it contains the package: adding it would double count).

A domain seen through both MSR and MMIO is counted once (MMIO preferred). Energy is the sum of counter
differences between samples; a counter lower than the previous reading has wrapped, so
``max_energy_range_uj`` is added. If that range is unreadable, the sample is skipped (counted in
``skipped_wraps``), never turned into a negative or huge delta. Sample at least every ~60 s: a package
counter can wrap twice in longer gaps under heavy load (Intel), which cannot be detected.

The tree's root is ``/sys/class/powercap``, or the ``POWERMETER_POWERCAP_DIR`` setting / the
``--powercap-dir`` option (tests use a fake tree). Since CVE-2020-8694 most distributions make
``energy_uj`` readable by root only; the tracker then reports no measured energy and says why.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_POWERCAP_DIR = "/sys/class/powercap"
POWERCAP_ENV = "POWERMETER_POWERCAP_DIR"
UJ_PER_KWH = 3.6e12


def powercap_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    return Path(explicit or os.environ.get(POWERCAP_ENV) or DEFAULT_POWERCAP_DIR)


def _read_int(path: Path) -> int:
    return int(path.read_text().strip())


@dataclass(slots=True)
class RaplDomain:
    path: Path
    name: str  # package-0, dram…
    component: str  # "cpu" or "memory"
    max_range_uj: int | None
    last_uj: int
    total_uj: int = 0


@dataclass(slots=True)
class RaplMeter:
    """Accumulates the energy of every usable domain between :meth:`sample` calls."""

    root: Path
    domains: list[RaplDomain] = field(default_factory=list)
    unavailable_reason: str | None = None
    skipped_wraps: int = 0

    @classmethod
    def open(cls, root: str | os.PathLike[str] | None = None) -> RaplMeter:
        meter = cls(powercap_dir(root))
        meter._discover()
        return meter

    @property
    def available(self) -> bool:
        return bool(self.domains)

    def _discover(self) -> None:
        try:
            entries = sorted(p for p in self.root.iterdir() if p.name.startswith("intel-rapl"))
        except OSError as exc:
            self.unavailable_reason = f"no powercap tree at {self.root} ({exc.strerror or exc})"
            return
        chosen: dict[tuple[str, str], RaplDomain] = {}
        denied: list[str] = []
        for d in entries:
            try:
                name = (d / "name").read_text().strip()
            except OSError:
                continue
            if name.startswith("package"):
                component = "cpu"
            elif name == "dram":
                component = "memory"
            else:
                continue  # core/uncore are inside the package; psys contains it
            # the package a domain belongs to: intel-rapl:0:0 → 0 (so each package's dram stays separate)
            parts = d.name.split(":")
            package = parts[1] if len(parts) > 1 else d.name
            key = (name, package if component == "memory" else "")
            try:
                value = _read_int(d / "energy_uj")
            except PermissionError:
                denied.append(str(d / "energy_uj"))
                continue
            except (OSError, ValueError):
                continue
            try:
                max_range: int | None = _read_int(d / "max_energy_range_uj")
            except (OSError, ValueError):
                max_range = None
            domain = RaplDomain(d, name, component, max_range, value)
            if key not in chosen or "mmio" in d.name:
                chosen[key] = domain
        self.domains = list(chosen.values())
        if not self.domains:
            if denied:
                self.unavailable_reason = (
                    f"RAPL counters are not readable by this user ({denied[0]}); since CVE-2020-8694 they are "
                    "root-only: see the README ('measure a job') to grant read access"
                )
            else:
                self.unavailable_reason = f"no RAPL package domain under {self.root}"

    def sample(self) -> None:
        for d in self.domains:
            try:
                value = _read_int(d.path / "energy_uj")
            except (OSError, ValueError):
                continue
            delta = value - d.last_uj
            if delta < 0:
                if d.max_range_uj is None or d.max_range_uj <= 0:
                    self.skipped_wraps += 1
                    d.last_uj = value
                    continue
                delta += d.max_range_uj
            d.total_uj += delta
            d.last_uj = value

    def energy_kwh(self) -> dict[str, float]:
        """Energy since opening, per component present (``cpu``, ``memory``)."""
        out: dict[str, float] = {}
        for d in self.domains:
            out[d.component] = out.get(d.component, 0.0) + d.total_uj / UJ_PER_KWH
        return out
