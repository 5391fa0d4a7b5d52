"""The console's process for the tests: `voxkeepctl serve` on a seeded SQLite store, started as
an operator starts it (docs/console.md)."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.support.processes import free_port
from voxkeep.store import Store, open_store
from voxkeep.store.records import NewChat, NewMessage

READ, ADMIN = "read-token-0123456789abcdef", "admin-token-0123456789abcdef"
TURNS = [
    ("I want to see Lisbon in May.", (0.0, 0.2, -0.3)),
    ("Is it warm enough to swim?", (1.4, 1.1, 0.9)),
    ("Then book the riverside hotel.", (-0.6, -0.4, 0.2)),
]


def prosody(pitch_z: float, loudness_z: float, rate_z: float) -> dict[str, object]:
    return {
        "v": 1,
        "pitch": {"median_hz": 170 + 20 * pitch_z},
        "loudness": {"mean_db": -22.0},
        "rate": {"words_per_s": 2.4, "source": "transcript"},
        "pauses": {"count": 1, "total_s": 0.4},
        "relative": {"pitch_z": pitch_z, "loudness_z": loudness_z, "rate_z": rate_z},
    }


async def seed(store: Store) -> None:
    """alice's call about Lisbon (three measured turns, a tool call, an interrupted answer),
    and 30 other chats around it."""
    now = time.time()
    lisbon = NewChat(id="chat_lisbon", owner="alice", created_at=now - 600)
    lines: list[NewMessage] = []
    for n, (text, z) in enumerate(TURNS):
        at = now - 590 + 20 * n
        lines.append(
            NewMessage(id=f"u{n}", chat_id=lisbon.id, role="user", content=text, created_at=at,
                       prosody=prosody(*z))
        )  # fmt: skip
        lines.append(
            NewMessage(id=f"a{n}", chat_id=lisbon.id, role="assistant", created_at=at + 5,
                       content=f"Answer {n}: lovely, sunny, booked.", interrupted=n == 1)
        )  # fmt: skip
    lines.append(
        NewMessage(id="t1", chat_id=lisbon.id, role="tool", tool_name="book_hotel",
                   tool_call={"hotel": "riverside"}, tool_result={"ok": True},
                   created_at=now - 500)
    )  # fmt: skip
    others = [NewChat(id=f"chat_{n}", owner=f"caller{n}", created_at=now - n) for n in range(30)]
    await store.write([lisbon, *lines, *others])
    await store.write(
        [NewMessage(id=f"o{n}", chat_id=c.id, role="user", content=f"Porto {n}",
                    created_at=now - n) for n, c in enumerate(others)]
    )  # fmt: skip


@pytest.fixture
async def console(tmp_path: Path) -> AsyncIterator[tuple[str, Store]]:
    """`voxkeepctl serve` on a seeded store, as an operator starts it; its URL and the store."""
    url = f"sqlite:///{tmp_path}/voxkeep.db"
    store = await open_store(url)
    await store.migrate()
    await seed(store)
    port = free_port()
    env = {
        **os.environ,
        "VOXKEEP_DB_URL": url,
        "VOXKEEP_CONSOLE_TOKENS": f"read:{READ},admin:{ADMIN}",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "voxkeep.cli.main", "serve", "--port", str(port), env=env,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    healthy: list[bool] = []

    async def probe() -> None:
        async with aiohttp.ClientSession() as http:
            while not healthy:
                try:
                    headers = {"Authorization": f"Bearer {READ}"}
                    async with http.get(f"{base}/api/health", headers=headers) as response:
                        healthy.append(response.status == 200)
                except aiohttp.ClientError:
                    await asyncio.sleep(0.2)

    async with asyncio.timeout(30):
        await probe()
    yield base, store
    process.terminate()  # as an operator's Ctrl-C or a supervisor stops it
    try:
        await asyncio.wait_for(process.wait(), 15)
    finally:
        if process.returncode is None:
            process.kill()
    await store.aclose()
