"""What only the SQLite backend has to get right."""

from __future__ import annotations

import asyncio
import os

import pytest

from tests.conftest import chat, msg
from voxkeep.store import Store
from voxkeep.store.sqlite import SqliteStore


@pytest.fixture
def db_url(sqlite_url: str) -> str:
    """This module's `store` is SQLite's only (the shared fixture, on one backend)."""
    return sqlite_url


async def test_the_wal_stays_bounded_under_steady_writes(store: Store) -> None:
    """Checkpoints run beside the writer (not inside commits), yet the WAL file must not grow
    without bound while writes never pause: ~40 MB written, the WAL stays under 24 MB."""
    assert isinstance(store, SqliteStore)
    c = chat()
    await store.write([c])
    wal = f"{store.path}-wal"
    largest = 0
    for batch in range(150):
        await store.write([msg(c.id, f"{batch} " + "words " * 80) for _ in range(200)])
        await asyncio.sleep(0.005)  # a live event loop lets the checkpoint task run
        largest = max(largest, await asyncio.to_thread(os.path.getsize, wal))
    assert largest < 24 * 2**20, largest
    assert await store.check() == []
