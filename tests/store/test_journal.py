"""The journal's files (docs/store.md): one per live writer, locked for its whole life; a dead
writer's file is adopted by exactly one writer, and a live writer's file by none."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from voxkeep.store.journal import Journal

LIVE_WRITERS = 6


@pytest.fixture
def second_writer_at_first_lock(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[list[Journal]]:
    """A second writer opens the journal folder at the worst moment for the first: just before
    the first takes its lock. The second writer's journal is in the list once it is open."""
    real_flock = fcntl.flock
    opened: list[Journal] = []
    first = True

    def flock(fd: int, operation: int) -> None:
        nonlocal first
        if operation == fcntl.LOCK_EX and first:
            first = False
            opened.append(Journal.open(tmp_path))  # (it takes its own lock in there)
        real_flock(fd, operation)

    monkeypatch.setattr(fcntl, "flock", flock)
    yield opened
    for journal in opened:
        journal.close(remove=True)


def dead_writers_journal(folder: Path, lines: list[bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "journal-1-deadbeef.jsonl"
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def test_a_writer_that_starts_while_another_opens_leaves_the_other_s_file_alone(
    tmp_path: Path, second_writer_at_first_lock: list[Journal]
) -> None:
    first = Journal.open(tmp_path)
    [second] = second_writer_at_first_lock
    first.append([b'{"n":1}'])
    assert first.path.exists() and first.path != second.path
    assert first.read(10)[0] == [b'{"n":1}']
    assert second.read(10)[0] == []
    first.close(remove=True)


def test_a_dead_writer_s_lines_go_to_exactly_one_of_two_writers_starting_together(
    tmp_path: Path, second_writer_at_first_lock: list[Journal]
) -> None:
    dead = dead_writers_journal(tmp_path, [b'{"n":1}', b'{"n":2}'])
    first = Journal.open(tmp_path)
    [second] = second_writer_at_first_lock
    lines = first.read(10)[0] + second.read(10)[0]
    assert lines == [b'{"n":1}', b'{"n":2}']
    assert not dead.exists()
    assert first.path.exists() and second.path.exists()
    first.close(remove=False)
    reopened = Journal.open(tmp_path)  # (the first's file is a dead writer's now)
    assert reopened.read(10)[0] + second.read(10)[0] == lines
    reopened.close(remove=True)


def test_a_journal_rewritten_at_close_is_never_adopted_while_its_writer_lives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = Journal.open(tmp_path)
    journal.append([b'{"n":2}'])
    real_replace = os.replace
    adopted: list[list[bytes]] = []

    def replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        real_replace(src, dst)
        other = Journal.open(tmp_path)  # starts right after the rename, before the close
        adopted.append(other.read(10)[0])
        other.close(remove=True)

    monkeypatch.setattr(os, "replace", replace)
    journal.prepend([b'{"n":1}'])
    monkeypatch.undo()
    assert adopted == [[]]
    assert journal.read(10)[0] == [b'{"n":1}', b'{"n":2}']
    journal.close(remove=False)
    after = Journal.open(tmp_path)
    assert after.read(10)[0] == [b'{"n":1}', b'{"n":2}']
    after.close(remove=True)


CHILD = """
import sys, time
from voxkeep.store.journal import Journal
folder, me, start = sys.argv[1], sys.argv[2], float(sys.argv[3])
while time.time() < start:
    pass
journal = Journal.open(folder)
journal.append([b'{"writer":"%s"}' % me.encode()])
lines, _ = journal.read(1000)
print(len(lines), flush=True)
sys.stdin.read()  # alive, holding its journal, until told to go
print("\\n".join(line.decode() for line in journal.read(1000)[0]), flush=True)
"""


def test_writers_starting_at_the_same_moment_each_keep_their_own_lines(tmp_path: Path) -> None:
    """Real processes, started to open their journals at one instant, with a dead writer's
    journal waiting: every live writer reads back its own line, and the dead writer's lines are
    in exactly one of them."""
    dead = dead_writers_journal(tmp_path, [b'{"writer":"dead"}'])
    start = str(time.time() + 2.0)
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(tmp_path), f"w{i}", start],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for i in range(LIVE_WRITERS)
    ]
    held = []
    for child in children:
        assert child.stdout is not None
        held.append(int(child.stdout.readline()))
    outputs = [child.communicate("", timeout=30)[0] for child in children]
    found = [json.loads(line)["writer"] for out in outputs for line in out.split("\n") if line]
    assert sorted(found) == sorted(["dead", *(f"w{i}" for i in range(LIVE_WRITERS))])
    assert sorted(held) in ([1] * LIVE_WRITERS, sorted([1] * (LIVE_WRITERS - 1) + [2]))
    assert not dead.exists()
