"""Reading chats and messages: one chat, pages of chats and of messages, full-text search."""

from __future__ import annotations

from typing import Any

from voxkeep.core.errors import NotFound
from voxkeep.store import queries
from voxkeep.store.base import ANY_OWNER, OwnerScope
from voxkeep.store.postgres.connection import PostgresConnection, owner_clause
from voxkeep.store.postgres.rows import chat_from_row, message_from_row
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


class PostgresReads(PostgresConnection):
    """Reads, scoped by owner (another owner's chat reads as not found)."""

    async def get_chat(self, chat_id: str, *, owner: OwnerScope) -> Chat:
        clause, params = owner_clause(owner, "c.owner", 2)
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
        clause, params = owner_clause(owner, "owner", 4)
        rows = await self._fetch(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE chat_id ="
            f" (SELECT id FROM chats WHERE id = $1{clause}) AND seq < $2"
            " ORDER BY seq DESC LIMIT $3",
            chat_id, 2**31 - 1 if before_seq is None else before_seq, limit, *params,
        )  # fmt: skip
        if not rows:
            await self.get_chat(chat_id, owner=owner)  # NotFound, or truly no messages
        return queries.message_page([message_from_row(row) for row in rows])

    async def prosody_figures(self, chat_id: str, *, owner: OwnerScope) -> list[ProsodyFigures]:
        clause, params = owner_clause(owner, "owner", 2)
        figures = ", ".join(
            f"CASE WHEN jsonb_typeof(prosody #> '{{{group},{name}}}') = 'number'"
            f" THEN (prosody #>> '{{{group},{name}}}')::float8 END"
            for group, name in queries.PROSODY_FIGURES
        )
        rows = await self._fetch(
            f"SELECT seq, created_at, {figures} FROM messages WHERE chat_id ="
            f" (SELECT id FROM chats WHERE id = $1{clause})"
            " AND role = 'user' AND prosody IS NOT NULL ORDER BY seq",
            chat_id, *params,
        )  # fmt: skip
        if not rows:
            await self.get_chat(chat_id, owner=owner)  # NotFound, or truly nothing measured
        return queries.prosody_figures(rows)

    async def search(self, query: str, *, owner: OwnerScope, limit: int = 20) -> list[SearchHit]:
        words = " ".join(queries.search_words(query))
        clause, params = owner_clause(owner, "c.owner", 3)
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
