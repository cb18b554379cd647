"""The composition root: the one place that builds the service's parts and connects them.

Reading this module tells every moving part and every wire between them:

* :func:`build_core` opens the database and makes the clock, the signer and the rate limiter;
* :func:`build_services` loads the reference datasets once and builds each capability's service with
  what it needs (its datasets, the signer, the database), and subscribes the listeners of events:

  - account and key events (account created, key created, key revoked) → the audit log;
  - receipt reads and downloads (API and dashboard alike) → the audit log;

* :meth:`Services.startup` and :meth:`Services.background_tasks` are what the app's lifespan runs.

``create_app()`` (``powermeter.app``) and the command-line tools call these; routers and dashboard pages
receive the services through the ``Annotated[..., Depends]`` aliases of each capability's ``deps.py``.
Nothing registers itself on import.
"""

from __future__ import annotations

from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from powermeter.accounts import service as accounts
from powermeter.audit import service as audit
from powermeter.cost.service import RatesProvider
from powermeter.data.devices import load_catalog as load_device_catalog
from powermeter.devices.service import Devices
from powermeter.inference.service import Engine, build_engine
from powermeter.infra.clock import Clock, SystemClock
from powermeter.infra.db import Database, metadata, migrate
from powermeter.infra.ratelimit import QuotaCounters, RateLimiter
from powermeter.infra.security import Signer
from powermeter.infra.state import AppState
from powermeter.jobs.service import ComputeJobs, ReceiptViews
from powermeter.reports import retention
from powermeter.routing import service as routing
from powermeter.settings import Settings


def register_tables() -> sa.MetaData:
    """Every capability's tables on the shared metadata (the schema itself comes from the migrations)."""
    import powermeter.accounts.tables
    import powermeter.audit.tables
    import powermeter.cost.tables
    import powermeter.devices.tables
    import powermeter.inference.tables
    import powermeter.infra.db.idempotency
    import powermeter.jobs.tables
    import powermeter.reports.tables
    import powermeter.routing.tables
    import powermeter.web.tables  # noqa: F401  (the dashboard's sessions)

    return metadata


def build_core(settings: Settings, *, clock: Clock | None = None, run_migrations: bool = True) -> AppState:
    """The shared resources: settings (validated), database (migrated), clock, signer and rate limiter.
    Nothing connects yet except the migration run."""
    settings.validate_plans()
    secret = settings.resolved_secret()
    register_tables()
    url = settings.resolved_database_url
    quotas = None
    if settings.redis_url and settings.pg_group_commit and url.startswith("postgresql"):
        # exact daily quotas admitted in Redis; the database keeps the durable ledger (docs/scaling.md)
        quotas = QuotaCounters(settings.redis_url, key_prefix=settings.ratelimit_prefix)
    db = Database(url, quotas=quotas, lanes=settings.pg_lanes)
    if run_migrations:
        migrate(db.engine)
    return AppState(
        settings=settings,
        db=db,
        clock=clock or SystemClock(),
        signer=Signer(secret),
        secret=secret,
        limiter=RateLimiter(
            settings.redis_url, key_prefix=settings.ratelimit_prefix, fail_closed=settings.ratelimit_fail_closed
        ),
    )


def account_service(settings: Settings, secret: str) -> accounts.AccountService:
    """Accounts and keys, with the audit log subscribed to their events (the CLI needs only this)."""
    return accounts.AccountService(settings, secret, accounts.KeyEvents(listeners=(audit.record_key_event,)))


@dataclass(frozen=True, slots=True)
class Services:
    """Every service of one app (or one command-line run), built once; immutable."""

    core: AppState
    accounts: accounts.AccountService
    jobs: ComputeJobs
    receipts: ReceiptViews
    inference: Engine
    routing: routing.RoutingService
    rates: RatesProvider
    devices: Devices

    def startup(self) -> None:
        """Before the first request (on the event loop): sign the audit chains that moved while the
        server was down; bind a live grid provider's cache to the loop."""
        core = self.core
        audit.checkpoint_at_startup(core.db, core.signer, core.clock)
        routing.startup(self.routing)

    def background_tasks(self) -> list[Coroutine[Any, Any, None]]:
        """For the app's lifetime (cancelled at shutdown): hourly audit checkpoints, the live grid
        provider's refresh, the flush of ``/route`` call counts and, when ``retention_months`` is set,
        daily retention."""
        core = self.core
        tasks = [
            audit.checkpoint_task(core.db, core.signer, core.clock, core.settings.checkpoint_interval_s),
            routing.keep_warm(self.routing, core.clock),
            routing.flush_route_calls(self.routing, core.db),
        ]
        policy = retention_policy(core.settings)
        if policy is not None:
            tasks.append(retention.retention_task(core.db, core.clock, policy, core.settings.retention_interval_s))
        return tasks


def retention_policy(settings: Settings) -> retention.Policy | None:
    """The retention settings (``None``: retention is off)."""
    if settings.retention_months is None:
        return None
    return retention.Policy(
        settings.retention_months, settings.retention_include_closed_periods, settings.retention_batch_rows
    )


def build_services(core: AppState) -> Services:
    """Load the datasets once and build every capability's service around the shared core."""
    rates = RatesProvider(core.db)
    return Services(
        core=core,
        accounts=account_service(core.settings, core.secret),
        jobs=ComputeJobs(),
        receipts=ReceiptViews(core.signer, listeners=(audit.record_receipt_access,)),
        inference=build_engine(),
        routing=routing.RoutingService.from_settings(core.settings),
        rates=rates,
        devices=Devices(load_device_catalog(), rates),
    )
