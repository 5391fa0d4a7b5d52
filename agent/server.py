"""The composition root (STYLE.md): the only place that builds things and wires them.

Read top to bottom, this is the table of contents of the agent. Behaviours (capture, prosody,
control, resume) are switched on here, one line each, as they are built.
"""

from __future__ import annotations

from livekit.agents import Agent, AgentServer, AgentSession, JobContext, JobProcess
from livekit.agents.types import NOT_GIVEN
from livekit.plugins import openai, silero

from agent.logs import configure_logging
from agent.settings import Settings, load_settings


def prewarm(proc: JobProcess) -> None:
    proc.userdata["vad"] = silero.VAD.load()


def build_session(settings: Settings, vad: silero.VAD) -> AgentSession[None]:
    """The one session factory shared by the worker, the simulator and the tests."""
    key = settings.openai_api_key.get_secret_value() or NOT_GIVEN
    base_url = settings.openai_base_url or NOT_GIVEN
    return AgentSession(
        vad=vad,
        stt=openai.STT(model=settings.stt_model, api_key=key, base_url=base_url),
        llm=openai.LLM(model=settings.llm_model, api_key=key, base_url=base_url),
        tts=openai.TTS(
            model=settings.tts_model, voice=settings.tts_voice, api_key=key, base_url=base_url
        ),
    )


async def entrypoint(ctx: JobContext) -> None:
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    await ctx.connect()
    session = build_session(settings, ctx.proc.userdata["vad"])
    await session.start(Agent(instructions=settings.instructions), room=ctx.room)


def build_server(settings: Settings) -> AgentServer:
    server = AgentServer(setup_fnc=prewarm)
    server.rtc_session(entrypoint, agent_name=settings.name)
    return server
