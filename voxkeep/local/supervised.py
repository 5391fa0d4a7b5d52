"""Starting and stopping a local server process (LiveKit's, Redis): its own session, so that a
Ctrl-C in the terminal is for our supervisor to pass on; ready once it answers; SIGTERM, then
SIGKILL after a grace."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from voxkeep.core.errors import VoxkeepError

STOP_TIMEOUT_S = 10.0


def start_answering(
    argv: Sequence[str | Path],
    answers: Callable[[], bool],
    *,
    what: str,
    log: IO[Any] | None,
    timeout_s: float,
    cleanup: Callable[[], None],
) -> subprocess.Popen[bytes]:
    """`argv` started, once `answers()`. If it exits or does not answer within `timeout_s`:
    stopped again, `cleanup()` (what was made for it), and a one-line `VoxkeepError` naming
    `what` raised."""
    proc = subprocess.Popen(
        argv, stdout=log or subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True
    )
    deadline = time.monotonic() + timeout_s
    while not answers():
        if proc.poll() is not None or time.monotonic() > deadline:
            code = proc.poll()
            stop(proc)
            cleanup()
            why = f"exited with {code}" if code is not None else "did not answer"
            raise VoxkeepError(f"{what} {why}")
        time.sleep(0.05)
    return proc


def stop(proc: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM, and SIGKILL if it has not exited within STOP_TIMEOUT_S."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
