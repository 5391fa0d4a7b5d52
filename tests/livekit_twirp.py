"""A small local server speaking LiveKit's server API (Twirp over HTTP): enough of
`AgentDispatchService` and `RoomService` for `agentctl` to run against the real `livekit-api`
client. It checks each request's JWT with the API secret, answers in the request's encoding
(binary protobuf, as the client sends, or protobuf JSON), and records what it received."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from livekit import api
from livekit.protocol import agent_dispatch, models, room

from agent.sim.openai_server import serve_locally

API_KEY = "devkey"
API_SECRET = "a-secret-of-at-least-32-characters-long"


@dataclass
class Received:
    method: str
    body: dict[str, Any]
    claims: api.access_token.Claims
    content_type: str


@dataclass
class LocalLiveKit:
    rooms: dict[str, models.Room] = field(default_factory=dict)
    dispatches: dict[str, list[agent_dispatch.AgentDispatch]] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    url: str = ""
    _runner: web.AppRunner | None = None
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    def add_room(self, name: str, participants: int = 0) -> None:
        self.rooms[name] = models.Room(
            sid=f"RM_{next(self._ids)}", name=name, num_participants=participants,
            creation_time=int(time.time()),
        )  # fmt: skip
        self.dispatches.setdefault(name, [])

    async def start(self) -> str:
        app = web.Application()
        routes = {
            "livekit.AgentDispatchService/CreateDispatch": (
                agent_dispatch.CreateAgentDispatchRequest, self._create),
            "livekit.AgentDispatchService/ListDispatch": (
                agent_dispatch.ListAgentDispatchRequest, self._list),
            "livekit.AgentDispatchService/DeleteDispatch": (
                agent_dispatch.DeleteAgentDispatchRequest, self._delete),
            "livekit.RoomService/ListRooms": (room.ListRoomsRequest, self._rooms),
        }  # fmt: skip
        for path, (request_type, handler) in routes.items():
            app.router.add_post(f"/twirp/{path}", self._twirp(path, request_type, handler))
        self._runner, port = await serve_locally(app)
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def aclose(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def _twirp(self, method: str, request_type: type[Message], handler: Any) -> Any:
        async def serve(request: web.Request) -> web.Response:
            auth = request.headers.get("Authorization", "")
            try:
                claims = api.TokenVerifier(API_KEY, API_SECRET).verify(auth.removeprefix("Bearer "))
            except Exception:  # noqa: BLE001 - any bad token is the same answer
                return _error(401, "unauthenticated", "invalid token")
            as_json = request.content_type == "application/json"
            raw = await request.read()
            try:
                message = (
                    json_format.Parse(raw, request_type()) if as_json
                    else request_type.FromString(raw)
                )  # fmt: skip
            except (DecodeError, json_format.ParseError):
                return _error(400, "malformed", "the body is not a valid request")
            self.received.append(
                Received(method, json_format.MessageToDict(message), claims, request.content_type)
            )
            video = claims.video
            if video is None or not (video.room_admin or video.room_list):
                return _error(403, "permission_denied", "missing grants")
            answer = handler(message)
            if isinstance(answer, web.Response):
                return answer
            if as_json:
                return web.json_response(json_format.MessageToDict(answer))
            return web.Response(
                body=answer.SerializeToString(), content_type="application/protobuf"
            )

        return serve

    def _create(self, req: agent_dispatch.CreateAgentDispatchRequest) -> Any:
        if req.room not in self.rooms:
            self.add_room(req.room)  # LiveKit creates the room a dispatch names
        made = agent_dispatch.AgentDispatch(
            id=f"AD_{next(self._ids)}", agent_name=req.agent_name, room=req.room,
            metadata=req.metadata,
            state=agent_dispatch.AgentDispatchState(created_at=time.time_ns()),
        )  # fmt: skip
        self.dispatches[req.room].append(made)
        return made

    def _list(self, req: agent_dispatch.ListAgentDispatchRequest) -> Any:
        if req.room not in self.rooms:
            return _error(404, "not_found", "room not found")
        return agent_dispatch.ListAgentDispatchResponse(agent_dispatches=self.dispatches[req.room])

    def _delete(self, req: agent_dispatch.DeleteAgentDispatchRequest) -> Any:
        if req.room not in self.rooms:
            return _error(404, "not_found", "room not found")
        for d in self.dispatches[req.room]:
            if d.id == req.dispatch_id:
                self.dispatches[req.room].remove(d)
                return d
        return _error(404, "not_found", "dispatch not found")

    def _rooms(self, req: room.ListRoomsRequest) -> Any:
        return room.ListRoomsResponse(rooms=list(self.rooms.values()))


def _error(status: int, code: str, msg: str) -> web.Response:
    return web.json_response({"code": code, "msg": msg}, status=status)
