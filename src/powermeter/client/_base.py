"""The HTTP plumbing shared by every API family of the SDK."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import httpx

from powermeter.client.errors import TransportError, error_from_response

AuthStyle = Literal["bearer", "x-api-key", "none"]


def _clean(params: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if params is None:
        return None
    return {k: v for k, v in params.items() if v is not None}


class Http:
    """One ``httpx.Client`` and the API key; raises :class:`~powermeter.client.errors.PowermeterError`."""

    def __init__(self, client: httpx.Client, api_key: str | None) -> None:
        self.client = client
        self.api_key = api_key

    def _headers(self, auth: AuthStyle) -> dict[str, str]:
        if auth == "none" or not self.api_key:
            return {}
        if auth == "x-api-key":
            return {"X-API-Key": self.api_key}
        return {"Authorization": f"Bearer {self.api_key}"}

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | list[tuple[str, Any]] | None = None,
        auth: AuthStyle = "bearer",
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        h = self._headers(auth)
        if headers:
            h.update(headers)
        query = params if isinstance(params, list) else _clean(params)
        try:
            resp = self.client.request(method, path, json=json, params=query, headers=h)
        except httpx.TransportError as exc:
            raise TransportError(0, type(exc).__name__, str(exc), request=f"{method} {path}") from exc
        if resp.status_code >= 400:
            raise error_from_response(resp)
        return resp

    def json(self, method: str, path: str, **kw: Any) -> Any:
        resp = self.request(method, path, **kw)
        if resp.status_code == 204 or not resp.content:
            return None
        return resp.json()
