"""Request and response shapes of the devices & profile API (seed 001)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from powermeter.infra.validation import NO_CONTROL_PATTERN

SCHEDULE_DOC = (
    "Array of [start_hour, end_hour] tuples. Hours are 0–23; end_hour can exceed 24 for overnight windows "
    "(e.g. [22, 30] = 10 pm–6 am)"
)


class DeviceIn(BaseModel):
    """POST body. From the catalog, ``watts`` and ``name`` default to the catalog entry (a snapshot)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "NAS",
                    "catalog_device_slug": "synology-ds923",
                    "watts": 30,
                    "hours_per_day": 24,
                    "schedule": [[0, 24]],
                },
                {"name": "Dishwasher", "watts": 1800, "hours_per_day": 1.5, "shiftable": True},
            ]
        },
    )

    name: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        pattern=NO_CONTROL_PATTERN,
        description="User-assigned label (no control characters)",
    )
    catalog_device_slug: str | None = Field(default=None, max_length=100, description="Catalog entry slug")
    watts: float | None = Field(default=None, ge=0, le=1_000_000, description="Watts (snapshot of the catalog)")
    hours_per_day: float | None = Field(default=None, ge=0, le=24, description="Average daily runtime")
    schedule: list[list[float]] | None = Field(default=None, description=SCHEDULE_DOC)
    shiftable: bool = Field(default=False, description="Whether the device supports TOU shift optimization")
    metadata: dict[str, Any] = Field(default_factory=dict, description="Freeform device metadata")


class DevicePatch(BaseModel):
    """PATCH body: only the fields sent are changed (``null`` clears schedule or catalog slug)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"hours_per_day": 6}]})

    name: str | None = Field(default=None, min_length=1, max_length=200, pattern=NO_CONTROL_PATTERN)
    catalog_device_slug: str | None = Field(default=None, max_length=100)
    watts: float | None = Field(default=None, ge=0, le=1_000_000)
    hours_per_day: float | None = Field(default=None, ge=0, le=24)
    schedule: list[list[float]] | None = None
    shiftable: bool | None = None
    metadata: dict[str, Any] | None = None


class DeviceOut(BaseModel):
    id: str = Field(description="Device UUID")
    name: str
    catalog_device_slug: str | None
    watts: int | float
    hours_per_day: int | float
    schedule: list[list[int | float]] | None
    shiftable: bool
    metadata: dict[str, Any]
    created_at: str
    updated_at: str


class ProfileIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"region_code": "US-CA", "rate_config": None},
                {"region_code": None, "rate_config": {"flat_rate": 0.15}},
            ]
        },
    )

    region_code: str | None = Field(default=None, max_length=16, description="Location used to look up rates")
    rate_config: dict[str, Any] | None = Field(default=None, description="Custom rate override (same as rateConfig)")


class ProfileOut(BaseModel):
    region_code: str | None = None
    rate_config: dict[str, Any] | None = None
    created_at: str | None = None


DEVICE_EXAMPLE = {
    "id": "0b5e1c4e-7a53-4d1e-9f5a-1c1b0f6f2a11",
    "name": "NAS",
    "catalog_device_slug": "synology-ds923",
    "watts": 30,
    "hours_per_day": 24,
    "schedule": [[0, 24]],
    "shiftable": False,
    "metadata": {},
    "created_at": "2025-01-15T10:00:00Z",
    "updated_at": "2025-03-01T08:22:00Z",
}
