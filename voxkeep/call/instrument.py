"""The worker's store, measured (docs/metrics.md): every transaction a call makes is timed by
kind, its failures counted by error code, and, when a tracer is configured through LiveKit's
OpenTelemetry hook (`livekit.agents.telemetry.set_tracer_provider`), it becomes a span."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

from livekit.agents.telemetry import tracer

from voxkeep.core import metrics
from voxkeep.core.errors import VoxkeepError
from voxkeep.store import Store

COMMITS = frozenset(
    {
        "write", "close_chat", "claim_chat", "heartbeat", "sweep", "set_summary",
        "rename_chat", "delete_chat", "prune", "erase_owner", "migrate",
    }
)  # fmt: skip
"""The store's methods that change it: its transactions."""


class _Measured:
    def __init__(self, store: Store) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._store, name)
        if name not in COMMITS:
            return found
        return _timed(name, found)


def _timed(kind: str, method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    async def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        with tracer.start_as_current_span(f"voxkeep.store.{kind}"):
            try:
                return await method(*args, **kwargs)
            except VoxkeepError as exc:
                metrics.COMMIT_FAILURES.labels(kind=kind, error=exc.code).inc()
                raise
            finally:
                metrics.COMMIT_SECONDS.labels(kind=kind).observe(time.perf_counter() - started)

    return timed


def measured(store: Store) -> Store:
    """`store`, with its transactions timed, counted and traced."""
    return store if isinstance(store, _Measured) else cast(Store, _Measured(store))
