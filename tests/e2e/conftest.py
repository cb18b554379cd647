"""End-to-end fixtures: a real ``powermeter serve`` (uvicorn) on a loopback port and Debian's
chromium driven by Playwright. Every test here skips when ``/usr/bin/chromium`` is absent.

Screenshots go to a temporary directory; set ``POWERMETER_SCREENSHOTS_DIR=docs/screenshots`` to
refresh the committed ones.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from tests.conftest import PG_URL, pg_schema_url

CHROMIUM = Path(os.environ.get("POWERMETER_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ROOT = Path(__file__).resolve().parents[2]

try:
    from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright
except ImportError:  # pragma: no cover - playwright is a test dependency
    sync_playwright = None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = None
    if sync_playwright is None:
        reason = "playwright is not installed"
    elif not CHROMIUM.exists():
        reason = f"{CHROMIUM} is absent (run .ci/install-browser)"
    for item in items:
        if "tests/e2e/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.e2e)
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, base_url: str, env: dict[str, str], log: Path) -> None:
        self.base_url = base_url
        self.env = env
        self.log = log

    def url(self, path: str) -> str:
        return self.base_url + path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``python -m powermeter serve`` on 127.0.0.1:<free port>, on a fresh database."""
    tmp = tmp_path_factory.mktemp("e2e")
    schema = None
    if PG_URL:
        schema = "e2e_" + uuid.uuid4().hex[:12]
        admin = sa.create_engine(PG_URL)
        with admin.begin() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        admin.dispose()
        db_url = pg_schema_url(PG_URL, schema)
    else:
        db_url = f"sqlite:///{tmp / 'powermeter.db'}"
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("POWERMETER_")}
    env.update(
        POWERMETER_ENV="development",
        POWERMETER_DATA_DIR=str(tmp / "data"),
        POWERMETER_DATABASE_URL=db_url,
        POWERMETER_SECRET_KEY=secrets.token_urlsafe(40),
        POWERMETER_LOG_REQUESTS="false",
        POWERMETER_RATELIMIT_PREFIX="pme2e-" + uuid.uuid4().hex[:8],
    )
    if os.environ.get("POWERMETER_TEST_REDIS_URL"):
        env["POWERMETER_REDIS_URL"] = os.environ["POWERMETER_TEST_REDIS_URL"]
    log = tmp / "server.log"
    with log.open("w") as fh:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "powermeter",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            cwd=tmp,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                raise AssertionError("the server did not start:\n" + log.read_text())
            time.sleep(0.2)
        yield Server(base, env, log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        if schema and PG_URL:
            admin = sa.create_engine(PG_URL)
            with admin.begin() as conn:
                conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            admin.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert sync_playwright is not None
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def context(browser: Browser, server: Server) -> Iterator[BrowserContext]:
    ctx = browser.new_context(
        base_url=server.base_url,
        viewport={"width": 1280, "height": 900},
        locale="en-GB",
        timezone_id="UTC",
        color_scheme="light",
    )
    ctx.set_default_timeout(15_000)
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


@pytest.fixture(scope="session")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go: a temporary directory, or POWERMETER_SCREENSHOTS_DIR."""
    target = os.environ.get("POWERMETER_SCREENSHOTS_DIR")
    if target:
        path = Path(target)
        if not path.is_absolute():
            path = ROOT / path
        path.mkdir(parents=True, exist_ok=True)
        return path
    return tmp_path_factory.mktemp("screenshots")


def screenshot(page: Any, shots: Path, name: str, *, full_page: bool = True) -> Path:
    path = shots / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page, animations="disabled", caret="hide")
    return path
