"""The worker's entrypoint on a LiveKit room: the same mock room LiveKit itself gives a fake job
(no server can run here), with the real session, plugins and store behind it."""

from __future__ import annotations

import asyncio
import types
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from livekit.agents import vad as lk_vad
from livekit.agents.ipc.mock_room import create_mock_room

from agent.server import entrypoint
from agent.settings import Settings
from agent.sim.openai_server import LocalOpenAI
from agent.store import ANY_OWNER, Store


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
        job=types.SimpleNamespace(id="job-1"),
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
