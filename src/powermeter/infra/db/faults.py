"""What a database failure means for a client: which are outages (503 / 507 with ``Retry-After``)
rather than bugs (500). See docs/operations.md for how each one looks from outside.

The classification reads the driver's own error codes (SQLite result codes, PostgreSQL SQLSTATE
classes), never the free text alone, and never reveals the connection string.
"""

from __future__ import annotations

import errno
import sqlite3
from dataclasses import dataclass

import psycopg
from sqlalchemy import exc as sa_exc

# Bounds on how long a request may wait for the database (documented in docs/operations.md).
DATABASE_ERRORS: tuple[type[Exception], ...] = (sa_exc.SQLAlchemyError, sqlite3.Error, psycopg.Error)
"""Anything the database layer can raise (for handlers outside it; the hot paths send some statements
on the drivers directly, whose errors SQLAlchemy does not wrap)."""
UNIQUE_VIOLATIONS: tuple[type[Exception], ...] = (sa_exc.IntegrityError, sqlite3.IntegrityError, psycopg.IntegrityError)
"""A unique or primary-key constraint refused a row (a concurrent writer stored it first)."""

PG_CONNECT_TIMEOUT_S = 3  # libpq connect_timeout: a host that does not answer fails after this
POOL_TIMEOUT_S = 10  # waiting for a free pooled connection
UNIT_WAIT_TIMEOUT_S = 15.0  # waiting for this process's turn to open a unit of work

# SQLite primary result codes (sqlite.org/rescode.html)
_SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_NOMEM, _SQLITE_READONLY = 5, 6, 7, 8
_SQLITE_IOERR, _SQLITE_CORRUPT, _SQLITE_FULL, _SQLITE_CANTOPEN = 10, 11, 13, 14


@dataclass(frozen=True, slots=True)
class Fault:
    """A database condition a client can wait out: HTTP status, codes, a short cause and a pause."""

    status: int
    code: str  # error_code of the /v1 family
    slug: str  # error of the /api/v1 and /calc families
    cause: str  # short, fixed vocabulary: shown in /healthz, logs and metrics
    retry_after: int
    detail: str


UNAVAILABLE = Fault(
    503,
    "DATABASE_UNAVAILABLE",
    "database_unavailable",
    "unreachable",
    5,
    "the database is unreachable (down, restarting or refusing connections); retry later",
)
STARTING = Fault(
    503,
    "DATABASE_UNAVAILABLE",
    "database_unavailable",
    "starting up",
    5,
    "the database is starting up or shutting down; retry later",
)
BUSY = Fault(
    503,
    "DATABASE_BUSY",
    "database_busy",
    "busy",
    2,
    "the database is busy (a lock was not granted in time); retry later",
)
TIMEOUT = Fault(
    503,
    "DATABASE_UNAVAILABLE",
    "database_unavailable",
    "timeout",
    5,
    "no database connection became free in time; retry later",
)
FULL = Fault(
    507,
    "INSUFFICIENT_STORAGE",
    "insufficient_storage",
    "disk full",
    60,
    "the database's disk is full; nothing was stored. The operator must free space; retry later",
)
READ_ONLY = Fault(
    503,
    "DATABASE_READ_ONLY",
    "database_read_only",
    "read-only",
    60,
    "the database is read-only (its file or disk does not accept writes); nothing was stored; retry later",
)
IO_ERROR = Fault(
    503,
    "DATABASE_IO_ERROR",
    "database_io_error",
    "I/O error",
    30,
    "the database's disk reported an I/O error; nothing was stored; retry later",
)


class TransactionAborted(Exception):
    """A request's work was rolled back because the batch it shared a commit with failed."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(f"transaction aborted: {type(cause).__name__}: {cause}")
        self.cause = cause


def _sqlite_fault(e: sqlite3.Error) -> Fault | None:
    code = getattr(e, "sqlite_errorcode", None)
    msg = str(e).lower()
    primary = code & 0xFF if isinstance(code, int) else None
    if primary == _SQLITE_FULL or "disk is full" in msg:
        return FULL
    if primary == _SQLITE_READONLY or "readonly database" in msg or "read-only" in msg:
        return READ_ONLY
    if primary in (_SQLITE_BUSY, _SQLITE_LOCKED) or "database is locked" in msg:
        return BUSY
    if primary == _SQLITE_IOERR or "disk i/o error" in msg:
        return IO_ERROR
    if primary == _SQLITE_CANTOPEN or "unable to open database" in msg:
        return UNAVAILABLE
    if "no such savepoint" in msg or "cannot rollback - no transaction" in msg:
        # SQLite rolled the whole transaction back itself after SQLITE_FULL/IOERR/NOMEM
        # (sqlite.org/lang_transaction.html §3): the request's work is gone, not half-stored
        return IO_ERROR
    return None


def _pg_fault(e: BaseException) -> Fault | None:
    sqlstate = getattr(e, "sqlstate", None)
    if not isinstance(sqlstate, str):
        # psycopg raises OperationalError without a SQLSTATE for a refused or lost connection
        import psycopg

        if isinstance(e, psycopg.OperationalError | psycopg.InterfaceError):
            msg = str(e)
            return STARTING if "starting up" in msg or "shutting down" in msg else UNAVAILABLE
        return None
    if sqlstate in ("57P01", "57P02"):  # admin_shutdown, crash_shutdown
        return UNAVAILABLE
    if sqlstate == "57P03":  # cannot_connect_now: starting up or shutting down
        return STARTING
    if sqlstate.startswith("08"):  # connection exception
        return UNAVAILABLE
    if sqlstate == "53100":  # disk_full
        return FULL
    if sqlstate.startswith("53"):  # insufficient resources (out of memory, too many connections)
        return UNAVAILABLE
    if sqlstate == "25006":  # read_only_sql_transaction (a standby, or default_transaction_read_only)
        return READ_ONLY
    if sqlstate in ("55P03", "40P01", "40001"):  # lock_not_available, deadlock, serialization failure
        return BUSY
    return None


def classify(exc: BaseException) -> Fault | None:
    """The outage ``exc`` stands for, or ``None`` if it is not one (then it is a bug: a 500)."""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, TransactionAborted):
            e = e.cause
            continue
        if isinstance(e, sa_exc.TimeoutError):  # QueuePool limit reached, no connection in time
            return TIMEOUT
        if isinstance(e, sa_exc.DBAPIError):
            if e.connection_invalidated:
                return UNAVAILABLE
            inner = e.orig
            if isinstance(inner, sqlite3.Error):
                return _sqlite_fault(inner)
            if inner is not None:
                found = _pg_fault(inner)
                if found is not None or not isinstance(e, sa_exc.OperationalError | sa_exc.InterfaceError):
                    return found
                return UNAVAILABLE
            return UNAVAILABLE if isinstance(e, sa_exc.OperationalError) else None
        if isinstance(e, sa_exc.DisconnectionError):
            return UNAVAILABLE
        if isinstance(e, sa_exc.PendingRollbackError):
            # the connection broke earlier in this unit of work
            return UNAVAILABLE
        if isinstance(e, sqlite3.Error):
            return _sqlite_fault(e)
        if e.__class__.__module__.startswith("psycopg"):
            return _pg_fault(e)
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return FULL
        if isinstance(e, OSError) and e.errno == errno.EROFS:
            return READ_ONLY
        e = e.__cause__ or e.__context__
    return None
