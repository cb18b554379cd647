"""Failed log-ins from one address do not lock the owner out (issue 14 item 12)."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from powermeter.web.sessions import SESSION_COOKIE

from .helpers import login, signup


def test_a_guesser_elsewhere_does_not_lock_the_owner_out(app: FastAPI) -> None:
    with (
        TestClient(app, client=("203.0.113.7", 40000)) as owner,
        TestClient(app, client=("198.51.100.9", 40001)) as attacker,
    ):
        signup(owner)
        owner.cookies.clear()
        for _ in range(5):
            assert login(attacker, password="guess guess guess").status_code == 401
        assert login(attacker, password="guess guess guess").status_code == 429  # the guesser is slowed
        r = login(owner)  # the owner, from their own address, still gets in
        assert r.status_code == 303, r.text
        assert SESSION_COOKIE in owner.cookies


def test_one_address_cannot_spray_many_accounts(app: FastAPI) -> None:
    with TestClient(app, client=("198.51.100.10", 40002)) as attacker:
        codes = [
            login(attacker, email=f"user{i}@example.com", password="guess guess guess").status_code for i in range(21)
        ]
        assert codes[:20] == [401] * 20
        assert codes[20] == 429
