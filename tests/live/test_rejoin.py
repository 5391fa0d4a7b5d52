"""A caller who drops and rejoins (docs/resume.md): the agent keeps the call open for
`VOXKEEP_REJOIN_GRACE_S`; the same identity back in the same room within it is answered in the
same call and chat, by the same agent, with no new job and no greeting; after it, the chat
closes `hangup` as before."""

from __future__ import annotations

from tests.live.conftest import Join, StartWorker
from tests.live.harness import eventually, scripted
from tests.support.processes import ModelServer
from voxkeep.store import ANY_OWNER, Store
from voxkeep.store.records import Chat

TURNS = ["I would like to plan a trip to Lisbon.", "What is the weather like there in May?"]
REPLIES = ["Lisbon is lovely in spring.", "Mild and mostly sunny."]


async def test_a_caller_back_in_the_room_within_the_grace_goes_on_with_the_same_agent_and_chat(
    start_worker: StartWorker, model_server: ModelServer, join: Join, reader: Store, room: str
) -> None:
    await scripted(model_server, TURNS, REPLIES)
    worker = await start_worker(VOXKEEP_REJOIN_GRACE_S="30")
    alice = await join("alice")
    chat_id = await alice.chat_id()
    agent = (await alice.agent()).identity
    await alice.turn(TURNS[0])
    await alice.leave()  # a page reload: the client leaves, and comes back
    again = await join("alice", in_room=room)
    assert (await again.agent()).identity == agent  # the same agent stayed
    assert await again.chat_id() == chat_id
    await again.turn(TURNS[1])

    async def four() -> list[tuple[str, str | None]] | None:
        found = (await reader.messages(chat_id, owner=ANY_OWNER, limit=10)).messages
        return [(m.role, m.content) for m in found] if len(found) >= 4 else None

    assert await eventually(four, 15, "both turns stored") == [
        ("user", TURNS[0]),
        ("assistant", REPLIES[0]),
        ("user", TURNS[1]),
        ("assistant", REPLIES[1]),
    ]  # fmt: skip (no greeting between them)
    assert len(worker.events_named("call.started")) == 1  # no new job, no new call
    assert worker.saw("caller.away") and worker.saw("caller.back")
    assert (await reader.get_chat(chat_id, owner=ANY_OWNER)).status == "active"


async def test_after_the_grace_the_chat_closes_as_a_hang_up(
    start_worker: StartWorker, model_server: ModelServer, join: Join, reader: Store
) -> None:
    await scripted(model_server, TURNS[:1], REPLIES[:1])
    await start_worker(VOXKEEP_REJOIN_GRACE_S="3")
    alice = await join("alice")
    chat_id = await alice.chat_id()
    await alice.turn(TURNS[0])
    await alice.leave()

    async def closed() -> Chat | None:
        chat = await reader.get_chat(chat_id, owner=ANY_OWNER)
        return chat if chat.status != "active" else None

    chat = await eventually(closed, 30, "the chat to close after the grace")
    assert (chat.status, chat.end_reason) == ("closed", "hangup")
