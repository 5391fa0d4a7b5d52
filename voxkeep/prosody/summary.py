"""The end-of-turn half of the analyzer: one utterance's frames to the prosody groups of
docs/prosody.md.

Pure functions over arrays. A group is None when the utterance has too little of what it
measures; nothing here raises on silence, noise or short input, and no NaN reaches the result.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from voxkeep.prosody.dsp import HOP, RATE, Floats, FrameFeatures
from voxkeep.prosody.voice import jitter_shimmer

FRAME_S = HOP / RATE
PAUSE_MIN_S = 0.2
ACTIVE_BELOW_PEAK_DB = 30.0
"""A frame within this many dB of the utterance's loud frames (95th percentile) is speech."""
PITCH_MIN_VOICED_S = 0.3
VOICE_MIN_VOICED_S = 0.75
RATE_MIN_SPEECH_S = 0.3
SYLLABLES_PER_WORD = 1.5  # English average, for the acoustic rate fallback


def _r(value: float | np.floating[Any], digits: int) -> float:
    return round(float(value), digits)


def _runs(mask: npt.NDArray[np.bool_]) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Start and stop indices of the True runs of a boolean array."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return edges[::2], edges[1::2]


def _slope(x: npt.NDArray[np.floating[Any]], y: Floats) -> float:
    """The least-squares line's slope, as `np.polyfit(x, y, 1)` gives it, without LAPACK (whose
    first call in a process costs its memory about 1 MB)."""
    dx = x - x.mean()
    return float(np.sum(dx * (y - y.mean())) / np.sum(dx * dx))


def _pitch(f0: Floats, times: npt.NDArray[np.floating[Any]]) -> dict[str, float]:
    st = 12.0 * np.log2(f0)
    p10, p50, p90 = np.percentile(f0, [10, 50, 90])
    slope = _slope(times, st) if np.ptp(times) > 0 else 0.0
    return {
        "median_hz": _r(p50, 1),
        "p10_hz": _r(p10, 1),
        "p90_hz": _r(p90, 1),
        "range_st": _r(12.0 * np.log2(p90 / p10), 2),
        "std_st": _r(np.std(st), 2),
        "slope_st_per_s": _r(slope, 2),
    }


def _syllables(db: Floats, voiced: npt.NDArray[np.bool_]) -> int:
    """Syllable nuclei: loudness peaks inside voiced runs, 3 dB above the dips around them."""
    count = 0
    for start, stop in zip(*_runs(voiced), strict=True):
        if stop - start < 3:
            continue
        run = np.convolve(db[start:stop], np.ones(3) / 3, mode="same")
        low, peak = run[0], -np.inf
        for value in run:
            if value > peak:
                peak = value
            if peak - value >= 3.0 and peak - low >= 3.0:
                count, low, peak = count + 1, value, -np.inf
            low = min(low, value)
        if peak - low >= 3.0 or count == 0:
            count += 1
    return count


def summarize(
    frames: FrameFeatures, signal: Floats, signal_offset: int, words: int
) -> dict[str, Any]:
    """The acoustic groups (everything but `relative`) for one utterance.

    `signal_offset` places the signal: frame k's window starts at `k * HOP - signal_offset`.
    `words` is the transcript's word count (0 when there is none).
    """
    db = frames.db
    finite = np.isfinite(frames.f0)
    loud = np.percentile(db, 95) if len(db) else -np.inf
    active = (db > max(loud - ACTIVE_BELOW_PEAK_DB, -60.0)) | finite
    result: dict[str, Any] = {"v": 1, "source": "acoustic", "speech_s": 0.0, "voiced_s": 0.0}
    result.update(pitch=None, loudness=None, pauses=None, rate=None, voice=None)
    if not active.any():
        return result

    first, last = np.flatnonzero(active)[[0, -1]]
    inside = active[first : last + 1]
    gaps = [(b - a) * FRAME_S for a, b in zip(*_runs(~inside), strict=True)]
    pauses = [g for g in gaps if g >= PAUSE_MIN_S - 1e-9]
    speech_s = len(inside) * FRAME_S - sum(pauses)
    voiced = finite & active
    voiced_s = float(voiced.sum()) * FRAME_S
    result["speech_s"] = _r(speech_s, 2)
    result["voiced_s"] = _r(voiced_s, 2)

    speech_db = db[first : last + 1][inside]
    result["loudness"] = {
        "mean_db": _r(speech_db.mean(), 1),
        "std_db": _r(speech_db.std(), 1),
        "range_db": _r(np.percentile(speech_db, 95) - np.percentile(speech_db, 5), 1),
    }
    result["pauses"] = {
        "count": len(pauses),
        "total_s": _r(sum(pauses), 2),
        "mean_s": _r(sum(pauses) / len(pauses), 2) if pauses else 0.0,
    }
    if speech_s >= RATE_MIN_SPEECH_S:
        if words > 0:
            result["rate"] = {"words_per_s": _r(words / speech_s, 2), "source": "transcript"}
        else:
            syllables = _syllables(db, voiced)
            estimate = syllables / SYLLABLES_PER_WORD / speech_s
            result["rate"] = {"words_per_s": _r(estimate, 2), "source": "acoustic"}
    if voiced_s >= PITCH_MIN_VOICED_S:
        times = np.flatnonzero(voiced) * FRAME_S
        result["pitch"] = _pitch(frames.f0[voiced], times)
    if voiced_s >= VOICE_MIN_VOICED_S:
        r = np.clip(frames.strength[voiced], 1e-3, 0.999)
        hnr = float(np.mean(10.0 * np.log10(r / (1.0 - r))))
        jitter, shimmer = jitter_shimmer(np.where(voiced, frames.f0, np.nan), signal, signal_offset)
        result["voice"] = {
            "hnr_db": _r(hnr, 1),
            "jitter": None if jitter is None else _r(jitter, 4),
            "shimmer": None if shimmer is None else _r(shimmer, 4),
        }
    return result
