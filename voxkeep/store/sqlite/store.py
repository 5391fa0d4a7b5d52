"""`SqliteStore`: the `Store` protocol on one SQLite file, put together from the parts of this
package, each a module named for what it does (docs/architecture.md)."""

from __future__ import annotations

from voxkeep.store.sqlite.holding import SqliteHolding
from voxkeep.store.sqlite.maintenance import SqliteMaintenance
from voxkeep.store.sqlite.outbox import SqliteOutbox
from voxkeep.store.sqlite.writes import SqliteWrites


class SqliteStore(SqliteWrites, SqliteHolding, SqliteOutbox, SqliteMaintenance):
    """`Store` on one SQLite file. Build it with `await SqliteStore.open(url)`."""
