"""Sending the gateway's inference records to the powermeter server, after the answers, in batches.

Every record is first appended (one JSON line, one ``write``) to the active segment of a spool
directory; the segment is sealed when it holds ``batch_size`` records or is ``flush_interval_s`` old,
and a background task posts each sealed segment to ``POST /v1/inference/batch`` and deletes it once the
server has answered for every record (created, duplicate or rejected). So:

- recording never delays an answer: the append happens after the answer's last byte (the records
  of the calls that end in one event-loop iteration in one ``write``), the network call in the
  background;
- memory stays bounded: the queue *is* the spool (a segment is read back only to send it), and the
  spool itself is bounded (``max_records``; beyond it new records are dropped and counted, loudly);
- the server being away costs nothing but disk: segments wait, the sender backs off (0.5 s doubling
  to 30 s) and retries;
- nothing is counted twice: each record carries an idempotency key that the server stores with it, so a
  batch re-sent after a lost answer, or a segment re-sent after a restart, yields ``duplicate`` entries;
- nothing is lost on a restart or a crash of the gateway process: appended lines are in the kernel's
  page cache as soon as ``write`` returns, and a restarted gateway sends the segments it finds.
  (A power loss can lose the last unsynced lines: ``fsync=True`` syncs every append, at a cost.)

A spool directory belongs to one gateway process at a time (an exclusive ``flock`` on ``LOCK``).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

from powermeter.proxy.upstream import LeanClient, UpstreamError

log = logging.getLogger(__name__)

MAX_BATCH = 1000  # POST /v1/inference/batch accepts up to 1,000 records


class SpoolLocked(RuntimeError):
    pass


class Spool:
    """Append-only JSON-lines segments in ``directory`` (see the module docstring)."""

    def __init__(self, directory: Path, *, max_records: int = 1_000_000, fsync: bool = False) -> None:
        self.directory = Path(directory)
        self.max_records = max_records
        self.fsync = fsync
        self.sealed: list[Path] = []
        self.total = 0  # records on disk, not yet acknowledged
        self.dropped = 0
        self._fd: int | None = None
        self._active: Path | None = None
        self.active_count = 0
        self.active_since = 0.0
        self._lock_fd: int | None = None
        self._seq = 0
        self._whole: set[Path] = set()  # sealed segments whose every line this process wrote whole
        self._active_whole = True

    def open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.directory / "LOCK", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise SpoolLocked(
                f"spool directory {self.directory} is in use by another gateway; give each gateway its own --spool-dir"
            ) from None
        self._lock_fd = fd
        self.sealed = sorted(self.directory.glob("*.jsonl"))
        self.total = sum(len(self.read_lines(p)) for p in self.sealed)

    def close(self) -> None:
        self.seal()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def append(self, record: dict[str, Any]) -> bool:
        return self.append_many([record]) == 1

    def append_many(self, records: list[dict[str, Any]]) -> int:
        """Append records (one ``write``); returns how many were kept (the rest: spool full, dropped)."""
        return self.append_lines([orjson.dumps(r, option=orjson.OPT_APPEND_NEWLINE) for r in records])

    def append_lines(self, records: list[bytes]) -> int:
        """Append records already encoded, each one JSON object and a newline (one ``write``); returns how
        many were kept (the rest: spool full, dropped)."""
        room = max(0, self.max_records - self.total)
        if len(records) > room:
            self.dropped += len(records) - room
            log.error("gateway spool full (%d records): %d record(s) dropped so far", self.total, self.dropped)
            records = records[:room]
        if not records:
            return 0
        if self._fd is None:
            self._seq += 1
            self._active = self.directory / f"{time.time_ns():020d}-{self._seq:06d}.part"
            self._fd = os.open(self._active, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            self.active_since = time.monotonic()
            self._active_whole = True
        data = b"".join(records)
        try:
            if os.write(self._fd, data) != len(data):
                self._active_whole = False
        except OSError:
            self._active_whole = False
            raise
        if self.fsync:
            os.fsync(self._fd)
        self.active_count += len(records)
        self.total += len(records)
        return len(records)

    def seal(self) -> None:
        """Close the active segment and queue it for sending."""
        if self._fd is None or self._active is None:
            return
        os.close(self._fd)
        final = self._active.with_suffix(".jsonl")
        os.replace(self._active, final)
        self.sealed.append(final)
        if self._active_whole:
            self._whole.add(final)
        self._fd, self._active, self.active_count = None, None, 0

    def lines(self, path: Path) -> list[bytes]:
        """The records of a sealed segment as JSON lines. A segment this process wrote with whole writes
        only is split as it is; any other (found at start-up, or after a short write) goes through
        :meth:`read_lines`, which leaves out a line cut short."""
        if path not in self._whole:
            return self.read_lines(path)
        try:
            return path.read_bytes().splitlines()
        except FileNotFoundError:
            return []

    @staticmethod
    def read(path: Path) -> list[dict[str, Any]]:
        return [orjson.loads(line) for line in Spool.read_lines(path)]

    @staticmethod
    def read_lines(path: Path) -> list[bytes]:
        """The segment's records as JSON lines (each a JSON object); a line cut short by a crash is left out."""
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return []
        lines = data.splitlines()
        try:  # one parse for the whole segment: every line is whole (the common case)
            objs = orjson.loads(b"[" + b",".join(lines) + b"]") if lines else []
            if all(isinstance(o, dict) for o in objs):
                return lines
        except orjson.JSONDecodeError:
            pass
        out: list[bytes] = []
        for line in lines:
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue  # a line cut short by a crash
            if isinstance(obj, dict):
                out.append(line)
        return out

    def done(self, path: Path, n: int) -> None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        with contextlib.suppress(ValueError):
            self.sealed.remove(path)
        self._whole.discard(path)
        self.total = max(0, self.total - n)

    def recover_parts(self) -> None:
        """Segments a crashed process left open (``.part``) are sealed as they are."""
        for part in sorted(self.directory.glob("*.part")):
            if part != self._active:
                final = part.with_suffix(".jsonl")
                os.replace(part, final)
                n = len(self.read_lines(final))
                self.total += n
                self.sealed.append(final)
        self.sealed.sort()


class Recorder:
    """The background sender (see the module docstring)."""

    def __init__(
        self,
        spool: Spool,
        url: str,
        api_key: str,
        *,
        batch_size: int = 500,
        flush_interval_s: float = 1.0,
        timeout_s: float = 10.0,
        max_backoff_s: float = 30.0,
    ) -> None:
        if not 1 <= batch_size <= MAX_BATCH:
            raise ValueError(f"batch size must be 1 to {MAX_BATCH}, got {batch_size}")
        self.spool = spool
        self.endpoint = url.rstrip("/") + "/v1/inference/batch"
        u = httpx.URL(self.endpoint)
        if u.scheme not in ("http", "https") or not u.host:
            raise ValueError(f"the powermeter server URL must be http(s)://host[:port][/prefix], got {url!r}")
        self._origin = u.copy_with(raw_path=b"/", query=None)
        self._target = u.raw_path
        self._headers = [
            (b"authorization", f"Bearer {api_key}".encode("latin-1")),
            (b"content-type", b"application/json"),
        ]
        self.api_key = api_key
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.timeout_s = timeout_s
        self.max_backoff_s = max_backoff_s
        self.created = 0
        self.duplicates = 0
        self.rejected = 0
        self.failures = 0
        self.last_error = ""
        self._wake = asyncio.Event()
        self._lines: list[bytes] = []
        self._task: asyncio.Task[None] | None = None
        self._client: LeanClient | None = None  # the proxy's keep-alive HTTP/1.1 client (lighter than httpx)
        self._loop: asyncio.AbstractEventLoop | None = None  # kept: get_running_loop() costs a getpid()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self.spool.open()
        self.spool.recover_parts()
        self._client = LeanClient(connect_timeout_s=self.timeout_s, read_timeout_s=self.timeout_s)
        self._loop = asyncio.get_running_loop()
        self._task = self._loop.create_task(self._run())

    async def aclose(self, drain_timeout_s: float = 5.0) -> None:
        """Seal the active segment and try once to send what is queued; what is not sent stays on disk."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        self._write()
        self.spool.seal()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.flush(), drain_timeout_s)
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        self.spool.close()

    def add(self, line: bytes) -> None:
        """Queue one record, a JSON object and a newline (``Gateway.meter``). The records of calls that
        end in the same event-loop iteration are appended to the spool together, at the end of that
        iteration (one ``write``)."""
        self._lines.append(line)
        if len(self._lines) == 1:
            (self._loop or asyncio.get_running_loop()).call_soon(self._write)

    def _write(self) -> None:
        lines, self._lines = self._lines, []
        if lines:
            self.spool.append_lines(lines)
            if self.spool.active_count >= self.batch_size:
                self._wake.set()

    def status(self) -> dict[str, Any]:
        return {
            "pending": self.spool.total,
            "created": self.created,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "dropped": self.spool.dropped,
            "sendFailures": self.failures,
            "lastError": self.last_error,
            "spoolDir": str(self.spool.directory),
        }

    # ------------------------------------------------------------------ sending

    async def _run(self) -> None:
        backoff = 0.0
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), backoff or self.flush_interval_s)
            self._wake.clear()
            try:
                ok = await self.flush()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # never let the sender die
                log.exception("gateway recorder failed")
                self.last_error = f"{type(exc).__name__}: {exc}"
                ok = False
            backoff = 0.0 if ok else min(self.max_backoff_s, max(0.5, backoff * 2))

    async def flush(self) -> bool:
        """Seal the active segment if due, then send every sealed segment in order. ``False`` on the
        first failure (the rest waits for the next attempt)."""
        sp = self.spool
        if sp.active_count and (
            sp.active_count >= self.batch_size or time.monotonic() - sp.active_since >= self.flush_interval_s
        ):
            sp.seal()
        for path in list(sp.sealed):
            lines = sp.lines(path)  # sent as they are on disk: no decoding and re-encoding
            for i in range(0, len(lines), MAX_BATCH):
                if not await self._send(lines[i : i + MAX_BATCH]):
                    return False
            sp.done(path, len(lines))
        return True

    async def _send(self, lines: list[bytes]) -> bool:
        if not lines:
            return True
        assert self._client is not None  # noqa: S101 - started before use
        body = b'{"records":[' + b",".join(lines) + b"]}"
        try:
            async with asyncio.timeout(self.timeout_s):
                resp = await self._client.request(self._origin, "POST", self._target, self._headers, body, None)
                try:
                    data = await resp.read()
                finally:
                    await resp.aclose()
        except (UpstreamError, TimeoutError) as exc:
            return self._failed(f"powermeter server unreachable: {type(exc).__name__}: {exc}")
        if resp.status != 200:
            level = logging.ERROR if resp.status in (400, 401, 403, 404, 422) else logging.WARNING
            msg = f"powermeter server answered {resp.status}: {data[:300].decode('utf-8', 'replace')}"
            log.log(level, "%s (records kept in the spool, retrying)", msg)
            return self._failed(msg)
        try:
            answer = orjson.loads(data)
        except orjson.JSONDecodeError:
            return self._failed("powermeter server answered 200 without JSON")
        if not isinstance(answer, dict):
            return self._failed("powermeter server answered 200 without a JSON object")
        self.created += int(answer.get("created", 0))
        self.duplicates += int(answer.get("duplicates", 0))
        rejected = int(answer.get("rejected", 0))
        if rejected:
            self.rejected += rejected
            for entry in answer.get("data", []):
                if entry.get("status") == "rejected":
                    log.warning("powermeter rejected a record (%s): %s", entry.get("error_code"), entry.get("detail"))
        self.last_error = ""
        return True

    def _failed(self, message: str) -> bool:
        self.failures += 1
        self.last_error = message
        return False
