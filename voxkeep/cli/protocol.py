"""`voxkeepctl protocol schema`: the control protocol's JSON Schema (docs/control.md), from the
agent's own models; the TypeScript client's types are generated from it (client/)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from voxkeep.control.schema import schema_text
from voxkeep.core.settings import Settings


def add_parsers(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser("protocol", help="the control protocol: its JSON Schema")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    schema = actions.add_parser("schema", help="print the JSON Schema of every message")
    schema.set_defaults(run=print_schema, own_store=True)


async def print_schema(settings: Settings, args: argparse.Namespace) -> int:
    sys.stdout.write(schema_text())
    return 0
