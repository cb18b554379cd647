"""Database engine, metadata and migrations.

SQLite (WAL, ``synchronous=FULL`` so a committed receipt or billing counter survives a power cut,
``BEGIN IMMEDIATE`` so concurrent writers queue instead of failing) is the default; the same
migrations and SQL run on PostgreSQL (psycopg 3).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from powermeter.infra.db.faults import PG_CONNECT_TIMEOUT_S, POOL_TIMEOUT_S, Fault, classify
from powermeter.settings import secure_dir

if TYPE_CHECKING:
    from powermeter.infra.ratelimit import QuotaCounters

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# /healthz reports an SQLite disk with less free space than this as full: a write may need a few
# pages in the WAL plus its index (our choice; docs/operations.md)
SQLITE_MIN_FREE_BYTES = 256 * 1024


def make_engine(url: str, **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:" and not path.startswith("file:"):
            secure_sqlite_file(Path(path))
        engine = sa.create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=kwargs.pop("pool_size", 16),
            max_overflow=kwargs.pop("max_overflow", 32),
            **kwargs,
        )

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _rec: Any) -> None:
            dbapi_conn.isolation_level = None  # let SQLAlchemy emit BEGIN (IMMEDIATE) itself
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            # writers queue on the lock (no upgrade deadlock); read-only connections stay deferred
            if conn.get_execution_options().get("sqlite_read_only"):
                conn.exec_driver_sql("BEGIN")
            else:
                conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    # pre-ping: a connection a database restart left dead is replaced at checkout (with every older
    # one), so the pool recovers without a process restart; the timeouts bound every wait
    # (docs/operations.md)
    connect_args = dict(kwargs.pop("connect_args", {}))
    if url.startswith("postgresql"):
        connect_args.setdefault("connect_timeout", PG_CONNECT_TIMEOUT_S)
    return sa.create_engine(
        url,
        pool_pre_ping=True,
        pool_size=10,
        max_overflow=20,
        pool_timeout=kwargs.pop("pool_timeout", POOL_TIMEOUT_S),
        connect_args=connect_args,
        **kwargs,
    )


def secure_sqlite_file(db: Path) -> None:
    """The database file readable and writable by the service's user only (0600); SQLite gives its WAL
    and shared-memory files the database file's permissions. A directory created here is 0700."""
    if not db.parent.exists():
        secure_dir(db.parent)
    if not db.exists():
        os.close(os.open(db, os.O_CREAT | os.O_WRONLY, 0o600))
    for f in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        if f.exists() and f.stat().st_mode & 0o777 != 0o600:
            f.chmod(0o600)


class Database:
    """The app's database: one transaction (``begin()``) per unit of work."""

    def __init__(
        self,
        url: str,
        engine: Engine | None = None,
        concurrency: int = 16,
        *,
        quotas: QuotaCounters | None = None,
        lanes: int | None = None,
    ) -> None:
        """``quotas`` (a shared admission store, Redis) turns on PostgreSQL group commit over ``lanes``
        connections (infra/db/unit_of_work.py); without it PostgreSQL runs one transaction per request."""
        from powermeter.infra.db.unit_of_work import (
            PG_LANES,
            ConcurrentTransactions,
            PgGroupCommit,
            SQLiteGroupCommit,
        )

        self.url = url
        self.engine = engine or make_engine(url)
        self.units: SQLiteGroupCommit | ConcurrentTransactions | PgGroupCommit
        if self.engine.dialect.name == "sqlite":
            self.units = SQLiteGroupCommit(self.engine)
        elif quotas is not None:
            self.units = PgGroupCommit(self.engine, quotas, lanes or PG_LANES)
        else:
            self.units = ConcurrentTransactions(self.engine, concurrency)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        """A connection for reads (streaming, exports): on SQLite its transactions are deferred,
        so a long read never holds the write lock. Do not write through it."""
        with self.engine.connect() as conn:
            if self.is_sqlite:
                conn = conn.execution_options(sqlite_read_only=True)
            yield conn

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")

    def classify(self, exc: BaseException) -> Fault | None:
        """The outage ``exc`` stands for (infra/db/faults.py); on SQLite a failure to open or write the
        file is named after the state of its disk (read-only, full) when that explains it."""
        fault = classify(exc)
        if fault is not None and self.is_sqlite and fault.cause in ("unreachable", "I/O error"):
            return self._sqlite_disk() or fault
        return fault

    def health(self) -> str:
        """``"ok"``, or ``"down: <cause> (<error type>)"`` naming why writes would fail now."""
        try:
            self.ping()
        except Exception as e:
            fault = self.classify(e)
            return f"down: {fault.cause if fault else 'error'} ({type(e).__name__})"
        if self.is_sqlite:
            fault = self._sqlite_disk()
            if fault is not None:
                return f"down: {fault.cause}"
        return "ok"

    def _sqlite_disk(self) -> Fault | None:
        """A read-only or (nearly) full disk under the SQLite file: writes would fail."""
        import os
        import shutil

        from powermeter.infra.db import faults

        path = self.engine.url.database
        if not path or path == ":memory:":
            return None
        folder = Path(path).resolve().parent
        if not os.access(folder, os.W_OK) or (Path(path).exists() and not os.access(path, os.W_OK)):
            return faults.READ_ONLY
        if shutil.disk_usage(folder).free < SQLITE_MIN_FREE_BYTES:
            return faults.FULL
        return None

    def dispose(self) -> None:
        self.engine.dispose()


def migrate(engine: Engine, revision: str = "head") -> None:
    """Apply the Alembic migrations (idempotent; serialised between processes)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(720001)")
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
