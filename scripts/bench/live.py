"""Live benchmark (docs/benchmarks.md): the worker over the real LiveKit server on loopback, as a
process of its own, with callers on LiveKit's rtc client speaking espeak-ng speech in real time
and the stand-in model server in another process. In one run:

- control round trip, caller → agent → caller: `ping` over a data packet and over RPC, beside a
  bare RPC echo registered in the same worker (the floor);
- the caller's end of speech to the user message committed in the store, beside the end of
  speech to the agent thinking (LiveKit's end of turn: the floor);
- joining the room to `chat.started` received, beside joining to the agent in the room;
- the worker's CPU per call with persistence and prosody on (ours) and off (a bare LiveKit agent
  with the same session factory, providers and VAD), with 1, 10 and 25 concurrent callers;
- with `--profile`, where that CPU goes: py-spy samples the worker and its job processes over
  each window, and the top frames of ours and bare are printed side by side.

    .venv/bin/python scripts/bench/live.py [--rounds 200] [--callers 1,10,25] [--window 30]
        [--profile] [--keep]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import psutil
from _common import percentile, print_table, run_in_folder, start_servers
from _profile import Profile, profiled, short

from tests.support.caller import Caller, token
from tests.support.processes import ModelServer, Worker, clean_env, free_port
from voxkeep.local.livekit_server import LocalServer
from voxkeep.sim.speech import Voice
from voxkeep.store import ANY_OWNER, Store, open_store

ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("live_worker.py")
SAID = [
    "I would like to plan a trip to Lisbon.",
    "What is the weather like there in May?",
    "Please book it for Friday.",
    "And a table for dinner too.",
]


def ms(values: list[float]) -> tuple[str, str]:
    return f"{percentile(values, 0.5) * 1e3:.1f}", f"{percentile(values, 0.99) * 1e3:.1f}"


def ratio(ours: list[float], floor: list[float]) -> str:
    if not ours or not floor:
        return "–"
    return f"{percentile(ours, 0.5) / percentile(floor, 0.5):.2f}×"


class Bench:
    def __init__(self, server: LocalServer, model: ModelServer, folder: Path) -> None:
        self.server, self.model, self.folder = server, model, folder
        self.db_url = f"sqlite:///{folder}/voxkeep.db"

    @contextlib.asynccontextmanager
    async def worker(self, mode: str, **settings: str) -> AsyncIterator[Worker]:
        folder = Path(tempfile.mkdtemp(dir=self.folder, prefix=f"{mode}-"))
        env = clean_env(
            LIVEKIT_URL=self.server.url,
            LIVEKIT_API_KEY=self.server.api_key,
            LIVEKIT_API_SECRET=self.server.api_secret,
            OPENAI_BASE_URL=self.model.base_url,
            OPENAI_API_KEY="bench",
            VOXKEEP_DB_URL=self.db_url,
            VOXKEEP_JOURNAL_DIR=str(folder / "journal"),
            VOXKEEP_HTTP_HOST="127.0.0.1",
            VOXKEEP_HTTP_PORT=str(free_port()),
            VOXKEEP_LOAD_THRESHOLD="inf",  # measure the load, never shed it
            **settings,
        )
        worker = Worker(env, folder / "worker.log", program=[str(WORKER), mode])
        await worker.start()
        try:
            yield worker
        finally:
            await worker.stop()

    async def caller(self, identity: str) -> Caller:
        room = f"bench-{uuid.uuid4().hex[:8]}"
        jwt = token(self.server.api_key, self.server.api_secret, room, identity)
        caller = Caller(self.server.url, jwt, identity)
        await caller.join()
        return caller


# --- latency, one caller ---------------------------------------------------------------------


async def round_trips(caller: Caller, rounds: int) -> dict[str, list[float]]:
    taken: dict[str, list[float]] = {"data": [], "rpc": [], "echo": []}
    agent = await caller.agent()
    await caller.chat_id()  # the control channel is open
    for i in range(rounds):
        for via in ("data", "rpc"):
            start = time.perf_counter()
            reply = await caller.command({"v": 1, "id": f"{via}{i}", "type": "ping"}, via=via)
            taken[via].append(time.perf_counter() - start)
            assert reply["type"] == "ping.ok", reply
        start = time.perf_counter()
        await caller.room.local_participant.perform_rpc(
            destination_identity=agent.identity, method="bench.echo", payload=f"echo{i}"
        )
        taken["echo"].append(time.perf_counter() - start)
    return taken


async def speech_to_commit(caller: Caller, store: Store, turns: int) -> tuple[list[float], ...]:
    """For each turn: the end of speech to the user message committed, and to the agent
    thinking (LiveKit decided the turn was over)."""
    chat_id = await caller.chat_id()
    committed: list[float] = []
    thinking: list[float] = []
    for i in range(turns):
        users = await _users(store, chat_id)
        seen = len(caller.states)
        await caller.say(SAID[i % len(SAID)])
        said = caller.said_at[-1]
        async with asyncio.timeout(30):
            while await _users(store, chat_id) == users:  # noqa: ASYNC110 - another process's writes
                await asyncio.sleep(0.005)
        committed.append(time.time() - said)
        await caller.answered(since=seen)
        first = next(t for s, t in zip(caller.states[seen:], caller.state_at[seen:],
                                       strict=True) if s == "thinking")  # fmt: skip
        thinking.append(first - said)
    return committed, thinking


async def _users(store: Store, chat_id: str) -> int:
    """How many user messages of the chat are committed."""
    page = await store.messages(chat_id, owner=ANY_OWNER, limit=100)
    return sum(1 for m in page.messages if m.role == "user")


async def joins(bench: Bench, rounds: int) -> tuple[list[float], list[float]]:
    """Joining to the agent in the room, and to `chat.started` received."""
    to_agent, to_started = [], []
    for i in range(rounds):
        start = time.time()
        caller = await bench.caller(f"joiner{i}")
        agent = await caller.agent()
        to_agent.append(time.time() - start)
        event = await caller.started(1)
        to_started.append(next(p.at for p in caller.packets if p.payload is event) - start)
        assert agent.identity
        await caller.leave()
    return to_agent, to_started


# --- CPU per call ----------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of the worker and every process under it, now, counting the
    job processes that have ended (in the times of the process that reaped them)."""
    total = 0.0
    root = psutil.Process(pid)
    for proc in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            total += times.user + times.system + times.children_user + times.children_system
    return total


@dataclass(frozen=True)
class Sample:
    cpu_s: float
    rss_mb: float
    uss_mb: float
    """Memory only this process holds (not shared with the worker it was forked from)."""


def children(pid: int) -> dict[int, Sample]:
    """Each process under the worker (its job processes, idle or not), now."""
    found = {}
    for proc in psutil.Process(pid).children(recursive=True):
        with contextlib.suppress(psutil.Error):
            times, memory = proc.cpu_times(), proc.memory_full_info()
            found[proc.pid] = Sample(times.user + times.system, memory.rss / 2**20,
                                     memory.uss / 2**20)  # fmt: skip
    return found


@dataclass(frozen=True)
class Memory:
    """The job processes that served a call over a window (told apart from idle ones by the CPU
    they used): their mean memory at the window's end, and how much it grew over the window."""

    calls: int
    rss_mb: float
    uss_mb: float
    uss_growth_mb: float

    @classmethod
    def of(cls, before: dict[int, Sample], after: dict[int, Sample], window: float) -> Memory:
        busy = [pid for pid, s in after.items()
                if pid in before and s.cpu_s - before[pid].cpu_s > 0.05 * window]  # fmt: skip
        if not busy:
            return cls(0, 0.0, 0.0, 0.0)
        n = len(busy)
        return cls(
            n,
            sum(after[p].rss_mb for p in busy) / n,
            sum(after[p].uss_mb for p in busy) / n,
            sum(after[p].uss_mb - before[p].uss_mb for p in busy) / n,
        )


async def talk(caller: Caller, until: float) -> tuple[int, int]:
    """Turns until the monotonic time `until`: speak, wait for the answer. (answered, missed);
    the turn the window's end cuts short counts as neither."""
    answered = missed = 0
    while (left := until - time.monotonic()) > 0:
        try:
            async with asyncio.timeout(left):
                await caller.turn(SAID[(answered + missed) % len(SAID)])
            answered += 1
        except TimeoutError:
            if time.monotonic() < until:  # not answered within the turn's own limit
                missed += 1
    return answered, missed


@dataclass
class Load:
    """One mode's run at one number of callers."""

    share: float
    """The worker's CPU per call, a share of one core."""
    answered: int
    missed: int
    unserved: int
    profile: Profile | None
    memory: Memory


async def cpu_per_call(bench: Bench, mode: str, callers: int, window: float, profile: bool) -> Load:
    """The worker's CPU per call (a share of one core) over `window` seconds of continuous
    turns by up to `callers` callers at once; the turns answered and missed; the callers left
    out because one got no agent within 30 s (the machine is full: nobody more joins); where
    the CPU went, when asked."""
    settings = {"VOXKEEP_IDLE_PROCESSES": str(min(callers, 4)), "VOXKEEP_DRAIN_TIMEOUT_S": "5"}
    async with bench.worker(mode, **settings) as worker:
        people: list[Caller] = []
        for i in range(callers):  # one after another, as calls arrive
            person = await bench.caller(f"{mode}{callers}-{i}")
            try:
                await person.agent(30)
            except TimeoutError:
                await person.leave()
                break
            people.append(person)
        unserved = callers - len(people)
        await asyncio.sleep(2)  # every session up and listening
        where: Profile | None = None
        async with contextlib.AsyncExitStack() as stack:
            if profile:  # (read as the window ends)
                sampled = bench.folder / f"profile-{mode}-{callers}.raw"
                where = await stack.enter_async_context(profiled(worker.pid, window, sampled))
            start, before = time.monotonic(), cpu_seconds(worker.pid)
            processes = children(worker.pid)
            turns = await asyncio.gather(*[talk(p, start + window) for p in people])
            used = cpu_seconds(worker.pid) - before
            elapsed = time.monotonic() - start
            memory = Memory.of(processes, children(worker.pid), elapsed)
        await asyncio.gather(*[p.leave() for p in people])
    served = max(len(people), 1)
    answered, missed = sum(a for a, _ in turns), sum(m for _, m in turns)
    return Load(used / elapsed / served, answered, missed, unserved, where, memory)


def print_profiles(callers: int, profiles: dict[str, Profile]) -> None:
    """The frames most often on top of the stack, ours beside bare, and how much of ours is
    in our own code."""
    tops = {mode: p.top_self(12) if not p.failed else [] for mode, p in profiles.items()}
    rows = []
    for i in range(12):
        row: list[object] = [i + 1]
        for mode in ("ours", "bare"):
            top = tops.get(mode, [])
            row += [short(top[i][0]), f"{top[i][1] * 100:.1f} %"] if i < len(top) else ["", ""]
        rows.append(row)
    print_table(["#", f"ours, {callers} callers: top frame", "self", "bare: top frame", "self"],
                rows)  # fmt: skip
    for mode, p in profiles.items():
        said = p.failed or (
            f"{p.samples} samples, {p.busy} at work; of those, "
            f"{p.share_under('/voxkeep/') * 100:.1f} % with voxkeep code on the stack, "
            f"{p.share_under('/silero/') * 100:.1f} % in silero's VAD"
        )
        print(f"{mode}: {said}")


def memory_row(callers: int, memory: dict[str, Memory]) -> list[object]:
    cells: list[object] = [callers]
    for mode in ("ours", "bare"):
        m = memory.get(mode)
        cells += (
            [f"{m.rss_mb:.0f} / {m.uss_mb:.0f} MB ({m.calls})", f"{m.uss_growth_mb:+.1f} MB"]
            if m is not None and m.calls
            else ["–", ""]
        )
    both = all(memory.get(mode) and memory[mode].calls for mode in ("ours", "bare"))
    cells.append(f"{memory['ours'].uss_mb - memory['bare'].uss_mb:+.1f} MB" if both else "–")
    return cells


# --- the run ---------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def on_the_server(folder: Path) -> AsyncIterator[tuple[Bench, Store]]:
    """The real LiveKit server, the stand-in models (knowing SAID's clips) and a migrated store
    in `folder`, with a bench over them; all stopped after."""
    server, model = await start_servers(folder)
    store = await open_store(f"sqlite:///{folder}/voxkeep.db")
    await store.migrate()
    try:
        for text in SAID:
            await model.learn(text, Voice())
        yield Bench(server, model, folder), store
    finally:
        await store.aclose()
        await model.aclose()
        server.stop()
        if server.log is not None:
            server.log.close()


async def run(args: argparse.Namespace, folder: Path) -> None:
    async with on_the_server(folder) as (bench, store):
        fast = {"VOXKEEP_CONTROL_RATE": "10000", "VOXKEEP_CONTROL_BURST": "10000"}
        async with bench.worker("ours", **fast):
            caller = await bench.caller("alice")
            trips = await round_trips(caller, args.rounds)
            committed, thinking = await speech_to_commit(caller, store, args.turns)
            await caller.leave()
            to_agent, to_started = await joins(bench, args.joins)
        print_table(
            ["latency (ms)", "p50", "p99", "n", "ratio to floor (p50)"],
            [
                ("control ping, data packet", *ms(trips["data"]), len(trips["data"]),
                 ratio(trips["data"], trips["echo"])),
                ("control ping, RPC", *ms(trips["rpc"]), len(trips["rpc"]),
                 ratio(trips["rpc"], trips["echo"])),
                ("floor: bare RPC echo, same worker", *ms(trips["echo"]), len(trips["echo"]), ""),
                ("end of speech → message committed", *ms(committed), len(committed),
                 ratio(committed, thinking)),
                ("floor: end of speech → agent thinking", *ms(thinking), len(thinking), ""),
                ("join → chat.started received", *ms(to_started), len(to_started),
                 ratio(to_started, to_agent)),
                ("floor: join → agent in the room", *ms(to_agent), len(to_agent), ""),
            ],
        )  # fmt: skip
        rows, memory_rows = [], []
        for n in args.callers:
            cells: list[object] = [n]
            share: dict[str, float] = {}
            memory: dict[str, Memory] = {}
            profiles: dict[str, Profile] = {}
            for mode in ("ours", "bare"):
                try:
                    got = await cpu_per_call(bench, mode, n, args.window, args.profile)
                    cells += [f"{got.share * 100:.1f} %",
                              f"{got.answered} / {got.missed} / {got.unserved}"]  # fmt: skip
                    if got.answered:  # a window with no turn answered measures nothing
                        share[mode] = got.share
                        memory[mode] = got.memory
                    if got.profile is not None:
                        profiles[mode] = got.profile
                except Exception as exc:  # noqa: BLE001 - a run that fails is a result to print
                    cells += [f"failed: {type(exc).__name__}: {exc}"[:60], ""]
            both = "ours" in share and "bare" in share
            cells.append(f"{share['ours'] / share['bare']:.2f}×" if both else "– (no turns)")
            rows.append(cells)
            memory_rows.append(memory_row(n, memory))
            if profiles:
                print_profiles(n, profiles)
        turns = "turns ok / missed / unserved callers"
        print_table(["callers", "ours: CPU / call", turns, "bare LiveKit agent", turns,
                     "ours / bare"], rows)  # fmt: skip
        print(f"\nCPU / call: worker process tree CPU time over a {args.window:.0f} s window of "
              "continuous turns, as a share of one core. A turn is missed when the agent has not "
              "answered within 40 s; an unserved caller got no agent within 30 s. Machine: "
              f"{psutil.cpu_count()} cores.")  # fmt: skip
        print_table(["callers", "ours: RSS / USS per call", "grew", "bare: RSS / USS per call",
                     "grew", "ours − bare (USS)"], memory_rows)  # fmt: skip
        print("\nPer call: the mean of the job processes that served a call in the window (RSS; "
              "USS, the memory only that process holds), at its end; grew: their USS over the "
              "window.")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200, help="control round trips per kind")
    parser.add_argument("--turns", type=int, default=8, help="turns for speech → committed")
    parser.add_argument("--joins", type=int, default=8, help="joins for join → chat.started")
    parser.add_argument("--callers", default="1,10,25", help="concurrent callers, comma-separated")
    parser.add_argument("--window", type=float, default=30.0, help="seconds of talk per CPU run")
    parser.add_argument("--profile", action="store_true", help="sample where the CPU goes")
    parser.add_argument("--keep", action="store_true", help="keep the logs and raw profiles")
    args = parser.parse_args()
    args.callers = [int(n) for n in args.callers.split(",")]
    run_in_folder("bench-live-", lambda folder: run(args, folder), keep=args.keep)


if __name__ == "__main__":
    main()
