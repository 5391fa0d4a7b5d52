"""How `agentctl` shows things: tables for people, JSON for scripts, ISO 8601 UTC times."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from agent.errors import InvalidInput
from agent.store.records import Chat, Message

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def iso(ts: float | None) -> str | None:
    """A store timestamp as ISO 8601 UTC with milliseconds, e.g. 2026-11-22T04:41:29.123Z."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_duration(text: str) -> float:
    """`90d`, `12h`, `30m`, `45s`, `2w` as seconds."""
    match = _DURATION.match(text.strip())
    if not match:
        raise InvalidInput(f"not a duration: {text!r} (use e.g. 90d, 12h, 30m)")
    return float(match[1]) * _UNIT_S[match[2]]


def chat_json(chat: Chat) -> dict[str, Any]:
    return {
        "id": chat.id,
        "owner": chat.owner,
        "agent_name": chat.agent_name,
        "title": chat.title,
        "status": chat.status,
        "end_reason": chat.end_reason,
        "created_at": iso(chat.created_at),
        "updated_at": iso(chat.updated_at),
        "ended_at": iso(chat.ended_at),
        "message_count": chat.message_count,
        "summary": chat.summary,
        "summary_seq": chat.summary_seq,
        "metadata": chat.metadata,
    }


def message_json(m: Message) -> dict[str, Any]:
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
        "started_at": iso(m.started_at),
        "ended_at": iso(m.ended_at),
        "created_at": iso(m.created_at),
        "prosody": m.prosody,
        "item": m.item,
        "metadata": m.metadata,
    }


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2)


def one_line(text: str | None, width: int) -> str:
    folded = " ".join((text or "").split())
    return folded if len(folded) <= width else folded[: width - 1] + "…"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[("" if v is None else str(v)) for v in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(line.rstrip() for line in lines)


def emit(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
