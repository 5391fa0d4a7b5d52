"""The SQLite write transactions, as plain functions of a connection.

Each runs whole on the store's writer thread between `BEGIN IMMEDIATE` and `COMMIT` (see
`SqliteStore._transaction`): one hop from the event loop per transaction, and once started it
cannot be interrupted halfway by a cancelled caller.
"""

from __future__ import annotations

import functools
import json
import sqlite3
import time
from collections.abc import Sequence
from typing import Any

from voxkeep.core.errors import InvalidInput, NotFound, TakenOver
from voxkeep.store import queries
from voxkeep.store.base import LostHold, OwnerScope, WriteResult
from voxkeep.store.queries import MESSAGE_COLUMNS
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
from voxkeep.store.sqlite.connection import ROWS_PER_PAGE, owner_clause
from voxkeep.store.sqlite.holding import TAKEN_OVER, insert_calls, lost_at, rehome_calls
from voxkeep.store.sqlite.reads import SqliteReads
from voxkeep.store.sqlite.rows import KEY_BITS, message_to_row

_INSERT_CHAT = (
    "INSERT INTO chats (id, owner, agent_name, status, created_at, updated_at, metadata)"
    " VALUES (?, ?, ?, 'active', ?, ?, ?) ON CONFLICT (id) DO NOTHING"
)
_CONTINUE_CHAT = (  # (docs/resume.md: a call that lost its chat goes on in a chat of its own)
    "INSERT INTO chats (id, owner, agent_name, status, created_at, updated_at, metadata)"
    " SELECT ?, owner, agent_name, 'active', ?, ?, json_object('v', 1, 'continues', id)"
    " FROM chats WHERE id = ? ON CONFLICT (id) DO NOTHING"
)
_OPEN_JOURNAL = (
    "INSERT INTO journals (id, host, pid, opened_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING"
)
_END_CALL = "UPDATE calls SET ended_at = ?, end_reason = ? WHERE id = ? AND ended_at IS NULL"
_SET_METADATA = "UPDATE chats SET metadata = json_set(metadata, '$.' || ?, json(?)) WHERE id = ?"
_SET_MEASURED = (
    "UPDATE messages SET prosody = json(?), started_at = COALESCE(started_at, ?),"
    " ended_at = COALESCE(ended_at, ?) WHERE id = ?"
)
_ROW_PARAMS = "(" + ", ".join("?" * 18) + ")"
# Rows per statement. A batch is a handful of statements, however many rows it holds, for two
# reasons. FTS5 flushes its pending terms at every statement inside a trigger, which made per-row
# inserts ~4x slower. And Python's sqlite3 lets go of the GIL at every step of a statement (each
# row of an `executemany`, each row a query returns): with the event loop busy, each step waits
# for the GIL to come back, and a transaction of hundreds of steps committed ~30x slower than
# one of a few (docs/benchmarks.md). 1,024 rows of 18 parameters stay under SQLite's 32,766.
CHUNK = 1024


def _marks(count: int) -> str:
    return ",".join("?" * count)


def _insert_messages_sql(rows: int) -> str:
    return (
        f"INSERT INTO messages (rowid, {MESSAGE_COLUMNS}) VALUES "
        + ", ".join([_ROW_PARAMS] * rows)
        + " ON CONFLICT (id) DO NOTHING"
    )


def _update_chats(
    conn: sqlite3.Connection, assign: str, where: str, values: dict[str, Any]
) -> None:
    """`UPDATE chats SET {assign}` for each chat id in `values`, with `v.value` its value: one
    statement per `CHUNK` chats (values are bound, so a float stays the float it was)."""
    pairs = list(values.items())
    for start in range(0, len(pairs), CHUNK):
        chunk = pairs[start : start + CHUNK]
        conn.execute(
            f"UPDATE chats SET {assign} FROM (SELECT column1 AS id, column2 AS value FROM"
            f" (VALUES {', '.join(['(?, ?)'] * len(chunk))})) AS v"
            f" WHERE chats.id = v.id{where}",
            [x for pair in chunk for x in pair],
        )


def write_records(
    conn: sqlite3.Connection, records: Sequence[Record], offset: float = 0.0
) -> WriteResult:
    """Apply a batch. Chats and calls go first and the rest after the messages, which is the
    order a batch can need: a record only ever refers to a chat or call created before it."""
    chats = [r for r in records if isinstance(r, NewChat)]
    messages = [r for r in records if isinstance(r, NewMessage)]
    calls = call_rows(records)
    if opened := [r for r in records if isinstance(r, JournalOpened)]:
        conn.executemany(_OPEN_JOURNAL, [(r.id, r.host, r.pid, r.opened_at) for r in opened])
    if chats:
        conn.executemany(
            _INSERT_CHAT,
            [
                (
                    c.id,
                    c.owner,
                    c.agent_name,
                    c.created_at,
                    c.created_at,
                    c.json_texts()["metadata"],
                )
                for c in chats
            ],
        )
    if calls:
        insert_calls(conn, calls)
    result = _write_messages(conn, messages, offset) if messages else WriteResult(inserted=0)
    for r in records:
        if isinstance(r, CallEnded):
            conn.execute(_END_CALL, (r.ended_at, r.end_reason, r.call_id))
        elif isinstance(r, ChatMetadataSet):
            conn.execute(_SET_METADATA, (r.key, r.json_texts()["value"], r.chat_id))
        elif isinstance(r, MessageMeasured):
            measured = (r.json_texts()["prosody"], r.started_at, r.ended_at, r.message_id)
            conn.execute(_SET_MEASURED, measured)
        elif isinstance(r, JournalClosed):
            conn.execute("DELETE FROM journals WHERE id = ?", (r.id,))
    return result


def _lost_calls(
    conn: sqlite3.Connection, call_ids: set[str]
) -> tuple[dict[str, tuple[float, LostHold]], set[str]]:
    """Which of `call_ids`, and of their continuations, lost their chat, when and how; and the
    continuation chats their messages may move to."""
    lost = lost_at(conn, call_ids)
    chats, continuations = queries.chains(lost)
    lost.update(lost_at(conn, continuations))
    return lost, chats


def _write_messages(
    conn: sqlite3.Connection, messages: list[NewMessage], offset: float
) -> WriteResult:
    # seq is each chat's next number, given inside this transaction (BEGIN IMMEDIATE makes it
    # exclusive across connections and processes); a replayed id takes no number. A message
    # made after its call lost the chat goes on in the call's continuation chat.
    lost, continuation_chats = _lost_calls(conn, {m.call_id for m in messages if m.call_id})
    wanted = json.dumps(sorted({m.chat_id for m in messages} | continuation_chats))
    # Each query answers in one row (a JSON object or array), not one row per chat or id.
    (last_json,) = conn.execute(  # a correlated MAX per chat is an index lookup
        "SELECT json_group_object(c.id, json_array(c.rowid,"
        " COALESCE((SELECT MAX(seq) FROM messages m WHERE m.chat_id = c.id), 0)))"
        " FROM chats c WHERE c.id IN (SELECT value FROM json_each(?))",
        (wanted,),
    ).fetchone()
    last: dict[str, list[int]] = json.loads(last_json)
    last_seq = {chat_id: seq for chat_id, (_, seq) in last.items()}
    # a chat continued in this batch has no rowid yet: SQLite picks one, and a trigger moves it
    keys = {chat_id: rowid << KEY_BITS for chat_id, (rowid, _) in last.items()}
    seen: set[str] = set()
    for start in range(0, len(messages), CHUNK):
        ids = [m.id for m in messages[start : start + CHUNK]]
        (found,) = conn.execute(
            f"SELECT json_group_array(id) FROM messages WHERE id IN ({_marks(len(ids))})", ids
        ).fetchone()
        seen.update(json.loads(found))
    batch = queries.append(messages, last_seq, seen, {k: at for k, (at, _) in lost.items()}, offset)
    if batch.continued:
        conn.executemany(
            _CONTINUE_CHAT,
            [(chat_id, at, at, source) for chat_id, (source, at) in batch.continued.items()],
        )
    rows = [
        (keys[m.chat_id] | seq if m.chat_id in keys else None, *message_to_row(m, seq))
        for m, seq in batch.live
    ]
    for start in range(0, len(rows), CHUNK):
        chunk = rows[start : start + CHUNK]
        conn.execute(_insert_messages_sql(len(chunk)), [value for row in chunk for value in row])
    _update_chats(conn, "updated_at = MAX(updated_at, v.value)", "", batch.newest)
    _update_chats(conn, "title = v.value", " AND chats.title IS NULL", batch.titles)
    moved = {m: lost[call_id][1] for m, call_id in batch.moved.items()}
    return WriteResult(inserted=len(rows), orphaned=batch.orphaned, moved=moved)


def _close_chat(
    conn: sqlite3.Connection,
    chat_id: str,
    status: ChatStatus,
    end_reason: EndReason,
    at: float,
    call_id: str | None,
) -> bool:
    exists, has_user, lost, waiting = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM chats WHERE id = ?),"
        " EXISTS (SELECT 1 FROM messages WHERE chat_id = ? AND role = 'user'),"
        " EXISTS (SELECT 1 FROM calls WHERE id = ? AND end_reason = ?),"
        f" {queries.journal_pending('?', closer='?')}",
        (chat_id, chat_id, call_id, TAKEN_OVER, chat_id, call_id),
    ).fetchone()
    if not exists:
        raise NotFound("no such chat")
    if lost:
        raise TakenOver("another call holds this chat now")
    if not has_user:
        if not waiting:
            conn.execute("DELETE FROM chats WHERE id = ?", (chat_id,))
        return False
    conn.execute(
        "UPDATE chats SET status = ?, end_reason = ?, ended_at = ?,"
        " updated_at = MAX(updated_at, ?) WHERE id = ?",
        (status, end_reason, at, at, chat_id),
    )
    return True


def delete_chats(conn: sqlite3.Connection, where: str, params: tuple[Any, ...]) -> int:
    """Delete the chats `where` selects, with their calls, messages and search entries; calls
    still holding one go on in their continuation chats. How many were deleted."""
    doomed = json.dumps(
        [row[0] for row in conn.execute(f"SELECT id FROM chats WHERE {where}", params)]
    )
    rehome_calls(conn, doomed)
    return int(
        conn.execute(
            "DELETE FROM chats WHERE id IN (SELECT value FROM json_each(?))", (doomed,)
        ).rowcount
    )


class SqliteWrites(SqliteReads):
    """The write transactions: records from the writer, a chat's end, summaries, titles, deletes."""

    async def write(self, records: Sequence[Record]) -> WriteResult:
        offset = time.time() - self.clock()  # (the database's clock is this machine's)
        result = await self._transaction(
            functools.partial(write_records, records=records, offset=offset)
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
                _close_chat, chat_id=chat_id, status=status, end_reason=end_reason, at=at,
                call_id=call_id,
            )
        )  # fmt: skip

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
        clause, params = owner_clause(owner, "owner")
        changed = await self._changed(
            f"UPDATE chats SET title = ?, updated_at = MAX(updated_at, ?) WHERE id = ?{clause}",
            (title, time.time(), chat_id, *params),
        )
        if not changed:
            raise NotFound("no such chat")
        return await self.get_chat(chat_id, owner=owner)

    async def delete_chat(self, chat_id: str, *, owner: OwnerScope) -> None:
        clause, params = owner_clause(owner, "owner")
        where = f"id = ?{clause}"
        if not await self._transaction(
            functools.partial(delete_chats, where=where, params=(chat_id, *params))
        ):
            raise NotFound("no such chat")
