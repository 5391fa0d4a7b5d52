"""Changing chats mid-call (docs/control.md, docs/resume.md): `new_chat` keeps the closed chat whole
and the LLM forgets it; `resume_chat` brings an earlier chat of the caller back."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from livekit.agents import llm
from livekit.agents.voice.events import ConversationItemAddedEvent

from tests.conftest import Holder, chat, msg, release
from tests.session.conftest import CALLER, Speak, StartCall, seed, stored
from voxkeep.core.errors import NotFound
from voxkeep.sim.call import SimCall
from voxkeep.sim.openai_server import LocalOpenAI
from voxkeep.store import ANY_OWNER, Store
from voxkeep.store.writer import Writer


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


async def test_resume_chat_brings_an_earlier_chat_back_into_the_context(
    start_call: StartCall, speech: Speak, openai_server: LocalOpenAI, reader: Store
) -> None:
    openai_server.script(
        ["Lisbon is lovely.", "Hi again!", "Sure, pasta.", "Trams and tiles, as I said."]
    )
    lisbon, pasta = await speech("Tell me about Lisbon."), await speech("A recipe for pasta.")
    more = await speech("What else is there?")
    call = await start_call()
    await call.say(lisbon)
    first = call.call.state.chat_id
    await call.call.switcher.new_chat()
    await call.settle()
    await call.say(pasta)
    second = call.call.state.chat_id

    answer = await call.command(
        {"v": 1, "id": "r1", "type": "resume_chat", "chat_id": first}, via="rpc", sender=None
    )
    await call.say(more)
    await call.end("hangup")

    assert answer.reply == {
        "v": 1, "re": "r1", "type": "resume_chat.ok", "chat_id": first, "saved_chat_id": second,
        "message_count": 2, "context_messages": 2,
    }  # fmt: skip
    started = [json.loads(s.payload) for s in call.local.sent]
    assert started[-1] == {"v": 1, "type": "chat.started", "chat_id": first, "resumed": True,
                           "message_count": 2}  # fmt: skip
    assert call.local.attributes["voxkeep.chat_id"] == first
    assert call.call.state.chat_id == first
    resumed = await stored(reader, first)
    assert [(m.seq, m.content) for m in resumed] == [
        (1, "Tell me about Lisbon."), (2, "Lisbon is lovely."),
        (3, "What else is there?"), (4, "Trams and tiles, as I said."),
    ]  # fmt: skip
    left = await reader.get_chat(second, owner=CALLER)
    assert (left.status, left.end_reason) == ("closed", "switched")
    # the request after the resume holds the first chat's turns, and none of the second's
    last = openai_server.chat_requests()[-1]["messages"]
    said = [m["content"] for m in last if m["role"] in ("user", "assistant")]
    assert said == ["Tell me about Lisbon.", "Lisbon is lovely.", "What else is there?"]
    assert all("pasta" not in str(m.get("content")) for m in last)
    assert [m["role"] for m in last][0] == "system"  # the instructions, first


def finalizes_inside(
    call: SimCall, store: Store, method: str, text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The caller's words finalize at the worst moment for a switch: as the switch calls the
    store's `method`, after the old chat's last turn and before the call is in its new chat."""
    real = getattr(store, method)

    async def finalizing(*args: Any, **kwargs: Any) -> Any:
        monkeypatch.setattr(store, method, real)
        item = llm.ChatMessage(role="user", content=[text])
        call.session.emit("conversation_item_added", ConversationItemAddedEvent(item=item))
        return await real(*args, **kwargs)

    monkeypatch.setattr(store, method, finalizing)


async def test_words_finalized_while_new_chat_closes_the_old_chat_go_to_the_new_one(
    start_call: StartCall, openai_server: LocalOpenAI, reader: Store, writer: Writer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    openai_server.script(["Hello!"])
    call = await start_call()
    first = call.call.state.chat_id  # (nobody has spoken in it)
    finalizes_inside(call, writer.store, "close_chat", "Book a table in Rome.", monkeypatch)
    assert await call.call.switcher.new_chat() is None  # (the first chat is dropped)
    await call.settle()
    second = call.call.state.chat_id
    await call.end("hangup")
    assert [(m.role, m.content) for m in await stored(reader, second)] == [
        ("user", "Book a table in Rome."), ("assistant", "Hello!")
    ]  # fmt: skip
    with pytest.raises(NotFound):
        await reader.get_chat(first, owner=ANY_OWNER)
    # and the new chat's context holds it: the greeting was asked for after it
    greeting = openai_server.chat_requests()[-1]["messages"]
    assert [m["content"] for m in greeting if m["role"] == "user"] == ["Book a table in Rome."]


async def test_words_finalized_while_resume_chat_claims_the_chat_go_to_the_resumed_chat(
    start_call: StartCall, speech: Speak, openai_server: LocalOpenAI, reader: Store,
    writer: Writer, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    openai_server.script(["Lisbon is lovely."])
    earlier = await seed(writer, CALLER, ["Book Rome.", "Rome is booked."], at=time.time() - 60)
    call = await start_call()
    await call.say(await speech("Tell me about Lisbon."))
    first = call.call.state.chat_id
    finalizes_inside(call, writer.store, "claim_chat", "And the hotel?", monkeypatch)
    await call.call.switcher.resume_chat(earlier.id)
    await call.end("hangup")
    assert [m.content for m in await stored(reader, first)] == [
        "Tell me about Lisbon.", "Lisbon is lovely."
    ]  # fmt: skip
    assert [m.content for m in await stored(reader, earlier.id)] == [
        "Book Rome.", "Rome is booked.", "And the hotel?"
    ]  # fmt: skip
    in_context = [m.text_content for m in call.session.current_agent.chat_ctx.messages()]
    assert in_context[1:3] + in_context[-1:] == ["Book Rome.", "Rome is booked.", "And the hotel?"]


async def test_resume_chat_of_another_owners_chat_changes_nothing(
    start_call: StartCall, reader: Store, writer: Writer
) -> None:
    theirs = chat(owner="bob")
    await writer.store.write([theirs, msg(theirs.id, "bob's secret")])
    call = await start_call()
    current = call.call.state.chat_id
    with pytest.raises(NotFound):
        await call.call.switcher.resume_chat(theirs.id)
    assert call.call.state.chat_id == current and not call.call.switcher.switching
    await call.end("hangup")
    assert (await reader.get_chat(theirs.id, owner=ANY_OWNER)).status == "active"


async def test_a_flood_of_commands_is_limited_while_the_turns_still_complete(
    start_call: StartCall, speech: Speak, openai_server: LocalOpenAI, reader: Store
) -> None:
    openai_server.script(["One.", "Two."])
    clips = [await speech("Hello there."), await speech("Book it please.")]
    call = await start_call()
    sender = call.room.remote[CALLER]
    stop = asyncio.Event()

    async def flood() -> int:
        sent = 0
        while not stop.is_set():
            for _ in range(10):  # 1,000 a second
                call.room.deliver(
                    sender, b'{"v":1,"id":"f%d","type":"ping"}' % sent, "voxkeep.control"
                )
                sent += 1
            await asyncio.sleep(0.01)
        return sent

    flooding = asyncio.create_task(flood())
    for clip in clips:
        await call.say(clip)
    stop.set()
    sent = await flooding
    await call.end("hangup")

    messages = await stored(reader, call.call.state.chat_id)
    assert [m.content for m in messages] == ["Hello there.", "One.", "Book it please.", "Two."]
    answers = [json.loads(s.payload) for s in call.local.sent if s.topic == "voxkeep.control"]
    ok = sum(1 for a in answers if a.get("type") == "ping.ok")
    limited = sum(1 for a in answers if a.get("code") == "rate_limited")
    assert sent > 1000
    assert ok < sent / 20  # 5 a second (and the burst) got through
    assert limited < ok + 20  # rejections are bounded too: most of the flood got no answer


async def test_new_chat_with_the_store_down_answers_unavailable_and_changes_nothing(
    start_call: StartCall,
    speech: Speak,
    reader: Store,
    lock: Callable[[], Awaitable[Holder]],
) -> None:
    call = await start_call()
    await call.say(await speech("Tell me about Lisbon."))
    first = call.call.state.chat_id
    new_chat = {"v": 1, "id": "n1", "type": "new_chat"}

    holder = await lock()  # another process holds the store's lock: it takes no writes
    try:
        refused = await call.command(new_chat, via="rpc", sender=None)
    finally:
        await release(holder)
    assert refused.reply == {"v": 1, "re": "n1", "type": "error", "code": "unavailable",
                             "message": "history is unavailable, try again"}  # fmt: skip
    assert call.call.state.chat_id == first  # nothing changed: the call goes on in its chat

    again = await call.command(new_chat, via="rpc", sender=None)  # the app's retry, same id
    assert again.reply is not None and again.reply["saved_chat_id"] == first
    assert (await reader.get_chat(first, owner=CALLER)).end_reason == "new_chat"
