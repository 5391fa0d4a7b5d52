"""A small local server that speaks the part of the OpenAI Realtime API (GA, over a WebSocket at
`/v1/realtime`) that `livekit-plugins-openai`'s `RealtimeModel` uses, so a speech-to-speech
session runs with no cloud; the tests assert on the client events it records.

- The caller's audio (`input_audio_buffer.append`, 24 kHz PCM) is cut into utterances by an
  energy gate, as the service's server VAD would: `speech_started`, then, after 500 ms of
  quiet, `speech_stopped`, the user item, its transcript (the known clip the audio matches)
  and an answer.
- An answer is the next scripted reply, else an echo: espeak-ng speech with its transcript,
  as `response.*` events. Speech from the caller during an answer cancels it.
- `conversation.item.create` / `delete` / `truncate` and `response.create` / `cancel` are
  answered as the service answers them.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import sys
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from aiohttp import WSMsgType, web

from voxkeep.sim.openai_server import LocalService, serve_until_stdin_closes
from voxkeep.sim.speech import (
    ESPEAK_RATE,
    ClipRecognizer,
    Ended,
    Pcm,
    SpeechGate,
    Voice,
    espeak,
    resample,
)

RATE = 24_000
AUDIO_DELTA_S = 0.1


@dataclass
class LocalRealtime(LocalService):
    recognizer: ClipRecognizer = field(default_factory=ClipRecognizer)
    """Knows clips at 24 kHz (the rate the plugin sends)."""
    replies: deque[str] = field(default_factory=deque)
    voice: Voice = field(default_factory=Voice)
    events: list[dict[str, Any]] = field(default_factory=list)
    """Every client event received (audio appends without their audio), oldest first."""
    items: list[dict[str, Any]] = field(default_factory=list)
    """The conversation the model holds now (the newest connection's), in order."""
    models: list[str] = field(default_factory=list)
    """The model each connection asked for."""

    def script(self, replies: Iterable[str]) -> None:
        self.replies.extend(replies)

    def received(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("type") == kind]

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/v1/realtime", self._connect)

    async def _connect(self, request: web.Request) -> web.WebSocketResponse:
        self.models.append(request.query.get("model", ""))
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        conversation = _Conversation(self, ws)
        try:
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    await conversation.handle(json.loads(message.data))
        finally:
            await conversation.aclose()
        return ws


class _Conversation:
    """One WebSocket: the conversation's items, the input audio, the answer in progress."""

    def __init__(self, server: LocalRealtime, ws: web.WebSocketResponse) -> None:
        self._server = server
        self._ws = ws
        self._items = server.items = []
        self._ids = itertools.count(1)
        self._gate = SpeechGate(RATE)  # 500 ms of quiet: the service's server VAD default
        self._speaking: str | None = None  # the item id of the utterance being heard
        self._answer: asyncio.Task[None] | None = None

    def _id(self, prefix: str) -> str:
        return f"{prefix}_{next(self._ids):06d}"

    async def _send(self, event: dict[str, Any]) -> None:
        if not self._ws.closed:
            await self._ws.send_str(json.dumps({"event_id": self._id("event"), **event}))

    async def handle(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "input_audio_buffer.append":
            audio = np.frombuffer(base64.b64decode(event["audio"]), dtype=np.int16)
            self._server.events.append({"type": kind, "samples": len(audio)})
            await self._hear(audio)
            return
        self._server.events.append(event)
        if kind == "conversation.item.create":
            item = {**event["item"], "id": event["item"].get("id") or self._id("item")}
            await self._added(item, event.get("previous_item_id"))
        elif kind == "conversation.item.delete":
            self._items[:] = [i for i in self._items if i["id"] != event["item_id"]]
            await self._send({"type": "conversation.item.deleted", "item_id": event["item_id"]})
        elif kind == "conversation.item.truncate":
            await self._send({"type": "conversation.item.truncated", **_without(event, "type")})
        elif kind == "response.create":
            metadata = (event.get("response") or {}).get("metadata")
            self._start_answer(metadata)
        elif kind == "response.cancel":
            await self._cancel_answer()

    async def _added(self, item: dict[str, Any], previous: str | None) -> None:
        ids = [i["id"] for i in self._items]
        previous = previous if previous in ids else (ids[-1] if ids else None)
        self._items.insert(ids.index(previous) + 1 if previous is not None else 0, item)
        await self._send({"type": "conversation.item.added", "previous_item_id": previous,
                          "item": item})  # fmt: skip

    async def _hear(self, audio: Pcm) -> None:
        for event in self._gate.push(audio):
            if isinstance(event, Ended):
                await self._utterance_ended(event.audio)
                continue
            self._speaking = self._id("item")
            await self._cancel_answer()  # the caller talks over the answer
            await self._send({"type": "input_audio_buffer.speech_started",
                              "item_id": self._speaking, "audio_start_ms": 0})  # fmt: skip

    async def _utterance_ended(self, heard: Pcm) -> None:
        item_id, self._speaking = self._speaking, None
        assert item_id is not None
        await self._send({"type": "input_audio_buffer.speech_stopped", "item_id": item_id,
                          "audio_end_ms": 0})  # fmt: skip
        previous = self._items[-1]["id"] if self._items else None
        await self._send({"type": "input_audio_buffer.committed", "item_id": item_id,
                          "previous_item_id": previous})  # fmt: skip
        content = [{"type": "input_audio", "transcript": None}]
        user: dict[str, Any] = {"id": item_id, "type": "message", "role": "user",
                                "status": "completed", "content": content}  # fmt: skip
        await self._added(user, previous)
        transcript = self._server.recognizer.recognize(heard, RATE)
        user["content"][0]["transcript"] = transcript
        kind = "conversation.item.input_audio_transcription.completed"
        await self._send(
            {"type": kind, "item_id": item_id, "content_index": 0, "transcript": transcript}
        )
        self._start_answer(None, heard=transcript)

    def _start_answer(self, metadata: Any, heard: str = "") -> None:
        text = self._server.replies.popleft() if self._server.replies else f"You said: {heard}"
        self._answer = asyncio.create_task(self._respond(text, metadata), name="realtime.answer")

    async def _cancel_answer(self) -> None:
        answer, self._answer = self._answer, None
        if answer is not None and not answer.done():
            answer.cancel()
            await asyncio.gather(answer, return_exceptions=True)

    async def _respond(self, text: str, metadata: Any) -> None:
        response_id, item_id = self._id("resp"), self._id("item")
        ids = {"response_id": response_id, "item_id": item_id, "output_index": 0}
        item: dict[str, Any] = {"id": item_id, "type": "message", "role": "assistant",
                                "status": "in_progress", "content": []}  # fmt: skip
        response = {"id": response_id, "object": "realtime.response", "output": [],
                    "metadata": metadata}  # fmt: skip
        await self._send({"type": "response.created",
                          "response": {**response, "status": "in_progress"}})  # fmt: skip
        status = "cancelled"
        try:
            await self._send({"type": "response.output_item.added", "response_id": response_id,
                              "output_index": 0, "item": item})  # fmt: skip
            await self._added(item, None)
            await self._send({"type": "response.content_part.added", **ids, "content_index": 0,
                              "part": {"type": "audio", "transcript": ""}})  # fmt: skip
            pcm = resample(await espeak(text, self._server.voice), ESPEAK_RATE, RATE).tobytes()
            await self._send({"type": "response.output_audio_transcript.delta", **ids,
                              "content_index": 0, "delta": text})  # fmt: skip
            step = int(RATE * AUDIO_DELTA_S) * 2
            for at in range(0, len(pcm), step):
                delta = base64.b64encode(pcm[at : at + step]).decode()
                await self._send({"type": "response.output_audio.delta", **ids,
                                  "content_index": 0, "delta": delta})  # fmt: skip
                await asyncio.sleep(0)
            await self._send({"type": "response.output_audio.done", **ids, "content_index": 0})
            await self._send({"type": "response.output_audio_transcript.done", **ids,
                              "content_index": 0, "transcript": text})  # fmt: skip
            item.update(status="completed", content=[{"type": "output_audio", "transcript": text}])
            done = dict(item)
            await self._send({"type": "response.output_item.done", "response_id": response_id,
                              "output_index": 0, "item": done})  # fmt: skip
            response["output"], status = [done], "completed"
        finally:
            await asyncio.shield(
                self._send({"type": "response.done", "response": {**response, "status": status}})
            )

    async def aclose(self) -> None:
        await self._cancel_answer()


def _without(event: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in event.items() if k not in keys and k != "event_id"}


async def _serve(texts: list[str]) -> None:
    server = LocalRealtime()
    await serve_until_stdin_closes(server, server.recognizer, texts, RATE)


if __name__ == "__main__":
    # In a process of its own, as the service would be (for the benchmarks):
    #   python -m tests.support.realtime_server ["first utterance" "second utterance" ...]
    asyncio.run(_serve(sys.argv[1:]))
