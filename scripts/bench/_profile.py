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

RATE = 50
"""Samples per second per process: enough for a few minutes' window, light on the machine."""


@dataclass
class Profile:
    """Collapsed stacks: each a tuple of frames, outermost first, with its sample count."""

    stacks: Counter[tuple[str, ...]] = field(default_factory=Counter)
    failed: str | None = None

    @property
    def samples(self) -> int:
        return sum(self.stacks.values())

    def top_self(self, n: int) -> list[tuple[str, float]]:
        """The frames most often on top of the stack, with their share of the samples."""
        leaves: Counter[str] = Counter()
        for stack, count in self.stacks.items():
            leaves[stack[-1]] += count
        total = max(self.samples, 1)
        return [(frame, count / total) for frame, count in leaves.most_common(n)]

    def share_under(self, marker: str) -> float:
        """The share of the samples with a frame whose text holds `marker` on the stack."""
        inside = sum(c for s, c in self.stacks.items() if any(marker in f for f in s))
        return inside / max(self.samples, 1)


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
        "--output", str(into),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        yield profile
    finally:
        try:
            async with asyncio.timeout(seconds + 30):
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
    name, _, where = frame.partition(" (")
    if not where:
        return frame
    path = where.rstrip(")")
    return f"{name} ({'/'.join(Path(path).parts[-2:])})"
