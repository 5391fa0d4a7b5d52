"""A caller who drops and rejoins (docs/resume.md): when the caller's participant leaves the
room, the agent stays `VOXKEEP_REJOIN_GRACE_S` with the chat open; the same identity back in the
room within it is answered in the same call, the same chat, by the same agent (LiveKit's room
input links it again). After the grace, the call ends `hangup`, as it did at once before."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog
from livekit import rtc

log = structlog.get_logger(__name__)


class RejoinGrace:
    """Watches `room` for `identity` leaving and coming back; `expired()` once it has been away
    for `grace_s`."""

    def __init__(
        self, room: rtc.Room, identity: str, grace_s: float, expired: Callable[[], object]
    ) -> None:
        self._room, self._identity, self._grace_s = room, identity, grace_s
        self._expired = expired
        self._waiting: asyncio.Task[None] | None = None
        room.on("participant_disconnected", self._left)
        room.on("participant_connected", self._back)

    def close(self) -> None:
        self._room.off("participant_disconnected", self._left)
        self._room.off("participant_connected", self._back)
        if self._waiting is not None:
            self._waiting.cancel()

    @property
    def away(self) -> bool:
        return self._waiting is not None and not self._waiting.done()

    def _left(self, participant: rtc.RemoteParticipant) -> None:
        if participant.identity != self._identity or self.away:
            return
        log.info("caller.away", grace_s=self._grace_s)
        self._waiting = asyncio.create_task(self._wait(), name="call.rejoin_grace")

    def _back(self, participant: rtc.RemoteParticipant) -> None:
        if participant.identity == self._identity and self.away:
            assert self._waiting is not None
            self._waiting.cancel()
            log.info("caller.back")

    async def _wait(self) -> None:
        await asyncio.sleep(self._grace_s)
        self._expired()
