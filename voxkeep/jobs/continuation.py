"""Continuation (docs/resume.md): when the worker serving a call dies while its caller stays in
the room, another worker's agent joins and goes on with the same chat. Self-hosted LiveKit never
dispatches a dead worker's job again, so every worker watches the store for it:

1. a live call row whose heartbeat stopped `VOXKEEP_CONTINUE_AFTER_S` ago;
2. its caller still in the room (the server's `ListParticipants`): a caller who left is not
   followed, and the sweeper ends that call as before;
3. the store decides who continues it: of every watcher that claims the call, exactly one wins,
   and the call row ends `lost`;
4. the winner removes the dead agent's participant (the room shows it for some 20 s more) and
   dispatches an agent to the room with `{"chat_id": …, "continues": "<call id>"}`, which
   resumes the chat by id and waits for the caller to speak.

A store that was down makes every heartbeat look old when it comes back: a watcher judges a call
stale only once it has read the store without a failure for `VOXKEEP_CONTINUE_AFTER_S`, by which
time every live call has beaten again.
"""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import structlog
from livekit import api

from voxkeep.core.errors import VoxkeepError
from voxkeep.core.settings import Settings
from voxkeep.store import Store, open_store
from voxkeep.store.base import StaleCall

log = structlog.get_logger(__name__)

TASK = "voxkeep.jobs.continuation"
SERVER_TIMEOUT_S = 5.0
AGENT_IDENTITY_PREFIX = "agent-"
"""LiveKit names an agent's participant `agent-<job id>`."""


class Watcher:
    """One worker's watch: `check` once per `VOXKEEP_CONTINUE_CHECK_S`."""

    def __init__(self, settings: Settings, store: Store, server: api.LiveKitAPI) -> None:
        assert settings.continue_after_s is not None
        self._after_s = settings.continue_after_s
        self._agent_name = settings.agent_name
        self._store, self._server = store, server
        self._reading_since: float | None = None
        """Since when this watcher has read the store without a failure."""

    async def check(self, now: float | None = None) -> list[str]:
        """Continue what is due: the ids of the calls this watcher continued."""
        now = time.time() if now is None else now
        stale_before = now - self._after_s
        try:
            stale = await self._store.stale_calls(stale_before=stale_before)
        except VoxkeepError as exc:
            self._reading_since = None
            log.warning("continuation.store_unavailable", error=type(exc).__name__)
            return []
        if self._reading_since is None:
            self._reading_since = now
        if now - self._reading_since < self._after_s:
            return []  # heartbeats may still be on their way after an outage
        continued = []
        for call in stale:
            try:
                if await self._continue(call, stale_before):
                    continued.append(call.id)
            except (VoxkeepError, api.TwirpError, aiohttp.ClientError, TimeoutError) as exc:
                log.warning(
                    "continuation.failed", call_id=call.id, error=type(exc).__name__,
                    code=getattr(exc, "code", None),
                )  # fmt: skip
        return continued

    async def _continue(self, call: StaleCall, stale_before: float) -> bool:
        listed = await self._server.room.list_participants(
            api.ListParticipantsRequest(room=call.room)
        )
        present = {p.identity: p for p in listed.participants}
        if call.participant not in present:
            return False  # the caller left: the sweeper ends the call
        if not await self._store.claim_stale_call(call.id, stale_before=stale_before):
            return False  # another watcher, a heartbeat or the call's own end came first
        dead = f"{AGENT_IDENTITY_PREFIX}{call.job_id}"
        if call.job_id and dead in present:
            await self._server.room.remove_participant(
                api.RoomParticipantIdentity(room=call.room, identity=dead)
            )
        metadata = json.dumps({"chat_id": call.chat_id, "continues": call.id})
        await self._server.agent_dispatch.create_dispatch(
            api.CreateAgentDispatchRequest(
                agent_name=self._agent_name, room=call.room, metadata=metadata
            )
        )
        log.info("call.continuing", call_id=call.id, chat_id=call.chat_id, job_id=call.job_id)
        return True


async def run(settings: Settings) -> None:
    """Watch every `VOXKEEP_CONTINUE_CHECK_S` until cancelled."""
    store: Store | None = None
    server = api.LiveKitAPI(
        settings.livekit_url,
        settings.livekit_api_key.get_secret_value(),
        settings.livekit_api_secret.get_secret_value(),
        timeout=aiohttp.ClientTimeout(total=SERVER_TIMEOUT_S),
        failover=False,
    )
    try:
        watcher: Watcher | None = None
        while True:
            try:
                store = store or await open_store(settings.db_url)
                watcher = watcher or Watcher(settings, store, server)
                await watcher.check()
            except VoxkeepError as exc:  # the store could not be opened: try again
                log.warning("continuation.store_unavailable", error=type(exc).__name__)
            await asyncio.sleep(settings.continue_check_s)
    finally:
        await server.aclose()
        if store is not None:
            await store.aclose()
