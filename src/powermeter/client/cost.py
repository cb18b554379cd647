"""Electricity-cost calculator (seed 003, public, under ``/calc``) and tracked devices (seed 001,
``/api/v1/me``, ``X-API-Key``)."""

from __future__ import annotations

from typing import Any, cast

from powermeter.client._base import Http
from powermeter.client.types import CostResult, Device, DeviceUsage, Profile, RateConfig, ShiftSavings


def _rate(body: dict[str, Any], rate_config: RateConfig | dict[str, Any] | None, region_code: str | None) -> None:
    if rate_config is not None:
        body["rateConfig"] = rate_config
    if region_code is not None:
        body["regionCode"] = region_code


class CostAPI:
    """Public endpoints: no API key is sent."""

    def __init__(self, http: Http, prefix: str = "/calc") -> None:
        self._http = http
        self._p = prefix.rstrip("/")

    def cost(
        self,
        device: DeviceUsage | dict[str, Any],
        *,
        rate_config: RateConfig | dict[str, Any] | None = None,
        region_code: str | None = None,
        **extra: Any,
    ) -> CostResult:
        """``POST /api/cost``: daily, monthly and annual cost of a device (flat, TOU, annual_kwh, power_states)."""
        body: dict[str, Any] = {"device": device, **extra}
        _rate(body, rate_config, region_code)
        return cast(CostResult, self._http.json("POST", f"{self._p}/api/cost", json=body, auth="none"))

    def shift_savings(
        self,
        device: DeviceUsage | dict[str, Any],
        *,
        rate_config: RateConfig | dict[str, Any] | None = None,
        region_code: str | None = None,
    ) -> ShiftSavings:
        """``POST /api/shift-savings``: the cheapest continuous run window on a TOU rate."""
        body: dict[str, Any] = {"device": device}
        _rate(body, rate_config, region_code)
        return cast(ShiftSavings, self._http.json("POST", f"{self._p}/api/shift-savings", json=body, auth="none"))

    def battery_cost(self, **params: Any) -> dict[str, Any]:
        """``POST /api/battery-cost`` (``mode="ev"``: battery_kwh, miles_per_month, efficiency_mi_per_kwh …)."""
        return cast(dict[str, Any], self._http.json("POST", f"{self._p}/api/battery-cost", json=params, auth="none"))

    def arbitrage(self, battery_wh: float, charge_rate: float, discharge_rate: float, **params: Any) -> dict[str, Any]:
        """``POST /api/arbitrage``: savings from charging cheap and discharging dear."""
        body = {"battery_wh": battery_wh, "charge_rate": charge_rate, "discharge_rate": discharge_rate, **params}
        return cast(dict[str, Any], self._http.json("POST", f"{self._p}/api/arbitrage", json=body, auth="none"))

    def rates(self, region_code: str) -> dict[str, Any]:
        """``GET /api/rates/{regionCode}``: flat rate and TOU tiers of a location."""
        return cast(dict[str, Any], self._http.json("GET", f"{self._p}/api/rates/{region_code}", auth="none"))

    def rates_index(self) -> Any:
        """``GET /api/rates/index``: every location, slim."""
        return self._http.json("GET", f"{self._p}/api/rates/index", auth="none")


class DevicesAPI:
    """The authenticated device/profile API (``X-API-Key``, 60 requests/minute per token)."""

    def __init__(self, http: Http) -> None:
        self._http = http

    def list(self) -> list[Device]:
        """``GET /api/v1/me/devices``."""
        return cast(list[Device], self._http.json("GET", "/api/v1/me/devices", auth="x-api-key"))

    def get(self, device_id: str) -> Device:
        return cast(Device, self._http.json("GET", f"/api/v1/me/devices/{device_id}", auth="x-api-key"))

    def create(self, name: str, watts: float, hours_per_day: float, **fields: Any) -> Device:
        body = {"name": name, "watts": watts, "hours_per_day": hours_per_day, **fields}
        return cast(Device, self._http.json("POST", "/api/v1/me/devices", json=body, auth="x-api-key"))

    def update(self, device_id: str, **fields: Any) -> Device:
        return cast(Device, self._http.json("PATCH", f"/api/v1/me/devices/{device_id}", json=fields, auth="x-api-key"))

    def delete(self, device_id: str) -> None:
        self._http.request("DELETE", f"/api/v1/me/devices/{device_id}", auth="x-api-key")

    def profile(self) -> Profile:
        """``GET /api/v1/me/profile`` (``{}`` before a profile exists)."""
        return cast(Profile, self._http.json("GET", "/api/v1/me/profile", auth="x-api-key"))
