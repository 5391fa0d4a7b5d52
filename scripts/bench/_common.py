"""What every benchmark here shares: percentiles, event-loop lag, and the printed table."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.support.processes import ModelServer
    from voxkeep.local.livekit_server import LocalServer

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # the checkout: the benchmarks drive the tests' own callers
    sys.path.insert(0, str(ROOT))  # and stand-ins (tests/support), run as scripts


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@contextlib.asynccontextmanager
async def loop_lag(into: list[float]) -> AsyncIterator[None]:
    """Measure how late a 1 ms timer fires while the body runs: the event loop's lag."""
    stop = asyncio.Event()

    async def tick() -> None:
        while not stop.is_set():
            start = time.perf_counter()
            await asyncio.sleep(0.001)
            into.append(max(0.0, (time.perf_counter() - start - 0.001) * 1000))

    task = asyncio.create_task(tick())
    try:
        yield
    finally:
        stop.set()
        await task


def print_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    cells = [[str(c) for c in r] for r in [header, *rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    print()
    for r in cells:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


async def start_servers(folder: Path) -> tuple[LocalServer, ModelServer]:
    """The real LiveKit server, at its pin, on loopback (its log in `folder`), and the stand-in
    model server: what the benchmarks over LiveKit run a worker against."""
    from tests.support.processes import ModelServer, free_port
    from voxkeep.local.livekit_server import LocalServer, find_binary, pinned_version

    binary = find_binary(ROOT, pinned_version(ROOT / "config"))
    server_log = (folder / "livekit-server.log").open("wb")
    server = LocalServer(binary, ROOT / "config" / "livekit.yaml", port=free_port(),
                         udp_port=free_port(socket.SOCK_DGRAM), log=server_log)  # fmt: skip
    server.start()
    model = ModelServer()
    await model.start()
    return server, model


def run_in_folder(
    prefix: str, run: Callable[[Path], Coroutine[Any, Any, None]], *, keep: bool = False
) -> None:
    """Run a benchmark in a new temporary folder of its own: kept (and said so) when the run
    fails or `keep` asks, removed otherwise."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        asyncio.run(run(folder))
    except BaseException:
        print(f"\nthe workers' logs are kept in {folder}")
        raise
    if keep:
        print(f"\nthe workers' logs and profiles are kept in {folder}")
    else:
        shutil.rmtree(folder, ignore_errors=True)
