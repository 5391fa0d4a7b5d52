"""Resume: time from call start to a ready LLM context, for chats of 100, 1,000 and 10,000
messages, beside openai-agents' SQLiteSession.get_items(limit) on the same chats in the same run.

Ours is the whole store side of a call start (docs/resume.md): find the caller's chat to resume,
claim it (a transaction that takes it over), read its newest messages and rebuild them into a
`ChatContext` within the budgets — what `ChatSwitcher.open` awaits before the session starts. The
peer only reads its newest items (it has no claim and no context to build), so the ratio flatters
the peer.

    .venv/bin/python scripts/bench/resume.py [--repeats 30]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import percentile, print_table
from agents import SQLiteSession

from voxkeep.call.context import Budget
from voxkeep.call.resume import load
from voxkeep.core.ids import new_call_id, new_chat_id
from voxkeep.core.logs import configure_logging
from voxkeep.store import open_store
from voxkeep.store.base import Store
from voxkeep.store.records import NewCall, NewChat, NewMessage, Record

SIZES = (100, 1_000, 10_000)
TEXT = "I'd like to plan a trip to Lisbon in May, somewhere near the river if possible."
BUDGET = Budget(tokens=4000, messages=60)
OWNERS = 50  # other callers' chats around the one resumed, as in a live store


async def seed(store: Store, owner: str, size: int) -> str:
    now = time.time() - size
    chat_id = new_chat_id()
    records: list[Record] = [NewChat(id=chat_id, owner=owner, created_at=now)]
    records += [
        NewMessage(
            id=f"{chat_id}-{i}",
            chat_id=chat_id,
            role="user" if i % 2 == 0 else "assistant",
            content=TEXT,
            created_at=now + i,
        )  # fmt: skip
        for i in range(size)
    ]
    for start in range(0, len(records), 5_000):
        await store.write(records[start : start + 5_000])
    await store.close_chat(chat_id, status="closed", end_reason="hangup", at=time.time())
    return chat_id


async def ours(store: Store, owner: str) -> tuple[int, float, float]:
    """Call start to a ready context (choose, claim, read, rebuild): ms for the whole, and ms
    for the read and rebuild alone (what compares with the peer's read). The chat is closed
    again afterwards, outside the timing, so the next round resumes it the same way."""
    start = time.perf_counter()
    chat = await store.resume_candidate(owner, ended_since=time.time() - 600)
    assert chat is not None
    call = NewCall(id=new_call_id(), chat_id=chat.id, participant=owner, started_at=time.time())
    chat = await store.claim_chat(call, owner=owner)
    claimed = time.perf_counter()
    loaded = await load(store, chat, budget=BUDGET, deadline=asyncio.get_running_loop().time() + 1)
    done = time.perf_counter()
    assert loaded.complete
    await store.close_chat(chat.id, status="closed", end_reason="hangup", at=time.time())
    return loaded.placed, (done - start) * 1000, (done - claimed) * 1000


async def run(folder: Path, repeats: int) -> list[list[Any]]:
    store = await open_store(f"sqlite:///{folder}/voxkeep.db")
    await store.migrate()
    rows = []
    for size in SIZES:
        owner = f"caller-{size}"
        for other in range(OWNERS):
            await seed(store, f"other-{size}-{other}", 20)
        await seed(store, owner, size)
        peer = SQLiteSession(f"session-{size}", folder / "peer.db")
        await peer.add_items(
            [{"role": "user" if i % 2 == 0 else "assistant", "content": TEXT} for i in range(size)]
        )
        await asyncio.sleep(0.5)  # a caller comes back later, not amid the write burst
        mine: list[float] = []
        reads: list[float] = []
        theirs: list[float] = []
        for _ in range(repeats):
            placed, whole, read = await ours(store, owner)
            mine.append(whole)
            reads.append(read)
            start = time.perf_counter()
            items = await peer.get_items(limit=BUDGET.messages)
            theirs.append((time.perf_counter() - start) * 1000)
            assert len(items) == BUDGET.messages
        peer.close()
        p50, read50 = statistics.median(mine), statistics.median(reads)
        peer50 = statistics.median(theirs)
        rows.append([
            f"{size:,}", placed, f"{p50:.2f}", f"{percentile(mine, 0.99):.2f}",
            f"{read50:.2f}", f"{peer50:.2f}", f"{percentile(theirs, 0.99):.2f}",
            f"{read50 / peer50:.2f}",
        ])  # fmt: skip
    await store.aclose()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    configure_logging("WARNING")
    with tempfile.TemporaryDirectory() as folder:
        rows = asyncio.run(run(Path(folder), args.repeats))
    print_table(
        ["chat messages", "in context", "start→ready p50 ms", "p99 ms", "read+rebuild p50",
         "peer read p50 ms", "peer p99 ms", "read+rebuild/peer"],
        rows,
    )  # fmt: skip
    print("\nstart→ready: choose + claim (a write transaction) + read + rebuild to a ChatContext;")
    print("read+rebuild: its last two steps; peer: SQLiteSession.get_items(limit=60), items only")
    print(f"target: a 10,000-message chat to a ready context in ≤ 20 ms ({sys.platform})")


if __name__ == "__main__":
    main()
