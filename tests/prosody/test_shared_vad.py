"""One VAD inference for the session and prosody (docs/prosody.md): prosody heard through the
session's shared VAD cuts and measures each utterance as it does with a VAD of its own, on real
espeak-ng speech and the real silero VAD, and keeps its timeline when the session flushes the
VAD between turns."""

from __future__ import annotations

import asyncio
import contextlib

import numpy as np
import pytest
from livekit import rtc
from livekit.agents import vad as lk_vad
from livekit.plugins import silero

from voxkeep.prosody.shared_vad import SharedVAD
from voxkeep.prosody.stream import VAD_SLACK_S, AcousticStream, Heard
from voxkeep.sim.speech import ESPEAK_RATE, Voice, espeak

FRAME = ESPEAK_RATE // 50  # 20 ms
TURNS = ["I would like to plan a trip to Lisbon.", "Please book it for Friday morning."]


def frames(samples: np.ndarray, pause_s: float = 0.8) -> list[rtc.AudioFrame]:
    """The clip cut in 20 ms frames, with silence after it (the VAD ends the utterance)."""
    padded = np.concatenate([samples, np.zeros(int(pause_s * ESPEAK_RATE), dtype=np.int16)])
    padded = np.pad(padded, (0, -len(padded) % FRAME))
    return [
        rtc.AudioFrame(chunk.tobytes(), ESPEAK_RATE, 1, FRAME)
        for chunk in padded.reshape(-1, FRAME).astype(np.int16)
    ]


@pytest.fixture(scope="module")
def vad() -> lk_vad.VAD:
    return silero.VAD.load()


async def drain(stream: lk_vad.VADStream) -> None:
    """What the session does with its VAD stream's events (they are its turns)."""
    async for _ in stream:
        pass


async def caught_up(stream: AcousticStream) -> None:
    """Until the stream's VAD has heard all the audio and closed the utterance in it (on a busy
    machine that can take longer than `take` waits)."""
    while True:
        stream._changed.clear()  # (set by each event of its VAD)
        tracker = stream._tracker
        behind = tracker is None or stream._vad_s < tracker.pushed_s - VAD_SLACK_S
        if not behind and not (stream._heard and stream._heard[-1].end_s is None):
            return
        await stream._changed.wait()


async def heard_both_ways(
    vad: lk_vad.VAD, turns: list[list[rtc.AudioFrame]], *, flush_between: bool
) -> tuple[list[Heard | None], list[Heard | None]]:
    own, shared = AcousticStream(vad), AcousticStream(vad)
    session_vad = SharedVAD(vad)
    shared.hear_through(session_vad)
    stream = session_vad.stream()
    consumer = asyncio.create_task(drain(stream))
    got_own: list[Heard | None] = []
    got_shared: list[Heard | None] = []
    try:
        for n, turn in enumerate(turns):
            if n and flush_between:
                stream.flush()  # the session starting its VAD over after a turn
            for frame in turn:
                own.push(frame)
                stream.push_frame(frame)
                await asyncio.sleep(0)
            async with asyncio.timeout(30):  # both VADs catch up with the pause
                await caught_up(own)
                await caught_up(shared)
            got_own.append(await own.take(TURNS[n]))
            got_shared.append(await shared.take(TURNS[n]))
    finally:
        await stream.aclose()
        consumer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await consumer
        await own.aclose()
        await shared.aclose()
    return got_own, got_shared


@pytest.mark.parametrize("flush_between", [False, True], ids=["one-segment", "flushed"])
async def test_prosody_through_the_shared_vad_matches_its_own_vad(
    vad: lk_vad.VAD, flush_between: bool
) -> None:
    turns = [frames(await espeak(text, Voice())) for text in TURNS]
    got_own, got_shared = await heard_both_ways(vad, turns, flush_between=flush_between)
    for mine, theirs in zip(got_own, got_shared, strict=True):
        assert mine is not None and theirs is not None
        # the same utterance, to a VAD window or two (the flush restarts the VAD's state)
        assert abs(mine.prosody["speech_s"] - theirs.prosody["speech_s"]) < 0.1
        assert abs(mine.started_at - theirs.started_at) < 0.1
        assert abs(mine.ended_at - theirs.ended_at) < 0.1
        pitch_mine, pitch_theirs = mine.prosody["pitch"], theirs.prosody["pitch"]
        assert abs(pitch_mine["median_hz"] - pitch_theirs["median_hz"]) < 3
        assert 70 < pitch_theirs["median_hz"] < 200  # espeak-ng's default voice


class Broken:
    """A hearing that fails on the first frame."""

    def heard(self, stream: object, frame: rtc.AudioFrame) -> None:
        raise ValueError("broken")

    def detected(self, stream: object, event: lk_vad.VADEvent, at_s: float) -> None:
        raise ValueError("broken")

    def closed(self, stream: object) -> None:
        pass


async def test_a_failing_hearing_never_breaks_the_session_s_vad(vad: lk_vad.VAD) -> None:
    session_vad = SharedVAD(vad)
    session_vad.hearing = Broken()
    stream = session_vad.stream()
    for frame in frames(await espeak(TURNS[0], Voice())):
        stream.push_frame(frame)
    stream.end_input()
    kinds = set()
    async with asyncio.timeout(30):
        async for event in stream:
            kinds.add(event.type)
    assert {lk_vad.VADEventType.START_OF_SPEECH, lk_vad.VADEventType.END_OF_SPEECH} <= kinds
    assert session_vad.hearing is None  # let go: prosody stops, the call goes on
    await stream.aclose()
