"""Run a command under measurement and report it (the engine of ``powermeter track``)."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from powermeter.tracking.measure import DEFAULT_INTERVAL_S, Measured, Measurement, Meters
from powermeter.tracking.spool import DEFAULT_URL, KEY_ENV, URL_ENV, Outcome, Spool, new_idempotency_key, post

GEO_ENV = "POWERMETER_GEO_ISO"
DEFAULT_GEO = "WORLD"
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def generated_job_id(prefix: str = "track") -> str:
    return f"{prefix}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(3)}"


@dataclass(slots=True)
class ReportSettings:
    url: str | None = None
    api_key: str | None = None
    spool_dir: str | None = None
    geo_iso: str | None = None
    timeout: float = 10.0
    extra: dict[str, Any] = field(default_factory=dict)  # cpu_model, gpu_model, pue…

    @property
    def base_url(self) -> str:
        return (self.url or os.environ.get(URL_ENV) or DEFAULT_URL).rstrip("/")

    @property
    def key(self) -> str | None:
        return self.api_key if self.api_key is not None else os.environ.get(KEY_ENV)

    @property
    def geo(self) -> str:
        return self.geo_iso or os.environ.get(GEO_ENV) or DEFAULT_GEO


@dataclass(slots=True)
class Delivery:
    outcome: Outcome
    spooled: Path | None = None


def deliver(body: dict[str, Any], settings: ReportSettings, client: httpx.Client | None = None) -> Delivery:
    """POST /v1/report; spool when the server is away (no answer, 5xx, 429)."""
    key = new_idempotency_key()
    if client is None:
        with httpx.Client(base_url=settings.base_url, timeout=settings.timeout) as c:
            out = post(c, "/v1/report", body, key, settings.key)
    else:
        out = post(client, "/v1/report", body, key, settings.key)
    if out.status == "retry":
        return Delivery(out, Spool(settings.spool_dir).put(body, key))
    return Delivery(out)


def describe(job_id: str, delivery: Delivery) -> str:
    out = delivery.outcome
    if out.status == "sent" and out.data:
        d = out.data
        parts = [
            f"powermeter: job {job_id}: receipt {d.get('receipt_id')}, {d.get('kwh', 0):.6g} kWh, "
            f"{d.get('co2_grams', 0):.6g} g CO2e"
        ]
        sources = d.get("energy_sources") or {}
        measured = [f"{c} {s.get('source')}" for c, s in sources.items() if s.get("method") == "measured"]
        parts.append(f" (measured: {', '.join(measured)})" if measured else " (modelled)")
        for w in d.get("warnings") or []:
            parts.append(f"\npowermeter: warning: {w}")
        return "".join(parts)
    if out.status == "sent":
        return f"powermeter: job {job_id}: reported ({out.http_status})"
    if delivery.spooled is not None:
        return (
            f"powermeter: job {job_id}: server unavailable ({out.detail}); report spooled to "
            f"{delivery.spooled}; send it later with: powermeter track flush"
        )
    if out.status == "stored":
        return f"powermeter: job {job_id}: already has a receipt ({out.detail})"
    return f"powermeter: job {job_id}: report refused, not stored: {out.detail}"


def _exit_code(status: int) -> int:
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def _foreground_group_shared_with(pid: int) -> bool:
    """True when ``pid`` is in our process group and that group is its terminal's foreground group: a
    Ctrl-C there reaches the command directly, and forwarding it would deliver SIGINT twice."""
    try:
        fd = os.open("/dev/tty", os.O_RDONLY | os.O_NOCTTY)
    except OSError:
        return False  # no controlling terminal (a batch job, CI, tests): always forward
    try:
        return os.getpgid(pid) == os.getpgrp() == os.tcgetpgrp(fd)
    except OSError:
        return False
    finally:
        os.close(fd)


def run_command(
    cmd: Sequence[str],
    *,
    interval: float = DEFAULT_INTERVAL_S,
    cpu_cores: float | None = None,
    powercap_dir: str | None = None,
    use_gpu: bool = True,
    on_start: Callable[[int], None] | None = None,
) -> tuple[int, Measured | None]:
    """Run ``cmd``, sampling it every ``interval`` s; forward SIGINT/SIGTERM. Returns the exit status
    (128 + N when killed by signal N; 127/126 when it cannot be started) and what was measured."""
    meters: Meters | None = None
    try:
        meters = Meters.open(powercap_dir, use_gpu)  # first counter readings before the command starts
    except Exception as exc:
        print(f"powermeter: warning: cannot read energy counters: {exc}", file=sys.stderr)
    # The handlers are in place before the command starts: a signal that arrives while it is being
    # started (its first output can reach a supervisor before this process gets here) is kept and
    # forwarded as soon as it runs, never lost and never left to kill this process alone.
    started: list[subprocess.Popen[bytes]] = []
    pending: list[int] = []
    terminal_group = False

    def forward(signum: int, _frame: Any) -> None:
        if not started:
            pending.append(signum)
            return
        if signum == signal.SIGINT and terminal_group:
            return  # Ctrl-C at the terminal went to the whole foreground group: the command has it already
        if started[0].returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(started[0].pid, signum)

    previous = {s: signal.signal(s, forward) for s in FORWARDED_SIGNALS}
    try:
        proc = subprocess.Popen(list(cmd))  # noqa: S603 - running the user's command is the point
    except (FileNotFoundError, PermissionError) as exc:
        for s, h in previous.items():
            signal.signal(s, h)
        missing = isinstance(exc, FileNotFoundError)
        print(f"powermeter: {'command not found' if missing else 'permission denied'}: {cmd[0]}", file=sys.stderr)
        return (127 if missing else 126), None
    terminal_group = _foreground_group_shared_with(proc.pid)
    started.append(proc)
    for signum in pending:  # arrived before the command existed: it did not get them, even at a terminal
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signum)
    pending.clear()
    waited: dict[str, Any] = {}
    done = threading.Event()

    def wait() -> None:
        _pid, status, ru = os.wait4(proc.pid, 0)
        waited.update(status=status, ru=ru)
        done.set()

    measurement: Measurement | None = None
    try:
        try:
            measurement = Measurement(
                proc.pid, cpu_cores=cpu_cores, powercap_dir=powercap_dir, use_gpu=use_gpu, meters=meters
            )
        except Exception as exc:  # measuring must never stop the command from running
            print(f"powermeter: warning: cannot measure the command: {exc}", file=sys.stderr)
        threading.Thread(target=wait, name="powermeter-wait", daemon=True).start()
        if on_start is not None:
            on_start(proc.pid)
        while not done.wait(interval):
            if measurement is not None:
                try:
                    measurement.tick()
                except Exception:  # noqa: S112 - one failed sample is skipped
                    continue
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
    code = _exit_code(waited["status"])
    proc.returncode = code
    if measurement is None:
        return code, None
    ru = waited["ru"]
    try:
        measured = measurement.finish(
            rusage_cpu_seconds=ru.ru_utime + ru.ru_stime, rusage_maxrss_bytes=int(ru.ru_maxrss) * 1024
        )
    except Exception as exc:
        print(f"powermeter: warning: measurement failed: {exc}", file=sys.stderr)
        return code, None
    measured.exit_status = code
    return code, measured
