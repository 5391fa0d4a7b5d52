"""A call on the real LiveKit server: the worker process takes the job, hears the caller's
microphone track, answers, and writes every message as it finalizes."""

from __future__ import annotations

from tests.live.conftest import Join, StartWorker
from tests.live.harness import eventually, said
from tests.support.caller import wait_until
from tests.support.processes import ModelServer
from voxkeep.sim.speech import Voice
from voxkeep.store import ANY_OWNER, Store
from voxkeep.store.records import Chat, Message

TURNS = [
    "I would like to plan a trip to Lisbon.",
    "What is the weather like there in May?",
    "Please book it for Friday.",
]
REPLIES = ["Lisbon is lovely in spring.", "Mild and mostly sunny.", "Done, it is booked."]


async def messages_of(reader: Store, chat_id: str) -> list[Message]:
    return (await reader.messages(chat_id, owner=ANY_OWNER, limit=100)).messages


async def ended(reader: Store, chat_id: str, limit_s: float = 30.0) -> Chat:
    """The chat, once it is no longer active."""

    async def closed() -> Chat | None:
        chat = await reader.get_chat(chat_id, owner=ANY_OWNER)
        return chat if chat.status != "active" else None

    return await eventually(closed, limit_s, "the chat to end")


async def test_a_three_turn_call_is_stored_in_order_with_timings_and_prosody(
    start_worker: StartWorker, model_server: ModelServer, join: Join, reader: Store
) -> None:
    for text in TURNS:
        await model_server.learn(text, Voice())
    await model_server.script(REPLIES)
    await start_worker()
    alice = await join("alice")
    chat_id = await alice.chat_id()
    for text in TURNS:
        await alice.turn(text)
    await alice.leave()

    chat = await ended(reader, chat_id)
    assert (chat.owner, chat.status, chat.end_reason) == ("alice", "closed", "hangup")
    stored = await messages_of(reader, chat_id)
    expected = [turn for pair in zip(TURNS, REPLIES, strict=True) for turn in pair]
    assert [m.content for m in stored] == expected
    assert [m.role for m in stored] == ["user", "assistant"] * 3
    assert [m.seq for m in stored] == [1, 2, 3, 4, 5, 6]
    for earlier, later in zip(stored, stored[1:], strict=False):
        assert earlier.created_at <= later.created_at
    for m in stored:  # when it was said, in order
        assert m.started_at is not None and m.ended_at is not None
        assert m.started_at <= m.ended_at
    for earlier, later in zip(stored, stored[1:], strict=False):
        assert earlier.started_at is not None and later.started_at is not None
        assert earlier.started_at <= later.started_at
    users = [m for m in stored if m.role == "user"]
    for n, m in enumerate(users):  # measured from the caller's audio, scored on their baseline
        assert m.prosody is not None and m.prosody["v"] == 1
        assert m.prosody["speech_s"] > 1.0 and m.prosody["pitch"]["median_hz"] > 50
        assert m.prosody["relative"]["baseline_n"] == n
    assert [m.prosody for m in stored if m.role == "assistant"] == [None] * 3

    # what the model was sent: each request holds the conversation so far
    requests = await model_server.chat_requests()
    assert len(requests) == 3
    assert said(requests[2])[:5] == [
        ("user", TURNS[0]), ("assistant", REPLIES[0]),
        ("user", TURNS[1]), ("assistant", REPLIES[1]), ("user", TURNS[2]),
    ]  # fmt: skip
    assert await wait_until(lambda: not alice.room.isconnected(), 5, "the caller to leave")
