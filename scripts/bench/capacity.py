"""Capacity benchmark (docs/scaling.md): how many concurrent calls one worker answers before its
reply latency suffers, ours beside a bare LiveKit agent on the same machine, in one run.

The reply latency is the caller's end of speech to the agent's first reply audio (its state
turning `speaking`). One caller's p95 is the single-call figure. The callers then rise step by
step, each step a fresh set of calls taking a few turns each, until the p95 exceeds the single-
call figure by more than 20 %, or a caller is left without an agent or an answer. A worker's
capacity is the last step within that; calls per core divides it by the machine's cores. The
callers run in processes of their own (tests/support/crowd.py), on the same machine: what they
cost is the same for both workers.

    .venv/bin/python scripts/bench/capacity.py [--steps 1,2,3,4,6,8,10] [--turns 3]
        [--single-turns 8]
"""

from __future__ import annotations

import argparse
import asyncio
import uuid
from dataclasses import dataclass
from pathlib import Path

import psutil
from _common import percentile, print_table, run_in_folder
from live import SAID, Bench, cpu_seconds, on_the_server

from tests.support.crowd import Outcome, crowd

SLACK = 0.2
"""How much above the single call's p95 reply latency a step's may be."""


@dataclass(frozen=True)
class Step:
    callers: int
    latencies: list[float]
    unserved: int
    missed: int
    failed: int
    cpu_per_call: float
    """The worker's CPU per call over the step, a share of one core."""

    @property
    def p50(self) -> float:
        return percentile(self.latencies, 0.5)

    @property
    def p95(self) -> float:
        return percentile(self.latencies, 0.95)

    def within(self, single: Step, slack: float) -> bool:
        whole = not (self.unserved or self.missed or self.failed) and bool(self.latencies)
        return whole and self.p95 <= single.p95 * (1 + slack)

    def cells(self, single: Step | None, slack: float) -> list[object]:
        if not self.latencies:
            return ["–", "–", self.lost(), "", "no answers"]
        fits = "single call" if single is None else ("yes" if self.within(single, slack) else "no")
        return [f"{self.p50 * 1e3:.0f}", f"{self.p95 * 1e3:.0f}", self.lost(),
                f"{self.cpu_per_call * 100:.0f} %", fits]  # fmt: skip

    def lost(self) -> str:
        return f"{self.unserved} / {self.missed} / {self.failed}"


async def step(bench: Bench, pid: int, callers: int, turns: int) -> Step:
    tag = uuid.uuid4().hex[:6]
    people = [(f"cap-{tag}-{i}", f"caller{i}") for i in range(callers)]
    before = cpu_seconds(pid)
    start = asyncio.get_running_loop().time()
    outcomes: list[Outcome] = await crowd(bench.server, people, SAID, turns=turns,
                                          processes=min(callers, 2))  # fmt: skip
    elapsed = asyncio.get_running_loop().time() - start
    served = sum(o.served for o in outcomes) or 1
    return Step(
        callers,
        [t for o in outcomes for t in o.latencies],
        sum(not o.served for o in outcomes),
        sum(o.missed for o in outcomes),
        sum(o.error is not None for o in outcomes),
        (cpu_seconds(pid) - before) / elapsed / served,
    )


@dataclass
class Climb:
    """One worker's run: the single call, then each step tried."""

    single: Step | None = None
    steps: list[Step] | None = None
    failed: str | None = None

    @property
    def capacity(self) -> int:
        if self.single is None or not self.single.within(self.single, SLACK):
            return 0
        fit = 1
        for s in self.steps or []:
            if not s.within(self.single, SLACK):
                break
            fit = s.callers
        return fit


async def climb(bench: Bench, mode: str, args: argparse.Namespace) -> Climb:
    result = Climb(steps=[])
    idle = {"VOXKEEP_IDLE_PROCESSES": str(max(args.steps)), "VOXKEEP_DRAIN_TIMEOUT_S": "5"}
    try:
        async with bench.worker(mode, **idle) as worker:
            result.single = await step(bench, worker.pid, 1, args.single_turns)
            for n in args.steps:
                if n == 1:
                    continue
                tried = await step(bench, worker.pid, n, args.turns)
                assert result.steps is not None
                result.steps.append(tried)
                if not tried.within(result.single, SLACK):
                    break
    except Exception as exc:  # noqa: BLE001 - a peer that fails is a result to print
        result.failed = f"{type(exc).__name__}: {exc}"[:80]
    return result


async def run(args: argparse.Namespace, folder: Path) -> None:
    async with on_the_server(folder) as (bench, _):
        climbs = {mode: await climb(bench, mode, args) for mode in ("ours", "bare")}
    rows: list[list[object]] = []
    for mode, c in climbs.items():
        if c.failed:
            rows.append([mode, "", "", "", "", "", f"failed: {c.failed}"])
            continue
        for s in [c.single, *(c.steps or [])]:
            if s is not None:
                rows.append([mode, s.callers, *s.cells(None if s is c.single else c.single,
                                                       SLACK)])  # fmt: skip
    print_table(["worker", "callers", "reply p50 (ms)", "p95 (ms)",
                 "unserved / missed / failed", "CPU / call", "within +20 %"], rows)  # fmt: skip
    cores = psutil.cpu_count() or 1
    per_core = {mode: c.capacity / cores for mode, c in climbs.items() if not c.failed}
    both = per_core.get("ours") is not None and per_core.get("bare")
    print_table(
        ["worker", "capacity (calls)", "calls per core", "ours / bare"],
        [
            ["ours", climbs["ours"].capacity, f"{per_core.get('ours', 0):.1f}",
             f"{per_core['ours'] / per_core['bare']:.2f}×" if both else "–"],
            ["bare LiveKit agent", climbs["bare"].capacity, f"{per_core.get('bare', 0):.1f}", ""],
        ],
    )  # fmt: skip
    print(f"\nReply latency: the caller's end of speech to the agent speaking. Capacity: the last "
          f"step whose p95 stays within {SLACK:.0%} of the single call's, with every caller "
          f"served and answered. Steps tried: {args.steps}. Machine: {cores} cores; the callers "
          "and the LiveKit server run on it too.")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", default="1,2,3,4,6,8,10", help="concurrent callers to try")
    parser.add_argument("--turns", type=int, default=3, help="turns per caller at each step")
    parser.add_argument("--single-turns", type=int, default=8, help="turns of the single call")
    args = parser.parse_args()
    args.steps = sorted({int(n) for n in args.steps.split(",")})
    run_in_folder("bench-capacity-", lambda folder: run(args, folder))


if __name__ == "__main__":
    main()
