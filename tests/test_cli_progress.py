"""`voxkeepctl`'s progress bars (docs/operations.md): a long prune, export or backup shows one on a
terminal, and stays quiet under --json or when its output is piped."""

from __future__ import annotations

import asyncio
import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from tests.conftest import chat, msg
from voxkeep.store import open_store

VOXKEEPCTL = [sys.executable, "-m", "voxkeep.cli.main"]


@pytest.fixture
def long_chat(tmp_path: Path) -> tuple[str, str]:
    """A store with one 2,500-message chat and 40 old ended chats."""
    url = f"sqlite:///{tmp_path}/voxkeep.db"

    async def seed() -> str:
        store = await open_store(url)
        await store.migrate()
        c = chat("alice")
        lines = [msg(c.id, f"line {n} of a long call", at=time.time()) for n in range(2500)]
        await store.write([c, *lines])
        old = time.time() - 200 * 86_400
        for n in range(40):
            o = chat("bob", at=old)
            await store.write([o, msg(o.id, f"old {n}", at=old)])
            await store.close_chat(o.id, status="closed", end_reason="hangup", at=old)
        await store.aclose()
        return c.id

    return url, asyncio.run(seed())


def on_terminal(*argv: str) -> tuple[int, bytes, bytes]:
    """Run voxkeepctl with stderr on a pseudo-terminal (stdout piped): exit code, stdout, and
    what the terminal showed."""
    main, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))  # 100x30
    try:
        done = subprocess.run(
            [*VOXKEEPCTL, *argv], stdout=subprocess.PIPE, stderr=terminal, timeout=120
        )
        os.close(terminal)
        shown = b""
        while True:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # the terminal's other end is closed: all read
                break
            if not chunk:
                break
            shown += chunk
        return done.returncode, done.stdout, shown
    finally:
        os.close(main)


def piped(*argv: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*VOXKEEPCTL, *argv], capture_output=True, timeout=120)


def test_export_shows_its_progress_on_a_terminal_only(
    long_chat: tuple[str, str], tmp_path: Path
) -> None:
    url, chat_id = long_chat
    out = str(tmp_path / "chat.jsonl")
    code, _, shown = on_terminal("--db", url, "chats", "export", chat_id, "--format", "jsonl",
                                 "-o", out)  # fmt: skip
    assert code == 0 and b"export:" in shown and b"/2500 " in shown  # a bar out of 2,500
    assert len(Path(out).read_text().splitlines()) == 2501  # the chat, then every message
    quiet = piped("--db", url, "chats", "export", chat_id, "--format", "jsonl")
    assert quiet.returncode == 0 and quiet.stderr == b""
    assert len(quiet.stdout.splitlines()) == 2501
    as_json = ["--db", url, "--json", "chats", "export", chat_id, "--format", "json"]
    code, printed, shown = on_terminal(*as_json, "-o", str(tmp_path / "c.json"))
    assert code == 0 and shown == b"" and b'"messages": 2500' in printed


def test_prune_and_backup_show_their_progress_on_a_terminal_only(
    long_chat: tuple[str, str], tmp_path: Path
) -> None:
    url, _ = long_chat
    code, printed, shown = on_terminal("--db", url, "chats", "prune", "--older-than", "90d")
    assert code == 0 and b"prune:" in shown
    assert printed.startswith(b"deleted 40 chats")
    code, printed, shown = on_terminal("--db", url, "db", "backup", str(tmp_path / "a.db"))
    assert code == 0 and b"backup:" in shown and printed.startswith(b"wrote ")
    quiet = piped("--db", url, "db", "backup", str(tmp_path / "b.db"))
    assert quiet.returncode == 0 and quiet.stderr == b""
    code, printed, shown = on_terminal("--db", url, "--json", "db", "backup",
                                       str(tmp_path / "c.db"))  # fmt: skip
    assert code == 0 and shown == b"" and b'"bytes"' in printed
