"""A speech-to-speech session (OpenAI Realtime through `livekit-plugins-openai`, against a local
server speaking its wire protocol): both sides stored as they finalize, prosody measured from
the caller's audio, and the context the model holds rebuilt on `new_chat`."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from livekit.agents import Agent, AgentSession
from livekit.agents import vad as lk_vad
from livekit.plugins import openai

from tests.conftest import Serve
from tests.session.conftest import CALLER, StartCall, seed, stored, wait_for_summary
from tests.support.realtime_server import RATE, LocalRealtime
from voxkeep.sim.audio import MIC_RATE
from voxkeep.sim.openai_server import LocalOpenAI
from voxkeep.sim.speech import ESPEAK_RATE, Pcm, espeak, resample
from voxkeep.store import Store
from voxkeep.store.writer import Writer

LISBON = "Tell me about Lisbon."
PASTA = "A recipe for pasta."


@pytest.fixture
async def realtime(serve: Serve) -> LocalRealtime:
    return await serve(LocalRealtime())


async def clip(server: LocalRealtime, text: str) -> Pcm:
    """The caller's microphone saying `text`; the server recognizes it at the rate it hears."""
    spoken = await espeak(text)
    server.recognizer.learn(text, resample(spoken, ESPEAK_RATE, RATE), RATE)
    return resample(spoken, ESPEAK_RATE, MIC_RATE)


RealtimeSession = Callable[[], AgentSession[None]]


@pytest.fixture
async def realtime_session(
    realtime: LocalRealtime, vad: lk_vad.VAD
) -> AsyncIterator[RealtimeSession]:
    """Sessions on OpenAI Realtime at the local server, as a user would build them."""
    models: list[openai.realtime.RealtimeModel] = []

    def make() -> AgentSession[None]:
        models.append(openai.realtime.RealtimeModel(base_url=realtime.base_url, api_key="key"))
        return AgentSession(vad=vad, llm=models[-1], aec_warmup_duration=0.0)

    yield make
    for model in models:
        await model.aclose()


def texts(items: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(role, what was said) of each message the model holds."""
    said = []
    for item in items:
        for part in item.get("content") or []:
            said.append((item["role"], part.get("text") or part.get("transcript") or ""))
    return said


async def test_a_realtime_call_stores_both_sides_as_they_finalize_with_prosody(
    start_call: StartCall,
    realtime: LocalRealtime,
    realtime_session: RealtimeSession,
    reader: Store,
) -> None:
    lisbon, pasta = await clip(realtime, LISBON), await clip(realtime, PASTA)
    realtime.script(["Lisbon is lovely.", "Boil the pasta."])
    call = await start_call(
        agent=Agent(instructions="You are a travel agent."), session=realtime_session()
    )
    await call.say(lisbon)
    await call.say(pasta)
    await call.end("hangup")

    messages = await stored(reader, call.call.chat_id)
    assert [(m.role, m.content) for m in messages] == [
        ("user", LISBON), ("assistant", "Lisbon is lovely."),
        ("user", PASTA), ("assistant", "Boil the pasta."),
    ]  # fmt: skip
    for n, m in enumerate(m for m in messages if m.role == "user"):
        assert m.prosody is not None and 70 < m.prosody["pitch"]["median_hz"] < 200
        assert m.prosody["relative"]["baseline_n"] == n
    # the model was given the user's agent's instructions
    instructions = [e["session"].get("instructions") for e in realtime.received("session.update")]
    assert "You are a travel agent." in instructions


async def test_new_chat_on_a_realtime_call_empties_the_context_the_model_holds(
    start_call: StartCall,
    realtime: LocalRealtime,
    realtime_session: RealtimeSession,
    reader: Store,
) -> None:
    lisbon, pasta = await clip(realtime, LISBON), await clip(realtime, PASTA)
    realtime.script(["Lisbon is lovely.", "Hello, what can I do for you?", "Boil the pasta."])
    call = await start_call(agent=Agent(instructions="You are a cook."), session=realtime_session())
    await call.say(lisbon)
    first = call.call.chat_id
    assert texts(realtime.items) == [("user", LISBON), ("assistant", "Lisbon is lovely.")]

    await call.call.switcher.new_chat()
    await call.settle()  # the greeting
    await call.say(pasta)
    await call.end("hangup")

    assert texts(realtime.items) == [
        ("assistant", "Hello, what can I do for you?"), ("user", PASTA),
        ("assistant", "Boil the pasta."),
    ]  # fmt: skip
    assert [m.content for m in await stored(reader, first)] == [LISBON, "Lisbon is lovely."]
    assert [m.content for m in await stored(reader, call.call.chat_id)] == [
        "Hello, what can I do for you?", PASTA, "Boil the pasta."
    ]  # fmt: skip


async def test_a_resumed_chat_is_put_back_into_the_realtime_models_conversation(
    start_call: StartCall, realtime: LocalRealtime, realtime_session: RealtimeSession,
    writer: Writer,
) -> None:  # fmt: skip
    old = await seed(writer, CALLER, [LISBON, "Lisbon is lovely."], at=time.time() - 60)
    realtime.script(["Welcome back!"])
    call = await start_call(
        agent=Agent(instructions="You are a travel agent."),
        session=realtime_session(),
        job_metadata=json.dumps({"chat_id": old.id}),
    )
    await call.end("hangup")

    assert call.call.chat_id == old.id
    assert texts(realtime.items)[:3] == [
        ("user", LISBON), ("assistant", "Lisbon is lovely."), ("assistant", "Welcome back!"),
    ]  # fmt: skip
    (welcome,) = realtime.received("response.create")
    assert "come back" in welcome["response"]["instructions"]


async def test_an_interrupted_realtime_answer_keeps_only_what_was_played(
    start_call: StartCall,
    realtime: LocalRealtime,
    realtime_session: RealtimeSession,
    reader: Store,
) -> None:
    long = (
        "Lisbon is the capital of Portugal, a city of seven hills above the river Tagus, with "
        "yellow trams, tiled houses, custard tarts and fado in the old quarter at night."
    )
    lisbon, pasta = await clip(realtime, LISBON), await clip(realtime, PASTA)
    realtime.script([long, "Boil the pasta."])
    call = await start_call(
        agent=Agent(instructions="You are a guide."), session=realtime_session()
    )
    await call.say(lisbon, settle=False)
    await call.barge_in(pasta, after_s=1.5)
    await call.end("hangup")

    messages = await stored(reader, call.call.chat_id)
    assert [(m.role, m.interrupted) for m in messages] == [
        ("user", False), ("assistant", True), ("user", False), ("assistant", False),
    ]  # fmt: skip
    cut = messages[1].content or ""
    assert cut and long.startswith(cut) and len(cut) < len(long)
    (truncated,) = realtime.received("conversation.item.truncate")
    assert truncated["audio_end_ms"] > 0


async def test_the_worker_runs_a_realtime_model_named_in_the_settings(
    start_call: StartCall, realtime: LocalRealtime, reader: Store
) -> None:
    lisbon = await clip(realtime, LISBON)
    realtime.script(["Lisbon is lovely."])
    call = await start_call(realtime_model="gpt-realtime", openai_base_url=realtime.base_url)
    await call.say(lisbon)
    await call.end("hangup")

    assert realtime.models == ["gpt-realtime"]
    assert [(m.role, m.content) for m in await stored(reader, call.call.chat_id)] == [
        ("user", LISBON), ("assistant", "Lisbon is lovely."),
    ]  # fmt: skip


async def test_a_realtime_chat_too_long_for_the_context_is_summarized_by_the_text_model(
    start_call: StartCall,
    realtime: LocalRealtime,
    realtime_session: RealtimeSession,
    openai_server: LocalOpenAI,
    writer: Writer,
) -> None:
    lines = [f"Message number {i} about the long trip." for i in range(200)]
    old = await seed(writer, CALLER, lines, at=time.time() - 20_000)
    openai_server.summaries.append("A long trip was planned.")
    realtime.script(["Welcome back!"])
    call = await start_call(
        agent=Agent(instructions="You are a travel agent."),
        session=realtime_session(),
        job_metadata=json.dumps({"chat_id": old.id}),
    )
    # the realtime model holds the newest messages as they were said; the older part is
    # summarized by the text model (a realtime model cannot be asked for text)
    assert await wait_for_summary(writer.store, old.id) == "A long trip was planned."
    await call.end("hangup")
    held = [text for _, text in texts(realtime.items)]
    assert lines[-1] in held and lines[0] not in held
    (asked,) = openai_server.summary_requests()
    assert lines[0] in asked["messages"][1]["content"]
