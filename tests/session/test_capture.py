"""Capture end to end (docs/store.md): what a call says is in the store, as it was said."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sqlite3
from collections.abc import Awaitable, Callable

import pytest
from livekit.agents import function_tool

from tests.conftest import Holder, release
from tests.session.conftest import CALLER, Speak, StartCall, stored
from voxkeep.call.capture import CallEnd
from voxkeep.core.settings import Settings
from voxkeep.sim.openai_server import Failure, LocalOpenAI, ToolCall
from voxkeep.store import ANY_OWNER, Store
from voxkeep.store.writer import Writer

LONG_REPLY = (
    "Lisbon is a city of seven hills, yellow trams, bright tiled houses and long evenings by the "
    "river, and there is a great deal more I could tell you about it."
)


def calls_row(settings: Settings, call_id: str) -> tuple[str | None, float | None]:
    with sqlite3.connect(settings.db_url.removeprefix("sqlite:///")) as conn:
        row = conn.execute("SELECT end_reason, ended_at FROM calls WHERE id = ?", (call_id,))
        return row.fetchone()  # type: ignore[no-any-return]


async def test_a_three_turn_call_stores_every_turn_in_order_with_prosody_and_timings(
    start_call: StartCall, speech: Speak, openai_server: LocalOpenAI, reader: Store
) -> None:
    said = ["I'd like to plan a trip to Lisbon.", "What's the weather there?", "Book it please."]
    replies = ["Sure, when would you like to go?", "It is sunny there today.", "Done."]
    openai_server.script(replies)
    clips = [await speech(text) for text in said]
    call = await start_call()
    for clip in clips:
        await call.say(clip)
    chat_id = call.call.state.chat_id
    # one VAD inference for the session's turns and prosody's utterances (docs/prosody.md)
    assert call.call.prosody is not None and call.call.prosody.shares_vad
    await call.end("hangup")

    messages = await stored(reader, chat_id)
    assert [(m.role, m.content) for m in messages] == [
        pair
        for turn in zip(said, replies, strict=True)
        for pair in zip(("user", "assistant"), turn, strict=True)
    ]
    assert [m.seq for m in messages] == [1, 2, 3, 4, 5, 6]
    for m in messages:
        assert m.call_id == call.call.state.call_id and not m.interrupted
        assert m.started_at is not None and m.ended_at is not None
        assert m.started_at <= m.ended_at
        assert m.item is not None and m.item["id"] == m.id  # the LiveKit item, whole
    users = [m for m in messages if m.role == "user"]
    for n, m in enumerate(users):
        assert m.prosody is not None and m.prosody["v"] == 1
        assert 70 < m.prosody["pitch"]["median_hz"] < 200  # espeak-ng's default voice
        assert m.prosody["rate"]["source"] == "transcript"
        assert m.prosody["relative"]["baseline_n"] == n  # scored before joining the baseline
    chat = await reader.get_chat(chat_id, owner=CALLER)
    assert (chat.status, chat.end_reason, chat.title) == ("closed", "hangup", said[0])
    assert chat.metadata["prosody_baseline"]["utterances"] == 3
    # the LLM saw the whole conversation so far on the last turn
    last = openai_server.chat_requests()[-1]["messages"]
    assert [m["content"] for m in last if m["role"] in ("user", "assistant")] == [
        said[0],
        replies[0],
        said[1],
        replies[1],
        said[2],
    ]
    assert last[0]["role"] == "system" and "travel assistant" in last[0]["content"]


async def test_a_barge_in_stores_the_agent_turn_interrupted_with_only_what_was_spoken(
    start_call: StartCall, speech: Speak, openai_server: LocalOpenAI, reader: Store
) -> None:
    openai_server.script([LONG_REPLY, "Of course, I will stop."])
    ask, stop = await speech("Tell me about Lisbon."), await speech("Wait, stop.")
    call = await start_call()
    await call.say(ask, settle=False)
    await call.barge_in(stop, after_s=1.5)
    chat_id = call.call.state.chat_id
    await call.end("hangup")

    messages = await stored(reader, chat_id)
    assert [m.role for m in messages] == ["user", "assistant", "user", "assistant"]
    cut = messages[1]
    assert cut.interrupted
    assert cut.content and len(cut.content) < len(LONG_REPLY) / 2
    assert LONG_REPLY.startswith(cut.content.strip())
    assert messages[2].content == "Wait, stop."
    assert (messages[3].content, messages[3].interrupted) == ("Of course, I will stop.", False)


@pytest.mark.parametrize(("how", "status"), [("hangup", "closed"), ("shutdown", "interrupted")])
async def test_ending_the_call_while_the_agent_speaks_keeps_the_partial_turn(
    start_call: StartCall, speech: Speak, openai_server: LocalOpenAI, reader: Store,
    settings: Settings, how: CallEnd, status: str,
) -> None:  # fmt: skip
    openai_server.script([LONG_REPLY])
    call = await start_call()
    await call.say(await speech("Tell me about Lisbon."), settle=False)
    await call.wait_for(lambda: call.state == "speaking")
    await asyncio.sleep(1.5)
    await call.end(how)

    messages = await stored(reader, call.call.state.chat_id)
    assert [m.role for m in messages] == ["user", "assistant"]
    assert messages[1].interrupted
    assert messages[1].content and LONG_REPLY.startswith(messages[1].content.strip())
    assert len(messages[1].content) < len(LONG_REPLY)
    assert calls_row(settings, call.call.state.call_id)[0] == how
    chat = await reader.get_chat(call.call.state.chat_id, owner=CALLER)
    assert (chat.status, chat.end_reason) == (status, how)


async def test_hanging_up_while_the_caller_speaks_keeps_their_transcribed_words(
    start_call: StartCall, speech: Speak, openai_server: LocalOpenAI, reader: Store
) -> None:
    openai_server.script(["Hello there."])
    words = "I would like to book a table for four people tonight at eight."
    first, last = await speech("Hello."), await speech(words)
    call = await start_call()
    await call.say(first)
    # most of a sentence, and the line goes dead before any silence follows it
    await call.say(last[: int(len(last) * 0.8)], settle=False, tail=False)
    await call.wait_for(lambda: str(call.session.user_state) == "speaking")
    await call.end("hangup")

    messages = await stored(reader, call.call.state.chat_id)
    assert [(m.role, m.content) for m in messages] == [
        ("user", "Hello."),
        ("assistant", "Hello there."),
        ("user", words),
    ]


async def test_a_tool_call_and_its_result_are_stored_as_tool_messages(
    start_call: StartCall, speech: Speak, openai_server: LocalOpenAI, reader: Store
) -> None:
    looked_up: list[str] = []

    @function_tool
    async def get_weather(city: str) -> str:
        """Look up today's weather in a city."""
        looked_up.append(city)
        return f"Sunny and 24 degrees in {city}."

    openai_server.script([ToolCall("get_weather", {"city": "Lisbon"}), "It is sunny, 24 degrees."])
    call = await start_call(tools=[get_weather])
    await call.say(await speech("What's the weather in Lisbon?"))
    await call.end("hangup")

    assert looked_up == ["Lisbon"]
    messages = await stored(reader, call.call.state.chat_id)
    assert [m.role for m in messages] == ["user", "tool", "tool", "assistant"]
    request, result = messages[1], messages[2]
    assert request.tool_name == "get_weather" and request.tool_call is not None
    assert json.loads(request.tool_call["arguments"]) == {"city": "Lisbon"}
    assert result.tool_result is not None
    assert result.tool_result["output"] == "Sunny and 24 degrees in Lisbon."
    assert result.tool_result["call_id"] == request.tool_call["call_id"]
    assert result.tool_result["is_error"] is False
    # and the LLM was given the result to answer from
    followup = openai_server.chat_requests()[-1]["messages"]
    assert any(m["role"] == "tool" and "24 degrees" in m["content"] for m in followup)


async def test_an_llm_failing_mid_call_loses_no_finalized_message(
    start_call: StartCall, speech: Speak, openai_server: LocalOpenAI, reader: Store
) -> None:
    # the plugin tries a request 4 times (3 retries) before the turn fails
    openai_server.script(["First answer.", *[Failure(500)] * 4, "Third answer."])
    said = ["Hello there.", "What's the weather there?", "Book it please."]
    clips = [await speech(text) for text in said]
    call = await start_call()
    for clip in clips:
        await call.say(clip)
    await call.end("hangup")

    messages = await stored(reader, call.call.state.chat_id)
    assert [(m.role, m.content) for m in messages] == [
        ("user", said[0]), ("assistant", "First answer."), ("user", said[1]),
        ("user", said[2]), ("assistant", "Third answer."),
    ]  # fmt: skip
    assert len(openai_server.chat_requests()) == 6


async def test_capture_never_blocks_the_call_while_the_database_is_locked(
    start_call: StartCall,
    speech: Speak,
    openai_server: LocalOpenAI,
    reader: Store,
    writer: Writer,
    lock: Callable[[], Awaitable[Holder]],
) -> None:
    openai_server.script(["One.", "Two."])
    clips = [await speech("Hello there."), await speech("Book it please.")]
    holder = await lock()
    call = await start_call()
    for clip in clips:
        await call.say(clip)  # the agent still answers every turn
    assert [i.role for i in call.items] == ["user", "assistant", "user", "assistant"]
    assert (await reader.list_chats(owner=ANY_OWNER)).chats == []  # nothing committed yet
    assert writer.backlog >= 5  # the chat, the call and four messages, all waiting
    await release(holder)
    async with asyncio.timeout(15):
        await writer.flush()
    messages = await stored(reader, call.call.state.chat_id)
    assert [m.content for m in messages] == ["Hello there.", "One.", "Book it please.", "Two."]


async def test_the_trace_holds_every_llm_request_exactly_as_the_server_received_it(
    start_call: StartCall, speech: Speak, openai_server: LocalOpenAI
) -> None:
    traced: list[list[dict[str, object]]] = []
    openai_server.script(["One.", "Two."])
    clips = [await speech("Hello there."), await speech("Book it please.")]
    call = await start_call(trace=traced.append)
    for clip in clips:
        await call.say(clip)
    await call.end("hangup")
    received = [r["messages"] for r in openai_server.chat_requests()]
    assert len(received) == 2
    assert traced == received


async def test_no_logger_in_the_process_carries_what_was_said_or_its_prosody(
    start_call: StartCall, speech: Speak, openai_server: LocalOpenAI, reader: Store,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    secret_said, secret_reply = "My secret code is bluebird.", "Noted, bluebird."
    openai_server.script([secret_reply])
    clip = await speech(secret_said)
    with caplog.at_level(logging.DEBUG):
        call = await start_call()
        await call.say(clip)
        await call.end("hangup")
    messages = await stored(reader, call.call.state.chat_id)
    assert [m.content for m in messages] == [secret_said, secret_reply]
    prosody = messages[0].prosody
    assert prosody is not None
    ours = [r for r in caplog.records if r.name.startswith("voxkeep")]
    assert {"call.started", "chat.closed"} <= {str(r.msg) for r in ours}  # logs were seen
    # LiveKit logs each conversation item at DEBUG with its text as `lk.pii.text`: the line
    # is there, the words are not
    items = [r for r in caplog.records if r.getMessage() == "conversation_item_added"]
    assert len(items) == 2 and not any("lk.pii.text" in r.__dict__ for r in items)
    assert len({r.name.split(".")[0] for r in caplog.records}) > 1  # not only ours
    pitch = re.compile(rf"(?<![\d.]){re.escape(str(prosody['pitch']['median_hz']))}(?!\d)")
    for record in caplog.records:  # every logger's, at DEBUG
        for place in written(record):
            assert "bluebird" not in place, record.name
            assert not pitch.search(place), record.name


_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


def written(record: logging.LogRecord) -> list[str]:
    """Where a record's words could reach a log: its message and every field a handler or a
    formatter writes beside it, as they would print them. Not the record's own bookkeeping
    (its clock, line numbers, thread), whose digits say nothing of a leak."""
    extras = [f"{k}={v!r}" for k, v in record.__dict__.items() if k not in _STANDARD]
    return [record.getMessage(), *extras, record.exc_text or ""]


async def test_a_caller_who_opted_out_of_prosody_is_never_measured_and_the_chat_says_so(
    start_call: StartCall, speech: Speak, openai_server: LocalOpenAI, reader: Store
) -> None:
    openai_server.script(["Sure."])
    clip = await speech("I'd like to plan a trip to Lisbon.")
    call = await start_call(caller_attributes={"voxkeep.prosody": "off"})
    await call.say(clip)
    chat_id = call.call.state.chat_id
    await call.end("hangup")

    (user, _) = await stored(reader, chat_id)
    assert user.role == "user" and user.prosody is None
    chat = await reader.get_chat(chat_id, owner=ANY_OWNER)
    assert chat.metadata["prosody"] == {"measured": False, "reason": "caller_opt_out"}
    assert "prosody_baseline" not in chat.metadata


async def test_switching_prosody_off_mid_call_stops_measuring_from_then_on(
    start_call: StartCall, speech: Speak, openai_server: LocalOpenAI, reader: Store
) -> None:
    openai_server.script(["Sure.", "Noted."])
    first = await speech("I'd like to plan a trip to Lisbon.")
    second = await speech("Please book it for Friday.")
    call = await start_call()
    await call.say(first)
    call.room.emit("participant_attributes_changed", {"voxkeep.prosody": "off"},
                   call.caller_participant)  # fmt: skip
    await call.say(second)
    chat_id = call.call.state.chat_id
    await call.end("hangup")

    users = [m for m in await stored(reader, chat_id) if m.role == "user"]
    assert [m.prosody is not None for m in users] == [True, False]
    chat = await reader.get_chat(chat_id, owner=ANY_OWNER)
    assert chat.metadata["prosody"] == {"measured": False, "reason": "caller_opt_out"}
