"""A chat and a message as JSON values, in one place for every reader: the CLI and the exports
(every field, times as ISO 8601 UTC), the console's API (every field, times as store seconds) and
the control protocol and the web app (the short forms a caller's app lists, docs/control.md)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from voxkeep.store.records import Chat, Message

_CHAT_TIMES = ("created_at", "updated_at", "ended_at")
_MESSAGE_TIMES = ("started_at", "ended_at", "created_at")
_CHAT_BRIEF = ("id", "title", "status", "created_at", "updated_at", "message_count")
_MESSAGE_BRIEF = ("seq", "role", "content", "created_at", "interrupted", "prosody")


def iso(ts: float | None) -> str | None:
    """A store timestamp as ISO 8601 UTC with milliseconds, e.g. 2026-11-22T04:41:29.123Z."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def chat_fields(chat: Chat) -> dict[str, Any]:
    """Every field of a chat, times as the store keeps them (UTC Unix seconds)."""
    return {
        "id": chat.id,
        "owner": chat.owner,
        "agent_name": chat.agent_name,
        "title": chat.title,
        "status": chat.status,
        "end_reason": chat.end_reason,
        "created_at": chat.created_at,
        "updated_at": chat.updated_at,
        "ended_at": chat.ended_at,
        "message_count": chat.message_count,
        "summary": chat.summary,
        "summary_seq": chat.summary_seq,
        "metadata": chat.metadata,
    }


def message_fields(m: Message) -> dict[str, Any]:
    """Every field of a message, times as the store keeps them."""
    return {
        "id": m.id,
        "chat_id": m.chat_id,
        "call_id": m.call_id,
        "seq": m.seq,
        "role": m.role,
        "content": m.content,
        "tool_name": m.tool_name,
        "tool_call": m.tool_call,
        "tool_result": m.tool_result,
        "interrupted": m.interrupted,
        "confidence": m.confidence,
        "started_at": m.started_at,
        "ended_at": m.ended_at,
        "created_at": m.created_at,
        "prosody": m.prosody,
        "item": m.item,
        "metadata": m.metadata,
    }


def _with_iso(fields: dict[str, Any], times: tuple[str, ...]) -> dict[str, Any]:
    return {key: iso(value) if key in times else value for key, value in fields.items()}


def chat_json(chat: Chat) -> dict[str, Any]:
    """Every field of a chat, times in ISO 8601 (the CLI's `--json` and the exports)."""
    return _with_iso(chat_fields(chat), _CHAT_TIMES)


def message_json(m: Message) -> dict[str, Any]:
    """Every field of a message, times in ISO 8601 (the CLI's `--json` and the exports)."""
    return _with_iso(message_fields(m), _MESSAGE_TIMES)


def chat_brief(chat: Chat) -> dict[str, Any]:
    """A chat as the caller's app lists it (docs/control.md, `list_chats`)."""
    fields = chat_fields(chat)
    return {key: fields[key] for key in _CHAT_BRIEF}


def message_brief(m: Message) -> dict[str, Any]:
    """A message as the caller's app reads it (docs/control.md, `get_chat`)."""
    fields = message_fields(m)
    return {key: fields[key] for key in _MESSAGE_BRIEF}
