"""Send imported jobs to ``/v1/batch`` in chunks of at most 10,000, safely repeatable.

Each chunk carries an ``Idempotency-Key`` derived from its content (SHA-256 of the exact body), so a
retried or repeated chunk is answered from the server's idempotency record (``Idempotent-Replayed``)
instead of being stored twice. A chunk refused because some of its jobs already have receipts (a 400
naming each ``jobs[i].job_id``) is counted as "already stored" for those jobs and re-sent without them
(a server answering identical repeats with 200 needs nothing more); other per-job refusals, including
409 ``JOB_ID_CONFLICT`` (a known id with other inputs), are reported with their input line and dropped,
and the rest of the chunk is re-sent. No answer, 5xx or 429: retried with
back-off, then the import stops (re-running it is safe).
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from powermeter.tracking.spool import _error_detail, is_already_stored

MAX_CHUNK = 10_000
MAX_WAIT_S = 30.0
_INDEX = re.compile(r"^jobs\[(\d+)\]")


class ImportStopped(RuntimeError):
    pass


@dataclass(slots=True)
class SendResult:
    stored: int = 0
    already: int = 0
    rejected: list[str] = field(default_factory=list)
    kwh: float = 0.0
    co2_grams: float = 0.0


def chunk_key(raw: bytes) -> str:
    return "pm-import-" + hashlib.sha256(raw).hexdigest()[:48]


def send_jobs(
    jobs: Sequence[dict[str, Any]],
    base_url: str,
    api_key: str | None,
    *,
    chunk_size: int = MAX_CHUNK,
    labels: Sequence[str] | None = None,
    timeout: float = 120.0,
    retries: int = 4,
    progress: Callable[[int], None] | None = None,
) -> SendResult:
    """``labels[i]`` names job *i* in messages (e.g. its input line)."""
    if not 1 <= chunk_size <= MAX_CHUNK:
        raise ValueError(f"chunk size must be 1 to {MAX_CHUNK}")
    result = SendResult()
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    with httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout) as client:
        for start in range(0, len(jobs), chunk_size):
            idx = list(range(start, min(start + chunk_size, len(jobs))))
            _send_chunk(client, headers, jobs, idx, labels, result, retries)
            if progress is not None:
                progress(len(idx))
    return result


def _send_chunk(
    client: httpx.Client,
    headers: dict[str, str],
    jobs: Sequence[dict[str, Any]],
    idx: list[int],
    labels: Sequence[str] | None,
    result: SendResult,
    retries: int,
) -> None:
    failures = 0
    rounds = 0
    while idx:
        rounds += 1
        if rounds > 10:
            raise ImportStopped("the server keeps refusing this chunk; stopping")
        raw = orjson.dumps({"jobs": [jobs[i] for i in idx]})
        try:
            resp = client.post("/v1/batch", content=raw, headers={**headers, "Idempotency-Key": chunk_key(raw)})
        except httpx.HTTPError as exc:
            resp = None
            reason = f"server unreachable: {type(exc).__name__}: {exc}"
        if resp is not None and 200 <= resp.status_code < 300:
            if resp.headers.get("idempotent-replayed") == "true":
                result.already += len(idx)  # this exact chunk was stored before
            else:
                data = resp.json()["data"]
                # a job reported before with the same inputs comes back with its stored receipt
                # ("replayed": true): already stored, not new, and not counted in the new totals
                again = [j for j in data.get("jobs", []) if j.get("replayed")]
                result.already += len(again)
                result.stored += len(idx) - len(again)
                result.kwh += float(data.get("total_kwh", 0.0)) - math.fsum(float(j["kwh"]) for j in again)
                result.co2_grams += float(data.get("total_co2_grams", 0.0)) - math.fsum(
                    float(j["co2_grams"]) for j in again
                )
            return
        if (
            resp is None
            or resp.status_code >= 500
            or resp.status_code == 429
            or (resp.status_code == 409 and _error_detail(resp)[0] == "IDEMPOTENCY_IN_PROGRESS")
        ):
            failures += 1
            wait = float(resp.headers.get("retry-after", 0) or 0) if resp is not None else 0.0
            if failures > retries or wait > MAX_WAIT_S:  # e.g. the plan's daily cap: not worth waiting for
                why = reason if resp is None else f"server answered {resp.status_code}: {resp.text[:300]}"
                raise ImportStopped(why)
            time.sleep(min(max(wait, 0.5 * 2**failures), MAX_WAIT_S))
            continue
        code, message, errors = _error_detail(resp)
        drop: dict[int, str] = {}
        already: set[int] = set()
        for e in errors:
            m = _INDEX.match(str(e.get("field", "")))
            if m is None or int(m.group(1)) >= len(idx):
                continue
            k = int(m.group(1))
            if is_already_stored(resp.status_code, code, message, [e]):
                already.add(k)
            else:
                drop[k] = f"{e.get('field')}: {e.get('message')}"
        if not drop and not already:
            raise ImportStopped(f"server answered {resp.status_code} {code}: {message}")
        for k, why in drop.items():
            job_id = jobs[idx[k]].get("job_id")
            label = f"{labels[idx[k]]} ({job_id})" if labels is not None else f"job {job_id}"
            result.rejected.append(f"{label}: {_INDEX.sub('', why).lstrip('.')}")
        result.already += len(already - set(drop))
        idx = [i for k, i in enumerate(idx) if k not in drop and k not in already]
