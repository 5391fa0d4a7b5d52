"""Webhook delivery (docs/webhooks.md): events leave the store's outbox for the team's backend.

The store's triggers write each event in the transaction of the change it tells of; this loop, in
the worker's main process, leases the due ones, POSTs each to every receiver that has not
acknowledged it yet, and settles it: gone once every receiver answered 2xx, else due again after a
backoff. A receiver that is down costs a call nothing (calls run in other processes and never wait
on it), and nothing is lost when a worker dies (the lease runs out and any worker takes it up).
Delivery is at least once; the event's id is the same every time. Requests follow the Standard
Webhooks specification (https://www.standardwebhooks.com): its headers, its signature and its
secret format, so receivers verify them with its libraries.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import time
from collections.abc import Sequence
from typing import Any

import aiohttp
import structlog

from voxkeep.core import metrics
from voxkeep.core.errors import VoxkeepError
from voxkeep.core.settings import Settings
from voxkeep.core.signing import sign, signing_key
from voxkeep.store import Store, open_store
from voxkeep.store.records import OutboxEvent
from voxkeep.views.chat import iso

log = structlog.get_logger(__name__)

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
BATCH = 50
POLL_S = 1.0
MAX_BACKOFF_S = 600.0
TASK = "voxkeep.jobs.webhooks"


def body(event: OutboxEvent) -> bytes:
    """The bytes POSTed for `event`, the same on every attempt: the specification's envelope
    (`type`, `timestamp`, `data`) with the event's `id`; every time in it is ISO 8601 UTC."""
    envelope = {
        "id": event.id,
        "type": event.type,
        "timestamp": iso(event.created_at),
        "data": {k: iso(v) if _is_time(k, v) else v for k, v in event.data.items()},
    }
    return json.dumps(envelope, separators=(",", ":"), sort_keys=True).encode()


def _is_time(key: str, value: Any) -> bool:
    return key.endswith("_at") and isinstance(value, int | float) and not isinstance(value, bool)


def receiver_key(url: str) -> str:
    """How the outbox remembers a receiver that acknowledged: not the URL, which may hold a
    token."""
    return hashlib.sha256(url.encode()).hexdigest()[:16]


def backoff(attempts: int, first_s: float) -> float:
    """The wait after the `attempts`-th failed attempt: doubling from `first_s`, capped, with
    jitter so a fleet's retries spread out."""
    wait: float = min(MAX_BACKOFF_S, first_s * 2.0 ** max(0, attempts - 1))
    return wait * random.uniform(0.75, 1.0)


class Deliverer:
    """Delivers the outbox's events to `urls`, signed with `secret` (`whsec_…`), until
    cancelled."""

    def __init__(
        self,
        store: Store,
        urls: Sequence[str],
        secret: str,
        *,
        timeout_s: float = 10.0,
        retry_s: float = 5.0,
    ) -> None:
        self._store = store
        self._urls = list(urls)
        self._key = signing_key(secret)
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._retry_s = retry_s
        self._lease_s = timeout_s * 3 + 5  # longer than one round of attempts

    async def run(self, http: aiohttp.ClientSession) -> None:
        while True:
            try:
                taken = await self.deliver_due(http)
            except VoxkeepError as exc:  # the store is down: try again at the next poll
                log.warning("webhooks.store_failed", error=type(exc).__name__)
                taken = 0
            if taken < BATCH:
                await asyncio.sleep(POLL_S)

    async def deliver_due(self, http: aiohttp.ClientSession) -> int:
        """One round: lease the due events, attempt each, settle each. How many were leased."""
        events = await self._store.take_events(now=time.time(), lease_s=self._lease_s, limit=BATCH)
        await asyncio.gather(*(self._attempt(http, event) for event in events))
        return len(events)

    async def _attempt(self, http: aiohttp.ClientSession, event: OutboxEvent) -> None:
        payload = body(event)
        acked = list(event.acked)
        waiting = [url for url in self._urls if receiver_key(url) not in acked]
        results = await asyncio.gather(*(self._post(http, url, event, payload) for url in waiting))
        acked += [receiver_key(url) for url, ok in zip(waiting, results, strict=True) if ok]
        done = all(ok for ok in results)
        retry_at = None if done else time.time() + backoff(event.attempts, self._retry_s)
        await self._store.settle_event(event.id, acked=acked, retry_at=retry_at)

    async def _post(
        self, http: aiohttp.ClientSession, url: str, event: OutboxEvent, payload: bytes
    ) -> bool:
        now = int(time.time())
        headers = {
            "Content-Type": "application/json",
            ID_HEADER: event.id,
            TIMESTAMP_HEADER: str(now),
            SIGNATURE_HEADER: sign(self._key, event.id, now, payload),
        }
        try:
            async with http.post(url, data=payload, headers=headers, timeout=self._timeout) as r:
                result = "ok" if 200 <= r.status < 300 else "http_error"
                status: int | None = r.status
        except TimeoutError:
            result, status = "timeout", None
        except aiohttp.ClientError:
            result, status = "unreachable", None
        metrics.WEBHOOK_DELIVERIES.labels(type=event.type, result=result).inc()
        if result != "ok":
            log.warning(
                "webhooks.attempt_failed", event_id=event.id, type=event.type, result=result,
                status=status, attempt=event.attempts, receiver=receiver_key(url),
            )  # fmt: skip
        return result == "ok"


async def run(settings: Settings) -> None:
    """Deliver the outbox's events to `VOXKEEP_WEBHOOK_URLS` until cancelled; the store down is
    retried at the next poll."""
    store: Store | None = None
    try:
        async with aiohttp.ClientSession() as http:
            while store is None:
                try:
                    store = await open_store(settings.db_url)
                except VoxkeepError as exc:
                    log.warning("webhooks.store_failed", error=type(exc).__name__)
                    await asyncio.sleep(POLL_S)
            deliverer = Deliverer(
                store, settings.webhooks, settings.webhook_secret.get_secret_value(),
                timeout_s=settings.webhook_timeout_s, retry_s=settings.webhook_retry_s,
            )  # fmt: skip
            await deliverer.run(http)
    finally:
        if store is not None:
            await store.aclose()
