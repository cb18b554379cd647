"""NVML accounting logic. No NVIDIA GPU or driver exists on the test machine, so a stand-in ``pynvml``
module (the same function names and units as nvidia-ml-py) is put on the import path; everything else
is the real code. Without any ``pynvml`` the tracker reports no GPU and says why."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from powermeter.tracking.nvml import NvmlMeter

FAKE = """
class NVMLError(Exception):
    pass

STATE = {"energy_mj": [1_000, None], "power_mw": [100_000, 250_000], "util": [50, 100]}

class _Util:
    def __init__(self, gpu):
        self.gpu = gpu

def nvmlInit(): pass
def nvmlShutdown(): pass
def nvmlDeviceGetCount(): return 2
def nvmlDeviceGetHandleByIndex(i): return i
def nvmlDeviceGetTotalEnergyConsumption(h):
    v = STATE["energy_mj"][h]
    if v is None:
        raise NVMLError("Not Supported")  # before Volta
    return v
def nvmlDeviceGetPowerUsage(h): return STATE["power_mw"][h]
def nvmlDeviceGetUtilizationRates(h): return _Util(STATE["util"][h])
"""


@pytest.fixture
def fake_pynvml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    (tmp_path / "pynvml.py").write_text(FAKE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "pynvml", raising=False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    import pynvml

    yield pynvml
    sys.modules.pop("pynvml", None)


def test_energy_counter_differences_and_power_integration(fake_pynvml: object) -> None:
    meter = NvmlMeter.open()
    assert meter.count == 2
    state = fake_pynvml.STATE  # type: ignore[attr-defined]
    state["energy_mj"][0] = 1_000 + 3_600_000  # device 0: 3,600 J = 0.001 kWh
    meter.sample()
    energy = meter.energy_kwh()
    # device 1 has no energy counter: 250 W integrated over the (short) interval since opening
    assert energy >= 0.001
    assert energy < 0.001 + 250 * 5 / 3.6e6  # the interval is well under 5 s
    assert meter.mean_utilization() == pytest.approx(0.75)
    meter.close()


def test_cuda_visible_devices_limits_the_devices(fake_pynvml: object, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    meter = NvmlMeter.open()
    assert meter.count == 1


def test_without_nvidia_ml_py_no_gpu_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails as if not installed
    meter = NvmlMeter.open()
    assert meter.count == 0
    assert "nvidia-ml-py is not installed" in (meter.unavailable_reason or "")
