"""Per-request units of work that never starve the thread pool, with group commit on SQLite.

Why: a request's transaction used to be opened in one thread-pool task and committed in another.
Under load, requests waiting for the write lock filled every worker thread, so the request holding
the lock never got a thread back to commit (a stall until the busy timeout). Now the wait happens
on the event loop (an ``asyncio`` lock or semaphore), so a thread is only taken by a request that
can run.

SQLite (durable: ``synchronous=FULL``, one fsync per commit, ~3 ms on this kind of disk) uses group
commit: requests run one after another on one shared connection, each inside its own SAVEPOINT (a
failing request rolls back alone), and one COMMIT makes a whole batch durable. Every request waits
for the commit of its batch before its response is sent, so a success is never reported for data
that is not on disk.

A SQLite unit opened with ``hot_rows=True`` (the ingest routes: ``POST /v1/report``, ``POST /v1/inference``
and its batch) does not write the rows every request of an account touches (the daily usage counters, the
audit chain head, inference's daily rollup) inside the request, nor read them (nor the key row) more than
once per batch: the batch keeps their current values in memory (:func:`hot_rows`) and writes each row once,
just before the COMMIT. New rows that no unit of the batch reads back and that cannot conflict (an
inference record without an idempotency key, its details and signature, every audit entry) are left to the
batch too (:meth:`HotRows.insert`) and written in one ``executemany`` per statement, and work that needs only
be done once per batch runs just before them (:meth:`HotRows.seal`: one signed tree of the batch's inference
records per account and month). The batch holds SQLite's write lock from its ``BEGIN IMMEDIATE`` to its
COMMIT, so no other connection can change those rows meanwhile; a request whose work is rolled back leaves no
trace in the memory either. Any other unit first writes what
is pending and forgets the memory, so it reads and writes the database exactly as it is.

PostgreSQL with a shared admission store (Redis: exact daily quotas and kWh caps across processes,
``infra/ratelimit.py``) uses group commit too, on a few *lanes* per process (:class:`PgGroupCommit`):
each lane is one connection with one open transaction, a SAVEPOINT per request and one COMMIT per
batch. Writes to rows every request of an account touches (usage counters, the audit chain head, a
key's last-used time) are not made inside the request: they are *deferred* (:func:`defer`,
:func:`defer_sum`) to the end of the batch, summed per row, and run in one global order (sorted by
table and key) just before the COMMIT. So no row lock is taken mid-batch on a hot row, locks are held
only through the commit, and two lanes (of one process or of many) can never deadlock on them.
Without Redis, PostgreSQL runs ordinary concurrent transactions (:class:`ConcurrentTransactions`), at
most ``concurrency`` at a time per process, and the quotas are checked in the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine

from powermeter.infra.db.faults import UNIT_WAIT_TIMEOUT_S, TransactionAborted

if TYPE_CHECKING:
    from powermeter.infra.ratelimit import QuotaCounters

T = TypeVar("T")

PRECOMMIT_KEY = "powermeter.precommit"  # Connection.info: work to run just before COMMIT (PostgreSQL)
PENDING_KEY = PRECOMMIT_KEY + ".pending"  # Connection.info: this request's counter increments not yet written
_REQUEST_KEY = "powermeter.lane_request"  # Connection.info (PgGroupCommit): the running request's _Request

# Group-commit bounds (our tuning, see docs/performance.md "Foundation"): a batch commits when nobody is
# waiting, or at 256 requests, or 20 ms after it began, so no response waits much longer than one fsync
# (0.2–3 ms measured) plus 20 ms.
MAX_BATCH = 256
MAX_BATCH_AGE_S = 0.02


class _Batch:
    __slots__ = ("done", "size", "started")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.done: asyncio.Future[None] = loop.create_future()
        self.size = 0
        self.started = time.monotonic()


_HOT_KEY = "powermeter.hot_rows"  # Connection.info (SQLite): the running request's HotRows, if it has one


class HotRows:
    """A SQLite ``hot_rows`` request's view of its batch's hot rows (see the module docstring).

    ``get``/``put`` read and set a row's current value as this request sees it (``None``: not known,
    read the database); ``add`` and ``last`` leave the write of a row for just before the COMMIT:
    ``add`` sums ``amount`` per ``sort_key`` over the batch and calls ``apply(conn, total)`` once,
    ``last`` keeps the latest ``fn`` per ``sort_key`` (a row written once with its final value), and
    ``insert`` leaves a new row to the batch's one ``executemany`` of its statement (:meth:`insert`).
    Nothing a request put or left is kept if its work is rolled back."""

    __slots__ = ("_batch", "inserts", "lasts", "seals", "state", "sums")

    def __init__(self, batch: _HotBatch) -> None:
        self._batch = batch
        self.state: dict[SortKey, Any] = {}
        self.sums: dict[SortKey, tuple[int, Callable[[Connection, int], None]]] = {}
        self.lasts: dict[SortKey, Callable[[Connection], None]] = {}
        self.inserts: list[tuple[str, Sequence[Any]]] = []
        self.seals: dict[SortKey, tuple[Sealer, list[Any]]] = {}

    def get(self, key: SortKey) -> Any:
        v = self.state.get(key)
        return self._batch.state.get(key) if v is None else v

    def put(self, key: SortKey, value: Any) -> None:
        self.state[key] = value

    def add(self, sort_key: SortKey, amount: int, apply: Callable[[Connection, int], None]) -> None:
        total, _ = self.sums.get(sort_key, (0, apply))
        self.sums[sort_key] = (total + amount, apply)

    def last(self, sort_key: SortKey, fn: Callable[[Connection], None]) -> None:
        self.lasts[sort_key] = fn

    def insert(self, sql: str, params: Sequence[Any]) -> None:
        """Insert a new row with ``sql`` (a plain driver ``INSERT``) just before the COMMIT, in one
        ``executemany`` per statement with the batch's other rows of it, in the order the statements were
        first seen (a parent's statement is seen before its children's, so foreign keys hold).

        Only for a row no unit of the batch reads back and that cannot conflict with another (a fresh
        random id, a sequence number from a hot row): a conflict would fail the whole batch at its COMMIT
        instead of the one request. Inside the request it saves the statement, and the copy of every
        index page the row touches into the request's SAVEPOINT journal."""
        self.inserts.append((sql, params))

    def seal(self, sort_key: SortKey, item: Any, fn: Sealer) -> None:
        """Leave ``item`` to one call ``fn(conn, items)`` per ``sort_key`` just before the COMMIT, with every
        item the batch's kept requests left under that key, in request order (the first ``fn`` given is
        used). ``fn`` runs before the batch's new rows and hot rows are written, with a :class:`HotRows` of
        its own (so it may ``insert`` rows, or append audit entries linked to the kept chain head). For work
        done once per batch instead of once per request, e.g. one signature over a tree of the batch's
        records (``inference.service.seal_trees``)."""
        entry = self.seals.get(sort_key)
        if entry is None:
            self.seals[sort_key] = (fn, [item])
        else:
            entry[1].append(item)

    def sealed(self, sort_key: SortKey) -> list[Any]:
        """The items the batch's kept requests left under ``sort_key`` so far, in request order (this
        request's own not included; read-only). Empty once a flush has run the sealers."""
        entry = self._batch.seals.get(sort_key)
        return entry[1] if entry is not None else []


#: ``fn(conn, items)`` of :meth:`HotRows.seal`.
Sealer = Callable[[Connection, list[Any]], None]


class _HotBatch:
    """What the kept requests of one SQLite batch left to write, and the hot rows' current values."""

    __slots__ = ("inserts", "lasts", "seals", "state", "sums")

    def __init__(self) -> None:
        self.state: dict[SortKey, Any] = {}
        self.sums: dict[SortKey, tuple[int, Callable[[Connection, int], None]]] = {}
        self.lasts: dict[SortKey, Callable[[Connection], None]] = {}
        self.inserts: dict[str, list[Sequence[Any]]] = {}
        self.seals: dict[SortKey, tuple[Sealer, list[Any]]] = {}

    def pending(self) -> bool:
        return bool(self.state or self.sums or self.lasts or self.inserts or self.seals)

    def absorb(self, r: HotRows) -> None:
        self.state.update(r.state)
        for key, (amount, apply) in r.sums.items():
            total, _ = self.sums.get(key, (0, apply))
            self.sums[key] = (total + amount, apply)
        self.lasts.update(r.lasts)
        for key, (fn, items) in r.seals.items():
            entry = self.seals.get(key)
            if entry is None:
                self.seals[key] = (fn, items)
            else:
                entry[1].extend(items)
        inserts = self.inserts
        for sql, params in r.inserts:
            rows = inserts.get(sql)
            if rows is None:
                inserts[sql] = [params]
            else:
                rows.append(params)

    def write(self, conn: Connection) -> None:
        """Write every pending row (new rows first, then the hot rows sorted by key), then start empty:
        the next unit reads the database. The sealers run first (:meth:`HotRows.seal`)."""
        if self.seals:
            seals = sorted(self.seals.items(), key=lambda s: s[0])
            self.seals = {}
            r = conn.info[_HOT_KEY] = HotRows(self)
            try:
                for _, (sealer, items) in seals:
                    sealer(conn, items)
            finally:
                conn.info.pop(_HOT_KEY, None)
            self.absorb(r)
        if self.inserts:
            raw: Any = conn.connection.driver_connection
            for sql, rows in self.inserts.items():
                raw.executemany(sql, rows)
            self.inserts.clear()
        work: list[tuple[SortKey, Callable[[Connection], None]]] = list(self.lasts.items())
        for key, (total, apply) in self.sums.items():
            work.append((key, lambda c, apply=apply, total=total: apply(c, total)))  # type: ignore[misc]
        self.state.clear()
        self.sums.clear()
        self.lasts.clear()
        work.sort(key=lambda w: w[0])
        for _, fn in work:
            fn(conn)


def hot_rows(conn: Connection) -> HotRows | None:
    """The request's :class:`HotRows` inside a SQLite ``hot_rows`` unit, else ``None`` (write as usual)."""
    r: HotRows | None = conn.info.get(_HOT_KEY)
    return r


def _discard(conn: Connection) -> None:
    """Roll back whatever a failed batch left and close its connection."""
    try:
        conn.rollback()
    finally:
        conn.close()


class SQLiteGroupCommit:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._lock: asyncio.Lock | None = None
        self._conn: Connection | None = None
        self._outer: Any = None
        self._batch: _Batch | None = None
        self._waiting = 0
        self._flushers: set[asyncio.Task[None]] = set()
        self._hot = _HotBatch()

    def _get_lock(self) -> asyncio.Lock:
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    @asynccontextmanager
    async def unit(self, hot_rows: bool = False, ready_in_thread: bool = False) -> AsyncIterator[Connection]:
        """One request's unit of work; ``hot_rows``: see the module docstring (``ready_in_thread``: lanes')."""
        lock = self._get_lock()
        self._waiting += 1
        try:
            await lock.acquire()
        finally:
            self._waiting -= 1
        batch: _Batch | None = None
        error: BaseException | None = None
        try:
            if self._conn is None:
                self._conn = await anyio.to_thread.run_sync(self.engine.connect)
            conn = self._conn
            if self._batch is None:
                # BEGIN IMMEDIATE may wait for another process's writer: do it off the loop
                self._outer = await anyio.to_thread.run_sync(conn.begin)
                self._batch = _Batch(asyncio.get_running_loop())
                # if every later member goes away (e.g. a client disconnects while queued), the
                # batch is still committed after MAX_BATCH_AGE_S
                self._flushers.add(asyncio.create_task(self._flush_later(self._batch)))
            batch = self._batch
            # each request in its own savepoint, issued on the driver (SQLAlchemy's nested
            # transactions cost ~40 µs each; nothing else opens savepoints on this connection)
            raw: Any = conn.connection.driver_connection
            hot: HotRows | None = None
            if hot_rows:
                hot = conn.info[_HOT_KEY] = HotRows(self._hot)
            elif self._hot.pending():
                # this unit reads and writes the database as it is: the hot rows first
                self._hot.write(conn)
            raw.execute("SAVEPOINT pm_unit")
            try:
                yield conn
            except BaseException as e:
                error = e
                conn.info.pop(_HOT_KEY, None)
                raw.execute("ROLLBACK TO pm_unit")
                raw.execute("RELEASE pm_unit")
            else:
                conn.info.pop(_HOT_KEY, None)
                raw.execute("RELEASE pm_unit")
                if hot is not None:
                    self._hot.absorb(hot)
                batch.size += 1
            if self._waiting == 0 or batch.size >= MAX_BATCH or time.monotonic() - batch.started >= MAX_BATCH_AGE_S:
                await self._commit(batch)
        except BaseException as e:
            if error is None:
                error = e
            if batch is not None and self._batch is batch:
                await self._abort(batch, e)
        finally:
            lock.release()
        if error is not None:
            raise error
        if batch is not None:
            await asyncio.shield(batch.done)

    async def _flush_later(self, batch: _Batch) -> None:
        try:
            await asyncio.sleep(MAX_BATCH_AGE_S * 2)
            lock = self._get_lock()
            while self._batch is batch:
                if not lock.locked():
                    async with lock:
                        if self._batch is batch:
                            # shielded: shutdown cancels this task, and a COMMIT under way must finish
                            # and be reported as it went, not as cancelled after it succeeded
                            with anyio.CancelScope(shield=True):
                                await self._commit(batch)
                    return
                await asyncio.sleep(MAX_BATCH_AGE_S)
        finally:
            task = asyncio.current_task()
            if task is not None:
                self._flushers.discard(task)

    async def _commit(self, batch: _Batch) -> None:
        outer, self._outer, self._batch = self._outer, None, None
        conn, hot = self._conn, self._hot

        def finish() -> None:
            if conn is not None and (hot.sums or hot.lasts or hot.inserts or hot.seals):
                hot.write(conn)
            hot.state.clear()
            outer.commit()

        try:
            await anyio.to_thread.run_sync(finish)
        except BaseException as e:
            await self._reset()
            if not batch.done.done():
                batch.done.set_exception(e)
                batch.done.exception()  # mark retrieved; members re-raise it
            return
        if not batch.done.done():
            batch.done.set_result(None)

    async def _abort(self, batch: _Batch, exc: BaseException) -> None:
        self._batch = None
        self._outer = None
        self._hot = _HotBatch()
        await self._reset()
        if not batch.done.done():
            batch.done.set_exception(TransactionAborted(exc))
            batch.done.exception()

    async def _reset(self) -> None:
        conn, self._conn = self._conn, None
        self._hot = _HotBatch()
        if conn is not None:
            with contextlib.suppress(Exception):  # the connection is discarded either way
                await anyio.to_thread.run_sync(_discard, conn)

    def bind(self) -> None:
        """Start afresh on the running event loop (called by the app's lifespan)."""
        self._lock = None
        self._batch = None
        self._outer = None
        self._hot = _HotBatch()
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def close(self) -> None:
        for t in list(self._flushers):
            t.cancel()
        if self._lock is not None:
            async with self._lock:
                if self._batch is not None:
                    await self._commit(self._batch)
                await self._reset()


class ConcurrentTransactions:
    """PostgreSQL: one ordinary transaction per request, at most ``concurrency`` per process."""

    def __init__(self, engine: Engine, concurrency: int) -> None:
        self.engine = engine
        self.concurrency = concurrency
        self._sem: asyncio.Semaphore | None = None

    @asynccontextmanager
    async def unit(self, hot_rows: bool = False, ready_in_thread: bool = False) -> AsyncIterator[Connection]:
        # ``hot_rows`` is SQLite's (see the module docstring), ``ready_in_thread`` the lanes'; hot rows here
        # are written last in each request
        if self._sem is None:
            self._sem = asyncio.Semaphore(self.concurrency)
        sem = self._sem
        try:
            # bounded: a database that stopped answering must not queue requests forever
            await asyncio.wait_for(sem.acquire(), UNIT_WAIT_TIMEOUT_S)
        except TimeoutError:
            raise sa_exc.TimeoutError(
                f"no unit of work could start within {UNIT_WAIT_TIMEOUT_S:.0f} s "
                f"({self.concurrency} busy in this process)"
            ) from None
        try:
            # a refused or lost connection raises here (OperationalError → 503, infra/db/faults.py);
            # the pool's pre-ping replaces connections a database restart left dead
            conn: Connection = await anyio.to_thread.run_sync(self.engine.connect)
            hooks: list[Callable[[Connection], None]] = []
            conn.info[PRECOMMIT_KEY] = hooks
            try:
                await anyio.to_thread.run_sync(conn.begin)
                try:
                    yield conn
                except BaseException:
                    # on a broken connection the rollback fails too: the original error is the one
                    # to report (the server discards the unfinished transaction itself)
                    with contextlib.suppress(Exception):
                        await anyio.to_thread.run_sync(conn.rollback)
                    raise

                def finish() -> None:
                    # hot shared rows (usage counters) are written last: their locks are held
                    # only through the commit
                    try:
                        for hook in hooks:
                            hook(conn)
                    except BaseException:
                        with contextlib.suppress(Exception):
                            conn.rollback()
                        raise
                    conn.commit()

                await anyio.to_thread.run_sync(finish)
            finally:
                conn.info.pop(PRECOMMIT_KEY, None)
                conn.info.pop(PRECOMMIT_KEY + ".pending", None)
                with contextlib.suppress(Exception):  # an invalidated connection is discarded anyway
                    await anyio.to_thread.run_sync(conn.close)
        finally:
            sem.release()

    def bind(self) -> None:
        self._sem = None

    async def close(self) -> None:
        return None


# --- PostgreSQL group commit ----------------------------------------------------------------------

# PostgreSQL keeps the ids of up to 64 subtransactions per transaction in shared memory; past that every
# other session's visibility checks read pg_subtrans ("suboverflowed" snapshots). A request uses one
# savepoint (two when it inserts receipts), so a batch stays at 32 requests.
PG_MAX_BATCH = 32
PG_LANES = 2  # default lanes (connections with an open batch) per process; POWERMETER_PG_LANES

SortKey = tuple[str, ...]


class _Request:
    """What one request inside a lane left for the end of its batch."""

    __slots__ = ("compensate", "deferred", "sums")

    def __init__(self) -> None:
        self.deferred: list[tuple[SortKey, Callable[[Connection], None]]] = []
        self.sums: dict[SortKey, tuple[int, Callable[[Connection, int], None]]] = {}
        self.compensate: list[Callable[[], None]] = []


def _request(conn: Connection) -> _Request | None:
    r: _Request | None = conn.info.get(_REQUEST_KEY)
    return r


def in_lane(conn: Connection) -> bool:
    """True inside a PostgreSQL group-commit lane (hot-row writes must be deferred)."""
    return _request(conn) is not None


def defer(conn: Connection, sort_key: SortKey, fn: Callable[[Connection], None]) -> bool:
    """Inside a lane: run ``fn(conn)`` just before the batch's COMMIT, in ``sort_key`` order (then in the
    order deferred), and only if this request's work is kept. False outside a lane (run it now)."""
    r = _request(conn)
    if r is None:
        return False
    r.deferred.append((sort_key, fn))
    return True


class Grouped:
    """Deferred work (:func:`defer`) that a batch may run together with its neighbours: consecutive
    deferrals (after sorting) of the same class and equal ``group`` run as one ``run_many(conn, items)``
    call, in order; a lone one runs as ``item(conn)``."""

    __slots__ = ("group",)

    def __init__(self, group: Any) -> None:
        self.group = group

    def __call__(self, conn: Connection) -> None:  # pragma: no cover - subclasses define it
        raise NotImplementedError

    @classmethod
    def run_many(cls, conn: Connection, items: list[Any]) -> None:  # pragma: no cover - subclasses define it
        raise NotImplementedError


class _Row(Grouped):
    """A deferred driver statement: a batch's rows of one ``sql`` go in one ``executemany`` (psycopg
    pipelines it: one round trip for the batch instead of one a row)."""

    __slots__ = ("params",)

    def __init__(self, sql: str, params: Any) -> None:
        super().__init__(sql)
        self.params = params

    def __call__(self, conn: Connection) -> None:
        _raw(conn).execute(self.group, self.params)

    @classmethod
    def run_many(cls, conn: Connection, items: list[Any]) -> None:
        with _raw(conn).cursor() as cur:
            cur.executemany(items[0].group, [it.params for it in items])


def defer_row(conn: Connection, sort_key: SortKey, sql: str, params: Any) -> bool:
    """Inside a lane: like :func:`defer` for one driver statement ``sql`` with ``params``; the batch sends
    consecutive deferred rows with the same ``sql`` (after sorting) in one ``executemany``, in order.
    False outside a lane (run it now)."""
    r = _request(conn)
    if r is None:
        return False
    r.deferred.append((sort_key, _Row(sql, params)))
    return True


def defer_sum(conn: Connection, sort_key: SortKey, amount: int, apply: Callable[[Connection, int], None]) -> bool:
    """Inside a lane: add ``amount`` to the batch's total for ``sort_key``; just before COMMIT,
    ``apply(conn, total)`` runs once per key (a counter row written once per batch). False outside a lane."""
    r = _request(conn)
    if r is None:
        return False
    total, _ = r.sums.get(sort_key, (0, apply))
    r.sums[sort_key] = (total + amount, apply)
    return True


def on_rollback(conn: Connection, undo: Callable[[], None]) -> None:
    """Inside a lane: ``undo()`` (an effect outside the database, e.g. a Redis admission) if this
    request's work is rolled back or its batch fails to commit for sure. Outside a lane: nothing."""
    r = _request(conn)
    if r is not None:
        r.compensate.append(undo)


_LANE_KEY = "powermeter.lane"  # Connection.info (PgGroupCommit): the lane, for ``ready``


async def run_blocking(conn: Connection, fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn(*args)`` (blocking work on the unit's connection ``conn``) off the event loop: on the lane's
    own thread inside a PostgreSQL lane (:class:`_LaneWorker`), in anyio's worker threads otherwise."""
    lane: _Lane | None = conn.info.get(_LANE_KEY)
    if lane is not None:
        return await lane.worker.call(fn, *args)
    return await anyio.to_thread.run_sync(fn, *args)


def ready(conn: Connection) -> None:
    """Call first in the first worker-thread step of a unit opened with ``ready_in_thread=True``: in a
    PostgreSQL lane it ends the previous request's savepoint and opens this one's in the same step (one
    round trip, no hop of its own). Elsewhere nothing."""
    lane: _Lane | None = conn.info.get(_LANE_KEY)
    if lane is not None and lane.pending_release:
        _raw(conn).execute("RELEASE pm_unit; SAVEPOINT pm_unit")
        lane.pending_release = False


def lane_quotas(conn: Connection) -> QuotaCounters | None:
    """The shared admission store of the unit's database (set for PostgreSQL lanes)."""
    q: QuotaCounters | None = conn.info.get("powermeter.quotas")
    return q


class _PgBatch:
    __slots__ = ("compensate", "deferred", "done", "size", "started", "sums")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.done: asyncio.Future[None] = loop.create_future()
        self.size = 0
        self.started = time.monotonic()
        self.deferred: list[tuple[SortKey, int, Callable[[Connection], None]]] = []
        self.sums: dict[SortKey, tuple[int, int, Callable[[Connection, int], None]]] = {}
        self.compensate: list[Callable[[], None]] = []

    def absorb(self, r: _Request) -> None:
        n = len(self.deferred) + len(self.sums)
        for i, (key, fn) in enumerate(r.deferred):
            self.deferred.append((key, n + i, fn))
        n += len(r.deferred)
        for key, (amount, apply) in r.sums.items():
            total, order, _ = self.sums.get(key, (0, n, apply))
            self.sums[key] = (total + amount, order, apply)
        self.compensate.extend(r.compensate)
        self.size += 1

    def precommit(self, conn: Connection) -> None:
        work: list[tuple[SortKey, int, Callable[[Connection], None]]] = list(self.deferred)
        for key, (total, order, apply) in self.sums.items():
            work.append((key, order, lambda c, apply=apply, total=total: apply(c, total)))  # type: ignore[misc]
        work.sort(key=lambda w: (w[0], w[1]))
        i = 0
        while i < len(work):
            fn = work[i][2]
            j = i + 1
            if isinstance(fn, Grouped):
                kind, group = type(fn), fn.group
                while j < len(work) and type(nxt := work[j][2]) is kind and nxt.group == group:
                    j += 1
                if j - i > 1:
                    kind.run_many(conn, [w[2] for w in work[i:j]])
                    i = j
                    continue
            fn(conn)
            i = j


def _compensate(undo: list[Callable[[], None]]) -> None:
    for fn in undo:
        with contextlib.suppress(Exception):  # best effort: a stale admission only refuses early
            fn()


_Step = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Callable[..., Any], tuple[Any, ...]]


def _settle(fut: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if fut.cancelled():  # pragma: no cover - the awaiting side never cancels the future itself
        return
    if error is None:
        fut.set_result(result)
    else:
        fut.set_exception(error)


class _LaneWorker:
    """The thread that runs a lane's blocking steps (its requests' statements, its BEGIN and COMMIT).

    A lane's steps are serial already (one request holds the lane at a time, and the commit takes its lock),
    so one thread per lane, fed through a queue, does what anyio's worker-thread pool did without its
    per-call machinery (capacity limiter, cancel scopes, a pool): measured 60–125 µs of CPU a hand-off with
    ``anyio.to_thread.run_sync``, 64 µs with a queue to a dedicated thread one call at a time and 8 µs when
    calls queue up. A step always runs to its end, as with anyio (it must not leave the lane's connection
    half-way through a statement): a cancelled caller waits for it, then the cancellation goes on."""

    def __init__(self) -> None:
        self._q: queue.SimpleQueue[_Step | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        q = self._q
        while True:
            item = q.get()
            if item is None:
                return
            loop, fut, fn, args = item
            try:
                result, error = fn(*args), None
            except BaseException as e:  # handed to the caller, whatever it is
                result, error = None, e
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody waits
                loop.call_soon_threadsafe(_settle, fut, result, error)

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        t = self._thread
        if t is None or not t.is_alive():
            t = self._thread = threading.Thread(target=self._run, name="powermeter-lane", daemon=True)
            t.start()
        self._q.put((loop, fut, fn, args))
        cancelled = False
        while True:
            try:
                await asyncio.shield(fut)
                break
            except asyncio.CancelledError:
                if fut.cancelled():  # pragma: no cover - see _settle
                    raise
                cancelled = True  # the step still runs (or just ended): wait for its end
                if fut.done():
                    break
            except BaseException:
                break  # the step's own error: ``fut`` holds it
        if cancelled:
            raise asyncio.CancelledError
        return fut.result()

    def stop(self) -> None:
        if self._thread is not None:
            self._q.put(None)
            self._thread = None


class _Lane:
    def __init__(self) -> None:
        self.worker = _LaneWorker()
        self.lock = asyncio.Lock()
        self.conn: Connection | None = None
        self.outer: Any = None
        self.batch: _PgBatch | None = None
        self.waiting = 0
        # the last request's savepoint is still open: the next request's first thread step releases it
        # and opens its own (``ready``), so a request costs one worker-thread hop and round trip less
        self.pending_release = False

    def connection(self) -> Connection:
        if self.conn is None:  # pragma: no cover - a lane's batch always has its connection
            raise RuntimeError("the lane has no open connection")
        return self.conn


class PgGroupCommit:
    """PostgreSQL group commit over ``lanes`` connections per process (see the module docstring).

    A request waits on the event loop for a lane, runs in a SAVEPOINT of the lane's open transaction
    (a failing request rolls back alone, and its outside effects are compensated), and its response
    waits for the COMMIT of its batch. A batch commits when nobody waits for its lane, at
    ``PG_MAX_BATCH`` requests, or ``MAX_BATCH_AGE_S`` after it began.
    """

    def __init__(self, engine: Engine, quotas: QuotaCounters, lanes: int = PG_LANES) -> None:
        self.engine = engine
        self.quotas = quotas
        self.n_lanes = max(1, lanes)
        self._lanes: list[_Lane] | None = None
        self._next = 0
        self._flushers: set[asyncio.Task[None]] = set()

    def _get_lanes(self) -> list[_Lane]:
        if self._lanes is None:
            self._lanes = [_Lane() for _ in range(self.n_lanes)]
        return self._lanes

    def _pick(self) -> _Lane:
        lanes = self._get_lanes()
        # a free lane if there is one, else the one with the shortest queue (round robin on ties)
        self._next = (self._next + 1) % len(lanes)
        order = lanes[self._next :] + lanes[: self._next]
        return min(order, key=lambda ln: (ln.lock.locked(), ln.waiting))

    @asynccontextmanager
    async def unit(self, hot_rows: bool = False, ready_in_thread: bool = False) -> AsyncIterator[Connection]:
        """``hot_rows`` is SQLite's (hot rows here are deferred per request); ``ready_in_thread``: the
        caller calls :func:`ready` at the start of its first worker-thread step (see ``_Lane``)."""
        lane = self._pick()
        lane.waiting += 1
        try:
            await asyncio.wait_for(lane.lock.acquire(), UNIT_WAIT_TIMEOUT_S)
        except TimeoutError:
            raise sa_exc.TimeoutError(
                f"no unit of work could start within {UNIT_WAIT_TIMEOUT_S:.0f} s ({self.n_lanes} lanes busy)"
            ) from None
        finally:
            lane.waiting -= 1
        batch: _PgBatch | None = None
        error: BaseException | None = None
        try:
            if lane.batch is None:
                # shielded (as every step below that talks to the database): a cancelled request must
                # not leave the lane's connection half-way through a statement
                with anyio.CancelScope(shield=True):
                    await lane.worker.call(self._open, lane)
                lane.batch = _PgBatch(asyncio.get_running_loop())
                self._flushers.add(asyncio.create_task(self._flush_later(lane, lane.batch)))
            batch = lane.batch
            conn = lane.connection()
            if lane.pending_release and not ready_in_thread:
                with anyio.CancelScope(shield=True):
                    await lane.worker.call(self._next_savepoint, lane)
            req = _Request()
            conn.info[_REQUEST_KEY] = req
            conn.info.pop(PENDING_KEY, None)
            try:
                yield conn
            except BaseException as e:
                error = e
                conn.info.pop(_REQUEST_KEY, None)
                with anyio.CancelScope(shield=True):
                    await lane.worker.call(self._rollback_request, lane, req)
            else:
                conn.info.pop(_REQUEST_KEY, None)
                batch.absorb(req)
                with anyio.CancelScope(shield=True):
                    if (
                        lane.waiting == 0
                        or batch.size >= PG_MAX_BATCH
                        or time.monotonic() - batch.started >= MAX_BATCH_AGE_S
                    ):
                        await self._commit(lane, batch)
                    else:
                        lane.pending_release = True
        except BaseException as e:
            if error is None:
                error = e
            if batch is not None and lane.batch is batch:
                with anyio.CancelScope(shield=True):
                    await self._abort(lane, batch, e)
        finally:
            if lane.conn is not None:
                lane.conn.info.pop(_REQUEST_KEY, None)
                lane.conn.info.pop(PENDING_KEY, None)
            lane.lock.release()
        if error is not None:
            raise error
        if batch is not None:
            await asyncio.shield(batch.done)

    # --- blocking steps (run in a worker thread) -------------------------------------------------
    def _open(self, lane: _Lane) -> None:
        if lane.conn is None:
            # a refused or lost connection raises here (OperationalError → 503, infra/db/faults.py)
            lane.conn = self.engine.connect()
            lane.conn.info["powermeter.quotas"] = self.quotas
            lane.conn.info[_LANE_KEY] = lane
        lane.pending_release = False
        lane.outer = lane.conn.begin()
        _raw(lane.conn).execute("SAVEPOINT pm_unit")

    def _next_savepoint(self, lane: _Lane) -> None:
        # one round trip: the finished request's savepoint merges into the batch, the next one opens
        _raw(lane.connection()).execute("RELEASE pm_unit; SAVEPOINT pm_unit")
        lane.pending_release = False

    def _rollback_request(self, lane: _Lane, req: _Request) -> None:
        try:
            if lane.pending_release:
                # the request failed before its first statement: the open savepoint is the previous
                # (kept) request's; release it and open this lane's next one
                self._next_savepoint(lane)
            else:
                # undoes the request's writes; the savepoint stays open for the next request
                _raw(lane.connection()).execute("ROLLBACK TO pm_unit")
        finally:
            _compensate(req.compensate)

    def _finish(self, lane: _Lane, batch: _PgBatch) -> None:
        conn, outer = lane.connection(), lane.outer
        try:
            _raw(conn).execute("RELEASE pm_unit")
            batch.precommit(conn)
        except BaseException:
            # nothing of the batch is committed: undo its outside effects too
            _compensate(batch.compensate)
            raise
        # a failing COMMIT leaves its outcome unknown: admissions are not given back (a quota then
        # refuses early, never late)
        outer.commit()

    # --- batch lifecycle (on the event loop, lane lock held) ----------------------------------------
    async def _commit(self, lane: _Lane, batch: _PgBatch) -> None:
        lane.batch = None
        try:
            await lane.worker.call(self._finish, lane, batch)
        except BaseException as e:
            await self._reset(lane)
            if not batch.done.done():
                batch.done.set_exception(e)
                batch.done.exception()
            return
        lane.outer = None
        if not batch.done.done():
            batch.done.set_result(None)

    async def _abort(self, lane: _Lane, batch: _PgBatch, exc: BaseException) -> None:
        lane.batch = None
        _compensate(batch.compensate)
        await self._reset(lane)
        if not batch.done.done():
            batch.done.set_exception(TransactionAborted(exc))
            batch.done.exception()

    async def _reset(self, lane: _Lane) -> None:
        conn, lane.conn, lane.outer = lane.conn, None, None
        lane.pending_release = False
        if conn is not None:
            with contextlib.suppress(Exception):  # the connection is discarded either way
                await lane.worker.call(_discard, conn)

    async def _flush_later(self, lane: _Lane, batch: _PgBatch) -> None:
        try:
            await asyncio.sleep(MAX_BATCH_AGE_S * 2)
            while lane.batch is batch:
                if not lane.lock.locked():
                    async with lane.lock:
                        if lane.batch is batch:
                            # shielded: see SQLiteGroupCommit._flush_later
                            with anyio.CancelScope(shield=True):
                                await self._commit(lane, batch)
                    return
                await asyncio.sleep(MAX_BATCH_AGE_S)
        finally:
            task = asyncio.current_task()
            if task is not None:
                self._flushers.discard(task)

    def bind(self) -> None:
        """Start afresh on the running event loop (called by the app's lifespan)."""
        for lane in self._lanes or []:
            if lane.conn is not None:
                with contextlib.suppress(Exception):
                    lane.conn.close()
            lane.worker.stop()
        self._lanes = None

    async def close(self) -> None:
        for t in list(self._flushers):
            t.cancel()
        for lane in self._lanes or []:
            async with lane.lock:
                if lane.batch is not None:
                    await self._commit(lane, lane.batch)
                await self._reset(lane)
            lane.worker.stop()


def _raw(conn: Connection) -> Any:
    return conn.connection.driver_connection
