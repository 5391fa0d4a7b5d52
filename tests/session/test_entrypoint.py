"""The worker's entrypoint on a LiveKit room: the same mock room LiveKit itself gives a fake job
(no server can run here), with the real session, plugins and store behind it."""

from __future__ import annotations

import asyncio
import contextlib
import time
import types
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from livekit.agents import vad as lk_vad
from livekit.agents.ipc.mock_room import create_mock_room

from agent.ids import new_call_id
from agent.server import SWEEPER_TASK, build_server, entrypoint
from agent.settings import Settings
from agent.sim.openai_server import LocalOpenAI
from agent.store import ANY_OWNER, Store
from agent.store.records import NewCall
from tests.conftest import chat, msg


async def test_the_entrypoint_opens_the_callers_chat_and_closes_it_at_shutdown(
    settings: Settings,
    reader: Store,
    vad: lk_vad.VAD,
    openai_server: LocalOpenAI,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in {
        "AGENT_DB_URL": settings.db_url,
        "AGENT_JOURNAL_DIR": settings.journal_dir,
        "OPENAI_BASE_URL": openai_server.base_url,
        "OPENAI_API_KEY": "test-key",
    }.items():
        monkeypatch.setenv(name, value)
    room = create_mock_room()
    caller = next(iter(room.remote_participants.values()))
    shutdown: list[Callable[[str], Awaitable[None]]] = []

    async def connect() -> None:
        return None

    async def wait_for_participant() -> object:
        return caller

    ctx = types.SimpleNamespace(
        room=room,
        connect=connect,
        wait_for_participant=wait_for_participant,
        proc=types.SimpleNamespace(userdata={"vad": vad}),
        job=types.SimpleNamespace(id="job-1", metadata=""),
        add_shutdown_callback=shutdown.append,
    )
    await asyncio.wait_for(entrypoint(ctx), 30)  # type: ignore[arg-type]

    for _ in range(200):  # 10 s: the chat is written, and the plugin calls, in the background
        page = await reader.list_chats(owner=caller.identity)
        if page.chats and openai_server.requests:
            break
        await asyncio.sleep(0.05)
    assert [c.status for c in page.chats] == ["active"]
    assert [r.path for r in openai_server.requests] == ["/v1/models"]  # the plugin, configured

    assert len(shutdown) == 1
    await asyncio.wait_for(shutdown[0]("job shutdown"), 30)
    # nobody spoke: an empty chat is never kept, and the writer left no journal behind
    assert (await reader.list_chats(owner=ANY_OWNER)).chats == []
    journals = await asyncio.to_thread(lambda: list(Path(settings.journal_dir).glob("*.jsonl")))
    assert journals == []


async def test_the_worker_sweeps_at_start_and_then_every_interval(
    settings: Settings, reader: Store
) -> None:
    async def abandoned() -> str:
        long_ago = time.time() - 600
        c = chat(owner="carol", at=long_ago)
        gone = NewCall(id=new_call_id(), chat_id=c.id, participant="carol", started_at=long_ago)
        await reader.write([c, gone, msg(c.id, "hello?", at=long_ago)])
        return c.id

    async def lost(chat_id: str) -> bool:
        for _ in range(200):  # 10 s
            if (await reader.get_chat(chat_id, owner=ANY_OWNER)).end_reason == "lost":
                return True
            await asyncio.sleep(0.05)
        return False

    first = await abandoned()
    server = build_server(settings.model_copy(update={"sweep_interval_s": 0.2}))
    server.emit("worker_started")  # what AgentServer.run emits once it is up
    try:
        assert await lost(first)
        later = await abandoned()  # left behind while the worker runs: the next sweep ends it
        assert await lost(later)
    finally:
        for task in asyncio.all_tasks():
            if task.get_name() == SWEEPER_TASK:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
