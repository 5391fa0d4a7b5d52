"""Persistence attached the way a LiveKit agent is written: your entrypoint connects, picks the
caller, starts the session and decides when the job ends; `history.attach` goes in before your
`session.start` (docs/embedding.md).

    python examples/attach.py start   # or dev; settings as for the worker (config/example.env)
"""

from __future__ import annotations

from livekit import rtc
from livekit.agents import Agent, AgentServer, AgentSession, JobContext, JobProcess, cli
from livekit.agents.voice.events import CloseEvent
from livekit.plugins import openai, silero

from voxkeep import ChatHistory, run_background

history = ChatHistory()  # the store and the options from VOXKEEP_* settings


class Assistant(Agent):
    def __init__(self) -> None:
        super().__init__(instructions="You are a helpful voice assistant. Be brief.")


def prewarm(proc: JobProcess) -> None:
    proc.userdata["vad"] = silero.VAD.load()


server = AgentServer(setup_fnc=prewarm)
run_background(server)  # the sweeper, retention and webhooks, in this worker's main process


@server.rtc_session()
async def entrypoint(ctx: JobContext) -> None:
    await ctx.connect()
    caller = await ctx.wait_for_participant(kind=rtc.ParticipantKind.PARTICIPANT_KIND_STANDARD)
    session: AgentSession[None] = AgentSession(
        vad=ctx.proc.userdata["vad"],
        stt=openai.STT(),
        llm=openai.LLM(model="gpt-4o-mini"),
        tts=openai.TTS(response_format="pcm"),  # raw audio: nothing to decode
    )
    agent = Assistant()
    await history.attach(ctx, session, agent, caller=caller)  # before session.start

    def on_close(_: CloseEvent) -> None:  # your call: here the job ends with the session
        ctx.shutdown(reason="session closed")

    session.on("close", on_close)
    await session.start(agent, room=ctx.room)


if __name__ == "__main__":
    cli.run_app(server)
