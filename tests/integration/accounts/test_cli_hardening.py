"""CLI hardening (issue 14 items 10 and 13): names are refused or escaped, unknown emails need
--create-account."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from powermeter.accounts import service
from powermeter.infra.bootstrap import open_database
from powermeter.infra.clock import SystemClock
from powermeter.infra.errors import BadRequest
from powermeter.settings import Settings
from tests.accounts import accounts_for
from tests.live import POWERMETER, server_env

EVIL = "web\x1b[2J\x1b]0;pwned\x07key"


@pytest.fixture
def env(tmp_path: Path, database_url: str) -> dict[str, str]:
    return server_env(tmp_path, database_url, "cli-test-secret-0123456789abcdef0123456789")


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*POWERMETER, *args], env=env, capture_output=True, text=True, timeout=60, check=False)


def test_keys_create_for_an_unknown_email_needs_create_account(env: dict[str, str]) -> None:
    res = _run(["keys", "create", "--email", "typo@exampel.com", "--name", "k"], env)
    assert res.returncode != 0
    assert res.stdout == ""
    assert "no account with email typo@exampel.com" in res.stderr
    assert "--create-account" in res.stderr
    assert "typo@exampel.com" not in _run(["keys", "list", "--email", "typo@exampel.com"], env).stdout
    res = _run(["keys", "create", "--email", "new@example.com", "--name", "k", "--create-account"], env)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("pm_live_")
    res = _run(["keys", "create", "--email", "new@example.com", "--name", "second"], env)  # exists now
    assert res.returncode == 0, res.stderr


def test_control_characters_are_refused_in_key_names(env: dict[str, str]) -> None:
    res = _run(["keys", "create", "--email", "a@example.com", "--name", EVIL, "--create-account"], env)
    assert res.returncode != 0
    assert "control characters" in res.stderr
    assert "\x1b" not in res.stderr


def test_keys_list_escapes_control_characters_already_stored(
    env: dict[str, str], database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for k, v in env.items():
        if k.startswith("POWERMETER_"):
            monkeypatch.setenv(k, v)
    settings, db = open_database(Settings())
    now = SystemClock().now()
    with db.begin() as conn:
        acct = accounts_for(settings).create_account(conn, "old@example.com", now)
        key = accounts_for(settings).create_key(conn, acct, "placeholder", now)
        # a name stored before names were checked (or written to the database directly)
        conn.exec_driver_sql(
            "UPDATE api_keys SET name = ? WHERE id = ?"
            if conn.dialect.name == "sqlite"
            else "UPDATE api_keys SET name = %s WHERE id = %s",
            (EVIL + "[bold]x", key.key_id),
        )
    db.dispose()
    res = _run(["keys", "list", "--email", "old@example.com"], env)
    assert res.returncode == 0, res.stderr
    assert "\x1b" not in res.stdout
    assert "\x07" not in res.stdout
    assert "\\x1b[2J" in res.stdout
    assert "[bold]x" in res.stdout  # shown as text, not taken as Rich markup


def test_service_refuses_control_characters_in_key_names() -> None:
    with pytest.raises(BadRequest, match="control characters"):
        service.create_key(
            None,
            "s",
            "acct",
            "bad\x00name",
            SystemClock().now(),  # type: ignore[arg-type]
            events=service.KeyEvents(),
        )
