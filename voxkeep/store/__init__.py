"""Chat history storage: the `Store` protocol, its backends, and the per-process writer."""

from __future__ import annotations

from voxkeep.core.errors import InvalidInput
from voxkeep.core.extras import needs
from voxkeep.store.base import ANY_OWNER, OwnerScope, SchemaStatus, Store, WriteResult

__all__ = ["ANY_OWNER", "OwnerScope", "SchemaStatus", "Store", "WriteResult", "open_store"]


def backend_module(url: str) -> str:
    """The module of the store `url` names (what `open_store` imports for it)."""
    return "voxkeep.store.sqlite" if url.startswith("sqlite:") else "voxkeep.store.postgres"


async def open_store(url: str) -> Store:
    """The store named by `VOXKEEP_DB_URL`: `sqlite:///path` (default) or `postgresql://…`."""
    if url.startswith("sqlite:"):
        from voxkeep.store.sqlite import SqliteStore

        return await SqliteStore.open(url)
    if url.startswith(("postgresql:", "postgres:")):
        with needs("postgres", "the PostgreSQL store"):
            from voxkeep.store.postgres import PostgresStore

        return await PostgresStore.open(url)
    raise InvalidInput("VOXKEEP_DB_URL must start with sqlite:/// or postgresql://")
