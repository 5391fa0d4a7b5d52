"""The example a user would copy (examples/concierge.py), run as its own worker on the real
LiveKit server with the stand-in models: its own agent, tool and handoff, with every word
stored and `new_chat` from the caller's app acting on the agent the call was handed to."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from tests.conftest import Serve, chat, msg
from tests.live.conftest import Join, StartWorker
from tests.live.harness import ROOT, eventually, said
from tests.receiver import Receiver
from tests.support.caller import wait_until
from tests.support.processes import ModelServer
from tests.test_webhooks import SECRET, verified
from voxkeep.core.ids import new_call_id
from voxkeep.sim.openai_server import ToolCall
from voxkeep.sim.speech import Voice
from voxkeep.store import ANY_OWNER, Store
from voxkeep.store.records import Chat, NewCall

MASSAGE = "I would like to book a massage."
TOMORROW = "Tomorrow at ten please."


async def test_the_example_agent_stores_its_call_across_a_handoff_and_obeys_new_chat(
    start_worker: StartWorker, model_server: ModelServer, join: Join, reader: Store
) -> None:
    for text in (MASSAGE, TOMORROW):
        await model_server.learn(text, Voice())
    await model_server.script(
        [ToolCall("transfer_to_spa", {}), "This is the spa desk.", "Booked for ten.",
         "Hello, what can I do for you?"]
    )  # fmt: skip
    await start_worker(program=[str(ROOT / "tests" / "support" / "example_worker.py")])
    alice = await join("alice")
    first = await alice.chat_id()
    await alice.turn(MASSAGE)
    await alice.turn(TOMORROW)

    seen = len(alice.states)
    reply = await alice.command({"v": 1, "id": "n1", "type": "new_chat"})
    assert (reply["type"], reply["saved_chat_id"]) == ("new_chat.ok", first)
    assert (await alice.started(2))["chat_id"] == reply["chat_id"]
    await alice.answered(since=seen)  # the greeting of the new chat

    stored = (await reader.messages(first, owner=ANY_OWNER, limit=20)).messages
    assert [(m.role, m.content, m.tool_name) for m in stored] == [
        ("user", MASSAGE, None),
        ("tool", None, "transfer_to_spa"), ("tool", None, "transfer_to_spa"),
        ("assistant", "This is the spa desk.", None),
        ("user", TOMORROW, None), ("assistant", "Booked for ten.", None),
    ]  # fmt: skip
    assert all(m.prosody is not None for m in stored if m.role == "user")
    old = await reader.get_chat(first, owner=ANY_OWNER)
    assert (old.status, old.end_reason) == ("closed", "new_chat")
    # the spa desk, the agent active after the handoff, is the one that forgot the old chat
    greeting = (await model_server.chat_requests())[-1]
    assert greeting["messages"][0]["content"] == "You are the spa desk of the Hotel Lisboa."
    assert not [turn for turn in said(greeting) if turn[0] == "user"]


HELLO = "Hello, is anybody there?"


def ended_chat(reader: Store, chat_id: str) -> Callable[[], Awaitable[Chat | None]]:
    async def probe() -> Chat | None:
        found = await reader.get_chat(chat_id, owner=ANY_OWNER)
        return found if found.status != "active" else None

    return probe


async def test_a_users_own_server_attaches_before_its_session_start_and_runs_the_background_work(
    start_worker: StartWorker, model_server: ModelServer, join: Join, reader: Store, serve: Serve
) -> None:
    """examples/attach.py: the user's entrypoint connects, picks the caller and starts the
    session itself; `run_background` gives its worker the sweeper and webhook delivery."""
    long_ago = time.time() - 3600  # a call a dead worker left behind, with something said
    left = chat(owner="carol", at=long_ago)
    dead = NewCall(id=new_call_id(), chat_id=left.id, participant="carol", started_at=long_ago)
    await reader.write([left, dead, msg(left.id, "Are you still there?", at=long_ago)])
    await model_server.learn(HELLO, Voice())
    await model_server.script(["Yes, I am here.", "Welcome back!"])
    receiver = await serve(Receiver())
    await start_worker(
        program=[str(ROOT / "tests" / "support" / "example_worker.py"), "attach.py"],
        VOXKEEP_WEBHOOK_URLS=receiver.url, VOXKEEP_WEBHOOK_SECRET=SECRET,
    )  # fmt: skip

    async def swept() -> bool | None:  # the sweeper, at the user's worker's start
        return (
            True if (await reader.get_chat(left.id, owner=ANY_OWNER)).status != "active" else None
        )

    await eventually(swept, 30, "the user's worker to sweep the dead worker's call")
    lost = await reader.get_chat(left.id, owner=ANY_OWNER)
    assert (lost.status, lost.end_reason) == ("interrupted", "lost")

    alice = await join("alice")
    chat_id = await alice.chat_id()
    await alice.turn(HELLO)
    await alice.leave()

    async def closed() -> bool | None:
        return (
            True if (await reader.get_chat(chat_id, owner=ANY_OWNER)).status != "active" else None
        )

    await eventually(closed, 30, "the call to end with the session")
    ended = await reader.get_chat(chat_id, owner=ANY_OWNER)
    assert (ended.status, ended.end_reason) == ("closed", "hangup")
    stored = (await reader.messages(chat_id, owner=ANY_OWNER)).messages
    assert [(m.role, m.content) for m in stored][-2:] == [
        ("user", HELLO), ("assistant", "Yes, I am here."),
    ]  # fmt: skip
    assert next(m for m in stored if m.role == "user").prosody is not None

    # calling back: the attached call resumes the chat, and the agent welcomes her back
    before = len(await model_server.chat_requests())
    again = await join("alice", in_room=f"again-{int(time.time())}")
    assert (await again.started(1))["chat_id"] == chat_id
    await again.answered()
    welcome = (await model_server.chat_requests())[before]
    assert said(welcome)[:2] == [("user", HELLO), ("assistant", "Yes, I am here.")]

    def told(kind: str, about: str) -> bool:
        return any(
            verified(d) is not None and d.event["type"] == kind
            and d.event["data"].get("chat_id") == about
            for d in receiver.acknowledged()
        )  # fmt: skip

    await wait_until(lambda: told("chat.ended", left.id), 30, "the lost chat's webhook")
    await wait_until(lambda: told("chat.ended", chat_id), 30, "the call's chat's webhook")
