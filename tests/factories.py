"""Factories a user would name in `VOXKEEP_FACTORY` (docs/embedding.md), for the tests."""

from __future__ import annotations

import os

from livekit.agents import Agent, AgentSession, JobContext
from livekit.plugins import openai

INSTRUCTIONS = "You are the front desk of the Hotel Lisboa."


class FrontDesk(Agent):
    """A user's agent: it greets the caller on entering, so its first request shows whose
    instructions the session runs."""

    def __init__(self) -> None:
        super().__init__(instructions=INSTRUCTIONS)

    async def on_enter(self) -> None:
        self.session.generate_reply(instructions="Greet the caller.")


async def build(ctx: JobContext) -> tuple[AgentSession[None], Agent]:
    base_url = os.environ["OPENAI_BASE_URL"]
    session: AgentSession[None] = AgentSession(
        vad=ctx.proc.userdata["vad"],
        stt=openai.STT(base_url=base_url),
        llm=openai.LLM(base_url=base_url),
        tts=openai.TTS(base_url=base_url, response_format="pcm"),
    )
    return session, FrontDesk()


def wrong(ctx: JobContext) -> str:
    return "not a session"
