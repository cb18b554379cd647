"""Shared fixtures: a real database per test (SQLite file, or a fresh PostgreSQL schema when
``POWERMETER_TEST_POSTGRES_URL`` is set), Redis when ``POWERMETER_TEST_REDIS_URL`` is set, a frozen
clock, the app, a client and API keys."""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import settings as hypothesis_settings

from powermeter.accounts import repository as account_repo
from powermeter.accounts import service as account_service
from powermeter.app import create_app
from powermeter.composition import register_tables
from powermeter.infra.clock import FrozenClock
from powermeter.infra.db import make_engine, migrate
from powermeter.infra.state import AppState
from powermeter.settings import Settings
from tests.accounts import accounts_for

# Property tests assert behaviour, never speed: no per-example deadline (a loaded CI machine would
# fail them at random). Timing belongs in benchmarks/.
hypothesis_settings.register_profile("powermeter", deadline=None)
hypothesis_settings.load_profile("powermeter")

PG_URL = os.environ.get("POWERMETER_TEST_POSTGRES_URL") or None
REDIS_URL = os.environ.get("POWERMETER_TEST_REDIS_URL") or None
SECRET = "test-secret-0123456789abcdef0123456789abcdef"
START = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)

needs_postgres = pytest.mark.skipif(PG_URL is None, reason="set POWERMETER_TEST_POSTGRES_URL to run")
needs_redis = pytest.mark.skipif(REDIS_URL is None, reason="set POWERMETER_TEST_REDIS_URL to run")


def pg_schema_url(base: str, schema: str) -> str:
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options=-csearch_path%3D{schema}"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test (faster than migrating every time)."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    register_tables()
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    engine.dispose()  # the last connection closing checkpoints the WAL into the file
    return path


@contextlib.contextmanager
def fresh_pg_schema() -> Iterator[str]:
    """The URL of a new, empty schema of the test PostgreSQL (dropped afterwards)."""
    assert PG_URL is not None
    schema = "t_" + uuid.uuid4().hex[:16]
    admin = sa.create_engine(PG_URL)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    try:
        yield pg_schema_url(PG_URL, schema)
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.dispose()


@pytest.fixture
def database_url(tmp_path: Path, sqlite_template: Path) -> Iterator[str]:
    if PG_URL:
        with fresh_pg_schema() as url:
            yield url
    else:
        db = tmp_path / "powermeter.db"
        shutil.copyfile(sqlite_template, db)
        yield f"sqlite:///{db}"


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(START)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        env="test",
        data_dir=tmp_path / "data",
        database_url=database_url,
        redis_url=REDIS_URL,
        ratelimit_prefix="pmtest-" + uuid.uuid4().hex[:12],
        secret_key=SECRET,
        log_requests=False,
    )


@pytest.fixture
def app(settings: Settings, clock: FrozenClock) -> Iterator[FastAPI]:
    application = create_app(settings, clock=clock)
    yield application
    application.state.pm.db.dispose()


@pytest.fixture
def state(app: FastAPI) -> AppState:
    st: AppState = app.state.pm
    return st


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as c:
        yield c


MakeKey = Callable[..., str]


@pytest.fixture
def make_key(state: AppState, clock: FrozenClock) -> MakeKey:
    """``make_key(email=..., scopes=[...], plan=..., name=...)`` → a fresh raw API key."""

    def _make(
        email: str = "user@example.com",
        scopes: Sequence[str] | None = None,
        plan: str | None = None,
        name: str = "test key",
    ) -> str:
        with state.db.begin() as conn:
            row = account_repo.get_account_by_email(conn, email)
            if row is None:
                acct = accounts_for(state.settings).create_account(conn, email, clock.now(), plan=plan)
            else:
                acct = row.id
                if plan:
                    account_service.set_plan(conn, state.settings, acct, plan)
            return accounts_for(state.settings).create_key(conn, acct, name, clock.now(), scopes).key

    return _make


@pytest.fixture
def api_key(make_key: MakeKey) -> str:
    return make_key()


@pytest.fixture
def auth(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


# The fast loop (`pytest -m "not slow"`, README "Development"): tests that start servers or command-line
# processes, drive a browser, inject faults or search with many generated examples are `slow`. Marked
# here by where they live, so a new test in one of these files is slow without anyone remembering to say so.
_SLOW_PATHS = (
    "tests/e2e/",
    "tests/integration/faults/",
    "tests/integration/gateway/test_gateway_live.py",
    "tests/integration/tracking/",
    "tests/integration/proxy/",
    "tests/integration/jobs/test_seed_examples_live.py",
    "tests/integration/accounts/test_cli.py",
    "tests/integration/accounts/test_cli_hardening.py",
    "tests/integration/accounts/test_concurrency.py",
    "tests/integration/accounts/test_scaleout_quotas.py",
    "tests/integration/jobs/test_kill_under_load.py",
    "tests/integration/accounts/test_forwarded_headers.py",
    "tests/integration/audit/test_audit_cli.py",
    "tests/integration/cost/test_bill_cli.py",
    "tests/integration/web/test_login_lockout.py",
    "tests/contract/test_schemathesis_live.py",
)
_SLOW_TESTS = (
    "test_bytes_equal_the_rfc8785_package",  # thousands of generated documents (CI runs them)
    "test_every_double_is_written_as_ecmascript_number_to_string",
    "test_number_fragments_are_the_numbers_json_form_or_none",
    "test_receipts_check_cli_names_the_altered_receipt_and_exits_1",
    "test_saved_receipt_verifies_with_the_cli_and_fails_when_altered",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    root = Path(str(config.rootpath))
    for item in items:
        rel = Path(str(item.path)).relative_to(root).as_posix()
        if rel.startswith(_SLOW_PATHS) or item.name.split("[")[0] in _SLOW_TESTS:
            item.add_marker(pytest.mark.slow)
