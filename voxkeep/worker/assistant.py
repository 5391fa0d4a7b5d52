"""Our own agent, for the worker without `VOXKEEP_FACTORY` and for `voxkeepctl simulate`:
instructions from settings, the simulator's tools, and a trace of every LLM request for
`voxkeepctl simulate --trace`. Persistence needs nothing of it: any `Agent` works
(docs/embedding.md)."""

from __future__ import annotations

from collections.abc import AsyncIterable, Callable, Sequence
from typing import Any

from livekit.agents import Agent, ModelSettings, llm
from livekit.agents.types import FlushSentinel

Trace = Callable[[list[dict[str, Any]]], None]
"""Receives each LLM request's messages, as the OpenAI plugin sends them."""


class Assistant(Agent):
    def __init__(
        self, instructions: str, *, tools: Sequence[llm.Tool] = (), trace: Trace | None = None
    ) -> None:
        super().__init__(instructions=instructions, tools=list(tools))
        self._trace = trace

    async def llm_node(
        self, chat_ctx: llm.ChatContext, tools: list[llm.Tool], model_settings: ModelSettings
    ) -> AsyncIterable[llm.ChatChunk | str | FlushSentinel]:
        if self._trace is not None:
            messages, _ = chat_ctx.to_provider_format("openai")
            self._trace(messages)
        async for chunk in Agent.default.llm_node(self, chat_ctx, tools, model_settings):
            yield chunk
