"""Errors raised by the SDK, one class per kind of failure a caller handles differently.

Both error families of the API are understood: ``{"detail", "error_code", "timestamp"}`` (``/v1``,
``/route``) and ``{"error": ..., "retry_after": N}`` (``/api/v1``, ``/calc``).
"""

from __future__ import annotations

from typing import Any

import httpx


class PowermeterError(Exception):
    """An error response from the API (or no response at all, ``status == 0``)."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        body: Any = None,
        retry_after: int | None = None,
        request: str = "",
    ) -> None:
        super().__init__(f"{request + ': ' if request else ''}{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail
        self.body = body
        self.retry_after = retry_after


class BadRequestError(PowermeterError):
    """400: the request names a field that is wrong."""


class AuthenticationError(PowermeterError):
    """401: missing, invalid or revoked API key."""


class PermissionDeniedError(PowermeterError):
    """403: the key lacks a scope, or the plan does not include what was asked."""


class NotFoundError(PowermeterError):
    """404."""


class ConflictError(PowermeterError):
    """409: e.g. ``JOB_ID_CONFLICT``, a job id re-reported with other inputs (``body["conflicts"]``)."""


class UnprocessableError(PowermeterError):
    """422: well-formed but impossible (e.g. no region within the latency bound)."""


class RateLimitError(PowermeterError):
    """429: per-minute limit, daily or monthly quota, or usage cap; ``retry_after`` in seconds."""


class ServerError(PowermeterError):
    """5xx."""


class TransportError(PowermeterError):
    """The server could not be reached (``status == 0``)."""


_BY_STATUS: dict[int, type[PowermeterError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: UnprocessableError,
    429: RateLimitError,
}


def error_from_response(resp: httpx.Response) -> PowermeterError:
    try:
        body: Any = resp.json()
    except ValueError:
        body = resp.text
    code = "HTTP_ERROR"
    detail = resp.reason_phrase or "error"
    retry_after: int | None = None
    if isinstance(body, dict):
        if "error_code" in body or "detail" in body:
            code = str(body.get("error_code") or code)
            raw = body.get("detail")
            detail = raw if isinstance(raw, str) else str(raw)
        elif "error" in body:
            code = str(body["error"])
            detail = str(body.get("message") or body["error"])
        ra = body.get("retry_after")
        if isinstance(ra, int):
            retry_after = ra
    header = resp.headers.get("retry-after")
    if retry_after is None and header and header.isdigit():
        retry_after = int(header)
    cls = _BY_STATUS.get(resp.status_code, ServerError if resp.status_code >= 500 else PowermeterError)
    req = f"{resp.request.method} {resp.request.url.path}" if resp.request is not None else ""
    return cls(resp.status_code, code, detail, body=body, retry_after=retry_after, request=req)
