"""The simulated caller's side of a call: a microphone fed from the script, a speaker that
plays the agent in real time, and a room with no server (docs/livekit.md, "The LiveKit facts
this code relies on")."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from livekit import rtc
from livekit.agents.voice import io

from voxkeep.sim.speech import Pcm

MIC_RATE = 48000  # what a LiveKit room delivers
FRAME_S = 0.02
FRAME_SAMPLES = int(MIC_RATE * FRAME_S)
TAIL_S = 0.8
"""Silence sent at once after an utterance, so the VAD (0.55 s minimum) ends the turn without
waiting for the clock; a microphone never stops, so paced silence follows."""


class ScriptedMic(io.AudioInput):
    """Utterances as fast as the session takes them (the same transcripts and events as real
    time), silence between them at the pace of a real microphone. With `realtime`, everything
    at the pace of a real microphone (for measuring, where bursts would distort)."""

    def __init__(self, *, realtime: bool = False) -> None:
        super().__init__(label="sim-mic")
        self._realtime = realtime
        self._queue: deque[tuple[Pcm, asyncio.Future[None], bool]] = deque()
        self._with_tail = True
        self._current: Pcm | None = None
        self._done: asyncio.Future[None] | None = None
        self._pos = 0
        self._tail = 0
        self._closed = False
        self._next_frame = time.monotonic()
        self._silence = rtc.AudioFrame(bytes(FRAME_SAMPLES * 2), MIC_RATE, 1, FRAME_SAMPLES)

    def say(self, samples: Pcm, *, tail: bool = True) -> asyncio.Future[None]:
        """Queue speech at MIC_RATE; the future resolves once the session has taken all of it.
        Without `tail` the speech is followed by paced silence only (a caller cut off)."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((samples.astype(np.int16), done, tail))
        return done

    def close(self) -> None:
        """The caller is gone: the stream ends, wherever it was."""
        self._closed = True
        for _, done, _ in self._queue:
            if not done.done():
                done.cancel()
        if self._done is not None and not self._done.done():
            self._done.cancel()

    async def __anext__(self) -> rtc.AudioFrame:
        if self._closed:
            raise StopAsyncIteration
        if self._current is None and self._queue:
            self._current, self._done, self._with_tail = self._queue.popleft()
            self._pos = 0
        if self._current is not None:
            chunk = self._current[self._pos : self._pos + FRAME_SAMPLES]
            self._pos += FRAME_SAMPLES
            if self._pos >= len(self._current):
                self._current = None
                self._tail = int(TAIL_S / FRAME_S) if self._with_tail else 0
                if self._done is not None and not self._done.done():
                    self._done.set_result(None)
            if len(chunk) < FRAME_SAMPLES:
                chunk = np.concatenate([chunk, np.zeros(FRAME_SAMPLES - len(chunk), np.int16)])
            await self._pace()
            return rtc.AudioFrame(chunk.tobytes(), MIC_RATE, 1, FRAME_SAMPLES)
        if self._tail > 0:
            self._tail -= 1
            await self._pace()
            return self._silence
        await self._pace(paced=True)
        if self._closed:
            raise StopAsyncIteration
        return self._silence

    async def _pace(self, paced: bool = False) -> None:
        """Return at once (yielding to the loop), or at the pace of a real microphone."""
        if not (paced or self._realtime):
            await asyncio.sleep(0)
            self._next_frame = time.monotonic()
            return
        self._next_frame += FRAME_S
        delay = self._next_frame - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            self._next_frame = time.monotonic()
            await asyncio.sleep(0)


class Speaker(io.AudioOutput):
    """Plays the agent's audio in real time (so an interruption cuts it where a listener would
    have heard it cut) and keeps count of what was played."""

    def __init__(self) -> None:
        super().__init__(label="sim-speaker", capabilities=io.AudioOutputCapabilities(pause=True))
        self._frames: asyncio.Queue[rtc.AudioFrame | None] = asyncio.Queue()
        self._unpaused = asyncio.Event()
        self._unpaused.set()
        self._task: asyncio.Task[None] | None = None
        self._position = 0.0
        self.played_s = 0.0
        self.segments = 0

    async def capture_frame(self, frame: rtc.AudioFrame) -> None:
        await super().capture_frame(frame)
        if self._task is None:
            self._position = 0.0
            self._task = asyncio.create_task(self._play(), name="sim.speaker")
        self._frames.put_nowait(frame)

    def flush(self) -> None:
        super().flush()
        if self._task is not None:
            self._frames.put_nowait(None)  # the segment's end

    def clear_buffer(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        self._frames = asyncio.Queue()
        self.on_playback_finished(playback_position=self._position, interrupted=True)

    async def _play(self) -> None:
        self.segments += 1
        self.on_playback_started(created_at=time.time())
        start = time.monotonic()  # when position 0 played, pauses left out
        while (frame := await self._frames.get()) is not None:
            if not self._unpaused.is_set():
                paused_at = time.monotonic()
                await self._unpaused.wait()
                start += time.monotonic() - paused_at
            self._position += frame.duration
            self.played_s += frame.duration
            delay = start + self._position - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        self._task = None
        self.on_playback_finished(playback_position=self._position, interrupted=False)

    def pause(self) -> None:
        super().pause()
        self._unpaused.clear()

    def resume(self) -> None:
        super().resume()
        self._unpaused.set()

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class Transcript(io.TextOutput):
    """The agent's words as the caller's app would show them."""

    def __init__(self) -> None:
        super().__init__(label="sim-transcript", next_in_chain=None)
        self.text: list[str] = []

    async def capture_text(self, text: str) -> None:
        self.text.append(text)

    def flush(self) -> None:
        pass


@dataclass
class Sent:
    payload: bytes
    destination_identities: list[str]
    topic: str | None


@dataclass
class LocalParticipant:
    """The agent's own participant in a room with no server: records what it publishes and
    keeps the RPC methods registered on it."""

    identity: str = "agent"
    sid: str = "PA_sim_agent"
    kind: int = rtc.ParticipantKind.PARTICIPANT_KIND_AGENT
    attributes: dict[str, str] = field(default_factory=dict)
    sent: list[Sent] = field(default_factory=list)
    rpc_methods: dict[str, Any] = field(default_factory=dict)

    async def publish_data(
        self,
        payload: bytes | str,
        *,
        reliable: bool = True,
        destination_identities: list[str] | None = None,
        topic: str = "",
    ) -> None:
        data = payload.encode() if isinstance(payload, str) else payload
        self.sent.append(Sent(data, list(destination_identities or []), topic or None))

    async def set_attributes(self, attributes: dict[str, str]) -> None:
        self.attributes.update(attributes)

    def register_rpc_method(self, method: str, handler: Any = None) -> Any:
        if handler is not None:
            self.rpc_methods[method] = handler
            return handler

        def register(fn: Any) -> Any:
            self.rpc_methods[method] = fn
            return fn

        return register

    def unregister_rpc_method(self, method: str) -> None:
        self.rpc_methods.pop(method, None)


@dataclass
class RemoteParticipant:
    """A participant of the simulated room, as the SFU would assert it."""

    identity: str
    sid: str = ""
    kind: int = rtc.ParticipantKind.PARTICIPANT_KIND_STANDARD
    attributes: dict[str, str] = field(default_factory=dict)


class Room(rtc.Room):
    """An unconnected `rtc.Room` used as the event bus, with a local participant stand-in."""

    def __init__(self, name: str, local: LocalParticipant) -> None:
        super().__init__()
        self._sim_name = name
        self._sim_local = local
        self.remote: dict[str, RemoteParticipant] = {}

    @property
    def name(self) -> str:
        return self._sim_name

    @property
    def local_participant(self) -> Any:
        return self._sim_local

    @property
    def remote_participants(self) -> Any:
        return self.remote

    def deliver(self, sender: RemoteParticipant, payload: bytes, topic: str) -> None:
        """A reliable data packet from `sender`, as the room would hand it to the agent."""
        packet = rtc.DataPacket(
            data=payload,
            kind=rtc.DataPacketKind.KIND_RELIABLE,
            participant=sender,  # type: ignore[arg-type]
            topic=topic,
        )
        self.emit("data_received", packet)
