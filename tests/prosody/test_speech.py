"""Prosody on real espeak-ng speech moves the way a listener would hear it move, against the
speaker's own baseline (docs/prosody.md)."""

from __future__ import annotations

from typing import Any

import pytest

from voxkeep.prosody.analysis import analyze
from voxkeep.prosody.baseline import Baseline
from voxkeep.sim.speech import ESPEAK_RATE, Voice, espeak

BASELINE_TEXTS = [
    "I would like to plan a trip to Lisbon next month.",
    "Could you tell me what the weather will be like there?",
    "We are thinking of staying for about a week or so.",
    "My sister is coming along with her two children.",
    "Please find us a hotel that is close to the river.",
    "Also check whether the museums are open on Mondays.",
]
PROBE = "Can you book the tickets for us on Friday morning?"


USUAL = Voice()


async def measure(text: str, voice: Voice = USUAL) -> dict[str, Any]:
    samples = await espeak(text, voice)
    return analyze(samples / 32768.0, ESPEAK_RATE, words=len(text.split()))


@pytest.fixture
async def settled() -> Baseline:
    """A baseline that has heard this speaker six times in their usual voice."""
    baseline = Baseline()
    for text in BASELINE_TEXTS:
        baseline.relate(await measure(text))
    assert baseline.utterances == 6
    return baseline


async def test_a_usual_utterance_scores_near_zero(settled: Baseline) -> None:
    relative = settled.relate(await measure(PROBE))["relative"]
    for key in ("pitch_z", "loudness_z", "rate_z"):
        assert abs(relative[key]) < 1.5, relative
    assert relative["baseline_n"] == 6


async def test_a_higher_voice_has_a_higher_median_and_a_positive_pitch_z(settled: Baseline) -> None:
    usual, high = await measure(PROBE), await measure(PROBE, Voice(pitch=85))
    assert high["pitch"]["median_hz"] > usual["pitch"]["median_hz"] * 1.15
    assert settled.relate(high)["relative"]["pitch_z"] > 1.5


async def test_faster_speech_has_more_words_per_second_and_a_positive_rate_z(
    settled: Baseline,
) -> None:
    usual, fast = await measure(PROBE), await measure(PROBE, Voice(rate=260))
    assert fast["rate"]["words_per_s"] > usual["rate"]["words_per_s"] * 1.2
    assert settled.relate(fast)["relative"]["rate_z"] > 1.0


async def test_louder_speech_has_a_positive_loudness_z(settled: Baseline) -> None:
    usual, loud = await measure(PROBE), await measure(PROBE, Voice(volume=200))
    assert loud["loudness"]["mean_db"] > usual["loudness"]["mean_db"] + 4
    assert settled.relate(loud)["relative"]["loudness_z"] > 1.0


async def test_the_baseline_survives_a_round_trip_through_json(settled: Baseline) -> None:
    probe = await measure(PROBE, Voice(pitch=85))
    again = Baseline.from_json(settled.to_json())
    assert again.score({"pitch": 50.0}) == settled.score({"pitch": 50.0})
    assert again.relate(probe) == settled.relate(probe)


def test_an_unknown_or_broken_baseline_starts_fresh() -> None:
    for stored in (None, {"v": 2}, {"v": 1, "sums": {"pitch": ["x"]}, "utterances": 1}, "junk"):
        assert Baseline.from_json(stored).utterances == 0


def test_an_utterance_with_too_little_voice_is_scored_but_not_learned() -> None:
    baseline = Baseline()
    short = {"voiced_s": 0.2, "pitch": {"median_hz": 300.0, "range_st": 4.0}}
    assert baseline.relate(short)["relative"]["pitch_z"] is not None
    assert baseline.utterances == 0
