"""Signal processing for the prosody analyzer: pure numpy, no state but what is passed in.

Everything runs at 8 kHz on a 10 ms hop: pitch needs nothing above 4 kHz, and half the rate of
16 kHz halves the work while keeping the F0 error near 2 cents (docs/prosody.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]

RATE = 8000
HOP = 80  # 10 ms
WINDOW = 200  # YIN integration window, 25 ms: more than one period of the lowest F0
F0_MIN = 65.0
F0_MAX = 500.0
TAU_MIN = int(RATE // F0_MAX)  # 16
TAU_MAX = int(np.ceil(RATE / F0_MIN))  # 124
FRAME = WINDOW + TAU_MAX + 1  # samples one analysis frame reads
_NFFT = 384  # >= FRAME: lags up to TAU_MAX never wrap around
YIN_DIP = 0.15
"""First dip of the cumulative-mean-normalized difference under this is the period (YIN)..."""
NEAR_BEST = 0.1
"""...or, in noise where no dip gets that low, the first dip within this of the lowest: a
subharmonic (twice the period) dips about as low, and the first dip is the true period."""
VOICED_MAX_CMNDF = 0.35
"""A frame is voiced when its period's normalized difference is under this. Noise stays near
1.0 (its difference function only grows with lag); clean speech sits near 0.05 and speech at
0 dB SNR near 0.5, so this keeps most of the noisy speech and none of the noise."""
SILENCE_DB = -60.0
"""Frames quieter than this (dBFS) are never voiced, whatever their periodicity."""


@dataclass(frozen=True, slots=True)
class FrameFeatures:
    """Per-frame features of a run of analysis frames, one entry per 10 ms hop."""

    f0: Floats  # Hz, NaN where unvoiced
    cmndf: Floats  # YIN's normalized difference at the chosen period (lower = more periodic)
    strength: Floats  # normalized autocorrelation at the period, 0..1
    db: Floats  # frame level, dBFS

    @staticmethod
    def concat(parts: list[FrameFeatures]) -> FrameFeatures:
        if not parts:
            empty = np.empty(0)
            return FrameFeatures(empty, empty, empty, empty)
        return FrameFeatures(
            np.concatenate([p.f0 for p in parts]),
            np.concatenate([p.cmndf for p in parts]),
            np.concatenate([p.strength for p in parts]),
            np.concatenate([p.db for p in parts]),
        )


def _lowpass(rate: int) -> Floats:
    """A windowed-sinc low-pass cutting at 3.6 kHz, for taking `rate` down to 8 kHz."""
    ratio = rate / RATE
    half = int(np.ceil(8 * ratio))
    n = np.arange(-half, half + 1, dtype=np.float64)
    cutoff = 3600.0 / rate
    taps = 2 * cutoff * np.sinc(2 * cutoff * n) * np.blackman(len(n))
    taps /= taps.sum()
    return taps.astype(np.float64)


class Decimator:
    """Streaming resampler from any input rate to 8 kHz (anti-aliased, exact positions).

    Output sample `n` sits at input position `n * rate / 8000`, computed with integers, so
    the result does not depend on how the input was cut into pushes.
    """

    def __init__(self, rate: int) -> None:
        if rate < RATE // 2:
            raise ValueError(f"sample rate {rate} is too low for prosody")
        self.rate = rate
        self._step = Fraction(rate, RATE)
        self._taps = _lowpass(rate) if rate > RATE else np.ones(1)
        self._half = len(self._taps) // 2
        # the buffer starts with `half` zeros so output 0 is centred on input sample 0
        self._buf: Floats = np.zeros(self._half)
        self._dropped = 0  # input samples removed from the front of _buf
        self._produced = 0

    def push(self, samples: Floats) -> Floats:
        self._buf = np.concatenate([self._buf, samples]) if len(self._buf) else samples
        taps, half = self._taps, self._half
        num, den = self._step.numerator, self._step.denominator
        # output n reads input from floor(n * num / den) to 2 * half + 1 samples on (plus one
        # more to interpolate): those whose last sample has arrived are ready
        last = self._dropped + len(self._buf) - 2 - 2 * half
        if last < 0:
            return np.empty(0)
        end = ((last + 1) * den - 1) // num + 1
        if end <= self._produced:
            return np.empty(0)
        steps = np.arange(self._produced, end, dtype=np.int64) * num
        self._produced = end
        rel = steps // den - self._dropped
        windows = np.lib.stride_tricks.sliding_window_view(self._buf, len(taps))
        # einsum, not `@`: a matrix product calls OpenBLAS, whose first call in a process takes
        # about 6 MB for its buffers (a job process's memory per call, docs/benchmarks.md)
        if den == 1:  # an integer ratio: every num-th window, a strided view with no copy
            picked = windows[rel[0] : rel[-1] + 1 : num]
            out = np.einsum("nk,k->n", picked, taps)
        else:
            frac = (steps % den) / den
            out = (
                np.einsum("nk,k->n", windows[rel], taps) * (1.0 - frac)
                + np.einsum("nk,k->n", windows[rel + 1], taps) * frac
            )
        keep_from = (end * num) // den - self._dropped
        if keep_from > 0:
            self._buf = self._buf[keep_from:]
            self._dropped += keep_from
        return np.asarray(out, dtype=np.float64)


def analyze_frames(frames: Floats) -> FrameFeatures:
    """YIN on a batch of analysis frames (rows of FRAME samples at 8 kHz)."""
    count = frames.shape[0]
    if count == 0:
        return FrameFeatures.concat([])
    x = frames - frames.mean(axis=1, keepdims=True)  # DC offset never looks like a pitch

    spec_w = np.fft.rfft(x[:, :WINDOW], _NFFT)
    spec = np.fft.rfft(x, _NFFT)
    corr = np.fft.irfft(np.conj(spec_w) * spec, _NFFT)[:, : TAU_MAX + 1]
    sq = np.concatenate([np.zeros((count, 1)), np.cumsum(x * x, axis=1)], axis=1)
    energy = sq[:, WINDOW : WINDOW + TAU_MAX + 1] - sq[:, : TAU_MAX + 1]  # e(tau)
    diff = np.maximum(energy[:, :1] + energy - 2.0 * corr, 0.0)
    diff[:, 0] = 0.0
    running = np.cumsum(diff[:, 1:], axis=1)
    lags = np.arange(1, TAU_MAX + 1, dtype=np.float64)
    cmndf = np.ones_like(diff)
    with np.errstate(divide="ignore", invalid="ignore"):
        cmndf[:, 1:] = np.where(running > 0, diff[:, 1:] * lags / running, 1.0)

    inner = cmndf[:, TAU_MIN:TAU_MAX]  # lags TAU_MIN .. TAU_MAX-1, each with both neighbours
    left = cmndf[:, TAU_MIN - 1 : TAU_MAX - 1]
    right = cmndf[:, TAU_MIN + 1 : TAU_MAX + 1]
    local_min = (inner <= left) & (inner <= right)
    masked = np.where(local_min, inner, np.inf)
    lowest = masked.min(axis=1, keepdims=True)
    dips = local_min & ((inner < YIN_DIP) | (inner <= lowest + NEAR_BEST))
    best = np.argmax(dips, axis=1)  # the first; rows with no local minimum give lag TAU_MIN
    rows = np.arange(count)
    tau = best + TAU_MIN
    y0, y1, y2 = diff[rows, tau - 1], diff[rows, tau], diff[rows, tau + 1]
    denom = y0 - 2.0 * y1 + y2
    with np.errstate(divide="ignore", invalid="ignore"):
        shift = np.where(denom > 0, 0.5 * (y0 - y2) / denom, 0.0)
    shift = np.clip(shift, -0.5, 0.5)
    period = tau + shift

    total = energy[rows, 0] + energy[rows, tau]
    with np.errstate(divide="ignore", invalid="ignore"):
        strength = np.where(total > 0, 1.0 - diff[rows, tau] / total, 0.0)
    strength = np.clip(strength, 0.0, 1.0)
    mid = (FRAME - WINDOW) // 2
    power = (sq[:, mid + WINDOW] - sq[:, mid]) / WINDOW
    db = 10.0 * np.log10(power + 1e-12)
    best_cmndf = cmndf[rows, tau]
    voiced = (best_cmndf < VOICED_MAX_CMNDF) & (db > SILENCE_DB)
    if voiced.any():  # only voiced frames need the exact period
        period[voiced] = _refine(period[voiced], spec_w[voiced], spec[voiced], energy[voiced])
    f0 = np.where(voiced, RATE / period, np.nan)
    return FrameFeatures(f0=f0, cmndf=best_cmndf, strength=strength, db=db)


_BINS = np.arange(_NFFT // 2 + 1, dtype=np.float64)
_BIN_WEIGHTS = np.where((_BINS == 0) | (_BINS == _NFFT // 2), 1.0, 2.0) / _NFFT
REFINE_STEP = 0.2
_STEP_ON = np.exp(2j * np.pi * REFINE_STEP * _BINS / _NFFT)
_STEP_BACK = np.conj(_STEP_ON)


def _refine(
    period: Floats,
    spec_w: npt.NDArray[np.complex128],
    spec: npt.NDArray[np.complex128],
    energy: Floats,
) -> Floats:
    """Sharpen a period found by a parabola through integer lags.

    A parabola through lags one sample apart is biased by several cents at high F0 (a period of
    27 samples at 300 Hz). Here the difference function is evaluated between the samples (the
    correlation by its Fourier series, which is exact for band-limited audio; the energy term,
    which varies slowly, linearly) and a second parabola is fitted 0.2 samples apart.
    """
    cross = np.conj(spec_w) * spec * _BIN_WEIGHTS  # (frames, bins)
    turn = np.exp(2j * np.pi / _NFFT * period)  # one bin's phase step at this lag
    phases = np.empty_like(cross)
    phases[:, 0] = 1.0
    phases[:, 1:] = turn[:, None]
    at = cross * np.cumprod(phases, axis=1)  # series terms at the period itself
    corr = np.stack([(at * _STEP_BACK).sum(1).real, at.sum(1).real, (at * _STEP_ON).sum(1).real])
    lags = period + REFINE_STEP * np.array([[-1.0], [0.0], [1.0]])  # (3, frames)
    rows = np.arange(len(period))
    low = np.clip(np.floor(lags).astype(np.int64), 0, TAU_MAX - 1)
    frac = lags - low
    e = energy[rows, low] * (1.0 - frac) + energy[rows, low + 1] * frac
    d = energy[:, 0] + e - 2.0 * corr
    denom = d[0] - 2.0 * d[1] + d[2]
    with np.errstate(divide="ignore", invalid="ignore"):
        shift = np.where(denom > 0, 0.5 * (d[0] - d[2]) / denom, 0.0)
    return period + REFINE_STEP * np.clip(shift, -1.0, 1.0)


def frame_windows(signal: Floats, first: int, count: int) -> Floats:
    """Rows of FRAME samples starting every HOP from frame index `first` (no copy)."""
    view = np.lib.stride_tricks.sliding_window_view(signal, FRAME)[::HOP]
    return view[first : first + count]
