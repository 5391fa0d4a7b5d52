"""A small local server that speaks the OpenAI HTTP API, so the real `livekit-plugins-openai`
clients run with no cloud: `voxkeepctl simulate --offline` uses it, and so do the tests, which
assert on the requests it records (docs/simulate.md).

- `POST /v1/chat/completions` (streamed): the scripted replies in order, then an echo; a reply
  may also be a tool call or an HTTP error. The summarizer's requests (`voxkeep/call/summarize.py`)
  are answered from `summaries` instead, so a background summary never takes a call's reply.
- `POST /v1/audio/transcriptions`: the text of the known clip the audio matches.
- `POST /v1/audio/speech`: espeak-ng speech as 24 kHz 16-bit PCM.

In a process of its own (`python -m voxkeep.sim.openai_server`), as a real provider would be, it
is also told what to expect and asked what it received over HTTP: `POST /sim/clips` (a text
and an espeak-ng voice to recognize), `POST /sim/replies` (replies to give, in order: a text,
or `{"tool": name, "arguments": {…}}` for a tool call) and `GET /sim/requests` (every request
so far).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import sys
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from aiohttp import web

from voxkeep.call.summarize import INSTRUCTIONS as SUMMARY_INSTRUCTIONS
from voxkeep.sim.speech import (
    ESPEAK_RATE,
    ClipRecognizer,
    Voice,
    espeak,
    read_wav,
    resample,
)

TTS_RATE = 24000
SUMMARY_PATH = "/v1/chat/completions#summary"
"""How a summary request is recorded: apart from the session's own."""
AGENT_VOICE = Voice(pitch=35, rate=190)


@dataclass(frozen=True, slots=True)
class ToolCall:
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Failure:
    status: int = 500


Reply = str | ToolCall | Failure


@dataclass
class Recorded:
    path: str
    body: Any


def _not_a_hang_up(record: logging.LogRecord) -> bool:
    """A client that hangs up mid-answer (a worker stopped mid-turn) is not the server's error."""
    return not (record.exc_info and isinstance(record.exc_info[1], ConnectionResetError))


async def serve_locally(app: web.Application) -> tuple[web.AppRunner, int]:
    """Serve `app` on a free loopback port: its runner (to clean up) and the port."""
    logging.getLogger("aiohttp.server").addFilter(_not_a_hang_up)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


@dataclass
class LocalService:
    """A stand-in for a model provider on a free loopback port, at `base_url` once started."""

    base_url: str = ""
    _runner: web.AppRunner | None = None
    root: ClassVar[str] = "/v1"
    """Where the API's paths start, as its clients' base URL names it."""

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    async def start(self) -> str:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        self.routes(app)
        self._runner, port = await serve_locally(app)
        self.base_url = f"http://127.0.0.1:{port}{self.root}"
        return self.base_url

    async def aclose(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


def _text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):
        content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content if isinstance(content, str) else ""


def _echo(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user" and (content := _text(message)):
            return f"You said: {content}"
    return "Hello."


def is_summary_request(body: Any) -> bool:
    messages = body.get("messages") if isinstance(body, dict) else None
    return (
        isinstance(messages, list) and bool(messages) and _text(messages[0]) == SUMMARY_INSTRUCTIONS
    )


@dataclass
class LocalOpenAI(LocalService):
    recognizer: ClipRecognizer = field(default_factory=ClipRecognizer)
    replies: deque[Reply] = field(default_factory=deque)
    summaries: deque[str] = field(default_factory=deque)
    summary_gate: asyncio.Event | None = None
    """When set to an event, a summary is answered only once the event is set (a summary still
    in flight while the call moves on)."""
    voice: Voice = AGENT_VOICE
    requests: list[Recorded] = field(default_factory=list)
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    def script(self, replies: Iterable[Reply]) -> None:
        self.replies.extend(replies)

    def chat_requests(self) -> list[dict[str, Any]]:
        """The session's LLM requests, oldest first (summaries are in `summary_requests`)."""
        return [r.body for r in self.requests if r.path == "/v1/chat/completions"]

    def summary_requests(self) -> list[dict[str, Any]]:
        return [r.body for r in self.requests if r.path == SUMMARY_PATH]

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/audio/transcriptions", self._transcribe)
        app.router.add_post("/v1/audio/speech", self._speech)
        app.router.add_post("/sim/clips", self._learn)
        app.router.add_post("/sim/replies", self._script)
        app.router.add_get("/sim/requests", self._recorded)

    async def _models(self, request: web.Request) -> web.Response:
        self.requests.append(Recorded(request.path, None))
        return web.json_response({"object": "list", "data": [{"id": "sim", "object": "model"}]})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        reply: Reply
        if is_summary_request(body):
            self.requests.append(Recorded(SUMMARY_PATH, body))
            if self.summary_gate is not None:
                await self.summary_gate.wait()
            reply = self.summaries.popleft() if self.summaries else "We talked earlier."
        else:
            self.requests.append(Recorded(request.path, body))
            reply = self.replies.popleft() if self.replies else _echo(body.get("messages", []))
        if isinstance(reply, Failure):
            return web.json_response(
                {"error": {"message": "scripted failure", "type": "server_error"}},
                status=reply.status,
            )
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        cid, model = f"chatcmpl-{next(self._ids)}", body.get("model", "sim")

        async def send(choices: list[dict[str, Any]], **extra: Any) -> None:
            chunk = {"id": cid, "object": "chat.completion.chunk", "created": 0, "model": model}
            chunk.update(choices=choices, **extra)
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())

        if isinstance(reply, ToolCall):
            call = {
                "index": 0,
                "id": f"call_{next(self._ids)}",
                "type": "function",
                "function": {"name": reply.name, "arguments": json.dumps(reply.arguments)},
            }
            await send([{"index": 0, "delta": {"role": "assistant", "tool_calls": [call]}}])
            finish = "tool_calls"
        else:
            words = reply.split(" ")
            for i, word in enumerate(words):
                text = word if i == len(words) - 1 else word + " "
                delta: dict[str, Any] = {"content": text}
                if i == 0:
                    delta["role"] = "assistant"
                await send([{"index": 0, "delta": delta, "finish_reason": None}])
            finish = "stop"
        await send([{"index": 0, "delta": {}, "finish_reason": finish}])
        usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
        await send([], usage=usage)
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def _transcribe(self, request: web.Request) -> web.Response:
        form = await request.post()
        upload = form.get("file")
        data = upload.file.read() if isinstance(upload, web.FileField) else b""
        samples, rate = read_wav(data)
        score, text = await asyncio.to_thread(self.recognizer.heard, samples, rate)
        heard = {"bytes": len(data), "seconds": round(len(samples) / rate, 2) if rate else 0.0,
                 "score": round(score, 3), "text": text}  # fmt: skip
        self.requests.append(Recorded(request.path, heard))
        return web.json_response({"text": text})

    async def _speech(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(Recorded(request.path, body))
        samples = await espeak(body.get("input", ""), self.voice)
        pcm = resample(samples, ESPEAK_RATE, TTS_RATE)
        return web.Response(
            body=pcm.tobytes(),
            headers={"Content-Type": "audio/pcm", "x-request-id": f"req_{next(self._ids)}"},
        )

    async def _learn(self, request: web.Request) -> web.Response:
        body = await request.json()
        voice, rate = Voice(**body.get("voice", {})), int(body.get("rate", ESPEAK_RATE))
        samples = resample(await espeak(body["text"], voice), ESPEAK_RATE, rate)
        self.recognizer.learn(body["text"], samples, rate)
        return web.json_response({"learned": body["text"]})

    async def _script(self, request: web.Request) -> web.Response:
        replies = (await request.json())["replies"]
        self.script(
            ToolCall(r["tool"], r.get("arguments", {})) if isinstance(r, dict) else str(r)
            for r in replies
        )
        return web.json_response({"queued": len(self.replies)})

    async def _recorded(self, request: web.Request) -> web.Response:
        return web.json_response([{"path": r.path, "body": r.body} for r in self.requests])


async def serve_until_stdin_closes(
    server: LocalService, recognizer: ClipRecognizer, texts: list[str], rate: int
) -> None:
    """Serve in a process of its own, knowing the clips of `texts` in espeak-ng's default
    voice at `rate`: print the base URL (the one line the parent waits for), serve until
    standard input closes."""
    for text in texts:
        recognizer.learn(text, resample(await espeak(text), ESPEAK_RATE, rate), rate)
    sys.stdout.write(await server.start() + "\n")
    sys.stdout.flush()
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await server.aclose()


async def _serve(texts: list[str], mic_rate: int) -> None:
    server = LocalOpenAI()
    await serve_until_stdin_closes(server, server.recognizer, texts, mic_rate)


if __name__ == "__main__":
    # A server in a process of its own, as a real provider would be: for benchmarks, where
    # sharing the caller's event loop would add its work to what is measured, and for the
    # end-to-end tests, whose worker is a process of its own too. It prints its base URL and
    # serves until its standard input closes.
    #   python -m voxkeep.sim.openai_server [MIC_RATE "first utterance" "second utterance" ...]
    asyncio.run(_serve(sys.argv[2:], int(sys.argv[1]) if len(sys.argv) > 1 else ESPEAK_RATE))
