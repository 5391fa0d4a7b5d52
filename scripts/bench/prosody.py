"""Prosody benchmark (docs/benchmarks.md): ours beside Praat (praat-parselmouth) on the same audio,
in the same run.

    .venv/bin/python scripts/bench/prosody.py [--streams 100] [--seconds 10]

- real-time factor with every feature, per stream, at 16 and 48 kHz (espeak-ng speech, pushed
  in 20 ms frames as a call delivers it, then finalized);
  Praat's "full" analysis is pitch (ac), intensity, a point process (cc) and harmonicity (cc),
  the work its jitter, shimmer and HNR need;
- the cost of a push (20 ms frames) and of the end-of-turn finalize;
- CPU for N concurrent streams fed in 20 ms frames, as cores;
- accuracy on synthetic voices of known F0 (80-400 Hz, clean to 0 dB SNR, 16 and 48 kHz):
  median and 95th percentile error in cents, gross errors (> 50 cents), and voicing on noise.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import parselmouth
from _common import percentile, print_table
from parselmouth.praat import call

from voxkeep.prosody.analysis import analyze, summarize_span
from voxkeep.prosody.tracker import Tracker
from voxkeep.sim.speech import ESPEAK_RATE, espeak, resample

Floats = npt.NDArray[np.float64]
SENTENCES = [
    "I would like to plan a trip to Lisbon next month with my family.",
    "Could you tell me what the weather will be like there in the spring?",
    "Please find us a hotel that is close to the river and the old town.",
]
rng = np.random.default_rng(3)


def praat_full(x: Floats, rate: int) -> None:
    sound = parselmouth.Sound(x, rate)
    pitch = sound.to_pitch_ac(pitch_floor=65, pitch_ceiling=500)
    sound.to_intensity()
    points = call([sound, pitch], "To PointProcess (cc)")
    call(points, "Get jitter (local)", 0, 0, 0.0001, 0.02, 1.3)
    call([sound, points], "Get shimmer (local)", 0, 0, 0.0001, 0.02, 1.3, 1.6)
    sound.to_harmonicity_cc()


def best_of(fn: Callable[[], Any], repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def voiced(f0: float, rate: int, seconds: float = 2.0) -> Floats:
    t = np.arange(int(rate * seconds)) / rate
    inst = f0 * (1 + 0.01 * np.sin(2 * np.pi * 5 * t))
    phase = 2 * np.pi * np.cumsum(inst) / rate
    top = min(rate / 2, 5000)
    x = sum((1 / k) * np.sin(k * phase) for k in range(1, 40) if k * f0 * 1.01 < top)
    return np.asarray(0.3 * x / np.max(np.abs(x)), dtype=np.float64)


def noisy(x: Floats, snr_db: float | None) -> Floats:
    if snr_db is None:
        return x
    return x + rng.normal(0, math.sqrt(np.mean(x**2) / 10 ** (snr_db / 10)), len(x))


def praat_median(x: Floats, rate: int) -> float | None:
    f0 = parselmouth.Sound(x, rate).to_pitch_ac(pitch_floor=65, pitch_ceiling=500)
    values = f0.selected_array["frequency"]
    values = values[values > 0]
    return float(np.median(values)) if len(values) else None


def streamed(x: Floats, rate: int, words: int) -> tuple[list[float], float]:
    """Push 20 ms frames; the cost of each push (ms) and of the finalize (ms)."""
    tracker, step, pushes = Tracker(rate), rate // 50, []
    for pos in range(0, len(x), step):
        start = time.perf_counter()
        tracker.push(x[pos : pos + step])
        pushes.append((time.perf_counter() - start) * 1000)
    start = time.perf_counter()
    summarize_span(tracker, 0.0, tracker.pushed_s, words)
    return pushes, (time.perf_counter() - start) * 1000


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=10.0, help="audio per concurrent stream")
    args = parser.parse_args()

    speech = {
        rate: np.concatenate(
            [resample(await espeak(s), ESPEAK_RATE, rate) for s in SENTENCES]
        ).astype(np.float64)
        / 32768.0
        for rate in (16000, 48000)
    }
    rows: list[list[object]] = []
    praat_rtf: dict[int, float] = {}
    for rate, x in speech.items():
        seconds = len(x) / rate
        # ours as it runs in a call: 20 ms frames as they arrive, then the end-of-turn finalize
        ours = best_of(functools.partial(streamed, x, rate, 36)) / seconds
        praat = praat_rtf[rate] = best_of(functools.partial(praat_full, x, rate), 3) / seconds
        rows.append([f"real-time factor, all features, {rate // 1000} kHz speech",
                     f"{ours:.4f}", f"{praat:.4f}", f"{praat / ours:.1f}×"])  # fmt: skip

    pushes, finals = [], []
    for sentence in SENTENCES:  # one turn each, ~3 s, at 48 kHz
        x = resample(await espeak(sentence), ESPEAK_RATE, 48000).astype(np.float64) / 32768.0
        for _ in range(5):
            p, f = streamed(x, 48000, len(sentence.split()))
            pushes += p
            finals.append(f)
    rows.append(
        [
            "push of a 20 ms frame, p50 / p99 (48 kHz)",
            f"{percentile(pushes, 0.5):.3f} / {percentile(pushes, 0.99):.3f} ms",
            "",
            "",
        ]
    )
    rows.append(["finalize after the turn ends, p50 / max (3 s turn)",
                 f"{percentile(finals, 0.5):.2f} / {max(finals):.2f} ms", "", ""])  # fmt: skip

    # N streams at once, each fed 20 ms frames round-robin, as a worker would see them
    audio = np.resize(speech[48000], int(48000 * args.seconds))
    trackers = [Tracker(48000) for _ in range(args.streams)]
    step = 48000 // 50
    cpu = time.process_time()
    for pos in range(0, len(audio), step):
        frame = audio[pos : pos + step]
        for tracker in trackers:
            tracker.push(frame)
    for tracker in trackers:
        summarize_span(tracker, max(0.0, tracker.pushed_s - 3.0), tracker.pushed_s, 8)
    cores = (time.process_time() - cpu) / args.seconds
    praat_cores = praat_rtf[48000] * args.streams  # from its real-time factor, not run
    rows.append([f"CPU for {args.streams} concurrent streams (48 kHz)", f"{cores:.2f} cores",
                 f"{praat_cores:.1f} cores (from RTF)", f"{praat_cores / cores:.1f}×"])  # fmt: skip

    errors: dict[str, list[float]] = {"ours": [], "praat": []}
    for rate in (16000, 48000):
        for f0 in (80, 100, 130, 170, 220, 280, 340, 400):
            for snr in (None, 20, 10, 5, 0):
                x = noisy(voiced(f0, rate), snr)
                result = analyze(x, rate)
                ours_hz = result["pitch"]["median_hz"] if result["pitch"] else None
                for name, hz in (("ours", ours_hz), ("praat", praat_median(x, rate))):
                    errors[name].append(abs(1200 * math.log2(hz / f0)) if hz else 1200.0)
    o, p = errors["ours"], errors["praat"]
    rows.append(
        [
            "median F0 error, cents (80 voices)",
            f"{percentile(o, 0.5):.2f}",
            f"{percentile(p, 0.5):.2f}",
            "",
        ]
    )
    rows.append(
        [
            "95th percentile F0 error, cents",
            f"{percentile(o, 0.95):.2f}",
            f"{percentile(p, 0.95):.2f}",
            "",
        ]
    )
    rows.append(["gross errors (> 50 cents)", f"{sum(e > 50 for e in o)}/{len(o)}",
                 f"{sum(e > 50 for e in p)}/{len(p)}", ""])  # fmt: skip
    called = []
    for _ in range(10):
        result = analyze(rng.normal(0, 0.2, 16000 * 2), 16000)
        called.append(result["voiced_s"] / 2.0)
    rows.append(["white noise called voiced", f"{100 * np.mean(called):.1f} %", "", ""])
    print_table(["metric", "ours", "Praat", "ratio"], rows)
    print(
        "\nratio: Praat's time / ours. Targets (docs/benchmarks.md): RTF ≤ 0.003, "
        "finalize ≤ 5 ms, median F0 within 3 cents of Praat, 100 streams within one core."
    )


if __name__ == "__main__":
    asyncio.run(main())
