"""The sweeper (docs/resume.md, docs/operations.md): chats left active by a call that stopped
heartbeating (a crashed worker, a lost connection) become `interrupted`/`lost`, or are deleted
when nobody spoke; ended chats older than `VOXKEEP_RETENTION_DAYS` are deleted; webhook events
past `VOXKEEP_WEBHOOK_MAX_AGE_S` are dropped; once an hour what was deleted is purged from the
database's files. It runs in the worker's main process at start and
every minute, and as `voxkeepctl sweep`."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import structlog

from voxkeep.core import metrics
from voxkeep.core.errors import VoxkeepError
from voxkeep.core.settings import Settings
from voxkeep.store import ANY_OWNER, open_store
from voxkeep.store.base import Store

log = structlog.get_logger(__name__)
DAY_S = 86_400.0
PURGE_EVERY_S = 3_600.0
"""How often the words of chats deleted one by one leave the database's files (erasure and
retention purge at once)."""


@dataclass(frozen=True, slots=True)
class Sweep:
    """What one sweep did."""

    calls_lost: int = 0
    chats_lost: int = 0
    chats_deleted: int = 0
    """Active chats nobody spoke in, deleted."""
    retention_deleted: int = 0
    """Ended chats past the retention period, deleted."""
    events_expired: int = 0
    """Webhook events nobody could be given in time, dropped."""
    chats_waiting: int = 0
    """Active chats nobody spoke in, kept while a journal may still hold their words."""
    purges: int = 0
    """Purges done for the erasures since the last (one for any number of them)."""


async def sweep(
    store: Store,
    *,
    stale_after_s: float,
    retention_days: float | None = None,
    event_max_age_s: float | None = None,
    now: float | None = None,
    dry_run: bool = False,
) -> Sweep:
    """One sweep: what stopped heartbeating more than `stale_after_s` before `now`, what ended
    more than `retention_days` ago, and events older than `event_max_age_s`. `dry_run`: what
    it would do, by the same rules, and nothing done."""
    now = time.time() if now is None else now
    swept = await store.sweep(stale_before=now - stale_after_s, dry_run=dry_run)
    retention = 0
    if retention_days is not None:
        cutoff = now - retention_days * DAY_S
        if dry_run:
            retention = len(await store.to_delete(owner=ANY_OWNER, older_than=cutoff))
        else:
            retention = await store.prune(older_than=cutoff, owner=ANY_OWNER)
        if retention and not dry_run:
            await store.purge()
    expired = 0
    if event_max_age_s is not None:
        cutoff = now - event_max_age_s
        expired = await store.expire_events(created_before=cutoff, dry_run=dry_run)
    purged = 0 if dry_run else int(await store.purge_if_due())
    done = Sweep(
        swept.calls_lost, swept.chats_lost, swept.chats_deleted, retention, expired,
        swept.chats_waiting, purged,
    )  # fmt: skip
    if dry_run:
        return done
    counts = {name: getattr(done, name) for name in Sweep.__dataclass_fields__}
    for action, count in counts.items():
        if count and action != "chats_waiting":  # (a state, not something done)
            metrics.SWEEPER.labels(action=action).inc(count)
    if any(counts.values()):
        log.info("sweep.done", **counts)
    if expired:
        log.warning("webhooks.expired", events=expired)
    return done


async def run(settings: Settings) -> None:
    """Sweep now and every `sweep_interval_s`, until cancelled; a failed sweep (the store
    down) is logged and tried again at the next one."""
    store: Store | None = None
    purged_at = time.monotonic()
    try:
        while True:
            try:
                store = store or await open_store(settings.db_url)
                await sweep(
                    store, stale_after_s=settings.stale_after_s,
                    retention_days=settings.retention_days,
                    event_max_age_s=settings.webhook_max_age_s,
                )  # fmt: skip
                if time.monotonic() - purged_at >= PURGE_EVERY_S:
                    await store.purge()
                    purged_at = time.monotonic()
            except VoxkeepError as exc:
                log.warning("sweep.failed", error=type(exc).__name__)
            await asyncio.sleep(settings.sweep_interval_s)
    finally:
        if store is not None:
            await store.aclose()
