"""Pages over the other capabilities: usage, receipts, audit log, devices, calculator, reports."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
