"""Accounts, API keys and the exact daily/monthly usage counters."""

from __future__ import annotations

import dataclasses
import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from powermeter.accounts import repository as repo
from powermeter.infra.clock import next_utc_midnight, utc_iso
from powermeter.infra.db.unit_of_work import (
    PRECOMMIT_KEY,
    HotRows,
    defer,
    defer_sum,
    hot_rows,
    in_lane,
    lane_quotas,
    on_rollback,
)
from powermeter.infra.errors import BadRequest, Conflict, NotFound, RateLimited, Unauthorized
from powermeter.infra.ratelimit import QuotaUnavailable
from powermeter.infra.security import (
    generate_api_key,
    hash_api_key,
    hash_password,
    key_is_well_formed,
    mask_key,
)
from powermeter.infra.validation import CONTROL_MESSAGE, has_control
from powermeter.settings import Plan, Settings

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

ALL_SCOPES: tuple[str, ...] = (
    "report:write",
    "receipts:read",
    "audit:read",
    "inference:write",
    "history:read",
    "devices:read",
    "devices:write",
    "routing",
    "keys:manage",
)
SCOPE_HELP = {
    "report:write": "POST /v1/report and /v1/batch",
    "receipts:read": "read receipts, usage stats and emissions reports",
    "audit:read": "read and verify the audit log",
    "inference:write": "POST /v1/inference",
    "history:read": "GET /v1/inference/history and summary",
    "devices:read": "GET /api/v1/me/* (devices, profile, costs)",
    "devices:write": "create, change and delete devices and the profile",
    "routing": "POST /route and the grid endpoints",
    "keys:manage": "list and revoke the account's API keys (GET /v1/api-keys, DELETE /v1/api-keys/{id})",
}
MAX_ACTIVE_KEYS = 10  # seed 001: "Up to 10 tokens per account"
LAST_USED_RESOLUTION = timedelta(seconds=60)  # our choice: at most one last-used write per key a minute
KWH_UNIT = 1_000_000  # usage counters hold energy in micro-kWh so sums are exact
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+$")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the account and the key that authenticated the request."""

    account_id: str
    email: str
    plan: Plan
    key_id: str
    key_name: str
    masked_key: str
    scopes: frozenset[str]


@dataclass(frozen=True, slots=True)
class KeyEvent:
    action: str  # KEY_CREATED | KEY_REVOKED | ACCOUNT_CREATED
    account_id: str
    key_id: str | None
    masked_key: str | None
    at: datetime
    details: dict[str, Any] = field(default_factory=dict)


KeyListener = Callable[["Connection", KeyEvent], None]


@dataclass(frozen=True, slots=True)
class KeyEvents:
    """The subscribers to account and key events, chosen by the composition root (``powermeter.composition``:
    the audit log subscribes there). Each listener runs inside the caller's transaction, so an event and its
    audit entry commit or roll back together."""

    listeners: tuple[KeyListener, ...] = ()

    def emit(self, conn: Connection, event: KeyEvent) -> None:
        for listener in self.listeners:
            listener(conn, event)


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"


def normalise_email(email: str) -> str:
    e = email.strip().lower()
    if not EMAIL_RE.match(e):
        raise BadRequest(f"not an email address: {email!r}", code="INVALID_EMAIL")
    return e


def parse_scopes(scopes: Sequence[str] | None) -> list[str]:
    if not scopes:
        return list(ALL_SCOPES)
    out: list[str] = []
    for s in scopes:
        for part in s.replace(",", " ").split():
            if part not in ALL_SCOPES:
                raise BadRequest(f"unknown scope {part!r}; known scopes: {', '.join(ALL_SCOPES)}", code="INVALID_SCOPE")
            if part not in out:
                out.append(part)
    return out


def create_account(
    conn: Connection,
    settings: Settings,
    email: str,
    now: datetime,
    *,
    events: KeyEvents,
    password: str | None = None,
    plan: str | None = None,
    is_admin: bool = False,
) -> str:
    email = normalise_email(email)
    if repo.get_account_by_email(conn, email) is not None:
        raise Conflict(f"an account with email {email} already exists", code="ACCOUNT_EXISTS")
    plan_name = (plan or settings.default_plan).lower()
    if plan_name not in settings.plans:
        raise BadRequest(f"unknown plan {plan_name!r}; known plans: {', '.join(sorted(settings.plans))}")
    if password is not None and len(password) < 8:
        raise BadRequest("password must be at least 8 characters", code="WEAK_PASSWORD")
    account_id = new_id("acct")
    repo.insert_account(
        conn,
        id=account_id,
        email=email,
        password_hash=hash_password(password) if password else None,
        plan=plan_name,
        is_admin=is_admin,
        created_at=now,
    )
    events.emit(conn, KeyEvent("ACCOUNT_CREATED", account_id, None, None, now, {"email": email}))
    return account_id


def set_plan(conn: Connection, settings: Settings, account_id: str, plan: str) -> None:
    if plan not in settings.plans:
        raise BadRequest(f"unknown plan {plan!r}; known plans: {', '.join(sorted(settings.plans))}")
    repo.update_account(conn, account_id, plan=plan)


@dataclass(frozen=True, slots=True)
class NewKey:
    key: str  # shown once
    key_id: str
    name: str
    masked_key: str
    scopes: list[str]
    created_at: datetime


def create_key(
    conn: Connection,
    secret: str,
    account_id: str,
    name: str,
    now: datetime,
    scopes: Sequence[str] | None = None,
    expires_at: datetime | None = None,
    *,
    events: KeyEvents,
) -> NewKey:
    name = name.strip()
    if not name or len(name) > 200:
        raise BadRequest("key name must be 1 to 200 characters", code="INVALID_NAME")
    if has_control(name):
        raise BadRequest(f"key name {CONTROL_MESSAGE}", code="INVALID_NAME")
    if expires_at is not None and expires_at <= now:
        raise BadRequest("the expiry must be in the future", code="INVALID_EXPIRY")
    scope_list = parse_scopes(scopes)
    if repo.count_active_keys(conn, account_id) >= MAX_ACTIVE_KEYS:
        raise Conflict(
            f"this account already has {MAX_ACTIVE_KEYS} active keys (the maximum); revoke one first",
            code="KEY_LIMIT_REACHED",
        )
    key = generate_api_key()
    key_id = new_id("key")
    repo.insert_key(
        conn,
        id=key_id,
        account_id=account_id,
        name=name,
        key_hash=hash_api_key(key, secret),
        last4=key[-4:],
        scopes=" ".join(scope_list),
        created_at=now,
        expires_at=expires_at,
    )
    masked = mask_key(key[-4:])
    details: dict[str, Any] = {"name": name, "scopes": scope_list}
    if expires_at is not None:
        details["expires_at"] = utc_iso(expires_at)
    events.emit(conn, KeyEvent("KEY_CREATED", account_id, key_id, masked, now, details))
    return NewKey(key, key_id, name, masked, scope_list, now)


def revoke_key(
    conn: Connection, key_id: str, now: datetime, *, events: KeyEvents, account_id: str | None = None
) -> None:
    row = repo.get_key(conn, key_id)
    if row is None or (account_id is not None and row.account_id != account_id):
        raise NotFound(f"no API key with id {key_id}", code="KEY_NOT_FOUND")
    if row.revoked_at is not None:
        return
    repo.revoke_key(conn, key_id, now)
    events.emit(conn, KeyEvent("KEY_REVOKED", row.account_id, key_id, mask_key(row.last4), now, {"name": row.name}))


def list_keys(conn: Connection, account_id: str) -> list[dict[str, Any]]:
    """The account's API keys, masked, as the API and the dashboard show them."""
    return [
        {
            "id": r.id,
            "name": r.name,
            "masked_key": mask_key(r.last4),
            "scopes": r.scopes.split(),
            "created_at": utc_iso(r.created_at),
            "last_used_at": utc_iso(r.last_used_at) if r.last_used_at else None,
            "revoked_at": utc_iso(r.revoked_at) if r.revoked_at else None,
        }
        for r in repo.list_keys(conn, account_id)
    ]


def authenticate(conn: Connection, settings: Settings, key_hash: str, now: datetime) -> Principal:
    hot = hot_rows(conn)
    cached = ("0key", key_hash)
    # in a SQLite hot-rows batch the key row cannot change (the batch holds the write lock; a unit that
    # could revoke a key starts by forgetting every kept row), so it is read once per batch
    row: repo.KeyRow | None = hot.get(cached) if hot is not None else None
    if row is None:
        row = repo.find_key_by_hash(conn, key_hash)
        if hot is not None and row is not None:
            hot.put(cached, row)
    if row is None or row.revoked_at is not None:
        raise Unauthorized("API key is unknown or has been revoked")
    if row.expires_at is not None:
        expires = row.expires_at if row.expires_at.tzinfo is not None else row.expires_at.replace(tzinfo=UTC)
        if now >= expires:
            raise Unauthorized(f"API key expired at {utc_iso(expires)}; create a new one in the dashboard's Settings")
    last = row.last_used_at
    if last is not None and last.tzinfo is None:
        last = last.replace(tzinfo=UTC)
    if last is None or now - last >= LAST_USED_RESOLUTION:
        key_id = row.id

        def touch(c: Connection) -> None:
            repo.touch_key(c, key_id, now)

        # a key's row is hot too: inside a PostgreSQL lane it is written just before the batch's COMMIT
        if not defer(conn, ("0key", key_id), touch):
            touch(conn)
            if hot is not None:
                hot.put(cached, dataclasses.replace(row, last_used_at=now))
    return Principal(
        account_id=row.account_id,
        email=row.email,
        plan=settings.plan(row.plan),
        key_id=row.id,
        key_name=row.name,
        masked_key=mask_key(row.last4),
        scopes=frozenset(row.scopes.split()),
    )


def check_key_format(key: str) -> None:
    if not key_is_well_formed(key):
        raise Unauthorized("API key is malformed or mistyped (checksum does not match)")


# --- exact usage counters ------------------------------------------------------------------------


def day_period(now: datetime) -> str:
    # ``now.strftime("%Y-%m-%d")``; isoformat is ~10× cheaper and the same text from year 1000 on
    return now.date().isoformat() if now.year >= 1000 else now.strftime("%Y-%m-%d")


def month_period(now: datetime) -> str:
    return now.date().isoformat()[:7] if now.year >= 1000 else now.strftime("%Y-%m")


def seconds_to_midnight(now: datetime) -> int:
    if now.tzinfo is UTC:
        # the same arithmetic as below without building two datetimes: whole microseconds, one division
        left_us = 86_400_000_000 - (((now.hour * 60 + now.minute) * 60 + now.second) * 1_000_000 + now.microsecond)
        return max(1, int(left_us / 1_000_000 + 0.999))
    return max(1, int((next_utc_midnight(now) - now).total_seconds() + 0.999))


def _deferrable(conn: Connection) -> list[Callable[[Connection], None]] | None:
    """On PostgreSQL inside a request's unit of work, the list of work to run just before COMMIT.

    Every request of an account updates the same counter rows; taking their row locks at the start
    of a request would make the account's requests queue for the whole request. So on PostgreSQL the
    limit is checked up front on a plain read, and the counting upsert (which checks again under the
    lock) runs last, holding the lock only through the commit."""
    if conn.dialect.name != "postgresql":
        return None
    hooks: list[Callable[[Connection], None]] | None = conn.info.get(PRECOMMIT_KEY)
    return hooks


def _pending(conn: Connection) -> dict[str, int]:
    """Counter increments of this unit not yet written (PostgreSQL), so reads in the same request
    see them."""
    pending: dict[str, int] = conn.info.setdefault(PRECOMMIT_KEY + ".pending", {})
    return pending


def _ledger(account_id: str, metric: str, period: str) -> Callable[[Connection, int], None]:
    def apply(c: Connection, total: int) -> None:
        repo.add_usage(c, account_id, metric, period, total)

    return apply


def _lane_count(
    conn: Connection,
    account_id: str,
    metric: str,
    period: str,
    amount: int,
    limit: int | None,
    refuse: Callable[[int], RateLimited],
) -> int | None:
    """Count ``amount`` inside a PostgreSQL group-commit lane (infra/db/unit_of_work.py); the new total,
    or ``None`` without a limit (nothing to check, so the total is not read: a round trip saved).

    With a limit, Redis admits or refuses it atomically across every process (one Lua call; a refused
    amount is not added), and gives it back if the request's work is rolled back. The database counter
    is the durable ledger: one upsert per account and metric per batch, just before the COMMIT. If
    Redis does not answer, the amount is counted and checked in the database at once, as without Redis.
    """
    pending = _pending(conn)
    quotas = lane_quotas(conn)
    total: int | None = None  # no limit: nothing to admit or check; the ledger is written at the commit
    if limit is not None and quotas is not None:
        key = quotas.key(account_id, metric, period)
        try:
            allowed, total = quotas.admit(key, amount, limit, lambda: repo.get_usage(conn, account_id, metric, period))
        except QuotaUnavailable:
            quotas.counted_in_database(key)
            total = repo.add_usage(conn, account_id, metric, period, amount) + pending.get(metric, 0)
            if total > limit:
                raise refuse(total) from None
            return total
        if not allowed:
            raise refuse(total)
        on_rollback(conn, lambda: quotas.release(key, amount))
    defer_sum(conn, ("1usage", account_id, metric, period), amount, _ledger(account_id, metric, period))
    pending[metric] = pending.get(metric, 0) + amount
    return total


def _hot_count(
    hot: HotRows,
    conn: Connection,
    account_id: str,
    metric: str,
    period: str,
    amount: int,
    limit: int | None,
    refuse: Callable[[int], RateLimited],
) -> int:
    """Count ``amount`` in a SQLite ``hot_rows`` unit (infra/db/unit_of_work.py); the new total.

    The batch holds SQLite's write lock, so the counter's value is read once per batch and then kept in
    memory; the check is as exact as the upsert's (a refused amount is not added), and the counter row
    is written once, with the batch's sum, just before the COMMIT."""
    key = ("1usage", account_id, metric, period)
    current: int | None = hot.get(key)
    if current is None:
        current = repo.get_usage(conn, account_id, metric, period)
    total = current + amount
    if limit is not None and total > limit:
        raise refuse(total)
    hot.put(key, total)
    hot.add(key, amount, _ledger(account_id, metric, period))
    return total


def _batched_count(
    conn: Connection,
    account_id: str,
    metric: str,
    period: str,
    amount: int,
    limit: int | None,
    refuse: Callable[[int], RateLimited],
) -> tuple[bool, int | None]:
    """``(True, total)`` when a SQLite hot-rows unit or a PostgreSQL lane counted ``amount`` (the total may be
    ``None`` in a lane without a limit); ``(False, None)`` when the caller counts it in the database itself."""
    hot = hot_rows(conn)
    if hot is not None:
        return True, _hot_count(hot, conn, account_id, metric, period, amount, limit, refuse)
    if in_lane(conn):
        return True, _lane_count(conn, account_id, metric, period, amount, limit, refuse)
    return False, None


def _daily_call_refused(principal: Principal, limit: int, now: datetime) -> RateLimited:
    wait = seconds_to_midnight(now)
    return RateLimited(
        f"daily API call limit of {limit} reached for plan {principal.plan.name}; resets at 00:00 UTC",
        retry_after=wait,
        headers={
            "RateLimit-Limit": str(limit),
            "RateLimit-Remaining": "0",
            "RateLimit-Reset": str(wait),
            "RateLimit-Policy": f'"daily";q={limit};w=86400',
        },
    )


def count_daily_call(conn: Connection, principal: Principal, now: datetime) -> tuple[int | None, int | None]:
    """Count one call against the daily quota (resets 00:00 UTC): ``(calls used today, limit)``. Raises
    429 past the limit; the refused call is not counted (the transaction rolls back). Without a limit
    the count may not be read (``None``: in a PostgreSQL lane it is only written, at the batch's end)."""
    limit = principal.plan.daily_calls
    day = day_period(now)
    handled, counted = _batched_count(
        conn,
        principal.account_id,
        "calls",
        day,
        1,
        limit,
        lambda _total: _daily_call_refused(principal, limit or 0, now),
    )
    if handled:
        return counted, limit
    hooks = _deferrable(conn)
    if hooks is not None:
        used = repo.get_usage(conn, principal.account_id, "calls", day) + 1
        if limit is not None and used > limit:
            raise _daily_call_refused(principal, limit, now)

        def count(c: Connection) -> None:
            if repo.add_usage(c, principal.account_id, "calls", day, 1) > (limit if limit is not None else 1 << 62):
                raise _daily_call_refused(principal, limit or 0, now)

        hooks.append(count)
        _pending(conn)["calls"] = _pending(conn).get("calls", 0) + 1
        return used, limit
    used = repo.add_usage(conn, principal.account_id, "calls", day, 1)
    if limit is not None and used > limit:
        raise _daily_call_refused(principal, limit, now)
    return used, limit


def _kwh_refused(principal: Principal, kwh: float, used_micro: int, amount: int, now: datetime) -> RateLimited:
    cap = principal.plan.daily_kwh or 0.0
    before = (used_micro - amount) / KWH_UNIT
    return RateLimited(
        f"this request ({kwh:.4f} kWh) would take today's tracked energy to {used_micro / KWH_UNIT:.4f} kWh, "
        f"over the {cap:g} kWh/day cap of plan {principal.plan.name} ({before:.4f} kWh used); "
        "resets at 00:00 UTC",
        retry_after=seconds_to_midnight(now),
        code="USAGE_CAP_EXCEEDED",
    )


def add_daily_kwh(conn: Connection, principal: Principal, kwh: float, now: datetime) -> float | None:
    """Add energy to today's usage; refuses the whole request past the plan's daily kWh cap. Returns
    today's total, or ``None`` when the plan has no cap and the total was not read (PostgreSQL lanes)."""
    amount = round(kwh * KWH_UNIT)
    cap = principal.plan.daily_kwh
    cap_micro = None if cap is None else round(cap * KWH_UNIT)
    day = day_period(now)
    handled, counted = _batched_count(
        conn,
        principal.account_id,
        "kwh_micro",
        day,
        amount,
        cap_micro,
        lambda total: _kwh_refused(principal, kwh, total, amount, now),
    )
    if handled:
        return None if counted is None else counted / KWH_UNIT
    hooks = _deferrable(conn)
    if hooks is not None:
        used = repo.get_usage(conn, principal.account_id, "kwh_micro", day) + amount
        if cap_micro is not None and used > cap_micro:
            raise _kwh_refused(principal, kwh, used, amount, now)

        def add(c: Connection) -> None:
            total = repo.add_usage(c, principal.account_id, "kwh_micro", day, amount)
            if cap_micro is not None and total > cap_micro:
                raise _kwh_refused(principal, kwh, total, amount, now)

        hooks.append(add)
        _pending(conn)["kwh_micro"] = _pending(conn).get("kwh_micro", 0) + amount
        return used / KWH_UNIT
    used = repo.add_usage(conn, principal.account_id, "kwh_micro", day, amount)
    if cap_micro is not None and used > cap_micro:
        raise _kwh_refused(principal, kwh, used, amount, now)
    return used / KWH_UNIT


@dataclass(frozen=True, slots=True)
class DailyStats:
    daily_api_calls: int
    daily_limit: int | None
    remaining_calls: int | None
    daily_usage_kwh: float
    daily_kwh_limit: float | None
    active_keys: int


def daily_stats(conn: Connection, principal: Principal, now: datetime) -> DailyStats:
    day = day_period(now)
    pending = _pending(conn) if _deferrable(conn) is not None or in_lane(conn) else {}
    calls = repo.get_usage(conn, principal.account_id, "calls", day) + pending.get("calls", 0)
    kwh = (repo.get_usage(conn, principal.account_id, "kwh_micro", day) + pending.get("kwh_micro", 0)) / KWH_UNIT
    limit = principal.plan.daily_calls
    return DailyStats(
        daily_api_calls=calls,
        daily_limit=limit,
        remaining_calls=None if limit is None else max(0, limit - calls),
        daily_usage_kwh=round(kwh, 6),
        daily_kwh_limit=principal.plan.daily_kwh,
        active_keys=repo.count_active_keys(conn, principal.account_id),
    )


def resolve_account(conn: Connection, email: str) -> Any:
    row = repo.get_account_by_email(conn, normalise_email(email))
    if row is None:
        raise NotFound(f"no account with email {email}", code="ACCOUNT_NOT_FOUND")
    return row


@dataclass(frozen=True, slots=True)
class AccountService:
    """Accounts and API keys, with the secret that hashes keys and the subscribers to their events
    (built once by the composition root; routers, the dashboard and the CLI call it)."""

    settings: Settings
    secret: str
    events: KeyEvents

    def create_account(
        self,
        conn: Connection,
        email: str,
        now: datetime,
        *,
        password: str | None = None,
        plan: str | None = None,
        is_admin: bool = False,
    ) -> str:
        return create_account(
            conn, self.settings, email, now, events=self.events, password=password, plan=plan, is_admin=is_admin
        )

    def create_key(
        self,
        conn: Connection,
        account_id: str,
        name: str,
        now: datetime,
        scopes: Sequence[str] | None = None,
        expires_at: datetime | None = None,
    ) -> NewKey:
        return create_key(conn, self.secret, account_id, name, now, scopes, expires_at, events=self.events)

    def revoke_key(self, conn: Connection, key_id: str, now: datetime, *, account_id: str | None = None) -> None:
        revoke_key(conn, key_id, now, events=self.events, account_id=account_id)
