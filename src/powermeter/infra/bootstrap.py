"""Open the configured database for command-line tools (settings from the environment, migrations
applied). Tools that create accounts or keys build their service with
``powermeter.composition.account_service`` so the audit log hears of it."""

from __future__ import annotations

from powermeter.infra.db import Database, migrate
from powermeter.settings import Settings


def open_database(settings: Settings | None = None) -> tuple[Settings, Database]:
    settings = settings or Settings()
    settings.validate_plans()
    db = Database(settings.resolved_database_url)
    migrate(db.engine)
    return settings, db
