"""The incremental half of the analyzer: audio in as it arrives, per-frame features out.

`Tracker.push` costs microseconds: samples are gathered, then decimated (a matrix product) and
run through the pitch tracker in blocks of 0.5 s, so the work per second of audio is the same as
for a whole recording and no push waits on a long computation. `Tracker.span` then hands the
summary step exactly the frames and signal of one utterance. Results do not depend on how the
audio was cut into pushes.
"""

from __future__ import annotations

import numpy as np

from voxkeep.prosody.dsp import (
    FRAME,
    HOP,
    RATE,
    Decimator,
    Floats,
    FrameFeatures,
    analyze_frames,
    frame_windows,
)

BATCH_FRAMES = 50
"""0.5 s blocks. Per block, numpy's fixed costs dominate small arrays: measured on 20 ms pushes
(scripts/bench/prosody.py), 0.2 s blocks cost RTF 0.0044 and 0.5 s blocks 0.0030, while the
push that runs a block stays near 1 ms and the end-of-turn finalize under 3.5 ms."""
KEEP_S = 90.0
"""Audio kept behind the newest sample. An utterance longer than this is summarized over its
last 90 s."""


class Tracker:
    def __init__(self, rate: int) -> None:
        self.rate = rate
        self._decimator = Decimator(rate)
        self._signal: Floats = np.empty(0)  # decimated audio, from absolute sample _origin
        self._origin = 0
        self._raw: list[Floats] = []  # input not yet decimated
        self._raw_len = 0
        self._pending: list[Floats] = []  # decimated, not yet analysed
        self._pending_len = 0
        self._features: list[FrameFeatures] = []
        self._first_frame = 0  # absolute index of the first frame in _features
        self._frames = 0  # frames analysed so far (absolute)
        self.pushed_s = 0.0  # seconds of input audio pushed

    def push(self, samples: Floats) -> None:
        """Add audio at the input rate, as float samples in [-1, 1]."""
        self.pushed_s += len(samples) / self.rate
        self._raw.append(samples)
        self._raw_len += len(samples)
        if self._raw_len * RATE >= BATCH_FRAMES * HOP * self.rate:  # a block's worth of input
            self._decimate()
            if self._ready_frames() >= BATCH_FRAMES:
                self._analyze()

    def _decimate(self) -> None:
        if not self._raw:
            return
        raw = self._raw[0] if len(self._raw) == 1 else np.concatenate(self._raw)
        self._raw.clear()
        self._raw_len = 0
        out = self._decimator.push(raw)
        if len(out):
            self._pending.append(out)
            self._pending_len += len(out)

    @property
    def kept_s(self) -> float:
        """Seconds of audio held for summaries (bounded: KEEP_S and a trimming step)."""
        return len(self._signal) / RATE

    def span(self, start_s: float, end_s: float) -> tuple[FrameFeatures, Floats, int]:
        """Frames whose centre lies in [start_s, end_s) (seconds since the first push), the
        8 kHz signal under them, and its offset: returned frame k reads the signal from
        sample `k * HOP - offset`."""
        self._decimate()
        self._analyze()
        start_s = max(start_s, end_s - KEEP_S)
        centre = FRAME / 2  # a frame's time is its centre
        lo = max(int(np.ceil((start_s * RATE - centre) / HOP)), self._first_frame)
        hi = min(int(np.ceil((end_s * RATE - centre) / HOP)), self._frames)
        if hi <= lo:
            return FrameFeatures.concat([]), np.empty(0), 0
        features = FrameFeatures.concat(self._features)
        rel = slice(lo - self._first_frame, hi - self._first_frame)
        picked = FrameFeatures(
            features.f0[rel], features.cmndf[rel], features.strength[rel], features.db[rel]
        )
        self._features = [features]
        s0 = max(lo * HOP - self._origin, 0)
        s1 = max((hi - 1) * HOP + FRAME - self._origin, s0)
        return picked, self._signal[s0:s1], s0 + self._origin - lo * HOP

    def _ready_frames(self) -> int:
        total = self._origin + len(self._signal) + self._pending_len
        return max((total - FRAME) // HOP + 1, 0) - self._frames

    def _analyze(self) -> None:
        if self._pending:
            self._signal = np.concatenate([self._signal, *self._pending])
            self._pending.clear()
            self._pending_len = 0
        count = self._ready_frames()
        if count <= 0:
            return
        rel_first = self._frames * HOP - self._origin
        windows = frame_windows(self._signal[rel_first:], 0, count)
        self._features.append(analyze_frames(np.ascontiguousarray(windows)))
        self._frames += count
        self._forget()

    def _forget(self) -> None:
        """Drop audio and frames older than KEEP_S behind the newest frame."""
        keep_frames = int(KEEP_S * RATE / HOP)
        excess = self._frames - self._first_frame - keep_frames
        if excess < 10 * RATE // HOP:  # trim in big steps (10 s), rarely
            return
        features = FrameFeatures.concat(self._features)
        self._features = [
            FrameFeatures(
                features.f0[excess:],
                features.cmndf[excess:],
                features.strength[excess:],
                features.db[excess:],
            )
        ]
        self._first_frame += excess
        drop = self._first_frame * HOP - self._origin
        if drop > 0:
            self._signal = self._signal[drop:]
            self._origin += drop
