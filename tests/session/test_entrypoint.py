"""The worker's entrypoint on a LiveKit room: the same mock room LiveKit itself gives a fake job
(no server can run here), with the real session, plugins and store behind it."""

from __future__ import annotations

import asyncio
import contextlib
import time
import types
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from livekit.agents import vad as lk_vad
from livekit.agents.ipc.mock_room import create_mock_room

from tests import factories
from tests.conftest import chat, msg
from tests.session.conftest import stored
from voxkeep.core.errors import VoxkeepError
from voxkeep.core.ids import new_call_id
from voxkeep.core.settings import Settings
from voxkeep.jobs.background import SWEEPER_TASK
from voxkeep.sim.openai_server import LocalOpenAI
from voxkeep.store import ANY_OWNER, Store
from voxkeep.store.records import NewCall
from voxkeep.worker import server as server_module
from voxkeep.worker.factory import build
from voxkeep.worker.server import build_server, entrypoint

Shutdown = list[Callable[[str], Awaitable[None]]]


def mock_job(vad: lk_vad.VAD) -> tuple[types.SimpleNamespace, Any, Shutdown]:
    """A `JobContext` as far as the entrypoint uses it, on LiveKit's mock room: the context,
    the caller in the room, and the shutdown callbacks the entrypoint adds."""
    room = create_mock_room()
    caller = next(iter(room.remote_participants.values()))
    shutdown: Shutdown = []

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
    return ctx, caller, shutdown


@pytest.fixture
def worker_env(
    settings: Settings, openai_server: LocalOpenAI, monkeypatch: pytest.MonkeyPatch
) -> pytest.MonkeyPatch:
    """The environment the entrypoint reads its settings from: the test's store and the local
    model server."""
    for name, value in {
        "VOXKEEP_DB_URL": settings.db_url,
        "VOXKEEP_JOURNAL_DIR": settings.journal_dir,
        "OPENAI_BASE_URL": openai_server.base_url,
        "OPENAI_API_KEY": "test-key",
    }.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


async def test_the_entrypoint_opens_the_callers_chat_and_closes_it_at_shutdown(
    settings: Settings,
    reader: Store,
    vad: lk_vad.VAD,
    openai_server: LocalOpenAI,
    worker_env: pytest.MonkeyPatch,
) -> None:
    ctx, caller, shutdown = mock_job(vad)
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


async def test_the_worker_adds_persistence_around_the_users_own_factory(
    reader: Store, vad: lk_vad.VAD, openai_server: LocalOpenAI, worker_env: pytest.MonkeyPatch
) -> None:
    worker_env.setenv("VOXKEEP_FACTORY", "tests.factories:build")
    openai_server.script(["Welcome to the Hotel Lisboa."])
    ctx, caller, shutdown = mock_job(vad)
    await asyncio.wait_for(entrypoint(ctx), 30)  # type: ignore[arg-type]

    for _ in range(200):  # 10 s: the factory's agent greets, and its words are written
        page = await reader.list_chats(owner=caller.identity)
        said = [m.content for c in page.chats for m in (await stored(reader, c.id))]
        if said:
            break
        await asyncio.sleep(0.05)
    assert said == ["Welcome to the Hotel Lisboa."]
    (greeting,) = openai_server.chat_requests()
    assert greeting["messages"][0]["content"] == factories.INSTRUCTIONS
    await asyncio.wait_for(shutdown[0]("job shutdown"), 30)


async def test_a_factory_that_returns_something_else_is_named_in_one_line() -> None:
    with pytest.raises(VoxkeepError) as wrong:
        await build(factories.wrong, None)  # type: ignore[arg-type]
    assert str(wrong.value) == "VOXKEEP_FACTORY returned str, not (AgentSession, Agent)"


def test_a_worker_on_a_full_cpu_still_reports_less_than_full_load(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """LiveKit's server sends nothing to a worker reporting a load of 1 or more, whatever its
    target_load: the worker reports at most 0.99, so VOXKEEP_LOAD_THRESHOLD=inf holds."""
    server = build_server(settings.model_copy(update={"load_threshold": float("inf")}))
    assert server.load_fnc is server_module.reported_load
    for measured, reported in ((0.3, 0.3), (1.0, 0.99), (1.7, 0.99)):
        monkeypatch.setattr(server_module, "_LIVEKIT_LOAD", lambda _, m=measured: m)
        assert server_module.reported_load(server) == reported
