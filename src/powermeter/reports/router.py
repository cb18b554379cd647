"""HTTP routes of this capability (filled in when the capability lands)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
