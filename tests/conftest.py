from __future__ import annotations

import asyncio
import itertools
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from agent.store import Store, open_store
from agent.store.records import NewChat, NewMessage, Role

_ids = itertools.count(1)
HERE = Path(__file__).parent
Holder = asyncio.subprocess.Process


@pytest.fixture(params=["sqlite"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """One URL per backend; the store contract suite runs against each (PostgreSQL: issue 7)."""
    assert request.param == "sqlite"
    return f"sqlite:///{tmp_path}/agent.db"


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[Store]:
    s = await open_store(db_url)
    await s.migrate()
    yield s
    await s.aclose()


def chat(owner: str = "alice", chat_id: str | None = None, at: float | None = None) -> NewChat:
    return NewChat(
        id=chat_id or f"chat_{next(_ids):06d}",
        owner=owner,
        agent_name="assistant",
        created_at=time.time() if at is None else at,
    )


def msg(
    chat_id: str,
    content: str | None = "hello",
    role: Role = "user",
    msg_id: str | None = None,
    at: float | None = None,
) -> NewMessage:
    return NewMessage(
        id=msg_id or f"item_{next(_ids):08d}",
        chat_id=chat_id,
        role=role,
        content=content,
        created_at=time.time() if at is None else at,
    )


@pytest.fixture(autouse=True, scope="session")
def _structured_logs() -> None:
    """Logs flow through the standard library as in production, so tests can read them."""
    from agent.logs import configure_logging

    configure_logging("DEBUG")


@pytest.fixture
async def lock(db_url: str) -> AsyncIterator[Callable[[], Awaitable[Holder]]]:
    """Makes another process take the database's write lock and hold it until `release`."""
    holders: list[Holder] = []

    async def take() -> Holder:
        holder = await asyncio.create_subprocess_exec(
            sys.executable,
            str(HERE / "store" / "lock_holder.py"),
            db_url.removeprefix("sqlite:///"),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        holders.append(holder)
        assert holder.stdout is not None
        async with asyncio.timeout(10):
            assert await holder.stdout.readline() == b"locked\n"
        return holder

    yield take
    for holder in holders:
        if holder.returncode is None:
            holder.kill()
            await holder.wait()


async def release(holder: Holder) -> None:
    assert holder.stdin is not None and holder.stdout is not None
    holder.stdin.write(b"go\n")
    async with asyncio.timeout(15):
        assert await holder.stdout.readline() == b"released\n"
        await holder.wait()
