"""Small local servers that speak the streaming WebSocket protocols of Deepgram (speech to
text), Cartesia and ElevenLabs (text to speech), as far as their LiveKit plugins use them, so a
session on those providers runs with no cloud; the tests assert on what each one received.

- `LocalDeepgram` (`/v1/listen`): the caller's PCM is cut into utterances by an energy gate
  (`SpeechStarted`; after 500 ms of quiet or a `Finalize`, one final `Results` with the text
  of the known clip the audio matches, its words timed across the utterance).
- `LocalCartesia` (`/tts/websocket`) and `LocalElevenLabs`
  (`/v1/text-to-speech/{voice}/multi-stream-input`): each piece of text of a context is spoken
  by espeak-ng, as raw PCM at the requested rate with word or character timings, and the
  context ends when the client closes it; a cancelled or closed context says no more.
"""

from __future__ import annotations

import base64
import itertools
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from aiohttp import WSMsgType, web

from voxkeep.sim.openai_server import AGENT_VOICE, LocalService
from voxkeep.sim.speech import (
    ESPEAK_RATE,
    ClipRecognizer,
    Ended,
    SpeechGate,
    Voice,
    espeak,
    resample,
)

AUDIO_CHUNK_S = 0.1
"""Synthesized audio goes out in pieces this long, as the services stream it."""


@dataclass
class Connection:
    """What a client asked for when it connected."""

    path: str
    query: dict[str, str]
    key: str
    """The credential it presented (the vendor's header)."""


@dataclass
class _Recording(LocalService):
    connections: list[Connection] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    """Every text message received, oldest first."""

    async def _accept(
        self, request: web.Request, key_header: str
    ) -> tuple[web.WebSocketResponse, Connection]:
        connection = Connection(
            request.path, dict(request.query), request.headers.get(key_header, "")
        )
        self.connections.append(connection)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        return ws, connection

    async def _packets(
        self, ws: web.WebSocketResponse
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """Each JSON message the client sends (recorded), with the context it names."""
        async for message in ws:
            if message.type == WSMsgType.TEXT:
                packet = json.loads(message.data)
                self.messages.append(packet)
                yield str(packet.get("context_id", "")), packet


async def _send(ws: web.WebSocketResponse, message: dict[str, Any]) -> None:
    if not ws.closed:
        await ws.send_str(json.dumps(message))


def _spread(words: list[str], duration: float) -> list[tuple[str, float, float]]:
    """Each word with a start and end (s), spread over `duration` by length."""
    total = sum(len(w) for w in words) or 1
    timed, at = [], 0.0
    for word in words:
        span = duration * len(word) / total
        timed.append((word, at, at + span))
        at += span
    return timed


# --- Deepgram: streaming speech to text ---------------------------------------------------------


@dataclass
class LocalDeepgram(_Recording):
    recognizer: ClipRecognizer = field(default_factory=ClipRecognizer)
    samples: int = 0
    """Samples of audio received, over every connection."""

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/v1/listen", self._listen)

    async def _listen(self, request: web.Request) -> web.WebSocketResponse:
        ws, connection = await self._accept(request, "Authorization")
        rate = int(connection.query.get("sample_rate", "16000"))
        gate, heard_s, ids = SpeechGate(rate), 0.0, itertools.count(1)
        request_id = f"dg-{len(self.connections)}"

        async def results(audio: Any, *, finalize: bool) -> None:
            duration = len(audio) / rate
            text = self.recognizer.recognize(audio, rate)
            start = heard_s - duration
            words = [
                {"word": w.strip(".,?!").lower(), "punctuated_word": w, "confidence": 0.99,
                 "start": start + a, "end": start + b}
                for w, a, b in _spread(text.split(), duration)
            ]  # fmt: skip
            await _send(ws, {
                "type": "Results", "channel_index": [0, 1], "start": start,
                "duration": duration, "is_final": True, "speech_final": True,
                "from_finalize": finalize,
                "channel": {"alternatives": [
                    {"transcript": text, "confidence": 0.99 if text else 0.0, "words": words}
                ]},
                "metadata": {"request_id": request_id, "model_uuid": f"m{next(ids)}",
                             "model_info": {"name": connection.query.get("model", "")}},
            })  # fmt: skip

        async for message in ws:
            if message.type == WSMsgType.BINARY:
                audio = np.frombuffer(message.data, dtype=np.int16)
                self.samples += len(audio)
                heard_s += len(audio) / rate
                for event in gate.push(audio):
                    if isinstance(event, Ended):
                        await results(event.audio, finalize=False)
                    elif connection.query.get("vad_events") == "true":
                        await _send(ws, {"type": "SpeechStarted", "channel": [0, 1],
                                         "timestamp": heard_s})  # fmt: skip
            elif message.type == WSMsgType.TEXT:
                control = json.loads(message.data)
                self.messages.append(control)
                if control.get("type") == "Finalize" and (ended := gate.end()) is not None:
                    await results(ended.audio, finalize=True)
                elif control.get("type") == "CloseStream":
                    await _send(ws, {"type": "Metadata", "request_id": request_id,
                                     "duration": heard_s, "channels": 1})  # fmt: skip
                    await ws.close()
        return ws


# --- text to speech -----------------------------------------------------------------------------


@dataclass
class _LocalTTS(_Recording):
    voice: Voice = AGENT_VOICE

    async def _pcm(self, text: str, rate: int) -> bytes:
        return resample(await espeak(text, self.voice), ESPEAK_RATE, rate).tobytes()


def _pieces(pcm: bytes, rate: int) -> list[str]:
    step = int(rate * AUDIO_CHUNK_S) * 2
    return [base64.b64encode(pcm[at : at + step]).decode() for at in range(0, len(pcm), step)]


@dataclass
class LocalCartesia(_LocalTTS):
    root: ClassVar[str] = ""  # https://api.cartesia.ai/tts/websocket

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/tts/websocket", self._websocket)

    async def _websocket(self, request: web.Request) -> web.WebSocketResponse:
        ws, _ = await self._accept(request, "X-API-Key")
        over: set[str] = set()  # contexts done or cancelled
        async for context, packet in self._packets(ws):
            if packet.get("cancel"):
                over.add(context)
                continue
            if context in over:
                continue
            rate = int(packet.get("output_format", {}).get("sample_rate", 24000))
            said = {"context_id": context, "status_code": 206, "done": False}
            if (text := str(packet.get("transcript", ""))).strip():
                pcm = await self._pcm(text, rate)
                if packet.get("add_timestamps"):
                    timed = _spread(text.split(), len(pcm) / 2 / rate)
                    stamps = {"words": [w for w, _, _ in timed], "start": [a for _, a, _ in timed],
                              "end": [b for _, _, b in timed]}  # fmt: skip
                    await _send(ws, {**said, "type": "timestamps", "word_timestamps": stamps})
                for piece in _pieces(pcm, rate):
                    await _send(ws, {**said, "type": "chunk", "data": piece, "step_time": 1.0})
            if not packet.get("continue", False):
                over.add(context)
                await _send(ws, {**said, "type": "done", "done": True})
        return ws


@dataclass
class LocalElevenLabs(_LocalTTS):
    def routes(self, app: web.Application) -> None:
        app.router.add_get("/v1/text-to-speech/{voice}/multi-stream-input", self._websocket)

    async def _websocket(self, request: web.Request) -> web.WebSocketResponse:
        ws, connection = await self._accept(request, "xi-api-key")
        kind, _, rate_text = connection.query.get("output_format", "").partition("_")
        if kind != "pcm" or not rate_text.isdigit():  # this server makes raw PCM only
            await _send(ws, {"error": "unsupported output_format", "message": kind})
            await ws.close()
            return ws
        rate, open_contexts = int(rate_text), set[str]()
        async for context, packet in self._packets(ws):
            if packet.get("close_context"):
                if context in open_contexts:
                    open_contexts.discard(context)
                    await _send(ws, {"context_id": context, "isFinal": True})
                continue
            if "voice_settings" in packet:  # a context's first packet
                open_contexts.add(context)
            text = str(packet.get("text", ""))
            if context not in open_contexts or not text.strip():
                continue
            pcm = await self._pcm(text, rate)
            chars = list(text)
            timed = _spread(chars, len(pcm) / 2 / rate)
            alignment = {
                "chars": chars,
                "charStartTimesMs": [round(a * 1000) for _, a, _ in timed],
                "charDurationsMs": [round((b - a) * 1000) for _, a, b in timed],
            }
            for i, piece in enumerate(_pieces(pcm, rate)):
                said: dict[str, Any] = {"context_id": context, "audio": piece, "isFinal": None}
                if i == 0:  # the text's alignment comes with its first audio
                    said.update(alignment=alignment, normalizedAlignment=alignment)
                await _send(ws, said)
        return ws
