"""The composition root (docs/architecture.md): the only place that builds things and wires them.

Read top to bottom, this is the table of contents of the agent: the providers, the one session
factory (shared by the worker, `agentctl simulate` and the tests), and a call — its state,
capture, prosody and assistant — wired one line per behaviour.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from livekit import rtc
from livekit.agents import (
    AgentServer,
    AgentSession,
    InterruptionOptions,
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

from agent import sweeper
from agent.assistant import Assistant, Trace
from agent.call import CallState
from agent.capture import CallEnd, Capture
from agent.context import Budget, estimate_tokens
from agent.control.channel import ControlChannel
from agent.control.dispatcher import Dispatcher
from agent.errors import AgentError
from agent.ids import new_call_id, new_chat_id
from agent.logs import configure_logging
from agent.plugins.prosody.stream import AcousticStream
from agent.resume import Loaded, requested_chat_id
from agent.settings import Settings, load_settings
from agent.store import open_store
from agent.store.base import Store
from agent.store.records import Chat
from agent.store.writer import Writer, WriterOptions
from agent.summarize import Summarizer
from agent.switch import RETURNING, ChatSwitcher

log = structlog.get_logger(__name__)

END_FLUSH_TIMEOUT_S = 5.0
"""At hang-up, how long to wait for the writer; what is left is journaled, never dropped."""
SWEEPER_TASK = "agent.sweeper"
SUMMARY_WAIT_S = 5.0
"""At hang-up, how long a summary in flight may still take; past it the next resume asks."""


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
    vad: lk_vad.VAD,
    providers: Providers,
    *,
    adaptive_interruption: bool = False,
    simulated: bool = False,
) -> AgentSession[None]:
    """The one session factory. Interruptions are decided by the local VAD unless
    `adaptive_interruption` lets LiveKit choose (which, under `dev`, sends the caller's audio
    to LiveKit Cloud). `simulated` is for a caller with no echo path (the simulator's): no AEC
    warm-up, which would drop the caller's speech during the agent's first seconds of
    talking."""
    interruption: InterruptionOptions = {} if adaptive_interruption else {"mode": "vad"}
    return AgentSession(
        vad=vad,
        stt=providers.stt,
        llm=providers.llm,
        tts=providers.tts,
        turn_handling={"turn_detection": "vad", "interruption": interruption},
        aec_warmup_duration=0.0 if simulated else NOT_GIVEN,
    )


async def open_writer(settings: Settings, store: Store | None = None) -> Writer:
    store = store or await open_store(settings.db_url)
    opts = WriterOptions(max_queue=settings.writer_queue_max, max_batch=settings.writer_batch_max)
    return await Writer.start(store, settings.journal_dir, opts)


@dataclass(frozen=True, slots=True)
class Job:
    """What LiveKit hands a call: the room, the caller in it, and the job's id and metadata
    (`agentctl dispatch create --metadata/--chat-id` sets the metadata)."""

    room: rtc.Room
    caller: rtc.Participant
    id: str
    metadata: str = ""


class Call:
    """One caller in one room: a session with capture, prosody, resume and control wired on.
    The worker's entrypoint and `agentctl simulate` both make one with `for_job` and start it
    with `serve`: one path into a call."""

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
        self.session = build_session(
            vad,
            providers,
            adaptive_interruption=settings.adaptive_interruption,
            simulated=simulated,
        )
        self.prosody = AcousticStream(vad) if settings.prosody else None
        self.capture = Capture(self.state, writer, agent_name=settings.name or None)
        self.agent = Assistant(
            settings.instructions, self.state, prosody=self.prosody, tools=tools, trace=trace
        )
        self.store = writer.store
        budget = Budget(settings.context_token_budget, settings.context_max_messages)
        self.summarizer = Summarizer(self.state, self.store, providers.llm, budget)
        self.switcher = ChatSwitcher(
            self.state,
            self.capture,
            self.session,
            self.agent,
            self.store,
            budget=budget,
            load_timeout_s=settings.context_load_timeout_s,
            on_loaded=self._loaded,
        )
        self.capture.on_taken_over = self.switcher.taken_over
        self.on_ended: Callable[[CallEnd], None] | None = None
        """Told how the call ended, once everything it said is saved."""
        self._writer = writer
        self._settings = settings
        self.control: ControlChannel | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._ended: asyncio.Task[None] | None = None

    @classmethod
    def for_job(
        cls,
        settings: Settings,
        writer: Writer,
        vad: lk_vad.VAD,
        providers: Providers,
        job: Job,
        **options: Any,
    ) -> Call:
        """A call for the job's caller (`options`: tools, trace, simulated)."""
        return cls(
            settings, writer, vad, providers,
            owner=job.caller.identity, room=job.room.name, job_id=job.id, **options,
        )  # fmt: skip

    async def serve(self, job: Job, **start_options: Any) -> None:
        """Serve the job's caller: let a killed process's journal reach the store, open the
        chat the caller asked for (or resumes, or a new one), start the session
        (`start_options` go to `AgentSession.start`), and take commands from the caller's
        app."""
        await replayed(self._writer, self._settings.context_load_timeout_s)
        requested = requested_chat_id(job.metadata, job.caller.attributes)
        await self.start(requested_chat_id=requested, **start_options)
        self.attach_control(job.room)

    async def start(self, *, requested_chat_id: str | None = None, **start_options: Any) -> None:
        """Open the caller's chat (docs/resume.md: the one asked for, or a recent one to resume, or
        a new one), then start the session; a returning caller is greeted as one."""
        opened = await self.switcher.open(
            requested_chat_id, window_s=self._settings.resume_window_s
        )
        self.capture.attach(self.session)
        self.summarizer.attach(self.session)
        self.session.on("close", self._on_close)
        await self.session.start(self.agent, **start_options)
        self._heartbeat = asyncio.create_task(self._beat(), name="call.heartbeat")
        if opened.resumed:
            self.session.generate_reply(instructions=RETURNING)
        log.info(
            "call.started", call_id=self.state.call_id, chat_id=self.state.chat_id,
            resumed=opened.resumed,
        )  # fmt: skip

    def attach_control(self, room: rtc.Room) -> None:
        """Let the caller's app command this call over the room (docs/control.md)."""
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
        self.control.chat_started(self.switcher.started)

    def end(self, how: CallEnd) -> asyncio.Task[None]:
        """Close the session (the agent's turn in flight is kept, interrupted), then flush and
        close the call's records. Idempotent: every caller gets the same task."""
        if self._ended is None:
            self._ended = asyncio.create_task(self._end(how), name="call.end")
        return self._ended

    async def _end(self, how: CallEnd) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
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
        await self.summarizer.aclose(SUMMARY_WAIT_S)
        log.info("call.ended", call_id=self.state.call_id, end_reason=how)
        if self.on_ended is not None:
            self.on_ended(how)

    async def _beat(self) -> None:
        """Refresh the row by which the call holds its chat; when another call of the caller
        has taken the chat over, move on to a new one (docs/resume.md)."""
        while True:
            await asyncio.sleep(self._settings.heartbeat_s)
            call_id = self.state.call_id
            try:
                held = await self.store.heartbeat(call_id, at=time.time())
            except AgentError as exc:  # the store is down: the call goes on, and beats again
                log.warning("call.heartbeat_failed", call_id=call_id, error=type(exc).__name__)
                continue
            if not held:
                self.switcher.taken_over(call_id)

    def _loaded(self, chat: Chat, loaded: Loaded) -> None:
        tokens = sum(estimate_tokens(m.text_content) for m in loaded.ctx.messages())
        self.summarizer.loaded(chat.id, loaded.placed, tokens, overflowing=loaded.dropped)

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
    job = Job(ctx.room, caller, ctx.job.id, ctx.job.metadata)
    call = Call.for_job(settings, writer, ctx.proc.userdata["vad"], openai_providers(settings), job)

    async def on_shutdown(reason: str) -> None:
        await call.end("shutdown")
        await writer.aclose()

    def on_ended(how: CallEnd) -> None:  # the caller is gone: free the process for the next
        if how != "shutdown":
            ctx.shutdown(reason=f"call ended: {how}")

    ctx.add_shutdown_callback(on_shutdown)
    call.on_ended = on_ended
    await call.serve(job, room=ctx.room)


async def replayed(writer: Writer, timeout_s: float) -> None:
    """Let what a killed process left in the journal reach the store before the chat is
    chosen, so a resumed context has every acknowledged message (bounded: the call starts)."""
    if writer.backlog:
        try:
            await asyncio.wait_for(writer.flush(), timeout_s)
        except TimeoutError:
            log.warning("journal.replay_pending", records=writer.backlog)


def build_server(
    settings: Settings, serve: Callable[[JobContext], Awaitable[None]] = entrypoint
) -> AgentServer:
    """The worker: LiveKit's `AgentServer` with our settings, `serve` for each job (our
    entrypoint), and the sweeper in its main process."""
    options: dict[str, Any] = {
        "host": settings.http_host,
        "port": settings.http_port,
        "load_threshold": settings.load_threshold,
        "num_idle_processes": settings.idle_processes,
        "drain_timeout": settings.drain_timeout_s,
    }
    server = AgentServer(
        setup_fnc=prewarm, **{name: v for name, v in options.items() if v is not None}
    )
    server.rtc_session(serve, agent_name=settings.name)

    def registered(worker_id: str, *_: Any) -> None:  # tells a supervisor the worker is ready
        log.info("worker.registered", worker_id=worker_id, agent_name=settings.name)

    server.on("worker_registered", registered)
    sweeping: list[asyncio.Task[None]] = []  # a reference, so the task is never collected

    def start_sweeping() -> None:  # in the worker's main process, once
        sweeping.append(asyncio.create_task(sweeper.run(settings), name=SWEEPER_TASK))

    server.on("worker_started", start_sweeping)
    return server
