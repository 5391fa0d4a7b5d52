"""The LiveKit edge of the prosody plugin: hear the caller's audio, cut it into utterances.

When the session's VAD is a `SharedVAD` (the worker builds its sessions so), the stream hears
the frames the session gives its VAD, and that VAD's events mark where each utterance starts
and ends: one inference serves both. Otherwise `ProsodyTap` sits in the session's audio input
chain (`session.input.audio`), ahead of whatever the agent does with the frames (a recognizer
and the user's own `stt_node`, or a realtime model), and a VAD stream of our own marks the
utterances (the session's own events lag the frames; docs/livekit.md). When a user message is
committed, `take()` summarizes the utterances heard since the previous one.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

import structlog
from livekit import rtc
from livekit.agents import AgentSession, io
from livekit.agents import vad as lk_vad

from voxkeep.core import metrics
from voxkeep.prosody.analysis import as_floats, summarize_span
from voxkeep.prosody.shared_vad import SharedVAD
from voxkeep.prosody.tracker import Tracker

log = structlog.get_logger(__name__)

TAKE_WAIT_S = 1.0
"""How long `take()` waits for our VAD to catch up with the audio and close an utterance the
session already ended (off the reply path: only the message's write waits)."""
VAD_SLACK_S = 0.1
"""How far behind the audio our VAD may be and still count as caught up (its windows)."""
CLOCK_POINTS = 4000
"""(audio time, wall time) pairs kept to date an utterance: ~40 s of 10 ms frames."""


@dataclass(frozen=True, slots=True)
class Heard:
    """What the caller said in one user turn: its prosody, and when, in wall-clock time."""

    prosody: dict[str, Any]
    started_at: float
    ended_at: float


class ProsodyStream(Protocol):
    """One call's prosody source. A second source (a hosted emotion model, say) implements the
    same three methods and sets its own `source` in what `take` returns."""

    def push(self, frame: rtc.AudioFrame) -> None: ...

    async def take(self, transcript: str) -> Heard | None: ...

    async def aclose(self) -> None: ...


@dataclass
class _Utterance:
    start_s: float
    end_s: float | None = None


class AcousticStream:
    """Our numpy analyzer over the caller's audio (docs/prosody.md), one per call."""

    def __init__(self, vad: lk_vad.VAD) -> None:
        self._vad = vad
        self._shared: SharedVAD | None = None
        self._source: object = None  # the shared VAD's stream whose timeline is ours now
        self._tracker: Tracker | None = None
        self._refused_rate: int | None = None
        self._vad_stream: lk_vad.VADStream | None = None
        self._heard: list[_Utterance] = []
        self._changed = asyncio.Event()
        self._vad_s = 0.0  # how far into the audio our VAD has got
        self._tasks: set[asyncio.Task[None]] = set()
        self._clock: deque[tuple[float, float]] = deque(maxlen=CLOCK_POINTS)

    def listen(self, session: AgentSession[Any]) -> bool:
        """Hear the caller through `session`'s VAD when it is shared (nothing more to run),
        else through a tap on its audio input (see `tap`). False when the session has no
        audio input."""
        vad = session.vad
        if isinstance(vad, SharedVAD) and not _agent_has_own_vad(session):
            self.hear_through(vad)
            return True
        return tap(session, self)

    @property
    def shares_vad(self) -> bool:
        """Whether the caller is heard through the session's shared VAD (no VAD of our own)."""
        return self._shared is not None

    def hear_through(self, vad: SharedVAD) -> None:
        """Take the frames and events of `vad`'s streams (`heard`, `detected`) from now on."""
        self._shared, vad.hearing = vad, self

    def heard(self, stream: object, frame: rtc.AudioFrame) -> None:
        """A frame the session gave its shared VAD. The session may run several streams on the
        same frames: the first to hear one is followed until it closes (a new stream: a new
        timeline)."""
        if self._source is None:
            self._source = stream
            self._tracker = None
        if stream is self._source:
            self._hear(frame, own_vad=False)

    def closed(self, stream: object) -> None:
        """A stream of the shared VAD ended: the next one to hear a frame is followed."""
        if stream is self._source:
            self._source = None

    def detected(self, stream: object, event: lk_vad.VADEvent, at_s: float) -> None:
        """An event of the session's shared VAD, at `at_s` on the stream's timeline."""
        if stream is self._source and self._tracker is not None:
            self._on_event(event, at_s)

    def push(self, frame: rtc.AudioFrame) -> None:
        """One frame of the caller's audio, as the session took it from the room (our own VAD
        hears it too). Never raises: prosody is an extra, and this runs on the session's audio
        path."""
        self._hear(frame, own_vad=True)

    def _hear(self, frame: rtc.AudioFrame, *, own_vad: bool) -> None:
        try:
            tracker = self._tracker
            if tracker is None or tracker.rate != frame.sample_rate:
                tracker = self._restart(frame.sample_rate, own_vad=own_vad)
                if tracker is None:
                    return
            tracker.push(as_floats(frame.data, frame.num_channels))
            self._clock.append((tracker.pushed_s, time.time()))
            if self._vad_stream is not None:
                self._vad_stream.push_frame(frame)
        except Exception as exc:  # noqa: BLE001 - the caller's audio goes on without prosody
            log.error("prosody.frame_failed", error=type(exc).__name__)

    def _restart(self, rate: int, *, own_vad: bool) -> Tracker | None:
        """A new timeline at `rate`: the tracker, the VAD's (a VAD stream's timestamps count
        from its first frame) and the clock start over together. None for a rate too low to
        analyse: that audio gets no prosody, and the call goes on."""
        if rate == self._refused_rate:
            return None
        if self._tracker is not None:
            log.warning("prosody.rate_changed", sample_rate=rate)
        self._heard.clear()
        self._clock.clear()
        self._vad_s = 0.0
        self._close_vad()
        try:
            self._tracker = Tracker(rate)
        except ValueError:
            self._tracker, self._refused_rate = None, rate
            return None
        if own_vad:
            self._vad_stream = self._vad.stream()
            self._own(self._follow(self._vad_stream), "prosody.vad")
        return self._tracker

    async def _follow(self, stream: lk_vad.VADStream) -> None:
        async for ev in stream:
            self._on_event(ev, ev.timestamp)

    def _on_event(self, ev: lk_vad.VADEvent, at_s: float) -> None:
        self._vad_s = max(self._vad_s, at_s)
        if ev.type == lk_vad.VADEventType.START_OF_SPEECH:
            buffered = sum(f.samples_per_channel / f.sample_rate for f in ev.frames)
            self._heard.append(_Utterance(start_s=max(at_s - buffered, 0.0)))
        elif (
            ev.type == lk_vad.VADEventType.END_OF_SPEECH
            and self._heard
            and self._heard[-1].end_s is None
        ):
            self._heard[-1].end_s = at_s - ev.silence_duration
        self._changed.set()

    async def take(self, transcript: str) -> Heard | None:
        """The acoustic prosody of what the caller said since the last `take`, or None when no
        speech was heard. Our VAD may lag the audio (a loaded machine, audio that arrived in a
        burst) and close an utterance a moment after the session's did, so it waits briefly for
        both; an utterance still open then counts up to now."""
        pushed = self._tracker.pushed_s if self._tracker is not None else 0.0
        deadline = asyncio.get_running_loop().time() + TAKE_WAIT_S
        while self._vad_s < pushed - VAD_SLACK_S or (
            self._heard and all(u.end_s is None for u in self._heard)
        ):
            self._changed.clear()
            remaining = deadline - asyncio.get_running_loop().time()
            try:
                await asyncio.wait_for(self._changed.wait(), max(remaining, 0.0))
            except TimeoutError:
                break
        tracker = self._tracker
        if tracker is None or not self._heard:
            return None
        done = [u for u in self._heard if u.end_s is not None]
        if done:
            self._heard = [u for u in self._heard if u.end_s is None]
            start, end = done[0].start_s, max(u.end_s or 0.0 for u in done)
        else:
            start, end = self._heard[0].start_s, tracker.pushed_s
            self._heard[0].start_s = end  # the rest of it belongs to the next turn
        with metrics.PROSODY_SECONDS.time():
            prosody = summarize_span(tracker, start, end, len(transcript.split()))
        return Heard(prosody, self._wall_at(start), self._wall_at(end))

    def _wall_at(self, audio_s: float) -> float:
        """The wall-clock time a point of the audio arrived, interpolated between the clock
        points around it; searched from the newest, since a turn is recent audio."""
        later: tuple[float, float] | None = None
        for point in reversed(self._clock):
            if point[0] <= audio_s:
                if later is None or later[0] == point[0]:
                    return point[1]
                share = (audio_s - point[0]) / (later[0] - point[0])
                return point[1] + share * (later[1] - point[1])
            later = point
        return self._clock[0][1] if self._clock else time.time()

    def _close_vad(self) -> None:
        stream, self._vad_stream = self._vad_stream, None
        if stream is not None:
            self._own(stream.aclose(), "prosody.vad_close")

    def _own(self, work: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def aclose(self) -> None:
        if self._shared is not None and self._shared.hearing is self:
            self._shared.hearing = None
        followers = [t for t in self._tasks if t.get_name() == "prosody.vad"]
        for task in followers:
            task.cancel()
        self._close_vad()
        await asyncio.gather(*self._tasks, return_exceptions=True)


class ProsodyTap(io.AudioInput):
    """A link in the session's audio input chain that hands each frame to `stream` on its way
    to the agent (see `tap`)."""

    def __init__(self, source: io.AudioInput, stream: ProsodyStream) -> None:
        super().__init__(label="prosody", source=source)
        self._stream = stream

    async def __anext__(self) -> rtc.AudioFrame:
        frame = await super().__anext__()
        self._stream.push(frame)
        return frame


def _agent_has_own_vad(session: AgentSession[Any]) -> bool:
    """Whether the agent the session runs now brings a VAD of its own (the shared one, the
    session's, is then not the one that hears the caller)."""
    try:
        own = session.current_agent.vad
    except RuntimeError:  # not started: the agent it starts with is not known here
        return False
    return isinstance(own, lk_vad.VAD) and not isinstance(own, SharedVAD)


def tap(session: AgentSession[Any], stream: ProsodyStream) -> bool:
    """Let `stream` hear the caller's audio in `session`, once it has started: the tap goes in
    front of whatever the session reads from (the room, or the simulator's microphone). False
    when the session has no audio input (a text-only session)."""
    source = session.input.audio
    if source is None:
        return False
    session.input.audio = ProsodyTap(source, stream)
    return True
