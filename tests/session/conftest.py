"""A whole call in-process: the real AgentSession with the real silero VAD, espeak-ng speech
from the simulated caller, and the real OpenAI plugin against a local server that records
every request (docs/livekit.md)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from livekit.agents import Agent, AgentSession, llm
from livekit.agents import vad as lk_vad
from livekit.plugins import silero
from pydantic import SecretStr

from tests.conftest import chat, msg
from voxkeep.call.history import open_writer
from voxkeep.core.settings import Settings
from voxkeep.sim.audio import MIC_RATE
from voxkeep.sim.call import SimCall
from voxkeep.sim.openai_server import LocalOpenAI
from voxkeep.sim.speech import ESPEAK_RATE, Pcm, Voice, espeak, resample
from voxkeep.store import ANY_OWNER, Store, open_store
from voxkeep.store.records import Message, NewChat, Record
from voxkeep.store.writer import Writer
from voxkeep.worker import providers as models
from voxkeep.worker.assistant import Trace

CALLER = "alice"


@pytest.fixture(scope="session")
def vad() -> lk_vad.VAD:
    return silero.VAD.load()


@pytest.fixture
async def openai_server() -> AsyncIterator[LocalOpenAI]:
    server = LocalOpenAI()
    await server.start()
    yield server
    await server.aclose()


@pytest.fixture
def settings(tmp_path: Path, openai_server: LocalOpenAI) -> Settings:
    return Settings(
        db_url=f"sqlite:///{tmp_path}/voxkeep.db",
        journal_dir=str(tmp_path / "journal"),
        openai_base_url=openai_server.base_url,
        openai_api_key=SecretStr("test-key"),
        instructions="You are a helpful travel assistant.",
        # a budget no busy machine runs out of: a test of resume is not a race with the clock
        # (the budget itself: test_resume.py, on a locked store)
        context_load_timeout_s=30.0,
    )


@pytest.fixture
async def reader(settings: Settings) -> AsyncIterator[Store]:
    """The test's own view of the database."""
    store = await open_store(settings.db_url)
    await store.migrate()
    yield store
    await store.aclose()


@pytest.fixture
async def writer(settings: Settings, reader: Store) -> AsyncIterator[Writer]:
    w = await open_writer(settings)
    yield w
    await w.aclose()


Speak = Callable[..., Awaitable[Pcm]]


@pytest.fixture
def speech(openai_server: LocalOpenAI) -> Speak:
    """espeak-ng speech as the caller's microphone delivers it, known to the recognizer."""

    async def make(text: str, **voice: int) -> Pcm:
        samples = resample(await espeak(text, Voice(**voice)), ESPEAK_RATE, MIC_RATE)
        openai_server.recognizer.learn(text, samples, MIC_RATE)
        return samples

    return make


StartCall = Callable[..., Awaitable[SimCall]]


@pytest.fixture
async def start_call(
    settings: Settings, writer: Writer, vad: lk_vad.VAD
) -> AsyncIterator[StartCall]:
    calls: list[SimCall] = []

    async def start(
        tools: Sequence[llm.Tool] = (),
        trace: Trace | None = None,
        job_metadata: str | None = None,
        caller_attributes: dict[str, str] | None = None,
        caller: str = CALLER,
        agent: Agent | None = None,
        session: AgentSession[Any] | None = None,
        **overrides: Any,
    ) -> SimCall:
        """A call of CALLER (with `agent` and `session`, else ours); `overrides` are
        settings."""
        call_settings = settings.model_copy(update=overrides)
        call = SimCall(
            call_settings,
            writer,
            vad,
            models.build(call_settings),
            caller=caller,
            room_name="demo",
            tools=tools,
            trace=trace,
            job_metadata=job_metadata,
            caller_attributes=caller_attributes or {},
            agent=agent,
            user_session=session,
        )
        calls.append(call)
        await call.start()
        return call

    yield start
    for call in calls:
        await call.end("hangup")
        if isinstance(call.providers.llm, llm.RealtimeModel):
            await call.providers.llm.aclose()  # its HTTP session (a job's is LiveKit's)


async def stored(reader: Store, chat_id: str) -> list[Message]:
    page = await reader.messages(chat_id, owner=ANY_OWNER, limit=100)
    return page.messages


async def seed(writer: Writer, owner: str, lines: list[str], *, at: float) -> NewChat:
    """A chat of `owner` holding `lines`, said by the caller and the agent in turn, a second
    apart from `at`; closed by `new_chat` (never resumed on its own)."""
    c = chat(owner=owner, at=at)
    records: list[Record] = [c]
    for i, line in enumerate(lines):
        records.append(msg(c.id, line, role="user" if i % 2 == 0 else "assistant", at=at + i))
    for start in range(0, len(records), 2000):
        await writer.store.write(records[start : start + 2000])
    await writer.store.close_chat(c.id, status="closed", end_reason="new_chat", at=at + len(lines))
    return c


async def wait_for_summary(store: Store, chat_id: str) -> str:
    for _ in range(200):  # 10 s
        got = await store.get_chat(chat_id, owner=ANY_OWNER)
        if got.summary:
            return got.summary
        await asyncio.sleep(0.05)
    raise AssertionError("no summary was stored")
