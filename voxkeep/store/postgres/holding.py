"""Which call holds a chat (docs/resume.md), as PostgreSQL transactions: the claim at call start or
resume, the heartbeat, and the sweeper. The chat's row lock makes two claims take turns."""

from __future__ import annotations

from typing import get_args

import asyncpg
import structlog

from voxkeep.core import metrics
from voxkeep.core.errors import NotFound
from voxkeep.core.ids import continuation_ids
from voxkeep.store import queries
from voxkeep.store.base import ANY_OWNER, Hold, LostHold, OwnerScope, StaleCall, Swept
from voxkeep.store.postgres.reads import PostgresReads
from voxkeep.store.postgres.rows import chat_from_row
from voxkeep.store.queries import CHAT_COLUMNS
from voxkeep.store.records import Chat, NewCall

log = structlog.get_logger(__name__)

TAKEN_OVER = "taken_over"
_INSERT_CALL = (
    "INSERT INTO calls (id, chat_id, room, job_id, participant, started_at, heartbeat_at,"
    " journal) SELECT $1, $2, $3, $4, $5, $6, $6, $7"
    " WHERE EXISTS (SELECT 1 FROM chats WHERE id = $2) ON CONFLICT (id) DO NOTHING"
)
_CONTINUE_EMPTY = (
    "INSERT INTO chats (id, owner, agent_name, status, created_at, updated_at, metadata)"
    " SELECT $1, owner, agent_name, 'active', $2, $2, '{\"v\": 1}'::jsonb FROM chats"
    " WHERE id = $3 ON CONFLICT (id) DO NOTHING"
)
_DB_NOW = "SELECT EXTRACT(EPOCH FROM clock_timestamp())::float8"


def call_params(c: NewCall) -> tuple[object, ...]:
    return (c.id, c.chat_id, c.room, c.job_id, c.participant, c.started_at, c.journal)


async def insert_calls(conn: asyncpg.Connection, calls: list[NewCall]) -> None:
    await conn.executemany(_INSERT_CALL, [call_params(c) for c in calls])


async def lost_at(
    conn: asyncpg.Connection, call_ids: set[str]
) -> dict[str, tuple[float, LostHold]]:
    """See `lost_at` in `voxkeep/store/sqlite/holding.py`."""
    if not call_ids:
        return {}
    rows = await conn.fetch(
        "SELECT id, ended_at, end_reason FROM calls WHERE id = ANY($1::text[])"
        " AND end_reason = ANY($2::text[])",
        list(call_ids), list(get_args(LostHold)),
    )  # fmt: skip
    return {row[0]: (row[1], row[2]) for row in rows}


async def rehome_calls(conn: asyncpg.Connection, doomed: list[str]) -> None:
    """See `rehome_calls` in `voxkeep/store/sqlite/holding.py`."""
    rows = await conn.fetch(
        "SELECT id, chat_id, ended_at IS NULL FROM calls WHERE chat_id = ANY($1::text[])"
        " AND (ended_at IS NULL OR (end_reason = $2 AND journal IN (SELECT id FROM journals)))"
        " ORDER BY id FOR UPDATE",
        doomed, TAKEN_OVER,
    )  # fmt: skip
    if not rows:
        return
    now = await conn.fetchval(_DB_NOW)
    for call_id, chat_id, live in rows:
        continuation, _ = continuation_ids(call_id)
        if continuation == chat_id:
            continue
        await conn.execute(_CONTINUE_EMPTY, continuation, now, chat_id)
        if live:
            await conn.execute(
                "UPDATE calls SET ended_at = $1, end_reason = 'deleted' WHERE id = $2", now, call_id
            )
        await conn.execute("UPDATE calls SET chat_id = $1 WHERE id = $2", continuation, call_id)


async def _claim_chat(conn: asyncpg.Connection, call: NewCall, owner: str | None) -> int:
    """See `Store.claim_chat`: the chat's row lock makes two claims take turns. The moment of
    the take-over is read from the database's clock, which every worker's writes compare with."""
    found = await conn.fetchval("SELECT owner FROM chats WHERE id = $1 FOR UPDATE", call.chat_id)
    if found is None or (owner is not None and found != owner):
        raise NotFound("no such chat")
    at = await conn.fetchval(_DB_NOW)
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
    await conn.execute(_INSERT_CALL, *call_params(call))
    return int(taken.rsplit(" ", 1)[-1])


async def _heartbeat(conn: asyncpg.Connection, call_id: str, at: float) -> Hold:
    changed = await conn.execute(
        "UPDATE calls SET heartbeat_at = $1 WHERE id = $2 AND ended_at IS NULL", at, call_id
    )
    if changed != "UPDATE 0":
        return "held"
    lost = await lost_at(conn, {call_id})
    return lost[call_id][1] if lost else "held"


async def _sweep(conn: asyncpg.Connection, cutoff: float) -> Swept:
    """See `_sweep` in `voxkeep/store/sqlite/holding.py`: the same rules."""
    calls = await conn.execute(
        "UPDATE calls SET ended_at = COALESCE(heartbeat_at, started_at), end_reason = 'lost'"
        " WHERE ended_at IS NULL AND COALESCE(heartbeat_at, started_at) < $1",
        cutoff,
    )
    stale = await conn.fetch(
        "SELECT c.id, EXISTS (SELECT 1 FROM messages m WHERE m.chat_id = c.id AND m.role = 'user'),"
        " GREATEST(c.updated_at, COALESCE((SELECT MAX(heartbeat_at) FROM calls k"
        "   WHERE k.chat_id = c.id), 0)),"
        f" {queries.journal_pending('c.id')}"
        " FROM chats c WHERE c.status = 'active' AND c.updated_at < $1"
        " AND NOT EXISTS (SELECT 1 FROM calls k WHERE k.chat_id = c.id AND k.ended_at IS NULL)"
        " ORDER BY c.id FOR UPDATE OF c",
        cutoff,
    )
    rules = queries.swept([(row[0], row[1], row[2], row[3]) for row in stale], cutoff)
    await conn.executemany(
        "UPDATE chats SET status = 'interrupted', end_reason = 'lost', ended_at = $1 WHERE id = $2",
        [(last, chat_id) for chat_id, last in rules.lost.items()],
    )
    await conn.executemany("DELETE FROM chats WHERE id = $1", [(c,) for c in rules.empty])
    return rules.result(int(calls.rsplit(" ", 1)[-1]))


class PostgresHolding(PostgresReads):
    """Who holds a chat: the claim, the heartbeat, the sweeper's rules."""

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
        taken = await self._transaction(lambda conn: _claim_chat(conn, call, scope))
        if taken:
            log.info("chat.taken_over", chat_id=call.chat_id, call_id=call.id, calls=taken)
            metrics.TAKEOVERS.labels(backend="postgres").inc(taken)
        return await self.get_chat(call.chat_id, owner=owner)

    async def heartbeat(self, call_id: str, *, at: float) -> Hold:
        return await self._transaction(lambda conn: _heartbeat(conn, call_id, at))

    async def stale_calls(self, *, stale_before: float, limit: int = 100) -> list[StaleCall]:
        rows = await self._fetch(
            f"SELECT {queries.STALE_CALL_COLUMNS} FROM calls WHERE ended_at IS NULL"
            " AND room IS NOT NULL AND participant IS NOT NULL"
            " AND COALESCE(heartbeat_at, started_at) < $1 ORDER BY 6, 1 LIMIT $2",
            stale_before, limit,
        )  # fmt: skip
        return [StaleCall(*row) for row in rows]

    async def claim_stale_call(self, call_id: str, *, stale_before: float) -> bool:
        # one statement: the row's lock makes concurrent claims take turns, and the second
        # finds the call ended
        changed = await self._changed(
            "UPDATE calls SET ended_at = COALESCE(heartbeat_at, started_at), end_reason = 'lost'"
            " WHERE id = $1 AND ended_at IS NULL AND COALESCE(heartbeat_at, started_at) < $2",
            call_id, stale_before,
        )  # fmt: skip
        return changed == 1

    async def sweep(self, *, stale_before: float, dry_run: bool = False) -> Swept:
        return await self._transaction(lambda conn: _sweep(conn, stale_before), commit=not dry_run)
