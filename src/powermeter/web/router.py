"""Every page of the dashboard, one module per area, joined into one router."""

from __future__ import annotations

from fastapi import APIRouter

from powermeter.web import routes_account, routes_auth, routes_bills, routes_devices, routes_pages, routes_reports

router = APIRouter()
router.include_router(routes_auth.router)
router.include_router(routes_account.router)
router.include_router(routes_pages.router)
router.include_router(routes_bills.router)
router.include_router(routes_devices.router)
router.include_router(routes_reports.router)
