"""Operations on the whole store (docs/operations.md): prune, erasure, purge, statistics, integrity
checks and backups."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import asyncpg

from voxkeep.core.errors import InvalidInput, StoreError
from voxkeep.store.base import ANY_OWNER, OwnerScope
from voxkeep.store.postgres.connection import mapped, owner_clause
from voxkeep.store.postgres.schema import PostgresSchema
from voxkeep.store.postgres.writes import delete_chats
from voxkeep.store.records import StoreStats

PURGE_TIMEOUT_S = 600.0  # VACUUM reads whole tables


def _without_password(url: str) -> tuple[str, str | None]:
    """The URL without its password, and the password: a program's command line is visible to
    everyone on the machine (`ps`), its environment only to its user."""
    parts = urlsplit(url)
    if parts.password is None:
        return url, None
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{user}@{host}" if user else host
    return urlunsplit(parts._replace(netloc=netloc)), unquote(parts.password)


def _exists(path: str) -> bool:
    return os.path.exists(path)


def _doomed(
    owner: OwnerScope, older_than: float | None, *, first: int
) -> tuple[str, tuple[Any, ...]]:
    """What prune (`older_than`) or erasure (none) deletes, as a WHERE clause on chats with its
    parameters numbered from `$first`: one rule for the deletion and its dry run."""
    if older_than is None:
        if owner is ANY_OWNER:
            raise InvalidInput("erasure names the owner whose chats go")
        return f"owner = ${first}", (owner,)
    clause, params = owner_clause(owner, "owner", first + 1)
    return f"status != 'active' AND updated_at < ${first}{clause}", (older_than, *params)


class PostgresMaintenance(PostgresSchema):
    """What operators run: prune, erasure and purging deleted words, statistics, checks, backups."""

    async def prune(self, *, older_than: float, owner: OwnerScope, limit: int | None = None) -> int:
        where, params = _doomed(owner, older_than, first=2)
        return await self._changed(
            f"DELETE FROM chats WHERE id IN (SELECT id FROM chats WHERE {where}"
            " ORDER BY updated_at LIMIT $1)",
            limit, *params,
        )  # fmt: skip

    async def to_delete(self, *, owner: OwnerScope, older_than: float | None = None) -> list[str]:
        where, params = _doomed(owner, older_than, first=1)
        rows = await self._fetch(f"SELECT id FROM chats WHERE {where} ORDER BY updated_at", *params)
        return [row[0] for row in rows]

    async def erase_owner(self, owner: str, *, keep: str | None = None) -> int:
        where, params = _doomed(owner, None, first=2)
        doomed = f"{where} AND id IS DISTINCT FROM $1"
        at = time.time()

        async def erase(conn: asyncpg.Connection) -> int:
            deleted = await delete_chats(conn, doomed, keep, *params)
            await conn.execute(  # (in the same transaction: a purge is never forgotten)
                "INSERT INTO purge_due (id, since) VALUES (1, $1)"
                " ON CONFLICT (id) DO UPDATE SET since = excluded.since",
                at,
            )
            return deleted

        return await self._transaction(erase)

    async def purge_if_due(self) -> bool:
        due = await self._fetch("SELECT since FROM purge_due")
        if not due:
            return False
        await self.purge()
        await self._changed("DELETE FROM purge_due WHERE since <= $1", due[0][0])
        return True

    async def purge(self) -> None:
        # outside a transaction, as VACUUM must be: dead rows leave the search index and their
        # space is reclaimed (pg_dump never copies them in the first place)
        with mapped():
            await self._pool.execute("VACUUM messages, calls, chats", timeout=PURGE_TIMEOUT_S)

    async def stats(self) -> StoreStats:
        by_status = {
            row[0]: row[1]
            for row in await self._fetch("SELECT status, COUNT(*) FROM chats GROUP BY status")
        }
        chats, messages, owners, size = (
            await self._fetch(
                "SELECT (SELECT COUNT(*) FROM chats), (SELECT COUNT(*) FROM messages),"
                " (SELECT COUNT(DISTINCT owner) FROM chats),"
                " pg_database_size(current_database())"
            )
        )[0]
        status = await self.schema_status()
        return StoreStats(
            chats=chats, messages=messages, owners=owners, chats_by_status=by_status,
            schema_version=status.current, size_bytes=size,
        )  # fmt: skip

    async def check(self) -> list[str]:
        problems: list[str] = []
        status = await self.schema_status()
        refusal = status.refusal("voxkeepctl")
        if refusal:
            problems.append(refusal)
        if status.current == 0:
            return problems
        rows = await self._fetch(
            "SELECT chat_id FROM messages GROUP BY chat_id HAVING MAX(seq) != COUNT(*) LIMIT 10"
        )
        problems += [f"seq: chat {row[0]} has gaps" for row in rows]
        return problems

    async def backup(self, path: str) -> None:
        """A consistent copy with `pg_dump` (custom format: restore with `pg_restore`)."""
        if await asyncio.to_thread(_exists, path):
            raise InvalidInput(f"{path} already exists")
        dump = shutil.which("pg_dump")
        if dump is None:
            raise InvalidInput(
                "backing up PostgreSQL needs pg_dump (the postgresql-client package)"
            )
        dbname, password = _without_password(self._url)
        env = {**os.environ, **({"PGPASSWORD": password} if password else {})}
        process = await asyncio.create_subprocess_exec(
            dump, "--format=custom", f"--file={path}", f"--dbname={dbname}",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, env=env,
        )  # fmt: skip
        _, err = await process.communicate()
        if process.returncode != 0:
            raise StoreError(f"pg_dump failed: {err.decode(errors='replace').strip()[:200]}")
