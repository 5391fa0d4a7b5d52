"""One VAD inference for the session and for prosody (docs/prosody.md).

Prosody needs to know where each of the caller's utterances starts and ends, to the frame; the
session's own VAD stream already finds exactly that, over exactly the frames the session hears.
`SharedVAD` wraps the VAD the session is built with: each stream it makes runs the wrapped
VAD's stream and also tells a `Hearing` (the call's `AcousticStream`) every frame it was given
and every event it produced, so no second VAD runs on the same audio. A session may run more
than one stream at once (LiveKit's adapter for a recognizer that does not stream runs one of
its own): they hear the same frames, and the hearing follows one of them at a time.

Event timestamps count from the start of a VAD segment: a `flush()` (the session's way of
starting over after a recognizer's end of turn) resets them to zero. The stream keeps the
position of each flush in its audio, and maps each event back onto one timeline: a timestamp
lower than the previous one means the wrapped stream has moved on to the next segment.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

import structlog
from livekit import rtc
from livekit.agents import vad as lk_vad
from livekit.agents.utils import aio

log = structlog.get_logger(__name__)


class Hearing(Protocol):
    """What a `SharedVAD` tells, stream by stream: a new stream starts a new timeline."""

    def heard(self, stream: object, frame: rtc.AudioFrame) -> None:
        """A frame the session gave the VAD, in order."""

    def detected(self, stream: object, event: lk_vad.VADEvent, at_s: float) -> None:
        """An event of the VAD; `at_s`: its timestamp on the stream's timeline (seconds of
        audio heard since the stream's first frame)."""

    def closed(self, stream: object) -> None:
        """The stream ended: it hears nothing more."""


class SharedVAD(lk_vad.VAD):
    """`inner`, as the session's VAD, whose results `hearing` (set when the call starts
    measuring) receives too."""

    def __init__(self, inner: lk_vad.VAD) -> None:
        super().__init__(capabilities=inner.capabilities)
        self.inner = inner
        self.hearing: Hearing | None = None

    @property
    def model(self) -> str:
        return self.inner.model

    @property
    def provider(self) -> str:
        return self.inner.provider

    @property
    def min_silence_duration(self) -> float | None:
        """The wrapped VAD's, which the session checks against its turn detector."""
        found = getattr(self.inner, "min_silence_duration", None)
        return found if isinstance(found, int | float) else None

    def stream(self) -> lk_vad.VADStream:
        return _SharedStream(self, self.inner.stream())


class _SharedStream(lk_vad.VADStream):
    def __init__(self, vad: SharedVAD, inner: lk_vad.VADStream) -> None:
        self._shared = vad
        self._inner = inner
        self._heard_s = 0.0
        self._segments: deque[float] = deque()  # where each flush fell, not reached by events
        super().__init__(vad)

    async def _main_task(self) -> None:
        events = asyncio.create_task(self._forward_events(), name="shared_vad.events")
        try:
            async for item in self._input_ch:
                if isinstance(item, self._FlushSentinel):
                    self._segments.append(self._heard_s)
                    self._inner.flush()
                    continue
                if (hearing := self._shared.hearing) is not None:
                    self._tell(hearing.heard, item)
                self._heard_s += item.samples_per_channel / item.sample_rate
                self._inner.push_frame(item)
            self._inner.end_input()
            await events
        finally:
            await aio.cancel_and_wait(events)
            await self._inner.aclose()
            if (hearing := self._shared.hearing) is not None:
                self._tell(hearing.closed)

    async def _forward_events(self) -> None:
        origin, last = 0.0, 0.0
        async for event in self._inner:
            if event.timestamp < last and self._segments:  # the next segment's first event
                origin = self._segments.popleft()
            last = event.timestamp
            if (hearing := self._shared.hearing) is not None:
                self._tell(hearing.detected, event, origin + event.timestamp)
            self._event_ch.send_nowait(event)

    def _tell(self, what: Callable[..., None], *args: Any) -> None:
        """Tell the hearing, which must never break the session's own VAD: one that fails is
        let go (prosody stops; the call goes on)."""
        try:
            what(self, *args)
        except Exception as exc:  # noqa: BLE001 - prosody is an extra
            log.error("prosody.hearing_failed", error=type(exc).__name__)
            self._shared.hearing = None
