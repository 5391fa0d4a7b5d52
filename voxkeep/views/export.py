"""Chat exports (`voxkeepctl chats export` and the console): Markdown for people, JSON and
JSONL for tools."""

from __future__ import annotations

import json
from collections.abc import Sequence

from voxkeep.store.records import Chat, Message
from voxkeep.views.chat import chat_json, iso, message_json

FORMATS = ("md", "json", "jsonl")


def to_json(chat: Chat, messages: Sequence[Message]) -> str:
    body = {"chat": chat_json(chat), "messages": [message_json(m) for m in messages]}
    return json.dumps(body, ensure_ascii=False, indent=2) + "\n"


def to_jsonl(chat: Chat, messages: Sequence[Message]) -> str:
    lines = [{"type": "chat", **chat_json(chat)}]
    lines += [{"type": "message", **message_json(m)} for m in messages]
    return "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)


def to_markdown(chat: Chat, messages: Sequence[Message]) -> str:
    out = [
        f"# {chat.title or 'Untitled chat'}",
        "",
        f"- id: `{chat.id}`",
        f"- owner: `{chat.owner}`",
        f"- status: {chat.status}" + (f" ({chat.end_reason})" if chat.end_reason else ""),
        f"- created: {iso(chat.created_at)}",
        f"- updated: {iso(chat.updated_at)}",
        f"- messages: {chat.message_count}",
        "",
    ]
    if chat.summary:
        out += ["> Summary of earlier messages: " + " ".join(chat.summary.split()), ""]
    for m in messages:
        label = m.tool_name if m.role == "tool" and m.tool_name else m.role
        flags = " *(interrupted)*" if m.interrupted else ""
        out.append(f"**{m.seq}. {label}** · {iso(m.created_at)}{flags}")
        out.append("")
        if m.content:
            out.append(m.content)
        for name, value in (("call", m.tool_call), ("result", m.tool_result)):
            if value is not None:
                out += [f"{name}:", "```json", json.dumps(value, ensure_ascii=False), "```"]
        out.append("")
    return "\n".join(out)


def render(fmt: str, chat: Chat, messages: Sequence[Message]) -> str:
    return {"md": to_markdown, "json": to_json, "jsonl": to_jsonl}[fmt](chat, messages)
