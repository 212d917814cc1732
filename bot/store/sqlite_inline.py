"""SQLite for the gateway without a thread hop per statement.

aiosqlite runs every statement on a worker thread and wakes the event loop with the result. On this
machine that hop costs about 0.35 ms of CPU per statement, 3.5 times the statement itself through
SQLAlchemy (measured: ``session.get`` 491 µs of CPU through aiosqlite, 138 µs inline), and a
customer's message takes some twenty statements. SQLite in WAL mode answers in microseconds and
never blocks a reader, so here the statements run on the event loop itself: ``InlineConnection`` is
an aiosqlite connection whose queue runs each call at once (SQLAlchemy's aiosqlite dialect drives it
unchanged, through ``create_async_engine(..., async_creator=...)``).

Two things could make a statement wait, and neither may stall the event loop:
- Another connection of this process holding SQLite's write lock. Python's sqlite3 opens a
  transaction at the first INSERT/UPDATE/DELETE and keeps it to the commit; here a connection first
  takes this database's ``asyncio.Lock`` (``WriterLock``), so a second writer of the process waits
  on the event loop, not in SQLite. (A transaction that awaits nothing but its own statements runs
  to its commit without yielding, so the lock is only ever contended when a writer awaits something
  else between its first write and its commit.)
- Another process writing (a CLI command, a test): SQLite's busy handler waits, on the event loop,
  at most ``BUSY_TIMEOUT_MS``; then the statement fails with "database is locked", which the gateway
  answers with 503 and Retry-After (bot.app's store_errors), so nothing accepted is half-written.

Selects run outside transactions (Python's sqlite3 does not open one for a read), so a long read is
the only thing that holds the loop: the dashboard's and exports' queries stay short on the
conversation counts of one SQLite node (for more, use PostgreSQL: asyncpg has no thread either).
"""
from __future__ import annotations

import asyncio
import sqlite3
from typing import Any, Callable

import aiosqlite

BUSY_TIMEOUT_MS = 2000
# A second writer of the process waits this long for the first one's commit, then fails as SQLite
# would ("database is locked": 503 with Retry-After), so a writer that never finishes cannot stall
# the others for ever.
WRITER_WAIT_SECONDS = 10.0
_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "CREATE", "DROP", "ALTER")


class WriterLock:
    """One per database file and event loop: the process's writers take turns on the loop."""

    _all: dict[tuple[str, asyncio.AbstractEventLoop], "WriterLock"] = {}

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.holder: object | None = None

    @classmethod
    def for_path(cls, path: str) -> "WriterLock":
        loop = asyncio.get_running_loop()
        lock = cls._all.get((path, loop))
        if lock is None:
            for key in [k for k in cls._all if k[1].is_closed()]:
                del cls._all[key]
            lock = cls._all[(path, loop)] = cls()
        return lock


class _RunNow:
    """Stands in for aiosqlite's queue to its worker thread: runs the call at once. SQLAlchemy's
    adapter puts calls on this queue directly (to set the isolation level)."""

    def put_nowait(self, item: tuple[asyncio.Future | None, Callable[[], Any]]) -> None:
        future, function = item
        try:
            result = function()
        except BaseException as exc:  # noqa: B036 - handed to the waiting coroutine, as aiosqlite does
            if future is not None:
                future.set_exception(exc)
            return
        if future is not None:
            future.set_result(result)


def _is_write(args: tuple) -> bool:
    if not args or not isinstance(args[0], str):
        return False
    head = args[0].lstrip()[:8].upper()
    return head.startswith(_WRITES)


class InlineConnection(aiosqlite.Connection):
    def __init__(self, connector: Callable[[], sqlite3.Connection], writer: WriterLock) -> None:
        super().__init__(connector, 64)  # creates (but never starts) aiosqlite's thread
        self._tx = _RunNow()  # type: ignore[assignment]
        self._writer = writer

    def __await__(self):
        return self._connect().__await__()

    async def _connect(self) -> "InlineConnection":
        if self._connection is None:
            self._connection = self._connector()
        return self

    async def _execute(self, fn, *args, **kwargs):
        if not self._running or not self._connection:
            raise ValueError("Connection closed")
        if _is_write(args) and self._writer.holder is not self:
            try:
                await asyncio.wait_for(self._writer.lock.acquire(), WRITER_WAIT_SECONDS)
            except asyncio.TimeoutError:
                raise sqlite3.OperationalError(
                    f"database is locked (another writer of this process held it over {WRITER_WAIT_SECONDS:g} s)") from None
            self._writer.holder = self
        try:
            return fn(*args, **kwargs)
        finally:
            if self._writer.holder is self and not self._connection.in_transaction:
                self._release()  # the write ran outside a transaction or failed and was rolled back

    def _release(self) -> None:
        if self._writer.holder is self:
            self._writer.holder = None
            self._writer.lock.release()

    async def commit(self) -> None:
        try:
            await self._execute(self._conn.commit)
        finally:
            self._release()

    async def rollback(self) -> None:
        try:
            await self._execute(self._conn.rollback)
        finally:
            self._release()

    async def close(self) -> None:
        self.stop()

    def stop(self):
        """Closes at once (aiosqlite's stop() ends its thread; there is none)."""
        try:
            if self._connection is not None:
                self._connection.close()
        finally:
            self._connection = None
            self._running = False
            self._release()
        return None


def async_creator(path: str, pragmas: tuple[str, ...]):
    """For ``create_async_engine("sqlite+aiosqlite:///PATH", async_creator=...)``."""
    def connector() -> sqlite3.Connection:
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False)
        cur = conn.cursor()
        for pragma in pragmas:
            cur.execute(pragma)
        cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cur.close()
        return conn

    async def create() -> InlineConnection:
        return await InlineConnection(connector, WriterLock.for_path(path))

    return create
