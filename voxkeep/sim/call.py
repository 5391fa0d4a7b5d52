"""One simulated call: the production `Call` (session factory, capture, prosody) driven by a
scripted caller through the simulated microphone, speaker and room."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import aiohttp
from livekit import rtc
from livekit.agents import Agent, AgentSession, llm
from livekit.agents import vad as lk_vad
from livekit.agents.utils import http_context
from livekit.agents.voice import SpeechHandle
from livekit.agents.voice.events import (
    AgentStateChangedEvent,
    ConversationItemAddedEvent,
    SpeechCreatedEvent,
)
from livekit.agents.voice.transcription.synchronizer import TranscriptSynchronizer

from voxkeep.call.capture import CallEnd
from voxkeep.call.lifecycle import Call, Job
from voxkeep.control.room import RPC_METHOD
from voxkeep.core.settings import Settings
from voxkeep.prosody.shared_vad import SharedVAD
from voxkeep.sim.audio import (
    LocalParticipant,
    RemoteParticipant,
    Room,
    ScriptedMic,
    Speaker,
    Transcript,
)
from voxkeep.sim.speech import Pcm
from voxkeep.store.writer import Writer
from voxkeep.worker import providers as models
from voxkeep.worker.assistant import Assistant, Trace
from voxkeep.worker.providers import Providers
from voxkeep.worker.server import build_session

TURN_TIMEOUT_S = 30.0
SETTLE_S = 0.6
"""The agent counts as done with a turn once it has been listening this long, with no reply of
its own still on the way."""
REPLY_WAIT_S = 0.5


@dataclass
class ControlReply:
    to: str
    via: Literal["data", "rpc"]
    reply: Any


@dataclass
class SimCall:
    settings: Settings
    writer: Writer
    vad: lk_vad.VAD
    providers: Providers
    caller: str = "caller"
    room_name: str = "sim"
    tools: Sequence[llm.Tool] = ()
    trace: Trace | None = None
    realtime_mic: bool = False
    agent: Agent | None = None
    """The agent the call starts with (default: ours, with `tools` and `trace`)."""
    user_session: AgentSession[Any] | None = None
    """The session, unstarted (default: ours, from `providers`)."""
    job_metadata: str | None = None
    """The job's metadata, as `voxkeepctl dispatch create --metadata/--chat-id` sets it."""
    caller_attributes: dict[str, str] = field(default_factory=dict)
    control_replies: list[ControlReply] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.local = LocalParticipant()
        self.room = Room(self.room_name, self.local)
        self.caller_participant = RemoteParticipant(
            identity=self.caller, sid="PA_sim_caller", attributes=dict(self.caller_attributes)
        )
        self.room.remote[self.caller] = self.caller_participant
        self.mic = ScriptedMic(realtime=self.realtime_mic)
        self.speaker = Speaker()
        self.transcript = Transcript()
        self.job = Job(
            self.room,
            self.caller_participant,  # type: ignore[arg-type]  # as the SFU would assert it
            id=f"sim-job-{int(time.time() * 1000)}",
            metadata=self.job_metadata or "",
        )
        session = self.user_session or build_session(
            SharedVAD(self.vad),
            self.providers,
            turn_detection=models.turn_detection(self.settings),
            adaptive_interruption=self.settings.adaptive_interruption,
            preemptive_generation=self.settings.preemptive_generation,
            simulated=True,
        )
        agent = self.agent or Assistant(
            self.settings.instructions, tools=self.tools, trace=self.trace
        )
        self.call = Call.for_job(
            self.settings, self.writer, session, agent, self.job,
            prosody_vad=self.vad, summary_llm=self.providers.summaries,
        )  # fmt: skip
        self.session = session
        self.items: list[llm.ChatMessage] = []
        self._http = contextlib.AsyncExitStack()
        self._own_http: aiohttp.ClientSession | None = None
        self._changed = asyncio.Event()
        self._speeches: list[SpeechHandle] = []
        self.session.on("conversation_item_added", self._on_item)
        self.session.on("agent_state_changed", self._on_state)
        self.session.on("speech_created", self._on_speech)

    @property
    def state(self) -> str:
        return str(self.session.agent_state)

    async def start(self) -> None:
        sync = TranscriptSynchronizer(
            next_in_chain_audio=self.speaker, next_in_chain_text=self.transcript
        )
        self.session.input.audio = self.mic
        self.session.output.audio = sync.audio_output
        self.session.output.transcription = sync.text_output
        self._sync = sync
        try:  # the HTTP session a job gives plugins (Deepgram's, Cartesia's…)
            http_context.http_session()
        except RuntimeError:  # none here: the call brings its own
            self._own_http = await self._http.enter_async_context(http_context.open())
        await self.call.serve(self.job, session_host=False, record=False)
        if self.call.switcher.started.resumed:  # a returning caller is greeted: let it finish
            await self.wait_for(lambda: self._count("assistant") > 0)
            await self.settle()

    # --- what the caller does ---------------------------------------------------------------

    async def say(self, samples: Pcm, *, settle: bool = True, tail: bool = True) -> None:
        """Speak once the agent listens; by default wait until the agent has answered."""
        await self.wait_for(lambda: self.state == "listening")
        users = self._count("user")
        await asyncio.wait_for(self.mic.say(samples, tail=tail), TURN_TIMEOUT_S)
        if not settle:
            return
        await self.wait_for(lambda: self._count("user") > users)
        await self.settle()

    async def barge_in(self, samples: Pcm, *, after_s: float = 0.6) -> None:
        """Speak over the agent once it has been talking for `after_s`."""
        await self.wait_for(lambda: self.state == "speaking")
        await asyncio.sleep(after_s)
        users = self._count("user")
        await asyncio.wait_for(self.mic.say(samples), TURN_TIMEOUT_S)
        await self.wait_for(lambda: self._count("user") > users)
        await self.settle()

    async def command(
        self, payload: dict[str, Any] | str, *, via: Literal["data", "rpc"], sender: str | None
    ) -> ControlReply:
        """A control request from the caller (or `sender`), and the reply it got, if any."""
        identity = sender or self.caller
        participant = self.room.remote.get(identity) or RemoteParticipant(identity=identity)
        data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
        reply: Any = None
        if via == "rpc":
            handler = self.local.rpc_methods.get(RPC_METHOD)
            if handler is not None:
                invocation = rtc.RpcInvocationData(
                    request_id=f"rpc-{time.monotonic_ns()}",
                    caller_identity=identity,
                    payload=data.decode(errors="replace"),
                    response_timeout=10.0,
                )
                answer = await handler(invocation)
                reply = _json_or_text(answer)
        else:
            seen = len(self.local.sent)
            self.room.deliver(participant, data, self.settings.control_topic)
            with contextlib.suppress(TimeoutError):
                await self.wait_for(
                    lambda: self._reply_to(identity, seen) is not None, REPLY_WAIT_S
                )
            sent = self._reply_to(identity, seen)
            reply = None if sent is None else _json_or_text(sent)
        result = ControlReply(to=identity, via=via, reply=reply)
        self.control_replies.append(result)
        return result

    async def wait_idle(self, seconds: float) -> None:
        """Silence from the caller for `seconds` (the microphone keeps sending it)."""
        await asyncio.sleep(seconds)

    async def end(self, how: CallEnd) -> None:
        """Hang up (or, `lost`, drop with no goodbye: the chat stays open)."""
        self.mic.close()
        await self.call.end(how)
        await self.speaker.aclose()
        await self._sync.aclose()
        await self._http.aclose()
        if self._own_http is not None:  # (ended from another task than the one it started in)
            await self._own_http.close()

    # --- waiting -----------------------------------------------------------------------------

    async def settle(self) -> None:
        """Wait until the agent has been listening for SETTLE_S with no reply on the way. A
        reply the session was asked for (`new_chat`'s greeting) leaves "listening" only once
        its generation starts, which on a busy machine can take longer than SETTLE_S."""
        deadline = time.monotonic() + TURN_TIMEOUT_S
        calm_since: float | None = None
        while time.monotonic() < deadline:
            if self.state == "listening" and not self._replying():
                calm_since = calm_since or time.monotonic()
                if time.monotonic() - calm_since >= SETTLE_S:
                    return
            else:
                calm_since = None
            await asyncio.sleep(0.05)
        raise TimeoutError("the agent did not settle")

    async def wait_for(self, ready: Any, limit_s: float = TURN_TIMEOUT_S) -> None:
        async with asyncio.timeout(limit_s):
            while not ready():
                self._changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), 0.05)

    def _replying(self) -> bool:
        self._speeches = [s for s in self._speeches if not (s.done() or s.interrupted)]
        return bool(self._speeches)

    def _count(self, role: str) -> int:
        return sum(1 for i in self.items if i.role == role)

    def _reply_to(self, identity: str, seen: int) -> bytes | None:
        for sent in self.local.sent[seen:]:
            if (
                identity in sent.destination_identities
                and sent.topic == self.settings.control_topic
            ):
                return sent.payload
        return None

    def _on_item(self, ev: ConversationItemAddedEvent) -> None:
        if isinstance(ev.item, llm.ChatMessage):
            self.items.append(ev.item)
        self._changed.set()

    def _on_state(self, ev: AgentStateChangedEvent) -> None:
        self._changed.set()

    def _on_speech(self, ev: SpeechCreatedEvent) -> None:
        self._speeches.append(ev.speech_handle)
        self._changed.set()


def _json_or_text(payload: bytes | str) -> Any:
    try:
        return json.loads(payload)
    except ValueError:
        return payload if isinstance(payload, str) else payload.decode(errors="replace")
