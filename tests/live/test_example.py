"""The example a user would copy (examples/concierge.py), run as its own worker on the real
LiveKit server with the stand-in models: its own agent, tool and handoff, with every word
stored and `new_chat` from the caller's app acting on the agent the call was handed to."""

from __future__ import annotations

from tests.live.conftest import Join, StartWorker
from tests.live.harness import ROOT, said
from tests.support.processes import ModelServer
from voxkeep.sim.openai_server import ToolCall
from voxkeep.sim.speech import Voice
from voxkeep.store import ANY_OWNER, Store

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

    reply = await alice.command({"v": 1, "id": "n1", "type": "new_chat"})
    assert (reply["type"], reply["saved_chat_id"]) == ("new_chat.ok", first)
    assert (await alice.started(2))["chat_id"] == reply["chat_id"]
    await alice.answered()  # the greeting of the new chat

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
