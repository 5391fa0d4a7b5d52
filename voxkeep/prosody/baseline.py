"""The speaker's own baseline, for the `relative` group (docs/prosody.md, "The caller's
baseline").

Per feature, a normal-normal model: the speaker's mean is drawn around a population prior, each
utterance around the speaker's mean. An utterance is scored *before* it joins the baseline.
Sums decay (half-life 20 utterances) so a long chat follows drift. The state is plain JSON so it
is stored with the chat and survives resume.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

HALF_LIFE = 20.0
_DECAY = 0.5 ** (1.0 / HALF_LIFE)
Z_CLIP = 6.0
MIN_VOICED_S = 0.5
FULL_WEIGHT_VOICED_S = 1.5
PSEUDO_COUNT = 4.0


@dataclass(frozen=True, slots=True)
class Prior:
    mean: float
    between_sd: float  # how far speakers' means spread around the population's
    within_sd: float  # how far one speaker's utterances spread around their own mean


PRIORS: dict[str, Prior] = {
    "pitch": Prior(12.0 * math.log2(150.0), 5.0, 1.5),  # median F0, semitones
    "range": Prior(4.0, 1.5, 1.5),  # F0 range, semitones
    "loudness": Prior(-25.0, 8.0, 3.0),  # mean level, dB
    "rate": Prior(math.log(4.5), 0.2, 0.2),  # log words per second
}
_Z_NAMES = {"pitch": "pitch_z", "loudness": "loudness_z", "rate": "rate_z", "range": "range_z"}


def measures(prosody: dict[str, Any]) -> dict[str, float]:
    """The baseline's features of one utterance, in perceptual units; absent ones left out."""
    out: dict[str, float] = {}
    if pitch := prosody.get("pitch"):
        out["pitch"] = 12.0 * math.log2(pitch["median_hz"])
        out["range"] = pitch["range_st"]
    if loudness := prosody.get("loudness"):
        out["loudness"] = loudness["mean_db"]
    if (rate := prosody.get("rate")) and rate["words_per_s"] > 0:
        out["rate"] = math.log(rate["words_per_s"])
    return out


@dataclass
class _Sums:
    n: float = 0.0  # reliability-weighted count
    total: float = 0.0
    squares: float = 0.0


@dataclass
class Baseline:
    sums: dict[str, _Sums] = field(default_factory=dict)
    utterances: int = 0

    def score(self, values: dict[str, float]) -> dict[str, Any]:
        """z-scores of an utterance against the baseline as it stands, and `baseline_n`."""
        relative: dict[str, Any] = {name: None for name in _Z_NAMES.values()}
        for name, x in values.items():
            prior, sums = PRIORS[name], self.sums.get(name, _Sums())
            within2 = prior.within_sd**2
            if sums.n > 0:
                mean = sums.total / sums.n
                sample_var = max(sums.squares / sums.n - mean * mean, 0.0)
                within2 = (PSEUDO_COUNT * within2 + sums.n * sample_var) / (PSEUDO_COUNT + sums.n)
            precision = 1.0 / prior.between_sd**2 + sums.n / within2
            mu = (prior.mean / prior.between_sd**2 + sums.total / within2) / precision
            z = (x - mu) / math.sqrt(within2 + 1.0 / precision)
            relative[_Z_NAMES[name]] = round(max(-Z_CLIP, min(Z_CLIP, z)), 2)
        relative["baseline_n"] = self.utterances
        return relative

    def add(self, values: dict[str, float], voiced_s: float) -> None:
        """Let an utterance join the baseline, weighted by how much voice it had."""
        if voiced_s < MIN_VOICED_S or not values:
            return
        weight = min(1.0, voiced_s / FULL_WEIGHT_VOICED_S)
        for name, x in values.items():
            sums = self.sums.setdefault(name, _Sums())
            sums.n = sums.n * _DECAY + weight
            sums.total = sums.total * _DECAY + weight * x
            sums.squares = sums.squares * _DECAY + weight * x * x
        self.utterances += 1

    def to_json(self) -> dict[str, Any]:
        return {
            "v": 1,
            "utterances": self.utterances,
            "sums": {k: [s.n, s.total, s.squares] for k, s in self.sums.items()},
        }

    @classmethod
    def from_json(cls, data: Any) -> Baseline:
        """The stored state, or a fresh baseline when it is missing or not one we know."""
        try:
            if data["v"] != 1:
                return cls()
            sums = {
                str(k): _Sums(float(v[0]), float(v[1]), float(v[2]))
                for k, v in data["sums"].items()
                if k in PRIORS
            }
            return cls(sums=sums, utterances=int(data["utterances"]))
        except (KeyError, TypeError, ValueError, IndexError):
            return cls()

    def relate(self, prosody: dict[str, Any]) -> dict[str, Any]:
        """Score one utterance, then add it: the whole step in one call."""
        values = measures(prosody)
        prosody = {**prosody, "relative": self.score(values)}
        self.add(values, prosody.get("voiced_s") or 0.0)
        return prosody
