"""Fixtures for the audit log tests: an account with a key, entries, and ways to tamper with them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from powermeter.accounts import repository as account_repo
from powermeter.audit import service
from powermeter.infra.clock import FrozenClock
from powermeter.infra.state import AppState
from tests.conftest import MakeKey

EMAIL = "auditor@example.com"


@dataclass
class Account:
    key: str
    account_id: str
    headers: dict[str, str]


@pytest.fixture
def account(make_key: MakeKey, state: AppState) -> Account:
    key = make_key(email=EMAIL, scopes=["audit:read", "receipts:read", "keys:manage"])
    with state.db.begin() as conn:
        row = account_repo.get_account_by_email(conn, EMAIL)
    assert row is not None
    return Account(key, row.id, {"Authorization": f"Bearer {key}"})


Append = Callable[..., list[Any]]


@pytest.fixture
def append(state: AppState, clock: FrozenClock, account: Account) -> Append:
    """``append(n, action="VIEW", receipt="rcpt_…")``: n entries, one second apart, each in its own transaction."""

    def _append(n: int, action: str = "VIEW", receipt: str | None = "rcpt_abc123", **kw: Any) -> list[Any]:
        out = []
        for _ in range(n):
            clock.advance(timedelta(seconds=1))
            with state.db.begin() as conn:
                out.append(
                    service.append(
                        conn,
                        account_id=kw.get("account_id", account.account_id),
                        action_type=action,
                        receipt_id=receipt,
                        actor_key_id="key_test",
                        actor_masked_key="pm_live_...wxyz",
                        details=kw.get("details", {"via": "api"}),
                        now=clock.now(),
                    )
                )
        return out

    return _append


def sql(state: AppState, statement: str, **params: Any) -> Any:
    with state.db.begin() as conn:
        return conn.execute(sa.text(statement), params)


def seq_of(state: AppState, account_id: str) -> list[tuple[int, str]]:
    with state.db.begin() as conn:
        return [
            (int(r[0]), str(r[1]))
            for r in conn.execute(
                sa.text("SELECT seq, id FROM audit_entries WHERE account_id = :a ORDER BY seq"), {"a": account_id}
            )
        ]
