"""A caller on a real LiveKit server, for the end-to-end tests and the live benchmark: LiveKit's
rtc client with a microphone track that sends 10 ms frames in real time (espeak-ng speech when
there is some, silence otherwise), the agent's state and replies as they arrive, and commands
over the data channel and RPC (docs/control.md)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from jwt.warnings import InsecureKeyLengthWarning
from livekit import api, rtc

from voxkeep.sim.speech import ESPEAK_RATE, Pcm, Voice, espeak, resample

RATE = 48000
TOPIC = "voxkeep.control"
RPC_METHOD = "voxkeep.control"
STATE_ATTRIBUTE = "lk.agent.state"
CHAT_ATTRIBUTE = "voxkeep.chat_id"
TURN_TIMEOUT_S = 40.0
REPLY_TIMEOUT_S = 10.0
SETTLE_S = 1.0
"""How long after the agent subscribes to the microphone the caller starts to speak."""
VOICE = Voice()


async def wait_until(ready: Callable[[], Any], limit_s: float, what: str) -> Any:
    """Poll `ready` until it returns something truthy; fail naming `what` after `limit_s`."""
    try:
        async with asyncio.timeout(limit_s):
            while not (value := ready()):  # noqa: ASYNC110 - state of other processes, polled
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise TimeoutError(f"timed out after {limit_s:.0f} s waiting for {what}") from None
    return value


@dataclass
class Packet:
    sender: str | None
    topic: str
    payload: Any
    at: float
    """When it arrived (wall clock)."""


class Caller:
    """A person in the room: LiveKit's rtc client, a microphone track that sends 10 ms frames
    in real time (speech when there is some, silence otherwise), and the agent's replies."""

    def __init__(self, url: str, token: str, identity: str, *, frame_ms: int = 10) -> None:
        self.url, self.token, self.identity = url, token, identity
        self.frame = RATE * frame_ms // 1000
        """Samples per microphone frame: 10 ms as a browser sends them, or more for a crowd
        of callers in one process (fewer wake-ups, the same audio in real time)."""
        self.room = rtc.Room()
        self.packets: list[Packet] = []
        self.states: list[str] = []
        """The agent's states as they changed (listening, thinking, speaking)."""
        self.state_at: list[float] = []
        """When each of `states` arrived (wall clock)."""
        self.said_at: list[float] = []
        """When each utterance's last frame went to the microphone track (wall clock)."""
        self._speech: asyncio.Queue[tuple[Pcm, asyncio.Future[None]]] = asyncio.Queue()
        self._mic: asyncio.Task[None] | None = None
        self._source: rtc.AudioSource | None = None
        self._news = asyncio.Event()
        """Set when a packet or an attribute change arrives."""
        self._heard = asyncio.Event()
        """The agent has subscribed to the microphone."""
        self._heard_at = 0.0
        self.room.on("local_track_subscribed", self._on_subscribed)
        self.room.on("data_received", self._on_data)
        self.room.on("participant_attributes_changed", self._on_attributes)

    async def join(self, *, microphone: bool = True) -> None:
        await self.room.connect(self.url, self.token)
        if not microphone:
            return
        self._source = rtc.AudioSource(RATE, 1)
        track = rtc.LocalAudioTrack.create_audio_track("microphone", self._source)
        options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        await self.room.local_participant.publish_track(track, options)
        self._mic = asyncio.create_task(self._pump(), name="caller.mic")

    async def leave(self) -> None:
        if self._mic is not None:
            self._mic.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._mic
            self._mic = None
        await self.room.disconnect()

    # --- the agent ---

    def agent_participant(self) -> rtc.RemoteParticipant | None:
        for p in self.room.remote_participants.values():
            if p.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT:
                return p
        return None

    async def agent(self, limit_s: float = 30.0) -> rtc.RemoteParticipant:
        found: rtc.RemoteParticipant = await self._until(
            self.agent_participant, limit_s, "the agent to join"
        )
        return found

    async def chat_id(self, limit_s: float = 30.0, other_than: str | None = None) -> str:
        """The agent's `voxkeep.chat_id` attribute, once it is set (and not `other_than`)."""

        def current() -> str | None:
            agent = self.agent_participant()
            value = agent.attributes.get(CHAT_ATTRIBUTE) if agent else None
            return value if value and value != other_than else None

        found: str = await self._until(current, limit_s, "the agent's voxkeep.chat_id")
        return found

    def events(self, kind: str = "chat.started") -> list[dict[str, Any]]:
        return [
            p.payload for p in self.packets
            if isinstance(p.payload, dict) and p.payload.get("type") == kind
        ]  # fmt: skip

    async def started(self, count: int, limit_s: float = 30.0) -> dict[str, Any]:
        """The `count`th chat.started event, once it has arrived."""
        await self._until(lambda: len(self.events()) >= count, limit_s, f"chat.started #{count}")
        return self.events()[count - 1]

    # --- speaking ---

    async def say(self, text: str, voice: Voice = VOICE) -> None:
        """Speak `text` (espeak-ng) into the microphone in real time; returns once it is said."""
        await self.speak(resample(await espeak(text, voice), ESPEAK_RATE, RATE))

    async def speak(self, pcm: Pcm) -> None:
        """Speak `pcm` (RATE, mono) into the microphone in real time; returns once it is said."""
        await asyncio.wait_for(self._heard.wait(), 30)
        # the first ~100 ms of media after a subscription can be lost while the path settles
        # (a clipped first word, seen here); a person waits a moment too before speaking
        await asyncio.sleep(max(0.0, self._heard_at + SETTLE_S - time.monotonic()))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self._speech.put((pcm, done))
        await asyncio.wait_for(done, len(pcm) / RATE + 30)

    async def turn(self, text: str, voice: Voice = VOICE) -> None:
        """Speak, then wait until the agent has answered: it spoke and listens again."""
        seen = len(self.states)
        await self.say(text, voice)
        await self.answered(since=seen)

    async def answered(self, since: int = 0, limit_s: float = TURN_TIMEOUT_S) -> None:
        """Wait until the agent, after state number `since`, has spoken and listens again."""

        def done() -> bool:
            later = self.states[since:]
            return "speaking" in later and later[-1] == "listening"

        await self._until(done, limit_s, "the agent to answer")

    async def _pump(self) -> None:
        """Real-time frames: queued speech, else silence (a microphone never stops)."""
        assert self._source is not None
        frame = self.frame
        silence = np.zeros(frame, dtype=np.int16)
        pcm, done, pos = None, None, 0
        next_at = time.monotonic()
        while True:
            if pcm is None and not self._speech.empty():
                pcm, done = self._speech.get_nowait()
                pos = 0
            if pcm is not None:
                chunk = pcm[pos : pos + frame]
                pos += frame
                if len(chunk) < frame:
                    chunk = np.concatenate([chunk, silence[: frame - len(chunk)]])
                if pos >= len(pcm):
                    pcm = None
                    self.said_at.append(time.time())
                    if done is not None and not done.done():
                        done.set_result(None)
            else:
                chunk = silence
            await self._source.capture_frame(rtc.AudioFrame(chunk.tobytes(), RATE, 1, frame))
            next_at += frame / RATE
            delay = next_at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -0.5:  # fell far behind (a loaded machine): do not burst to catch up
                next_at = time.monotonic()

    # --- the control channel ---

    async def send(self, payload: dict[str, Any] | bytes, to: str | None = None) -> None:
        """A data packet on the control topic to the agent (or `to`)."""
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        target = to or (await self.agent()).identity
        await self.room.local_participant.publish_data(
            data, reliable=True, topic=TOPIC, destination_identities=[target]
        )

    async def command(
        self, payload: dict[str, Any] | bytes, *, via: Literal["data", "rpc"] = "data"
    ) -> dict[str, Any]:
        """A control request and the agent's reply to it."""
        if via == "rpc":
            text = payload.decode() if isinstance(payload, bytes) else json.dumps(payload)
            agent = await self.agent()
            reply = await self.room.local_participant.perform_rpc(
                destination_identity=agent.identity,
                method=RPC_METHOD,
                payload=text,
                response_timeout=REPLY_TIMEOUT_S,
            )
            answer: dict[str, Any] = json.loads(reply)
            return answer
        request_id = payload.get("id") if isinstance(payload, dict) else None
        seen = len(self.packets)
        await self.send(payload)

        def reply_packet() -> dict[str, Any] | None:
            """The reply to this request: `re` is its id, or null for a request refused
            before its id was read (raw bytes: the first reply)."""
            for p in self.packets[seen:]:
                reply = p.payload if isinstance(p.payload, dict) and "re" in p.payload else None
                if reply is not None and (request_id is None or reply["re"] in (None, request_id)):
                    return reply
            return None

        found: dict[str, Any] = await self._until(reply_packet, REPLY_TIMEOUT_S, "a reply")
        return found

    async def _until(self, ready: Callable[[], Any], limit_s: float, what: str) -> Any:
        """`ready()`'s first truthy value, checked whenever the room tells this caller something
        (so a reply is seen the moment it arrives); fail naming `what` after `limit_s`."""
        try:
            async with asyncio.timeout(limit_s):
                while not (value := ready()):
                    self._news.clear()
                    with contextlib.suppress(TimeoutError):  # participants come and go unseen
                        await asyncio.wait_for(self._news.wait(), 0.1)
        except TimeoutError:
            raise TimeoutError(f"timed out after {limit_s:.0f} s waiting for {what}") from None
        return value

    def _on_subscribed(self, publication: rtc.LocalTrackPublication) -> None:
        self._heard_at = time.monotonic()
        self._heard.set()

    def _on_data(self, packet: rtc.DataPacket) -> None:
        try:
            payload: Any = json.loads(packet.data)
        except ValueError:
            payload = bytes(packet.data)
        sender = packet.participant.identity if packet.participant else None
        self.packets.append(Packet(sender, packet.topic or "", payload, time.time()))
        self._news.set()

    def _on_attributes(self, changed: dict[str, str], participant: rtc.Participant) -> None:
        state = changed.get(STATE_ATTRIBUTE)
        if state and participant.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT:
            self.states.append(state)
            self.state_at.append(time.time())
        self._news.set()


def token(
    server_key: str,
    server_secret: str,
    room: str,
    identity: str,
    attributes: dict[str, str] | None = None,
) -> str:
    grants = api.VideoGrants(room_join=True, room=room)
    minted = api.AccessToken(server_key, server_secret).with_identity(identity).with_grants(grants)
    if attributes:
        minted = minted.with_attributes(attributes)
    with warnings.catch_warnings():  # LiveKit's development secret is short, and that is fine
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)
        return minted.to_jwt()
