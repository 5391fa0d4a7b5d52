"""The shared store: PostgreSQL through asyncpg (docs/store.md), for several workers at once.

A pool of connections with a `command_timeout`; each write is one transaction. `seq` is given
under a row lock on the chats written to (taken in id order, so two writers never deadlock), which
keeps it gapless per chat across processes and machines. Connection failures — the server
restarting, a network blip — are `StoreUnavailable`: the writer retries and the pool reconnects.
Only this package imports asyncpg.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, TypeVar

import asyncpg
import structlog

from agent import metrics
from agent.errors import DiskFull, InvalidInput, NotFound, SchemaError, StoreError, StoreUnavailable
from agent.store import migrations, queries
from agent.store.base import ANY_OWNER, OwnerScope, SchemaStatus, Swept, WriteResult
from agent.store.postgres import outbox, writes
from agent.store.postgres.rows import chat_from_row, message_from_row
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

__all__ = ["PostgresStore"]

T = TypeVar("T")
log = structlog.get_logger(__name__)

COMMAND_TIMEOUT_S = 10.0
CONNECT_TIMEOUT_S = 5.0
PURGE_TIMEOUT_S = 600.0  # VACUUM reads whole tables
MIGRATION_LOCK = 7_460_001  # pg_advisory_xact_lock key: one migrator at a time
DISK_FULL = "53100"
_TRANSIENT_SQLSTATE = ("08", "53", "57", "40")  # connection, resources, shutdown, rollback


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, OSError | TimeoutError | asyncpg.InterfaceError):
        return True
    state = getattr(exc, "sqlstate", None) or ""
    return isinstance(state, str) and state.startswith(_TRANSIENT_SQLSTATE)


@contextlib.contextmanager
def _mapped() -> Iterator[None]:
    """Translate driver errors into the project's hierarchy at the boundary."""
    try:
        yield
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
        if getattr(exc, "sqlstate", None) == DISK_FULL:
            raise DiskFull(f"PostgreSQL: {type(exc).__name__}") from exc
        if _transient(exc):
            raise StoreUnavailable(f"PostgreSQL: {type(exc).__name__}") from exc
        raise StoreError(f"PostgreSQL: {type(exc).__name__}: {exc}") from exc


def _owner_clause(owner: OwnerScope, column: str, n: int) -> tuple[str, tuple[str, ...]]:
    return ("", ()) if owner is ANY_OWNER else (f" AND {column} = ${n}", (str(owner),))


class PostgresStore:
    """`Store` on PostgreSQL. Build it with `await PostgresStore.open(url)`."""

    def __init__(self, pool: asyncpg.Pool, url: str) -> None:
        self._pool = pool
        self._url = url
        self._closed = False

    @classmethod
    async def open(cls, url: str) -> PostgresStore:
        with _mapped():
            pool = await asyncpg.create_pool(
                url, min_size=0, max_size=10, command_timeout=COMMAND_TIMEOUT_S,
                timeout=CONNECT_TIMEOUT_S,
            )  # fmt: skip
        return cls(pool, url)

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await self._pool.close()

    # --- plumbing -----------------------------------------------------------------------

    async def _transaction(self, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """Run `work` in one transaction; once started it finishes (commit or rollback) even
        if whoever awaited it is cancelled, as the SQLite store's do."""

        async def run() -> T:
            with _mapped():
                async with self._pool.acquire() as conn, conn.transaction():
                    return await work(conn)

        return await finish(asyncio.ensure_future(run()))

    async def _fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        with _mapped():
            return list(await self._pool.fetch(sql, *args))

    async def _changed(self, sql: str, *args: Any) -> int:
        async def run(conn: asyncpg.Connection) -> int:
            return _count(await conn.execute(sql, *args))

        return await self._transaction(run)

    # --- schema -------------------------------------------------------------------------

    async def schema_status(self) -> SchemaStatus:
        rows = await self._fetch("SELECT to_regclass('schema_migrations') IS NOT NULL")
        current, oldest = 0, 1
        if rows[0][0]:
            current = int(
                (await self._fetch("SELECT MAX(version) FROM schema_migrations"))[0][0] or 0
            )
        if current >= migrations.RECORDED_SINCE:
            found = await self._fetch("SELECT MAX(oldest_code) FROM schema_migrations")
            oldest = int(found[0][0])
        return SchemaStatus(current, len(migrations.load("postgres")), oldest)

    async def migrate(self) -> list[int]:
        applied: list[int] = []
        for migration in migrations.load("postgres"):

            async def apply(conn: asyncpg.Connection, m: migrations.Migration = migration) -> bool:
                await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
                exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
                if exists and await conn.fetchval(
                    "SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version >= $1)", m.version
                ):
                    return False
                await conn.execute(m.sql)
                if m.version >= migrations.RECORDED_SINCE:
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name, applied_at, oldest_code)"
                        " VALUES ($1, $2, $3, $4)",
                        m.version, m.name, time.time(), m.oldest_code,
                    )  # fmt: skip
                else:
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name, applied_at)"
                        " VALUES ($1, $2, $3)",
                        m.version, m.name, time.time(),
                    )  # fmt: skip
                return True

            if await self._transaction(apply):
                applied.append(migration.version)
        refusal = (await self.schema_status()).refusal("code")
        if refusal:
            raise SchemaError(refusal)
        return applied

    # --- writes -------------------------------------------------------------------------

    async def write(
        self, records: Sequence[Record], *, refuse_taken_over: bool = True
    ) -> WriteResult:
        return await self._transaction(
            lambda conn: writes.write_records(conn, records, refuse_taken_over)
        )

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
            lambda conn: writes.close_chat(conn, chat_id, status, end_reason, at, call_id)
        )

    async def resume_candidate(self, owner: str, *, ended_since: float) -> Chat | None:
        rows = await self._fetch(
            f"SELECT {CHAT_COLUMNS} FROM chats c WHERE c.owner = $1"
            " ORDER BY c.updated_at DESC, c.id DESC LIMIT 1",
            owner,
        )
        newest = chat_from_row(rows[0]) if rows else None
        return queries.resumable(newest, ended_since)

    async def claim_chat(self, call: NewCall, *, owner: OwnerScope) -> Chat:
        scope = None if owner is ANY_OWNER else str(owner)
        taken = await self._transaction(
            lambda conn: writes.claim_chat(conn, call, scope, time.time())
        )
        if taken:
            log.info("chat.taken_over", chat_id=call.chat_id, call_id=call.id, calls=taken)
            metrics.TAKEOVERS.labels(backend="postgres").inc(taken)
        return await self.get_chat(call.chat_id, owner=owner)

    async def heartbeat(self, call_id: str, *, at: float) -> bool:
        return await self._transaction(lambda conn: writes.heartbeat(conn, call_id, at))

    async def sweep(self, *, stale_before: float) -> Swept:
        return await self._transaction(lambda conn: writes.sweep(conn, stale_before))

    async def set_summary(self, chat_id: str, summary: str, *, upto_seq: int) -> bool:
        summary = check_text(summary, "summary")
        return bool(
            await self._changed(
                "UPDATE chats SET summary = $1, summary_seq = $2"
                " WHERE id = $3 AND COALESCE(summary_seq, 0) < $2",
                summary, upto_seq, chat_id,
            )
        )  # fmt: skip

    async def rename_chat(self, chat_id: str, title: str, *, owner: OwnerScope) -> Chat:
        title = check_text(title.strip(), "title")
        if not 1 <= len(title) <= 100:
            raise InvalidInput("a title has 1 to 100 characters")
        clause, params = _owner_clause(owner, "owner", 4)
        changed = await self._changed(
            "UPDATE chats SET title = $1, updated_at = GREATEST(updated_at, $2)"
            f" WHERE id = $3{clause}",
            title, time.time(), chat_id, *params,
        )  # fmt: skip
        if not changed:
            raise NotFound("no such chat")
        return await self.get_chat(chat_id, owner=owner)

    async def delete_chat(self, chat_id: str, *, owner: OwnerScope) -> None:
        clause, params = _owner_clause(owner, "owner", 2)
        if not await self._changed(f"DELETE FROM chats WHERE id = $1{clause}", chat_id, *params):
            raise NotFound("no such chat")

    async def prune(self, *, older_than: float, owner: OwnerScope, limit: int | None = None) -> int:
        clause, params = _owner_clause(owner, "owner", 3)
        return await self._changed(
            "DELETE FROM chats WHERE id IN (SELECT id FROM chats WHERE status != 'active'"
            f" AND updated_at < $1{clause} ORDER BY updated_at LIMIT $2)",
            older_than, limit, *params,
        )  # fmt: skip

    async def erase_owner(self, owner: str, *, keep: str | None = None) -> int:
        deleted = await self._changed(
            "DELETE FROM chats WHERE owner = $1 AND id IS DISTINCT FROM $2", owner, keep
        )
        await self.purge()
        return deleted

    async def purge(self) -> None:
        # outside a transaction, as VACUUM must be: dead rows leave the search index and their
        # space is reclaimed (pg_dump never copies them in the first place)
        with _mapped():
            await self._pool.execute("VACUUM messages, calls, chats", timeout=PURGE_TIMEOUT_S)

    # --- the webhook outbox -------------------------------------------------------------

    async def take_events(self, *, now: float, lease_s: float, limit: int) -> list[OutboxEvent]:
        return await self._transaction(lambda conn: outbox.take(conn, now, lease_s, limit))

    async def settle_event(
        self, event_id: str, *, acked: Sequence[str], retry_at: float | None
    ) -> None:
        await self._transaction(lambda conn: outbox.settle(conn, event_id, acked, retry_at))

    async def expire_events(self, *, created_before: float) -> int:
        return await self._transaction(lambda conn: outbox.expire(conn, created_before))

    # --- reads --------------------------------------------------------------------------

    async def get_chat(self, chat_id: str, *, owner: OwnerScope) -> Chat:
        clause, params = _owner_clause(owner, "c.owner", 2)
        rows = await self._fetch(
            f"SELECT {CHAT_COLUMNS} FROM chats c WHERE c.id = $1{clause}", chat_id, *params
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
        where, args = "WHERE TRUE", list[Any]()
        if owner is not ANY_OWNER:
            args.append(str(owner))
            where += f" AND c.owner = ${len(args)}"
        if status is not None:
            args.append(status)
            where += f" AND c.status = ${len(args)}"
        if filters is not None and filters.created_after is not None:
            args.append(filters.created_after)
            where += f" AND c.created_at >= ${len(args)}"
        if filters is not None and filters.created_before is not None:
            args.append(filters.created_before)
            where += f" AND c.created_at < ${len(args)}"
        if filters is not None and filters.text:
            args.append(" ".join(queries.search_words(filters.text)))
            where += (
                " AND EXISTS (SELECT 1 FROM messages m WHERE m.chat_id = c.id"
                f" AND m.search @@ plainto_tsquery('simple', ${len(args)}))"
            )
        if cursor is not None:
            updated_at, last_id = queries.decode_cursor(cursor)
            args += [updated_at, last_id]
            n = len(args)
            where += f" AND (c.updated_at < ${n - 1} OR (c.updated_at = ${n - 1} AND c.id < ${n}))"
        args.append(limit + 1)
        rows = await self._fetch(
            f"SELECT {CHAT_COLUMNS} FROM chats c {where}"
            f" ORDER BY c.updated_at DESC, c.id DESC LIMIT ${len(args)}",
            *args,
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
        clause, params = _owner_clause(owner, "owner", 4)
        rows = await self._fetch(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE chat_id ="
            f" (SELECT id FROM chats WHERE id = $1{clause}) AND seq < $2"
            " ORDER BY seq DESC LIMIT $3",
            chat_id, 2**31 - 1 if before_seq is None else before_seq, limit, *params,
        )  # fmt: skip
        if not rows:
            await self.get_chat(chat_id, owner=owner)  # NotFound, or truly no messages
        return queries.message_page([message_from_row(row) for row in rows])

    async def search(self, query: str, *, owner: OwnerScope, limit: int = 20) -> list[SearchHit]:
        words = " ".join(queries.search_words(query))
        clause, params = _owner_clause(owner, "c.owner", 3)
        rows = await self._fetch(
            "SELECT m.chat_id, c.owner, m.id, m.seq, m.role, m.created_at,"
            " ts_headline('simple', m.content, q,"
            "   'StartSel=[, StopSel=], MaxWords=12, MinWords=4, ShortWord=0')"
            " FROM messages m JOIN chats c ON c.id = m.chat_id,"
            " plainto_tsquery('simple', $1) q"
            f" WHERE m.search @@ q{clause}"
            " ORDER BY ts_rank(m.search, q) DESC, m.created_at DESC LIMIT $2",
            words, limit, *params,
        )  # fmt: skip
        return [SearchHit(*row) for row in rows]

    # --- operations ---------------------------------------------------------------------

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
        refusal = status.refusal("agentctl")
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
        process = await asyncio.create_subprocess_exec(
            dump, "--format=custom", f"--file={path}", f"--dbname={self._url}",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, err = await process.communicate()
        if process.returncode != 0:
            raise StoreError(f"pg_dump failed: {err.decode(errors='replace').strip()[:200]}")


def _exists(path: str) -> bool:
    return os.path.exists(path)


def _count(status: str) -> int:
    """Rows changed, from a command status such as `UPDATE 3`."""
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0
