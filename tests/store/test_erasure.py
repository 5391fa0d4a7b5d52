"""Retention and erasure (docs/operations.md): a person's chats go at once and leave no trace in
search, in the database's files or in a backup; ended chats past the retention period go with
the sweeper, and active ones stay."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import chat, msg, new_database
from tests.pg import PgServer
from voxkeep.jobs.sweeper import DAY_S, sweep
from voxkeep.store import ANY_OWNER, Store, open_store
from voxkeep.store.sqlite import path_from_url

WORD = "Zanzibarquux"  # in nothing but what alice said


async def alice_and_bob(store: Store) -> tuple[list[str], str]:
    alices = []
    for n in range(3):
        c = chat("alice")
        await store.write([c, msg(c.id, f"My {WORD} plan number {n}."),
                           msg(c.id, f"Noted, {WORD} {n}.", role="assistant")])  # fmt: skip
        alices.append(c.id)
    b = chat("bob")
    await store.write([b, msg(b.id, "Bob's own words.")])
    return alices, b.id


def traces(path: Path) -> list[str]:
    """The files of a SQLite store that still hold the word."""
    found = []
    for file in (path, path.with_name(path.name + "-wal")):
        if file.exists() and WORD.encode() in file.read_bytes():
            found.append(file.name)
    return found


async def test_erasing_a_person_deletes_their_chats_only_and_announces_each(store: Store) -> None:
    alices, bobs = await alice_and_bob(store)
    keep = chat("alice")
    await store.write([keep])  # the empty chat a call goes on in after the erasure
    assert len(await store.search(WORD, owner=ANY_OWNER)) == 6
    assert await store.erase_owner("alice", keep=keep.id) == 3
    assert [c.id for c in (await store.list_chats(owner="alice")).chats] == [keep.id]
    assert await store.search(WORD, owner=ANY_OWNER) == []
    assert (await store.get_chat(bobs, owner="bob")).message_count == 1
    events = await store.take_events(now=time.time() + 60, lease_s=60, limit=100)
    deleted = sorted(e.data["chat_id"] for e in events if e.type == "chat.deleted")
    assert deleted == sorted(alices)


async def test_an_erased_person_leaves_no_trace_in_the_sqlite_files_or_a_backup(
    sqlite_url: str, tmp_path: Path
) -> None:
    store = await open_store(sqlite_url)
    await store.migrate()
    await alice_and_bob(store)
    path = Path(path_from_url(sqlite_url))
    assert traces(path)  # the word is there to be found before
    for _ in range(5):  # the caller asks again and again: each erasure owes the same purge
        await store.erase_owner("alice")
    await store.backup(str(tmp_path / "copy.db"))  # a backup never waits for it
    assert WORD.encode() not in (tmp_path / "copy.db").read_bytes()
    assert (await sweep(store, stale_after_s=60)).purges == 1  # the sweeper's next run
    assert traces(path) == []
    assert (await sweep(store, stale_after_s=60)).purges == 0  # owed once, done once
    await store.aclose()


async def test_a_backup_carries_nothing_of_a_chat_deleted_before_it(
    sqlite_url: str, tmp_path: Path
) -> None:
    store = await open_store(sqlite_url)
    await store.migrate()
    alices, _ = await alice_and_bob(store)
    for chat_id in alices:
        await store.delete_chat(chat_id, owner="alice")
    await store.backup(str(tmp_path / "copy.db"))
    assert WORD.encode() not in (tmp_path / "copy.db").read_bytes()
    await store.aclose()


async def test_a_postgres_backup_after_an_erasure_holds_nothing_of_it(
    pg_store: tuple[str, Store], tmp_path: Path
) -> None:
    url, store = pg_store
    await alice_and_bob(store)
    await store.erase_owner("alice")
    await store.backup(str(tmp_path / "copy.dump"))
    restore = shutil.which("pg_restore")
    assert restore is not None
    restored = await asyncio.to_thread(
        subprocess.run, [restore, "--file=-", str(tmp_path / "copy.dump")], capture_output=True,
        check=True, timeout=60,
    )  # fmt: skip
    sql = restored.stdout
    assert b"Bob's own words." in sql and WORD.encode() not in sql


async def test_retention_deletes_ended_chats_past_it_and_keeps_the_rest(store: Store) -> None:
    now = time.time()
    old, recent, active = chat("alice", at=now - 40 * DAY_S), chat("alice"), chat("bob")
    await store.write([old, msg(old.id, "Long ago.", at=now - 40 * DAY_S)])
    await store.close_chat(old.id, status="closed", end_reason="hangup", at=now - 40 * DAY_S)
    await store.write([recent, msg(recent.id, "Yesterday.")])
    await store.close_chat(recent.id, status="closed", end_reason="hangup", at=now)
    await store.write([active, msg(active.id, "Still talking.")])
    swept = await sweep(store, stale_after_s=1e9, retention_days=30, now=now)
    assert swept.retention_deleted == 1
    left = {c.id for c in (await store.list_chats(owner=ANY_OWNER)).chats}
    assert left == {recent.id, active.id}
    assert (await sweep(store, stale_after_s=1e9, now=now + 100 * DAY_S)).retention_deleted == 0


async def test_pg_dump_gets_the_password_in_its_environment_not_on_its_command_line(
    pg_server: PgServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A program's command line is visible to everyone on the machine (`ps`)."""
    url = await new_database(pg_server)
    with_password = url.replace("://agent@", "://agent:s3cr%40t@")  # (trust auth ignores it)
    assert with_password != url
    shim = tmp_path / "bin" / "pg_dump"
    shim.parent.mkdir()
    shim.write_text(
        f'#!/bin/sh\necho "$@" > {tmp_path}/argv\necho "$PGPASSWORD" > {tmp_path}/password\n'
        f'exec {pg_server.bin / "pg_dump"} "$@"\n'
    )
    shim.chmod(0o755)
    monkeypatch.setenv("PATH", f"{shim.parent}:{os.environ['PATH']}")
    store = await open_store(with_password)
    try:
        await store.backup(str(tmp_path / "copy.dump"))
    finally:
        await store.aclose()
    assert (tmp_path / "copy.dump").stat().st_size > 0
    argv = (tmp_path / "argv").read_text()
    assert "s3cr" not in argv and "--dbname=postgresql://agent@127.0.0.1:" in argv
    assert (tmp_path / "password").read_text().strip() == "s3cr@t"
