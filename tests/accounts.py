"""Accounts and keys for tests, made through the same wiring as the app (the audit log hears of them)."""

from __future__ import annotations

from powermeter.accounts.service import AccountService
from powermeter.composition import account_service
from powermeter.settings import Settings


def accounts_for(settings: Settings) -> AccountService:
    return account_service(settings, settings.resolved_secret())
