"""No word lost under outages and crashes, on both backends (docs/store.md, docs/resume.md): a call
goes on through a 30-second store outage and every finalized message is stored once; a chat
resumes on another worker after the first was killed."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import structlog
from livekit.agents import vad as lk_vad

from tests.conftest import Outage, new_database
from tests.pg import PgServer
from tests.session.conftest import CALLER, Speak, stored
from tests.session.test_resume import said
from tests.session.test_takeover import simulate_in_a_process, spoken
from voxkeep.call.history import open_writer
from voxkeep.core.settings import Settings
from voxkeep.sim.call import SimCall
from voxkeep.sim.openai_server import LocalOpenAI
from voxkeep.store import ANY_OWNER, Store, open_store
from voxkeep.store.writer import Writer
from voxkeep.worker import providers as models

OUTAGE_S = 30.0
log = structlog.get_logger(__name__)


@pytest.fixture
async def on_backend(settings: Settings, db_url: str) -> AsyncIterator[tuple[Settings, Store]]:
    """The session settings on the backend under test, and the test's own reader."""
    reader = await open_store(db_url)
    await reader.migrate()
    yield settings.model_copy(update={"db_url": db_url}), reader
    await reader.aclose()


async def sim_call(settings: Settings, writer: Writer, vad: lk_vad.VAD, caller: str) -> SimCall:
    call = SimCall(settings, writer, vad, models.build(settings), caller=caller,
                   room_name="demo")  # fmt: skip
    await call.start()
    return call


async def test_a_call_goes_on_through_a_30_s_outage_and_every_message_is_stored_once(
    on_backend: tuple[Settings, Store], vad: lk_vad.VAD, speech: Speak,
    openai_server: LocalOpenAI, outage: Callable[[], Awaitable[Outage]],
) -> None:  # fmt: skip
    settings, reader = on_backend
    lines = ["Plan a trip to Lisbon.", "Find me a hotel.", "Near the river.", "Book two nights.",
             "Thanks, that is all."]  # fmt: skip
    replies = [f"Answer {i}." for i in range(1, 6)]
    openai_server.script(replies)
    clips = [await speech(line) for line in lines]
    writer = await open_writer(settings)
    call = await sim_call(settings, writer, vad, CALLER)
    latency_ms: list[float] = []

    async def turn(clip: object) -> None:
        start = time.perf_counter()
        await call.say(clip)  # type: ignore[arg-type]
        latency_ms.append((time.perf_counter() - start) * 1000)

    await turn(clips[0])
    down = await outage()  # SQLite locked by another process / PostgreSQL killed
    began = time.monotonic()
    for clip in clips[1:4]:
        await turn(clip)
    answered_while_down = sum(1 for i in call.items if i.role == "assistant")
    assert time.monotonic() - began < OUTAGE_S  # all three turns ended inside the outage
    await asyncio.sleep(OUTAGE_S - (time.monotonic() - began))
    await down.end()
    await turn(clips[4])
    await call.end("hangup")
    await writer.aclose()

    assert answered_while_down == 4  # the call went on: every turn was answered
    messages = await stored(reader, call.call.state.chat_id)
    expected = [x for pair in zip(lines, replies, strict=True) for x in pair]
    assert [m.content for m in messages] == expected  # each exactly once, in order
    assert [m.seq for m in messages] == list(range(1, 11))
    chat = await reader.get_chat(call.call.state.chat_id, owner=ANY_OWNER)
    assert (chat.status, chat.end_reason) == ("closed", "hangup")
    assert await reader.check() == []
    # turn time (speech, reply and playback), for the record: no timing assertions in tests
    log.info("outage.turns", ms=[round(ms) for ms in latency_ms])


async def test_a_chat_resumes_on_another_worker_after_the_first_is_killed(
    pg_server: PgServer, settings: Settings, tmp_path: Path, vad: lk_vad.VAD,
    openai_server: LocalOpenAI,
) -> None:  # fmt: skip
    url = await new_database(pg_server)
    shared = settings.model_copy(update={"db_url": url})
    reader = await open_store(url)
    await reader.migrate()
    worker_a = await simulate_in_a_process(shared, tmp_path, "carol")  # worker A: a process
    try:
        acknowledged = await spoken(reader, "carol", 4)
    finally:
        if worker_a.returncode is None:
            worker_a.send_signal(signal.SIGKILL)
        await asyncio.wait_for(worker_a.wait(), 10)
    assert worker_a.returncode == -signal.SIGKILL

    openai_server.script(["Welcome back, Carol."])
    writer = await open_writer(shared)  # worker B: this process, its own writer and pool
    call = await sim_call(shared, writer, vad, "carol")
    await call.end("hangup")
    await writer.aclose()
    assert call.call.state.chat_id == acknowledged[0].chat_id
    assert said(openai_server.chat_requests()[0]) == [(m.role, m.content) for m in acknowledged]
    after = await stored(reader, acknowledged[0].chat_id)
    assert [m.id for m in after[:4]] == [m.id for m in acknowledged]
    assert [m.seq for m in after] == list(range(1, len(after) + 1))
    await reader.aclose()
