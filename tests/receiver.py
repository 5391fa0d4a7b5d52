"""A team's webhook receiver, on loopback: it answers each POST with the next of `answers` (a
status, or "hang": 200 only after `hang_s`, when the sender has given up), then `default`, and
keeps every request it got."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from aiohttp import web

from voxkeep.sim.openai_server import LocalService

Answer = int | Literal["hang"]


@dataclass(frozen=True)
class Delivery:
    headers: dict[str, str]
    body: bytes
    status: int | None
    """What the receiver answered (None: it hung)."""

    @property
    def event(self) -> dict[str, Any]:
        found: dict[str, Any] = json.loads(self.body)
        return found


@dataclass
class Receiver(LocalService):
    answers: list[Answer] = field(default_factory=list)
    default: Answer = 200
    hang_s: float = 2.0
    got: list[Delivery] = field(default_factory=list)
    root: ClassVar[str] = "/hooks"

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/hooks/voice", self._post)

    @property
    def url(self) -> str:
        return f"{self.base_url}/voice"

    def acknowledged(self) -> list[Delivery]:
        return [d for d in self.got if d.status is not None and 200 <= d.status < 300]

    async def _post(self, request: web.Request) -> web.Response:
        answer = self.answers.pop(0) if self.answers else self.default
        body = await request.read()
        self.got.append(Delivery(dict(request.headers), body, None if answer == "hang" else answer))
        if answer == "hang":
            await asyncio.sleep(self.hang_s)
            return web.Response(status=200)
        return web.Response(status=answer)
