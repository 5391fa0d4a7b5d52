"""Both control transports into one dispatcher (docs/control.md), on an unconnected `rtc.Room` used
as the event bus with a stand-in local participant (docs/livekit.md)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from livekit import rtc

from tests.conftest import chat
from tests.control.test_dispatcher import StoreSwitcher
from voxkeep.control.channel import ControlChannel
from voxkeep.control.dispatcher import Dispatcher
from voxkeep.control.room import CHAT_ATTRIBUTE, RPC_METHOD, ChatStarted
from voxkeep.sim.audio import LocalParticipant, RemoteParticipant, Room
from voxkeep.store import Store

TOPIC = "voxkeep.control"


@pytest.fixture
async def wired(store: Store) -> tuple[Room, LocalParticipant, ControlChannel]:
    current = chat(owner="alice")
    await store.write([current])
    local = LocalParticipant()
    room = Room("demo", local)
    room.remote["alice"] = RemoteParticipant("alice")
    dispatcher = Dispatcher(store, StoreSwitcher(store, current.id), "alice", rate=100, burst=100)
    channel = ControlChannel(room, dispatcher, TOPIC, "alice")
    channel.attach()
    return room, local, channel


async def replies(local: LocalParticipant, count: int) -> list[Any]:
    for _ in range(500):  # 5 s
        if len(local.sent) >= count:
            break
        await asyncio.sleep(0.01)
    return [(s.destination_identities, s.topic, json.loads(s.payload)) for s in local.sent]


async def test_a_data_packet_is_answered_to_its_sender_only_on_the_same_topic(wired: Any) -> None:
    room, local, _ = wired
    room.deliver(RemoteParticipant("alice"), b'{"v":1,"id":"a","type":"ping"}', TOPIC)
    room.deliver(RemoteParticipant("mallory"), b'{"v":1,"id":"m","type":"ping"}', TOPIC)
    room.deliver(RemoteParticipant("alice"), b'{"v":1,"id":"x","type":"ping"}', "chat")  # not ours
    sent = await replies(local, 2)
    await asyncio.sleep(0.1)
    assert len(local.sent) == 2
    by_sender = {tuple(to): (topic, reply) for to, topic, reply in sent}
    assert by_sender[("alice",)][0] == TOPIC and by_sender[("alice",)][1]["type"] == "ping.ok"
    assert by_sender[("mallory",)][1]["code"] == "forbidden"


async def test_the_server_api_and_malformed_packets_never_break_the_room(wired: Any) -> None:
    room, local, _ = wired
    packet = rtc.DataPacket(data=b"{", kind=rtc.DataPacketKind.KIND_RELIABLE, participant=None,
                            topic=TOPIC)  # fmt: skip
    room.emit("data_received", packet)  # the server API: ignored
    room.emit("data_received", object())  # not even a packet: logged, not raised
    room.deliver(RemoteParticipant("alice"), b"\xff" * 20_000, TOPIC)
    (sent,) = await replies(local, 1)
    assert sent[0] == ["alice"] and sent[2]["code"] == "too_large"


async def test_the_rpc_method_answers_with_the_same_dispatcher(wired: Any) -> None:
    _, local, _ = wired
    handler = local.rpc_methods[RPC_METHOD]
    invocation = rtc.RpcInvocationData("req-1", "alice", '{"v":1,"id":"r","type":"ping"}', 5.0)
    assert json.loads(await handler(invocation))["type"] == "ping.ok"
    stranger = rtc.RpcInvocationData("req-2", "bob", '{"v":1,"id":"r","type":"ping"}', 5.0)
    assert json.loads(await handler(stranger))["code"] == "forbidden"


async def test_a_closed_channel_leaves_the_room_and_refuses_an_rpc_already_on_its_way(
    wired: Any,
) -> None:
    room, local, channel = wired
    handler = local.rpc_methods[RPC_METHOD]  # (as LiveKit holds it for a call in flight)
    await channel.aclose()
    assert RPC_METHOD not in local.rpc_methods  # a later RPC finds no method
    invocation = rtc.RpcInvocationData("req-1", "alice", '{"v":1,"id":"r","type":"ping"}', 5.0)
    assert json.loads(await handler(invocation))["code"] == "unavailable"
    room.deliver(RemoteParticipant("alice"), b'{"v":1,"id":"a","type":"ping"}', TOPIC)
    await asyncio.sleep(0.1)
    assert local.sent == []  # and a data packet is not served


async def test_a_chat_change_sets_the_attribute_and_tells_the_caller(wired: Any) -> None:
    _, local, channel = wired
    channel.chat_started(ChatStarted("chat_new", resumed=True, message_count=4))
    (sent,) = await replies(local, 1)
    assert local.attributes[CHAT_ATTRIBUTE] == "chat_new"
    assert sent == (["alice"], TOPIC, {"v": 1, "type": "chat.started", "chat_id": "chat_new",
                                        "resumed": True, "message_count": 4})  # fmt: skip
