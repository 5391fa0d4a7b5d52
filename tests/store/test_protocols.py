"""The store protocol as a backend author reads it (docs/store.md, "Writing a backend"): seven
protocols split by who uses them, together `Store`, and every backend implementing all of it."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from voxkeep.store import base
from voxkeep.store.postgres import PostgresStore
from voxkeep.store.sqlite import SqliteStore

PARTS = [
    "ChatStore",
    "CallHolding",
    "Continuing",
    "Sweeping",
    "Summaries",
    "Administration",
    "Outbox",
]
DOC = Path(__file__).parents[2] / "docs" / "store.md"


def methods(protocol: type) -> set[str]:
    return {name for name, _ in inspect.getmembers(protocol) if not name.startswith("_")}


def test_the_documented_split_is_the_protocols_and_together_they_are_the_store() -> None:
    table = DOC.read_text().split("## Writing a backend")[1].split("\n## ")[0]
    documented: dict[str, set[str]] = {}
    for line in table.splitlines():
        if line.startswith("| `"):
            protocol, listed = line.split("|")[1:3]
            documented[re.findall(r"`(\w+)`", protocol)[0]] = set(re.findall(r"`(\w+)`", listed))
    assert {name: methods(getattr(base, name)) for name in PARTS} == documented
    parts = [methods(getattr(base, name)) for name in PARTS]
    assert set().union(*parts) == methods(base.Store)
    assert sum(len(p) for p in parts) == len(methods(base.Store))  # no method in two parts


def test_every_backend_implements_the_whole_store() -> None:
    for backend in (SqliteStore, PostgresStore):
        assert methods(base.Store) <= methods(backend), backend.__name__
