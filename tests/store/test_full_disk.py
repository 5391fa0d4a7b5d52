"""A full disk (docs/store.md): with the database's disk full, or the journal's too, the call
goes on; records wait (in memory up to the queue bound, then in the journal when it has room),
one log line says so, nothing committed is damaged, and everything is written once space
returns. On a small tmpfs the test mounts."""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import chat, msg
from voxkeep.store import ANY_OWNER, open_store
from voxkeep.store.journal import Journal
from voxkeep.store.writer import Writer, WriterOptions

LINE = "A sentence the caller said, long enough to need a page of its own now and then. " * 20
OPTIONS = WriterOptions(max_queue=20, retry_initial_s=0.02, retry_max_s=0.2)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB filesystem of the test's own."""
    disk = tmp_path / "small"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)], capture_output=True
    )
    assert mounted.returncode == 0, f"this test mounts a tmpfs (as root): {mounted.stderr!r}"
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=True)


def fill(disk: Path) -> Path:
    """Take every free byte of `disk`; remove the file to give the space back."""
    ballast = disk / "ballast"
    with ballast.open("wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 65536)
        except OSError:
            pass
    assert shutil.disk_usage(disk).free < 65536
    return ballast


def said(caplog: pytest.LogCaptureFixture, event: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.msg == event]


@pytest.mark.parametrize("journal_too", [False, True], ids=["database-disk", "both-disks"])
async def test_a_full_disk_holds_records_back_and_loses_none(
    small_disk: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, journal_too: bool
) -> None:
    url = f"sqlite:///{small_disk}/voxkeep.db"
    journal = (small_disk if journal_too else tmp_path) / "journal"
    store = await open_store(url)
    await store.migrate()
    writer = await Writer.start(await open_store(url), journal, OPTIONS)
    c = chat("alice")
    before = [writer.submit(c), *(writer.submit(msg(c.id, f"before {n}")) for n in range(10))]
    async with asyncio.timeout(10):
        await asyncio.gather(*before)
    ballast = fill(small_disk)

    with caplog.at_level(logging.INFO):
        during = [writer.submit(msg(c.id, f"{n}: {LINE}")) for n in range(120)]  # never blocks
        await asyncio.sleep(1.5)  # the writer keeps trying meanwhile
        assert writer.backlog == 120
        full = said(caplog, "writer.disk_full")
        places = sorted(r.__dict__["place"] for r in full)
        # once each; with both disks full, past the queue's bound everything waits for the
        # journal (what is journaled must not depend on records only in memory)
        assert places == (["journal"] if journal_too else ["database"])
        if not journal_too:  # past the queue's bound, into the journal on the other disk
            async with asyncio.timeout(10):
                await asyncio.gather(*during[OPTIONS.max_queue :])

        ballast.unlink()  # space returns
        async with asyncio.timeout(30):
            await writer.flush()
            await asyncio.gather(*during)
        assert said(caplog, "writer.disk_space_back")
    await writer.aclose()

    stored = (await store.messages(c.id, owner=ANY_OWNER)).messages
    assert [m.seq for m in stored] == list(range(1, 131))  # each once, in order
    assert [m.content for m in stored[:10]] == [f"before {n}" for n in range(10)]
    assert [m.content.split(":")[0] for m in stored[10:] if m.content] == [
        str(n) for n in range(120)
    ]
    assert await store.check() == []  # nothing committed was damaged
    await store.aclose()


def test_a_batch_the_journal_s_disk_takes_only_part_of_leaves_no_torn_line(
    small_disk: Path,
) -> None:
    """The disk has room for part of a batch: the append fails whole (the writer keeps the
    records and tries again), the lines before it stay readable, and the retried batch reads
    back line for line once space returns."""
    journal = Journal.open(small_disk / "journal")
    first = [json.dumps({"n": n, "text": LINE[:200]}).encode() for n in range(5)]
    journal.append(first)
    ballast = fill(small_disk)
    with ballast.open("r+b") as f:  # give back room for a few lines, not for the batch
        f.truncate(ballast.stat().st_size - 8192)
    batch = [json.dumps({"n": n, "text": LINE[:200]}).encode() for n in range(5, 105)]

    with pytest.raises(OSError) as full:
        journal.append(batch)
    assert full.value.errno == errno.ENOSPC
    assert journal.path.read_bytes().endswith(b"\n")
    assert journal.read(1000)[0] == first

    ballast.unlink()
    journal.append(batch)
    assert journal.read(1000)[0] == first + batch
    journal.close(remove=False)
