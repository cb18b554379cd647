"""Which failures are outages (503/507) and which stay bugs (500), on real driver errors; and the
OpenAPI document declares the outage answers."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from powermeter.infra.db import faults
from powermeter.infra.db.faults import TransactionAborted, classify
from tests.live import free_port


def test_a_constraint_violation_is_a_bug_not_an_outage(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (id INTEGER PRIMARY KEY)")
        conn.exec_driver_sql("INSERT INTO t VALUES (1)")
    with pytest.raises(sa.exc.IntegrityError) as info, engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO t VALUES (1)")
    assert classify(info.value) is None
    with pytest.raises(sa.exc.OperationalError) as syntax, engine.begin() as conn:
        conn.exec_driver_sql("SELEC 1")
    assert classify(syntax.value) is None
    engine.dispose()


def test_sqlite_read_only_file_and_locked_database_are_named(tmp_path: Path) -> None:
    path = tmp_path / "ro.db"
    sqlite3.connect(path).close()
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    with pytest.raises(sqlite3.OperationalError) as ro:
        con.execute("CREATE TABLE t (x)")
    con.close()
    assert classify(ro.value) is faults.READ_ONLY
    a = sqlite3.connect(path, timeout=0, isolation_level=None)
    b = sqlite3.connect(path, timeout=0, isolation_level=None)
    a.execute("BEGIN IMMEDIATE")
    with pytest.raises(sqlite3.OperationalError) as busy:
        b.execute("BEGIN IMMEDIATE")
    a.close()
    b.close()
    assert classify(busy.value) is faults.BUSY
    # a batch member whose shared commit failed is named after the failure
    assert classify(TransactionAborted(ro.value)) is faults.READ_ONLY


def test_a_refused_postgresql_connection_is_unavailable_and_a_full_pool_a_timeout() -> None:
    engine = sa.create_engine(
        f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/none", connect_args={"connect_timeout": 1}
    )
    with pytest.raises(sa.exc.OperationalError) as refused:
        engine.connect()
    engine.dispose()
    assert classify(refused.value) is faults.UNAVAILABLE
    assert classify(sa.exc.TimeoutError("QueuePool limit reached")) is faults.TIMEOUT


def test_openapi_declares_the_outage_answers(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    missing: list[str] = []
    for path, item in spec["paths"].items():
        for method, op in item.items():
            responses = set(op.get("responses", {}))
            need = {"503", "507"} if "security" in op else ({"503"} if path.startswith("/calc/api/") else set())
            if not need <= responses:
                missing.append(f"{method.upper()} {path}: {sorted(need - responses)}")
    assert missing == []
    unavailable = spec["paths"]["/api/v1/me/devices"]["get"]["responses"]["503"]
    assert unavailable["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/CalcError"}
    assert "Retry-After" in unavailable["headers"]


def test_a_unit_of_work_waits_for_its_turn_only_so_long(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """PostgreSQL's per-process queue of units of work is bounded: a request waits at most
    UNIT_WAIT_TIMEOUT_S for its turn, then gets a TimeoutError, which is a 503 (not a hang)."""
    import asyncio

    from powermeter.infra.db import unit_of_work

    monkeypatch.setattr(unit_of_work, "UNIT_WAIT_TIMEOUT_S", 0.05)
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'q.db'}")
    units = unit_of_work.ConcurrentTransactions(engine, concurrency=1)

    async def scenario() -> BaseException | None:
        async with units.unit():  # holds the only slot
            try:
                async with units.unit():
                    return None
            except sa.exc.TimeoutError as e:
                return e

    err = asyncio.run(scenario())
    engine.dispose()
    assert err is not None
    assert classify(err) is faults.TIMEOUT
