"""`PostgresStore`: the `Store` protocol on PostgreSQL, put together from the parts of this
package, each a module named for what it does (docs/architecture.md)."""

from __future__ import annotations

from voxkeep.store.postgres.holding import PostgresHolding
from voxkeep.store.postgres.maintenance import PostgresMaintenance
from voxkeep.store.postgres.outbox import PostgresOutbox
from voxkeep.store.postgres.writes import PostgresWrites


class PostgresStore(PostgresWrites, PostgresHolding, PostgresOutbox, PostgresMaintenance):
    """`Store` on PostgreSQL. Build it with `await PostgresStore.open(url)`."""
