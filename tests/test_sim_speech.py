"""The simulator's recognizer names the clip it hears by its sound, whatever the order, padding
or truncation (docs/simulate.md: never by order)."""

from __future__ import annotations

import numpy as np
import pytest

from voxkeep.core.errors import InvalidInput
from voxkeep.sim.speech import ESPEAK_RATE, ClipRecognizer, espeak, read_wav, resample, write_wav

TEXTS = [
    "I'd like to plan a trip to Lisbon.",
    "What's the weather there?",
    "Book it for Friday please.",
    "Wait, stop.",
    "Yes.",
    "No.",
]


async def test_each_clip_is_recognized_out_of_order_padded_and_cut_short() -> None:
    recognizer, clips = ClipRecognizer(), {}
    for text in TEXTS:
        clips[text] = resample(await espeak(text), ESPEAK_RATE, 48000)
        recognizer.learn(text, clips[text], 48000)
    for text in reversed(TEXTS):
        clip = clips[text]
        padded = np.concatenate([np.zeros(7777, np.int16), clip, np.zeros(24000, np.int16)])
        # what the STT receives: a VAD segment as 16 kHz audio
        assert recognizer.recognize(resample(padded, 48000, 16000), 16000) == text
        cut = clip[: len(clip) * 2 // 3]
        assert recognizer.recognize(resample(cut, 48000, 16000), 16000) == text


async def test_each_clip_is_recognized_through_what_a_loaded_network_does_to_audio() -> None:
    """A jitter buffer on a loaded machine drops, conceals and time-stretches audio: the
    recognizer still names the clip (as a real recognizer would), and no other."""
    recognizer, clips = ClipRecognizer(), {}
    for text in TEXTS:
        clips[text] = resample(await espeak(text), ESPEAK_RATE, 48000)
        recognizer.learn(text, clips[text], 48000)
    rng = np.random.default_rng(7)
    for text, clip in clips.items():
        chunks = np.array_split(clip, len(clip) // 480)  # 10 ms packets
        lost = np.concatenate([c for c in chunks if rng.random() > 0.15])
        gaps = np.concatenate([x for c in chunks for x in (c, np.zeros(480 * (rng.random() < 0.15),
                               np.int16))])  # fmt: skip
        for heard in (lost, gaps, resample(clip, 48000, 44000), resample(clip, 48000, 52000)):
            assert recognizer.recognize(heard, 48000) == text


def test_noise_or_silence_is_recognized_as_nothing() -> None:
    recognizer = ClipRecognizer()
    tone = (3000 * np.sin(np.arange(16000) * 0.1)).astype(np.int16)
    recognizer.learn("a tone", tone, 16000)
    noise = np.random.default_rng(0).normal(0, 3000, 32000).astype(np.int16)
    assert recognizer.recognize(noise, 16000) == ""
    assert recognizer.recognize(np.zeros(16000, np.int16), 16000) == ""
    assert ClipRecognizer().recognize(noise, 16000) == ""


def test_wav_round_trips_and_a_non_wav_is_refused() -> None:
    samples = (1000 * np.sin(np.arange(800) * 0.2)).astype(np.int16)
    assert np.array_equal(read_wav(write_wav(samples, 16000))[0], samples)
    assert read_wav(write_wav(samples, 16000))[1] == 16000
    with pytest.raises(InvalidInput):
        read_wav(b"not a wav file at all")
