"""Voice quality from glottal cycles: jitter and shimmer (local, as Praat defines them).

Cycles are found by peak picking guided by the pitch track: from one peak, the next lies about
one period on. Positions and amplitudes are refined by parabolic interpolation, which matters
at 8 kHz where a sample is ~2 % of a 150 Hz period.
"""

from __future__ import annotations

import numpy as np

from agent.plugins.prosody.dsp import FRAME, HOP, RATE, Floats

MIN_RUN_FRAMES = 4
MAX_PERIOD_RATIO = 1.3  # consecutive periods further apart than this are not one voice


def _pulses(x: Floats, f0_at: Floats) -> tuple[Floats, Floats]:
    """Cycle peaks in one voiced stretch (`f0_at` gives the F0 at every sample): positions in
    samples and heights, refined by a parabola through each peak and its neighbours.

    Where the cycles should be comes from integrating the F0 track, anchored at the highest
    sample of the first cycle; each is then searched for within 30 % of a period either way.
    """
    first_period = int(RATE / f0_at[0])
    if len(x) < 3 * first_period:
        return np.empty(0), np.empty(0)
    anchor = int(np.argmax(x[:first_period]))
    cycles = np.cumsum(f0_at[anchor:]) / RATE  # cycles elapsed since the anchor
    expected = anchor + np.searchsorted(cycles, np.arange(1, int(cycles[-1]) + 1))
    expected = np.concatenate([[anchor], expected[expected < len(x)]])
    reach = np.maximum((0.3 * RATE / f0_at[expected]).astype(np.int64), 1)
    offsets = np.arange(-reach.max(), reach.max() + 1)
    idx = expected[:, None] + offsets
    outside = (np.abs(offsets) > reach[:, None]) | (idx < 1) | (idx >= len(x) - 1)
    values = np.where(outside, -np.inf, x[np.clip(idx, 0, len(x) - 1)])
    peak = idx[np.arange(len(idx)), np.argmax(values, axis=1)]
    peak = np.unique(np.clip(peak, 1, len(x) - 2))
    a, b, c = x[peak - 1], x[peak], x[peak + 1]
    denom = a - 2 * b + c
    with np.errstate(divide="ignore", invalid="ignore"):
        shift = np.where(denom < 0, np.clip(0.5 * (a - c) / denom, -0.5, 0.5), 0.0)
    return peak + shift, b - 0.25 * (a - c) * shift


def jitter_shimmer(
    f0: Floats, signal: Floats, signal_offset: int
) -> tuple[float | None, float | None]:
    """Local jitter and shimmer over the voiced runs of a span.

    `f0` is the per-frame track (NaN = unvoiced); frame k's window starts at sample
    `k * HOP - signal_offset` of `signal`.
    """
    voiced = np.isfinite(f0)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], voiced.astype(np.int8), [0]])))
    periods: list[Floats] = []
    period_diffs: list[Floats] = []
    amps: list[Floats] = []
    amp_diffs: list[Floats] = []
    centre = FRAME // 2
    for start, stop in zip(edges[::2], edges[1::2], strict=True):
        if stop - start < MIN_RUN_FRAMES:
            continue
        s0 = start * HOP + centre - signal_offset
        s1 = (stop - 1) * HOP + centre - signal_offset
        if s0 < 0 or s1 > len(signal):
            continue
        seg = signal[s0:s1]
        if -seg.min() > seg.max():  # follow the stronger polarity
            seg = -seg
        centres = np.arange(start, stop) * HOP + centre - signal_offset - s0
        f0_at = np.interp(np.arange(len(seg)), centres, f0[start:stop])
        pos, amp = _pulses(seg, f0_at)
        if len(pos) < 3:
            continue
        t = np.diff(pos) / RATE
        good = (t >= 1 / 500) & (t <= 1 / 65) & (amp[1:] > 0) & (amp[:-1] > 0)
        # a pair of consecutive periods counts when both are good and alike (Praat's factor)
        ratio = np.maximum(t[1:], t[:-1]) / np.minimum(t[1:], t[:-1])
        pair = good[1:] & good[:-1] & (ratio <= MAX_PERIOD_RATIO)
        periods.append(t[good])
        amps.append(amp[1:][good])
        period_diffs.append(np.abs(np.diff(t))[pair])
        amp_diffs.append(np.abs(np.diff(amp[1:]))[pair])
    diffs = np.concatenate(period_diffs) if period_diffs else np.empty(0)
    if len(diffs) < 10:
        return None, None
    jitter = float(diffs.mean() / np.concatenate(periods).mean())
    shimmer = float(np.concatenate(amp_diffs).mean() / np.concatenate(amps).mean())
    return jitter, shimmer
