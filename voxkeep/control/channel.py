"""The control channel's edge on the room (docs/control.md): reliable data packets on the control
topic and the `voxkeep.control` RPC method, both into one dispatcher; replies to the sender only;
the agent's `voxkeep.chat_id` attribute and the `chat.started` event to the caller."""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from livekit import rtc

from voxkeep.control.dispatcher import Dispatcher, Sender
from voxkeep.control.protocol import encode, error_reply
from voxkeep.control.room import CHAT_ATTRIBUTE, RPC_METHOD, ChatStarted

log = structlog.get_logger(__name__)


def sender_of(participant: Any) -> Sender:
    """Who sent a packet, as the room says; None is the server API."""
    if participant is None:
        return Sender(None)
    permissions = getattr(participant, "permissions", None)
    return Sender(
        identity=participant.identity,
        kind=participant.kind,
        hidden=bool(getattr(permissions, "hidden", False)),
    )


class ControlChannel:
    def __init__(self, room: rtc.Room, dispatcher: Dispatcher, topic: str, caller: str) -> None:
        self._room = room
        self._dispatcher = dispatcher
        self._topic = topic
        self._caller = caller
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    def attach(self) -> None:
        self._room.on("data_received", self._on_data)
        self._room.local_participant.register_rpc_method(RPC_METHOD, self._on_rpc)

    def chat_started(self, started: ChatStarted) -> None:
        """Tell the caller's app the current chat changed: the attribute, then the event."""
        self._own(self._announce(started))

    async def aclose(self) -> None:
        """Take no more commands: the data handler and the RPC method leave the room (an RPC
        already on its way is answered `unavailable`), and replies in flight are dropped."""
        self._closed = True
        self._room.off("data_received", self._on_data)
        try:
            self._room.local_participant.unregister_rpc_method(RPC_METHOD)
        except Exception as exc:  # noqa: BLE001 - the room is gone already: nothing to remove
            log.info("control.unregister_failed", error=type(exc).__name__)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _on_data(self, packet: rtc.DataPacket) -> None:
        try:  # LiveKit's emitter must never see an exception from here (docs/livekit.md)
            if packet.topic != self._topic:
                return
            self._own(self._serve(sender_of(packet.participant), bytes(packet.data)))
        except Exception as exc:  # noqa: BLE001 - the room event boundary
            log.error("control.failed", error=type(exc).__name__)

    async def _serve(self, sender: Sender, payload: bytes) -> None:
        reply = await self._dispatcher.handle(sender, payload)
        if reply is None or sender.identity is None:
            return
        await self._send(sender.identity, encode(reply))

    async def _on_rpc(self, data: rtc.RpcInvocationData) -> str:
        if self._closed:  # the call has ended and flushed: nothing here acts on its chat now
            return encode(error_reply(None, "unavailable", "this call has ended")).decode()
        participant = self._room.remote_participants.get(data.caller_identity)
        sender = sender_of(participant) if participant else Sender(data.caller_identity)
        reply = await self._dispatcher.handle(sender, data.payload.encode("utf-8", "surrogatepass"))
        if reply is None:  # an RPC always gets an answer: the refusal, without detail
            reply = error_reply(None, "forbidden", "only the caller may command this agent")
        return encode(reply).decode("utf-8")

    async def _announce(self, started: ChatStarted) -> None:
        try:
            await self._room.local_participant.set_attributes({CHAT_ATTRIBUTE: started.chat_id})
            await self._send(self._caller, encode(started.event()))
        except Exception as exc:  # noqa: BLE001 - the room went away: the call goes on
            log.warning("control.announce_failed", error=type(exc).__name__)

    async def _send(self, identity: str, payload: bytes) -> None:
        try:
            await self._room.local_participant.publish_data(
                payload, reliable=True, destination_identities=[identity], topic=self._topic
            )
        except Exception as exc:  # noqa: BLE001 - a reply that cannot be sent is only logged
            log.warning("control.reply_failed", error=type(exc).__name__)

    def _own(self, coro: Any) -> None:
        task = asyncio.create_task(coro, name="control")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
