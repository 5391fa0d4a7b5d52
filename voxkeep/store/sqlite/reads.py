"""Reading chats and messages: one chat, pages of chats and of messages, full-text search."""

from __future__ import annotations

import json
from typing import Any

from voxkeep.core.errors import NotFound
from voxkeep.store import queries
from voxkeep.store.base import OwnerScope
from voxkeep.store.queries import CHAT_COLUMNS, MESSAGE_COLUMNS
from voxkeep.store.records import (
    Chat,
    ChatFilter,
    ChatPage,
    ChatStatus,
    MessagePage,
    ProsodyFigures,
    SearchHit,
)
from voxkeep.store.sqlite.connection import SqliteConnection, owner_clause
from voxkeep.store.sqlite.rows import KEY_BITS, chat_from_row, message_from_row

# Chats whose messages match (one parameter). A message's key in the search index is its chat's
# rowid << KEY_BITS | its seq (migration 0006), so a match names its chat without a lookup in
# `messages` (which was most of a common word's cost: one per match).
_SAYING = (
    f" AND c.rowid IN (SELECT DISTINCT rowid >> {KEY_BITS} FROM messages_fts"
    " WHERE messages_fts MATCH ?)"
)


class SqliteReads(SqliteConnection):
    """Reads, scoped by owner (another owner's chat reads as not found)."""

    async def get_chat(self, chat_id: str, *, owner: OwnerScope) -> Chat:
        clause, params = owner_clause(owner)
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
        clause, params = owner_clause(owner)
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
            where += _SAYING
            args.append(queries.fts_query(filters.text))
        if cursor is not None:
            updated_at, last_id = queries.decode_cursor(cursor)
            where += " AND (c.updated_at < ? OR (c.updated_at = ? AND c.id < ?))"
            args += [updated_at, updated_at, last_id]
        # the page's chats first, their columns (a message count each) after: a sorted match
        # would otherwise count the messages of every chat it sorts
        rows = await self._read(
            f"SELECT {CHAT_COLUMNS} FROM (SELECT c.rowid AS page_rowid FROM chats c {where}"
            " ORDER BY c.updated_at DESC, c.id DESC LIMIT ?) JOIN chats c ON c.rowid = page_rowid"
            " ORDER BY c.updated_at DESC, c.id DESC",
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
        clause, params = owner_clause(owner, "owner")
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

    async def prosody_figures(self, chat_id: str, *, owner: OwnerScope) -> list[ProsodyFigures]:
        clause, params = owner_clause(owner, "owner")
        # every figure in one pass over the row's JSON: a JSON array of them, typed in Python
        paths = ", ".join(f"'$.{group}.{name}'" for group, name in queries.PROSODY_FIGURES)
        rows = await self._read(
            f"SELECT seq, created_at, json_extract(prosody, {paths}) FROM messages"
            f" WHERE chat_id = (SELECT id FROM chats WHERE id = ?{clause})"
            " AND role = 'user' AND prosody IS NOT NULL ORDER BY seq",
            (chat_id, *params),
        )
        if not rows:
            await self.get_chat(chat_id, owner=owner)  # NotFound, or truly nothing measured
        return queries.prosody_figures((seq, at, *json.loads(figures)) for seq, at, figures in rows)

    async def search(self, query: str, *, owner: OwnerScope, limit: int = 20) -> list[SearchHit]:
        match = queries.fts_query(query)
        clause, params = owner_clause(owner)
        rows = await self._read(
            "SELECT m.chat_id, c.owner, m.id, m.seq, m.role, m.created_at,"
            " snippet(messages_fts, 0, '[', ']', '…', 12)"
            " FROM messages_fts JOIN messages m ON m.rowid = messages_fts.rowid"
            f" JOIN chats c ON c.id = m.chat_id WHERE messages_fts MATCH ?{clause}"
            " ORDER BY rank LIMIT ?",
            (match, *params, limit),
        )
        return [SearchHit(*row) for row in rows]
