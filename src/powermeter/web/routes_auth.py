"""Sign up, log in and log out."""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated

from fastapi import APIRouter, Form, Request
from starlette.responses import RedirectResponse, Response

from powermeter.accounts import repository as accounts_repo
from powermeter.accounts.deps import account_service
from powermeter.infra.errors import ApiError
from powermeter.infra.security import hash_password, verify_password
from powermeter.infra.state import app_state
from powermeter.web import sessions
from powermeter.web.deps import AnonPage, Anonymous, AnonymousForm, Page, SignedInForm
from powermeter.web.render import render

router = APIRouter()

# Log-in limits slow a password guesser without locking the owner out: the tight limit is per email AND
# client address (a guesser elsewhere cannot use up the owner's attempts), under a per-address cap
# across all emails (one address cannot spray many accounts).
LOGIN_LIMIT_PER_EMAIL_AND_IP = "5/minute"
LOGIN_LIMIT_PER_IP = "20/minute"
SIGNUP_LIMIT_PER_IP = "10/hour"
MAX_PASSWORD_LEN = 1024


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    """Verified against when the account does not exist, so both cases take as long."""
    return hash_password("not-a-real-password-just-for-timing")


def safe_next(target: str | None) -> str:
    """Only local dashboard paths: never an open redirect."""
    if target and target.startswith("/dashboard") and not target.startswith("//") and "\\" not in target:
        return target
    return "/dashboard"


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _prelogin(request: Request) -> tuple[str, str]:
    st = app_state(request)
    nonce = request.cookies.get(sessions.PRELOGIN_COOKIE) or sessions.new_prelogin_nonce()
    return nonce, sessions.prelogin_token(st.secret, nonce)


def _anon_page(
    request: Request,
    template: str,
    context: dict[str, object],
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    st = app_state(request)
    nonce, token = _prelogin(request)
    request.state.csrf_token = token
    request.state.signup_enabled = st.settings.signup_enabled
    resp = render(request, template, context, status_code=status_code, headers=headers)
    sessions.set_prelogin_cookie(resp, nonce, secure=sessions.cookie_secure(request, st.settings))
    return resp


def _signed_in_redirect(page: AnonPage) -> Response | None:
    token = page.request.cookies.get(sessions.SESSION_COOKIE)
    if sessions.load_session(page.conn, page.state.settings, token, page.now) is not None:
        return RedirectResponse("/dashboard", status_code=303)
    return None


def _start(page: AnonPage, account_id: str, target: str) -> Response:
    old = page.request.cookies.get(sessions.SESSION_COOKIE)
    sessions.end_session(page.conn, old)  # a fresh token at every log-in (no session fixation)
    token = sessions.start_session(page.conn, account_id, page.now, page.request.headers.get("user-agent"))
    resp = RedirectResponse(target, status_code=303)
    secure = sessions.cookie_secure(page.request, page.state.settings)
    sessions.set_session_cookie(resp, token, secure=secure, max_age_s=int(sessions.SESSION_MAX.total_seconds()))
    return resp


@router.get("/login")
def login_form(request: Request, next: str | None = None, page: AnonPage = Anonymous()) -> Response:
    return _signed_in_redirect(page) or _anon_page(
        request, "login.html", {"page_title": "Log in", "next": safe_next(next), "email": "", "error": None}
    )


@router.post("/login")
def login(
    request: Request,
    email: Annotated[str, Form(max_length=320)] = "",
    password: Annotated[str, Form(max_length=MAX_PASSWORD_LEN)] = "",
    next: Annotated[str, Form(max_length=500)] = "/dashboard",
    page: AnonPage = AnonymousForm(),
) -> Response:
    email_key = email.strip().lower()
    ctx: dict[str, object] = {"page_title": "Log in", "next": safe_next(next), "email": email.strip()}
    limiter = page.state.limiter
    ip = client_ip(request)
    for spec, kind, ident in (
        (LOGIN_LIMIT_PER_IP, "web-login-ip", ip),
        (LOGIN_LIMIT_PER_EMAIL_AND_IP, "web-login-email-ip", f"{email_key or '-'}|{ip}"),
    ):
        res = limiter.hit(spec, kind, ident)
        if not res.allowed:
            ctx["error"] = f"Too many log-in attempts. Try again in {res.reset_after_s} seconds."
            return _anon_page(
                request, "login.html", ctx, status_code=429, headers={"Retry-After": str(res.reset_after_s)}
            )
    row = accounts_repo.get_account_by_email(page.conn, email_key) if email_key else None
    stored = row.password_hash if row is not None and row.password_hash else None
    ok = verify_password(stored or _dummy_hash(), password) and stored is not None
    if not ok or row is None:
        ctx["error"] = "That email and password do not match an account."
        return _anon_page(request, "login.html", ctx, status_code=401)
    return _start(page, row.id, safe_next(next))


@router.get("/signup")
def signup_form(request: Request, page: AnonPage = Anonymous()) -> Response:
    if not page.state.settings.signup_enabled:
        return _anon_page(request, "signup_disabled.html", {"page_title": "Sign up"}, status_code=403)
    return _signed_in_redirect(page) or _anon_page(
        request, "signup.html", {"page_title": "Sign up", "email": "", "error": None}
    )


@router.post("/signup")
def signup(
    request: Request,
    email: Annotated[str, Form(max_length=320)] = "",
    password: Annotated[str, Form(max_length=MAX_PASSWORD_LEN)] = "",
    password_confirm: Annotated[str, Form(max_length=MAX_PASSWORD_LEN)] = "",
    page: AnonPage = AnonymousForm(),
) -> Response:
    if not page.state.settings.signup_enabled:
        return _anon_page(request, "signup_disabled.html", {"page_title": "Sign up"}, status_code=403)
    ctx: dict[str, object] = {"page_title": "Sign up", "email": email.strip(), "error": None}
    res = page.state.limiter.hit(SIGNUP_LIMIT_PER_IP, "web-signup-ip", client_ip(request))
    if not res.allowed:
        ctx["error"] = f"Too many sign-ups from this address. Try again in {res.reset_after_s} seconds."
        return _anon_page(request, "signup.html", ctx, status_code=429, headers={"Retry-After": str(res.reset_after_s)})
    if len(password) < 8:
        ctx["error"] = "The password must be at least 8 characters long."
    elif password != password_confirm:
        ctx["error"] = "The two passwords do not match."
    if ctx["error"]:
        return _anon_page(request, "signup.html", ctx, status_code=400)
    try:
        account_id = account_service(request).create_account(page.conn, email, page.now, password=password)
    except ApiError as e:
        ctx["error"] = "An account with this email already exists. Log in instead." if e.status == 409 else e.detail
        return _anon_page(request, "signup.html", ctx, status_code=e.status)
    return _start(page, account_id, "/dashboard/settings?flash=welcome")


@router.post("/logout")
def logout(request: Request, page: Page = SignedInForm()) -> Response:
    sessions.end_session(page.conn, request.cookies.get(sessions.SESSION_COOKIE))
    resp = RedirectResponse("/dashboard/login?flash=logged-out", status_code=303)
    sessions.clear_session_cookie(resp, secure=sessions.cookie_secure(request, page.state.settings))
    return resp
