"""Store benchmark (docs/benchmarks.md): finalize→committed latency, writer throughput, event-loop
lag, and loading a 10,000-message chat — ours beside openai-agents' SQLiteSession and
AsyncSQLiteSession (what people would otherwise pick) on the same workloads, in the same run.

    .venv/bin/python scripts/bench/store.py [--seconds 5] [--calls 200] [--messages 50000]
    .venv/bin/python scripts/bench/store.py --db postgresql://…  [--writers 50]
    .venv/bin/python scripts/bench/store.py --db postgres-local  [--writers 50]
    .venv/bin/python scripts/bench/store.py --db postgres-local --fleet 10 [--calls 200]

With `--db`, our store at that URL runs beside ours on SQLite, in the same run;
`postgres-local` starts a throwaway PostgreSQL server (the one the tests use). `--writers N`
spreads the calls over N writers, each with its own store connection, as N worker processes
would (default 1). `--fleet P` adds a run with P writer *processes*, one writer each, as a fleet
of workers has, sharing `--calls` between them, beside the same calls in one process.

A peer that fails (openai-agents' AsyncSQLiteSession raises "database is locked" under 200
calls) is a result: the table says "failed" and the error is printed under it.

"Finalize→committed" is the time from the moment a message is final to the moment it is durable
in the database: for us, `Writer.submit()` until its future resolves; for a peer, the duration
of `await session.add_items([item])`. A ratio above 1 means the peer is slower.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from _common import loop_lag, percentile, print_table
from agents import SQLiteSession
from agents.extensions.memory import AsyncSQLiteSession

from voxkeep.core.logs import configure_logging
from voxkeep.store import ANY_OWNER, open_store
from voxkeep.store.records import NewChat, NewMessage
from voxkeep.store.writer import Writer

ROOT = Path(__file__).resolve().parents[2]
TEXT = "I'd like to plan a trip to Lisbon in May with the kids, somewhere near the river please."


@dataclass
class Result:
    latencies_ms: list[float] = field(default_factory=list)
    lag_ms: list[float] = field(default_factory=list)
    rate: float = 0.0
    committed_rate: float = 0.0
    build_us: float = 0.0
    ms: float = 0.0


class Subject(Protocol):
    """One implementation under test: append one finalized message, or load a chat."""

    name: str

    async def setup(self, chats: int) -> None: ...
    def build(self, chat: int, i: int) -> Any:
        """What a finalized message becomes before it is handed over (ours: a checked record)."""

    def submit(self, built: Any) -> Awaitable[None]:
        """Hand it over; awaiting the result waits for the acknowledgement."""

    async def settled(self) -> None:
        """Wait until everything acknowledged is committed to the database."""

    async def load(self, chat: int, limit: int | None) -> int: ...
    async def close(self) -> None: ...


class Ours:
    def __init__(self, folder: Path, url: str | None, writers: int = 1) -> None:
        self.url = url or f"sqlite:///{folder}/ours.db"
        self.folder = folder
        self.n = 0
        self.writers_wanted = writers
        backend = "PostgreSQL" if self.url.startswith("postgres") else "SQLite"
        self.name = f"ours ({backend}, {writers} writer{'s' if writers > 1 else ''})"

    async def setup(self, chats: int) -> None:
        self.store = await open_store(self.url)
        await self.store.migrate()
        self.writers = [
            await Writer.start(await open_store(self.url), self.folder / f"journal-{self.n}-{w}")
            for w in range(self.writers_wanted)
        ]
        self.chat_ids = [f"chat_bench_{self.n}_{c}" for c in range(chats)]
        self.n += 1
        now = time.time()
        await self.store.write(
            [NewChat(id=c, owner=f"caller{c}", created_at=now) for c in self.chat_ids]
        )

    def build(self, chat: int, i: int) -> tuple[int, NewMessage]:
        chat_id = self.chat_ids[chat]
        msg_id = f"{chat_id}_{i}"
        return chat, NewMessage(
            id=msg_id,
            chat_id=chat_id,
            role="user" if i % 2 == 0 else "assistant",
            content=TEXT,
            created_at=time.time(),
            item={"id": msg_id, "type": "message", "role": "user", "content": [TEXT]},
        )

    def submit(self, built: tuple[int, NewMessage]) -> Awaitable[None]:
        chat, record = built
        return self.writers[chat % len(self.writers)].submit(record)

    async def settled(self) -> None:
        for writer in self.writers:
            await writer.flush()

    async def load(self, chat: int, limit: int | None) -> int:
        page = await self.store.messages(self.chat_ids[chat], owner=ANY_OWNER, limit=limit)
        return len(page.messages)

    async def close(self) -> None:
        for writer in self.writers:
            await writer.aclose()
        await self.store.aclose()


class Peer:
    def __init__(self, folder: Path, cls: Any, label: str) -> None:
        self.folder, self.cls, self.name = folder, cls, label
        self.n = 0

    async def setup(self, chats: int) -> None:
        path = self.folder / f"peer-{self.cls.__name__}-{self.n}.db"
        self.n += 1
        self.sessions = [self.cls(f"session{c}", path) for c in range(chats)]

    def build(self, chat: int, i: int) -> tuple[int, Any]:
        return chat, {"role": "user" if i % 2 == 0 else "assistant", "content": TEXT}

    def submit(self, built: tuple[int, Any]) -> Awaitable[None]:
        chat, item = built
        done: Awaitable[None] = asyncio.ensure_future(self.sessions[chat].add_items([item]))
        return done

    async def settled(self) -> None:
        return  # acknowledged is committed

    async def load(self, chat: int, limit: int | None) -> int:
        return len(await self.sessions[chat].get_items(limit=limit))

    async def close(self) -> None:
        for s in self.sessions:
            closing = s.close()
            if asyncio.iscoroutine(closing):
                await closing


async def calls(subject: Subject, n_calls: int, seconds: float, per_call_s: float) -> Result:
    """`n_calls` calls, each finalizing one message every `per_call_s`, staggered."""
    await subject.setup(n_calls)
    result = Result()

    async def one_call(c: int) -> None:
        await asyncio.sleep(per_call_s * c / n_calls)
        deadline = time.perf_counter() + seconds
        i = 0
        pending = []
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            done = subject.submit(subject.build(c, i))

            def record(_: object, start: float = start) -> None:
                result.latencies_ms.append((time.perf_counter() - start) * 1000)

            fut = asyncio.ensure_future(done)
            fut.add_done_callback(record)
            pending.append(fut)
            i += 1
            await asyncio.sleep(per_call_s)
        await asyncio.gather(*pending)

    async with loop_lag(result.lag_ms):
        await asyncio.gather(*(one_call(c) for c in range(n_calls)))
    await subject.close()
    return result


async def throughput(subject: Subject, messages: int, chats: int, busy: bool = False) -> Result:
    """Hand over `messages` finalized messages across `chats` chats as fast as possible: the
    acknowledged rate, and the rate at which they are all in the database. Each message is built
    first, off the clock (that cost is the capture's, when a turn finalizes: printed beside).
    `busy`: a thread runs Python beside, as a call's audio keeps a job process's interpreter busy
    (a commit that lets go of the GIL often waits for it as often)."""
    with spinning() if busy else contextlib.nullcontext():
        return await _throughput(subject, messages, chats)


@contextlib.contextmanager
def spinning() -> Iterator[None]:
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            sum(range(1000))

    thread = threading.Thread(target=spin, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


async def _throughput(subject: Subject, messages: int, chats: int) -> Result:
    await subject.setup(chats)
    result = Result()
    start = time.perf_counter()
    built = [subject.build(i % chats, i) for i in range(messages)]
    result.build_us = (time.perf_counter() - start) / messages * 1e6
    start = time.perf_counter()
    async with loop_lag(result.lag_ms):
        futures = []
        for i, one in enumerate(built):
            futures.append(subject.submit(one))
            if i % 100 == 99:
                await asyncio.sleep(0)  # finalized messages arrive as events, not in one burst
        await asyncio.gather(*futures)
        result.rate = messages / (time.perf_counter() - start)
        await subject.settled()
        result.committed_rate = messages / (time.perf_counter() - start)
    await subject.close()
    return result


async def big_chat(subject: Subject, size: int, repeats: int = 20) -> tuple[float, float]:
    """Median ms to load the newest 60 messages, and the whole chat, of a `size`-message chat,
    once the writes have settled (a caller comes back later, not amid the write burst)."""
    await subject.setup(1)
    for start in range(0, size, 500):
        await asyncio.gather(
            *[subject.submit(subject.build(0, i)) for i in range(start, min(size, start + 500))]
        )
    await asyncio.sleep(1.0)
    timings: dict[int | None, list[float]] = {60: [], None: []}
    for limit in timings:  # each kind in its own run: a whole-chat load leaves garbage behind
        for _ in range(repeats):
            t = time.perf_counter()
            count = await subject.load(0, limit)
            timings[limit].append((time.perf_counter() - t) * 1000)
            assert count == (limit or size), (subject.name, count)
    await subject.close()
    return statistics.median(timings[60]), statistics.median(timings[None])


FAILED = float("nan")


def of(results: dict[str, Result], s: Subject, pick: Callable[[Result], float]) -> float:
    """A figure of `s`'s run, or FAILED when the run raised."""
    return pick(results[s.name]) if s.name in results else FAILED


def fmt(value: float, unit: str = "") -> str:
    if value != value:  # NaN: the run failed
        return "failed"
    return f"{value:,.0f}{unit}" if value >= 100 else f"{value:.2f}{unit}"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each latency run")
    parser.add_argument("--calls", type=int, default=200, help="concurrent calls in the load run")
    parser.add_argument(
        "--messages", type=int, default=50_000, help="messages in the throughput run"
    )
    parser.add_argument("--peer-messages", type=int, default=5_000, help="the same for each peer")
    parser.add_argument("--chat-size", type=int, default=10_000)
    parser.add_argument(
        "--db", help="also our store at this URL (postgres-local: start a throwaway PostgreSQL)"
    )
    parser.add_argument("--writers", type=int, default=1, help="writers sharing the calls")
    parser.add_argument(
        "--fleet", type=int, default=0, help="with --db: also the calls over this many processes"
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:  # one process of a fleet run: its calls, then its share of a burst
        folder = Path(tempfile.mkdtemp())
        result = await calls(Ours(folder, args.db), args.calls, args.seconds, 0.5)
        burst = await throughput(Ours(folder, args.db), args.messages, args.calls)
        print(json.dumps({"latencies_ms": result.latencies_ms, "rate": burst.rate}))
        return
    configure_logging("WARNING", handler=True)

    server = None
    if args.db == "postgres-local":
        from tests.pg import PgServer

        server = await asyncio.to_thread(PgServer)
        await asyncio.to_thread(server.start)
        args.db = f"{server.url}/postgres"
    try:
        await run(args)
    finally:
        if server is not None:
            await asyncio.to_thread(server.remove)


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        subjects: list[Subject] = [Ours(folder, None, args.writers)]
        if args.db:
            subjects.insert(0, Ours(folder, args.db, args.writers))
        subjects += [
            Peer(folder, SQLiteSession, "openai-agents SQLiteSession"),
            Peer(folder, AsyncSQLiteSession, "openai-agents AsyncSQLiteSession"),
        ]
        rows: list[tuple[str, list[float], str]] = []
        failures: dict[str, str] = {}  # subject name -> what went wrong, the first time

        async def measure(label: str, unit: str, fn: Callable[[Subject], Awaitable[float]]) -> None:
            values = []
            for s in subjects:
                print(f"  {label}: {s.name} …", file=sys.stderr, flush=True)
                try:
                    values.append(await fn(s))
                except Exception as exc:  # noqa: BLE001 - a peer's failure is a result to print
                    failures.setdefault(s.name, f"{label}: {type(exc).__name__}: {exc}"[:160])
                    values.append(FAILED)
                    with contextlib.suppress(Exception):
                        await s.close()
            rows.append((label, values, unit))
            print(f"    {values[-len(subjects) :]}", file=sys.stderr, flush=True)

        idle: list[float] = []
        async with loop_lag(idle):
            await asyncio.sleep(args.seconds)
        rows.append(
            (
                "event-loop lag p99, idle (timer baseline)",
                [percentile(idle, 0.99)] * len(subjects),
                " ms",
            )
        )

        one: dict[str, Result] = {}
        many: dict[str, Result] = {}

        async def one_call(s: Subject) -> float:
            one[s.name] = await calls(s, 1, args.seconds, 0.05)
            return percentile(one[s.name].latencies_ms, 0.5)

        async def many_calls(s: Subject) -> float:
            many[s.name] = await calls(s, args.calls, args.seconds, 0.5)
            return percentile(many[s.name].latencies_ms, 0.5)

        await measure("finalize→committed p50, 1 call", " ms", one_call)
        rows.append(
            (
                "finalize→committed p99, 1 call",
                [of(one, s, lambda r: percentile(r.latencies_ms, 0.99)) for s in subjects],
                " ms",
            )
        )
        await measure(f"finalize→committed p50, {args.calls} calls", " ms", many_calls)
        rows.append(
            (
                f"finalize→committed p99, {args.calls} calls",
                [of(many, s, lambda r: percentile(r.latencies_ms, 0.99)) for s in subjects],
                " ms",
            )
        )
        rows.append(
            (
                f"event-loop lag p99, {args.calls} calls",
                [of(many, s, lambda r: percentile(r.lag_ms, 0.99)) for s in subjects],
                " ms",
            )
        )

        tput: dict[str, Result] = {}

        async def run_throughput(s: Subject) -> float:
            n = args.messages if isinstance(s, Ours) else args.peer_messages
            tput[s.name] = await throughput(s, n, args.calls)
            return tput[s.name].rate

        await measure(
            f"throughput, acknowledged (messages/s), {args.calls} calls", "", run_throughput
        )
        rows.append(
            (
                f"throughput, committed (messages/s), {args.calls} calls",
                [of(tput, s, lambda r: r.committed_rate) for s in subjects],
                "",
            )
        )
        busy: dict[str, Result] = {}

        async def run_busy(s: Subject) -> float:
            n = (args.messages if isinstance(s, Ours) else args.peer_messages) // 5
            busy[s.name] = await throughput(s, n, args.calls, busy=True)
            return busy[s.name].committed_rate

        await measure("throughput, committed, beside a busy thread", "", run_busy)
        rows.append(
            (
                "building a message before hand-over",
                [of(tput, s, lambda r: r.build_us) for s in subjects],
                " µs",
            )
        )

        loads: dict[str, tuple[float, float]] = {}

        async def last60(s: Subject) -> float:
            loads[s.name] = await big_chat(s, args.chat_size)
            return loads[s.name][0]

        await measure(f"load newest 60 of a {args.chat_size:,}-message chat", " ms", last60)
        rows.append(
            (
                f"load all of a {args.chat_size:,}-message chat",
                [loads[s.name][1] if s.name in loads else FAILED for s in subjects],
                " ms",
            )
        )
        fleet_rows = await fleet(args) if args.fleet and args.db else []

    names = [s.name.removeprefix("openai-agents ") for s in subjects]
    header = ["metric", *names, *(f"{names[0]} vs {n}" for n in names[1:])]
    table = []
    for label, values, unit in rows:
        higher_is_better = label.startswith("throughput")
        ratios = [
            (values[0] / v if higher_is_better else v / values[0])
            if values[0] and v and v == v and values[0] == values[0]
            else float("nan")
            for v in values[1:]
        ]
        table.append([label, *(fmt(v, unit) for v in values), *(fmt(r, "×") for r in ratios)])
    print_table(header, table)
    print(f"\nratio: how many times better {names[0]} is (their time / its time, or its rate /")
    print('their rate); "failed": the run raised, below')
    for name, what in failures.items():
        print(f"  {name} failed at {what}")
    if fleet_rows:
        print_table(
            ["PostgreSQL", "commit p50 ms", "p99 ms", "burst msg/s", "vs one process"],
            fleet_rows,
        )


async def fleet(args: argparse.Namespace) -> list[list[str]]:
    """`args.calls` calls on PostgreSQL, each finalizing a message every 0.5 s: in one process
    (`args.writers` writers), then spread over `args.fleet` processes with a writer each, as a
    fleet of workers has. Then a burst of `args.messages` messages, split the same way, as fast
    as they commit. Commit p50 and p99 under the calls, and the burst's messages/s."""
    per_process = max(1, args.calls // args.fleet)
    folder = Path(tempfile.mkdtemp())
    one = await calls(Ours(folder, args.db, args.writers), args.calls, args.seconds, 0.5)
    burst = await throughput(Ours(folder, args.db, args.writers), args.messages, args.calls)
    writers = f"{args.writers} writer{'s' if args.writers > 1 else ''}"
    rows = [(f"1 process × {args.calls} calls, {writers}", one.latencies_ms, burst.rate)]
    print(f"  fleet: {args.fleet} processes × {per_process} calls …", file=sys.stderr, flush=True)
    share = str(args.messages // args.fleet)
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--child",
            "--db",
            args.db,
            "--calls",
            str(per_process),
            "--seconds",
            str(args.seconds),
            "--messages",
            share,
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        for _ in range(args.fleet)
    ]
    latencies: list[float] = []
    rate = 0.0  # the processes burst together: their rates add up
    for child in children:
        out, _ = await child.communicate()
        if child.returncode == 0:
            report = json.loads(out.splitlines()[-1])
            latencies += report["latencies_ms"]
            rate += report["rate"]
    label = f"{args.fleet} processes × {per_process} calls, a writer each"
    rows.append((label, latencies, rate if latencies else FAILED))
    return [
        [
            name,
            fmt(percentile(values, 0.5)),
            fmt(percentile(values, 0.99)),
            fmt(msgs),
            fmt(msgs / rows[0][2], "×"),
        ]  # fmt: skip
        for name, values, msgs in rows
    ]


if __name__ == "__main__":
    asyncio.run(main())
