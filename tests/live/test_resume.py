"""Coming back to a conversation on the real LiveKit server: a caller who calls again within
the window, a chat named by `voxkeepctl dispatch create --chat-id` to an explicitly dispatched
worker, and a chat named by the `voxkeep.resume_chat_id` attribute of an `voxkeepctl token`."""

from __future__ import annotations

import json
import time

import pytest

from tests.conftest import chat, msg
from tests.live.conftest import Join, StartWorker
from tests.live.harness import said, voxkeepctl
from tests.support.caller import wait_until
from tests.support.processes import ModelServer
from voxkeep.sim.speech import Voice
from voxkeep.store import ANY_OWNER, Store
from voxkeep.store.records import NewChat, Record

LISBON = "I would like to plan a trip to Lisbon."
FRIDAY = "Please book it for Friday."
THREE_DAYS = 3 * 86400
ROME = ["Book Rome.", "Rome is booked."]


async def seed(reader: Store, owner: str, lines: list[str], *, at: float) -> NewChat:
    """A chat of `owner` holding `lines` (caller and agent in turn), closed by `new_chat`, so
    it is resumed only when asked for by id."""
    c = chat(owner=owner, at=at)
    records: list[Record] = [c]
    for i, line in enumerate(lines):
        records.append(msg(c.id, line, role="user" if i % 2 == 0 else "assistant", at=at + i))
    await reader.write(records)
    await reader.close_chat(c.id, status="closed", end_reason="new_chat", at=at + len(lines))
    return c


@pytest.fixture
async def rome(reader: Store, model_server: ModelServer) -> NewChat:
    """Alice's chat about Rome, three days old and closed; the model will welcome her back."""
    await model_server.script(["Welcome back to Rome."])
    return await seed(reader, "alice", ROME, at=time.time() - THREE_DAYS)


async def test_a_caller_who_calls_again_within_the_window_resumes_with_the_earlier_turns(
    start_worker: StartWorker, model_server: ModelServer, join: Join, reader: Store
) -> None:
    for text in (LISBON, FRIDAY):
        await model_server.learn(text, Voice())
    await model_server.script(["Lisbon is lovely.", "Welcome back!", "Booked for Friday."])
    worker = await start_worker()
    alice = await join("alice")
    chat_id = await alice.chat_id()
    await alice.turn(LISBON)
    await alice.leave()
    await wait_until(lambda: worker.saw("call.ended"), 30, "the first call to end")
    assert (await reader.get_chat(chat_id, owner=ANY_OWNER)).end_reason == "hangup"
    first_call_requests = len(await model_server.chat_requests())

    again = await join("alice", in_room=f"again-{int(time.time())}")  # a new call
    assert await again.started(1) == {"v": 1, "type": "chat.started", "chat_id": chat_id,
                                      "resumed": True, "message_count": 2}  # fmt: skip
    await again.answered()  # the agent welcomes the caller back
    welcome = (await model_server.chat_requests())[first_call_requests]
    assert said(welcome)[:2] == [("user", LISBON), ("assistant", "Lisbon is lovely.")]
    await again.turn(FRIDAY)
    await again.leave()
    await wait_until(lambda: len(worker.events_named("call.ended")) == 2, 30, "the second call")
    stored = (await reader.messages(chat_id, owner=ANY_OWNER, limit=10)).messages
    assert [(m.seq, m.content) for m in stored] == [
        (1, LISBON), (2, "Lisbon is lovely."), (3, "Welcome back!"), (4, FRIDAY),
        (5, "Booked for Friday."),
    ]  # fmt: skip


async def test_voxkeepctl_dispatch_with_a_chat_id_resumes_that_chat_on_a_named_worker(
    start_worker: StartWorker,
    model_server: ModelServer,
    join: Join,
    reader: Store,
    room: str,
    operator_env: dict[str, str],
    rome: NewChat,
) -> None:
    await seed(reader, "alice", ["Something else.", "Sure."], at=time.time() - 5)
    await start_worker(VOXKEEP_AGENT_NAME="concierge")  # explicit dispatch only

    code, out, err = await voxkeepctl(
        {**operator_env, "VOXKEEP_AGENT_NAME": "concierge"},
        "--json", "dispatch", "create", "--room", room, "--chat-id", rome.id,
    )  # fmt: skip
    assert (code, err) == (0, "")
    made = json.loads(out)
    assert (made["agent_name"], made["room"]) == ("concierge", room)
    assert json.loads(made["metadata"]) == {"chat_id": rome.id}
    alice = await join("alice")
    assert await alice.started(1) == {"v": 1, "type": "chat.started", "chat_id": rome.id,
                                      "resumed": True, "message_count": 2}  # fmt: skip
    await alice.answered()
    (welcome,) = await model_server.chat_requests()
    assert said(welcome)[:2] == [("user", ROME[0]), ("assistant", ROME[1])]
    assert "Something else." not in json.dumps(welcome)
    assert (await alice.agent()).attributes["lk.agent.name"] == "concierge"


async def test_a_token_from_voxkeepctl_with_the_resume_attribute_resumes_that_chat(
    start_worker: StartWorker,
    model_server: ModelServer,
    join: Join,
    room: str,
    operator_env: dict[str, str],
    rome: NewChat,
) -> None:
    await start_worker()
    code, jwt, err = await voxkeepctl(
        operator_env, "token", "--room", room, "--identity", "alice",
        "--attribute", f"voxkeep.resume_chat_id={rome.id}",
    )  # fmt: skip
    assert (code, err) == (0, "")
    alice = await join("alice", jwt=jwt.strip())
    assert (await alice.started(1))["chat_id"] == rome.id
    await alice.answered()
    (welcome,) = await model_server.chat_requests()
    assert said(welcome)[:2] == [("user", ROME[0]), ("assistant", ROME[1])]
    assert "(The conversation resumed after 3 days.)" in json.dumps(welcome)
