"""`voxkeepctl completion bash|zsh|tcsh`: a shell completion script for every command and
option, generated from the parser itself by `shtab` (docs/operations.md)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import shtab

from voxkeep.core.settings import Settings

SHELLS = ("bash", "zsh", "tcsh")


def add_parsers(sub: argparse._SubParsersAction[Any], root: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "completion",
        help="print a shell completion script",
        description="e.g. voxkeepctl completion bash"
        " > ~/.local/share/bash-completion/completions/voxkeepctl",
    )
    p.add_argument("shell", choices=SHELLS)
    p.set_defaults(run=print_script, own_store=True, root=root)


async def print_script(settings: Settings, args: argparse.Namespace) -> int:
    sys.stdout.write(shtab.complete(args.root, shell=args.shell).rstrip("\n") + "\n")
    return 0
