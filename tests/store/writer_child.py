"""A process that writes through the Writer as fast as it can and prints each acknowledged id.

Run by the kill tests: `python writer_child.py DB_URL JOURNAL_DIR CHAT_ID RUN MAX_QUEUE`.
An id is printed only after its future resolved (committed, or fsynced to the journal).
"""

import asyncio
import functools
import os
import sys
import time

from voxkeep.store import open_store
from voxkeep.store.records import NewMessage
from voxkeep.store.writer import Writer, WriterOptions


def acknowledge(msg_id: str, _: object) -> None:
    os.write(1, f"ack {msg_id}\n".encode())


async def main() -> None:
    url, journal, chat_id, run, max_queue = sys.argv[1:6]
    writer = await Writer.start(
        await open_store(url), journal, WriterOptions(max_queue=int(max_queue), max_batch=64)
    )
    os.write(1, b"ready\n")
    i = 0
    while True:
        for _ in range(50):
            msg_id = f"r{run}-{i}"
            fut = writer.submit(
                NewMessage(
                    id=msg_id,
                    chat_id=chat_id,
                    role="user",
                    content=f"run {run} message {i}",
                    created_at=time.time(),
                )
            )
            fut.add_done_callback(functools.partial(acknowledge, msg_id))
            i += 1
        await asyncio.sleep(0.002)


asyncio.run(main())
