"""Speech for the simulator: espeak-ng synthesis, WAV reading, and a recognizer that tells which
known clip it heard by comparing audio (never by order, which breaks as soon as one utterance is
dropped; docs/livekit.md)."""

from __future__ import annotations

import asyncio
import io
import shutil
import struct
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from livekit import rtc

from voxkeep.core.errors import InvalidInput

Pcm = npt.NDArray[np.int16]
ESPEAK_RATE = 22050


@dataclass(frozen=True, slots=True)
class Voice:
    pitch: int = 50  # espeak-ng -p, 0..99
    rate: int = 175  # espeak-ng -s, words per minute
    volume: int = 100  # espeak-ng -a, 0..200


def read_wav(data: bytes) -> tuple[Pcm, int]:
    """16-bit PCM WAV bytes as mono samples and rate. Tolerates the streaming header espeak-ng
    writes to a pipe (a data size of 2 GiB)."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise InvalidInput("not a WAV file")
    pos, rate, channels, bits = 12, 0, 1, 16
    while pos + 8 <= len(data):
        tag, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        body = data[pos + 8 : pos + 8 + size]
        if tag == b"fmt ":
            _, channels, rate, _, _, bits = struct.unpack("<HHIIHH", body[:16])
        elif tag == b"data":
            if bits != 16 or not rate:
                raise InvalidInput("only 16-bit PCM WAV is supported")
            usable = len(body) - len(body) % (2 * channels)
            samples = np.frombuffer(body[:usable], dtype=np.int16)
            if channels > 1:
                samples = samples.reshape(-1, channels).mean(axis=1).astype(np.int16)
            return samples, rate
        pos += 8 + size + (size & 1)
    raise InvalidInput("WAV file has no data")


def write_wav(samples: Pcm, rate: int) -> bytes:
    out = io.BytesIO()
    body = samples.astype("<i2").tobytes()
    out.write(b"RIFF" + struct.pack("<I", 36 + len(body)) + b"WAVEfmt ")
    out.write(struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16))
    out.write(b"data" + struct.pack("<I", len(body)) + body)
    return out.getvalue()


async def espeak(text: str, voice: Voice = Voice()) -> Pcm:
    """`text` spoken by espeak-ng, at ESPEAK_RATE."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise InvalidInput("espeak-ng is not installed (scripts/bootstrap installs it)")
    proc = await asyncio.create_subprocess_exec(
        exe, "-v", "en-us", "-p", str(voice.pitch), "-s", str(voice.rate),
        "-a", str(voice.volume), "--stdout", "--", text,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise InvalidInput(f"espeak-ng failed: {err.decode(errors='replace').strip()[:200]}")
    samples, rate = read_wav(out)
    return resample(samples, rate, ESPEAK_RATE)


def resample(samples: Pcm, rate: int, to_rate: int) -> Pcm:
    """Resample with LiveKit's own resampler (the one rooms use)."""
    if rate == to_rate or len(samples) == 0:
        return samples
    resampler = rtc.AudioResampler(rate, to_rate, num_channels=1)
    frame = rtc.AudioFrame(samples.astype(np.int16).tobytes(), rate, 1, len(samples))
    frames = resampler.push(frame) + resampler.flush()
    if not frames:
        return np.zeros(0, dtype=np.int16)
    return np.concatenate([np.frombuffer(f.data, dtype=np.int16) for f in frames])


# --- recognizing a known clip -----------------------------------------------------------------

_FEATURE_RATE = 16000
_FRAME = 320  # 20 ms windows...
_HOP = 160  # ...every 10 ms
_BANDS = 16
MATCH_MIN_SCORE = 0.7
MIN_OVERLAP_FRAMES = 30  # 0.3 s of the clip's speech

Features = tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]


def _features(samples: Pcm, rate: int) -> Features:
    """Log band energies every 10 ms, normalized by the speech frames' statistics (so level does
    not matter), and which frames are speech (within 30 dB of the loudest)."""
    x = resample(samples, rate, _FEATURE_RATE).astype(np.float64)
    if len(x) < 2 * _FRAME:
        return np.zeros((0, _BANDS)), np.zeros(0, dtype=bool)
    windows = np.lib.stride_tricks.sliding_window_view(x, _FRAME)[::_HOP] * np.hanning(_FRAME)
    spec = np.abs(np.fft.rfft(windows, axis=1)) ** 2
    edges = np.geomspace(3, spec.shape[1] - 1, _BANDS + 1).astype(int)
    spans = zip(edges[:-1], edges[1:], strict=True)
    bands = np.stack([spec[:, a : max(b, a + 1)].sum(axis=1) for a, b in spans], 1)
    logs = np.log10(bands + 1e-3)
    level = logs.mean(axis=1)
    loud = level > level.max() - 3.0
    ref = logs[loud] if loud.sum() >= 2 else logs
    shape = (logs - ref.mean(axis=0)) / (ref.std(axis=0) + 1e-6)
    shape /= np.linalg.norm(shape, axis=1, keepdims=True) + 1e-9  # frame against frame: cosine
    return shape, loud


def _similarity(query: Features, clip: Features) -> float:
    """How well the query's speech follows the clip's: the mean cosine similarity of each of
    the clip's speech frames to the query frame it is aligned with, over the best alignment.
    Silence is left out on both sides, and the alignment may stretch or squeeze time up to
    twice (dynamic time warping, steps of 0 to 2 query frames per clip frame, never two
    0-steps in a row), as a loaded network path does to audio: frames lost or concealed, the
    jitter buffer speeding up or slowing down. It may start anywhere in the query, and a
    query cut short matches once it covers enough of the clip."""
    (q, q_loud), (c, c_loud) = query, clip
    q, c = q[q_loud], c[c_loud]
    if len(q) < 2 or len(c) < 2:
        return 0.0
    sims = c @ q.T  # clip frame against query frame
    enough = min(MIN_OVERLAP_FRAMES, len(c))
    moved = sims[0].copy()  # best sum with clip frame j on query frame i, by the last step
    stayed = np.full(len(q), -np.inf)
    cut_short = -np.inf  # best mean of an alignment that ends where the query ends
    before = np.full(2, -np.inf)
    for j in range(1, len(c)):
        either = np.concatenate([before, np.maximum(moved, stayed)])
        moved, stayed = sims[j] + np.maximum(either[1:-1], either[:-2]), sims[j] + moved
        if j + 1 >= enough:
            cut_short = max(cut_short, max(moved[-1], stayed[-1]) / (j + 1))
    whole = float(np.maximum(moved, stayed).max()) / len(c)
    return max(whole, float(cut_short))


class ClipRecognizer:
    """Knows a set of clips and their texts; `recognize` names the one it hears."""

    def __init__(self) -> None:
        self._clips: list[tuple[str, Features]] = []

    def learn(self, text: str, samples: Pcm, rate: int) -> None:
        self._clips.append((text, _features(samples, rate)))

    def recognize(self, samples: Pcm, rate: int) -> str:
        """The text of the best-matching clip, or "" when nothing known was heard."""
        return self.heard(samples, rate)[1]

    def heard(self, samples: Pcm, rate: int) -> tuple[float, str]:
        """The best-matching clip's score, and its text if the score makes it a match
        (`MATCH_MIN_SCORE`), else ""."""
        query = _features(samples, rate)
        score, text = max(((_similarity(query, f), t) for t, f in self._clips), default=(0.0, ""))
        return score, text if score >= MATCH_MIN_SCORE else ""


# --- a service's server-side VAD --------------------------------------------------------------

SPEECH_RMS = 300.0
"""Int16 RMS above which 10 ms of audio is speech (espeak-ng speech is in the thousands)."""


@dataclass(frozen=True, slots=True)
class Started:
    """Speech began."""


@dataclass(frozen=True, slots=True)
class Ended:
    """Speech ended: the utterance's audio, trailing quiet included."""

    audio: Pcm


class SpeechGate:
    """Cuts a stream of PCM into utterances by energy, as a speech service's server-side VAD
    would: speech starts at the first loud 10 ms, and ends after `quiet_s` of quiet or when
    the client asks (`end`)."""

    def __init__(self, rate: int, quiet_s: float = 0.5) -> None:
        self.rate = rate
        self._chunk = rate // 100
        self._quiet_chunks = round(quiet_s * 100)
        self._pending = np.zeros(0, dtype=np.int16)
        self._heard: list[Pcm] | None = None  # None: not in an utterance
        self._quiet = 0

    @property
    def speaking(self) -> bool:
        return self._heard is not None

    def push(self, audio: Pcm) -> list[Started | Ended]:
        events: list[Started | Ended] = []
        self._pending = np.concatenate([self._pending, audio])
        while len(self._pending) >= self._chunk:
            chunk = self._pending[: self._chunk]
            self._pending = self._pending[self._chunk :]
            loud = float(np.sqrt(np.mean(chunk.astype(np.float64) ** 2))) > SPEECH_RMS
            if self._heard is None and loud:
                self._heard, self._quiet = [], 0
                events.append(Started())
            if self._heard is None:
                continue
            self._heard.append(chunk)
            self._quiet = 0 if loud else self._quiet + 1
            if self._quiet >= self._quiet_chunks and (ended := self.end()) is not None:
                events.append(ended)
        return events

    def end(self) -> Ended | None:
        """End the utterance being heard now, if there is one."""
        heard, self._heard = self._heard, None
        return Ended(np.concatenate(heard)) if heard else None
