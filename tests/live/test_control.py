"""The control channel on the real LiveKit server: commands from the caller's app as reliable
data packets and as RPC, replies and events to the caller only, and bad input from anyone."""

from __future__ import annotations

import asyncio
import json

from tests.live.conftest import Join, StartWorker
from tests.live.harness import eventually, said
from tests.support.caller import CHAT_ATTRIBUTE, TOPIC, wait_until
from tests.support.processes import ModelServer
from voxkeep.sim.speech import Voice
from voxkeep.store import ANY_OWNER, Store
from voxkeep.store.records import Chat

LISBON = "I would like to plan a trip to Lisbon."
PORTO = "Now tell me about Porto instead."
QUIET_S = 2.0
"""How long a caller listens for a packet that must not come."""


async def learn(model: ModelServer, *texts: str) -> None:
    for text in texts:
        await model.learn(text, Voice())


async def chats_of(reader: Store, owner: str) -> list[Chat]:
    return (await reader.list_chats(owner=owner, limit=50)).chats


async def test_new_chat_over_a_data_packet_answers_the_caller_only_and_keeps_the_old_chat(
    start_worker: StartWorker, model_server: ModelServer, join: Join, reader: Store
) -> None:
    await learn(model_server, LISBON)
    await model_server.script(["Lisbon is lovely.", "Hello, what shall we talk about?"])
    worker = await start_worker()
    alice = await join("alice")
    first = await alice.chat_id()
    assert (await alice.started(1))["chat_id"] == first
    bob = await join("bob", microphone=False)  # in the room, not the agent's caller
    await alice.turn(LISBON)

    reply = await alice.command({"v": 1, "id": "n1", "type": "new_chat"})
    second = reply["chat_id"]
    assert reply == {"v": 1, "re": "n1", "type": "new_chat.ok", "saved_chat_id": first,
                     "chat_id": second}  # fmt: skip
    event = await alice.started(2)
    assert event == {"v": 1, "type": "chat.started", "chat_id": second, "resumed": False,
                     "message_count": 0}  # fmt: skip
    assert await alice.chat_id(other_than=first) == second  # the agent's attribute moved on
    agent = await alice.agent()
    assert agent.attributes[CHAT_ATTRIBUTE] == second
    await asyncio.sleep(QUIET_S)
    assert [p for p in bob.packets if p.topic == TOPIC] == []  # nothing reached bob

    old = await reader.get_chat(first, owner=ANY_OWNER)
    assert (old.status, old.end_reason, old.message_count) == ("closed", "new_chat", 2)
    # the new chat has no user message: a second new_chat drops it, and it is never kept
    again = await alice.command({"v": 1, "id": "n2", "type": "new_chat"})
    assert again["type"] == "new_chat.ok" and again["saved_chat_id"] is None
    await alice.leave()
    await wait_until(lambda: worker.saw("call.ended"), 30, "the call to end")
    assert [c.id for c in await chats_of(reader, "alice")] == [first]  # no empty chat kept


async def test_chats_are_listed_read_resumed_renamed_and_deleted_over_rpc(
    start_worker: StartWorker, model_server: ModelServer, join: Join, reader: Store
) -> None:
    await learn(model_server, LISBON, PORTO)
    await model_server.script(["Lisbon is lovely.", "Hi again.", "Porto has great wine."])
    await start_worker()
    alice = await join("alice")
    lisbon = await alice.chat_id()
    await alice.turn(LISBON)
    moved = await alice.command({"v": 1, "id": "n1", "type": "new_chat"}, via="rpc")
    porto = moved["chat_id"]
    assert moved["saved_chat_id"] == lisbon
    await alice.answered(since=len(alice.states) - 1)  # the greeting of the new chat
    await alice.turn(PORTO)

    listed = await alice.command({"v": 1, "id": "l1", "type": "list_chats", "limit": 10}, via="rpc")
    assert listed["type"] == "list_chats.ok" and listed["next_cursor"] is None
    assert [(c["id"], c["title"], c["message_count"]) for c in listed["chats"]] == [
        (porto, PORTO, 3), (lisbon, LISBON, 2),
    ]  # fmt: skip
    read = await alice.command(
        {"v": 1, "id": "g1", "type": "get_chat", "chat_id": lisbon, "limit": 10}, via="rpc"
    )
    assert read["chat"]["id"] == lisbon
    assert [(m["seq"], m["role"], m["content"]) for m in read["messages"]] == [
        (1, "user", LISBON), (2, "assistant", "Lisbon is lovely."),
    ]  # fmt: skip
    assert read["messages"][0]["prosody"]["v"] == 1

    renamed = await alice.command(
        {"v": 1, "id": "r1", "type": "rename_chat", "chat_id": lisbon, "title": "Lisbon trip"},
        via="rpc",
    )
    assert renamed == {"v": 1, "re": "r1", "type": "rename_chat.ok", "chat_id": lisbon,
                       "title": "Lisbon trip"}  # fmt: skip
    assert (await reader.get_chat(lisbon, owner=ANY_OWNER)).title == "Lisbon trip"

    requests_before = len(await model_server.chat_requests())
    resumed = await alice.command(
        {"v": 1, "id": "u1", "type": "resume_chat", "chat_id": lisbon}, via="rpc"
    )
    assert resumed == {"v": 1, "re": "u1", "type": "resume_chat.ok", "chat_id": lisbon,
                       "saved_chat_id": porto, "message_count": 2,
                       "context_messages": 2}  # fmt: skip
    assert await alice.chat_id(other_than=porto) == lisbon
    assert await alice.started(3) == {"v": 1, "type": "chat.started", "chat_id": lisbon,
                                      "resumed": True, "message_count": 2}  # fmt: skip
    await alice.turn(PORTO)  # the next model request holds the resumed chat's turns
    after = (await model_server.chat_requests())[requests_before:]
    assert said(after[-1])[:3] == [
        ("user", LISBON), ("assistant", "Lisbon is lovely."), ("user", PORTO),
    ]  # fmt: skip

    deleted = await alice.command(
        {"v": 1, "id": "d1", "type": "delete_chat", "chat_id": porto}, via="rpc"
    )
    assert deleted == {"v": 1, "re": "d1", "type": "delete_chat.ok", "chat_id": porto}
    assert [c.id for c in await chats_of(reader, "alice")] == [lisbon]
    missing = await alice.command(
        {"v": 1, "id": "g2", "type": "get_chat", "chat_id": porto}, via="rpc"
    )
    assert (missing["type"], missing["code"]) == ("error", "not_found")


async def test_bad_packets_and_strangers_get_typed_errors_and_nothing_is_written(
    start_worker: StartWorker, model_server: ModelServer, join: Join, reader: Store
) -> None:
    await learn(model_server, LISBON)
    await start_worker(VOXKEEP_CONTROL_BURST="40")  # room for this many bad commands at once
    alice = await join("alice")
    chat_id = await alice.chat_id()
    await alice.turn(LISBON)

    async def answered() -> list[Chat] | None:  # the reply is stored once it has played out
        chats = await chats_of(reader, "alice")
        return chats if chats and chats[0].message_count == 2 else None

    before = await eventually(answered, 10, "the answer to be stored")

    for payload, code in [
        (b"not json at all", "bad_request"),
        (b'{"v":1,"id":"x","type":', "bad_request"),
        (b'{"v":1,"id":"a","id":"b","type":"ping"}', "bad_request"),  # duplicate keys
        (b'{"v":1,"id":"u","type":"launch_rockets"}', "unknown_type"),
        (b'{"v":1,"id":"r","type":"rename_chat","chat_id":"' + chat_id.encode() + b'"}',
         "bad_request"),  # no title
    ]:  # fmt: skip
        for via in ("data", "rpc"):
            reply = await alice.command(payload, via=via)
            assert (reply["type"], reply["code"]) == ("error", code), (payload[:40], via)
    big = json.dumps({"v": 1, "id": "big", "type": "ping", "pad": "x" * 15_400}).encode()
    assert len(big) > 15 * 1024  # over the limit: refused before it is parsed
    reply = await alice.command(big)
    assert (reply["re"], reply["code"]) == (None, "too_large")
    missing = await alice.command(
        {"v": 1, "id": "g", "type": "get_chat", "chat_id": "chat_nope"}, via="rpc"
    )
    assert missing["code"] == "not_found"

    mallory = await join("mallory", microphone=False)
    # LiveKit announces a participant who publishes nothing in its next batch (within 3 s);
    # until then the agent cannot tell who sent a packet, and ignores it
    await wait_until(lambda: "mallory" in alice.room.remote_participants, 10, "mallory seen")
    rename = {"v": 1, "id": "m1", "type": "rename_chat", "chat_id": chat_id, "title": "pwned"}
    refused = await mallory.command(rename)
    assert (refused["type"], refused["code"]) == ("error", "forbidden")
    refused = await mallory.command({"v": 1, "id": "m2", "type": "new_chat"}, via="rpc")
    assert (refused["type"], refused["code"]) == ("error", "forbidden")
    await asyncio.sleep(QUIET_S)
    assert [c for c in await chats_of(reader, "alice")] == before  # nothing changed
    assert await chats_of(reader, "mallory") == []
    assert (await alice.agent()).attributes[CHAT_ATTRIBUTE] == chat_id
    assert [p.payload for p in alice.packets if _is_reply(p.payload, "m1", "m2")] == []
    # the call goes on
    assert (await alice.command({"v": 1, "id": "p", "type": "ping"}))["chat_id"] == chat_id


def _is_reply(payload: object, *ids: str) -> bool:
    return isinstance(payload, dict) and payload.get("re") in ids
