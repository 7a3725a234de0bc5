"""Group commit: many small write units share one transaction, and each caller learns its own result.

Callers `await batcher.run(work)`, where `work` is an async function of an open connection. One
background task takes every unit queued so far, runs them in order inside one transaction, commits,
and only then hands each caller its result: a result is never seen before it is durable. Under
light load a batch holds one unit (same latency as a direct transaction); under load, units that
queue while a transaction commits share the next one, so the number of commits stays small and
SQLite (one writer at a time) never has this process's writers waiting on each other.

A unit with a `group` attribute and a `run_group(conn, units)` method is run together with the
other units of its group in the batch, in one call: that is how inserts and total updates become one
statement per batch instead of one per unit. Units are plain callables otherwise.

Units are written as plain functions of a *sync* SQLAlchemy `Connection` (`run_sync`, and
`run_group_sync` for a group), so a whole batch is one call. On a SQLite file the writer has its own
pysqlite connection and runs the batch right in the event loop with no lock wait (busy_timeout 0): a
WAL commit without a checkpoint costs tens of µs, less than any thread hand-off (aiosqlite made one
per statement). Each batch begins with BEGIN IMMEDIATE, which takes SQLite's write lock at once or
is refused at once; when another connection or process holds the lock, the batch is tried again
after each pass of the loop for a few milliseconds, then run on the writer's thread with the 5 s
busy timeout, so waiting never blocks the loop.
On PostgreSQL the batch runs inside `AsyncConnection.run_sync`. Units that are async callables of an
`AsyncConnection` still work (their batch then runs on the async connection).

On SQLite the writer's connection never checkpoints the WAL itself (`wal_autocheckpoint=0`): a
checkpoint writes pages back to the database file and fsyncs it, tens of ms every thousand pages,
which the unlucky commit would pay. A PASSIVE checkpoint runs instead on another thread and
connection after commits, at most every `CHECKPOINT_EVERY_S`; it never blocks the writer. Durability
is unchanged (WAL, `synchronous=NORMAL`). But a checkpoint that runs beside a busy writer never
catches up with the WAL's end, and SQLite starts the WAL over only once it has been copied back
completely: under steady load the WAL grew without end (5.7 GB in an 8-minute soak; its index,
mapped into memory, was the soak's RSS step, and every page read searched it). So when a checkpoint
reports more than `WAL_RESTART_FRAMES` frames, the writer pauses once (at once if idle, else between
two batches) for a RESTART checkpoint on its own thread that waits at most `_RESTART_BUSY_MS` for
readers or another process's writer (only the frames written since the last checkpoint are left to
copy); the next commit starts the WAL over and truncates the file to `journal_size_limit`.

The writer keeps its connection(s) for itself (no pool checkout or pre-ping per batch) and opens a
new one after a failure. A unit must leave no partial effect when it decides not to write (e.g.
a refused reservation changes nothing). A unit that raises rolls back its batch; the others are
then retried one unit per transaction, so one bad unit fails only its own caller; if a re-run loses
its connection again, the rest of the batch fails at once. Lock conflicts
(SQLite busy, PostgreSQL deadlock or serialization failure) are retried a few times with a short
backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.exc import DBAPIError, InterfaceError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from polyroute.db.engine import SQLITE_BUSY_TIMEOUT_MS, configure_sqlite_sync_engine

log = logging.getLogger(__name__)

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class SyncUnit(Protocol[T_co]):
    """A unit written against a sync connection: the whole batch runs in one call (see above)."""

    def run_sync(self, conn: Connection) -> T_co: ...


Work = Callable[[AsyncConnection], Awaitable[T]] | SyncUnit[T]


class SyncWork(SyncUnit[T]):
    """Wrap a plain function of a sync connection as a unit."""

    __slots__ = ("_fn",)

    def __init__(self, fn: Callable[[Connection], T]) -> None:
        self._fn = fn

    def run_sync(self, conn: Connection) -> T:
        return self._fn(conn)


MAX_BATCH = 256
CHECKPOINT_EVERY_S = 1.0  # 0.2 before issue #9: hot pages (balances, index ends) were copied 5 times as often
# 256 MiB of 4 KiB pages: a restart (writes paused 6 to 37 ms) every 8 s or so at 1,900 requests/s,
# about 13 KB of WAL each; at 64 MiB it came every 2 s and showed in the p99 latency under load.
WAL_RESTART_FRAMES = 65536
# SQLite: how long a batch that finds the write lock taken is retried in the loop before it waits on the
# writer thread. Two workers under load: 544 thread waits in 10 s with 1 ms, 15 with 4 ms.
INLINE_LOCK_WAIT_S = 0.004
_RESTART_BUSY_MS = 50  # how long a restart may wait for readers or another process's writer
_WAL_FRAME_HEADER = 24
_RETRIES = 4
_RETRY_BACKOFF_S = 0.02
_CONFLICT_CODES = ("40001", "40P01")  # PostgreSQL serialization failure, deadlock


class WriteLockTaken(Exception):
    """SQLite: another connection holds the write lock (a refused BEGIN IMMEDIATE; nothing was begun)."""


def is_lock_conflict(error: BaseException) -> bool:
    """A failure that says "someone else holds the lock; try again", on SQLite or PostgreSQL."""
    if isinstance(error, WriteLockTaken):
        return True
    if not isinstance(error, DBAPIError):
        return False
    code = getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None)
    if code in _CONFLICT_CODES:
        return True
    return _says_locked(str(error.orig))


def _says_locked(message: str) -> bool:
    """SQLite's busy and locked errors (and a PostgreSQL deadlock), by their message."""
    text = message.lower()
    return "database is locked" in text or "database table is locked" in text or "deadlock" in text


def connection_lost(error: BaseException) -> bool:
    """The connection died or could not be made (the batch's COMMIT may or may not have landed)."""
    if isinstance(error, OSError | TimeoutError | InterfaceError):
        return True
    return isinstance(error, DBAPIError) and error.connection_invalidated


class WriteBatcher:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        max_batch: int = MAX_BATCH,
        checkpoint_every_s: float = CHECKPOINT_EVERY_S,
        wal_restart_frames: int = WAL_RESTART_FRAMES,
        inline_lock_wait_s: float = INLINE_LOCK_WAIT_S,
    ) -> None:
        self._engine = engine
        self._max_batch = max_batch
        self._checkpoint_every_s = checkpoint_every_s
        self._wal_restart_frames = wal_restart_frames
        self._inline_lock_wait_s = inline_lock_wait_s
        self._restart_wal = False  # a checkpoint found the WAL past its limit: restart before the next batch
        self._queue: list[tuple[Work[Any], asyncio.Future[Any]]] = []
        # The loop the writer runs on, read once: each `asyncio.get_running_loop()` (and so each
        # asyncio.Event wait) costs a getpid() system call, a few % of a ledger write (issue #9).
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiter: asyncio.Future[None] | None = None  # the idle writer waits on it for work
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._conn: AsyncConnection | None = None
        # SQLite file: its own sync engine, used on one thread only (pysqlite connections are per thread).
        self._sync_engine = sqlite_sync_engine(engine)
        self._sync_conn: Connection | None = None
        self._sync_raw: sqlite3.Connection | None = None  # its pysqlite connection
        self._sync_busy_ms = SQLITE_BUSY_TIMEOUT_MS  # the busy timeout currently set on _sync_conn
        self._thread = ThreadPoolExecutor(1, "sqlite-writer") if self._sync_engine is not None else None
        self._checkpoints = ThreadPoolExecutor(1, "sqlite-checkpoint") if self._sync_engine is not None else None
        self._checkpointing: asyncio.Future[int] | None = None
        self._checkpointed_at = 0.0
        self.checkpoints = 0  # WAL checkpoints run off the writer (for tests)
        self.wal_restarts = 0  # RESTART checkpoints the writer paused for (for tests)
        self.commits = 0  # transactions committed (for measurements and tests)
        self.inline_commits = 0  # of which lone units committed by `submit` itself
        self.lock_retries = 0  # SQLite: in-loop retries of a batch that found the write lock taken
        self.lock_waits = 0  # SQLite: batches that then waited for the lock on the writer thread

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="write-batcher")

    def submit(self, work: Work[T], *, alone: bool = False) -> asyncio.Future[T]:
        """Queue `work`; the future resolves after the transaction holding it has committed.

        The unit runs even if the caller stops waiting (cancellation does not reach it).

        `alone`: the caller knows of no other write of this process on its way (a lone request). On
        a SQLite file, if the writer is idle, the unit then commits right here and the future comes
        back resolved: a hand-off to the writer's task costs two passes of the event loop each way
        (issue #9). Only a lone unit does this, so group commit under load is unchanged; one that
        finds SQLite's lock taken goes to the writer as usual."""
        if self._closing:
            raise RuntimeError("the write batcher is closed")
        future: asyncio.Future[T] = self._running_loop().create_future()
        if alone and self._idle() and hasattr(work, "run_sync") and self._commit_here(work, future):
            return future
        self._queue.append((work, future))
        self._wake()
        if self._task is None:  # not started (tests, CLI): run inline on the next loop turn
            self.start()
        return future

    async def run(self, work: Work[T]) -> T:
        return await self.submit(work)

    def _idle(self) -> bool:
        """The writer's task waits for work (no batch running or queued, no WAL restart due), on SQLite."""
        waiter = self._waiter
        return (
            self._thread is not None
            and waiter is not None
            and not waiter.done()
            and not self._queue
            and not self._restart_wal
        )

    def _commit_here(self, work: SyncUnit[T], future: asyncio.Future[T]) -> bool:
        """One unit, one transaction, now (see `submit`); False if SQLite's write lock was taken."""
        try:
            [result] = self._sync_transaction([work], wait=False)
        except Exception as error:
            if is_lock_conflict(error):
                return False  # the writer retries it in the loop, then on its thread
            future.set_exception(error)  # as the writer would: the caller sees it
        else:
            self.commits += 1
            self.inline_commits += 1
            self._maybe_checkpoint()
            future.set_result(result)
        return True

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        return loop

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _run(self) -> None:
        while True:
            if not self._queue and not self._closing and not self._restart_wal:
                self._waiter = self._running_loop().create_future()
                await self._waiter
            while self._restart_wal or self._queue:
                if self._restart_wal:  # while idle if it can: then no write waits for it
                    await self._restart_wal_file()
                    continue
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
                await self._commit_batch(batch)
            if self._closing:
                return

    async def _commit_batch(self, batch: list[tuple[Work[Any], asyncio.Future[Any]]]) -> None:
        try:
            results = await self._transaction([work for work, _ in batch])
        except Exception as error:
            if len(batch) == 1:
                _resolve(batch[0][1], error=error)
                return
            log.warning("a batch of %d writes failed (%s); retrying one by one", len(batch), type(error).__name__)
            await self._rerun_one_by_one(batch)
            return
        for (_, future), result in zip(batch, results, strict=True):
            _resolve(future, result=result)

    async def _rerun_one_by_one(self, batch: list[tuple[Work[Any], asyncio.Future[Any]]]) -> None:
        """So that one bad unit fails only its own caller. A connection that is lost again on a re-run
        fails the rest at once: during a partition each re-run would wait out a connect timeout, one
        after the other, with every request queued behind them (ledger writes are idempotent, and
        their callers retry or release: see docs/billing.md)."""
        for index, (work, future) in enumerate(batch):
            try:
                result = await self._transaction([work])
            except Exception as error:
                _resolve(future, error=error)
                if connection_lost(error):
                    for _, rest in batch[index + 1 :]:
                        _resolve(rest, error=error)
                    return
            else:
                _resolve(future, result=result[0])

    async def _transaction(self, works: list[Work[Any]]) -> list[Any]:
        all_sync = all(hasattr(work, "run_sync") for work in works)
        for attempt in range(_RETRIES + 1):
            try:
                if all_sync and self._thread is not None:
                    results = await self._sqlite_transaction(works)
                else:
                    conn = self._conn or await self._engine.connect()
                    self._conn = conn
                    async with conn.begin():
                        if all_sync:
                            results = await conn.run_sync(_run_grouped_sync, works)
                        else:
                            results = await _run_grouped(conn, works)
                self.commits += 1
                self._maybe_checkpoint()
                return results
            except Exception as error:
                await self._drop_connection()
                if attempt == _RETRIES or not is_lock_conflict(error):
                    raise
                await asyncio.sleep(_RETRY_BACKOFF_S * 2**attempt)
        raise AssertionError("unreachable")

    async def _sqlite_transaction(self, works: list[Work[Any]]) -> list[Any]:
        """Try the batch right here without waiting for SQLite's lock. If another connection holds
        it (another worker process, usually for a fraction of a millisecond), try again after each
        pass of the event loop for up to `INLINE_LOCK_WAIT_S`; then run the batch on the writer
        thread, where waiting (busy_timeout) blocks nobody. SQLite's own busy handler sleeps 1 ms,
        then 2, 5, 10...: with two workers on one file, about one batch in six found the lock taken
        and every such wait stalled the worker's ledger for at least a millisecond. The lock is
        usually free again within a few loop passes (another worker's commit); a retry that finds it
        taken costs one refused BEGIN IMMEDIATE."""
        loop = self._running_loop()
        deadline = 0.0
        while True:
            try:
                return self._sync_transaction(works, wait=False)
            except (WriteLockTaken, DBAPIError) as error:
                if not is_lock_conflict(error):
                    raise
            now = loop.time()
            if not deadline:
                deadline = now + self._inline_lock_wait_s
            elif now >= deadline:
                break
            self.lock_retries += 1
            await asyncio.sleep(0)  # one pass of the loop: other requests go on meanwhile
        self.lock_waits += 1
        return await loop.run_in_executor(self._thread, self._sync_transaction, works, True)

    def _sync_transaction(self, works: list[Work[Any]], wait: bool) -> list[Any]:
        """One transaction on the writer's own pysqlite connection; `wait`: with SQLite's busy timeout."""
        try:
            conn = self._writer_connection(SQLITE_BUSY_TIMEOUT_MS if wait else 0)
            if not wait:
                self._begin_immediate()
            with conn.begin():  # SQLAlchemy emits no BEGIN on pysqlite: it commits the one begun here
                return _run_grouped_sync(conn, works)
        except Exception as error:
            if not is_lock_conflict(error):
                self._drop_sync_connection()  # may be broken; a lock conflict was rolled back cleanly
            raise

    def _begin_immediate(self) -> None:
        """Take SQLite's write lock now, or learn at once that another connection holds it
        (`WriteLockTaken`). A refused BEGIN IMMEDIATE costs about 2 µs; a batch that fails at its
        first write about 22 µs (SQLAlchemy wraps the error and rolls back), and with two workers on
        one file the writers found the lock taken about twice per commit (issue #9)."""
        raw = self._sync_raw
        assert raw is not None
        try:
            raw.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as error:
            if _says_locked(str(error)):
                raise WriteLockTaken() from None
            raise DBAPIError.instance("BEGIN IMMEDIATE", None, error, sqlite3.Error) from error

    def _writer_connection(self, busy_ms: int) -> Connection:
        """The writer's pysqlite connection, opened on first use, with a busy timeout of `busy_ms`."""
        assert self._sync_engine is not None
        conn = self._sync_conn
        if conn is None:
            conn = self._sync_conn = self._sync_engine.connect()
            conn.exec_driver_sql("PRAGMA wal_autocheckpoint=0")  # see the module docstring
            limit = self._wal_restart_frames * (
                conn.exec_driver_sql("PRAGMA page_size").scalar_one() + _WAL_FRAME_HEADER
            )
            conn.exec_driver_sql(f"PRAGMA journal_size_limit={limit}")  # the WAL file's size after a restart
            conn.commit()
            self._sync_raw = conn.connection.driver_connection  # read once: the pool's proxy has __getattr__
        if self._sync_busy_ms != busy_ms:
            raw = self._sync_raw
            assert raw is not None
            raw.execute(f"PRAGMA busy_timeout={busy_ms}")
            self._sync_busy_ms = busy_ms
        return conn

    async def _restart_wal_file(self) -> None:
        """Pause the writes for one RESTART checkpoint on the writer's thread (see the module docstring)."""
        self._restart_wal = False
        assert self._thread is not None
        loop = self._running_loop()
        started = loop.time()
        try:
            restarted = await loop.run_in_executor(self._thread, self._restart_sync)
        except Exception as error:  # the next checkpoint asks again; writes go on meanwhile
            log.warning("WAL restart checkpoint failed (%s)", type(error).__name__)
            return
        paused_ms = (loop.time() - started) * 1000
        if restarted:
            self.wal_restarts += 1
        log.debug("WAL %s; writes paused %.0f ms", "restarted" if restarted else "busy, not restarted", paused_ms)

    def _restart_sync(self) -> bool:
        """A RESTART checkpoint; False if a reader or another process's writer kept it from finishing
        within `_RESTART_BUSY_MS` (the next checkpoint asks again: the pause stays short)."""
        try:
            conn = self._writer_connection(_RESTART_BUSY_MS)
            busy, _frames, _copied = conn.exec_driver_sql("PRAGMA wal_checkpoint(RESTART)").one()
            conn.commit()  # ends SQLAlchemy's autobegun (empty) transaction: the next batch begins its own
        except Exception as error:
            if not is_lock_conflict(error):
                self._drop_sync_connection()
            raise
        return not busy

    def _drop_sync_connection(self) -> None:
        conn, self._sync_conn = self._sync_conn, None
        self._sync_raw = None
        self._sync_busy_ms = SQLITE_BUSY_TIMEOUT_MS  # a new connection starts with the engine's busy timeout
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def _maybe_checkpoint(self) -> None:
        if self._checkpoints is None or self._checkpointing is not None:
            return
        loop = self._running_loop()
        if loop.time() - self._checkpointed_at < self._checkpoint_every_s:
            return
        self._checkpointed_at = loop.time()
        self._checkpointing = loop.run_in_executor(self._checkpoints, self._checkpoint)
        self._checkpointing.add_done_callback(self._checkpoint_done)

    def _checkpoint(self) -> int:
        """A PASSIVE checkpoint; returns the number of frames in the WAL."""
        assert self._sync_engine is not None
        with self._sync_engine.connect() as conn:
            _busy, wal_frames, _copied = conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
        self.checkpoints += 1
        return int(wal_frames)

    def _checkpoint_done(self, done: asyncio.Future[int]) -> None:
        self._checkpointing = None
        if done.cancelled():
            return
        if done.exception() is not None:
            log.warning("WAL checkpoint failed (%s); the next one retries", type(done.exception()).__name__)
        elif done.result() >= self._wal_restart_frames:
            self._restart_wal = True
            self._wake()  # an idle writer restarts now rather than before the next write

    async def _drop_connection(self) -> None:
        """After any failure start afresh: the connection may be broken or mid-transaction."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()

    async def aclose(self) -> None:
        """Commit everything queued, then stop."""
        self._closing = True
        self._wake()
        if self._task is not None:
            await self._task
        if self.lock_retries:
            log.info("SQLite writer: %d commits, %d lock retries, %d lock waits on the thread",
                      self.commits, self.lock_retries, self.lock_waits)  # fmt: skip
        await self._drop_connection()
        if self._checkpointing is not None:
            with contextlib.suppress(Exception):
                await self._checkpointing
        if self._checkpoints is not None:
            self._checkpoints.shutdown(wait=True)
            self._checkpoints = None
        if self._thread is not None:
            await asyncio.get_running_loop().run_in_executor(self._thread, self._drop_sync_connection)
            self._thread.shutdown(wait=True)
            self._thread = None
        if self._sync_engine is not None:
            self._sync_engine.dispose()


def _groups(works: list[Any]) -> list[list[int]]:
    """Indexes of `works` by group, in order of each group's first appearance (no group: alone)."""
    groups: dict[object, list[int]] = {}
    for index, work in enumerate(works):
        groups.setdefault(getattr(work, "group", None) or index, []).append(index)
    return list(groups.values())


async def _run_grouped(conn: AsyncConnection, works: list[Any]) -> list[Any]:
    """A batch with async units: a group runs in one `run_group` (or `run_group_sync`) call."""
    results: list[Any] = [None] * len(works)
    for indexes in _groups(works):
        first = works[indexes[0]]
        if hasattr(first, "run_sync"):
            group = [works[i] for i in indexes]
            for index, result in zip(indexes, await conn.run_sync(_run_group_sync, group), strict=True):
                results[index] = result
        elif len(indexes) == 1 or not hasattr(first, "run_group"):
            for index in indexes:
                results[index] = await works[index](conn)
        else:
            for index, result in zip(indexes, await first.run_group(conn, [works[i] for i in indexes]), strict=True):
                results[index] = result
    return results


def _run_grouped_sync(conn: Connection, works: list[Any]) -> list[Any]:
    """A batch of sync units, in one call: each group in one `run_group_sync` call."""
    results: list[Any] = [None] * len(works)
    for indexes in _groups(works):
        group = [works[i] for i in indexes]
        for index, result in zip(indexes, _run_group_sync(conn, group), strict=True):
            results[index] = result
    return results


def _run_group_sync(conn: Connection, group: list[Any]) -> list[Any]:
    if len(group) > 1 and hasattr(group[0], "run_group_sync"):
        return list(group[0].run_group_sync(conn, group))
    return [work.run_sync(conn) for work in group]


def sqlite_sync_engine(engine: AsyncEngine) -> Engine | None:
    """A pysqlite engine on the same SQLite file as `engine` (None for PostgreSQL or in-memory SQLite)."""
    url = engine.url
    if url.get_backend_name() != "sqlite":
        return None
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file::memory:") or "mode=memory" in str(url):
        return None  # another connection would see another, empty database
    # The writer and the checkpointer each use a connection on their own thread; a pooled connection
    # may move between them after a failure, never used by two threads at once.
    sync = create_sync_engine(url.set(drivername="sqlite+pysqlite"), connect_args={"check_same_thread": False})
    return configure_sqlite_sync_engine(sync)


def _resolve(future: asyncio.Future[Any], *, result: Any = None, error: BaseException | None = None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
