"""Erasure benchmark (docs/benchmarks.md): what one caller repeating `erase_me` costs 20 other
calls, as the finalize→committed p99 of their messages, beside the same calls with nobody
erasing, in the same run.

    .venv/bin/python scripts/bench/erasure.py [--seconds 10] [--calls 20] [--messages 100000]
    .venv/bin/python scripts/bench/erasure.py --db postgresql://…

Four runs on one store seeded with `--messages` messages (the search index's size is what a
purge costs): nobody else writing; a caller in another process writing twice a second (the
floor: with SQLite, any second process's write makes the others wait for the lock); that caller
erasing after each write, as erasure is now (the chats deleted, a purge owed to the sweeper's
next run); and the same with the purge at every erasure, as it was before (SQLite: the whole
search index merged under the write lock; PostgreSQL: VACUUM). The ratio is each run's p99 over
the floor's: 1.0 costs the calls nothing more than any other caller's write.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from _common import percentile, print_table

from voxkeep.core.logs import configure_logging
from voxkeep.store import Store, open_store
from voxkeep.store.records import NewChat, NewMessage, Record
from voxkeep.store.writer import Writer

TEXT = "I'd like to plan a trip to Lisbon in May with the kids, somewhere near the river please."
SEED_BATCH = 2000
TURN_S = 0.05
ERASE_EVERY_S = 0.5


@dataclass
class Run:
    name: str
    latencies_ms: list[float] = field(default_factory=list)
    erasures: int = 0


async def seed(store: Store, messages: int) -> None:
    chats = max(1, messages // 100)
    for c in range(chats):
        chat = NewChat(id=f"chat_seed_{c}", owner=f"owner{c % 500}", created_at=time.time())
        records: list[Record] = [chat]
        records += [
            NewMessage(id=f"seed_{c}_{i}", chat_id=chat.id, role="user" if i % 2 else "assistant",
                       content=f"{TEXT} {c} {i}", created_at=time.time())
            for i in range(messages // chats)
        ]  # fmt: skip
        for start in range(0, len(records), SEED_BATCH):
            await store.write(records[start : start + SEED_BATCH])


async def one_call(writer: Writer, n: int, seconds: float, run: Run) -> None:
    chat = NewChat(id=f"chat_{run.name}_{n}", owner=f"caller{n}", created_at=time.time())
    await writer.submit(chat)
    end = time.monotonic() + seconds
    i = 0
    while time.monotonic() < end:
        started = time.perf_counter()
        await writer.submit(
            NewMessage(id=f"{run.name}_{n}_{i}", chat_id=chat.id, role="user", content=TEXT,
                       created_at=time.time())
        )  # fmt: skip
        run.latencies_ms.append((time.perf_counter() - started) * 1000)
        i += 1
        await asyncio.sleep(TURN_S)


async def eraser(store: Store, seconds: float, run: Run, *, erase: bool, purge_each: bool) -> None:
    """A caller who says something, erases it all, and again: each time a chat to erase
    (`erase` False: who only says something)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        chat = NewChat(id=f"chat_erased_{run.name}_{run.erasures}", owner="eraser",
                       created_at=time.time())  # fmt: skip
        said = NewMessage(id=f"erased_{run.name}_{run.erasures}", chat_id=chat.id, role="user",
                          content=TEXT, created_at=time.time())  # fmt: skip
        await store.write([chat, said])
        if erase:
            await store.erase_owner("eraser")
            run.erasures += 1
        if purge_each:
            await store.purge_if_due()  # (what every erasure did before)
        await asyncio.sleep(ERASE_EVERY_S)


async def measure(url: str, folder: Path, run: Run, calls: int, seconds: float, erase: str) -> None:
    writer = await Writer.start(await open_store(url), folder / f"journal-{run.name}")
    erasing = await open_store(url)  # the erasing caller's job process has its own connection
    try:
        work = [one_call(writer, n, seconds, run) for n in range(calls)]
        if erase != "none":
            work.append(
                eraser(erasing, seconds, run, erase=erase != "write", purge_each=erase == "each")
            )
        await asyncio.gather(*work)
    finally:
        await writer.aclose()
        await erasing.aclose()


async def main(args: argparse.Namespace) -> int:
    configure_logging("WARNING")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        url = args.db or f"sqlite:///{folder / 'bench.db'}"
        store = await open_store(url)
        await store.migrate()
        print(f"seeding {args.messages} messages...", file=sys.stderr)
        await seed(store, args.messages)
        await store.aclose()
        runs = [Run("alone"), Run("floor"), Run("now"), Run("before")]
        for run, erase in zip(runs, ("none", "write", "owed", "each"), strict=True):
            print(f"running {run.name}...", file=sys.stderr)
            await measure(url, folder, run, args.calls, args.seconds, erase)
    floor = percentile(runs[1].latencies_ms, 0.99)
    what = {
        "alone": "nobody else writing",
        "floor": "a caller in another process writing",
        "now": "that caller erasing too, purge owed to the sweeper",
        "before": "that caller erasing too, purge at each erasure",
    }
    print_table(
        ["run", "erasures", "commits", "p50 ms", "p99 ms", "p99 / floor"],
        [
            [what[r.name], r.erasures, len(r.latencies_ms),
             f"{percentile(r.latencies_ms, 0.5):.1f}", f"{percentile(r.latencies_ms, 0.99):.1f}",
             f"{percentile(r.latencies_ms, 0.99) / floor:.2f}"]
            for r in runs
        ],
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--db", help="a PostgreSQL URL (default: a SQLite file)")
    sys.exit(asyncio.run(main(parser.parse_args())))
