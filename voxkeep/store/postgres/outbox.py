"""The webhook outbox on PostgreSQL (docs/webhooks.md). Leases skip rows another worker holds
locked, so a fleet's workers share the outbox without waiting on each other."""

from __future__ import annotations

import json
from collections.abc import Sequence

import asyncpg

from voxkeep.store.postgres.connection import PostgresConnection
from voxkeep.store.records import OutboxEvent


async def take(
    conn: asyncpg.Connection, now: float, lease_s: float, limit: int
) -> list[OutboxEvent]:
    rows = await conn.fetch(
        "UPDATE webhook_outbox SET next_at = $1, attempts = attempts + 1 WHERE seq IN"
        " (SELECT seq FROM webhook_outbox WHERE next_at <= $2 ORDER BY next_at, seq LIMIT $3"
        "  FOR UPDATE SKIP LOCKED)"
        " RETURNING seq, id, type, data, created_at, attempts, acked",
        now + lease_s, now, limit,
    )  # fmt: skip
    return [
        OutboxEvent(
            row["id"],
            row["type"],
            json.loads(row["data"]),
            row["created_at"],
            row["attempts"],
            json.loads(row["acked"]),
        )  # fmt: skip
        for row in sorted(rows, key=lambda row: int(row["seq"]))
    ]


async def settle(
    conn: asyncpg.Connection, event_id: str, acked: Sequence[str], retry_at: float | None
) -> None:
    if retry_at is None:
        await conn.execute("DELETE FROM webhook_outbox WHERE id = $1", event_id)
    else:
        await conn.execute(
            "UPDATE webhook_outbox SET acked = $1::jsonb, next_at = $2 WHERE id = $3",
            json.dumps(list(acked)), retry_at, event_id,
        )  # fmt: skip


async def expire(conn: asyncpg.Connection, created_before: float) -> int:
    status = await conn.execute("DELETE FROM webhook_outbox WHERE created_at < $1", created_before)
    return int(status.split()[-1])


class PostgresOutbox(PostgresConnection):
    """The webhook outbox's leases (docs/webhooks.md)."""

    async def take_events(self, *, now: float, lease_s: float, limit: int) -> list[OutboxEvent]:
        return await self._transaction(lambda conn: take(conn, now, lease_s, limit))

    async def settle_event(
        self, event_id: str, *, acked: Sequence[str], retry_at: float | None
    ) -> None:
        await self._transaction(lambda conn: settle(conn, event_id, acked, retry_at))

    async def expire_events(self, *, created_before: float, dry_run: bool = False) -> int:
        return await self._transaction(
            lambda conn: expire(conn, created_before), commit=not dry_run
        )
