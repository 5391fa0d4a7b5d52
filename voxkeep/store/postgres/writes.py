"""The PostgreSQL write transactions, as functions of a connection already in a transaction.
The same rules as SQLite's (`voxkeep/store/sqlite/writes.py`, `holding.py`); where SQLite has one
writer at a time, these take row locks on the chats they change, always in id order."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import asyncpg

from voxkeep.core.errors import InvalidInput, NotFound, TakenOver
from voxkeep.store import queries
from voxkeep.store.base import LostHold, OwnerScope, WriteResult
from voxkeep.store.postgres.connection import owner_clause
from voxkeep.store.postgres.holding import TAKEN_OVER, insert_calls, lost_at, rehome_calls
from voxkeep.store.postgres.reads import PostgresReads
from voxkeep.store.postgres.rows import INSERT_MESSAGE, message_to_row
from voxkeep.store.records import (
    CallEnded,
    Chat,
    ChatMetadataSet,
    ChatStatus,
    EndReason,
    JournalClosed,
    JournalOpened,
    MessageMeasured,
    NewChat,
    NewMessage,
    Record,
    call_rows,
    check_text,
)

_CONTINUE_CHAT = (  # (docs/resume.md: a call that lost its chat goes on in a chat of its own)
    "INSERT INTO chats (id, owner, agent_name, status, created_at, updated_at, metadata)"
    " SELECT $1, owner, agent_name, 'active', $2, $2, jsonb_build_object('v', 1, 'continues', id)"
    " FROM chats WHERE id = $3 ON CONFLICT (id) DO NOTHING"
)
_INSERT_CHAT = (
    "INSERT INTO chats (id, owner, agent_name, status, created_at, updated_at, metadata)"
    " VALUES ($1, $2, $3, 'active', $4, $4, $5::jsonb) ON CONFLICT (id) DO NOTHING"
)


async def _lock_chats(conn: asyncpg.Connection, chat_ids: set[str]) -> dict[str, int]:
    """Lock the chats (id order: no deadlock between two writers) and read each one's last seq.
    Two statements: the second takes its snapshot after the locks are held, so it sees every
    message the previous holder committed."""
    rows = await conn.fetch(
        "SELECT id FROM chats WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE", sorted(chat_ids)
    )
    last = await conn.fetch(
        "SELECT c, COALESCE((SELECT MAX(seq) FROM messages m WHERE m.chat_id = c), 0)"
        " FROM unnest($1::text[]) AS c",
        [row[0] for row in rows],
    )
    return {row[0]: row[1] for row in last}


async def write_records(
    conn: asyncpg.Connection, records: Sequence[Record], clock: Callable[[], float] = time.time
) -> WriteResult:
    """Apply a batch: chats and calls first, then the messages, then the rest (as SQLite)."""
    chats = [r for r in records if isinstance(r, NewChat)]
    calls = call_rows(records)
    messages = [r for r in records if isinstance(r, NewMessage)]
    journals = [r for r in records if isinstance(r, JournalOpened)]
    if journals:
        await conn.executemany(
            "INSERT INTO journals (id, host, pid, opened_at) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT DO NOTHING",
            [(r.id, r.host, r.pid, r.opened_at) for r in journals],
        )
    if chats:
        await conn.executemany(
            _INSERT_CHAT,
            [
                (c.id, c.owner, c.agent_name, c.created_at, c.json_texts()["metadata"])
                for c in chats
            ],
        )
    if calls:
        await insert_calls(conn, calls)
    result = WriteResult(inserted=0)
    if messages:
        result = await _write_messages(conn, messages, clock)
    for r in records:
        if isinstance(r, CallEnded):
            await conn.execute(
                "UPDATE calls SET ended_at = $1, end_reason = $2"
                " WHERE id = $3 AND ended_at IS NULL",
                r.ended_at, r.end_reason, r.call_id,
            )  # fmt: skip
        elif isinstance(r, ChatMetadataSet):
            await conn.execute(
                "UPDATE chats SET metadata = jsonb_set(metadata, ARRAY[$1::text], $2::jsonb)"
                " WHERE id = $3",
                r.key, r.json_texts()["value"], r.chat_id,
            )  # fmt: skip
        elif isinstance(r, MessageMeasured):
            await conn.execute(
                "UPDATE messages SET prosody = $1::jsonb, started_at = COALESCE(started_at, $2),"
                " ended_at = COALESCE(ended_at, $3) WHERE id = $4",
                r.json_texts()["prosody"], r.started_at, r.ended_at, r.message_id,
            )  # fmt: skip
        elif isinstance(r, JournalClosed):
            await conn.execute("DELETE FROM journals WHERE id = $1", r.id)
    return result


async def delete_chats(conn: asyncpg.Connection, where: str, *params: Any) -> int:
    """See `delete_chats` in `voxkeep/store/sqlite/writes.py`; `where`'s parameters are
    numbered from $1."""
    doomed = [
        row[0]
        for row in await conn.fetch(f"SELECT id FROM chats WHERE {where} FOR UPDATE", *params)
    ]
    await rehome_calls(conn, doomed)
    deleted = await conn.execute("DELETE FROM chats WHERE id = ANY($1::text[])", doomed)
    return int(deleted.rsplit(" ", 1)[-1])


async def _lost_calls(
    conn: asyncpg.Connection, call_ids: set[str]
) -> tuple[dict[str, tuple[float, LostHold]], set[str]]:
    """See `_lost_calls` in `voxkeep/store/sqlite/writes.py`."""
    lost = await lost_at(conn, call_ids)
    chats, continuations = queries.chains(lost)
    lost.update(await lost_at(conn, continuations))
    return lost, chats


async def _write_messages(
    conn: asyncpg.Connection, messages: list[NewMessage], clock: Callable[[], float]
) -> WriteResult:
    lost, continuation_chats = await _lost_calls(conn, {m.call_id for m in messages if m.call_id})
    offset = await _clock_offset(conn, clock) if lost else 0.0
    last_seq = await _lock_chats(conn, {m.chat_id for m in messages} | continuation_chats)
    stored = {
        row[0]
        for row in await conn.fetch(
            "SELECT id FROM messages WHERE id = ANY($1::text[])", [m.id for m in messages]
        )
    }
    batch = queries.append(
        messages, last_seq, stored, {k: at for k, (at, _) in lost.items()}, offset
    )
    if batch.continued:
        await conn.executemany(
            _CONTINUE_CHAT,
            [(chat_id, at, source) for chat_id, (source, at) in batch.continued.items()],
        )
    if batch.live:
        await conn.executemany(INSERT_MESSAGE, [message_to_row(m, seq) for m, seq in batch.live])
        touched = list(batch.newest)
        await conn.execute(  # every touched chat's time and first title, in one statement
            "UPDATE chats c SET updated_at = GREATEST(c.updated_at, u.at),"
            " title = COALESCE(c.title, u.title)"
            " FROM unnest($1::text[], $2::float8[], $3::text[]) AS u(id, at, title)"
            " WHERE c.id = u.id",
            touched, [batch.newest[c] for c in touched], [batch.titles.get(c) for c in touched],
        )  # fmt: skip
    moved = {m: lost[call_id][1] for m, call_id in batch.moved.items()}
    return WriteResult(inserted=len(batch.live), orphaned=batch.orphaned, moved=moved)


async def _clock_offset(conn: asyncpg.Connection, clock: Callable[[], float]) -> float:
    """The database's clock minus this host's (`clock`), read now: the take-over rule compares
    times by the database's clock, so skew between workers' machines cannot misfile a message."""
    before = clock()
    db_now = await conn.fetchval("SELECT EXTRACT(EPOCH FROM clock_timestamp())::float8")
    return float(db_now) - (before + clock()) / 2


async def _close_chat(
    conn: asyncpg.Connection,
    chat_id: str,
    status: ChatStatus,
    end_reason: EndReason,
    at: float,
    call_id: str | None,
) -> bool:
    if not await _lock_chats(conn, {chat_id}):
        raise NotFound("no such chat")
    has_user, lost, waiting = await conn.fetchrow(
        "SELECT EXISTS (SELECT 1 FROM messages WHERE chat_id = $1 AND role = 'user'),"
        " EXISTS (SELECT 1 FROM calls WHERE id = $2 AND end_reason = $3),"
        f" {queries.journal_pending('$1', closer='$2')}",
        chat_id, call_id, TAKEN_OVER,
    )  # fmt: skip
    if lost:
        raise TakenOver("another call holds this chat now")
    if not has_user:
        if not waiting:
            await conn.execute("DELETE FROM chats WHERE id = $1", chat_id)
        return False
    await conn.execute(
        "UPDATE chats SET status = $1, end_reason = $2, ended_at = $3,"
        " updated_at = GREATEST(updated_at, $3) WHERE id = $4",
        status, end_reason, at, chat_id,
    )  # fmt: skip
    return True


class PostgresWrites(PostgresReads):
    """The write transactions: records from the writer, a chat's end, summaries, titles, deletes."""

    async def write(self, records: Sequence[Record]) -> WriteResult:
        return await self._transaction(lambda conn: write_records(conn, records, self.clock))

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
            lambda conn: _close_chat(conn, chat_id, status, end_reason, at, call_id)
        )

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
        clause, params = owner_clause(owner, "owner", 4)
        changed = await self._changed(
            "UPDATE chats SET title = $1, updated_at = GREATEST(updated_at, $2)"
            f" WHERE id = $3{clause}",
            title, time.time(), chat_id, *params,
        )  # fmt: skip
        if not changed:
            raise NotFound("no such chat")
        return await self.get_chat(chat_id, owner=owner)

    async def delete_chat(self, chat_id: str, *, owner: OwnerScope) -> None:
        clause, params = owner_clause(owner, "owner", 2)
        where = f"id = $1{clause}"
        if not await self._transaction(lambda conn: delete_chats(conn, where, chat_id, *params)):
            raise NotFound("no such chat")
