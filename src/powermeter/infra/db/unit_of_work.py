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
that is not on disk. PostgreSQL runs ordinary concurrent transactions, at most ``concurrency`` at a
time per process.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine

from powermeter.infra.db.faults import UNIT_WAIT_TIMEOUT_S, TransactionAborted

PRECOMMIT_KEY = "powermeter.precommit"  # Connection.info: work to run just before COMMIT (PostgreSQL)

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


class SQLiteGroupCommit:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._lock: asyncio.Lock | None = None
        self._conn: Connection | None = None
        self._outer: Any = None
        self._batch: _Batch | None = None
        self._waiting = 0
        self._flushers: set[asyncio.Task[None]] = set()

    def _get_lock(self) -> asyncio.Lock:
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    @asynccontextmanager
    async def unit(self) -> AsyncIterator[Connection]:
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
            raw.execute("SAVEPOINT pm_unit")
            try:
                yield conn
            except BaseException as e:
                error = e
                raw.execute("ROLLBACK TO pm_unit")
                raw.execute("RELEASE pm_unit")
            else:
                raw.execute("RELEASE pm_unit")
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
                            await self._commit(batch)
                    return
                await asyncio.sleep(MAX_BATCH_AGE_S)
        finally:
            task = asyncio.current_task()
            if task is not None:
                self._flushers.discard(task)

    async def _commit(self, batch: _Batch) -> None:
        outer, self._outer, self._batch = self._outer, None, None
        try:
            await anyio.to_thread.run_sync(outer.commit)
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
        await self._reset()
        if not batch.done.done():
            batch.done.set_exception(TransactionAborted(exc))
            batch.done.exception()

    async def _reset(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:

            def close() -> None:
                try:
                    conn.rollback()
                finally:
                    conn.close()

            with contextlib.suppress(Exception):  # the connection is discarded either way
                await anyio.to_thread.run_sync(close)

    def bind(self) -> None:
        """Start afresh on the running event loop (called by the app's lifespan)."""
        self._lock = None
        self._batch = None
        self._outer = None
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
    async def unit(self) -> AsyncIterator[Connection]:
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
