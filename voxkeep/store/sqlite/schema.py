"""The schema of the SQLite store: its version, and the numbered migrations applied in order
(docs/store.md)."""

from __future__ import annotations

import functools
import sqlite3
import time

from voxkeep.core.errors import SchemaError
from voxkeep.store import migrations
from voxkeep.store.base import SchemaStatus
from voxkeep.store.sqlite.connection import SqliteConnection


def schema_version(conn: sqlite3.Connection) -> int:
    found = conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
    ).fetchone()
    if found is None:
        return 0
    return int(conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()[0] or 0)


def split_statements(script: str) -> list[str]:
    """Split a SQL script into complete statements (trigger bodies stay whole)."""
    statements, buffer = [], ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    if any(line.strip() and not line.strip().startswith("--") for line in buffer.splitlines()):
        raise SchemaError("a migration ends with an incomplete statement")
    return statements


def apply_migration(conn: sqlite3.Connection, m: migrations.Migration) -> bool:
    # Checked inside the transaction: two processes migrating at once apply it once.
    if schema_version(conn) >= m.version:
        return False
    for statement in split_statements(m.sql):
        conn.execute(statement)
    if m.version >= migrations.RECORDED_SINCE:
        conn.execute(
            "INSERT INTO schema_migrations (version, name, applied_at, oldest_code)"
            " VALUES (?, ?, ?, ?)",
            (m.version, m.name, time.time(), m.oldest_code),
        )
    else:
        conn.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
            (m.version, m.name, time.time()),
        )
    return True


class SqliteSchema(SqliteConnection):
    """Which schema the database has, and migrating it (docs/store.md, upgrades)."""

    async def schema_status(self) -> SchemaStatus:
        rows = await self._read(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
        )
        current, oldest = 0, 1
        if rows:
            current = int(
                (await self._read("SELECT MAX(version) FROM schema_migrations"))[0][0] or 0
            )
        if current >= migrations.RECORDED_SINCE:
            found = await self._read("SELECT MAX(oldest_code) FROM schema_migrations")
            oldest = int(found[0][0])
        return SchemaStatus(current, len(migrations.load("sqlite")), oldest)

    async def migrate(self) -> list[int]:
        applied: list[int] = []
        for migration in migrations.load("sqlite"):
            if await self._transaction(functools.partial(apply_migration, m=migration)):
                applied.append(migration.version)
        refusal = (await self.schema_status()).refusal("code")
        if refusal:
            raise SchemaError(refusal)
        return applied
