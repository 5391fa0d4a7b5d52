"""Rows of the SQLite schema ↔ the store's records (docs/store.md)."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from voxkeep.store.records import Chat, Message, NewMessage

Row = sqlite3.Row | tuple[Any, ...]

KEY_BITS = 24
"""A message's rowid is its chat's rowid << KEY_BITS | its seq (migration 0006), and so is its
key in the search index, which holds each chat's words as one range of keys."""


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


_JSON_COLUMNS = (7, 8, 14, 15)  # tool_call, tool_result, prosody, item
_INTERRUPTED, _METADATA = 9, 16
_PLAIN_METADATA = '{"v":1}'  # what nearly every message carries: not worth a parse


def message_from_row(row: Row) -> Message:
    values = list(row)
    for i in _JSON_COLUMNS:
        if values[i] is not None:
            values[i] = json.loads(values[i])
    values[_INTERRUPTED] = bool(values[_INTERRUPTED])
    metadata = values[_METADATA]
    values[_METADATA] = {"v": 1} if metadata == _PLAIN_METADATA else json.loads(metadata)
    return Message._make(values)


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
