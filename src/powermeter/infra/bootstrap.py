"""Open the configured database for command-line tools (settings from the environment,
every table registered, migrations applied)."""

from __future__ import annotations

from powermeter.infra.db import Database, import_all_tables, migrate
from powermeter.settings import Settings


def open_database(settings: Settings | None = None) -> tuple[Settings, Database]:
    import importlib

    settings = settings or Settings()
    settings.validate_plans()
    import_all_tables()
    for mod in ("powermeter.audit.service",):
        try:
            importlib.import_module(mod)  # registers account/key event listeners
        except ModuleNotFoundError as e:
            if e.name != mod:
                raise
    db = Database(settings.resolved_database_url)
    migrate(db.engine)
    return settings, db
