"""The embedded store: one SQLite file (docs/store.md).

Writes run on a thread of the store's own, on a plain `sqlite3` connection: each transaction is
one function from `BEGIN IMMEDIATE` to `COMMIT` (`writes.py`), so it costs one hop from the event
loop, and once started it finishes — commit or rollback — even if whoever awaited it is
cancelled. Reads go through aiosqlite on a second connection, which sees committed snapshots
(WAL). The event loop never waits for the disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite
import structlog

from agent import metrics
from agent.errors import DiskFull, InvalidInput, NotFound, SchemaError, StoreError, StoreUnavailable
from agent.store import migrations, queries
from agent.store.base import ANY_OWNER, OwnerScope, SchemaStatus, Swept, WriteResult
from agent.store.queries import CHAT_COLUMNS, MESSAGE_COLUMNS
from agent.store.records import (
    Chat,
    ChatFilter,
    ChatPage,
    ChatStatus,
    EndReason,
    MessagePage,
    NewCall,
    OutboxEvent,
    Record,
    SearchHit,
    StoreStats,
    check_text,
)
from agent.store.shielded import finish
from agent.store.sqlite import holding, outbox, writes
from agent.store.sqlite.rows import chat_from_row, message_from_row

__all__ = ["SqliteStore", "path_from_url"]

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
    """`sqlite:///data/agent.db` is relative to the working directory, `sqlite:////abs` absolute."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or len(url) == len(prefix):
        raise InvalidInput("a SQLite URL looks like sqlite:///path/to/agent.db")
    path = url[len(prefix) :]
    if path == ":memory:":
        raise InvalidInput("the store needs a file: several connections share it")
    return path


@contextlib.contextmanager
def _mapped() -> Iterator[None]:
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


def _truncate_wal(conn: sqlite3.Connection) -> None:
    """Checkpoint everything and empty the WAL file; skipped (a later one does it) when
    readers hold it longer than the writer may wait."""
    conn.execute(f"PRAGMA busy_timeout = {RESTART_WAIT_MS}")
    try:
        with _mapped():
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    except StoreUnavailable:
        log.info("store.wal_busy")
    finally:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")


def _owner_clause(owner: OwnerScope, column: str = "c.owner") -> tuple[str, tuple[str, ...]]:
    return ("", ()) if owner is ANY_OWNER else (f" AND {column} = ?", (str(owner),))


def _file_size(path: str) -> int:
    return sum(os.path.getsize(p) for p in (path, f"{path}-wal") if os.path.exists(p))


class SqliteStore:
    """`Store` on one SQLite file. Build it with `await SqliteStore.open(url)`."""

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

    @classmethod
    async def open(cls, url: str) -> SqliteStore:
        path = path_from_url(url)
        loop = asyncio.get_running_loop()
        thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="agent-sqlite-writer")

        def connect() -> sqlite3.Connection:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
            for pragma in (*_PRAGMAS, "PRAGMA wal_autocheckpoint = 0"):
                conn.execute(pragma)
            return conn

        try:
            with _mapped():
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
        with _mapped():
            await self._reader.close()
            await asyncio.get_running_loop().run_in_executor(self._write_thread, self._conn.close)
        self._write_thread.shutdown(wait=False)  # idle by now

    # --- plumbing -----------------------------------------------------------------------

    async def _transaction(self, work: Callable[[sqlite3.Connection], T]) -> T:
        def run() -> T:
            with _mapped():
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    result = work(self._conn)
                    self._conn.execute("COMMIT")
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
        with _mapped():
            return list(await self._reader.execute_fetchall(sql, params))

    async def _changed(self, sql: str, params: Sequence[Any]) -> int:
        return await self._transaction(
            functools.partial(writes.changed_rows, sql=sql, params=params)
        )

    # --- schema -------------------------------------------------------------------------

    async def schema_status(self) -> SchemaStatus:
        rows = await self._read(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
        )
        current, oldest = 0, 1
        if rows:
            current = int(
                (await self._read("SELECT MAX(version) FROM schema_migrations"))[0][0] or 0
            )
        if current >= migrations.RECORDED_SINCE:
            found = await self._read("SELECT MAX(oldest_code) FROM schema_migrations")
            oldest = int(found[0][0])
        return SchemaStatus(current, len(migrations.load("sqlite")), oldest)

    async def migrate(self) -> list[int]:
        applied: list[int] = []
        for migration in migrations.load("sqlite"):
            if await self._transaction(functools.partial(writes.apply_migration, m=migration)):
                applied.append(migration.version)
        refusal = (await self.schema_status()).refusal("code")
        if refusal:
            raise SchemaError(refusal)
        return applied

    # --- writes -------------------------------------------------------------------------

    async def write(
        self, records: Sequence[Record], *, refuse_taken_over: bool = True
    ) -> WriteResult:
        result = await self._transaction(
            functools.partial(
                writes.write_records, records=records, refuse_taken_over=refuse_taken_over
            )
        )
        self._after_write(1 + len(records) // ROWS_PER_PAGE)
        return result

    async def close_chat(
        self,
        chat_id: str,
        *,
        status: ChatStatus,
        end_reason: EndReason,
        at: float,
        call_id: str | None = None,
    ) -> bool:
        return await self._transaction(
            functools.partial(
                writes.close_chat, chat_id=chat_id, status=status, end_reason=end_reason, at=at,
                call_id=call_id,
            )
        )  # fmt: skip

    # --- who holds a chat ---------------------------------------------------------------

    async def resume_candidate(self, owner: str, *, ended_since: float) -> Chat | None:
        rows = await self._read(
            f"SELECT {CHAT_COLUMNS} FROM chats c WHERE c.owner = ?"
            " ORDER BY c.updated_at DESC, c.id DESC LIMIT 1",
            (owner,),
        )
        return queries.resumable(chat_from_row(rows[0]) if rows else None, ended_since)

    async def claim_chat(self, call: NewCall, *, owner: OwnerScope) -> Chat:
        scope = None if owner is ANY_OWNER else str(owner)
        taken = await self._transaction(
            functools.partial(holding.claim_chat, call=call, owner=scope, at=time.time())
        )
        if taken:
            log.info("chat.taken_over", chat_id=call.chat_id, call_id=call.id, calls=taken)
            metrics.TAKEOVERS.labels(backend="sqlite").inc(taken)
        return await self.get_chat(call.chat_id, owner=owner)

    async def heartbeat(self, call_id: str, *, at: float) -> bool:
        return await self._transaction(functools.partial(holding.heartbeat, call_id=call_id, at=at))

    async def sweep(self, *, stale_before: float) -> Swept:
        return await self._transaction(functools.partial(holding.sweep, cutoff=stale_before))

    async def set_summary(self, chat_id: str, summary: str, *, upto_seq: int) -> bool:
        summary = check_text(summary, "summary")
        return bool(
            await self._changed(
                "UPDATE chats SET summary = ?, summary_seq = ?"
                " WHERE id = ? AND COALESCE(summary_seq, 0) < ?",
                (summary, upto_seq, chat_id, upto_seq),
            )
        )

    async def rename_chat(self, chat_id: str, title: str, *, owner: OwnerScope) -> Chat:
        title = check_text(title.strip(), "title")
        if not 1 <= len(title) <= 100:
            raise InvalidInput("a title has 1 to 100 characters")
        clause, params = _owner_clause(owner, "owner")
        changed = await self._changed(
            f"UPDATE chats SET title = ?, updated_at = MAX(updated_at, ?) WHERE id = ?{clause}",
            (title, time.time(), chat_id, *params),
        )
        if not changed:
            raise NotFound("no such chat")
        return await self.get_chat(chat_id, owner=owner)

    async def delete_chat(self, chat_id: str, *, owner: OwnerScope) -> None:
        clause, params = _owner_clause(owner, "owner")
        if not await self._changed(f"DELETE FROM chats WHERE id = ?{clause}", (chat_id, *params)):
            raise NotFound("no such chat")

    async def prune(self, *, older_than: float, owner: OwnerScope, limit: int | None = None) -> int:
        clause, params = _owner_clause(owner, "owner")
        return await self._changed(
            "DELETE FROM chats WHERE id IN (SELECT id FROM chats WHERE status != 'active'"
            f" AND updated_at < ?{clause} ORDER BY updated_at LIMIT ?)",
            (older_than, *params, -1 if limit is None else limit),
        )

    async def erase_owner(self, owner: str, *, keep: str | None = None) -> int:
        deleted = await self._changed(
            "DELETE FROM chats WHERE owner = ? AND id IS NOT ?", (owner, keep)
        )
        await self.purge()
        return deleted

    async def purge(self) -> None:
        # FTS5 deletes by adding "deleted" markers; merging every segment drops the words
        await self._changed("INSERT INTO messages_fts (messages_fts) VALUES ('optimize')", ())
        # and the WAL still holds the pages as they were: copy it back and empty it, between
        # two transactions on the writer thread (best effort while others read)
        await asyncio.get_running_loop().run_in_executor(
            self._write_thread, _truncate_wal, self._conn
        )

    # --- the webhook outbox -------------------------------------------------------------

    async def take_events(self, *, now: float, lease_s: float, limit: int) -> list[OutboxEvent]:
        return await self._transaction(
            functools.partial(outbox.take, now=now, lease_s=lease_s, limit=limit)
        )

    async def settle_event(
        self, event_id: str, *, acked: Sequence[str], retry_at: float | None
    ) -> None:
        await self._transaction(
            functools.partial(outbox.settle, event_id=event_id, acked=acked, retry_at=retry_at)
        )

    async def expire_events(self, *, created_before: float) -> int:
        return await self._transaction(
            functools.partial(outbox.expire, created_before=created_before)
        )

    # --- reads --------------------------------------------------------------------------

    async def get_chat(self, chat_id: str, *, owner: OwnerScope) -> Chat:
        clause, params = _owner_clause(owner)
        rows = await self._read(
            f"SELECT {CHAT_COLUMNS} FROM chats c WHERE c.id = ?{clause}", (chat_id, *params)
        )
        if not rows:
            raise NotFound("no such chat")
        return chat_from_row(rows[0])

    async def list_chats(
        self,
        *,
        owner: OwnerScope,
        status: ChatStatus | None = None,
        limit: int = 20,
        cursor: str | None = None,
        filters: ChatFilter | None = None,
    ) -> ChatPage:
        queries.check_page_limit(limit)
        clause, params = _owner_clause(owner)
        where = f"WHERE 1 = 1{clause}"
        args: list[Any] = list(params)
        if status is not None:
            where += " AND c.status = ?"
            args.append(status)
        if filters is not None and filters.created_after is not None:
            where += " AND c.created_at >= ?"
            args.append(filters.created_after)
        if filters is not None and filters.created_before is not None:
            where += " AND c.created_at < ?"
            args.append(filters.created_before)
        if filters is not None and filters.text:
            where += (
                " AND c.id IN (SELECT m.chat_id FROM messages_fts"
                " JOIN messages m ON m.rowid = messages_fts.rowid WHERE messages_fts MATCH ?)"
            )
            args.append(queries.fts_query(filters.text))
        if cursor is not None:
            updated_at, last_id = queries.decode_cursor(cursor)
            where += " AND (c.updated_at < ? OR (c.updated_at = ? AND c.id < ?))"
            args += [updated_at, updated_at, last_id]
        rows = await self._read(
            f"SELECT {CHAT_COLUMNS} FROM chats c {where}"
            " ORDER BY c.updated_at DESC, c.id DESC LIMIT ?",
            (*args, limit + 1),
        )
        return queries.chat_page([chat_from_row(row) for row in rows], limit)

    async def messages(
        self,
        chat_id: str,
        *,
        owner: OwnerScope,
        before_seq: int | None = None,
        limit: int | None = None,
    ) -> MessagePage:
        queries.check_page_limit(limit)
        clause, params = _owner_clause(owner, "owner")
        # One query: the owner check and the page, so another owner's chat reads as empty.
        rows = await self._read(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE chat_id ="
            f" (SELECT id FROM chats WHERE id = ?{clause}) AND seq < ?"
            " ORDER BY seq DESC LIMIT ?",
            (
                chat_id,
                *params,
                2**62 if before_seq is None else before_seq,
                -1 if limit is None else limit,
            ),
        )
        if not rows:
            await self.get_chat(chat_id, owner=owner)  # NotFound, or truly no messages
        return queries.message_page([message_from_row(row) for row in rows])

    async def search(self, query: str, *, owner: OwnerScope, limit: int = 20) -> list[SearchHit]:
        match = queries.fts_query(query)
        clause, params = _owner_clause(owner)
        rows = await self._read(
            "SELECT m.chat_id, c.owner, m.id, m.seq, m.role, m.created_at,"
            " snippet(messages_fts, 0, '[', ']', '…', 12)"
            " FROM messages_fts JOIN messages m ON m.rowid = messages_fts.rowid"
            f" JOIN chats c ON c.id = m.chat_id WHERE messages_fts MATCH ?{clause}"
            " ORDER BY rank LIMIT ?",
            (match, *params, limit),
        )
        return [SearchHit(*row) for row in rows]

    # --- operations ---------------------------------------------------------------------

    async def stats(self) -> StoreStats:
        by_status = dict(await self._read("SELECT status, COUNT(*) FROM chats GROUP BY status"))
        counts = await self._read(
            "SELECT (SELECT COUNT(*) FROM chats), (SELECT COUNT(*) FROM messages),"
            " (SELECT COUNT(DISTINCT owner) FROM chats)"
        )
        chats, messages, owners = counts[0]
        status = await self.schema_status()
        size = await asyncio.to_thread(_file_size, self.path)
        return StoreStats(
            chats=chats,
            messages=messages,
            owners=owners,
            chats_by_status=by_status,
            schema_version=status.current,
            size_bytes=size,
        )

    async def check(self) -> list[str]:
        problems: list[str] = []
        status = await self.schema_status()
        refusal = status.refusal("agentctl")
        if refusal:
            problems.append(refusal)
        if status.current == 0:
            return problems
        rows = await self._read("PRAGMA integrity_check")
        problems += [f"integrity: {row[0]}" for row in rows if row[0] != "ok"]
        rows = await self._read("PRAGMA foreign_key_check")
        problems += [f"foreign key: {row[0]} row {row[1]} -> {row[2]}" for row in rows]
        try:
            await self._read(
                "INSERT INTO messages_fts (messages_fts, rank) VALUES ('integrity-check', 1)"
            )
        except StoreError as exc:
            problems.append(f"search index: {exc}")
        return problems

    async def backup(self, path: str) -> None:
        if await asyncio.to_thread(os.path.exists, path):
            raise InvalidInput(f"{path} already exists")
        await self.purge()  # the copy carries no remnant of a deleted chat
        await self._read("VACUUM INTO ?", (path,))
