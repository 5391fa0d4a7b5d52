"""`voxkeepctl background`: the sweeper, retention and webhook delivery in a process of their
own, for workers started with `VOXKEEP_BACKGROUND=off` (docs/embedding.md#the-background-work).
Runs until SIGTERM or Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from typing import Any

from voxkeep.core.settings import Settings
from voxkeep.jobs.background import start_tasks


def add_parsers(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser(
        "background", help="run the sweeper and webhook delivery until stopped (no worker)"
    )
    p.set_defaults(run=run, own_store=True)


async def run(settings: Settings, args: argparse.Namespace) -> int:
    if args.db:
        settings = settings.model_copy(update={"db_url": args.db})
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    tasks = start_tasks(settings.model_copy(update={"background": True}))
    sys.stderr.write("voxkeepctl: the sweeper and webhook delivery are running; Ctrl-C stops\n")
    try:
        await stop.wait()
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
    return 0
