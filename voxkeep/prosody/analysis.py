"""One utterance in, its acoustic prosody out (docs/prosody.md): the tracker and the summary put
together."""

from __future__ import annotations

from typing import Any

import numpy as np

from voxkeep.prosody.dsp import Floats
from voxkeep.prosody.summary import summarize
from voxkeep.prosody.tracker import Tracker


def as_floats(pcm: bytes | memoryview, channels: int = 1) -> Floats:
    """16-bit PCM (interleaved when `channels` > 1) as mono floats in [-1, 1]."""
    samples = np.frombuffer(pcm, dtype=np.int16).astype(np.float64) / 32768.0
    if channels > 1:
        usable = len(samples) - len(samples) % channels
        samples = samples[:usable].reshape(-1, channels).mean(axis=1)
    return samples


def summarize_span(tracker: Tracker, start_s: float, end_s: float, words: int) -> dict[str, Any]:
    frames, signal, offset = tracker.span(start_s, end_s)
    return summarize(frames, signal, offset, words)


def analyze(samples: Floats, rate: int, words: int = 0) -> dict[str, Any]:
    """The acoustic prosody of a whole recording (the same result as streaming it)."""
    tracker = Tracker(rate)
    samples = np.asarray(samples, dtype=np.float64)
    block = max(rate // 5, 1)  # as a stream would arrive; the result is the same either way
    for start in range(0, len(samples), block):
        tracker.push(samples[start : start + block])
    return summarize_span(tracker, 0.0, tracker.pushed_s, words)
