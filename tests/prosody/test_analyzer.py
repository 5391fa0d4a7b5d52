"""The prosody analyzer (docs/prosody.md) on signals of known F0, against Praat as the oracle, and
on the inputs that broke other trackers."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import numpy.typing as npt
import parselmouth
import pytest

from voxkeep.prosody.analysis import analyze, summarize_span
from voxkeep.prosody.dsp import FRAME, HOP, RATE, analyze_frames
from voxkeep.prosody.tracker import KEEP_S, Tracker

Floats = npt.NDArray[np.float64]
rng = np.random.default_rng(7)


@pytest.fixture(autouse=True)
def _same_draws_in_any_order() -> None:
    """Every test draws the same noise whichever tests ran before it in its process (the suite
    runs in parallel, so that order changes from run to run)."""
    global rng
    rng = np.random.default_rng(7)


def voiced(f0: float, rate: int, seconds: float = 1.5, vibrato: float = 0.0) -> Floats:
    """A glottal-like harmonic source with a formant-ish tilt; F0 known exactly."""
    t = np.arange(int(rate * seconds)) / rate
    inst = f0 * (1 + vibrato * np.sin(2 * np.pi * 5 * t))
    phase = 2 * np.pi * np.cumsum(inst) / rate
    harmonics = [k for k in range(1, 40) if k * f0 * (1 + vibrato) < min(rate / 2, 5000)]
    x = sum((1 / k) * np.sin(k * phase + k * 0.3) for k in harmonics)
    return np.asarray(0.3 * x / np.max(np.abs(x)), dtype=np.float64)


def with_noise(x: Floats, snr_db: float) -> Floats:
    power = np.mean(x**2)
    return x + rng.normal(0, math.sqrt(power / 10 ** (snr_db / 10)), len(x))


def cents(measured: float, truth: float) -> float:
    return abs(1200 * math.log2(measured / truth))


def praat_median(x: Floats, rate: int) -> float:
    pitch = parselmouth.Sound(x, rate).to_pitch_ac(pitch_floor=65, pitch_ceiling=500)
    f0 = pitch.selected_array["frequency"]
    return float(np.median(f0[f0 > 0]))


@pytest.mark.parametrize("rate", [16000, 48000])
@pytest.mark.parametrize("snr_db", [None, 20, 10, 0])
def test_median_f0_is_within_a_few_cents_of_praat_from_80_to_400_hz(
    rate: int, snr_db: float | None
) -> None:
    ours_err, praat_err = [], []
    for f0 in (80, 110, 150, 200, 260, 330, 400):
        x = voiced(f0, rate, vibrato=0.01)
        x = x if snr_db is None else with_noise(x, snr_db)
        result = analyze(x, rate)
        assert result["pitch"] is not None, f"{f0} Hz at {snr_db} dB: no pitch"
        ours_err.append(cents(result["pitch"]["median_hz"], f0))
        praat_err.append(cents(praat_median(x, rate), f0))
    # the median over the set: a few cents of Praat's own error, never an octave off
    assert np.median(ours_err) <= np.median(praat_err) + 3.0, (ours_err, praat_err)
    assert max(ours_err) < 50, ours_err


@pytest.mark.parametrize("kind", ["white", "pink", "brown"])
def test_no_noise_only_frame_is_called_voiced(kind: str) -> None:
    n = 8000 * 4
    white = rng.normal(0, 1, n)
    spectrum = np.fft.rfft(white)
    f = np.maximum(np.fft.rfftfreq(n), 1 / n)
    shaped = {"white": 1, "pink": 1 / np.sqrt(f), "brown": 1 / f}[kind]
    noise = np.fft.irfft(spectrum * shaped, n)
    noise = 0.2 * noise / np.max(np.abs(noise))
    frames = np.lib.stride_tricks.sliding_window_view(noise, FRAME)[::HOP]
    features = analyze_frames(np.ascontiguousarray(frames))
    assert np.isfinite(features.f0).sum() == 0
    assert analyze(noise, RATE)["pitch"] is None


def odd_inputs() -> dict[str, tuple[Floats, int]]:
    speech = voiced(150, 16000, 1.2)
    return {
        "empty": (np.zeros(0), 16000),
        "one sample": (np.ones(1) * 0.1, 16000),
        "silence": (np.zeros(32000), 16000),
        "digital silence at 48 kHz": (np.zeros(96000), 48000),
        "noise": (rng.normal(0, 0.3, 32000), 16000),
        "clipped": (np.clip(speech * 20, -1, 1), 16000),
        "dc offset": (speech * 0.3 + 0.5, 16000),
        "50 ms blip": (voiced(200, 16000, 0.05), 16000),
        "48 kHz speech": (voiced(150, 48000, 1.2), 48000),
        "44.1 kHz speech": (voiced(150, 44100, 1.2), 44100),
        "full-scale square": (np.sign(np.sin(np.arange(16000) * 0.07)), 16000),
    }


def assert_plain_json(value: Any) -> None:
    """The result is JSON with no NaN or Infinity (and so storable as is)."""
    json.dumps(value, allow_nan=False)


@pytest.mark.parametrize("name", list(odd_inputs()))
def test_odd_input_never_raises_and_gives_plain_json(name: str) -> None:
    samples, rate = odd_inputs()[name]
    result = analyze(samples, rate, words=3)
    assert_plain_json(result)
    assert set(result) == {"v", "source", "speech_s", "voiced_s", "pitch", "loudness", "pauses",
                           "rate", "voice"}  # fmt: skip
    if name in ("empty", "one sample", "silence", "digital silence at 48 kHz", "50 ms blip"):
        assert result["pitch"] is None and result["voice"] is None
    if name in ("clipped", "dc offset", "48 kHz speech", "44.1 kHz speech"):
        assert result["pitch"] is not None
        assert cents(result["pitch"]["median_hz"], 150) < 10, result["pitch"]


def test_streaming_in_any_pieces_gives_the_same_result_as_the_whole() -> None:
    x = with_noise(
        np.concatenate([voiced(140, 48000, 1.0), np.zeros(24000), voiced(180, 48000)]), 25
    )
    whole = analyze(x, 48000, words=6)
    tracker = Tracker(48000)
    pos = 0
    while pos < len(x):
        step = int(rng.integers(1, 3000))
        tracker.push(x[pos : pos + step])
        pos += step
    assert summarize_span(tracker, 0.0, tracker.pushed_s, 6) == whole


def test_a_pause_inside_the_utterance_is_counted_and_the_rate_uses_the_transcript() -> None:
    x = np.concatenate([voiced(150, 16000, 1.0), np.zeros(8000), voiced(150, 16000, 1.0)])
    result = analyze(x, 16000, words=5)
    assert result["pauses"]["count"] == 1
    assert 0.45 <= result["pauses"]["total_s"] <= 0.55
    assert 1.9 <= result["speech_s"] <= 2.1
    assert result["rate"] == {
        "words_per_s": round(5 / result["speech_s"], 2),
        "source": "transcript",
    }
    no_words = analyze(x, 16000)
    assert no_words["rate"]["source"] == "acoustic"


def test_a_higher_pitch_reads_higher() -> None:
    low, high = analyze(voiced(120, 16000), 16000), analyze(voiced(240, 16000), 16000)
    assert high["pitch"]["median_hz"] > 1.9 * low["pitch"]["median_hz"]
    assert low["voice"] is not None and low["voice"]["hnr_db"] > 10


def pulse_train(f0: float, jitter: float, rate: int = 16000, seconds: float = 2.0) -> Floats:
    """Damped glottal-like pulses whose periods vary by `jitter` (relative sd)."""
    gen = np.random.default_rng(11)
    periods = (1 / f0) * (1 + jitter * gen.standard_normal(int(seconds * f0 * 2)))
    starts = (np.cumsum(periods) * rate).astype(int)
    x = np.zeros(int(rate * seconds) + 64)
    ring = np.exp(-np.arange(40) / 8) * np.sin(np.arange(40) * 0.5)
    for s in starts[starts < rate * seconds]:
        x[s : s + 40] += ring
    return 0.3 * x


def test_jitter_reads_near_zero_for_a_steady_voice_and_grows_with_irregular_cycles() -> None:
    steady, shaky = analyze(pulse_train(100, 0.0), 16000), analyze(pulse_train(100, 0.01), 16000)
    assert steady["voice"] is not None and shaky["voice"] is not None
    assert steady["voice"]["jitter"] < 0.002 and steady["voice"]["shimmer"] < 0.01
    # local jitter of periods with a 1 % spread is about 1.1 %
    assert 0.006 < shaky["voice"]["jitter"] < 0.02


def test_a_long_call_keeps_bounded_audio_and_still_measures_its_latest_turn() -> None:
    tracker = Tracker(16000)
    quiet = np.zeros(16000)
    for _ in range(150):  # two and a half minutes of silence
        tracker.push(quiet)
    turn = voiced(170, 16000, 1.5)
    tracker.push(turn)
    tracker.push(quiet)
    end = tracker.pushed_s - 1.0
    result = summarize_span(tracker, end - 1.5, end, 4)
    assert cents(result["pitch"]["median_hz"], 170) < 5
    assert tracker.kept_s <= KEEP_S + 12  # the old audio was let go
