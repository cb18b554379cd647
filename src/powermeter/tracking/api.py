"""``track``: measure a block or a function of the current process and report it as one job.

    from powermeter.client import PowermeterClient, track

    with track("train-2026-12-03", cpu_cores=8, geo_iso="DE") as t:
        train()
    print(t.receipt or t.spooled)

    @track("nightly-etl", geo_iso="FR")     # one job per call: "nightly-etl-<UTC start>-<4 hex>"
    def etl() -> None: ...

Measured as ``powermeter track`` measures a command (see :mod:`powermeter.tracking.measure`): the CPU
time of this process (and of the children it waited for) and of its live children, its peak RSS, RAPL
and NVML energy, sampled by a background thread every ``interval`` seconds. The server and key come
from ``client=`` (a :class:`~powermeter.client.PowermeterClient`), else ``url=``/``api_key=``, else
``$POWERMETER_URL``/``$POWERMETER_API_KEY``; when it cannot be reached the report goes to the same
spool as the CLI's (``powermeter track flush`` sends it). Reporting never raises into your code unless
``raise_errors=True``; an exception from the block is re-raised after its job is reported.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from powermeter.tracking.measure import DEFAULT_INTERVAL_S, Measured, Measurement
from powermeter.tracking.runner import Delivery, ReportSettings, deliver, describe, generated_job_id

if TYPE_CHECKING:
    from powermeter.client import PowermeterClient


class track(contextlib.ContextDecorator):
    """Measure a ``with`` block, or every call of a decorated function, and report it as one job."""

    def __init__(
        self,
        job_id: str | None = None,
        *,
        cpu_cores: float | None = None,
        memory_gb: float | None = None,
        geo_iso: str | None = None,
        client: PowermeterClient | None = None,
        url: str | None = None,
        api_key: str | None = None,
        spool_dir: str | os.PathLike[str] | None = None,
        interval: float = DEFAULT_INTERVAL_S,
        powercap_dir: str | None = None,
        use_gpu: bool = True,
        raise_errors: bool = False,
        quiet: bool = False,
        **options: Any,
    ) -> None:
        self.job_id = job_id
        self._kw: dict[str, Any] = dict(
            cpu_cores=cpu_cores, memory_gb=memory_gb, geo_iso=geo_iso, client=client, url=url, api_key=api_key,
            spool_dir=spool_dir, interval=interval, powercap_dir=powercap_dir, use_gpu=use_gpu,
            raise_errors=raise_errors, quiet=quiet, **options,
        )  # fmt: skip
        self._client = client
        self._options = options  # cpu_model, gpu_model, pue, provider, region
        self._measurement: Measurement | None = None
        self.measured: Measured | None = None
        self.delivery: Delivery | None = None

    def _recreate_cm(self) -> track:
        # as a decorator: a fresh tracker, and a distinct job id, for every call
        base = self.job_id or "track"
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        return track(f"{base}-{stamp}-{secrets.token_hex(2)}", **self._kw)

    @property
    def receipt(self) -> dict[str, Any] | None:
        """The report's data (receipt_id, kwh, co2_grams, energy_sources…) once sent."""
        d = self.delivery
        return d.outcome.data if d is not None and d.outcome.status == "sent" else None

    @property
    def spooled(self) -> Path | None:
        return self.delivery.spooled if self.delivery is not None else None

    def __enter__(self) -> track:
        if self.job_id is None:
            self.job_id = generated_job_id()
        try:
            self._measurement = Measurement(
                os.getpid(), cpu_cores=self._kw["cpu_cores"], powercap_dir=self._kw["powercap_dir"],
                use_gpu=self._kw["use_gpu"], include_root_children_times=True, since_first_sample=True,
            )  # fmt: skip
            self._measurement.start_thread(float(self._kw["interval"]))
        except Exception as exc:
            if self._kw["raise_errors"]:
                raise
            self._say(f"powermeter: warning: cannot measure job {self.job_id}: {exc}")
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._measurement is None:
            return
        try:
            self.measured = m = self._measurement.finish()
            settings = self._settings()
            body = m.body(str(self.job_id), settings.geo, memory_gb=self._kw["memory_gb"], extra=settings.extra)
            http = getattr(self._client, "_client", None) if self._client is not None else None
            self.delivery = deliver(body, settings, http)
            self._say(describe(str(self.job_id), self.delivery))
        except Exception as err:
            if self._kw["raise_errors"]:
                raise
            self._say(f"powermeter: warning: could not report job {self.job_id}: {type(err).__name__}: {err}")

    def _settings(self) -> ReportSettings:
        url, key = self._kw["url"], self._kw["api_key"]
        if self._client is not None:
            url = url or self._client.base_url
            key = key if key is not None else self._client.jobs._http.api_key
        spool = self._kw["spool_dir"]
        return ReportSettings(url, key, str(spool) if spool else None, self._kw["geo_iso"], extra=self._options)

    def _say(self, text: str) -> None:
        if not self._kw["quiet"]:
            print(text, file=sys.stderr)
