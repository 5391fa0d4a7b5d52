"""`voxkeepctl simulate`: run a whole scripted call (or several) offline, with the production
session, capture and store (docs/simulate.md)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from livekit.plugins import silero
from pydantic import SecretStr

from voxkeep.call.history import open_writer
from voxkeep.core.errors import InvalidInput, NotFound
from voxkeep.core.settings import Settings
from voxkeep.sim.audio import MIC_RATE
from voxkeep.sim.call import SimCall
from voxkeep.sim.openai_server import LocalOpenAI
from voxkeep.sim.script import BargeIn, Command, Say, Script, Wait
from voxkeep.sim.speech import ESPEAK_RATE, Pcm, Voice, espeak, read_wav, resample
from voxkeep.store import open_store
from voxkeep.store.base import ANY_OWNER, Store
from voxkeep.worker import providers as models
from voxkeep.worker.providers import Providers


@dataclass
class CallResult:
    call_id: str  # the call's first row; each chat it moves to is held by a row of its own
    chat_ids: list[str]
    control_replies: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    messages_saved: int = 0


async def _clip(step: Say | BargeIn, base: Path) -> Pcm:
    text = step.say if isinstance(step, Say) else step.barge_in
    if step.audio is not None:
        path = base / step.audio
        try:
            samples, rate = read_wav(path.read_bytes())
        except OSError as exc:
            raise InvalidInput(f"cannot read {path}: {exc.strerror}") from exc
    else:
        voice = Voice(
            pitch=50 if step.pitch is None else step.pitch,
            rate=175 if step.rate is None else step.rate,
            volume=100 if step.volume is None else step.volume,
        )
        samples, rate = await espeak(text, voice), ESPEAK_RATE
    return resample(samples, rate, MIC_RATE)


def _events(call: SimCall) -> list[dict[str, Any]]:
    found = []
    for sent in call.local.sent:
        with contextlib.suppress(ValueError):
            payload = json.loads(sent.payload)
            if isinstance(payload, dict) and payload.get("type") == "chat.started":
                found.append(payload)
    return found


async def _saved(store: Store, chat_ids: list[str], call_ids: set[str]) -> int:
    count = 0
    for chat_id in chat_ids:
        before: int | None = None
        while True:
            try:
                page = await store.messages(chat_id, owner=ANY_OWNER, before_seq=before, limit=500)
            except NotFound:  # the chat was dropped (no user message) or deleted
                break
            count += sum(1 for m in page.messages if m.call_id in call_ids)
            if page.next_before_seq is None:
                break
            before = page.next_before_seq
    return count


async def simulate(
    script: Script,
    base: Path,
    settings: Settings,
    *,
    offline: bool,
    trace: IO[str] | None = None,
) -> dict[str, Any]:
    store = await open_store(settings.db_url)
    await store.migrate()
    server = LocalOpenAI()
    if offline:
        server.script(script.replies)
        url = await server.start()
        settings = settings.model_copy(  # the local server speaks OpenAI's API only
            update={"openai_base_url": url, "openai_api_key": SecretStr("offline"),
                    "stt": "openai", "tts": "openai", "realtime_model": ""}
        )  # fmt: skip
    writer = await open_writer(settings, store)

    def write_trace(messages: list[dict[str, Any]]) -> None:
        if trace is not None:
            trace.write(json.dumps({"messages": messages}, ensure_ascii=False) + "\n")

    try:
        # every clip is known before the first call: the recognizer compares audio, so which
        # clip it hears never depends on the order they are spoken in
        clips: dict[int, Pcm] = {}
        for call_script in script.calls:
            for step in call_script.steps:
                if isinstance(step, Say | BargeIn):
                    clips[id(step)] = await _clip(step, base)
                    text = step.say if isinstance(step, Say) else step.barge_in
                    server.recognizer.learn(text, clips[id(step)], MIC_RATE)
        vad = silero.VAD.load()
        results = []
        for call_script in script.calls:
            providers: Providers = models.build(settings)
            call = SimCall(
                settings,
                writer,
                vad,
                providers,
                caller=script.caller,
                room_name=script.room or "sim",
                trace=write_trace,
                job_metadata=None
                if call_script.metadata is None
                else json.dumps(call_script.metadata),
            )
            await call.start()
            chat_ids, call_ids = [call.call.state.chat_id], {call.call.state.call_id}
            first_call_id = call.call.state.call_id
            for i, step in enumerate(call_script.steps):
                nxt = call_script.steps[i + 1] if i + 1 < len(call_script.steps) else None
                if isinstance(step, Say):
                    await call.say(clips[id(step)], settle=not isinstance(nxt, BargeIn))
                elif isinstance(step, BargeIn):
                    await call.barge_in(clips[id(step)])
                elif isinstance(step, Command):
                    await call.command(step.command, via=step.via, sender=step.sender)
                    await call.settle()  # what the command set off (new_chat greets)
                elif isinstance(step, Wait):
                    await call.wait_idle(step.wait)
                if call.call.state.chat_id not in chat_ids:
                    chat_ids.append(call.call.state.chat_id)
                call_ids.add(call.call.state.call_id)
            await call.end("hangup" if call_script.end == "hangup" else "lost")  # flushes
            result = CallResult(call_id=first_call_id, chat_ids=chat_ids)
            result.control_replies = [
                {"to": r.to, "via": r.via, "reply": r.reply} for r in call.control_replies
            ]
            result.events = _events(call)
            result.messages_saved = await _saved(writer.store, chat_ids, call_ids)
            results.append(result)
    finally:
        await writer.aclose()
        await server.aclose()
    return {"db": settings.db_url, "calls": [r.__dict__ for r in results]}


@contextlib.contextmanager
def trace_file(path: str | None) -> Iterator[IO[str] | None]:
    if path is None:
        yield None
        return
    try:
        handle = open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise InvalidInput(f"cannot write {path}: {exc.strerror}") from exc
    with handle:
        yield handle
