"""Rolling upgrades (docs/store.md, upgrades): a migration records the oldest code that can run on
the schema it leaves. The previous release runs on this release's schema; this code keeps running
on the schema of the next release while that only expands, refuses a schema that contracted past
it in one line naming both versions, and the next release's code refuses this schema until
`voxkeepctl db migrate` has run."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import chat, msg
from voxkeep.core.errors import SchemaError
from voxkeep.core.settings import Settings
from voxkeep.store import ANY_OWNER, migrations, open_store
from voxkeep.worker.main import check_schema

ROOT = Path(__file__).resolve().parents[2]
VOXKEEPCTL = [sys.executable, "-m", "voxkeep.cli.main"]
LATEST = len(migrations.load("sqlite"))
NEXT = LATEST + 1
# what the next release might add: a column this code never names (expand), or a table it
# needs dropped (contract)
EXPAND = "ALTER TABLE chats ADD COLUMN locale TEXT;\n"
CONTRACT = "DROP INDEX chats_updated;\n"


def next_release(tmp_path: Path, sql: str, oldest_code: int) -> Path:
    """This code, plus one more migration for each backend: the next release as it ships."""
    folder = tmp_path / f"release-{NEXT}"
    shutil.copytree(
        ROOT / "voxkeep", folder / "voxkeep", ignore=shutil.ignore_patterns("__pycache__")
    )
    for backend in ("sqlite", "postgres"):
        migration = folder / "voxkeep" / "store" / "migrations" / backend / f"{NEXT:04d}_next.sql"
        migration.write_text(f"-- the next release\n-- oldest code: {oldest_code}\n{sql}")
    return folder


def previous_release(tmp_path: Path) -> Path:
    """This code without its newest migration: the release before it, as it shipped."""
    folder = tmp_path / f"release-{LATEST - 1}"
    shutil.copytree(
        ROOT / "voxkeep", folder / "voxkeep", ignore=shutil.ignore_patterns("__pycache__")
    )
    for backend in ("sqlite", "postgres"):
        newest = migrations.load(backend)[-1]
        (folder / "voxkeep/store/migrations" / backend / f"{LATEST:04d}_{newest.name}.sql").unlink()
    return folder


WRITE = """
import asyncio, sys, time
from voxkeep.store import open_store
from voxkeep.store.records import NewChat, NewMessage
async def main():
    store = await open_store(sys.argv[1])
    await store.write([NewChat(id="chat_prev", owner="alice", created_at=time.time()),
                       NewMessage(id="m_prev", chat_id="chat_prev", role="user",
                                  content="Written by the previous release.",
                                  created_at=time.time())])
    print((await store.schema_status()).current)
    await store.aclose()
asyncio.run(main())
"""


def run(code: Path, url: str, *argv: str) -> subprocess.CompletedProcess[str]:
    """`voxkeepctl --db URL ARGV` of the release in `code` (ROOT: this one)."""
    env = {**os.environ, "PYTHONPATH": str(code), "VOXKEEP_LOG_LEVEL": "WARNING"}
    return subprocess.run(
        [*VOXKEEPCTL, "--db", url, *argv], cwd=code, env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip


async def test_this_code_runs_on_the_next_releases_expanded_schema(
    sqlite_url: str, tmp_path: Path
) -> None:
    db_url = sqlite_url  # one backend: the rule is shared; the previous release runs on both
    store = await open_store(db_url)
    await store.migrate()
    c = chat("alice")
    await store.write([c, msg(c.id, "Before the upgrade.")])
    released = next_release(tmp_path, EXPAND, oldest_code=LATEST)
    upgraded = run(released, db_url, "db", "migrate")
    assert upgraded.returncode == 0, upgraded.stderr
    assert upgraded.stdout == f"applied {NEXT}; schema is at version {NEXT}\n"

    # this code, on the next release's schema: calls still write and read
    status = await store.schema_status()
    assert (status.current, status.latest, status.oldest_code) == (NEXT, LATEST, LATEST)
    await store.write([msg(c.id, "After the upgrade.")])
    stored = await store.messages(c.id, owner=ANY_OWNER)
    assert [m.content for m in stored.messages] == ["Before the upgrade.", "After the upgrade."]
    await check_schema(Settings(_env_file=None, db_url=db_url))  # the worker starts
    listed = run(ROOT, db_url, "--json", "chats", "list")
    assert listed.returncode == 0, listed.stderr
    assert run(ROOT, db_url, "db", "migrate").stdout == (
        f"nothing to apply; schema is at version {NEXT}\n"
    )
    assert run(ROOT, db_url, "db", "check").stdout == "ok\n"
    await store.aclose()


async def test_the_previous_release_runs_on_this_releases_schema(
    db_url: str, tmp_path: Path
) -> None:
    store = await open_store(db_url)
    await store.migrate()  # this release's schema, the webhook outbox and its triggers included
    previous = previous_release(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(previous)}
    wrote = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-c", WRITE, db_url], cwd=previous, env=env,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert wrote.returncode == 0, wrote.stderr
    assert wrote.stdout.strip() == str(LATEST)  # it ran on the newer schema
    listed = run(previous, db_url, "--json", "chats", "list")
    assert listed.returncode == 0, listed.stderr
    assert "chat_prev" in listed.stdout
    stored = await store.messages("chat_prev", owner="alice")
    assert [m.content for m in stored.messages] == ["Written by the previous release."]
    events = await store.take_events(now=time.time() + 60, lease_s=60, limit=10)
    assert [e.type for e in events] == ["chat.started"]  # this release's triggers saw it
    await store.aclose()


async def test_a_schema_contracted_past_this_code_is_refused_in_one_line(
    sqlite_url: str, tmp_path: Path
) -> None:
    db_url = sqlite_url  # one backend: the rule is shared; the previous release runs on both
    store = await open_store(db_url)
    await store.migrate()
    released = next_release(tmp_path, CONTRACT, oldest_code=NEXT)
    assert run(released, db_url, "db", "migrate").returncode == 0
    refusal = (
        f"the database is at schema version {NEXT}, which needs code of schema {NEXT} or "
        f"newer; this {{}} is of schema {LATEST}: upgrade it"
    )
    listed = run(ROOT, db_url, "chats", "list")
    assert (listed.returncode, listed.stdout) == (1, "")
    assert listed.stderr == f"voxkeepctl: {refusal.format('voxkeepctl')}\n"
    with pytest.raises(SchemaError) as refused:
        await check_schema(Settings(_env_file=None, db_url=db_url))
    assert str(refused.value) == refusal.format("worker")
    with pytest.raises(SchemaError):
        await store.migrate()  # nor does this code's migrate pretend all is well
    await store.aclose()


async def test_the_next_release_waits_for_the_migration(sqlite_url: str, tmp_path: Path) -> None:
    db_url = sqlite_url  # one backend: the rule is shared; the previous release runs on both
    store = await open_store(db_url)
    await store.migrate()
    await store.aclose()
    released = next_release(tmp_path, EXPAND, oldest_code=LATEST)
    early = run(released, db_url, "chats", "list")
    assert early.returncode == 1
    assert early.stderr == (
        f"voxkeepctl: the database is at schema version {LATEST}, this voxkeepctl needs {NEXT}: "
        "run `voxkeepctl db migrate`\n"
    )
    assert run(released, db_url, "db", "migrate").returncode == 0
    assert run(released, db_url, "chats", "list").returncode == 0


def test_every_migration_from_the_third_says_its_oldest_code() -> None:
    for backend in ("sqlite", "postgres"):
        shipped = migrations.load(backend)
        assert [m.oldest_code for m in shipped][: migrations.RECORDED_SINCE - 1] == [1, 1]
        assert all(m.oldest_code <= m.version for m in shipped)
        assert shipped[-1].oldest_code <= LATEST  # this release runs on its own schema
