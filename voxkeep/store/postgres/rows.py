"""Rows of the PostgreSQL schema ↔ the store's records (docs/store.md). jsonb comes back as text
(asyncpg's default) and is parsed here."""

from __future__ import annotations

import json
from typing import Any

from voxkeep.store.queries import MESSAGE_COLUMNS
from voxkeep.store.records import Chat, Message, NewMessage

INSERT_MESSAGE = (
    f"INSERT INTO messages ({MESSAGE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb,"
    " $9::jsonb, $10, $11, $12, $13, $14, $15::jsonb, $16::jsonb, $17::jsonb)"
    " ON CONFLICT (id) DO NOTHING"
)
_JSON_COLUMNS = (7, 8, 14, 15, 16)


def chat_from_row(row: Any) -> Chat:
    return Chat(
        id=row[0], owner=row[1], agent_name=row[2], title=row[3], status=row[4],
        end_reason=row[5], created_at=row[6], updated_at=row[7], ended_at=row[8],
        summary=row[9], summary_seq=row[10], metadata=json.loads(row[11]), message_count=row[12],
    )  # fmt: skip


def message_from_row(row: Any) -> Message:
    values = list(row)
    for i in _JSON_COLUMNS:
        if values[i] is not None:
            values[i] = json.loads(values[i])
    return Message._make(values)


def message_to_row(m: NewMessage, seq: int) -> tuple[Any, ...]:
    encoded = m.json_texts()
    return (
        m.id, m.chat_id, m.call_id, seq, m.role, m.content, m.tool_name,
        encoded.get("tool_call"), encoded.get("tool_result"), m.interrupted, m.confidence,
        m.started_at, m.ended_at, m.created_at, encoded.get("prosody"), encoded.get("item"),
        encoded.get("metadata"),
    )  # fmt: skip
