"""The composition root (STYLE.md): the only place that builds things and wires them.

Read top to bottom, this is the table of contents of the agent: the providers, the one session
factory (shared by the worker, `agentctl simulate` and the tests), and a call — its state,
capture, prosody and assistant — wired one line per behaviour.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from livekit import rtc
from livekit.agents import (
    AgentServer,
    AgentSession,
    JobContext,
    JobProcess,
    llm,
    stt,
    tts,
)
from livekit.agents import vad as lk_vad
from livekit.agents.types import NOT_GIVEN
from livekit.agents.voice.events import CloseEvent, CloseReason
from livekit.plugins import openai, silero

from agent.assistant import Assistant, Trace
from agent.call import CallState
from agent.capture import CallEnd, Capture
from agent.context import Budget
from agent.control.channel import ControlChannel
from agent.control.dispatcher import Dispatcher
from agent.ids import new_call_id, new_chat_id
from agent.logs import configure_logging
from agent.plugins.prosody.stream import AcousticStream
from agent.settings import Settings, load_settings
from agent.store import open_store
from agent.store.base import Store
from agent.store.writer import Writer, WriterOptions
from agent.switch import ChatStarted, ChatSwitcher

log = structlog.get_logger(__name__)

END_FLUSH_TIMEOUT_S = 5.0
"""At hang-up, how long to wait for the writer; what is left is journaled, never dropped."""


def prewarm(proc: JobProcess) -> None:
    proc.userdata["vad"] = silero.VAD.load()


@dataclass(frozen=True, slots=True)
class Providers:
    stt: stt.STT[Any]
    llm: llm.LLM[Any]
    tts: tts.TTS[Any]


def openai_providers(settings: Settings) -> Providers:
    """STT, LLM and TTS through `livekit-plugins-openai`: OpenAI itself, or any compatible
    server named by `OPENAI_BASE_URL`."""
    key = settings.openai_api_key.get_secret_value() or NOT_GIVEN
    base_url = settings.openai_base_url or NOT_GIVEN
    return Providers(
        stt=openai.STT(model=settings.stt_model, api_key=key, base_url=base_url),
        llm=openai.LLM(model=settings.llm_model, api_key=key, base_url=base_url),
        tts=openai.TTS(
            model=settings.tts_model,
            voice=settings.tts_voice,
            response_format="pcm",  # raw 24 kHz audio: nothing to decode on the call's path
            api_key=key,
            base_url=base_url,
        ),
    )


def build_session(
    vad: lk_vad.VAD, providers: Providers, *, simulated: bool = False
) -> AgentSession[None]:
    """The one session factory. `simulated` is for a caller with no echo path (the
    simulator's): no AEC warm-up, which would drop the caller's speech during the agent's
    first seconds of talking."""
    return AgentSession(
        vad=vad,
        stt=providers.stt,
        llm=providers.llm,
        tts=providers.tts,
        turn_handling={"turn_detection": "vad"},
        aec_warmup_duration=0.0 if simulated else NOT_GIVEN,
    )


async def open_writer(settings: Settings, store: Store | None = None) -> Writer:
    store = store or await open_store(settings.db_url)
    opts = WriterOptions(max_queue=settings.writer_queue_max, max_batch=settings.writer_batch_max)
    return await Writer.start(store, settings.journal_dir, opts)


class Call:
    """One caller in one room: a session with capture and prosody wired on."""

    def __init__(
        self,
        settings: Settings,
        writer: Writer,
        vad: lk_vad.VAD,
        providers: Providers,
        *,
        owner: str,
        room: str | None = None,
        job_id: str | None = None,
        tools: Sequence[llm.Tool] = (),
        trace: Trace | None = None,
        simulated: bool = False,
    ) -> None:
        self.state = CallState(
            call_id=new_call_id(), owner=owner, chat_id=new_chat_id(), room=room, job_id=job_id
        )
        self.session = build_session(vad, providers, simulated=simulated)
        self.prosody = AcousticStream(vad) if settings.prosody else None
        self.capture = Capture(self.state, writer, agent_name=settings.name or None)
        self.agent = Assistant(
            settings.instructions, self.state, prosody=self.prosody, tools=tools, trace=trace
        )
        self.store = writer.store
        self.switcher = ChatSwitcher(
            self.state,
            self.capture,
            self.session,
            self.agent,
            self.store,
            budget=Budget(settings.context_token_budget, settings.context_max_messages),
            load_timeout_s=settings.context_load_timeout_s,
        )
        self._settings = settings
        self.control: ControlChannel | None = None
        self._ended: asyncio.Task[None] | None = None

    async def start(self, **start_options: Any) -> None:
        self.capture.start_chat()
        self.capture.attach(self.session)
        self.session.on("close", self._on_close)
        await self.session.start(self.agent, **start_options)
        log.info("call.started", call_id=self.state.call_id, chat_id=self.state.chat_id)

    def attach_control(self, room: rtc.Room) -> None:
        """Let the caller's app command this call over the room (DESIGN §6)."""
        settings = self._settings
        dispatcher = Dispatcher(
            self.store,
            self.switcher,
            self.state.owner,
            rate=settings.control_rate,
            burst=settings.control_burst,
        )
        self.control = ControlChannel(room, dispatcher, settings.control_topic, self.state.owner)
        self.control.attach()
        self.switcher.on_started = self.control.chat_started
        self.control.chat_started(ChatStarted(self.state.chat_id, resumed=False, message_count=0))

    def end(self, how: CallEnd) -> asyncio.Task[None]:
        """Close the session (the agent's turn in flight is kept, interrupted), then flush and
        close the call's records. Idempotent: every caller gets the same task."""
        if self._ended is None:
            self._ended = asyncio.create_task(self._end(how), name="call.end")
        return self._ended

    async def _end(self, how: CallEnd) -> None:
        try:
            await self.session.aclose()
        except Exception as exc:  # noqa: BLE001 - what the call said still has to be saved
            log.error("session.close_failed", call_id=self.state.call_id, error=type(exc).__name__)
        if self.prosody is not None:
            await self.prosody.aclose()
        if self.control is not None:
            await self.control.aclose()
        try:
            await asyncio.wait_for(self.capture.flush_and_close(how), END_FLUSH_TIMEOUT_S)
        except TimeoutError:
            log.warning("call.end_timeout", call_id=self.state.call_id)
        log.info("call.ended", call_id=self.state.call_id, end_reason=how)

    def _on_close(self, ev: CloseEvent) -> None:
        how: CallEnd = "shutdown" if ev.reason == CloseReason.JOB_SHUTDOWN else "hangup"
        if ev.reason == CloseReason.ERROR:
            how = "lost"
        self.end(how)


async def entrypoint(ctx: JobContext) -> None:
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    writer = await open_writer(settings)
    await ctx.connect()
    caller = await ctx.wait_for_participant()
    call = Call(
        settings,
        writer,
        ctx.proc.userdata["vad"],
        openai_providers(settings),
        owner=caller.identity,
        room=ctx.room.name,
        job_id=ctx.job.id,
    )

    async def on_shutdown(reason: str) -> None:
        await call.end("shutdown")
        await writer.aclose()

    ctx.add_shutdown_callback(on_shutdown)
    await call.start(room=ctx.room)
    call.attach_control(ctx.room)


def build_server(settings: Settings) -> AgentServer:
    server = AgentServer(setup_fnc=prewarm)
    server.rtc_session(entrypoint, agent_name=settings.name)
    return server
