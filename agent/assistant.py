"""The assistant agent: instructions from settings, prosody tapped from the audio the
recognizer hears, and a trace of every LLM request for `agentctl simulate --trace`."""

from __future__ import annotations

from collections.abc import AsyncIterable, Callable, Sequence
from typing import Any

import structlog
from livekit import rtc
from livekit.agents import Agent, ModelSettings, llm, stt
from livekit.agents.types import FlushSentinel

from agent.call import CallState
from agent.plugins.prosody.stream import ProsodyStream

log = structlog.get_logger(__name__)

SPOKEN_KEY = "spoken_at"
"""`ChatMessage.extra` key: [start, end] of the caller's speech, wall clock, from our VAD (the
session's own speaking times are missing when its VAD anchors disagree)."""

Trace = Callable[[list[dict[str, Any]]], None]
"""Receives each LLM request's messages, as the OpenAI plugin sends them."""


class Assistant(Agent):
    def __init__(
        self,
        instructions: str,
        state: CallState,
        *,
        prosody: ProsodyStream | None = None,
        tools: Sequence[llm.Tool] = (),
        trace: Trace | None = None,
    ) -> None:
        super().__init__(instructions=instructions, tools=list(tools))
        self._state = state
        self._prosody = prosody
        self._trace = trace

    async def stt_node(
        self, audio: AsyncIterable[rtc.AudioFrame], model_settings: ModelSettings
    ) -> AsyncIterable[stt.SpeechEvent | str]:
        source = self._prosody.tee(audio) if self._prosody is not None else audio
        async for event in Agent.default.stt_node(self, source, model_settings):
            yield event

    async def on_user_turn_completed(
        self, turn_ctx: llm.ChatContext, new_message: llm.ChatMessage
    ) -> None:
        if self._prosody is None:
            return
        text = new_message.text_content or ""
        try:
            heard = await self._prosody.take(text)
        except Exception as exc:  # noqa: BLE001 - prosody is an extra: the turn goes on without it
            log.error("prosody.failed", item_id=new_message.id, error=type(exc).__name__)
            return
        if heard is None:
            return
        prosody = self._state.baseline.relate(heard.prosody)
        extra = {"prosody": prosody, SPOKEN_KEY: [heard.started_at, heard.ended_at]}
        new_message.extra.update(extra)
        self._state.pending_extra = (text, extra)

    async def llm_node(
        self, chat_ctx: llm.ChatContext, tools: list[llm.Tool], model_settings: ModelSettings
    ) -> AsyncIterable[llm.ChatChunk | str | FlushSentinel]:
        if self._trace is not None:
            messages, _ = chat_ctx.to_provider_format("openai")
            self._trace(messages)
        async for chunk in Agent.default.llm_node(self, chat_ctx, tools, model_settings):
            yield chunk
