"""Service settings, read from ``POWERMETER_*`` environment variables (and an optional ``.env``)."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Values that must never sign anything in production.
_WEAK_SECRETS = {"", "changeme", "change-me", "secret", "dev", "development", "test", "password", "default"}
MIN_SECRET_LENGTH = 32


@dataclass(frozen=True, slots=True)
class Plan:
    """Limits of a plan. ``None`` means unlimited."""

    name: str
    daily_calls: int | None
    daily_kwh: float | None
    per_minute: int
    route_monthly_calls: int | None
    route_regions: Literal["caiso", "beta", "global"]


# Defaults from the seeds: 000 (dev: 1,000 calls/day, 50 kWh/day, reset 00:00 UTC) and
# 002 (dev 50,000 route calls/month on CAISO; core 500,000 with beta regions; scale 2M+, global).
# The seeds give no daily figures for core and scale: 50× and 1,000× dev are our choice (seed 000 only
# says "upgrade plan for higher limits"); 60/minute is seeds 001 and 003. All are overridable (PLANS_JSON).
DEFAULT_PLANS: dict[str, Plan] = {
    "dev": Plan("dev", 1_000, 50.0, 60, 50_000, "caiso"),
    "core": Plan("core", 50_000, 5_000.0, 60, 500_000, "beta"),
    "scale": Plan("scale", 1_000_000, 100_000.0, 60, 2_000_000, "global"),
}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="POWERMETER_", env_file=".env", extra="ignore")

    env: Literal["development", "production", "test"] = "development"
    data_dir: Path = Path("./.powermeter")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default sqlite:///<data_dir>/powermeter.db"
    )
    redis_url: str | None = None
    ratelimit_prefix: str = Field(default="powermeter", description="Key prefix of rate-limit counters in Redis")
    ratelimit_fail_closed: bool = Field(
        default=False, description="Redis down: answer 503 instead of counting per process (docs/operations.md)"
    )
    pg_group_commit: bool = Field(
        default=True,
        description="PostgreSQL with Redis: group commit on a few lanes per process, quotas admitted in Redis "
        "(docs/scaling.md); false: one transaction per request, quotas checked in the database",
    )
    pg_lanes: int = Field(
        default=2, ge=1, le=16, description="PostgreSQL group commit: connections with an open batch per process"
    )
    secret_key: str | None = Field(default=None, repr=False)
    default_plan: str = "dev"
    plans_json: str | None = Field(
        default=None,
        description='JSON object overriding plans, e.g. {"dev": {"daily_calls": 5000}}',
    )
    max_body_bytes: int = Field(
        default=1 << 20, ge=1024, description="Largest request body accepted (413 above it), except /v1/batch"
    )
    max_batch_body_bytes: int = Field(
        default=16 << 20,
        ge=1024,
        description="Largest /v1/batch body: 10,000 jobs with every field at its maximum length fit in 16 MiB",
    )
    idempotency_lease_s: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="An Idempotency-Key claim whose holder stopped renewing it for this long is taken over",
    )
    signup_enabled: bool = True
    log_requests: bool = True
    compiled_routes: bool = Field(
        default=True,
        description="Serve the JSON API routes through their compiled handlers (infra/fastpath.py); false "
        "sends every request through FastAPI's ordinary stack (same behaviour, more CPU per request)",
    )
    checkpoint_interval_s: int = 3600
    retention_months: int | None = Field(
        default=None,
        ge=1,
        le=1200,
        description="Delete compute-job receipts and AI inference records older than this many whole months "
        "(default: keep everything). See docs/partitioning.md",
    )
    retention_include_closed_periods: bool = Field(
        default=False,
        description="Let retention delete records of an account's closed reporting years too (default: an "
        "account's records from the start of its earliest closed year on are kept)",
    )
    retention_batch_rows: int = Field(
        default=5000,
        ge=1,
        le=20_000,
        description="Retention deletes about this many records a transaction (at most 20,000)",
    )
    retention_interval_s: int = Field(default=86400, ge=60, description="How often the retention task runs")
    grid_provider: str = "static"
    grid_csv_path: Path | None = None
    watttime_username: str | None = None
    watttime_password: str | None = Field(default=None, repr=False)
    electricitymaps_token: str | None = Field(default=None, repr=False)
    eia_api_key: str | None = Field(default=None, repr=False)
    pjm_api_key: str | None = Field(default=None, repr=False)

    @field_validator("default_plan")
    @classmethod
    def _plan_known(cls, v: str) -> str:
        return v.strip().lower()

    @cached_property
    def plans(self) -> dict[str, Plan]:
        plans = dict(DEFAULT_PLANS)
        if self.plans_json:
            raw: dict[str, dict[str, Any]] = json.loads(self.plans_json)
            for name, overrides in raw.items():
                base = plans.get(name, DEFAULT_PLANS["dev"])
                fields: dict[str, Any] = {
                    "name": name,
                    "daily_calls": base.daily_calls,
                    "daily_kwh": base.daily_kwh,
                    "per_minute": base.per_minute,
                    "route_monthly_calls": base.route_monthly_calls,
                    "route_regions": base.route_regions,
                }
                fields.update(overrides)
                plans[name] = Plan(**fields)
        return plans

    def plan(self, name: str) -> Plan:
        return self.plans.get(name) or self.plans[self.default_plan]

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        secure_dir(self.data_dir)  # 0700 (the database files in it are 0600: infra.db)
        return f"sqlite:///{(self.data_dir / 'powermeter.db').resolve()}"

    def resolved_secret(self) -> str:
        """The secret key: from settings, else generated once and kept in ``DATA_DIR/secret_key``.

        Production refuses a missing, short or well-known secret.
        """
        if self.env == "production":
            s = self.secret_key or ""
            if s.strip().lower() in _WEAK_SECRETS or len(s) < MIN_SECRET_LENGTH:
                raise RuntimeError(
                    "POWERMETER_SECRET_KEY must be set to a random value of at least "
                    f"{MIN_SECRET_LENGTH} characters when POWERMETER_ENV=production "
                    "(generate one with: python -c 'import secrets; print(secrets.token_urlsafe(48))')"
                )
            return s
        if self.secret_key:
            return self.secret_key
        secure_dir(self.data_dir)  # 0700: it holds the secret key and, by default, the database
        path = self.data_dir / "secret_key"
        if path.exists():
            return path.read_text().strip()
        value = secrets.token_urlsafe(48)
        path.touch(mode=0o600)
        path.write_text(value + "\n")
        return value

    def validate_plans(self) -> None:
        if self.default_plan not in self.plans:
            raise RuntimeError(
                f"POWERMETER_DEFAULT_PLAN={self.default_plan!r} is not a plan; known: {sorted(self.plans)}"
            )


def secure_dir(path: Path) -> None:
    """Create ``path`` (and parents) and make it private to the service's user (0700)."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if path.stat().st_mode & 0o777 != 0o700:
        path.chmod(0o700)
