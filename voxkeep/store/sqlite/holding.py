"""Which call holds a chat (docs/resume.md), as SQLite write transactions: the claim at call start
or resume, the heartbeat, and the sweeper. Each runs whole on the store's writer thread between
`BEGIN IMMEDIATE` and `COMMIT`, which makes a claim a compare-and-set across processes."""

from __future__ import annotations

import functools
import sqlite3
import time
from typing import get_args

import structlog

from voxkeep.core import metrics
from voxkeep.core.errors import NotFound
from voxkeep.core.ids import continuation_ids
from voxkeep.store import queries
from voxkeep.store.base import ANY_OWNER, Hold, LostHold, OwnerScope, StaleCall, Swept
from voxkeep.store.queries import CHAT_COLUMNS
from voxkeep.store.records import Chat, NewCall
from voxkeep.store.sqlite.reads import SqliteReads
from voxkeep.store.sqlite.rows import chat_from_row

log = structlog.get_logger(__name__)

TAKEN_OVER = "taken_over"
_CONTINUE_EMPTY = (
    "INSERT INTO chats (id, owner, agent_name, status, created_at, updated_at, metadata)"
    " SELECT ?, owner, agent_name, 'active', ?, ?, json_object('v', 1) FROM chats WHERE id = ?"
    " ON CONFLICT (id) DO NOTHING"
)
_INSERT_CALL = (
    "INSERT INTO calls (id, chat_id, room, job_id, participant, started_at, heartbeat_at,"
    " journal) SELECT ?, ?, ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM chats WHERE id = ?)"
    " ON CONFLICT (id) DO NOTHING"
)
_LOST = ",".join(f"'{how}'" for how in get_args(LostHold))


def call_params(c: NewCall) -> tuple[object, ...]:
    """The parameters of `_INSERT_CALL` for one call row (its first heartbeat is its start)."""
    return (
        c.id, c.chat_id, c.room, c.job_id, c.participant, c.started_at, c.started_at, c.journal,
        c.chat_id,
    )  # fmt: skip


def insert_calls(conn: sqlite3.Connection, calls: list[NewCall]) -> None:
    conn.executemany(_INSERT_CALL, [call_params(c) for c in calls])


def _claim_chat(conn: sqlite3.Connection, call: NewCall, owner: str | None, at: float) -> int:
    """Make `call` the one live call of its chat: every other live row of the chat is ended
    `taken_over` at `at` (the database's clock: this machine's), the chat is active again, the
    row is inserted. How many calls lost the chat."""
    found = conn.execute(
        "SELECT 1 FROM chats WHERE id = ?" + ("" if owner is None else " AND owner = ?"),
        (call.chat_id,) if owner is None else (call.chat_id, owner),
    ).fetchone()
    if found is None:
        raise NotFound("no such chat")
    taken = conn.execute(
        "UPDATE calls SET ended_at = ?, end_reason = ?"
        " WHERE chat_id = ? AND ended_at IS NULL AND id != ?",
        (at, TAKEN_OVER, call.chat_id, call.id),
    ).rowcount
    conn.execute(
        "UPDATE chats SET status = 'active', end_reason = NULL, ended_at = NULL,"
        " updated_at = MAX(updated_at, ?) WHERE id = ?",
        (at, call.chat_id),
    )
    insert_calls(conn, [call])
    return int(taken)


def lost_at(conn: sqlite3.Connection, call_ids: set[str]) -> dict[str, tuple[float, LostHold]]:
    """Of `call_ids`, the calls that lost their chat (taken over, or deleted under them): when,
    by the database's clock, and how."""
    if not call_ids:
        return {}
    marks = ",".join("?" * len(call_ids))
    rows = conn.execute(
        f"SELECT id, ended_at, end_reason FROM calls WHERE id IN ({marks})"
        f" AND end_reason IN ({_LOST})",
        tuple(call_ids),
    ).fetchall()
    return {row[0]: (row[1], row[2]) for row in rows}


def _heartbeat(conn: sqlite3.Connection, call_id: str, at: float) -> Hold:
    """Refresh a live call row; or how the call lost its chat. A row not written yet (its
    record still on the way) or ended another way still counts as held: nobody else has it."""
    if conn.execute(
        "UPDATE calls SET heartbeat_at = ? WHERE id = ? AND ended_at IS NULL", (at, call_id)
    ).rowcount:
        return "held"
    lost = lost_at(conn, {call_id})
    return lost[call_id][1] if lost else "held"


def rehome_calls(conn: sqlite3.Connection, doomed: str) -> None:
    """Before the chats `doomed` names (a JSON array of ids) are deleted, move the rows of the
    calls that may still write to them to each call's continuation chat, created empty, where
    the call goes on (docs/resume.md): a call still holding one ends `deleted` (so its heartbeat
    and its next write say so); a call that lost one to a newer call and may not know yet (its
    journal is still open) keeps its end, so what it said after the take-over still finds its
    continuation. A row already in its continuation stays (the call moved on from it)."""
    rows = conn.execute(
        "SELECT id, chat_id, ended_at IS NULL FROM calls"
        " WHERE chat_id IN (SELECT value FROM json_each(?)) AND (ended_at IS NULL"
        "  OR (end_reason = ? AND journal IN (SELECT id FROM journals)))",
        (doomed, TAKEN_OVER),
    ).fetchall()
    now = time.time()
    for call_id, chat_id, live in rows:
        continuation, _ = continuation_ids(call_id)
        if continuation == chat_id:
            continue
        conn.execute(_CONTINUE_EMPTY, (continuation, now, now, chat_id))
        if live:
            conn.execute(
                "UPDATE calls SET ended_at = ?, end_reason = 'deleted' WHERE id = ?", (now, call_id)
            )
        conn.execute("UPDATE calls SET chat_id = ? WHERE id = ?", (continuation, call_id))


def _sweep(conn: sqlite3.Connection, cutoff: float) -> Swept:
    """End the call rows that stopped heartbeating before `cutoff` (`lost`), then end the active
    chats nobody holds and nobody wrote to since `cutoff`: `interrupted`/`lost` when someone
    spoke, deleted when no user message was ever written (docs/store.md), unless a journal that
    one of its calls wrote through may still hold its words (`journals`): then it waits. A
    chat's end is the last moment it was known alive, so the resume window counts from the
    loss, not from the sweep."""
    calls = conn.execute(
        "UPDATE calls SET ended_at = COALESCE(heartbeat_at, started_at), end_reason = 'lost'"
        " WHERE ended_at IS NULL AND COALESCE(heartbeat_at, started_at) < ?",
        (cutoff,),
    ).rowcount
    stale = conn.execute(
        "SELECT c.id, EXISTS (SELECT 1 FROM messages m WHERE m.chat_id = c.id AND m.role = 'user'),"
        " MAX(c.updated_at, COALESCE((SELECT MAX(heartbeat_at) FROM calls k"
        "   WHERE k.chat_id = c.id), 0)),"
        f" {queries.journal_pending('c.id')}"
        " FROM chats c WHERE c.status = 'active' AND c.updated_at < ?"
        " AND NOT EXISTS (SELECT 1 FROM calls k WHERE k.chat_id = c.id AND k.ended_at IS NULL)",
        (cutoff,),
    ).fetchall()
    rules = queries.swept([(row[0], row[1], row[2], row[3]) for row in stale], cutoff)
    conn.executemany(
        "UPDATE chats SET status = 'interrupted', end_reason = 'lost', ended_at = ? WHERE id = ?",
        [(last, chat_id) for chat_id, last in rules.lost.items()],
    )
    conn.executemany("DELETE FROM chats WHERE id = ?", [(chat_id,) for chat_id in rules.empty])
    return rules.result(int(calls))


class SqliteHolding(SqliteReads):
    """Who holds a chat: the claim, the heartbeat, the sweeper's rules."""

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
            functools.partial(_claim_chat, call=call, owner=scope, at=time.time())
        )
        if taken:
            log.info("chat.taken_over", chat_id=call.chat_id, call_id=call.id, calls=taken)
            metrics.TAKEOVERS.labels(backend="sqlite").inc(taken)
        return await self.get_chat(call.chat_id, owner=owner)

    async def heartbeat(self, call_id: str, *, at: float) -> Hold:
        return await self._transaction(functools.partial(_heartbeat, call_id=call_id, at=at))

    async def stale_calls(self, *, stale_before: float, limit: int = 100) -> list[StaleCall]:
        rows = await self._read(
            f"SELECT {queries.STALE_CALL_COLUMNS} FROM calls WHERE ended_at IS NULL"
            " AND room IS NOT NULL AND participant IS NOT NULL"
            " AND COALESCE(heartbeat_at, started_at) < ? ORDER BY 6, 1 LIMIT ?",
            (stale_before, limit),
        )
        return [StaleCall(*row) for row in rows]

    async def claim_stale_call(self, call_id: str, *, stale_before: float) -> bool:
        # one transaction on the writer: a compare-and-set across processes
        changed = await self._changed(
            "UPDATE calls SET ended_at = COALESCE(heartbeat_at, started_at), end_reason = 'lost'"
            " WHERE id = ? AND ended_at IS NULL AND COALESCE(heartbeat_at, started_at) < ?",
            (call_id, stale_before),
        )
        return changed == 1

    async def sweep(self, *, stale_before: float, dry_run: bool = False) -> Swept:
        work = functools.partial(_sweep, cutoff=stale_before)
        return await self._transaction(work, commit=not dry_run)
