"""The embedded store: one SQLite file (docs/store.md).

`store.py` puts the class together from modules named for what they do, the same in both
backends: `connection.py` (transactions, reads, driver errors), `schema.py`, `reads.py`,
`writes.py`, `holding.py` (which call holds a chat), `outbox.py` (webhooks), `maintenance.py`
and `rows.py`. Only this package imports its driver.
"""

from __future__ import annotations

from voxkeep.store.sqlite.connection import path_from_url
from voxkeep.store.sqlite.store import SqliteStore

__all__ = ["SqliteStore", "path_from_url"]
