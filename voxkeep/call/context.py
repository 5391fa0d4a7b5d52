"""Rebuilding the LLM context from stored messages (docs/resume.md), and compacting a live
call's context once its older part is summarized, as pure functions.

The newest messages are kept first, within a token estimate and a message count; a tool call
and its result are kept or dropped together. Stored text is untrusted: it only ever becomes a
user, assistant or tool item, never a system or developer message.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from livekit.agents import llm

from voxkeep.store.records import Message

SUMMARY_PREFIX = "Summary of our earlier conversation: "
PER_MESSAGE_TOKENS = 4


@dataclass(frozen=True, slots=True)
class Budget:
    tokens: int = 4000
    messages: int = 60


def estimate_tokens(text: str | None) -> int:
    """About four characters a token, plus each message's overhead."""
    return (len(text) + 3) // 4 + PER_MESSAGE_TOKENS if text else PER_MESSAGE_TOKENS


def _item(m: Message) -> llm.ChatItem | None:
    """A stored message as a LiveKit item, or None when it cannot be one safely."""
    if m.role == "user" and m.content:
        return llm.ChatMessage(id=m.id, role="user", content=[m.content], created_at=m.created_at)
    if m.role == "assistant" and m.content:
        return llm.ChatMessage(
            id=m.id, role="assistant", content=[m.content], interrupted=m.interrupted,
            created_at=m.created_at,
        )  # fmt: skip
    call, result = m.tool_call or {}, m.tool_result or {}
    if m.role == "tool" and _strings(call, "call_id", "name", "arguments"):
        return llm.FunctionCall(
            id=m.id, call_id=call["call_id"], name=call["name"], arguments=call["arguments"],
            created_at=m.created_at,
        )  # fmt: skip
    if m.role == "tool" and _strings(result, "call_id", "output"):
        return llm.FunctionCallOutput(
            id=m.id, call_id=result["call_id"], name=m.tool_name or "", output=result["output"],
            is_error=bool(result.get("is_error")), created_at=m.created_at,
        )  # fmt: skip
    return None  # system messages and anything malformed stay out of the context


def _strings(obj: dict[str, Any], *keys: str) -> bool:
    return all(isinstance(obj.get(k), str) for k in keys)


_Unit = list[tuple[llm.ChatItem, int]]


def _units(messages: Sequence[Message]) -> list[_Unit]:
    """Items with their token estimates, grouped so a tool call and its result are one unit.
    A result whose call is not in the window is left out (a provider refuses it alone)."""
    units: list[_Unit] = []
    open_calls: dict[str, _Unit] = {}
    for m in messages:
        item = _item(m)
        if item is None:
            continue
        if isinstance(item, llm.FunctionCall):
            call_unit: _Unit = [(item, estimate_tokens(item.arguments))]
            open_calls[item.call_id] = call_unit
            units.append(call_unit)
        elif isinstance(item, llm.FunctionCallOutput):
            answered = open_calls.pop(item.call_id, None)
            if answered is not None:
                answered.append((item, estimate_tokens(item.output)))
        else:
            units.append([(item, estimate_tokens(m.content))])
    return [u for u in units if not isinstance(u[-1][0], llm.FunctionCall)]  # calls never answered


def rebuild(
    messages: Sequence[Message],
    *,
    budget: Budget,
    summary: str | None = None,
    gap_s: float | None = None,
) -> tuple[llm.ChatContext, int]:
    """The context to resume with (the agent's instructions are added by the session), and
    how many stored messages it holds. `messages` are the newest of the chat, oldest first."""
    tokens = estimate_tokens(summary) if summary else 0
    count = 0
    kept: list[_Unit] = []
    for unit in reversed(_units(messages)):
        cost = sum(t for _, t in unit)
        if count + len(unit) > budget.messages or tokens + cost > budget.tokens:
            break
        kept.append(unit)
        tokens += cost
        count += len(unit)
    ctx = llm.ChatContext.empty()
    if summary:
        ctx.add_message(role="assistant", content=SUMMARY_PREFIX + summary)
    for unit in reversed(kept):
        ctx.items.extend(item for item, _ in unit)
    if gap_s is not None and gap_s >= 60:
        ctx.add_message(role="system", content=f"(The conversation resumed after {gap(gap_s)}.)")
    return ctx, count


def compacted(ctx: llm.ChatContext, summary: str, upto_id: str) -> llm.ChatContext | None:
    """A live call's context once its older part is summarized: what was said up to and
    including item `upto_id` (and any earlier summary) replaced by `summary`, everything else
    kept in place. None when that item is not in the context (a switch or a resume moved it on):
    then there is nothing to replace."""
    ids = [item.id for item in ctx.items]
    if upto_id not in ids:
        return None
    cut = ids.index(upto_id) + 1
    head = [item for item in ctx.items[:cut] if not _said(item)]  # instructions, gaps, handoffs
    tail = ctx.items[cut:]
    calls = {item.call_id for item in tail if isinstance(item, llm.FunctionCall)}
    tail = [i for i in tail if not isinstance(i, llm.FunctionCallOutput) or i.call_id in calls]
    told = llm.ChatMessage(role="assistant", content=[SUMMARY_PREFIX + summary])
    return llm.ChatContext([*head, told, *tail])


def _said(item: llm.ChatItem) -> bool:
    """A turn of the conversation: a user or assistant message, a tool call or its result."""
    if isinstance(item, llm.ChatMessage):
        return item.role in ("user", "assistant")
    return isinstance(item, (llm.FunctionCall, llm.FunctionCallOutput))


def gap(seconds: float) -> str:
    minutes = round(seconds / 60)
    if minutes < 120:
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    hours = round(seconds / 3600)
    if hours < 48:
        return f"{hours} hours"
    return f"{round(seconds / 86400)} days"
