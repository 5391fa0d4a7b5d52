"""`voxkeepctl webhooks secret`: a new secret for `VOXKEEP_WEBHOOK_SECRET`, in the Standard
Webhooks format its receivers' libraries read (docs/webhooks.md)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from voxkeep.core.settings import Settings
from voxkeep.core.signing import new_secret


def add_parsers(sub: argparse._SubParsersAction[Any]) -> None:
    p = sub.add_parser("webhooks", help="webhooks: a new signing secret")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    secret = actions.add_parser(
        "secret", help="print a new secret (whsec_…) for the worker and receivers"
    )
    secret.set_defaults(run=print_secret, own_store=True)


async def print_secret(settings: Settings, args: argparse.Namespace) -> int:
    sys.stdout.write(new_secret() + "\n")
    return 0
