"""Send a report, or keep it in a spool directory until the server is back.

A spooled report is one JSON file ``<created>-<idempotency key>.json``: the endpoint, the body and the
``Idempotency-Key`` it is (re)sent with. Files are written atomically (temporary file, fsync, rename,
fsync of the directory) and removed only after the server has answered 2xx (or said the job is already
stored), so a crash at any moment leaves either the file or the receipt, and re-sending a file the
server already took is answered from the idempotency record (or recognised as a stored job) instead of
counting the job twice.

Outcomes of a send: ``sent`` (2xx, including a replay from the idempotency record or a server answering
an identical repeat with the stored receipt), ``stored`` (a 400 saying the job id already has a receipt:
a re-send after the idempotency record expired), ``retry`` (no connection, 5xx, 429 or an idempotency key
still in flight: spool), ``rejected`` (any other 4xx, including 409 ``JOB_ID_CONFLICT``, the same job id
with other inputs: kept under ``rejected/`` so it does not block the others).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httpx

SPOOL_ENV = "POWERMETER_SPOOL_DIR"
URL_ENV = "POWERMETER_URL"
KEY_ENV = "POWERMETER_API_KEY"
DEFAULT_URL = "http://127.0.0.1:8000"
FORMAT = "powermeter.spooled-report/1"


def default_spool_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    if explicit:
        return Path(explicit)
    env = os.environ.get(SPOOL_ENV)
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_state_dir("powermeter")) / "spool"


def new_idempotency_key() -> str:
    return "pm-track-" + secrets.token_hex(16)


Status = Literal["sent", "stored", "retry", "rejected"]


@dataclass(frozen=True, slots=True)
class Outcome:
    status: Status
    http_status: int | None
    detail: str
    data: dict[str, Any] | None = None


def _error_detail(resp: httpx.Response) -> tuple[str, str, list[dict[str, Any]]]:
    try:
        doc = resp.json()
    except ValueError:
        return "", resp.text[:300], []
    if not isinstance(doc, dict):
        return "", str(doc)[:300], []
    # the v1 family's shape: {"detail", "error_code", "timestamp", "errors": [{"field", "message", …}]}
    code = str(doc.get("error_code") or "")
    message = str(doc.get("detail") or "")
    errors = doc.get("errors") or []
    return code, message, [e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []


def is_already_stored(status: int, code: str, message: str, errors: list[dict[str, Any]]) -> bool:
    """A refusal that only says the job id(s) already have a receipt: today's 400 naming ``job_id``.
    (A server that answers an identical repeat with the stored receipt, 200, needs no special case; its
    409 ``JOB_ID_CONFLICT`` means *different* inputs under a known id: refused, not stored.)"""
    if status != 400 or code == "JOB_ID_CONFLICT" or not errors:
        return False
    return all(str(e.get("field", "")).endswith("job_id") and "already" in str(e.get("message", "")) for e in errors)


def post(client: httpx.Client, path: str, body: dict[str, Any], idempotency_key: str, api_key: str | None) -> Outcome:
    headers = {"Idempotency-Key": idempotency_key}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    try:
        resp = client.post(path, json=body, headers=headers)
    except httpx.HTTPError as exc:
        return Outcome("retry", None, f"server unreachable: {type(exc).__name__}: {exc}")
    if 200 <= resp.status_code < 300:
        try:
            doc = resp.json()
        except ValueError:
            doc = None
        data = doc.get("data") if isinstance(doc, dict) else None
        return Outcome("sent", resp.status_code, "ok", data if isinstance(data, dict) else None)
    code, message, errors = _error_detail(resp)
    detail = f"{resp.status_code} {code} {message}".strip()
    if errors:
        detail += ": " + "; ".join(f"{e.get('field')}: {e.get('message')}" for e in errors[:5])
    if resp.status_code >= 500 or resp.status_code == 429:
        return Outcome("retry", resp.status_code, detail)
    if code == "IDEMPOTENCY_IN_PROGRESS":  # the same key is being processed right now
        return Outcome("retry", resp.status_code, detail)
    if is_already_stored(resp.status_code, code, message, errors):
        return Outcome("stored", resp.status_code, detail)
    return Outcome("rejected", resp.status_code, detail)


@dataclass(frozen=True, slots=True)
class SpooledReport:
    path: Path
    endpoint: str
    body: dict[str, Any]
    idempotency_key: str


class Spool:
    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        self.dir = default_spool_dir(directory)

    def put(self, body: dict[str, Any], idempotency_key: str, endpoint: str = "/v1/report") -> Path:
        self.dir.mkdir(parents=True, exist_ok=True)
        name = f"{time.time_ns():020d}-{idempotency_key}.json"
        doc = {"format": FORMAT, "endpoint": endpoint, "idempotency_key": idempotency_key, "body": body}
        tmp = self.dir / f".{name}.tmp"
        with tmp.open("w", encoding="utf-8") as fh:
            json.dump(doc, fh)
            fh.flush()
            os.fsync(fh.fileno())
        final = self.dir / name
        os.replace(tmp, final)
        _fsync_dir(self.dir)
        return final

    def items(self) -> Iterator[SpooledReport]:
        if not self.dir.is_dir():
            return
        for p in sorted(self.dir.glob("*.json")):
            try:
                doc = json.loads(p.read_text(encoding="utf-8"))
                if doc.get("format") != FORMAT:
                    continue
                yield SpooledReport(p, str(doc["endpoint"]), dict(doc["body"]), str(doc["idempotency_key"]))
            except (OSError, ValueError, KeyError, TypeError):
                continue

    def remove(self, item: SpooledReport) -> None:
        with contextlib.suppress(FileNotFoundError):
            item.path.unlink()
        _fsync_dir(self.dir)

    def reject(self, item: SpooledReport, reason: str) -> Path:
        target_dir = self.dir / "rejected"
        target_dir.mkdir(parents=True, exist_ok=True)
        target = target_dir / item.path.name
        os.replace(item.path, target)
        target.with_suffix(".reason.txt").write_text(reason + "\n", encoding="utf-8")
        return target


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@dataclass(slots=True)
class FlushResult:
    sent: int = 0
    stored: int = 0
    rejected: int = 0
    left: int = 0
    last_error: str = ""


def flush(spool: Spool, base_url: str, api_key: str | None, *, timeout: float = 30.0) -> FlushResult:
    """Send every spooled report, oldest first; stop at the first ``retry`` (the server is away)."""
    result = FlushResult()
    items = list(spool.items())
    with httpx.Client(base_url=base_url, timeout=timeout) as client:
        for n, item in enumerate(items):
            out = post(client, item.endpoint, item.body, item.idempotency_key, api_key)
            if out.status == "retry":
                result.left = len(items) - n
                result.last_error = out.detail
                break
            if out.status == "rejected":
                spool.reject(item, out.detail)
                result.rejected += 1
                result.last_error = out.detail
                continue
            spool.remove(item)
            if out.status == "sent":
                result.sent += 1
            else:
                result.stored += 1
    return result
