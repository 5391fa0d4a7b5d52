"""Changing a call's current chat mid-call: `new_chat` and `resume_chat` (DESIGN §6, §7). The
call's state, records and LLM context move together, and the caller's app is told through
`on_started`."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
from livekit.agents import Agent, AgentSession, llm

from agent.call import CallState
from agent.capture import Capture, ChatEnd
from agent.context import Budget, rebuild
from agent.ids import new_call_id, new_chat_id
from agent.plugins.prosody.baseline import Baseline
from agent.store.base import Store

log = structlog.get_logger(__name__)

INTERRUPT_TIMEOUT_S = 2.0
GREETING = "This is a new conversation: greet the caller briefly, as if for the first time."


@dataclass(frozen=True, slots=True)
class ChatStarted:
    """The `chat.started` event of §6."""

    chat_id: str
    resumed: bool
    message_count: int

    def event(self) -> dict[str, Any]:
        return {"v": 1, "type": "chat.started", "chat_id": self.chat_id,
                "resumed": self.resumed, "message_count": self.message_count}  # fmt: skip


class ChatSwitcher:
    def __init__(
        self,
        state: CallState,
        capture: Capture,
        session: AgentSession[Any],
        agent: Agent,
        store: Store,
        *,
        budget: Budget,
        load_timeout_s: float,
        on_started: Callable[[ChatStarted], None] | None = None,
    ) -> None:
        self._state = state
        self._capture = capture
        self._session = session
        self._agent = agent
        self._store = store
        self._budget = budget
        self._load_timeout_s = load_timeout_s
        self.on_started = on_started
        self.switching = False

    @property
    def chat_id(self) -> str:
        return self._state.chat_id

    async def new_chat(self) -> str | None:
        """Stop the agent mid-sentence, close the chat (kept, or dropped with no user message),
        forget it in the LLM context, start a new chat, and greet as a new conversation.
        Returns the closed chat's id when it was kept."""
        self.switching = True
        try:
            old = await self._leave("new_chat")
            self._enter(new_chat_id(), Baseline(), new=True)
            await self._agent.update_chat_ctx(llm.ChatContext.empty())  # instructions only
            self._started(ChatStarted(self._state.chat_id, resumed=False, message_count=0), old)
            self._session.generate_reply(instructions=GREETING)
            return old
        finally:
            self.switching = False

    async def resume_chat(self, chat_id: str) -> tuple[str | None, int, int]:
        """Close the current chat (end_reason `switched`) and continue `chat_id`, an earlier
        chat of this caller: active again, its newest messages back in the LLM context within
        the budgets, its prosody baseline back. Returns (the closed chat's id if kept, the
        resumed chat's message count, the messages placed in the context)."""
        owner = self._state.owner
        chat = await self._store.get_chat(chat_id, owner=owner)  # NotFound: nothing changes
        self.switching = True
        try:
            if chat_id == self._state.chat_id:  # already here: nothing to change
                in_context = [m for m in self._agent.chat_ctx.messages() if m.role != "system"]
                return None, chat.message_count, len(in_context)
            old = await self._leave("switched")
            chat = await self._store.reopen_chat(chat_id, owner=owner)
            started = time.perf_counter()
            try:
                page = await asyncio.wait_for(
                    self._store.messages(chat_id, owner=owner, limit=self._budget.messages),
                    self._load_timeout_s,
                )
                history = page.messages
            except TimeoutError:  # the call goes on with what it has: nothing, and says so
                log.warning("context.load_timeout", chat_id=chat_id)
                history = []
            ctx, placed = rebuild(
                history, budget=self._budget, summary=chat.summary,
                gap_s=time.time() - chat.updated_at,
            )  # fmt: skip
            baseline = Baseline.from_json(chat.metadata.get("prosody_baseline"))
            self._enter(chat_id, baseline, new=False)
            await self._agent.update_chat_ctx(ctx)
            log.info(
                "chat.resumed", chat_id=chat_id, messages=placed,
                ms=round((time.perf_counter() - started) * 1000, 2),
            )  # fmt: skip
            self._started(ChatStarted(chat_id, resumed=True, message_count=chat.message_count), old)
            return old, chat.message_count, placed
        finally:
            self.switching = False

    async def _leave(self, why: ChatEnd) -> str | None:
        """Stop the agent mid-sentence and close the current chat; its id if it was kept."""
        with contextlib.suppress(RuntimeError, TimeoutError):  # not speaking: nothing to stop
            await asyncio.wait_for(self._session.interrupt(), INTERRUPT_TIMEOUT_S)
        old = self._state.chat_id
        kept = await self._capture.flush_and_close(why)
        return old if kept else None

    def _enter(self, chat_id: str, baseline: Baseline, *, new: bool) -> None:
        """Make `chat_id` the call's chat, held by a new call row (and created when `new`)."""
        state = self._state
        state.chat_id, state.call_id = chat_id, new_call_id()
        state.baseline, state.pending_extra = baseline, None
        self._capture.start_chat(new=new)

    def _started(self, started: ChatStarted, old: str | None) -> None:
        log.info("chat.switched", old_chat_id=old, chat_id=started.chat_id)
        if self.on_started is not None:
            self.on_started(started)
