"""Helpers for dashboard tests: read the CSRF token of a page, sign up, log in."""

from __future__ import annotations

import re

import httpx
from fastapi.testclient import TestClient

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
KEY_RE = re.compile(r'value="(pm_live_[0-9A-Za-z]+)"')
PASSWORD = "correct horse battery staple"


def csrf_of(html: str) -> str:
    m = CSRF_RE.search(html)
    assert m, "the page has no form with a CSRF token"
    return m.group(1)


def signup(client: TestClient, email: str = "ada@example.com", password: str = PASSWORD) -> str:
    """Sign up (which also logs in); returns the session's CSRF token."""
    page = client.get("/dashboard/signup")
    assert page.status_code == 200
    r = client.post(
        "/dashboard/signup",
        data={"csrf_token": csrf_of(page.text), "email": email, "password": password, "password_confirm": password},
    )
    assert r.status_code == 200, r.text
    assert r.url.path == "/dashboard/settings"
    return csrf_of(r.text)


def login(
    client: TestClient, email: str = "ada@example.com", password: str = PASSWORD, next_: str = "/dashboard/"
) -> httpx.Response:
    page = client.get("/dashboard/login")
    return client.post(
        "/dashboard/login",
        data={"csrf_token": csrf_of(page.text), "email": email, "password": password, "next": next_},
        follow_redirects=False,
    )


def create_key(client: TestClient, csrf: str, name: str = "ci", scopes: list[str] | None = None) -> str:
    r = client.post(
        "/dashboard/settings/keys",
        data={"csrf_token": csrf, "name": name, "scopes": scopes or ["report:write", "receipts:read"]},
    )
    assert r.status_code == 200, r.text  # post/redirect/get: the key is shown once by the settings page
    assert r.history
    assert r.history[0].status_code == 303
    m = KEY_RE.search(r.text)
    assert m
    return m.group(1)
