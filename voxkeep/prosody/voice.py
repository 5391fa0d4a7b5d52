"""Voice quality from glottal cycles: jitter and shimmer (local, as Praat defines them).

Cycles are found by peak picking guided by the pitch track: where the cycles should be comes
from integrating F0 from an anchor (the highest sample of each voiced run's first period); each
is then searched for within 30 % of a period either way, and refined by a parabola through the
peak and its neighbours, which matters at 8 kHz where a sample is ~2 % of a 150 Hz period. All
runs of a span are done in one vectorized pass: this runs at the end of a turn.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from voxkeep.prosody.dsp import FRAME, HOP, RATE, Floats

MIN_RUN_FRAMES = 4
MAX_PERIOD_RATIO = 1.3  # consecutive periods further apart than this are not one voice
SEARCH = 0.3  # of a period, either side of where a cycle is expected
Ints = npt.NDArray[np.intp]


def _runs(f0: Floats, samples: int, offset: int) -> tuple[Ints, Ints]:
    """Sample ranges [start, stop) of the voiced runs long enough to measure."""
    voiced = np.isfinite(f0)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], voiced.astype(np.int8), [0]])))
    starts, stops = edges[::2], edges[1::2]
    keep = stops - starts >= MIN_RUN_FRAMES
    centre = FRAME // 2 - offset
    s0 = starts[keep] * HOP + centre
    s1 = (stops[keep] - 1) * HOP + centre
    inside = (s0 >= 0) & (s1 <= samples)
    return s0[inside], s1[inside]


def _cycles(f0: Floats, signal: Floats, offset: int) -> tuple[Floats, Floats, Ints]:
    """Peak position (samples), height and run number of every cycle found."""
    s0, s1 = _runs(f0, len(signal), offset)
    if not len(s0):
        return np.empty(0), np.empty(0), np.empty(0, dtype=np.intp)
    centres = np.arange(len(f0)) * HOP + FRAME // 2 - offset
    finite = np.isfinite(f0)
    f0_at = np.interp(np.arange(len(signal)), centres[finite], f0[finite])
    in_run = np.zeros(len(signal), dtype=bool)
    run_of = np.full(len(signal), -1, dtype=np.intp)
    anchors = []
    polarity = np.ones(len(signal))
    for run, (a, b) in enumerate(zip(s0, s1, strict=True)):
        in_run[a:b] = True
        run_of[a:b] = run
        seg = signal[a:b]
        if -seg.min() > seg.max():  # follow each run's stronger polarity
            polarity[a:b] = -1.0
        first = max(int(RATE / f0_at[a]), 1)
        anchors.append(a + int(np.argmax(seg[:first] * polarity[a])))
    x = signal * polarity
    cycles = np.cumsum(np.where(in_run, f0_at, 0.0)) / RATE
    anchor_at = np.array(anchors)
    since = cycles - cycles[anchor_at][np.maximum(run_of, 0)]
    count = np.floor(since + 1e-9)
    step = np.flatnonzero(np.diff(count) > 0) + 1  # where a new cycle begins
    expected = np.concatenate([anchor_at, step[in_run[step] & (since[step] > 0.5)]])
    expected.sort()
    reach = np.maximum((SEARCH * RATE / f0_at[expected]).astype(np.intp), 1)
    offsets = np.arange(-reach.max(), reach.max() + 1)
    idx = expected[:, None] + offsets
    valid = (np.abs(offsets) <= reach[:, None]) & (idx >= 1) & (idx < len(x) - 1)
    clipped = np.clip(idx, 0, len(x) - 1)
    valid &= run_of[clipped] == run_of[expected][:, None]
    values = np.where(valid, x[clipped], -np.inf)
    peak = clipped[np.arange(len(idx)), np.argmax(values, axis=1)]
    peak = np.unique(np.clip(peak, 1, len(x) - 2))
    a, b, c = x[peak - 1], x[peak], x[peak + 1]
    denom = a - 2 * b + c
    with np.errstate(divide="ignore", invalid="ignore"):
        shift = np.where(denom < 0, np.clip(0.5 * (a - c) / denom, -0.5, 0.5), 0.0)
    return peak + shift, b - 0.25 * (a - c) * shift, run_of[peak]


def jitter_shimmer(
    f0: Floats, signal: Floats, signal_offset: int
) -> tuple[float | None, float | None]:
    """Local jitter and shimmer over the voiced runs of a span, or None with too few cycles.

    `f0` is the per-frame track (NaN = unvoiced); frame k's window starts at sample
    `k * HOP - signal_offset` of `signal`.
    """
    pos, amp, run = _cycles(f0, signal, signal_offset)
    if len(pos) < 3:
        return None, None
    t = np.diff(pos) / RATE
    same = run[1:] == run[:-1]
    good = same & (t >= 1 / 500) & (t <= 1 / 65) & (amp[1:] > 0) & (amp[:-1] > 0)
    # a pair of consecutive periods counts when both are good and alike (Praat's factor)
    ratio = np.maximum(t[1:], t[:-1]) / np.minimum(t[1:], t[:-1])
    pair = good[1:] & good[:-1] & (ratio <= MAX_PERIOD_RATIO)
    if pair.sum() < 10:
        return None, None
    jitter = float(np.abs(np.diff(t))[pair].mean() / t[good].mean())
    heights = amp[1:]
    shimmer = float(np.abs(np.diff(heights))[pair].mean() / heights[good].mean())
    return jitter, shimmer
