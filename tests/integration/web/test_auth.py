"""Dashboard sign-up, log-in, log-out, session cookies and expiry, CSRF, log-in rate limits."""

from __future__ import annotations

from datetime import timedelta
from http.cookies import SimpleCookie

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from powermeter.accounts.tables import accounts, api_keys
from powermeter.app import create_app
from powermeter.infra.clock import FrozenClock
from powermeter.infra.state import AppState
from powermeter.settings import Settings
from powermeter.web.sessions import SESSION_COOKIE, SESSION_IDLE, SESSION_MAX
from powermeter.web.tables import web_sessions

from .helpers import PASSWORD, create_key, csrf_of, login, signup


def _session_cookie_header(response_headers: list[str]) -> SimpleCookie:
    for h in response_headers:
        if h.startswith(SESSION_COOKIE + "="):
            c: SimpleCookie = SimpleCookie()
            c.load(h)
            return c
    raise AssertionError("no session cookie was set")


def test_signup_logs_in_with_an_httponly_samesite_cookie_and_an_argon2_password(
    client: TestClient, state: AppState
) -> None:
    page = client.get("/dashboard/signup")
    r = client.post(
        "/dashboard/signup",
        data={
            "csrf_token": csrf_of(page.text),
            "email": "Ada@Example.com",
            "password": PASSWORD,
            "password_confirm": PASSWORD,
        },
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert r.headers["location"] == "/dashboard/settings?flash=welcome"
    cookie = _session_cookie_header(r.headers.get_list("set-cookie"))[SESSION_COOKIE]
    assert cookie["httponly"] is True
    assert cookie["samesite"].lower() == "lax"
    assert cookie["path"] == "/dashboard"
    assert not cookie["secure"]  # plain http in development
    assert int(cookie["max-age"]) == int(SESSION_MAX.total_seconds())
    settings_page = client.get("/dashboard/settings")
    assert settings_page.status_code == 200
    assert "ada@example.com" in settings_page.text
    with state.db.begin() as conn:
        stored = conn.execute(sa.select(accounts.c.password_hash)).scalar_one()
        sids = conn.execute(sa.select(web_sessions.c.id)).scalars().all()
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored
    assert len(sids) == 1
    assert cookie.value not in sids  # only the token's hash is stored


def test_session_cookie_is_secure_over_https(app: object, state: AppState) -> None:
    with TestClient(app, base_url="https://testserver") as c:  # type: ignore[arg-type]
        page = c.get("/dashboard/signup")
        r = c.post(
            "/dashboard/signup",
            data={
                "csrf_token": csrf_of(page.text),
                "email": "s@example.com",
                "password": PASSWORD,
                "password_confirm": PASSWORD,
            },
            follow_redirects=False,
        )
    cookie = _session_cookie_header(r.headers.get_list("set-cookie"))[SESSION_COOKIE]
    assert cookie["secure"] is True


def test_pages_need_a_session_and_log_in_returns_to_the_page_asked_for(client: TestClient) -> None:
    signup(client)
    client.cookies.clear()
    r = client.get("/dashboard/settings", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/dashboard/login?next=/dashboard/settings"
    r = login(client, next_="/dashboard/settings")
    assert r.status_code == 303
    assert r.headers["location"] == "/dashboard/settings"
    assert client.get("/dashboard/settings").status_code == 200


def test_log_in_never_redirects_off_site(client: TestClient) -> None:
    signup(client)
    client.cookies.clear()
    for target in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
        client.cookies.clear()
        r = login(client, next_=target)
        assert r.status_code == 303, r.text
        assert r.headers["location"] == "/dashboard"


def test_wrong_password_and_unknown_email_get_the_same_answer(client: TestClient) -> None:
    signup(client)
    client.cookies.clear()
    wrong = login(client, password="not the password")
    unknown = login(client, email="nobody@example.com")
    assert wrong.status_code == unknown.status_code == 401
    assert "do not match an account" in wrong.text
    assert "do not match an account" in unknown.text
    assert SESSION_COOKIE not in client.cookies


def test_logout_ends_the_session_on_the_server(client: TestClient, state: AppState) -> None:
    csrf = signup(client)
    token = client.cookies[SESSION_COOKIE]
    r = client.post("/dashboard/logout", data={"csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 303
    assert "logged-out" in r.headers["location"]
    with state.db.begin() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(web_sessions)).scalar_one() == 0
    # a copy of the old cookie is worthless
    client.cookies.set(SESSION_COOKIE, token, path="/dashboard")
    assert client.get("/dashboard/settings", follow_redirects=False).status_code == 303


def test_sessions_expire_when_idle_and_after_the_maximum_lifetime(client: TestClient, clock: FrozenClock) -> None:
    signup(client)
    clock.advance(SESSION_IDLE - timedelta(minutes=1))
    assert client.get("/dashboard/settings", follow_redirects=False).status_code == 200
    clock.advance(SESSION_IDLE)
    assert client.get("/dashboard/settings", follow_redirects=False).status_code == 303

    login(client)
    step = SESSION_IDLE - timedelta(hours=1)
    elapsed = timedelta(0)
    while elapsed + step < SESSION_MAX:
        clock.advance(step)
        elapsed += step
        assert client.get("/dashboard/settings", follow_redirects=False).status_code == 200
    clock.advance(SESSION_MAX - elapsed)
    assert client.get("/dashboard/settings", follow_redirects=False).status_code == 303


def _count_keys(state: AppState) -> int:
    with state.db.begin() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(api_keys)).scalar_one())


def test_form_posts_without_the_csrf_token_are_refused(client: TestClient, state: AppState) -> None:
    csrf = signup(client)
    before = _count_keys(state)
    missing = client.post("/dashboard/settings/keys", data={"name": "sneaky", "scopes": ["routing"]})
    wrong = client.post(
        "/dashboard/settings/keys", data={"csrf_token": "x" * 43, "name": "sneaky", "scopes": ["routing"]}
    )
    assert missing.status_code == 403
    assert wrong.status_code == 403
    assert "could not be accepted" in missing.text
    assert _count_keys(state) == before
    # a valid token from a page of another site is refused too (Origin check)
    cross = client.post(
        "/dashboard/settings/keys",
        data={"csrf_token": csrf, "name": "x", "scopes": ["routing"]},
        headers={"Origin": "https://evil.example"},
    )
    assert cross.status_code == 403
    assert _count_keys(state) == before
    # and log-out without a token does not log out
    assert client.post("/dashboard/logout", data={}).status_code == 403
    assert client.get("/dashboard/settings", follow_redirects=False).status_code == 200
    # the same form with the token works
    create_key(client, csrf)
    assert _count_keys(state) == before + 1


def test_csrf_token_of_one_session_does_not_work_in_another(app: object) -> None:
    with TestClient(app) as a, TestClient(app) as b:  # type: ignore[arg-type]
        csrf_a = signup(a, "a@example.com")
        signup(b, "b@example.com")
        r = b.post("/dashboard/settings/keys", data={"csrf_token": csrf_a, "name": "x", "scopes": ["routing"]})
        assert r.status_code == 403


def test_login_and_signup_forms_need_their_csrf_token(client: TestClient, state: AppState) -> None:
    client.get("/dashboard/login")
    r = client.post("/dashboard/login", data={"email": "a@example.com", "password": PASSWORD})
    assert r.status_code == 403
    r = client.post(
        "/dashboard/signup", data={"email": "a@example.com", "password": PASSWORD, "password_confirm": PASSWORD}
    )
    assert r.status_code == 403
    with state.db.begin() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(accounts)).scalar_one() == 0


def test_login_attempts_are_rate_limited_per_email(client: TestClient) -> None:
    signup(client)
    client.cookies.clear()
    for _ in range(5):
        assert login(client, password="guess guess guess").status_code == 401
    r = login(client)  # even the right password waits
    assert r.status_code == 429
    assert int(r.headers["retry-after"]) > 0
    assert "Too many log-in attempts" in r.text
    assert SESSION_COOKIE not in client.cookies


def test_signup_can_be_turned_off(settings: Settings, clock: FrozenClock, state: AppState) -> None:
    closed = create_app(settings.model_copy(update={"signup_enabled": False}), clock=clock)
    with TestClient(closed) as c:
        page = c.get("/dashboard/signup")
        assert page.status_code == 403
        assert "Sign-up is turned off" in page.text
        login_page = c.get("/dashboard/login")
        assert "/dashboard/signup" not in login_page.text
        r = c.post(
            "/dashboard/signup",
            data={
                "csrf_token": csrf_of(login_page.text),
                "email": "x@example.com",
                "password": PASSWORD,
                "password_confirm": PASSWORD,
            },
        )
        assert r.status_code == 403
    closed.state.pm.db.dispose()
    with state.db.begin() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(accounts)).scalar_one() == 0


@pytest.mark.parametrize(
    ("password", "confirm", "message"),
    [("short", "short", "at least 8 characters"), (PASSWORD, PASSWORD + "x", "do not match")],
)
def test_signup_explains_a_bad_password(client: TestClient, password: str, confirm: str, message: str) -> None:
    page = client.get("/dashboard/signup")
    r = client.post(
        "/dashboard/signup",
        data={
            "csrf_token": csrf_of(page.text),
            "email": "x@example.com",
            "password": password,
            "password_confirm": confirm,
        },
    )
    assert r.status_code == 400
    assert message in r.text


def test_signing_up_twice_with_one_email_is_refused(client: TestClient) -> None:
    signup(client)
    client.cookies.clear()
    page = client.get("/dashboard/signup")
    r = client.post(
        "/dashboard/signup",
        data={
            "csrf_token": csrf_of(page.text),
            "email": "ADA@example.com",
            "password": PASSWORD,
            "password_confirm": PASSWORD,
        },
    )
    assert r.status_code == 409
    assert "already exists" in r.text


def test_dashboard_responses_carry_security_headers(client: TestClient) -> None:
    r = client.get("/dashboard/login")
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["cache-control"] == "no-store"
    assert "<script>" not in r.text  # no inline scripts: the CSP would block them
