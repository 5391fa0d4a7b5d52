"""Resume (docs/resume.md): which chat a call asks for, and a chat's newest messages loaded back
into an LLM context within a time budget. The switcher (`voxkeep/call/switch.py`) decides when."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass

import structlog
from livekit.agents import llm

from voxkeep.call.context import Budget, rebuild
from voxkeep.control.room import MAX_CHAT_ID_CHARS, PROSODY_ATTRIBUTE, RESUME_ATTRIBUTE
from voxkeep.core.errors import StoreError
from voxkeep.store.base import Store
from voxkeep.store.records import Chat, Message

log = structlog.get_logger(__name__)


def prosody_opted_out(attributes: Mapping[str, str]) -> bool:
    return attributes.get(PROSODY_ATTRIBUTE, "").strip().lower() == "off"


def _chat_id(value: object) -> str | None:
    if isinstance(value, str) and 1 <= len(value.strip()) <= MAX_CHAT_ID_CHARS:
        return value.strip()
    return None


def requested_chat_id(job_metadata: str | None, attributes: Mapping[str, str]) -> str | None:
    """An explicit chat to resume: `{"chat_id": …}` in the job metadata (`voxkeepctl dispatch
    create --chat-id`), else the caller's `voxkeep.resume_chat_id` attribute. Metadata that is not
    such an object is not a request (it may be the operator's own)."""
    if job_metadata:
        try:
            parsed = json.loads(job_metadata)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict) and (chat_id := _chat_id(parsed.get("chat_id"))):
            return chat_id
    return _chat_id(attributes.get(RESUME_ATTRIBUTE))


def continued_call(job_metadata: str | None) -> str | None:
    """The call this job continues, when another worker's watcher sent it because that call's
    worker died (`{"chat_id": …, "continues": "<call id>"}`, docs/resume.md)."""
    try:
        parsed = json.loads(job_metadata or "")
    except ValueError:
        return None
    found = parsed.get("continues") if isinstance(parsed, dict) else None
    return found if isinstance(found, str) and 0 < len(found) <= MAX_CHAT_ID_CHARS else None


@dataclass(frozen=True, slots=True)
class Loaded:
    """A chat brought back: the context to continue with and what it holds."""

    ctx: llm.ChatContext
    placed: int
    """Stored messages in the context."""
    complete: bool
    """False when the time budget ran out before the messages came: the context holds the
    summary (if any) and nothing else."""
    dropped: bool
    """Messages after the summary that did not fit: the summarizer's cue."""


async def load(
    store: Store, chat: Chat, *, budget: Budget, deadline: float, now: float | None = None
) -> Loaded:
    """The newest messages of `chat` after its summary, within `budget`, read before `deadline`
    (the event loop's clock). Past the deadline the call goes on with what it has."""
    started = time.perf_counter()
    history: list[Message] = []
    complete = True
    try:
        async with asyncio.timeout_at(deadline):
            page = await store.messages(chat.id, owner=chat.owner, limit=budget.messages)
        covered = chat.summary_seq or 0
        history = [m for m in page.messages if m.seq > covered]
    except (TimeoutError, StoreError) as exc:
        complete = False
        log.warning("context.load_failed", chat_id=chat.id, error=type(exc).__name__)
    now = time.time() if now is None else now
    gap_s = now - history[-1].created_at if history else None
    ctx, placed = rebuild(history, budget=budget, summary=chat.summary, gap_s=gap_s)
    after_summary = chat.message_count - (chat.summary_seq or 0)
    log.info(
        "context.loaded", chat_id=chat.id, messages=placed, complete=complete,
        ms=round((time.perf_counter() - started) * 1000, 2),
    )  # fmt: skip
    dropped = complete and after_summary > placed
    return Loaded(ctx=ctx, placed=placed, complete=complete, dropped=dropped)
