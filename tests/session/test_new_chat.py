"""`new_chat` mid-call (DESIGN §6, issue 4): the closed chat is kept whole, the LLM forgets it,
and the new chat collects what follows."""

from __future__ import annotations

from agent.sim.openai_server import LocalOpenAI
from agent.store import ANY_OWNER, Store
from tests.session.conftest import CALLER, Speak, StartCall, stored


async def test_new_chat_keeps_the_closed_chat_and_the_llm_forgets_it(
    start_call: StartCall, speech: Speak, openai_server: LocalOpenAI, reader: Store
) -> None:
    openai_server.script(["Lisbon is lovely.", "Hello! What can I do for you?", "Sure, pasta."])
    lisbon, pasta = await speech("Tell me about Lisbon."), await speech("A recipe for pasta.")
    call = await start_call()
    await call.say(lisbon)
    first = call.call.state.chat_id

    saved = await call.call.switcher.new_chat()
    await call.settle()  # the greeting
    await call.say(pasta)
    second = call.call.state.chat_id
    await call.end("hangup")

    assert saved == first and second != first
    old = await reader.get_chat(first, owner=CALLER)
    assert (old.status, old.end_reason, old.message_count) == ("closed", "new_chat", 2)
    assert [m.content for m in await stored(reader, first)] == [
        "Tell me about Lisbon.", "Lisbon is lovely."
    ]  # fmt: skip
    assert [(m.role, m.content) for m in await stored(reader, second)] == [
        ("assistant", "Hello! What can I do for you?"),
        ("user", "A recipe for pasta."),
        ("assistant", "Sure, pasta."),
    ]
    # the requests after the switch carry the instructions and the new chat only
    greeting, answer = openai_server.chat_requests()[-2:]
    for request in (greeting, answer):
        text = " ".join(str(m.get("content")) for m in request["messages"])
        assert "Lisbon" not in text
    assert [m["content"] for m in answer["messages"] if m["role"] == "user"] == [
        "A recipe for pasta."
    ]


async def test_new_chat_before_anyone_spoke_drops_the_empty_chat(
    start_call: StartCall, openai_server: LocalOpenAI, reader: Store
) -> None:
    openai_server.script(["Hello!"])
    call = await start_call()
    first = call.call.state.chat_id
    assert await call.call.switcher.new_chat() is None
    await call.settle()
    await call.end("hangup")
    # neither chat heard the caller: the first was dropped at new_chat, the second (a greeting
    # only) at hang-up
    assert (await reader.list_chats(owner=ANY_OWNER)).chats == []
    assert call.call.state.chat_id != first
