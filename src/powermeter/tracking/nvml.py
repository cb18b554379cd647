"""GPU energy and utilisation through NVML (``nvidia-ml-py``, the optional ``gpu`` extra).

Per device: energy from ``nvmlDeviceGetTotalEnergyConsumption`` (millijoules since the driver loaded;
Volta and newer) as the difference between samples; when that call is not supported, the power
reading ``nvmlDeviceGetPowerUsage`` (milliwatts) is integrated over the sampling intervals instead of
reporting 0. Utilisation is the mean of ``nvmlDeviceGetUtilizationRates().gpu`` over the samples.
NVML measures whole devices: other processes on the same GPU are included.

``CUDA_VISIBLE_DEVICES`` (numeric indices) limits the devices read; without NVML, or with no device,
the tracker reports no GPU.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field
from typing import Any

MJ_PER_KWH = 3.6e9


@dataclass(slots=True)
class _Device:
    handle: Any
    last_mj: int | None
    total_kwh: float = 0.0
    util_sum: float = 0.0
    util_n: int = 0


@dataclass(slots=True)
class NvmlMeter:
    devices: list[_Device] = field(default_factory=list)
    unavailable_reason: str | None = None
    _nvml: Any = None
    _last_t: float = 0.0

    @classmethod
    def open(cls) -> NvmlMeter:
        meter = cls()
        try:
            import pynvml  # nvidia-ml-py
        except ImportError:
            meter.unavailable_reason = "nvidia-ml-py is not installed (pip install 'powermeter[gpu]')"
            return meter
        try:
            pynvml.nvmlInit()
            count = int(pynvml.nvmlDeviceGetCount())
        except Exception as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded…
            meter.unavailable_reason = f"NVML unavailable: {exc}"
            return meter
        meter._nvml = pynvml
        indices = list(range(count))
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        if visible is not None and all(v.strip().isdigit() for v in visible.split(",") if v.strip()):
            indices = [int(v) for v in visible.split(",") if v.strip() and int(v) < count]
        for i in indices:
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            meter.devices.append(_Device(handle, meter._energy_mj(handle)))
        if not meter.devices:
            meter.unavailable_reason = "no NVIDIA GPU visible"
        meter._last_t = time.monotonic()
        return meter

    def _energy_mj(self, handle: Any) -> int | None:
        try:
            return int(self._nvml.nvmlDeviceGetTotalEnergyConsumption(handle))
        except Exception:  # NotSupported before Volta and on many vGPUs
            return None

    def sample(self) -> None:
        if not self.devices:
            return
        now = time.monotonic()
        dt = now - self._last_t
        self._last_t = now
        for d in self.devices:
            energy = self._energy_mj(d.handle) if d.last_mj is not None else None
            if energy is not None and d.last_mj is not None and energy >= d.last_mj:
                d.total_kwh += (energy - d.last_mj) / MJ_PER_KWH
                d.last_mj = energy
            else:
                d.last_mj = energy
                with contextlib.suppress(Exception):
                    d.total_kwh += self._nvml.nvmlDeviceGetPowerUsage(d.handle) / 1000.0 * dt / 3.6e6
            with contextlib.suppress(Exception):
                d.util_sum += float(self._nvml.nvmlDeviceGetUtilizationRates(d.handle).gpu) / 100.0
                d.util_n += 1

    @property
    def count(self) -> int:
        return len(self.devices)

    def energy_kwh(self) -> float:
        return sum(d.total_kwh for d in self.devices)

    def mean_utilization(self) -> float | None:
        n = sum(d.util_n for d in self.devices)
        return min(1.0, sum(d.util_sum for d in self.devices) / n) if n else None

    def close(self) -> None:
        if self._nvml is not None:
            with contextlib.suppress(Exception):
                self._nvml.nvmlShutdown()
