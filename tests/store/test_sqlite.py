"""What only the SQLite backend has to get right."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from pathlib import Path

import pytest

from tests.conftest import chat, msg
from voxkeep.store import ANY_OWNER, Store, migrations, open_store
from voxkeep.store.base import OwnerScope
from voxkeep.store.records import ChatFilter
from voxkeep.store.sqlite import SqliteStore
from voxkeep.store.sqlite.schema import apply_migration


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


def _unkeyed(path: str) -> list[tuple[str, int]]:
    """Messages whose rowid is not their chat's rowid << 24 | their seq (migration 0006)."""
    with sqlite3.connect(path) as conn:
        return conn.execute(
            "SELECT m.id, m.rowid FROM messages m JOIN chats c ON c.id = m.chat_id"
            " WHERE m.rowid <> (c.rowid << 24 | m.seq)"
        ).fetchall()


async def test_a_store_of_the_previous_schema_is_numbered_by_chat_and_searched_the_same(
    tmp_path: Path,
) -> None:
    """Migration 0006 numbers stored messages by chat, so search answers with chats from its own
    index: interleaved messages of three chats, written by the previous schema's code, are found
    in their own chats afterwards, one written afterwards by that code is moved to its key, and a
    deleted chat leaves no word behind."""
    path = str(tmp_path / "previous.db")
    with sqlite3.connect(path) as conn:  # the schema as the previous release left it
        for migration in migrations.load("sqlite")[:5]:
            apply_migration(conn, migration)
        for n, owner in enumerate(["alice", "alice", "bob"]):
            conn.execute(
                "INSERT INTO chats (id, owner, status, created_at, updated_at)"
                " VALUES (?, ?, 'active', ?, ?)",
                (f"chat_{n}", owner, 100.0 + n, 100.0 + n),
            )
        words = ["lisbon museum", "porto river", "lisbon tram"]
        for seq in range(1, 4):  # one message for each chat in turn: rowids interleave
            for n, said in enumerate(words):
                conn.execute(
                    "INSERT INTO messages (id, chat_id, seq, role, content, created_at)"
                    " VALUES (?, ?, ?, 'user', ?, ?)",
                    (f"m_{n}_{seq}", f"chat_{n}", seq, f"{said} {seq}", 200.0 + seq),
                )
    store = await open_store(f"sqlite:///{path}")
    try:
        assert await store.migrate() == list(range(6, len(migrations.load("sqlite")) + 1))
        assert _unkeyed(path) == []
        assert await store.check() == []

        async def saying(word: str, owner: OwnerScope = ANY_OWNER) -> list[str]:
            page = await store.list_chats(owner=owner, filters=ChatFilter(text=word))
            return [c.id for c in page.chats]

        assert await saying("lisbon") == ["chat_2", "chat_0"]
        assert await saying("lisbon", "alice") == ["chat_0"]
        assert await saying("river") == ["chat_1"]
        assert await saying("lisbon tram") == ["chat_2"]
        hits = await store.search("museum", owner="alice")
        assert [(h.chat_id, h.seq) for h in hits] == [("chat_0", 1), ("chat_0", 2), ("chat_0", 3)]

        with sqlite3.connect(path) as conn:  # the previous release's code, writing on
            conn.execute(
                "INSERT INTO messages (id, chat_id, seq, role, content, created_at)"
                " VALUES ('m_late', 'chat_1', 4, 'user', 'a late zebra', 300.0)"
            )
        await store.write([msg("chat_0", "another zebra")])
        assert _unkeyed(path) == []
        assert await saying("zebra") == [
            "chat_0",
            "chat_1",
        ]  # (the raw insert left its chat as it was)

        await store.delete_chat("chat_0", owner=ANY_OWNER)
        assert await saying("zebra") == ["chat_1"]
        assert await saying("museum") == []
        assert await store.check() == []
    finally:
        await store.aclose()
