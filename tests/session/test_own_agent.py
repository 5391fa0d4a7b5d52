"""Persistence around the user's own agent (docs/embedding.md): an `Agent` of theirs, with its
own `stt_node` and `on_user_turn_completed`, gets history and prosody without subclassing
anything of ours; after a handoff, `new_chat` acts on the agent that is active."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

import pytest
from livekit import rtc
from livekit.agents import Agent, ModelSettings, function_tool, llm, stt

from tests.session.conftest import CALLER, Speak, StartCall, stored
from voxkeep.sim.openai_server import LocalOpenAI, ToolCall
from voxkeep.store import Store

MUSEUM = "Retrieved: the city museum opens at nine."


class Concierge(Agent):
    """A user's agent: their own recognizer node (counting the frames it gets) and their own
    turn hook (retrieval, where people put RAG)."""

    def __init__(self) -> None:
        super().__init__(instructions="You are a city concierge.")
        self.frames = 0
        self.turns: list[str] = []

    async def stt_node(
        self, audio: AsyncIterable[rtc.AudioFrame], model_settings: ModelSettings
    ) -> AsyncIterable[stt.SpeechEvent | str]:
        async def counted() -> AsyncIterator[rtc.AudioFrame]:
            async for frame in audio:
                self.frames += 1
                yield frame

        async for event in Agent.default.stt_node(self, counted(), model_settings):
            yield event

    async def on_user_turn_completed(
        self, turn_ctx: llm.ChatContext, new_message: llm.ChatMessage
    ) -> None:
        self.turns.append(new_message.text_content or "")
        turn_ctx.add_message(role="assistant", content=MUSEUM)


async def test_a_users_own_agent_gets_history_and_prosody_beside_its_own_nodes(
    start_call: StartCall, speech: Speak, openai_server: LocalOpenAI, reader: Store
) -> None:
    said = ["When does the museum open?", "And where is it?"]
    clips = [await speech(text) for text in said]
    concierge = Concierge()
    call = await start_call(agent=concierge)
    for clip in clips:
        await call.say(clip)
    await call.end("hangup")

    messages = await stored(reader, call.call.chat_id)
    assert [(m.role, m.content) for m in messages] == [
        ("user", said[0]), ("assistant", f"You said: {said[0]}"), ("user", said[1]),
        ("assistant", f"You said: {said[1]}"),
    ]  # fmt: skip
    for n, m in enumerate(m for m in messages if m.role == "user"):
        assert m.prosody is not None and 70 < m.prosody["pitch"]["median_hz"] < 200
        assert m.prosody["relative"]["baseline_n"] == n
        assert m.started_at is not None and m.ended_at is not None
    chat = await reader.get_chat(call.call.chat_id, owner=CALLER)
    assert chat.metadata["prosody_baseline"]["utterances"] == 2
    # the user's nodes ran as they would without us: their recognizer node heard the audio,
    # their turn hook saw each turn, and what it retrieved reached the model (the session's
    # preemptive request, made before the hook, is dropped by LiveKit and answered by this)
    assert concierge.frames > 0 and concierge.turns == said
    answered = openai_server.chat_requests()[-1]["messages"]
    assert answered[0]["content"] == "You are a city concierge."
    assert [m["content"] for m in answered if m["role"] == "user"] == said
    assert sum(m["content"] == MUSEUM for m in answered) == 1  # turn_ctx is for one turn


class Reception(Agent):
    def __init__(self) -> None:
        super().__init__(instructions="You are the reception.")

    @function_tool
    async def transfer_to_bookings(self) -> tuple[Agent, str]:
        """Hand the caller over to bookings."""
        return Bookings(self.chat_ctx), "Transferring you to bookings."


class Bookings(Agent):
    def __init__(self, chat_ctx: llm.ChatContext) -> None:
        super().__init__(instructions="You take bookings.", chat_ctx=chat_ctx)


def said_in(request: dict[str, Any]) -> str:
    return " ".join(str(m.get("content")) for m in request["messages"])


async def test_after_a_handoff_capture_goes_on_and_new_chat_acts_on_the_active_agent(
    start_call: StartCall, speech: Speak, openai_server: LocalOpenAI, reader: Store
) -> None:
    lisbon, table, pasta = (
        await speech("I need a room in Lisbon."),
        await speech("A table for two tonight."),
        await speech("A recipe for pasta."),
    )
    openai_server.script(
        [ToolCall("transfer_to_bookings", {}), "Bookings here.", "Booked for two.",
         "Hello! What can I do for you?", "Sure, pasta."]
    )  # fmt: skip
    call = await start_call(agent=Reception())
    await call.say(lisbon)
    await call.wait_for(lambda: isinstance(call.session.current_agent, Bookings))
    await call.settle()
    await call.say(table)
    first = call.call.chat_id

    await call.call.switcher.new_chat()
    await call.settle()  # the greeting
    await call.say(pasta)
    await call.end("hangup")

    # one chat holds the whole conversation, across the handoff
    before = [(m.role, m.content, m.tool_name) for m in await stored(reader, first)]
    assert before == [
        ("user", "I need a room in Lisbon.", None),
        ("tool", None, "transfer_to_bookings"), ("tool", None, "transfer_to_bookings"),
        ("assistant", "Bookings here.", None),
        ("user", "A table for two tonight.", None), ("assistant", "Booked for two.", None),
    ]  # fmt: skip
    # the agent that forgot the old chat is the one taking bookings: the requests after the
    # switch carry its instructions and the new chat only
    greeting, answer = openai_server.chat_requests()[-2:]
    for request in (greeting, answer):
        assert request["messages"][0]["content"] == "You take bookings."
        assert "Lisbon" not in said_in(request) and "table" not in said_in(request)
    assert [(m.role, m.content) for m in await stored(reader, call.call.chat_id)] == [
        ("assistant", "Hello! What can I do for you?"), ("user", "A recipe for pasta."),
        ("assistant", "Sure, pasta."),
    ]  # fmt: skip


@pytest.mark.parametrize(("preemptive", "requests"), [(True, 2), (False, 1)])
async def test_preemptive_generation_is_a_setting(
    start_call: StartCall,
    speech: Speak,
    openai_server: LocalOpenAI,
    preemptive: bool,
    requests: int,
) -> None:
    # the concierge's turn hook changes the context, so a reply started before it is dropped
    # and asked for again: two requests for the turn with preemptive generation, one without
    clip = await speech("When does the museum open?")
    call = await start_call(agent=Concierge(), preemptive_generation=preemptive)
    await call.say(clip)
    assert len(openai_server.chat_requests()) == requests
