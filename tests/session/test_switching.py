"""Changing chats mid-call (docs/control.md, docs/resume.md): `new_chat` keeps the closed chat whole
and the LLM forgets it; `resume_chat` brings an earlier chat of the caller back."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

import pytest

from tests.conftest import Holder, chat, msg, release
from tests.session.conftest import CALLER, Speak, StartCall, stored
from voxkeep.core.errors import NotFound
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
