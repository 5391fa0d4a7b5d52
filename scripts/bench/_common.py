"""What every benchmark here shares: percentiles, event-loop lag, and the printed table."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

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
