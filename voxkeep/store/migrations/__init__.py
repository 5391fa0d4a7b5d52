"""Numbered SQL migrations, one folder per backend: `NNNN_name.sql`, applied in order, each in one
transaction together with its row in `schema_migrations`.

Migrations expand, then contract (docs/store.md, upgrades). Each file says in a comment the
oldest code that can run on the schema it leaves, as that code's schema version
(`-- oldest code: N`); the row records it. Code runs on any schema at or past its own whose
oldest code is not newer than it, so a fleet keeps serving while `voxkeepctl db migrate` runs and
the workers are replaced one by one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

from voxkeep.core.errors import SchemaError

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_OLDEST = re.compile(r"^-- oldest code: (\d+)$", re.MULTILINE)
# Migrations 1 and 2 came before the rule: any code that knows schema 1 can run on them.
_FIRST = 1
RECORDED_SINCE = 3
"""The first migration whose row records its oldest code (it adds the column)."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str
    oldest_code: int
    """The oldest code, by its schema version, that can run on the schema this one leaves."""


def load(backend: str) -> list[Migration]:
    """The migrations shipped for `backend` ("sqlite", "postgres"), lowest version first."""
    found = []
    for entry in resources.files(__package__).joinpath(backend).iterdir():
        match = _NAME.match(entry.name)
        if match:
            sql = entry.read_text(encoding="utf-8")
            oldest = _OLDEST.search(sql)
            version = int(match[1])
            if oldest is None and version >= RECORDED_SINCE:
                raise SchemaError(f"{backend} migration {entry.name} says no `-- oldest code: N`")
            found.append(Migration(version, match[2], sql, int(oldest[1]) if oldest else _FIRST))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise SchemaError(f"{backend} migrations are not numbered 1..n: {versions}")
    if any(m.oldest_code > m.version for m in found):
        raise SchemaError(f"a {backend} migration names an oldest code newer than itself")
    return found
