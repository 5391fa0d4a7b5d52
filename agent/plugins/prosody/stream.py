"""The LiveKit edge of the prosody plugin: tee the caller's audio, cut it into utterances.

`Agent.stt_node` passes the caller's frames through `ProsodyStream.tee`, so prosody is measured
from exactly the audio the recognizer consumed. A VAD stream of our own marks where each
utterance starts and ends (the default node's events lag the frames; docs/livekit.md). At the
end of a user turn, `take()` summarizes the utterances heard since the previous turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

import structlog
from livekit import rtc
from livekit.agents import vad as lk_vad

from agent.plugins.prosody.analysis import as_floats, summarize_span
from agent.plugins.prosody.tracker import Tracker

log = structlog.get_logger(__name__)

TAKE_WAIT_S = 0.5
"""How long `take()` waits for our VAD to close an utterance the session already ended."""
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

    def tee(self, audio: AsyncIterable[rtc.AudioFrame]) -> AsyncIterator[rtc.AudioFrame]: ...

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
        self._tracker: Tracker | None = None
        self._heard: list[_Utterance] = []
        self._changed = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._clock: deque[tuple[float, float]] = deque(maxlen=CLOCK_POINTS)

    async def tee(self, audio: AsyncIterable[rtc.AudioFrame]) -> AsyncIterator[rtc.AudioFrame]:
        # a new tee (the session restarted its recognizer) starts a new timeline: the VAD's
        # timestamps count from its first frame, and so must the tracker's
        self._tracker = None
        self._heard.clear()
        self._clock.clear()
        vad_stream = self._vad.stream()
        task = asyncio.create_task(self._follow(vad_stream), name="prosody.vad")
        self._tasks.add(task)
        try:
            async for frame in audio:
                self._push(frame)
                vad_stream.push_frame(frame)
                yield frame
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            self._tasks.discard(task)
            await vad_stream.aclose()

    def _push(self, frame: rtc.AudioFrame) -> None:
        if self._tracker is None or self._tracker.rate != frame.sample_rate:
            if self._tracker is not None:
                log.warning("prosody.rate_changed", sample_rate=frame.sample_rate)
            self._tracker = Tracker(frame.sample_rate)
            self._heard.clear()
            self._clock.clear()
        try:
            self._tracker.push(as_floats(frame.data, frame.num_channels))
        except ValueError:  # a rate too low to analyse: no prosody, the call goes on
            self._tracker = None
            return
        self._clock.append((self._tracker.pushed_s, time.time()))

    async def _follow(self, stream: lk_vad.VADStream) -> None:
        async for ev in stream:
            if ev.type == lk_vad.VADEventType.START_OF_SPEECH:
                buffered = sum(f.samples_per_channel / f.sample_rate for f in ev.frames)
                self._heard.append(_Utterance(start_s=max(ev.timestamp - buffered, 0.0)))
            elif ev.type == lk_vad.VADEventType.END_OF_SPEECH:
                if self._heard and self._heard[-1].end_s is None:
                    self._heard[-1].end_s = ev.timestamp - ev.silence_duration
                self._changed.set()

    async def take(self, transcript: str) -> Heard | None:
        """The acoustic prosody of what the caller said since the last `take`, or None when no
        speech was heard. Our VAD may close an utterance a moment after the session's did, so
        with none closed yet it waits briefly; an utterance still open then counts up to now."""
        if self._heard and all(u.end_s is None for u in self._heard):
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), TAKE_WAIT_S)
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

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        self._tasks.clear()
