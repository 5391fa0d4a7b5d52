"""The schema of the Postgres store: its version, and the numbered migrations applied in order
(docs/store.md)."""

from __future__ import annotations

import time

import asyncpg

from voxkeep.core.errors import SchemaError
from voxkeep.store import migrations
from voxkeep.store.base import SchemaStatus
from voxkeep.store.postgres.connection import PostgresConnection

MIGRATION_LOCK = 7_460_001  # pg_advisory_xact_lock key: one migrator at a time


class PostgresSchema(PostgresConnection):
    """Which schema the database has, and migrating it (docs/store.md, upgrades)."""

    async def schema_status(self) -> SchemaStatus:
        rows = await self._fetch("SELECT to_regclass('schema_migrations') IS NOT NULL")
        current, oldest = 0, 1
        if rows[0][0]:
            current = int(
                (await self._fetch("SELECT MAX(version) FROM schema_migrations"))[0][0] or 0
            )
        if current >= migrations.RECORDED_SINCE:
            found = await self._fetch("SELECT MAX(oldest_code) FROM schema_migrations")
            oldest = int(found[0][0])
        return SchemaStatus(current, len(migrations.load("postgres")), oldest)

    async def migrate(self) -> list[int]:
        applied: list[int] = []
        for migration in migrations.load("postgres"):

            async def apply(conn: asyncpg.Connection, m: migrations.Migration = migration) -> bool:
                await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
                exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
                if exists and await conn.fetchval(
                    "SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version >= $1)", m.version
                ):
                    return False
                await conn.execute(m.sql)
                if m.version >= migrations.RECORDED_SINCE:
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name, applied_at, oldest_code)"
                        " VALUES ($1, $2, $3, $4)",
                        m.version, m.name, time.time(), m.oldest_code,
                    )  # fmt: skip
                else:
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name, applied_at)"
                        " VALUES ($1, $2, $3)",
                        m.version, m.name, time.time(),
                    )  # fmt: skip
                return True

            if await self._transaction(apply):
                applied.append(migration.version)
        refusal = (await self.schema_status()).refusal("code")
        if refusal:
            raise SchemaError(refusal)
        return applied
