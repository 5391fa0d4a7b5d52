"""Soak benchmark (docs/benchmarks.md#memory-per-call): one long call on the real LiveKit server,
ours and a bare LiveKit agent side by side, each with one caller taking turn after turn; the
memory of the job process serving each call, sampled every minute. Does a call grow per turn?

    .venv/bin/python scripts/bench/soak.py [--minutes 60] [--every 60]

Growth is the slope of the job process's USS against its turns after the first `--settle`
minutes (warm-up: first allocations, caches filling), in MB per 100 turns.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from _common import print_table, run_in_folder
from live import SAID, Bench, children, on_the_server

MODES = ("ours", "bare")


@dataclass
class Soak:
    """One mode's long call: (minute, turns so far, USS in MB) at each sample."""

    samples: list[tuple[float, int, float]] = field(default_factory=list)
    missed: int = 0
    failed: str | None = None

    def growth(self, settle_min: float) -> str:
        """MB per 100 turns after the warm-up, or why there is no figure."""
        late = [(turns, uss) for minute, turns, uss in self.samples if minute >= settle_min]
        if len(late) < 3 or late[-1][0] == late[0][0]:
            return "– (too few samples)"
        slope = np.polyfit([t for t, _ in late], [u for _, u in late], 1)[0]
        return f"{slope * 100:+.2f} MB / 100 turns"


async def soak(bench: Bench, mode: str, args: argparse.Namespace) -> Soak:
    result = Soak()
    try:
        async with bench.worker(mode, VOXKEEP_IDLE_PROCESSES="1") as worker:
            caller = await bench.caller(f"soak-{mode}")
            await caller.agent(30)
            start = time.monotonic()
            turns, next_sample = 0, start + args.every  # the call's own process by then
            while (now := time.monotonic()) - start < args.minutes * 60:
                if now >= next_sample:
                    serving = max(children(worker.pid).values(), key=lambda s: s.cpu_s)
                    result.samples.append(((now - start) / 60, turns, serving.uss_mb))
                    next_sample += args.every
                try:
                    await caller.turn(SAID[turns % len(SAID)])
                    turns += 1
                except TimeoutError:
                    result.missed += 1
            await caller.leave()
    except Exception as exc:  # noqa: BLE001 - a peer that fails is a result to print
        result.failed = f"{type(exc).__name__}: {exc}"[:80]
    return result


async def run(args: argparse.Namespace, folder: Path) -> None:
    async with on_the_server(folder) as (bench, _):
        soaks = dict(zip(MODES, await asyncio.gather(*[soak(bench, m, args) for m in MODES]),
                         strict=True))  # fmt: skip
    rows = []
    for i in range(max(len(s.samples) for s in soaks.values())):
        row: list[object] = []
        for mode in MODES:
            samples = soaks[mode].samples
            minute, turns, uss = samples[i] if i < len(samples) else (None, None, None)
            if not row:
                row.append(f"{minute:.0f}" if minute is not None else "")
            row += [turns if turns is not None else "", f"{uss:.1f}" if uss is not None else ""]
        rows.append(row)
    print_table(["minute", "ours: turns", "USS (MB)", "bare: turns", "USS (MB)"], rows)
    print_table(
        ["worker", f"growth after minute {args.settle:.0f}", "turns missed", "failed"],
        [[mode, s.growth(args.settle), s.missed, s.failed or ""] for mode, s in soaks.items()],
    )
    print("\nUSS: the memory only the job process serving the call holds. A turn: the caller "
          "speaks a sentence and waits for the answer.")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0, help="how long each call lasts")
    parser.add_argument("--every", type=float, default=60.0, help="seconds between samples")
    parser.add_argument("--settle", type=float, default=5.0, help="warm-up minutes left out")
    args = parser.parse_args()
    run_in_folder("bench-soak-", lambda folder: run(args, folder))


if __name__ == "__main__":
    main()
