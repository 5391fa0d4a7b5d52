"""Work done once per test run however many xdist workers need it (building the wheel and its
environments, building the image): the first worker to ask does it while the others wait on a
file lock, then all share the result. (xdist's `loadgroup` would keep such tests on one worker,
but with pytest 9 it no longer groups them.)"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def once(name: str, temp: pytest.TempPathFactory) -> Iterator[tuple[Path, bool]]:
    """A folder shared by this run's workers, and whether the caller must fill it now (under
    the lock, which the others wait on). A filler that fails leaves it to the next one. It lives
    in the run's temporary folder (each worker's is inside it), which pytest cleans up later."""
    base = temp.getbasetemp()
    root = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / f"once-{name}"
    with open(root.with_suffix(".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = root / ".done"
        fill = not done.exists()
        root.mkdir(exist_ok=True)
        yield root, fill
        if fill:
            done.touch()
