from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, Protocol, TypeVar

import asyncpg
import pytest

from tests.pg import PgServer
from voxkeep.core.ids import new_call_id
from voxkeep.sim.openai_server import LocalService
from voxkeep.store import Store, open_store
from voxkeep.store.records import NewCall, NewChat, NewMessage, Role
from voxkeep.store.writer import Writer

_ids = itertools.count(1)
HERE = Path(__file__).parent
Holder = asyncio.subprocess.Process
S = TypeVar("S", bound=LocalService)


class Serve(Protocol):
    def __call__(self, service: S) -> Awaitable[S]: ...


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Start a local stand-in for a provider, on loopback, for this test."""
    started: list[LocalService] = []

    async def start(service: S) -> S:
        await service.start()
        started.append(service)
        return service

    yield start
    for service in started:
        await service.aclose()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """One real PostgreSQL server for the whole run; each test gets a database of its own."""
    server = PgServer()
    server.start()
    yield server
    server.remove()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/voxkeep.db"


@pytest.fixture(params=["sqlite", "postgres"])
async def db_url(request: pytest.FixtureRequest, sqlite_url: str) -> AsyncIterator[str]:
    """One URL per backend: the store contract suite runs against each."""
    if request.param == "sqlite":
        yield sqlite_url
        return
    yield await new_database(request.getfixturevalue("pg_server"))


@pytest.fixture
async def pg_store(pg_server: PgServer) -> AsyncIterator[tuple[str, Store]]:
    """A PostgreSQL database of the test's own, migrated: its URL (for workers and other
    processes) and the test's own view of it."""
    url = await new_database(pg_server)
    store = await open_store(url)
    await store.migrate()
    yield url, store
    await store.aclose()


async def new_database(server: PgServer) -> str:
    """The URL of a new, empty database on `server`."""
    name = f"test_{next(_ids)}_{os.getpid()}"
    admin = await asyncpg.connect(f"{server.url}/postgres")
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return f"{server.url}/{name}"


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


def call(chat_id: str, at: float | None = None, call_id: str | None = None) -> NewCall:
    return NewCall(
        id=call_id or new_call_id(), chat_id=chat_id, room="demo", participant="alice",
        started_at=time.time() if at is None else at,
    )  # fmt: skip


def msg(
    chat_id: str,
    content: str | None = "hello",
    role: Role = "user",
    msg_id: str | None = None,
    at: float | None = None,
    prosody: dict[str, Any] | None = None,
) -> NewMessage:
    return NewMessage(
        id=msg_id or f"item_{next(_ids):08d}",
        chat_id=chat_id,
        role=role,
        content=content,
        created_at=time.time() if at is None else at,
        prosody=prosody,
    )


@pytest.fixture(autouse=True, scope="session")
def _structured_logs() -> None:
    """Logs flow through the standard library as in production, so tests can read them."""
    from voxkeep.core.logs import configure_logging

    configure_logging("DEBUG")


@pytest.fixture
async def lock(sqlite_url: str) -> AsyncIterator[Callable[[], Awaitable[Holder]]]:
    """Makes another process take the SQLite database's write lock and hold it until `release`."""
    holders: list[Holder] = []

    async def take() -> Holder:
        holder = await asyncio.create_subprocess_exec(
            sys.executable,
            str(HERE / "store" / "lock_holder.py"),
            sqlite_url.removeprefix("sqlite:///"),
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


class Outage:
    """The store cannot be written for a while: SQLite held locked by another process, or the
    PostgreSQL server stopped as by a crash. `readable`: whether reads still work meanwhile."""

    def __init__(self, holder: Holder | None, server: PgServer | None) -> None:
        self._holder, self._server = holder, server
        self.readable = server is None

    async def end(self) -> None:
        if self._holder is not None:
            await release(self._holder)
        if self._server is not None:
            await asyncio.to_thread(self._server.start)


@pytest.fixture
async def outage(
    request: pytest.FixtureRequest, db_url: str, lock: Callable[[], Awaitable[Holder]]
) -> AsyncIterator[Callable[[], Awaitable[Outage]]]:
    started: list[Outage] = []

    async def begin() -> Outage:
        if db_url.startswith("sqlite"):
            started.append(Outage(await lock(), None))
        else:
            server: PgServer = request.getfixturevalue("pg_server")
            await asyncio.to_thread(server.stop, "immediate")
            started.append(Outage(None, server))
        return started[-1]

    yield begin
    for o in started:
        if o._server is not None:
            with contextlib.suppress(subprocess.CalledProcessError):
                await asyncio.to_thread(o._server.start)  # already up again: a no-op error


async def abandon(writer: Writer) -> None:
    """What SIGKILL leaves of a writer: the queue in memory gone, the journal file as it is on
    disk and no longer locked, the store connection dropped."""
    writer._loop_task.cancel()
    for task in [writer._loop_task, *writer._tasks]:
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
    os.close(writer._journal._fd)
    writer._io.shutdown(wait=True)
    await writer.store.aclose()


# In parallel (scripts/test runs the suite on several workers) the run ends when its slowest
# worker does. The tests that need no LiveKit server go first, while scripts/test may still be
# building it, and the image's tests last, while it builds the image; in each part the tests
# that declare a longer hang guard, the longest by far, start first, and the rest follow in
# file order.


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "livekit_server" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.livekit)
    items.sort(
        key=lambda item: (
            item.get_closest_marker("image") is not None,
            item.get_closest_marker("livekit") is not None,
            item.get_closest_marker("timeout") is None,
        )
    )
