"""`agentctl`: the operator CLI (docs/operations.md). Tables for people, `--json` for scripts; an
error is one line on stderr with exit code 1 (2 for a usage error), never a traceback."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from typing import NoReturn

from agent.cli import chats, db, livekit, protocol, simulate
from agent.errors import AgentError, NotFound, SchemaError
from agent.logs import configure_logging
from agent.settings import Settings, load_settings
from agent.store import Store, open_store

USAGE_EXIT = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: usage error: {message} (see {self.prog} --help)\n")
        raise SystemExit(USAGE_EXIT)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="agentctl", description="Operate the voice agent and its chat history.")
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    parser.add_argument("--db", metavar="URL", help="database URL (default: AGENT_DB_URL)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    chats.add_parsers(sub)
    db.add_parsers(sub)
    simulate.add_parsers(sub)
    livekit.add_parsers(sub)
    protocol.add_parsers(sub)
    return parser


async def _run(settings: Settings, args: argparse.Namespace) -> int:
    if getattr(args, "own_store", False):  # commands that open what they need themselves
        own: int = await args.run(settings, args)
        return own
    store: Store = await open_store(args.db or settings.db_url)
    try:
        if args.run not in (db.migrate, db.check):
            status = await store.schema_status()
            if status.current < status.latest:
                raise SchemaError(
                    f"the database schema is at version {status.current}, this agentctl needs "
                    f"{status.latest}: run `agentctl db migrate`"
                )
        code: int = await args.run(store, args)
        return code
    finally:
        await store.aclose()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
        configure_logging(settings.log_level, settings.log_format, handler=True)
        return asyncio.run(_run(settings, args))
    except NotFound:
        target = getattr(args, "chat_id", None)
        sys.stderr.write(f"agentctl: no such chat{': ' + target if target else ''}\n")
    except AgentError as exc:
        sys.stderr.write(f"agentctl: {exc}\n")
    except KeyboardInterrupt:
        return 130
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
