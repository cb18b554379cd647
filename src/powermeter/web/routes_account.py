"""Overview and Settings: plan, today's usage against its limits, API keys."""

from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form
from starlette.responses import RedirectResponse, Response

from powermeter.accounts import repository as accounts_repo
from powermeter.accounts import service as accounts_service
from powermeter.accounts.deps import account_service
from powermeter.accounts.service import ALL_SCOPES, MAX_ACTIVE_KEYS, SCOPE_HELP, NewKey
from powermeter.infra.errors import ApiError
from powermeter.infra.security import mask_key
from powermeter.web import repository as repo
from powermeter.web import sessions
from powermeter.web.deps import Page, SignedIn, SignedInForm
from powermeter.web.render import render
from powermeter.web.sessions import aware

router = APIRouter()


def plan_and_usage(page: Page) -> dict[str, Any]:
    """The account's plan and today's (and this month's) use of it."""
    stats = accounts_service.daily_stats(page.conn, page.principal(), page.now)
    month = repo.monthly_counters(page.conn, page.account_id, accounts_service.month_period(page.now))
    plan = page.session.plan
    return {
        "plan": plan,
        "stats": asdict(stats),
        "route_calls": month.get("route_calls", 0),
        "resets_in_s": accounts_service.seconds_to_midnight(page.now),
        "today": accounts_service.day_period(page.now),
    }


def keys_of(page: Page) -> list[dict[str, Any]]:
    rows = accounts_repo.list_keys(page.conn, page.account_id)
    keys = [
        {
            "id": r.id,
            "name": r.name,
            "masked_key": mask_key(r.last4),
            "scopes": r.scopes.split(),
            "created_at": aware(r.created_at),
            "last_used_at": aware(r.last_used_at) if r.last_used_at else None,
            "revoked_at": aware(r.revoked_at) if r.revoked_at else None,
            "expires_at": aware(r.expires_at) if r.expires_at else None,
            "expired": r.expires_at is not None and aware(r.expires_at) <= page.now,
        }
        for r in rows
    ]
    keys.sort(key=lambda k: (k["revoked_at"] is not None, k["created_at"]), reverse=False)
    return keys


# Expiry choices of a new key (days; "never" keeps it until revoked).
EXPIRIES: dict[str, tuple[str, int | None]] = {
    "never": ("Never (until revoked)", None),
    "7d": ("In 7 days", 7),
    "30d": ("In 30 days", 30),
    "90d": ("In 90 days", 90),
    "365d": ("In a year", 365),
}
# Scope presets offered above the check boxes (they only tick boxes; nothing is ticked by default).
SCOPE_PRESETS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("ci", "CI reporter", ("report:write",)),
    ("read", "Read-only", tuple(s for s in ALL_SCOPES if s.endswith(":read"))),
    ("household", "Devices app", ("devices:read", "devices:write")),
    ("all", "Everything", ALL_SCOPES),
)


def _settings_ctx(page: Page, **extra: Any) -> dict[str, Any]:
    keys = keys_of(page)
    ctx: dict[str, Any] = {
        "page_title": "Settings",
        "keys": keys,
        "active_keys": sum(1 for k in keys if k["revoked_at"] is None),
        "max_keys": MAX_ACTIVE_KEYS,
        "all_scopes": ALL_SCOPES,
        "scope_help": SCOPE_HELP,
        "new_key": None,
        "form_error": None,
        "form_name": "",
        "form_scopes": [],
        "form_expiry": "never",
        "expiries": EXPIRIES,
        "presets": SCOPE_PRESETS,
        "base_url": str(page.request.base_url).rstrip("/"),
    }
    ctx.update(plan_and_usage(page))
    ctx.update(extra)
    return ctx


@router.get("/")
def overview(page: Page = SignedIn()) -> Response:
    from powermeter.web import capabilities

    ctx: dict[str, Any] = {"page_title": "Overview", "base_url": str(page.request.base_url).rstrip("/")}
    ctx.update(plan_and_usage(page))
    ctx["recent_receipts"] = capabilities.recent_receipts(page, limit=5)
    ctx["has_keys"] = accounts_repo.count_active_keys(page.conn, page.account_id) > 0
    ctx["has_records"] = bool(ctx["recent_receipts"]) or capabilities.has_any_records(page)
    ctx["month"] = capabilities.month_summary(page) if ctx["has_records"] else None
    return render(page.request, "overview.html", ctx)


@router.get("/settings")
def settings_page(page: Page = SignedIn()) -> Response:
    new_key = None
    sealed = repo.take_pending_key(page.conn, page.session.id)
    if sealed is not None:
        new_key = sessions.unseal(page.state.secret, page.session.id, sealed)
    return render(page.request, "settings.html", _settings_ctx(page, new_key=new_key))


@router.post("/settings/keys")
def create_key(
    name: Annotated[str, Form(max_length=200)] = "",
    scopes: Annotated[list[str] | None, Form()] = None,
    expires: Annotated[Literal["never", "7d", "30d", "90d", "365d"], Form()] = "never",
    page: Page = SignedInForm(),
) -> Response:
    """Create, then redirect (post/redirect/get): the key is sealed into the session and shown once
    by the next GET, so reloading the page cannot create a second key."""
    chosen = [s for s in (scopes or []) if s in ALL_SCOPES]
    days = EXPIRIES[expires][1]
    if not name.strip():
        err = "Give the key a name (for example the app or machine that will use it)."
    elif not chosen:
        err = "Choose at least one scope (or a preset above the list)."
    else:
        try:
            new: NewKey = account_service(page.request).create_key(
                page.conn,
                page.account_id,
                name,
                page.now,
                chosen,
                expires_at=page.now + timedelta(days=days) if days else None,
            )
        except ApiError as e:
            err = e.detail
        else:
            sealed = sessions.seal(
                page.state.secret, page.session.id, {"key": new.key, "name": new.name, "masked_key": new.masked_key}
            )
            repo.set_pending_key(page.conn, page.session.id, sealed)
            return RedirectResponse("/dashboard/settings?flash=key-created#keys", status_code=303)
    ctx = _settings_ctx(page, form_error=err, form_name=name, form_scopes=chosen, form_expiry=expires)
    return render(page.request, "settings.html", ctx, status_code=400)


@router.post("/settings/keys/{key_id}/revoke")
def revoke_key(key_id: str, page: Page = SignedInForm()) -> Response:
    try:
        account_service(page.request).revoke_key(page.conn, key_id, page.now, account_id=page.account_id)
    except ApiError:
        return RedirectResponse("/dashboard/settings?flash=key-not-found", status_code=303)
    return RedirectResponse("/dashboard/settings?flash=revoked", status_code=303)
