"""Structured request logs, request ids and Prometheus metrics (a pure ASGI middleware)."""

from __future__ import annotations

import atexit
import contextlib
import logging
import mmap
import os
import secrets
import struct
import tempfile
import threading
import time
import weakref
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("powermeter.request")

_HELP = {
    "powermeter_db_unavailable_total": "Requests answered 503/507 because the database was down, full or "
    "read-only, by cause and status.",
}
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    """Request counts, latency histograms and named counters (``inc``), rendered as Prometheus text
    with the lines of ``collectors`` appended.

    One process: plain dictionaries, nothing else. Several worker processes (``powermeter serve
    --workers N``): each process is given the same ``shared_dir`` (``POWERMETER_METRICS_DIR``, which
    ``serve`` sets before the workers start); a process then also stores every value it changes in its
    own memory-mapped file there (:class:`CounterFile`: one 8-byte store per value, no lock shared
    with other processes), and ``render`` sums the files of every process, dead ones included, so
    ``/metrics`` answers the totals of the whole server whichever worker serves it and a restarted
    worker loses nothing. The ``collectors`` return per-process text: each process saves its own
    lines every ``SNAPSHOT_INTERVAL_S`` and at ``render``; ``render`` sums their counters across
    processes and gives their gauges a ``pid`` label (live processes only). See docs/operations.md."""

    def __init__(self, shared_dir: str | os.PathLike[str] | None = None) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self.hist: dict[tuple[str, str], list[int]] = {}
        self.sums: dict[tuple[str, str], float] = defaultdict(float)
        # other counters by name and label set (``inc``), and callables adding their own lines
        self.counters: dict[str, dict[tuple[tuple[str, str], ...], int]] = defaultdict(lambda: defaultdict(int))
        self.collectors: list[Callable[[], list[str]]] = []
        if shared_dir is None:
            shared_dir = os.environ.get(METRICS_DIR_ENV) or None
        self.shared_dir = Path(shared_dir) if shared_dir else None
        self._file: CounterFile | None = None
        self._snapshot_lock = threading.Lock()
        self._snapshot_text: str | None = None
        self._stop = threading.Event()
        if self.shared_dir is not None:
            self._file = CounterFile.create(self.shared_dir)
            threading.Thread(
                target=_snapshot_loop, args=(weakref.ref(self), self._stop), name="metrics-snapshot", daemon=True
            ).start()
            atexit.register(_final_snapshot, weakref.ref(self))

    def inc(self, name: str, **labels: str) -> None:
        with self._lock:
            series = self.counters[name]
            key = tuple(sorted(labels.items()))
            n = series[key] = series[key] + 1
            if self._file is not None:
                self._file.put_counter(name, key, n)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            rkey = (method, route, status)
            n = self.requests[rkey] = self.requests[rkey] + 1
            key = (method, route)
            h = self.hist.get(key)
            if h is None:
                h = self.hist[key] = [0] * (len(_BUCKETS) + 1)
            i = bisect_left(_BUCKETS, seconds)  # the first bucket with seconds <= bound; len(_BUCKETS) is +Inf
            h[i] += 1
            total = self.sums[key] = self.sums[key] + seconds
            if self._file is not None:
                self._file.put_request(rkey, n)
                self._file.put_hist(key, i, h[i], total)

    def render(self) -> str:
        if self.shared_dir is None:
            with self._lock:
                out = _series_lines(self.requests, self.hist, self.sums, self.counters)
            for collect in self.collectors:
                out += collect()
            return "\n".join(out) + "\n"
        totals = read_shared_dir(self.shared_dir)
        out = _series_lines(totals.requests, totals.hist, totals.sums, totals.counters)
        own = self.save_snapshot()
        out += merge_collected(own, _other_snapshots(self.shared_dir, self._snapshot_path()))
        return "\n".join(out) + "\n"

    # -- several processes ------------------------------------------------------------------------

    def _snapshot_path(self) -> Path | None:
        return self._file.path.with_suffix(SNAPSHOT_SUFFIX) if self._file is not None else None

    def save_snapshot(self) -> list[str]:
        """Run the collectors; in shared mode also save their lines for the other processes' ``render``
        (rewritten only when they changed). Returns the lines."""
        lines: list[str] = []
        for collect in self.collectors:
            lines += collect()
        path = self._snapshot_path()
        if path is not None:
            text = "\n".join(lines)
            with self._snapshot_lock:
                if text != self._snapshot_text:
                    tmp = path.with_suffix(".tmp")
                    tmp.write_text(text)
                    os.replace(tmp, path)
                    self._snapshot_text = text
        return lines

    def close(self) -> None:
        """Stop the snapshot thread and save the collectors' lines a last time. The counter file stays:
        its counts are part of the totals until the directory is cleared."""
        self._stop.set()
        if self._file is not None:
            with contextlib.suppress(Exception):
                self.save_snapshot()
            with self._lock:
                self._file.close()
                self._file = None


def _series_lines(
    requests: Mapping[tuple[str, str, int], int],
    hist: Mapping[tuple[str, str], list[int]],
    sums: Mapping[tuple[str, str], float],
    counters: Mapping[str, Mapping[tuple[tuple[str, str], ...], int]],
) -> list[str]:
    out = [
        "# HELP powermeter_http_requests_total HTTP requests by method, route template and status.",
        "# TYPE powermeter_http_requests_total counter",
    ]
    for (m, r, s), n in sorted(requests.items()):
        out.append(f'powermeter_http_requests_total{{method="{m}",route="{r}",status="{s}"}} {n}')
    out += [
        "# HELP powermeter_http_request_duration_seconds Request latency.",
        "# TYPE powermeter_http_request_duration_seconds histogram",
    ]
    for (m, r), h in sorted(hist.items()):
        cum = 0
        for b, n in zip((*_BUCKETS, float("inf")), h, strict=True):
            cum += n
            le = "+Inf" if b == float("inf") else repr(b)
            out.append(f'powermeter_http_request_duration_seconds_bucket{{method="{m}",route="{r}",le="{le}"}} {cum}')
        out.append(f'powermeter_http_request_duration_seconds_count{{method="{m}",route="{r}"}} {cum}')
        out.append(f'powermeter_http_request_duration_seconds_sum{{method="{m}",route="{r}"}} {sums[(m, r)]:.6f}')
    for name, series in sorted(counters.items()):
        out += [f"# HELP {name} {_HELP.get(name, name)}", f"# TYPE {name} counter"]
        for labels, n in sorted(series.items()):
            text = ",".join(f'{k}="{v}"' for k, v in labels)
            out.append(f"{name}{{{text}}} {n}")
    return out


METRICS_DIR_ENV = "POWERMETER_METRICS_DIR"
COUNTER_SUFFIX = ".counters"
SNAPSHOT_SUFFIX = ".collect"
SNAPSHOT_INTERVAL_S = 1.0  # how stale another process's collector lines may be in /metrics
_INITIAL_FILE_BYTES = 64 * 1024  # ~400 series; doubled when full
_HEADER = struct.Struct("=Q")  # bytes in use, at the start of a counter file
_RECORD = struct.Struct("=II")  # a record: key length, number of values; then the key, padded to 8, then the values


class CounterFile:
    """The counters of one process, memory-mapped so another process can read them at any time and
    they outlive this one. Only this process writes it (under ``Metrics._lock``).

    Layout: an 8-byte count of the bytes in use, then records appended one after the other: key length
    and value count (two uint32), the key (JSON, padded to 8 bytes), the values (float64, aligned, so a
    reader never sees half a value). A record is complete before the count of bytes in use includes it."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd = fd
        self._size = _INITIAL_FILE_BYTES
        os.ftruncate(fd, self._size)
        self._mm = mmap.mmap(fd, self._size)
        self._values = memoryview(self._mm).cast("d")
        self._used = _HEADER.size
        _HEADER.pack_into(self._mm, 0, self._used)
        # key -> index (in float64 units) of its first value
        self._requests: dict[tuple[str, str, int], int] = {}
        self._hists: dict[tuple[str, str], int] = {}
        self._counters: dict[tuple[str, tuple[tuple[str, str], ...]], int] = {}

    @classmethod
    def create(cls, directory: Path) -> CounterFile:
        """A new file, named after this process and a random token (a pid can be reused)."""
        directory.mkdir(parents=True, exist_ok=True)
        while True:
            path = directory / f"{os.getpid()}-{secrets.token_hex(4)}{COUNTER_SUFFIX}"
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                continue
            return cls(path, fd)

    def put_request(self, key: tuple[str, str, int], n: int) -> None:
        at = self._requests.get(key)
        if at is None:
            at = self._requests[key] = self._add(orjson.dumps(["r", *key]), 1)
        self._values[at] = n

    def put_hist(self, key: tuple[str, str], bucket: int, n: int, total: float) -> None:
        at = self._hists.get(key)
        if at is None:
            at = self._hists[key] = self._add(orjson.dumps(["h", *key]), len(_BUCKETS) + 2)
        self._values[at + bucket] = n
        self._values[at + len(_BUCKETS) + 1] = total

    def put_counter(self, name: str, labels: tuple[tuple[str, str], ...], n: int) -> None:
        at = self._counters.get((name, labels))
        if at is None:
            at = self._counters[(name, labels)] = self._add(orjson.dumps(["c", name, labels]), 1)
        self._values[at] = n

    def _add(self, key: bytes, n_values: int) -> int:
        head = _RECORD.size + len(key)
        start = self._used + head + (-head) % 8
        end = start + 8 * n_values
        if end > self._size:
            self._grow(end)
        _RECORD.pack_into(self._mm, self._used, len(key), n_values)
        self._mm[self._used + _RECORD.size : self._used + head] = key
        self._used = end  # the values are zero: the file grows by zeros
        _HEADER.pack_into(self._mm, 0, end)
        return start // 8

    def _grow(self, needed: int) -> None:
        size = self._size
        while size < needed:
            size *= 2
        self._values.release()
        self._mm.close()
        os.ftruncate(self._fd, size)
        self._size = size
        self._mm = mmap.mmap(self._fd, size)
        self._values = memoryview(self._mm).cast("d")

    def close(self) -> None:
        self._values.release()
        self._mm.close()
        os.close(self._fd)


@dataclass
class Totals:
    """Counts read from counter files (summed when several)."""

    requests: dict[tuple[str, str, int], int] = field(default_factory=lambda: defaultdict(int))
    hist: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    sums: dict[tuple[str, str], float] = field(default_factory=lambda: defaultdict(float))
    counters: dict[str, dict[tuple[tuple[str, str], ...], int]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(int))
    )

    def request_count(self, route: str) -> int:
        return sum(n for (_, r, _), n in self.requests.items() if r == route)


def read_counter_file(path: Path, into: Totals | None = None) -> Totals:
    """Add the counts of one process's file to ``into`` (a new :class:`Totals` if None)."""
    totals = into if into is not None else Totals()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return totals
    if len(data) < _HEADER.size:
        return totals
    used = min(_HEADER.unpack_from(data, 0)[0], len(data))
    at = _HEADER.size
    n_buckets = len(_BUCKETS) + 1
    while at + _RECORD.size <= used:
        key_len, n_values = _RECORD.unpack_from(data, at)
        head = _RECORD.size + key_len
        start = at + head + (-head) % 8
        end = start + 8 * n_values
        if end > used:
            break
        key = orjson.loads(data[at + _RECORD.size : at + head])
        values = struct.unpack_from(f"={n_values}d", data, start)
        at = end
        if key[0] == "r":
            totals.requests[(key[1], key[2], int(key[3]))] += int(values[0])
        elif key[0] == "h":
            hk = (key[1], key[2])
            h = totals.hist.setdefault(hk, [0] * n_buckets)
            for i in range(n_buckets):
                h[i] += int(values[i])
            totals.sums[hk] += values[n_buckets]
        elif key[0] == "c":
            labels = tuple((str(k), str(v)) for k, v in key[2])
            totals.counters[key[1]][labels] += int(values[0])
    return totals


def counter_files(directory: Path) -> list[Path]:
    """The counter files of every process that used ``directory``, oldest name first."""
    return sorted(directory.glob(f"*{COUNTER_SUFFIX}"))


def read_shared_dir(directory: Path) -> Totals:
    """The counts of every process (live or dead) that used ``directory``, summed."""
    totals = Totals()
    for path in counter_files(directory):
        read_counter_file(path, totals)
    return totals


def _pid_of(path: Path) -> int | None:
    head = path.name.split("-", 1)[0]
    return int(head) if head.isdigit() else None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _other_snapshots(directory: Path, own: Path | None) -> list[tuple[int, list[str], bool]]:
    """(pid, collector lines, alive) of every other process's snapshot in ``directory``."""
    out = []
    for path in sorted(directory.glob(f"*{SNAPSHOT_SUFFIX}")):
        pid = _pid_of(path)
        if path == own or pid is None:
            continue
        try:
            text = path.read_text()
        except FileNotFoundError:
            continue
        out.append((pid, text.splitlines(), _pid_alive(pid)))
    return out


def _format_value(v: float) -> str:
    return str(int(v)) if v.is_integer() and abs(v) < 2**53 else repr(v)


def _with_pid(series: str, pid: int) -> str:
    if series.endswith("}"):
        inner = series[series.index("{") + 1 : -1]
        return f'{series[: series.index("{")]}{{{inner}{"," if inner else ""}pid="{pid}"}}'
    return f'{series}{{pid="{pid}"}}'


def merge_collected(own: list[str], others: list[tuple[int, list[str], bool]]) -> list[str]:
    """Merge the collector lines of this process (``own``) and of the others (pid, lines, alive):
    counter, histogram and summary samples are summed across processes (dead ones included: their
    counts happened); gauge and untyped samples get a ``pid`` label, from live processes only."""
    helps: dict[str, str] = {}
    types: dict[str, str] = {}
    families: dict[str, dict[str, float]] = {}  # family -> series -> value, in order of first appearance
    for pid, lines, alive in [(os.getpid(), own, True), *others]:
        for line in lines:
            if line.startswith("# HELP "):
                name = line[7:].split(" ", 1)[0]
                helps.setdefault(name, line)
                families.setdefault(name, {})
                continue
            if line.startswith("# TYPE "):
                parts = line[7:].split()
                if len(parts) == 2:
                    types.setdefault(parts[0], parts[1])
                    families.setdefault(parts[0], {})
                continue
            if not line.strip() or line.startswith("#"):
                continue
            series, _, value = line.rpartition(" ")
            try:
                v = float(value)
            except ValueError:
                continue
            name = series.split("{", 1)[0]
            family = name
            if family not in types:
                for suffix in ("_bucket", "_count", "_sum", "_total", "_created"):
                    if name.endswith(suffix) and name[: -len(suffix)] in types:
                        family = name[: -len(suffix)]
                        break
            samples = families.setdefault(family, {})
            if types.get(family) in ("counter", "histogram", "summary"):
                samples[series] = samples.get(series, 0.0) + v
            elif alive:
                samples.setdefault(_with_pid(series, pid), v)  # one per pid: this process (first) wins
    out: list[str] = []
    for family, samples in families.items():
        if family in helps:
            out.append(helps[family])
        if family in types:
            out.append(f"# TYPE {family} {types[family]}")
        out += [f"{series} {_format_value(v)}" for series, v in samples.items()]
    return out


def _snapshot_loop(ref: weakref.ref[Metrics], stop: threading.Event) -> None:
    while not stop.wait(SNAPSHOT_INTERVAL_S):
        metrics = ref()
        if metrics is None:
            return
        with contextlib.suppress(Exception):  # a collector's failure must not end the loop
            metrics.save_snapshot()
        del metrics


def _final_snapshot(ref: weakref.ref[Metrics]) -> None:
    metrics = ref()
    if metrics is not None:
        with contextlib.suppress(Exception):
            metrics.save_snapshot()


def prepare_shared_dir(configured: str | None, workers: int) -> tuple[Path | None, bool]:
    """For ``powermeter serve``: the directory the worker processes share their counts in, emptied of a
    previous run's files, and whether it was made here (a temporary directory, to remove at exit).
    ``configured`` (``POWERMETER_METRICS_DIR``) is used when set; otherwise one worker needs none."""
    if configured:
        directory = Path(configured)
        directory.mkdir(parents=True, exist_ok=True)
        for suffix in (COUNTER_SUFFIX, SNAPSHOT_SUFFIX, ".tmp"):
            for old in directory.glob(f"*{suffix}"):
                old.unlink(missing_ok=True)
        return directory, False
    if workers <= 1:
        return None, False
    return Path(tempfile.mkdtemp(prefix="powermeter-metrics-")), True


def _ratelimit_headers(scope: Scope) -> dict[str, str] | None:
    """The ``RateLimit-*`` headers the authentication/quota dependency stored for this request
    (``request.state.ratelimit_headers``, which lives in ``scope["state"]``)."""
    state = scope.get("state")
    if not state:
        return None
    h = state.get("ratelimit_headers") if isinstance(state, dict) else getattr(state, "ratelimit_headers", None)
    return h if isinstance(h, dict) else None


class ObservabilityMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics, log_requests: bool = True) -> None:
        self.app = app
        self.metrics = metrics
        self.log_requests = log_requests

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500
        rid = None
        for k, v in scope.get("headers", ()):
            if k == b"x-request-id":
                rid = v.decode("latin-1")[:64]
                break
        rid = rid or secrets.token_hex(8)

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [*message.get("headers", ()), (b"x-request-id", rid.encode())]
                limits = _ratelimit_headers(scope)
                if limits:
                    # The quota dependency computed them, but a route that returns its own Response
                    # object drops the dependency's headers: add any the response does not carry.
                    have = {k.lower() for k, _ in headers}
                    headers.extend(
                        (k.lower().encode("latin-1"), v.encode("latin-1"))
                        for k, v in limits.items()
                        if k.lower().encode("latin-1") not in have
                    )
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - start
            route: Any = scope.get("route")
            template = getattr(route, "path", None) or "<unmatched>"
            self.metrics.observe(scope["method"], template, status, elapsed)
            if self.log_requests:
                log_request(scope, rid, template, status, elapsed)


def log_request(scope: Scope, rid: str, template: str, status: int, elapsed: float) -> None:
    """One structured log line per request (the middleware's and the compiled routes', alike)."""
    if not log.isEnabledFor(logging.INFO):
        return
    client = scope.get("client")
    log.info(
        orjson.dumps(
            {
                "event": "request",
                "request_id": rid,
                "method": scope["method"],
                "path": scope["path"],
                "route": template,
                "status": status,
                "duration_ms": round(elapsed * 1000, 3),
                "client": client[0] if client else None,
            }
        ).decode()
    )
