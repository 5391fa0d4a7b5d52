"""Operations on the whole store (docs/operations.md): prune, erasure, purge, statistics, integrity
checks and backups."""

from __future__ import annotations

import asyncio
import functools
import os
import sqlite3
import time
from typing import Any

from voxkeep.core.errors import InvalidInput, StoreError, StoreUnavailable
from voxkeep.store.base import ANY_OWNER, OwnerScope
from voxkeep.store.records import StoreStats
from voxkeep.store.sqlite.connection import (
    BUSY_TIMEOUT_MS,
    RESTART_WAIT_MS,
    log,
    mapped,
    owner_clause,
)
from voxkeep.store.sqlite.schema import SqliteSchema
from voxkeep.store.sqlite.writes import delete_chats


def _truncate_wal(conn: sqlite3.Connection) -> None:
    """Checkpoint everything and empty the WAL file; skipped (a later one does it) when
    readers hold it longer than the writer may wait."""
    conn.execute(f"PRAGMA busy_timeout = {RESTART_WAIT_MS}")
    try:
        with mapped():
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    except StoreUnavailable:
        log.info("store.wal_busy")
    finally:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")


def _file_size(path: str) -> int:
    return sum(os.path.getsize(p) for p in (path, f"{path}-wal") if os.path.exists(p))


_OWE_PURGE = (
    "INSERT INTO purge_due (id, since) VALUES (1, ?)"
    " ON CONFLICT (id) DO UPDATE SET since = excluded.since"
)


def _doomed(owner: OwnerScope, older_than: float | None) -> tuple[str, tuple[Any, ...]]:
    """What prune (`older_than`) or erasure (none) deletes, as a WHERE clause on chats: one
    rule for the deletion and its dry run."""
    if older_than is None:
        if owner is ANY_OWNER:
            raise InvalidInput("erasure names the owner whose chats go")
        return "owner = ?", (owner,)
    clause, params = owner_clause(owner, "owner")
    return f"status != 'active' AND updated_at < ?{clause}", (older_than, *params)


def _erase(conn: sqlite3.Connection, where: str, params: tuple[Any, ...], at: float) -> int:
    """Delete the chats, and owe a purge, in one transaction: a purge is never forgotten."""
    deleted = delete_chats(conn, where, params)
    conn.execute(_OWE_PURGE, (at,))
    return deleted


class SqliteMaintenance(SqliteSchema):
    """What operators run: prune, erasure and purging deleted words, statistics, checks, backups."""

    async def prune(self, *, older_than: float, owner: OwnerScope, limit: int | None = None) -> int:
        where, params = _doomed(owner, older_than)
        return await self._changed(
            f"DELETE FROM chats WHERE id IN (SELECT id FROM chats WHERE {where}"
            " ORDER BY updated_at LIMIT ?)",
            (*params, -1 if limit is None else limit),
        )

    async def to_delete(self, *, owner: OwnerScope, older_than: float | None = None) -> list[str]:
        where, params = _doomed(owner, older_than)
        rows = await self._read(f"SELECT id FROM chats WHERE {where} ORDER BY updated_at", params)
        return [row[0] for row in rows]

    async def erase_owner(self, owner: str, *, keep: str | None = None) -> int:
        where, params = _doomed(owner, None)
        erase = functools.partial(
            _erase, where=f"{where} AND id IS NOT ?", params=(*params, keep), at=time.time()
        )
        return await self._transaction(erase)

    async def purge_if_due(self) -> bool:
        due = await self._read("SELECT since FROM purge_due")
        if not due:
            return False
        await self.purge()
        await self._changed("DELETE FROM purge_due WHERE since <= ?", (due[0][0],))
        return True

    async def purge(self) -> None:
        # FTS5 deletes by adding "deleted" markers; merging every segment drops the words
        await self._changed("INSERT INTO messages_fts (messages_fts) VALUES ('optimize')", ())
        # and the WAL still holds the pages as they were: copy it back and empty it, between
        # two transactions on the writer thread (best effort while others read)
        await asyncio.get_running_loop().run_in_executor(
            self._write_thread, _truncate_wal, self._conn
        )

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
        refusal = status.refusal("voxkeepctl")
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
