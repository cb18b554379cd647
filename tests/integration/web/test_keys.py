"""Creating API keys in the dashboard: post/redirect/get (a reload creates nothing), the key shown
once from the session, no scope ticked by default, presets, and an optional expiry the API enforces."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient

from powermeter.infra.clock import FrozenClock

from .helpers import KEY_RE, csrf_of, login, signup


def _count(client: TestClient, key: str) -> int:
    r = client.get("/v1/api-keys", headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200, r.text
    return len(r.json()["data"]["keys"] if isinstance(r.json()["data"], dict) else r.json()["data"])


def test_create_redirects_shows_the_key_once_and_a_reload_creates_nothing(client: TestClient) -> None:
    csrf = signup(client)
    page = client.get("/dashboard/settings")
    assert 'name="scopes"' in page.text
    assert " checked" not in page.text.split('id="create-key"')[1]  # no scope ticked by default
    assert 'data-preset="report:write"' in page.text

    r = client.post(
        "/dashboard/settings/keys",
        data={"csrf_token": csrf, "name": "ci", "scopes": ["report:write"]},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert r.headers["location"].startswith("/dashboard/settings")
    assert "pm_live_" not in r.text
    shown = client.get(r.headers["location"])
    m = KEY_RE.search(shown.text)
    assert m, "the new key is shown after the redirect"
    key = m.group(1)
    again = client.get(r.headers["location"])  # the reload: a GET, the key is not shown again
    assert KEY_RE.search(again.text) is None
    assert again.text.count('data-key-id="') == 1

    logs = client.get("/dashboard/audit", params={"action": "KEY_CREATED"})
    assert logs.text.count("KEY_CREATED</span>") == 1
    assert key


def test_no_scope_is_refused_and_an_expired_key_is_refused_by_the_api(client: TestClient, clock: FrozenClock) -> None:
    csrf = signup(client)
    r = client.post("/dashboard/settings/keys", data={"csrf_token": csrf, "name": "nothing"})
    assert r.status_code == 400
    assert "Choose at least one scope" in r.text

    r = client.post(
        "/dashboard/settings/keys",
        data={"csrf_token": csrf, "name": "short", "scopes": ["receipts:read"], "expires": "7d"},
    )
    assert r.status_code == 200
    key = KEY_RE.search(r.text)
    assert key
    headers = {"Authorization": f"Bearer {key.group(1)}"}
    assert client.get("/v1/me", headers=headers).status_code == 200
    clock.advance(timedelta(days=7, seconds=1))
    refused = client.get("/v1/me", headers=headers)
    assert refused.status_code == 401
    assert "expired" in refused.text
    assert login(client).status_code == 303  # the session itself has expired meanwhile
    settings = client.get("/dashboard/settings")
    assert "expired</span>" in settings.text
    csrf = csrf_of(settings.text)

    bad = client.post(
        "/dashboard/settings/keys", data={"csrf_token": csrf, "name": "x", "scopes": ["routing"], "expires": "forever"}
    )
    assert bad.status_code == 400
