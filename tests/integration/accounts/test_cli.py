"""The CLI against a real server: first-start credentials, `keys create` printing only the key."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.live import POWERMETER, live_server, server_env

KEY_RE = re.compile(r"^pm_live_[0-9A-Za-z]{43}$")


@pytest.fixture
def env(tmp_path: Path, database_url: str) -> dict[str, str]:
    return server_env(tmp_path, database_url, "cli-test-secret-0123456789abcdef0123456789")


def _run(args: list[str], env: dict[str, str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*POWERMETER, *args], env=env, capture_output=True, text=True, input=stdin, timeout=60, check=False
    )


@pytest.fixture
def server(env: dict[str, str], tmp_path: Path) -> Iterator[tuple[str, Path]]:
    log = tmp_path / "server.out"
    with live_server(env, log) as base:
        yield base, log


def test_first_start_prints_an_admin_login_and_a_working_key_once(
    server: tuple[str, Path], env: dict[str, str]
) -> None:
    base, log = server
    text = log.read_text()
    assert "admin@localhost" in text
    key = re.search(r"pm_live_[0-9A-Za-z]{43}", text)
    assert key, text
    r = httpx.get(base + "/v1/me", headers={"Authorization": f"Bearer {key.group(0)}"})
    assert r.status_code == 200
    assert r.json()["data"]["email"] == "admin@localhost"
    # a second bootstrap (as on the next start) prints nothing new
    from powermeter.cli import _bootstrap
    from powermeter.infra.db import Database
    from powermeter.settings import Settings

    s = Settings(
        data_dir=env["POWERMETER_DATA_DIR"],
        database_url=env["POWERMETER_DATABASE_URL"],
        secret_key=env["POWERMETER_SECRET_KEY"],
    )
    db = Database(s.resolved_database_url)
    _bootstrap(s, db)
    db.dispose()
    assert "admin@localhost" not in _run(["keys", "list", "--email", "nobody@example.com"], env).stdout


def test_keys_create_prints_only_the_key_and_it_works_at_once(server: tuple[str, Path], env: dict[str, str]) -> None:
    base, _ = server
    res = _run(
        [
            "keys",
            "create",
            "--email",
            "ci@example.com",
            "--name",
            "CI runner",
            "--scope",
            "receipts:read",
            "--create-account",
        ],
        env,
    )
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert len(lines) == 1, res.stdout
    assert KEY_RE.match(lines[0])
    r = httpx.get(base + "/v1/me", headers={"X-API-Key": lines[0]})
    assert r.status_code == 200
    assert r.json()["data"]["key"]["scopes"] == ["receipts:read"]
    listed = _run(["keys", "list", "--email", "ci@example.com"], env)
    assert "CI runner" in listed.stdout
    assert lines[0] not in listed.stdout
    key_id = re.search(r"key_[0-9a-f]{16}", listed.stdout)
    assert key_id
    assert _run(["keys", "revoke", key_id.group(0)], env).returncode == 0
    assert httpx.get(base + "/v1/me", headers={"X-API-Key": lines[0]}).status_code == 401


def test_cli_errors_are_clear_and_exit_non_zero(env: dict[str, str]) -> None:
    res = _run(["keys", "create", "--email", "x@example.com", "--name", "k", "--scope", "everything"], env)
    assert res.returncode != 0
    assert "unknown scope 'everything'" in res.stderr
    assert res.stdout == ""
    res = _run(["keys", "revoke", "key_0000000000000000"], env)
    assert res.returncode != 0
    assert "no API key" in res.stderr
    res = _run(["accounts", "create", "--email", "p@example.com", "--password-stdin"], env, stdin="longenough\n")
    assert res.returncode == 0
    assert res.stdout.startswith("acct_")
    res = _run(["accounts", "create", "--email", "p@example.com"], env)
    assert res.returncode != 0
    assert "already exists" in res.stderr


def test_help_is_useful() -> None:
    res = subprocess.run([*POWERMETER, "keys", "create", "--help"], capture_output=True, text=True, check=False)
    assert res.returncode == 0
    assert "--scope" in res.stdout
    assert "shown only this once" in res.stdout


def test_first_start_prints_the_real_address_and_a_pasteable_curl(env: dict[str, str], tmp_path: Path) -> None:
    """Issue 15 item 5: the command uses the --port the server listens on (not :8000) and stays on one
    line even on a narrow terminal, so it can be pasted as is."""
    import shlex
    import shutil

    log = tmp_path / "narrow.out"
    with live_server({**env, "COLUMNS": "40"}, log) as base:
        text = log.read_text()
        lines = [line for line in text.splitlines() if line.startswith("curl ")]
        assert len(lines) == 1, text
        cmd = lines[0]
        assert cmd.endswith(f"{base}/v1/api-keys/stats"), cmd
        assert ":8000" not in cmd
        assert len(cmd) > 40
        argv = shlex.split(cmd)
        curl = shutil.which("curl")
        if curl:
            res = subprocess.run(
                [curl, "-s", "-o", "/dev/null", "-w", "%{http_code}", *argv[1:]],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
            assert res.stdout == "200", res
        header = argv[argv.index("-H") + 1]
        name, _, value = header.partition(": ")
        assert httpx.get(argv[-1], headers={name: value}).status_code == 200
    assert "on http://127.0.0.1:" + base.rsplit(":", 1)[1] in text


def test_base_url_for_wildcard_and_ipv6_binds() -> None:
    from powermeter.cli import base_url

    assert base_url("0.0.0.0", 9000) == "http://127.0.0.1:9000"  # noqa: S104
    assert base_url("::", 9000) == "http://[::1]:9000"
    assert base_url("192.168.1.5", 8080) == "http://192.168.1.5:8080"
    assert base_url("fe80::1", 80) == "http://[fe80::1]:80"
