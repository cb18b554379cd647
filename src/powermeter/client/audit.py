"""Tamper-evident audit log (seed 000): ``/v1/audit/logs``."""

from __future__ import annotations

from typing import Any, cast

from powermeter.client._base import Http
from powermeter.client.types import AuditLogsData


class AuditAPI:
    def __init__(self, http: Http) -> None:
        self._http = http

    def logs(self, *, action_type: str | None = None, receipt_id: str | None = None, limit: int = 100) -> AuditLogsData:
        """``GET /v1/audit/logs`` filtered by action (VIEW, EDIT, DOWNLOAD) and/or receipt."""
        data = self._http.json(
            "GET", "/v1/audit/logs", params={"action_type": action_type, "receipt_id": receipt_id, "limit": limit}
        )
        return cast(AuditLogsData, data["data"])

    def verify(self) -> dict[str, Any]:
        """``GET /v1/audit/verify``: recompute the chain and check the signed checkpoints."""
        data = self._http.json("GET", "/v1/audit/verify")
        return cast(dict[str, Any], data.get("data", data))
