"""Persistence for a LiveKit agent, yours or ours (docs/embedding.md): `ChatHistory.attach`,
before your own `session.start`, adds write-through history, prosody, resume, summaries and
the control channel to the session and agent you built; `ChatHistory.start` does the same and
also connects, picks the caller, starts the session and ends the job at hang-up.

    history = ChatHistory()  # the store and options from VOXKEEP_* settings (docs/operations.md)

    async def entrypoint(ctx: JobContext) -> None:
        await ctx.connect()
        caller = await ctx.wait_for_participant()
        session = AgentSession(vad=..., stt=..., llm=..., tts=...)
        await history.attach(ctx, session, MyAgent(), caller=caller)
        await session.start(agent, room=ctx.room)

`voxkeep.run_background(server)` adds the sweeper, retention and webhook delivery to the
worker's main process (docs/embedding.md#the-background-work).

What it promises: a message is acknowledged once it is durable (in the store, or in the local
journal while the store is down); nothing it does raises into the session; at hang-up or
shutdown the call's chat is flushed and closed before the job ends.
"""

from __future__ import annotations

from typing import Any

from livekit import rtc
from livekit.agents import Agent, AgentSession, JobContext, llm
from livekit.agents import vad as lk_vad
from livekit.agents.voice import room_io
from livekit.plugins import silero

from voxkeep.call.capture import CallEnd
from voxkeep.call.instrument import measured
from voxkeep.call.lifecycle import Call, Job
from voxkeep.call.rejoin import RejoinGrace
from voxkeep.core.settings import Settings, load_settings
from voxkeep.store import open_store
from voxkeep.store.base import Store
from voxkeep.store.writer import Writer, WriterOptions

VAD_KEY = "vad"
"""Where a prewarmed silero VAD is found in `JobProcess.userdata` (as LiveKit's examples put it)."""


class ChatHistory:
    """Persistence for the agents of one worker. `settings` default to the environment's
    (`VOXKEEP_*`, docs/operations.md). `prosody_vad` is the VAD that cuts the caller's audio into
    utterances for prosody (default: the session's, a prewarmed one in
    `ctx.proc.userdata["vad"]`, or silero's). `summary_llm` writes the summaries of long chats
    (default: the session's LLM; none with a realtime model unless given)."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        prosody_vad: lk_vad.VAD | None = None,
        summary_llm: llm.LLM[Any] | None = None,
    ) -> None:
        self._settings = settings
        self._vad = prosody_vad
        self._summary_llm = summary_llm

    async def attach(
        self, ctx: JobContext, session: AgentSession[Any], agent: Agent, *,
        caller: rtc.Participant,
    ) -> Call:  # fmt: skip
        """Attach persistence to `session` before your code starts it: `caller`'s chat (the one
        asked for, one to resume, or a new one) is opened into `agent`'s context, and from the
        moment you call `session.start(agent, room=ctx.room)` every finalized message is
        written, prosody measured and commands taken. The room's connection, the choice of
        caller and the job's end stay yours; the call ends when the session closes, and at
        the job's shutdown its chat is kept for resume."""
        settings = self._settings or load_settings()
        writer = await open_writer(settings)
        job = Job(ctx.room, caller, ctx.job.id, ctx.job.metadata)
        call = self._call(ctx, settings, writer, session, agent, job)
        try:
            await call.prepare(job)
        except BaseException:
            await writer.aclose()
            raise
        call.start_with_session()
        call.attach_control(ctx.room)
        return call

    async def start(
        self, ctx: JobContext, session: AgentSession[Any], agent: Agent, **start_options: Any
    ) -> Call:
        """The one-call form: connect to the job's room, wait for the caller (the first
        participant), open their chat into `agent`'s context, and start `session` with `agent`
        in the room (`start_options` go to `AgentSession.start`). When the caller leaves and
        is not back within `VOXKEEP_REJOIN_GRACE_S` (unless `start_options` set LiveKit's own
        room options), the chat is closed and the job shuts down; at shutdown, the chat is kept
        for resume."""
        settings = self._settings or load_settings()
        writer = await open_writer(settings)
        try:
            await ctx.connect()
            caller = await ctx.wait_for_participant()
        except BaseException:
            await writer.aclose()
            raise
        job = Job(ctx.room, caller, ctx.job.id, ctx.job.metadata)
        call = self._call(ctx, settings, writer, session, agent, job)

        grace: RejoinGrace | None = None
        if "room_options" not in start_options and "room_input_options" not in start_options:
            # the call, not LiveKit's room input, decides when a caller who left is gone
            grace = RejoinGrace(
                ctx.room, caller.identity, settings.rejoin_grace_s, lambda: call.end("hangup")
            )
            start_options["room_options"] = room_io.RoomOptions(
                participant_identity=caller.identity, close_on_disconnect=False
            )

        def on_ended(how: CallEnd) -> None:  # the caller is gone: free the process for the next
            if grace is not None:
                grace.close()
            if how != "shutdown":
                ctx.shutdown(reason=f"call ended: {how}")

        call.on_ended = on_ended
        await call.serve(job, **{"room": ctx.room, **start_options})
        return call

    def _call(
        self, ctx: JobContext, settings: Settings, writer: Writer, session: AgentSession[Any],
        agent: Agent, job: Job,
    ) -> Call:  # fmt: skip
        call = Call.for_job(
            settings, writer, session, agent, job,
            prosody_vad=self._prosody_vad(ctx, session), summary_llm=self._summaries(session),
        )  # fmt: skip

        async def on_shutdown(reason: str) -> None:
            await call.end("shutdown")
            await writer.aclose()

        ctx.add_shutdown_callback(on_shutdown)
        return call

    def _prosody_vad(self, ctx: JobContext, session: AgentSession[Any]) -> lk_vad.VAD:
        found = self._vad or session.vad or ctx.proc.userdata.get(VAD_KEY)
        return found if isinstance(found, lk_vad.VAD) else silero.VAD.load()

    def _summaries(self, session: AgentSession[Any]) -> llm.LLM[Any] | None:
        if self._summary_llm is not None:
            return self._summary_llm
        return session.llm if isinstance(session.llm, llm.LLM) else None


async def open_writer(settings: Settings, store: Store | None = None) -> Writer:
    store = measured(store or await open_store(settings.db_url))
    opts = WriterOptions(max_queue=settings.writer_queue_max, max_batch=settings.writer_batch_max)
    return await Writer.start(store, settings.journal_dir, opts)
