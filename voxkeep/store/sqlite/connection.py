"""The embedded store: one SQLite file (docs/store.md).

Writes run on a thread of the store's own, on a plain `sqlite3` connection: each transaction is
one function from `BEGIN IMMEDIATE` to `COMMIT` (`writes.py`), so it costs one hop from the event
loop, and once started it finishes — commit or rollback — even if whoever awaited it is
cancelled. Reads go through aiosqlite on a second connection, which sees committed snapshots
(WAL). The event loop never waits for the disk."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Self, TypeVar

import aiosqlite
import structlog

from voxkeep.core.errors import DiskFull, InvalidInput, StoreError, StoreUnavailable
from voxkeep.store.base import ANY_OWNER, OwnerScope
from voxkeep.store.shielded import finish

T = TypeVar("T")
log = structlog.get_logger(__name__)

BUSY_TIMEOUT_MS = 5_000
CHECKPOINT_PAGES = 1_000
RESTART_FRAMES = 4_000  # ~16 MB of WAL
RESTART_WAIT_MS = 100
ROWS_PER_PAGE = 4  # a message row with its indexes and search entries, roughly
_TRANSIENT = ("locked", "busy", "unable to open", "disk i/o", "readonly", "disk is full")
_PRAGMAS = (
    f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}",
    "PRAGMA journal_mode = WAL",
    # NORMAL in WAL mode: a commit survives the process being killed; only a power loss can
    # roll back the newest transactions. FULL would fsync every group commit.
    "PRAGMA synchronous = NORMAL",
    "PRAGMA foreign_keys = ON",
    # a deleted row's bytes are overwritten, not left in a free page for a copy to carry along
    "PRAGMA secure_delete = ON",
)


def path_from_url(url: str) -> str:
    """`sqlite:///data/voxkeep.db` is relative to the working directory, `sqlite:////abs`
    absolute."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or len(url) == len(prefix):
        raise InvalidInput("a SQLite URL looks like sqlite:///path/to/agent.db")
    path = url[len(prefix) :]
    if path == ":memory:":
        raise InvalidInput("the store needs a file: several connections share it")
    return path


@contextlib.contextmanager
def mapped() -> Iterator[None]:
    """Translate driver errors into the project's hierarchy at the boundary."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        text = str(exc).lower()
        if "full" in text:  # SQLITE_FULL: "database or disk is full"
            raise DiskFull(f"SQLite: {exc}") from exc
        if any(word in text for word in _TRANSIENT):
            raise StoreUnavailable(f"SQLite: {exc}") from exc
        raise StoreError(f"SQLite: {exc}") from exc
    except sqlite3.Error as exc:
        raise StoreError(f"SQLite: {type(exc).__name__}: {exc}") from exc


def _passive_checkpoint(path: str) -> int:
    """Copy WAL frames into the database without blocking anyone; the WAL's length in frames."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
    try:
        _, frames, _ = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return int(frames)
    finally:
        conn.close()


def _restart_wal(conn: sqlite3.Connection) -> None:
    """Between two transactions on the writer thread: finish the checkpoint and rewind the WAL.
    A passive checkpoint alone never rewinds it while writes keep coming."""
    conn.execute(f"PRAGMA busy_timeout = {RESTART_WAIT_MS}")  # never hold the writer long
    try:
        conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
    finally:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")


def owner_clause(owner: OwnerScope, column: str = "c.owner") -> tuple[str, tuple[str, ...]]:
    return ("", ()) if owner is ANY_OWNER else (f" AND {column} = ?", (str(owner),))


def _changed_rows(conn: sqlite3.Connection, sql: str, params: Sequence[Any]) -> int:
    """Run one statement; how many rows it changed."""
    return conn.execute(sql, params).rowcount


class SqliteConnection:
    """The connections every part of `SqliteStore` works through: transactions that
    finish once started, reads, and the translation of driver errors."""

    def __init__(
        self,
        path: str,
        write_thread: ThreadPoolExecutor,
        conn: sqlite3.Connection,
        reader: aiosqlite.Connection,
    ) -> None:
        self.path = path
        self._write_thread = write_thread
        self._conn = conn  # used only on _write_thread
        self._reader = reader
        # WAL checkpoints run beside the writer, never inside a commit (an fsync there was the
        # whole p99 of finalize→committed): see _after_write.
        self._written_since_checkpoint = 0
        self._checkpoint: asyncio.Task[None] | None = None
        self._closed = False
        self.clock: Callable[[], float] = time.time
        """The clock of this host, which the times in its records are read from; the take-over
        rule converts them to the database's clock (tests skew it, to stand for another host)."""

    @classmethod
    async def open(cls, url: str) -> Self:
        path = path_from_url(url)
        loop = asyncio.get_running_loop()
        thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="voxkeep-sqlite-writer")

        def connect() -> sqlite3.Connection:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
            for pragma in (*_PRAGMAS, "PRAGMA wal_autocheckpoint = 0"):
                conn.execute(pragma)
            return conn

        try:
            with mapped():
                conn = await loop.run_in_executor(thread, connect)
                reader = await aiosqlite.connect(path, isolation_level=None)
                try:
                    for pragma in _PRAGMAS:
                        # run to completion: a statement left open pins the WAL forever
                        await reader.execute_fetchall(pragma)
                except BaseException:
                    await reader.close()
                    raise
        except BaseException:
            thread.shutdown(wait=False)
            raise
        return cls(path, thread, conn, reader)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._checkpoint is not None:
            await self._checkpoint
        with mapped():
            await self._reader.close()
            await asyncio.get_running_loop().run_in_executor(self._write_thread, self._conn.close)
        self._write_thread.shutdown(wait=False)  # idle by now

    async def _transaction(
        self, work: Callable[[sqlite3.Connection], T], *, commit: bool = True
    ) -> T:
        """Run `work` in one transaction; `commit=False` rolls it back (a dry run, which
        answers by the same rule as the change)."""

        def run() -> T:
            with mapped():
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    result = work(self._conn)
                    self._conn.execute("COMMIT" if commit else "ROLLBACK")
                except BaseException:
                    if self._conn.in_transaction:
                        with contextlib.suppress(sqlite3.Error):  # keep the original error
                            self._conn.execute("ROLLBACK")
                    raise
                return result

        loop = asyncio.get_running_loop()
        return await finish(loop.run_in_executor(self._write_thread, run))

    def _after_write(self, pages: int) -> None:
        """Count roughly how many pages went into the WAL; past ~1,000 (SQLite's own default
        for auto-checkpoints) start a PASSIVE checkpoint on a connection of its own."""
        self._written_since_checkpoint += pages
        busy = self._checkpoint is not None and not self._checkpoint.done()
        if self._written_since_checkpoint >= CHECKPOINT_PAGES and not busy:
            self._written_since_checkpoint = 0
            self._checkpoint = asyncio.create_task(self._run_checkpoint())

    async def _run_checkpoint(self) -> None:
        try:
            frames = await asyncio.to_thread(_passive_checkpoint, self.path)
            if frames >= RESTART_FRAMES and not self._closed:
                # queued on the writer thread: runs between two transactions, almost nothing
                # left to copy after the passive pass
                await asyncio.get_running_loop().run_in_executor(
                    self._write_thread, _restart_wal, self._conn
                )
        except sqlite3.Error as exc:  # the next one will catch up; the WAL only grows meanwhile
            log.warning("store.checkpoint_failed", error=type(exc).__name__)

    async def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with mapped():
            return list(await self._reader.execute_fetchall(sql, params))

    async def _changed(self, sql: str, params: Sequence[Any]) -> int:
        return await self._transaction(functools.partial(_changed_rows, sql=sql, params=params))
