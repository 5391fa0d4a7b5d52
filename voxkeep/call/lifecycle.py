"""One call's life (docs/architecture.md): `Call.for_job` builds it from the job, the session and
the agent; `Call.serve` replays what a killed process journaled, opens the caller's chat, starts
the session with capture, prosody and summaries, and opens the control channel; `Call.end`
flushes and closes the chat. `ChatHistory.start` (history.py) and the simulator both go
through here, so the simulated call and the real one are the same code.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
from livekit import rtc
from livekit.agents import Agent, AgentSession, llm
from livekit.agents import vad as lk_vad
from livekit.agents.voice.events import AgentStateChangedEvent, CloseEvent, CloseReason

from voxkeep.call.capture import CallEnd, Capture
from voxkeep.call.context import Budget, estimate_tokens
from voxkeep.call.resume import (
    Loaded,
    continued_call,
    prosody_opted_out,
    requested_chat_id,
)
from voxkeep.call.state import CallState
from voxkeep.call.summarize import Summarizer
from voxkeep.call.switch import RETURNING, ChatSwitcher
from voxkeep.control.channel import ControlChannel
from voxkeep.control.dispatcher import Dispatcher
from voxkeep.control.room import ChatStarted
from voxkeep.core.errors import VoxkeepError
from voxkeep.core.logs import keep_private
from voxkeep.core.settings import Settings
from voxkeep.prosody.stream import AcousticStream
from voxkeep.store.records import Chat
from voxkeep.store.writer import Writer

log = structlog.get_logger(__name__)

END_FLUSH_TIMEOUT_S = 5.0
"""At hang-up, how long to wait for the writer; what is left is journaled, never dropped."""
SUMMARY_WAIT_S = 5.0
"""At hang-up, how long a summary in flight may still take; past it the next resume asks."""


@dataclass(frozen=True, slots=True)
class Job:
    """What LiveKit hands a call: the room, the caller in it, and the job's id and metadata
    (`voxkeepctl dispatch create --metadata/--chat-id` sets the metadata)."""

    room: rtc.Room
    caller: rtc.Participant
    id: str
    metadata: str = ""


class Call:
    """One caller in one room: the user's session and agent with capture, prosody, resume,
    summaries and control wired on. `ChatHistory.start` (the worker's entrypoint, and a user's)
    and `voxkeepctl simulate` both make one with `for_job` and start it with `serve`: one path
    into a call."""

    def __init__(
        self,
        settings: Settings,
        writer: Writer,
        session: AgentSession[Any],
        agent: Agent,
        *,
        owner: str,
        room: str | None = None,
        job_id: str | None = None,
        prosody_vad: lk_vad.VAD | None = None,
        summary_llm: llm.LLM[Any] | None = None,
        prosody_opt_out: bool = False,
    ) -> None:
        self.state = CallState(owner, room=room, job_id=job_id)
        self.session = session
        self.agent = agent
        """The agent the session starts with (a handoff may make another one active)."""
        measuring = settings.prosody and not prosody_opt_out
        self.prosody = AcousticStream(prosody_vad) if measuring and prosody_vad else None
        self.capture = Capture(
            self.state, writer, prosody=self.prosody, agent_name=settings.agent_name or None,
            prosody_opt_out=prosody_opt_out,
        )  # fmt: skip
        self.store = writer.store
        budget = Budget(settings.context_token_budget, settings.context_max_messages)
        self.summarizer = (
            Summarizer(
                self.state, self.store, summary_llm, budget, compact=settings.context_compact
            )
            if summary_llm
            else None
        )
        self.switcher = ChatSwitcher(
            self.state,
            self.capture,
            self.session,
            self.store,
            budget=budget,
            load_timeout_s=settings.context_load_timeout_s,
            on_loaded=self._loaded,
        )
        self.capture.on_taken_over = self.switcher.lost
        self.on_ended: Callable[[CallEnd], None] | None = None
        """Told how the call ended, once everything it said is saved."""
        self._writer = writer
        self._settings = settings
        self.control: ControlChannel | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._ended: asyncio.Task[None] | None = None
        self._opened: ChatStarted | None = None
        self._continues: str | None = None
        """The call of a dead worker this one continues: the caller is mid-conversation."""

    @property
    def chat_id(self) -> str:
        """The chat the call writes to now (`new_chat` and `resume_chat` change it)."""
        return self.state.chat_id

    @classmethod
    def for_job(
        cls,
        settings: Settings,
        writer: Writer,
        session: AgentSession[Any],
        agent: Agent,
        job: Job,
        **options: Any,
    ) -> Call:
        """A call for the job's caller (`options`: prosody_vad, summary_llm); no prosody when
        the caller's `voxkeep.prosody` attribute says `off`."""
        return cls(
            settings, writer, session, agent,
            owner=job.caller.identity, room=job.room.name, job_id=job.id,
            prosody_opt_out=prosody_opted_out(job.caller.attributes), **options,
        )  # fmt: skip

    async def serve(self, job: Job, **start_options: Any) -> None:
        """Serve the job's caller: let a killed process's journal reach the store, open the
        chat the caller asked for (or resumes, or a new one), start the session
        (`start_options` go to `AgentSession.start`), and take commands from the caller's
        app."""
        await self.prepare(job)
        await self.session.start(self.agent, **start_options)
        self.started()
        self.attach_control(job.room)

    async def prepare(self, job: Job) -> None:
        """Everything before the session starts: the journal replayed, the caller's chat
        opened into the agent's context, capture and summaries on the session's events."""
        keep_private()  # LiveKit's loggers too, in whatever process serves the call
        await replayed(self._writer, self._settings.context_load_timeout_s)
        requested = requested_chat_id(job.metadata, job.caller.attributes)
        self._continues = continued_call(job.metadata)
        await self.open(requested_chat_id=requested)

    async def start(self, *, requested_chat_id: str | None = None, **start_options: Any) -> None:
        """Open the caller's chat (docs/resume.md: the one asked for, or a recent one to resume, or
        a new one), then start the session; a returning caller is greeted as one."""
        await self.open(requested_chat_id=requested_chat_id)
        await self.session.start(self.agent, **start_options)
        self.started()

    async def open(self, *, requested_chat_id: str | None = None) -> None:
        """Open the caller's chat into the agent's context, and listen to the session."""
        self._opened = await self.switcher.open(
            requested_chat_id, self.agent, window_s=self._settings.resume_window_s
        )
        self.capture.attach(self.session)
        if self.summarizer is not None:
            self.summarizer.attach(self.session)
        self.session.on("close", self._on_close)

    def started(self) -> None:
        """The session has started: prosody taps its audio input, the heartbeat holds the
        chat, and a returning caller is greeted as one."""
        if self._heartbeat is not None:
            return
        if self.prosody is not None and not self.prosody.listen(self.session):
            log.warning("prosody.no_audio_input", call_id=self.state.call_id)
        self._heartbeat = asyncio.create_task(self._beat(), name="call.heartbeat")
        resumed = self._opened is not None and self._opened.resumed
        if resumed and self._continues is None:  # (a continued call waits for the caller)
            self.session.generate_reply(instructions=RETURNING)
        log.info(
            "call.started", call_id=self.state.call_id, chat_id=self.state.chat_id,
            resumed=resumed, continues=self._continues,
        )  # fmt: skip

    def start_with_session(self) -> None:
        """For a session the user's code starts (`ChatHistory.attach`): `started` runs as the
        session leaves its initializing state, inside `AgentSession.start`."""

        def on_state(ev: AgentStateChangedEvent) -> None:
            if ev.old_state == "initializing":
                self.session.off("agent_state_changed", on_state)
                self.started()

        self.session.on("agent_state_changed", on_state)

    def attach_control(self, room: rtc.Room) -> None:
        """Let the caller's app command this call over the room (docs/control.md)."""
        settings = self._settings
        dispatcher = Dispatcher(
            self.store,
            self.switcher,
            self.state.owner,
            rate=settings.control_rate,
            burst=settings.control_burst,
            caught_up=self._writer.flush,
        )
        self.control = ControlChannel(room, dispatcher, settings.control_topic, self.state.owner)
        self.control.attach()
        room.on("participant_attributes_changed", self._on_attributes)
        self.switcher.on_started = self.control.chat_started
        self.control.chat_started(self.switcher.started)

    def _on_attributes(self, changed: dict[str, str], participant: rtc.Participant) -> None:
        """The caller switching prosody off mid-call: nothing more is measured in this call
        (switching it back on takes effect at the next call)."""
        if participant.identity == self.state.owner and prosody_opted_out(changed):
            self.capture.opt_out_of_prosody()

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
        if self.control is not None:
            await self.control.aclose()
        try:  # (the caller's last words are still being measured: prosody closes after)
            await asyncio.wait_for(self.capture.flush_and_close(how), END_FLUSH_TIMEOUT_S)
        except TimeoutError:
            log.warning("call.end_timeout", call_id=self.state.call_id)
        if self.prosody is not None:
            await self.prosody.aclose()
        if self.summarizer is not None:
            await self.summarizer.aclose(SUMMARY_WAIT_S)
        log.info("call.ended", call_id=self.state.call_id, end_reason=how)
        if self.on_ended is not None:
            self.on_ended(how)

    async def _beat(self) -> None:
        """Refresh the row by which the call holds its chat; when another call of the caller
        has taken the chat over, or it was deleted, go on in the continuation (docs/resume.md)."""
        while True:
            await asyncio.sleep(self._settings.heartbeat_s)
            call_id = self.state.call_id
            try:
                held = await self.store.heartbeat(call_id, at=time.time())
            except VoxkeepError as exc:  # the store is down: the call goes on, and beats again
                log.warning("call.heartbeat_failed", call_id=call_id, error=type(exc).__name__)
                continue
            if held != "held":
                self.switcher.lost(call_id, held)

    def _loaded(self, chat: Chat, loaded: Loaded) -> None:
        if self.summarizer is None:
            return
        tokens = sum(estimate_tokens(m.text_content) for m in loaded.ctx.messages())
        self.summarizer.loaded(chat.id, loaded.placed, tokens, overflowing=loaded.dropped)

    def _on_close(self, ev: CloseEvent) -> None:
        how: CallEnd = "shutdown" if ev.reason == CloseReason.JOB_SHUTDOWN else "hangup"
        if ev.reason == CloseReason.ERROR:
            how = "lost"
        self.end(how)


async def replayed(writer: Writer, timeout_s: float) -> None:
    """Let what a killed process left in the journal reach the store before the chat is
    chosen, so a resumed context has every acknowledged message (bounded: the call starts)."""
    if writer.backlog:
        try:
            await asyncio.wait_for(writer.flush(), timeout_s)
        except TimeoutError:
            log.warning("journal.replay_pending", records=writer.backlog)
