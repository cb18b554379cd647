"""Many writers appending to one account's chain at once never fork or break it."""

from __future__ import annotations

import threading
from collections import Counter

import sqlalchemy as sa

from powermeter.audit import service
from powermeter.infra.clock import FrozenClock
from powermeter.infra.state import AppState
from tests.accounts import accounts_for
from tests.conftest import PG_URL, needs_postgres

WRITERS = 8


def _hammer(state: AppState, clock: FrozenClock, account_id: str, per_writer: int) -> list[BaseException]:
    errors: list[BaseException] = []
    start = threading.Barrier(WRITERS)

    def writer(n: int) -> None:
        try:
            start.wait()
            for i in range(per_writer):
                with state.db.begin() as conn:
                    service.append(
                        conn,
                        account_id=account_id,
                        action_type="VIEW",
                        receipt_id=f"rcpt_w{n}_{i}",
                        actor_key_id=f"key_w{n}",
                        details={"writer": n, "i": i},
                        now=clock.now(),
                    )
        except BaseException as e:  # reported by the test
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def _check(state: AppState, account_id: str, expected: int) -> None:
    with state.db.begin() as conn:
        report = service.verify_account(conn, account_id, [service.PublicKey.of(state.signer)])
        per_writer = Counter(
            r[0]
            for r in conn.execute(
                sa.text("SELECT actor_key_id FROM audit_entries WHERE account_id = :a AND action_type = 'VIEW'"),
                {"a": account_id},
            )
        )
    assert report.ok, report.first_break
    assert report.head_seq == expected
    assert report.entries_checked == expected
    assert len(set(per_writer.values())) == 1  # every writer's appends all landed


def _fresh_account(state: AppState, clock: FrozenClock, email: str) -> str:
    with state.db.begin() as conn:
        return accounts_for(state.settings).create_account(conn, email, clock.now())  # logs ACCOUNT_CREATED (seq 1)


@needs_postgres
def test_eight_writers_times_200_appends_make_one_valid_chain_on_postgresql(
    state: AppState, clock: FrozenClock
) -> None:
    assert PG_URL is not None
    assert state.db.engine.dialect.name == "postgresql"
    account_id = _fresh_account(state, clock, "busy@example.com")
    assert _hammer(state, clock, account_id, 200) == []
    _check(state, account_id, 1 + WRITERS * 200)


def test_concurrent_writers_make_one_valid_chain(state: AppState, clock: FrozenClock) -> None:
    """The same on whichever database the suite runs (SQLite queues writers with BEGIN IMMEDIATE)."""
    account_id = _fresh_account(state, clock, "busy2@example.com")
    assert _hammer(state, clock, account_id, 25) == []
    _check(state, account_id, 1 + WRITERS * 25)


def test_a_rolled_back_append_or_another_process_appending_leaves_one_valid_chain(
    state: AppState, clock: FrozenClock, database_url: str
) -> None:
    """The PostgreSQL fast path guesses the head from this process's last append; a wrong guess must
    change nothing and fall back to the locking path."""
    from powermeter.infra.db import Database

    account_id = _fresh_account(state, clock, "stale@example.com")

    def add(db: Database) -> None:
        with db.begin() as conn:
            service.append(conn, account_id=account_id, action_type="VIEW", receipt_id="rcpt_1", now=clock.now())

    add(state.db)
    try:  # rolled back: the process's guess now names a head that was never committed
        with state.db.begin() as conn:
            service.append(conn, account_id=account_id, action_type="EDIT", receipt_id="rcpt_1", now=clock.now())
            raise RuntimeError("the request failed")
    except RuntimeError:
        pass
    add(state.db)
    other = Database(database_url)  # another worker process: its own engine, its own guesses
    try:
        add(other)
        add(other)
    finally:
        other.dispose()
    add(state.db)  # this process's guess is stale again
    _check(state, account_id, 1 + 5)
