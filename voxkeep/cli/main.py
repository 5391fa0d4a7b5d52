"""`voxkeepctl`: the operator CLI (docs/operations.md). Tables for people, `--json` for scripts; an
error is one line on stderr with exit code 1 (2 for a usage error), never a traceback."""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import sys
from collections.abc import Sequence
from typing import NoReturn

from pydantic import SecretStr

from voxkeep.cli import (
    background,
    chats,
    completion,
    db,
    livekit,
    protocol,
    serve,
    simulate,
    webhooks,
)
from voxkeep.core.errors import NotFound, SchemaError, VoxkeepError
from voxkeep.core.logs import configure_logging
from voxkeep.core.settings import Settings, load_settings
from voxkeep.store import Store, open_store

USAGE_EXIT = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: usage error: {message} (see {self.prog} --help)\n")
        raise SystemExit(USAGE_EXIT)


GLOBAL_FLAGS = ("--json",)
GLOBAL_OPTIONS = ("--db", "--url", "--api-key", "--api-secret")


def version() -> str:
    """The installed version of the agent (CHANGELOG.md)."""
    try:
        return importlib.metadata.version("voxkeep")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout that is not installed
        return "unknown"


def globals_first(argv: Sequence[str]) -> list[str]:
    """`--json` and `--db URL` anywhere before a `--`: after the command, as people type them
    (`voxkeepctl chats list --json`), as well as before it."""
    front: list[str] = []
    rest: list[str] = []
    args = iter(argv)
    for arg in args:
        if arg == "--":
            rest += [arg, *args]
        elif arg in GLOBAL_FLAGS or arg.startswith(tuple(f"{o}=" for o in GLOBAL_OPTIONS)):
            front.append(arg)
        elif arg in GLOBAL_OPTIONS:
            front += [arg, *(value for value in [next(args, None)] if value is not None)]
        else:
            rest.append(arg)
    return front + rest


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="voxkeepctl", description="Operate the voice agent and its chat history.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    parser.add_argument("--db", metavar="URL", help="database URL (default: VOXKEEP_DB_URL)")
    # LiveKit's credentials, as LiveKit's own CLI (`lk`) takes them
    parser.add_argument("--url", help="the LiveKit server (default: LIVEKIT_URL)")
    parser.add_argument("--api-key", help="its API key (default: LIVEKIT_API_KEY)")
    parser.add_argument("--api-secret", help="its API secret (default: LIVEKIT_API_SECRET)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    chats.add_parsers(sub)
    db.add_parsers(sub)
    simulate.add_parsers(sub)
    livekit.add_parsers(sub)
    protocol.add_parsers(sub)
    serve.add_parsers(sub)
    webhooks.add_parsers(sub)
    background.add_parsers(sub)
    completion.add_parsers(sub, parser)
    return parser


async def _run(settings: Settings, args: argparse.Namespace) -> int:
    if getattr(args, "own_store", False):  # commands that open what they need themselves
        own: int = await args.run(settings, args)
        return own
    store: Store = await open_store(args.db or settings.db_url)
    try:
        if args.run not in (db.migrate, db.check):
            refusal = (await store.schema_status()).refusal("voxkeepctl")
            if refusal:
                raise SchemaError(refusal)
        code: int = await args.run(store, args)
        return code
    finally:
        await store.aclose()


def with_livekit_flags(settings: Settings, args: argparse.Namespace) -> Settings:
    """The settings with `--url`, `--api-key` and `--api-secret` in place of the environment's."""
    given: dict[str, object] = {}
    if args.url is not None:
        given["livekit_url"] = args.url
    if args.api_key is not None:
        given["livekit_api_key"] = SecretStr(args.api_key)
    if args.api_secret is not None:
        given["livekit_api_secret"] = SecretStr(args.api_secret)
    return settings.model_copy(update=given) if given else settings


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(globals_first(sys.argv[1:] if argv is None else argv))
    try:
        settings = with_livekit_flags(load_settings(), args)
        configure_logging(settings.log_level, settings.log_format, handler=True)
        if getattr(args, "preload", None) is not None:
            args.preload()  # what only this command needs (simulate: LiveKit's session)
        return asyncio.run(_run(settings, args))
    except NotFound:
        target = getattr(args, "chat_id", None)
        sys.stderr.write(f"voxkeepctl: no such chat{': ' + target if target else ''}\n")
    except VoxkeepError as exc:
        sys.stderr.write(f"voxkeepctl: {exc}\n")
    except KeyboardInterrupt:
        return 130
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
