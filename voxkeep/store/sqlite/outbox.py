"""The webhook outbox on SQLite (docs/webhooks.md): plain functions of the writer's connection,
each run whole in one transaction (see `SqliteStore._transaction`)."""

from __future__ import annotations

import functools
import json
import sqlite3
from collections.abc import Sequence

from voxkeep.store.records import OutboxEvent
from voxkeep.store.sqlite.connection import SqliteConnection


def take(conn: sqlite3.Connection, now: float, lease_s: float, limit: int) -> list[OutboxEvent]:
    rows = conn.execute(
        "UPDATE webhook_outbox SET next_at = ?, attempts = attempts + 1 WHERE seq IN"
        " (SELECT seq FROM webhook_outbox WHERE next_at <= ? ORDER BY next_at, seq LIMIT ?)"
        " RETURNING seq, id, type, data, created_at, attempts, acked",
        (now + lease_s, now, limit),
    ).fetchall()
    rows.sort()  # RETURNING has no order of its own
    return [
        OutboxEvent(id, kind, json.loads(data), created_at, attempts, json.loads(acked))
        for _, id, kind, data, created_at, attempts, acked in rows
    ]


def settle(
    conn: sqlite3.Connection, event_id: str, acked: Sequence[str], retry_at: float | None
) -> None:
    if retry_at is None:
        conn.execute("DELETE FROM webhook_outbox WHERE id = ?", (event_id,))
    else:
        conn.execute(
            "UPDATE webhook_outbox SET acked = ?, next_at = ? WHERE id = ?",
            (json.dumps(list(acked)), retry_at, event_id),
        )


def expire(conn: sqlite3.Connection, created_before: float) -> int:
    return conn.execute(
        "DELETE FROM webhook_outbox WHERE created_at < ?", (created_before,)
    ).rowcount


class SqliteOutbox(SqliteConnection):
    """The webhook outbox's leases (docs/webhooks.md)."""

    async def take_events(self, *, now: float, lease_s: float, limit: int) -> list[OutboxEvent]:
        return await self._transaction(
            functools.partial(take, now=now, lease_s=lease_s, limit=limit)
        )

    async def settle_event(
        self, event_id: str, *, acked: Sequence[str], retry_at: float | None
    ) -> None:
        await self._transaction(
            functools.partial(settle, event_id=event_id, acked=acked, retry_at=retry_at)
        )

    async def expire_events(self, *, created_before: float, dry_run: bool = False) -> int:
        work = functools.partial(expire, created_before=created_before)
        return await self._transaction(work, commit=not dry_run)
