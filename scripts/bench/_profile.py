"""Where a worker's CPU goes: py-spy samples the worker and every job process under it for a
window, and the top frames are printed as a table (docs/benchmarks.md)."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sys
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

RATE = 20
"""Samples per second per process: enough over a 30 s window, light on a full machine."""
WAITING = (
    (".select", "/selectors.py"), ("Condition.wait", "/threading.py"),
    ("_worker", "/concurrent/futures/thread.py"), ("_wait_for_tstate_lock", "/threading.py"),
)  # fmt: skip
"""(function, file) of frames where a thread waits (py-spy cannot always tell such a thread
idle): left out of the tops."""


@dataclass
class Profile:
    """Collapsed stacks: each a tuple of frames, outermost first, with its sample count."""

    stacks: Counter[tuple[str, ...]] = field(default_factory=Counter)
    failed: str | None = None

    @property
    def samples(self) -> int:
        return sum(self.stacks.values())

    @property
    def busy(self) -> int:
        """Samples of threads at work (not waiting in a selector, a lock or a queue)."""
        return sum(c for s, c in self.stacks.items() if not waiting(s[-1]))

    def top_self(self, n: int) -> list[tuple[str, float]]:
        """The frames most often on top of a working thread's stack, with their share of the
        busy samples."""
        leaves: Counter[str] = Counter()
        for stack, count in self.stacks.items():
            if not waiting(stack[-1]):
                leaves[stack[-1]] += count
        total = max(self.busy, 1)
        return [(frame, count / total) for frame, count in leaves.most_common(n)]

    def share_under(self, folder: str) -> float:
        """The share of the busy samples with code from `folder` (a path part) on the stack."""
        inside = sum(
            c for s, c in self.stacks.items()
            if not waiting(s[-1]) and any(folder in _file(f) for f in s)
        )  # fmt: skip
        return inside / max(self.busy, 1)


def waiting(frame: str) -> bool:
    name, _, where = frame.rpartition(" (")
    path = where.rpartition(":")[0]
    return any(name.endswith(fn) and path.endswith(file) for fn, file in WAITING)


def _file(frame: str) -> str:
    """The file part of `function (file:line)` (a function's text may hold anything)."""
    return frame.rpartition(" (")[2]


def py_spy() -> str | None:
    here = Path(sys.executable).with_name("py-spy")
    return str(here) if here.exists() else shutil.which("py-spy")


@contextlib.asynccontextmanager
async def profiled(pid: int, seconds: float, into: Path) -> AsyncIterator[Profile]:
    """Sample `pid` and its children for `seconds` while the body runs; the profile is read
    when the body ends. A profiler that cannot run is recorded as the profile's failure."""
    profile = Profile()
    tool = py_spy()
    if tool is None:
        profile.failed = "py-spy is not installed (scripts/bootstrap installs it with dev)"
        yield profile
        return
    proc = await asyncio.create_subprocess_exec(
        tool, "record", "--pid", str(pid), "--subprocesses", "--nonblocking",
        "--rate", str(RATE), "--duration", str(max(1, round(seconds))), "--format", "raw",
        "--full-filenames",
        "--output", str(into),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        yield profile
    finally:
        try:
            async with asyncio.timeout(2 * seconds + 30):  # (py-spy lags on a full machine)
                _, err = await proc.communicate()
        except TimeoutError:
            proc.kill()
            err = b"timed out"
        text = await asyncio.to_thread(lambda: into.read_text() if into.exists() else None)
        if proc.returncode != 0 or text is None:
            profile.failed = f"py-spy: {err.decode(errors='replace').strip()[-120:]}"
        else:
            profile.stacks = read_raw(text)


def read_raw(text: str) -> Counter[tuple[str, ...]]:
    """py-spy's raw (collapsed) format: `frame;frame;... count` per line."""
    stacks: Counter[tuple[str, ...]] = Counter()
    for line in text.splitlines():
        body, _, count = line.rpartition(" ")
        if body and count.isdigit():
            stacks[tuple(body.split(";"))] += int(count)
    return stacks


def short(frame: str) -> str:
    """`function (/long/path/package/module.py:12)` as `function (package/module.py:12)`."""
    name, _, where = frame.rpartition(" (")
    if not name:
        return frame[:60]
    path = where.rstrip(")")
    return f"{name[:40]} ({'/'.join(Path(path).parts[-2:])})"
