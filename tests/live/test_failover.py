"""A worker killed mid-call, on the real LiveKit server: two workers share one PostgreSQL; the
one serving the call gets SIGKILL, and when the caller calls again the other worker resumes the
chat with every message that had been acknowledged."""

from __future__ import annotations

import time

import asyncpg

from tests.live.conftest import Join, StartWorker
from tests.live.harness import eventually, said
from tests.support.caller import wait_until
from tests.support.processes import ModelServer
from voxkeep.sim.speech import Voice
from voxkeep.store import ANY_OWNER, Store
from voxkeep.store.records import Message

TURNS = [
    "I would like to plan a trip to Lisbon.",
    "What is the weather like there in May?",
    "Please book it for Friday.",
]
REPLIES = ["Lisbon is lovely in spring.", "Mild and mostly sunny.", "Welcome back!", "Booked."]


async def test_a_killed_workers_chat_resumes_on_the_other_worker_with_every_acknowledged_message(
    start_worker: StartWorker,
    model_server: ModelServer,
    join: Join,
    pg_store: tuple[str, Store],
) -> None:
    url, reader = pg_store
    for text in TURNS:
        await model_server.learn(text, Voice())
    await model_server.script(REPLIES)
    workers = [await start_worker(db=url), await start_worker(db=url)]
    alice = await join("alice")
    chat_id = await alice.chat_id()
    for text in TURNS[:2]:
        await alice.turn(text)

    async def acknowledged() -> list[Message] | None:
        stored = (await reader.messages(chat_id, owner=ANY_OWNER, limit=100)).messages
        return stored if len(stored) == 4 else None

    before = await eventually(acknowledged, 10, "the two turns to be stored")
    (serving,) = [w for w in workers if w.saw("call.started")]
    (other,) = [w for w in workers if w is not serving]
    serving.kill()  # SIGKILL to the worker and its job processes, mid-call

    # what the server does with the dead worker's job: the agent is dropped from the room once
    # its connection times out, and the job is not handed to the other worker
    await wait_until(lambda: alice.agent_participant() is None, 60, "the dead agent to go")
    assert not other.saw("received job request")

    await alice.leave()
    again = await join("alice", in_room=f"again-{int(time.time())}")
    assert await again.started(1) == {"v": 1, "type": "chat.started", "chat_id": chat_id,
                                      "resumed": True, "message_count": 4}  # fmt: skip
    await again.answered()  # the welcome back, from the other worker
    assert other.saw("call.started")
    welcome = (await model_server.chat_requests())[-1]
    assert said(welcome)[:4] == [(m.role, m.content) for m in before]
    await again.turn(TURNS[2])
    await again.leave()
    await wait_until(lambda: other.saw("call.ended"), 30, "the second call to end")

    stored = (await reader.messages(chat_id, owner=ANY_OWNER, limit=100)).messages
    assert [m.seq for m in stored] == list(range(1, 8))
    assert [m.content for m in stored[:4]] == [m.content for m in before]
    assert [m.content for m in stored[4:]] == ["Welcome back!", TURNS[2], "Booked."]
    connection = await asyncpg.connect(url)
    try:
        calls = await connection.fetch(
            "SELECT end_reason FROM calls WHERE chat_id = $1 ORDER BY started_at", chat_id
        )
    finally:
        await connection.close()
    assert [c["end_reason"] for c in calls] == ["taken_over", "hangup"]
