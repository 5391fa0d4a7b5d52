"""Control benchmark (docs/benchmarks.md): reply latency per command on a store of 1,000 chats and
100,000 messages, alone and during a 1,000 commands/s flood from the caller, with the
event-loop lag the flood adds.

    .venv/bin/python scripts/bench/control.py [--chats 1000] [--messages 100000] [--rounds 200]

Latency is `Dispatcher.handle()` from the packet's bytes to the reply, store reads included.
`new_chat` here switches chats on the store alone (the call's switcher also stops the agent and
greets, which is the session's time, not the control channel's).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import loop_lag, percentile, print_table

from voxkeep.control.dispatcher import Dispatcher, Sender
from voxkeep.core.logs import configure_logging
from voxkeep.store import Store, open_store
from voxkeep.store.records import NewChat, NewMessage

CALLER = Sender("alice")
_ids = itertools.count()


class StoreSwitcher:
    def __init__(self, store: Store, chat_id: str) -> None:
        self.store, self.chat_id, self.switching = store, chat_id, False

    async def new_chat(self) -> str | None:
        await self.store.close_chat(
            self.chat_id, status="closed", end_reason="new_chat", at=time.time()
        )
        saved, self.chat_id = self.chat_id, f"chat_bench_{next(_ids)}"
        await self.store.write([NewChat(id=self.chat_id, owner="alice", created_at=time.time())])
        return saved

    async def resume_chat(self, chat_id: str) -> tuple[str | None, int, int]:
        return None, 0, 0


async def fill(store: Store, chats: int, messages: int) -> list[str]:
    ids, now, per_chat = [], time.time(), messages // chats
    for c in range(chats):
        chat_id = f"chat_{c:05d}"
        ids.append(chat_id)
        records: list[Any] = [NewChat(id=chat_id, owner="alice", created_at=now - chats + c)]
        records += [
            NewMessage(
                id=f"m_{c}_{i}",
                chat_id=chat_id,
                role="user" if i % 2 == 0 else "assistant",
                content=f"message {i} about a trip to Lisbon and the weather there",
                created_at=now - chats + c,
            )  # fmt: skip
            for i in range(per_chat)
        ]
        await store.write(records)
    return ids


def payload(**fields: Any) -> bytes:
    return json.dumps({"v": 1, "id": f"b{next(_ids)}", **fields}).encode()


async def measure(d: Dispatcher, ids: list[str], rounds: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    commands: dict[str, Callable[[int], bytes]] = {
        "ping": lambda i: payload(type="ping"),
        "list_chats": lambda i: payload(type="list_chats", limit=20),
        "get_chat": lambda i: payload(type="get_chat", chat_id=ids[i % len(ids)], limit=50),
        "rename_chat": lambda i: payload(
            type="rename_chat", chat_id=ids[i % len(ids)], title=f"trip {i}"
        ),  # fmt: skip
        "new_chat": lambda i: payload(type="new_chat"),
        "bad_request": lambda i: b'{"v":1,"id":"x","type":',
    }
    for name, make in commands.items():
        times = out.setdefault(name, [])
        for i in range(rounds):
            data = make(i)
            start = time.perf_counter()
            reply = await d.handle(CALLER, data)
            times.append((time.perf_counter() - start) * 1000)
            assert reply is not None and (reply["type"] != "error" or name == "bad_request"), reply
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--chats", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    configure_logging("WARNING", handler=True)
    with tempfile.TemporaryDirectory() as tmp:
        store = await open_store(f"sqlite:///{Path(tmp)}/bench.db")
        await store.migrate()
        ids = await fill(store, args.chats, args.messages)
        quiet = Dispatcher(store, StoreSwitcher(store, ids[-1]), "alice", rate=1e9, burst=10**9)
        calm = await measure(quiet, ids, args.rounds)
        idle_lag: list[float] = []
        async with loop_lag(idle_lag):
            await asyncio.sleep(2)

        # the same, while the caller floods the channel with 1,000 pings a second through a
        # production-limited dispatcher (5/s, burst 10), as the call's own channel would be
        limited = Dispatcher(store, StoreSwitcher(store, ids[-1]), "alice", rate=5, burst=10)
        stop = asyncio.Event()
        flood_lag: list[float] = []

        async def flood() -> None:
            while not stop.is_set():
                for _ in range(10):
                    await limited.handle(CALLER, payload(type="ping"))
                await asyncio.sleep(0.01)

        async with loop_lag(flood_lag):
            task = asyncio.create_task(flood())
            busy = await measure(quiet, ids, args.rounds)
            stop.set()
            await task
        await store.aclose()

    rows: list[list[Any]] = []
    for name in calm:
        stats = [percentile(calm[name], 0.5), percentile(calm[name], 0.99)]
        stats += [percentile(busy[name], 0.5), percentile(busy[name], 0.99)]
        rows.append([name, *(f"{v:.2f}" for v in stats)])
    idle, flooded = percentile(idle_lag, 0.99), percentile(flood_lag, 0.99)
    rows.append(["event-loop lag p99", f"{idle:.2f}", "", f"{flooded:.2f}", ""])
    print_table(["command (ms)", "p50", "p99", "p50 in flood", "p99 in flood"], rows)
    print(
        f"\n{args.chats:,} chats, {args.messages:,} messages. "
        "Target (docs/benchmarks.md): reply p99 ≤ 10 ms."
    )


if __name__ == "__main__":
    asyncio.run(main())
