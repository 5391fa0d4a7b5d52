"""Changing a call's current chat mid-call (DESIGN §6 `new_chat`; resuming another chat comes
with the context rebuild of §7). The call's state, records and LLM context move together, and the
caller's app is told through `on_started`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
from livekit.agents import Agent, AgentSession, llm

from agent.call import CallState
from agent.capture import Capture
from agent.ids import new_call_id, new_chat_id

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
        on_started: Callable[[ChatStarted], None] | None = None,
    ) -> None:
        self._state = state
        self._capture = capture
        self._session = session
        self._agent = agent
        self._on_started = on_started
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
            old = self._state.chat_id
            with contextlib.suppress(RuntimeError, TimeoutError):  # not speaking: nothing to stop
                await asyncio.wait_for(self._session.interrupt(), INTERRUPT_TIMEOUT_S)
            kept = await self._capture.flush_and_close("new_chat")
            self._state.chat_id, self._state.call_id = new_chat_id(), new_call_id()
            self._state.pending_extra = None
            self._capture.start_chat()
            await self._agent.update_chat_ctx(llm.ChatContext.empty())  # instructions only
            log.info("chat.switched", old_chat_id=old, chat_id=self._state.chat_id, kept=kept)
            if self._on_started is not None:
                self._on_started(ChatStarted(self._state.chat_id, resumed=False, message_count=0))
            self._session.generate_reply(instructions=GREETING)
            return old if kept else None
        finally:
            self.switching = False
