"""Your own agent, with persistence: a hotel concierge with a function tool and a handoff to the
spa, whose every word is stored, whose callers can start a new chat from their app, and who
picks up where a caller left off when they call back (docs/embedding.md).

    python examples/concierge.py start   # or dev; settings as for the worker (config/example.env)
"""

from __future__ import annotations

from livekit.agents import (
    Agent,
    AgentServer,
    AgentSession,
    JobContext,
    JobProcess,
    cli,
    function_tool,
    llm,
)
from livekit.plugins import openai, silero

from voxkeep import ChatHistory, run_background

history = ChatHistory()  # the store and the options from VOXKEEP_* settings


class Concierge(Agent):
    def __init__(self) -> None:
        super().__init__(instructions="You are the concierge of the Hotel Lisboa. Be brief.")

    @function_tool
    async def book_table(self, guests: int, time: str) -> str:
        """Book a table in the hotel's restaurant."""
        return f"A table for {guests} at {time} is booked."

    @function_tool
    async def transfer_to_spa(self) -> tuple[Agent, str]:
        """Hand the guest over to the spa, for treatments and massages."""
        return Spa(chat_ctx=self.chat_ctx), "Transferring you to the spa."


class Spa(Agent):
    def __init__(self, chat_ctx: llm.ChatContext) -> None:
        super().__init__(
            instructions="You are the spa desk of the Hotel Lisboa.", chat_ctx=chat_ctx
        )


def prewarm(proc: JobProcess) -> None:
    proc.userdata["vad"] = silero.VAD.load()


server = AgentServer(setup_fnc=prewarm)
run_background(server)  # the sweeper, retention and webhooks, in this worker's main process


@server.rtc_session()
async def entrypoint(ctx: JobContext) -> None:
    session: AgentSession[None] = AgentSession(
        vad=ctx.proc.userdata["vad"],
        stt=openai.STT(),
        llm=openai.LLM(model="gpt-4o-mini"),
        tts=openai.TTS(response_format="pcm"),  # raw audio: nothing to decode
    )
    await history.start(ctx, session, Concierge())  # in place of session.start(...)


if __name__ == "__main__":
    cli.run_app(server)
