"""Rows of the SQLite schema ↔ the store's records (DESIGN §3)."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from agent.store.records import Chat, Message, NewMessage

CHAT_COLUMNS = (
    "c.id, c.owner, c.agent_name, c.title, c.status, c.end_reason, c.created_at, c.updated_at,"
    " c.ended_at, c.summary, c.summary_seq, c.metadata,"
    " COALESCE((SELECT MAX(seq) FROM messages m WHERE m.chat_id = c.id), 0)"
)
MESSAGE_COLUMNS = (
    "id, chat_id, call_id, seq, role, content, tool_name, tool_call, tool_result, interrupted,"
    " confidence, started_at, ended_at, created_at, prosody, item, metadata"
)

Row = sqlite3.Row | tuple[Any, ...]


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def chat_from_row(row: Row) -> Chat:
    return Chat(
        id=row[0],
        owner=row[1],
        agent_name=row[2],
        title=row[3],
        status=row[4],
        end_reason=row[5],
        created_at=row[6],
        updated_at=row[7],
        ended_at=row[8],
        summary=row[9],
        summary_seq=row[10],
        metadata=json.loads(row[11]),
        message_count=row[12],
    )


def message_from_row(row: Row) -> Message:
    return Message(
        id=row[0],
        chat_id=row[1],
        call_id=row[2],
        seq=row[3],
        role=row[4],
        content=row[5],
        tool_name=row[6],
        tool_call=_loads(row[7]),
        tool_result=_loads(row[8]),
        interrupted=bool(row[9]),
        confidence=row[10],
        started_at=row[11],
        ended_at=row[12],
        created_at=row[13],
        prosody=_loads(row[14]),
        item=_loads(row[15]),
        metadata=json.loads(row[16]),
    )


def message_to_row(m: NewMessage, seq: int) -> tuple[Any, ...]:
    encoded = m.json_texts()
    return (
        m.id,
        m.chat_id,
        m.call_id,
        seq,
        m.role,
        m.content,
        m.tool_name,
        encoded.get("tool_call"),
        encoded.get("tool_result"),
        int(m.interrupted),
        m.confidence,
        m.started_at,
        m.ended_at,
        m.created_at,
        encoded.get("prosody"),
        encoded.get("item"),
        encoded.get("metadata"),
    )
