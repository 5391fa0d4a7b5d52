"""One live call per chat (docs/resume.md): a newer call of the caller takes the chat over,
the older call notices at its next write or heartbeat and moves to a chat of its own, a worker
killed mid-call leaves a chat the next call resumes, and the sweeper ends what nobody resumes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.session.conftest import Speak, StartCall, seed, stored
from tests.session.test_resume import events, said
from voxkeep.core.errors import NotFound
from voxkeep.core.ids import continuation_ids
from voxkeep.core.settings import Settings
from voxkeep.sim.openai_server import LocalOpenAI
from voxkeep.store import ANY_OWNER, Store
from voxkeep.store.records import Message
from voxkeep.store.writer import Writer

KILL_SCRIPT = """
caller: {caller}
replies: ["Lisbon is lovely.", "In May."]
calls:
  - steps:
      - say: "Tell me about Lisbon."
      - say: "When should I go?"
      - wait: 300
"""


async def test_two_calls_claiming_one_chat_at_once_leave_one_holder_and_gapless_seq(
    start_call: StartCall, speech: Speak, openai_server: LocalOpenAI, writer: Writer,
    reader: Store,
) -> None:  # fmt: skip
    c = await seed(writer, "alice", ["Book Rome.", "Rome is booked."], at=time.time() - 30)
    clips = [await speech("Hello from the phone."), await speech("Hello from the laptop.")]
    asked = json.dumps({"chat_id": c.id})
    phone, laptop = await asyncio.gather(
        start_call(job_metadata=asked), start_call(job_metadata=asked)
    )
    for call, clip in zip((phone, laptop), clips, strict=True):
        await call.say(clip)
    holders = [call for call in (phone, laptop) if call.call.state.chat_id == c.id]
    movers = [call for call in (phone, laptop) if call.call.state.chat_id != c.id]
    assert len(holders) == 1 and len(movers) == 1
    mover = movers[0]
    # both were told they resumed; the one that lost the claim was then told it moved on
    assert events(mover)[0]["resumed"] is True
    assert events(mover)[-1] == {"v": 1, "type": "chat.started",
                                 "chat_id": mover.call.state.chat_id, "resumed": False,
                                 "message_count": 0, "reason": "taken_over"}  # fmt: skip
    for call in (phone, laptop):
        await call.end("hangup")

    kept = await stored(reader, c.id)
    assert [m.seq for m in kept] == list(range(1, len(kept) + 1))  # gapless
    theirs = {m.call_id for m in kept[2:]}
    assert len(theirs) == 1  # after the seeded two, one call wrote, and only one
    assert kept[-2].content in ("Hello from the phone.", "Hello from the laptop.")
    moved = await stored(reader, mover.call.state.chat_id)
    # nothing the mover said was lost: its welcome and its turn are in its own chat
    assert [m.role for m in moved] == ["assistant", "user", "assistant"]
    assert moved[1].content in ("Hello from the phone.", "Hello from the laptop.")
    assert moved[1].content != kept[-2].content


async def test_a_call_whose_chat_was_taken_over_notices_at_its_heartbeat(
    start_call: StartCall, speech: Speak, openai_server: LocalOpenAI, reader: Store
) -> None:
    openai_server.script(["Lisbon is lovely.", "Welcome back!"])
    lisbon = await speech("Tell me about Lisbon.")
    first = await start_call(heartbeat_s=0.2)
    await first.say(lisbon)
    chat_id = first.call.state.chat_id
    second = await start_call()  # the caller's other device: takes the active chat over
    assert second.call.state.chat_id == chat_id
    await first.wait_for(lambda: first.call.state.chat_id != chat_id, 10)
    assert events(first)[-1]["reason"] == "taken_over"
    await first.end("hangup")  # must not close what the other call holds
    assert (await reader.get_chat(chat_id, owner=ANY_OWNER)).status == "active"
    await second.end("hangup")
    final = await reader.get_chat(chat_id, owner=ANY_OWNER)
    assert (final.status, final.end_reason, final.message_count) == ("closed", "hangup", 3)
    # the first call's new chat never heard the caller: dropped
    assert [c.id for c in (await reader.list_chats(owner=ANY_OWNER)).chats] == [chat_id]


async def test_a_call_whose_chat_is_deleted_from_another_device_goes_on_in_its_continuation(
    start_call: StartCall, speech: Speak, openai_server: LocalOpenAI, reader: Store
) -> None:
    openai_server.script(["Lisbon is lovely.", "In May."])
    lisbon, when = await speech("Tell me about Lisbon."), await speech("When should I go?")
    first = await start_call(heartbeat_s=0.2)
    await first.say(lisbon)
    chat_id, call_id = first.call.state.chat_id, first.call.state.call_id
    await reader.delete_chat(chat_id, owner="alice")  # the caller's app, on their laptop
    await first.wait_for(lambda: first.call.state.chat_id != chat_id, 10)
    continuation, _ = continuation_ids(call_id)
    assert first.call.state.chat_id == continuation
    assert events(first)[-1] == {"v": 1, "type": "chat.started", "chat_id": continuation,
                                 "resumed": False, "message_count": 0,
                                 "reason": "deleted"}  # fmt: skip
    await first.say(when)
    await first.end("hangup")
    assert [(m.role, m.content) for m in await stored(reader, continuation)] == [
        ("user", "When should I go?"),
        ("assistant", "In May."),
    ]
    with pytest.raises(NotFound):
        await reader.get_chat(chat_id, owner=ANY_OWNER)


async def simulate_in_a_process(settings: Settings, tmp_path: Path, caller: str) -> Any:
    script = tmp_path / f"{caller}.yaml"
    script.write_text(KILL_SCRIPT.format(caller=caller))
    env = {
        **os.environ,
        "VOXKEEP_JOURNAL_DIR": settings.journal_dir,
        "VOXKEEP_LOG_LEVEL": "WARNING",
    }
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        env.pop(name, None)
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "voxkeep.cli.main", "--db", settings.db_url, "simulate",
        str(script), "--offline", env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip


async def spoken(reader: Store, caller: str, count: int) -> list[Message]:
    """Wait until `caller`'s chat holds `count` messages (60 s)."""
    for _ in range(1200):
        page = await reader.list_chats(owner=caller)
        if page.chats and page.chats[0].message_count >= count:
            return await stored(reader, page.chats[0].id)
        await asyncio.sleep(0.05)
    raise AssertionError(f"{caller} never said {count} messages")


def call_rows(db_url: str, chat_id: str) -> list[tuple[str, str | None]]:
    with sqlite3.connect(db_url.removeprefix("sqlite:///")) as conn:
        return conn.execute(
            "SELECT id, end_reason FROM calls WHERE chat_id = ? ORDER BY started_at", (chat_id,)
        ).fetchall()


async def test_a_worker_killed_mid_call_leaves_a_chat_the_next_call_takes_over(
    settings: Settings, tmp_path: Path, start_call: StartCall, openai_server: LocalOpenAI,
    reader: Store,
) -> None:  # fmt: skip
    carol, dave = [await simulate_in_a_process(settings, tmp_path, c) for c in ("carol", "dave")]
    try:
        acknowledged = {c: await spoken(reader, c, 4) for c in ("carol", "dave")}
    finally:
        for worker in (carol, dave):
            if worker.returncode is None:
                worker.send_signal(signal.SIGKILL)
            await asyncio.wait_for(worker.wait(), 10)
    assert carol.returncode == -signal.SIGKILL
    carols = acknowledged["carol"][0].chat_id
    assert (await reader.get_chat(carols, owner=ANY_OWNER)).status == "active"

    openai_server.script(["Welcome back, Carol."])
    again = await start_call(caller="carol")
    welcome = openai_server.chat_requests()[0]
    assert again.call.state.chat_id == carols
    assert said(welcome) == [(m.role, m.content) for m in acknowledged["carol"]]
    (killed, _), (resumed, _) = call_rows(settings.db_url, carols)
    assert dict(call_rows(settings.db_url, carols)) == {killed: "taken_over", resumed: None}
    await again.end("hangup")

    # dave never came back: the sweeper ends his chat as lost, keeping every message
    code = await asyncio.to_thread(
        _voxkeepctl, "--db", settings.db_url, "--json", "sweep", "--stale-after", "0s"
    )
    assert code == 0
    daves = acknowledged["dave"][0].chat_id
    lost = await reader.get_chat(daves, owner=ANY_OWNER)
    assert (lost.status, lost.end_reason) == ("interrupted", "lost")
    assert [m.id for m in await stored(reader, daves)] == [m.id for m in acknowledged["dave"]]
    assert (await reader.get_chat(carols, owner=ANY_OWNER)).end_reason == "hangup"


def _voxkeepctl(*argv: str) -> int:
    from voxkeep.cli.main import main

    return main(list(argv))
