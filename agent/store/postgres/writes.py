"""The PostgreSQL write transactions, as functions of a connection already in a transaction.
The same rules as SQLite's (`agent/store/sqlite/writes.py`, `holding.py`); where SQLite has one
writer at a time, these take row locks on the chats they change, always in id order."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from agent.errors import NotFound, TakenOver
from agent.store import queries
from agent.store.base import Swept, WriteResult
from agent.store.postgres.rows import INSERT_MESSAGE, message_to_row
from agent.store.records import (
    CallEnded,
    ChatMetadataSet,
    ChatStatus,
    EndReason,
    MessageMeasured,
    NewCall,
    NewChat,
    NewMessage,
    Record,
)

TAKEN_OVER = "taken_over"
_INSERT_CHAT = (
    "INSERT INTO chats (id, owner, agent_name, status, created_at, updated_at, metadata)"
    " VALUES ($1, $2, $3, 'active', $4, $4, $5::jsonb) ON CONFLICT (id) DO NOTHING"
)
_INSERT_CALL = (
    "INSERT INTO calls (id, chat_id, room, job_id, participant, started_at, heartbeat_at)"
    " SELECT $1, $2, $3, $4, $5, $6, $6 WHERE EXISTS (SELECT 1 FROM chats WHERE id = $2)"
    " ON CONFLICT (id) DO NOTHING"
)


def _call_params(c: NewCall) -> tuple[object, ...]:
    return (c.id, c.chat_id, c.room, c.job_id, c.participant, c.started_at)


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


async def _taken_over_at(conn: asyncpg.Connection, call_ids: set[str]) -> dict[str, float]:
    if not call_ids:
        return {}
    rows = await conn.fetch(
        "SELECT id, ended_at FROM calls WHERE id = ANY($1::text[]) AND end_reason = $2",
        list(call_ids), TAKEN_OVER,
    )  # fmt: skip
    return {row[0]: row[1] for row in rows}


async def write_records(
    conn: asyncpg.Connection, records: Sequence[Record], refuse_taken_over: bool
) -> WriteResult:
    """Apply a batch: chats and calls first, then the messages, then the rest (as SQLite)."""
    chats = [r for r in records if isinstance(r, NewChat)]
    calls = [r for r in records if isinstance(r, NewCall)]
    messages = [r for r in records if isinstance(r, NewMessage)]
    if chats:
        await conn.executemany(
            _INSERT_CHAT,
            [
                (c.id, c.owner, c.agent_name, c.created_at, c.json_texts()["metadata"])
                for c in chats
            ],
        )
    if calls:
        await conn.executemany(_INSERT_CALL, [_call_params(c) for c in calls])
    result = WriteResult(inserted=0)
    if messages:
        result = await _write_messages(conn, messages, refuse_taken_over)
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
    return result


async def _write_messages(
    conn: asyncpg.Connection, messages: list[NewMessage], refuse_taken_over: bool
) -> WriteResult:
    last_seq = await _lock_chats(conn, {m.chat_id for m in messages})
    calls = list({m.call_id for m in messages if m.call_id}) if refuse_taken_over else []
    stored: set[str] = set()
    lost_at: dict[str, float] = {}
    for kind, key, ended_at in await conn.fetch(  # replays and lost calls: one round trip
        "SELECT 'message', id, NULL::float8 FROM messages WHERE id = ANY($1::text[])"
        " UNION ALL SELECT 'call', id, ended_at FROM calls"
        " WHERE id = ANY($2::text[]) AND end_reason = $3",
        [m.id for m in messages], calls, TAKEN_OVER,
    ):  # fmt: skip
        if kind == "message":
            stored.add(key)
        else:
            lost_at[key] = ended_at
    batch = queries.append(messages, last_seq, stored, lost_at)
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
    return WriteResult(inserted=len(batch.live), orphaned=batch.orphaned, refused=batch.refused)


async def close_chat(
    conn: asyncpg.Connection,
    chat_id: str,
    status: ChatStatus,
    end_reason: EndReason,
    at: float,
    call_id: str | None,
) -> bool:
    if not await _lock_chats(conn, {chat_id}):
        raise NotFound("no such chat")
    has_user, lost = await conn.fetchrow(
        "SELECT EXISTS (SELECT 1 FROM messages WHERE chat_id = $1 AND role = 'user'),"
        " EXISTS (SELECT 1 FROM calls WHERE id = $2 AND end_reason = $3)",
        chat_id, call_id, TAKEN_OVER,
    )  # fmt: skip
    if lost:
        raise TakenOver("another call holds this chat now")
    if not has_user:
        await conn.execute("DELETE FROM chats WHERE id = $1", chat_id)
        return False
    await conn.execute(
        "UPDATE chats SET status = $1, end_reason = $2, ended_at = $3,"
        " updated_at = GREATEST(updated_at, $3) WHERE id = $4",
        status, end_reason, at, chat_id,
    )  # fmt: skip
    return True


async def claim_chat(conn: asyncpg.Connection, call: NewCall, owner: str | None, at: float) -> int:
    """See `Store.claim_chat`: the chat's row lock makes two claims take turns."""
    found = await conn.fetchval("SELECT owner FROM chats WHERE id = $1 FOR UPDATE", call.chat_id)
    if found is None or (owner is not None and found != owner):
        raise NotFound("no such chat")
    taken = await conn.execute(
        "UPDATE calls SET ended_at = $1, end_reason = $2"
        " WHERE chat_id = $3 AND ended_at IS NULL AND id != $4",
        at, TAKEN_OVER, call.chat_id, call.id,
    )  # fmt: skip
    await conn.execute(
        "UPDATE chats SET status = 'active', end_reason = NULL, ended_at = NULL,"
        " updated_at = GREATEST(updated_at, $1) WHERE id = $2",
        at, call.chat_id,
    )  # fmt: skip
    await conn.execute(_INSERT_CALL, *_call_params(call))
    return int(taken.rsplit(" ", 1)[-1])


async def heartbeat(conn: asyncpg.Connection, call_id: str, at: float) -> bool:
    changed = await conn.execute(
        "UPDATE calls SET heartbeat_at = $1 WHERE id = $2 AND ended_at IS NULL", at, call_id
    )
    if changed != "UPDATE 0":
        return True
    return not await _taken_over_at(conn, {call_id})


async def sweep(conn: asyncpg.Connection, cutoff: float) -> Swept:
    """See `agent/store/sqlite/holding.py: sweep`: the same rules."""
    calls = await conn.execute(
        "UPDATE calls SET ended_at = COALESCE(heartbeat_at, started_at), end_reason = 'lost'"
        " WHERE ended_at IS NULL AND COALESCE(heartbeat_at, started_at) < $1",
        cutoff,
    )
    stale = await conn.fetch(
        "SELECT c.id, EXISTS (SELECT 1 FROM messages m WHERE m.chat_id = c.id AND m.role = 'user'),"
        " GREATEST(c.updated_at, COALESCE((SELECT MAX(heartbeat_at) FROM calls k"
        "   WHERE k.chat_id = c.id), 0))"
        " FROM chats c WHERE c.status = 'active' AND c.updated_at < $1"
        " AND NOT EXISTS (SELECT 1 FROM calls k WHERE k.chat_id = c.id AND k.ended_at IS NULL)"
        " ORDER BY c.id FOR UPDATE OF c",
        cutoff,
    )
    stale = [row for row in stale if row[2] < cutoff]
    lost = [(row[2], row[0]) for row in stale if row[1]]
    empty = [(row[0],) for row in stale if not row[1]]
    await conn.executemany(
        "UPDATE chats SET status = 'interrupted', end_reason = 'lost', ended_at = $1 WHERE id = $2",
        lost,
    )
    await conn.executemany("DELETE FROM chats WHERE id = $1", empty)
    return Swept(
        calls_lost=int(calls.rsplit(" ", 1)[-1]), chats_lost=len(lost), chats_deleted=len(empty)
    )
