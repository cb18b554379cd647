"""RAPL from a fake powercap tree (real files): domain choice, wrap-around, unreadable ranges."""

from __future__ import annotations

from pathlib import Path

import pytest

from powermeter.tracking.rapl import UJ_PER_KWH, RaplMeter


def _domain(root: Path, d: str, name: str, value: int, top: int | None = 2**32) -> Path:
    p = root / d
    p.mkdir(parents=True)
    (p / "name").write_text(name + "\n")
    (p / "energy_uj").write_text(f"{value}\n")
    if top is not None:
        (p / "max_energy_range_uj").write_text(f"{top}\n")
    return p


def _set(p: Path, value: int) -> None:
    (p / "energy_uj").write_text(f"{value}\n")


def test_packages_and_dram_are_summed_with_wraps(tmp_path: Path) -> None:
    pkg0 = _domain(tmp_path, "intel-rapl:0", "package-0", 900, top=1000)
    pkg1 = _domain(tmp_path, "intel-rapl:1", "package-1", 10)
    core = _domain(tmp_path, "intel-rapl:0:0", "core", 10)
    dram = _domain(tmp_path, "intel-rapl:0:1", "dram", 50, top=100)
    _domain(tmp_path, "intel-rapl:2", "psys", 10)
    meter = RaplMeter.open(tmp_path)
    assert sorted(d.name for d in meter.domains) == ["dram", "package-0", "package-1"]
    _set(pkg0, 100)  # wrapped: 900 → 1000 → 100 = 200 µJ
    _set(pkg1, 1_010)  # 1,000 µJ
    _set(core, 99_999)  # ignored: inside the package
    _set(dram, 20)  # wrapped: 70 µJ
    meter.sample()
    _set(pkg0, 600)  # 500 µJ more
    _set(dram, 30)  # 10 µJ
    meter.sample()
    meter.sample()  # nothing moved: nothing added
    assert meter.energy_kwh() == {"cpu": pytest.approx(1_700 / UJ_PER_KWH), "memory": pytest.approx(80 / UJ_PER_KWH)}


def test_a_counter_going_back_without_a_known_range_is_skipped(tmp_path: Path) -> None:
    pkg = _domain(tmp_path, "intel-rapl:0", "package-0", 5_000, top=None)
    meter = RaplMeter.open(tmp_path)
    _set(pkg, 100)
    meter.sample()
    _set(pkg, 400)
    meter.sample()
    assert meter.skipped_wraps == 1
    assert meter.energy_kwh() == {"cpu": pytest.approx(300 / UJ_PER_KWH)}  # never negative


def test_msr_and_mmio_views_of_one_package_count_once(tmp_path: Path) -> None:
    msr = _domain(tmp_path, "intel-rapl:0", "package-0", 0)
    mmio = _domain(tmp_path, "intel-rapl-mmio:0", "package-0", 0)
    meter = RaplMeter.open(tmp_path)
    _set(msr, 1_000)
    _set(mmio, 1_000)
    meter.sample()
    assert meter.energy_kwh() == {"cpu": pytest.approx(1_000 / UJ_PER_KWH)}


def test_unavailable_trees_say_why(tmp_path: Path) -> None:
    missing = RaplMeter.open(tmp_path / "absent")
    assert not missing.available
    assert "no powercap tree" in (missing.unavailable_reason or "")
    _domain(tmp_path, "intel-rapl:0:0", "core", 1)
    only_core = RaplMeter.open(tmp_path)
    assert not only_core.available
    assert "no RAPL package domain" in (only_core.unavailable_reason or "")
