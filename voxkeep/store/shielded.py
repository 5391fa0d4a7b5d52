"""A started transaction runs to its end (commit or rollback) even when whoever awaited it is
cancelled — LiveKit cancels tasks at job shutdown (docs/livekit.md). Shared by every backend."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TypeVar

T = TypeVar("T")


async def finish(future: asyncio.Future[T]) -> T:
    """Await a started transaction; if we are cancelled, let it end first, then propagate."""
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        while not future.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait({future})
        if not future.cancelled():
            future.exception()  # retrieved: the caller's cancellation is what propagates
        raise
