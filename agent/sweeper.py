"""The sweeper (docs/resume.md): chats left active by a call that stopped heartbeating (a crashed
worker, a lost connection) become `interrupted`/`lost`, or are deleted when nobody spoke. It
runs in the worker's main process at start and every minute, and as `agentctl sweep`."""

from __future__ import annotations

import asyncio
import time

import structlog

from agent.errors import AgentError
from agent.settings import Settings
from agent.store import open_store
from agent.store.base import Store, Swept

log = structlog.get_logger(__name__)


async def sweep(store: Store, *, stale_after_s: float, now: float | None = None) -> Swept:
    """One sweep: what stopped heartbeating more than `stale_after_s` before `now`."""
    now = time.time() if now is None else now
    swept = await store.sweep(stale_before=now - stale_after_s)
    if swept.calls_lost or swept.chats_lost or swept.chats_deleted:
        log.info(
            "sweep.done", calls_lost=swept.calls_lost, chats_lost=swept.chats_lost,
            chats_deleted=swept.chats_deleted,
        )  # fmt: skip
    return swept


async def run(settings: Settings) -> None:
    """Sweep now and every `sweep_interval_s`, until cancelled; a failed sweep (the store
    down) is logged and tried again at the next one."""
    store: Store | None = None
    try:
        while True:
            try:
                store = store or await open_store(settings.db_url)
                await sweep(store, stale_after_s=settings.stale_after_s)
            except AgentError as exc:
                log.warning("sweep.failed", error=type(exc).__name__)
            await asyncio.sleep(settings.sweep_interval_s)
    finally:
        if store is not None:
            await store.aclose()
