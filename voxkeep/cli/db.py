"""`voxkeepctl db …`: schema migrations, integrity checks, statistics, backups;
`voxkeepctl sweep`."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
from typing import Any

from voxkeep.cli.progress import Progress, wanted
from voxkeep.cli.render import dumps, emit, parse_duration, table
from voxkeep.core.settings import load_settings
from voxkeep.jobs import sweeper
from voxkeep.store import Store


def add_parsers(sub: argparse._SubParsersAction[Any]) -> None:
    db = sub.add_parser("db", help="the database: migrate, check, stats, backup")
    cmds = db.add_subparsers(dest="action", required=True, metavar="ACTION")
    cmds.add_parser("migrate", help="apply pending schema migrations").set_defaults(run=migrate)
    cmds.add_parser("check", help="schema and integrity checks").set_defaults(run=check)
    cmds.add_parser("stats", help="counts and size").set_defaults(run=stats)
    p = cmds.add_parser("backup", help="a consistent copy of the whole store in a new file")
    p.add_argument("path")
    p.set_defaults(run=backup)
    p = sub.add_parser("sweep", help="end chats whose call stopped (as the worker does)")
    p.add_argument(
        "--stale-after",
        help="silence that counts as lost, e.g. 60s (default VOXKEEP_STALE_AFTER_S)",
    )
    p.add_argument(
        "--dry-run", action="store_true", help="count what it would do, and change nothing"
    )
    p.set_defaults(run=sweep)


async def migrate(store: Store, args: argparse.Namespace) -> int:
    applied = await store.migrate()
    status = await store.schema_status()
    if args.json:
        emit(dumps({"applied": applied, "version": status.current}))
    elif applied:
        emit(f"applied {', '.join(map(str, applied))}; schema is at version {status.current}")
    else:
        emit(f"nothing to apply; schema is at version {status.current}")
    return 0


async def check(store: Store, args: argparse.Namespace) -> int:
    problems = await store.check()
    if args.json:
        emit(dumps({"ok": not problems, "problems": problems}))
    else:
        emit("\n".join(problems) if problems else "ok")
    return 1 if problems else 0


async def stats(store: Store, args: argparse.Namespace) -> int:
    s = await store.stats()
    if args.json:
        emit(
            dumps(
                {
                    "chats": s.chats,
                    "messages": s.messages,
                    "owners": s.owners,
                    "chats_by_status": s.chats_by_status,
                    "schema_version": s.schema_version,
                    "size_bytes": s.size_bytes,
                }
            )
        )
    else:
        rows = [
            ("chats", s.chats),
            *((f"  {k}", v) for k, v in sorted(s.chats_by_status.items())),
            ("messages", s.messages),
            ("owners", s.owners),
            ("schema version", s.schema_version),
            ("size (bytes)", s.size_bytes),
        ]
        emit(table(["what", "value"], rows))
    return 0


async def backup(store: Store, args: argparse.Namespace) -> int:
    shown = wanted(args)
    expected = (await store.stats()).size_bytes if shown else None
    with Progress("backup", expected, shown=shown, unit="B", scale=True) as bar:
        copying = asyncio.create_task(store.backup(args.path))
        while not copying.done():  # the copy grows on disk: its size is the progress
            await asyncio.wait({copying}, timeout=0.2)
            bar.reach(await asyncio.to_thread(_size, args.path))
        await copying
        size = await asyncio.to_thread(os.path.getsize, args.path)
        bar.reach(max(size, expected or 0))
    emit(
        dumps({"path": args.path, "bytes": size})
        if args.json
        else f"wrote {args.path} ({size} bytes)"
    )
    return 0


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:  # not there yet
        return 0


async def sweep(store: Store, args: argparse.Namespace) -> int:
    settings = load_settings()
    stale_after = (
        settings.stale_after_s if args.stale_after is None else parse_duration(args.stale_after)
    )
    swept = await sweeper.sweep(
        store, stale_after_s=stale_after, retention_days=settings.retention_days,
        event_max_age_s=settings.webhook_max_age_s, dry_run=args.dry_run,
    )  # fmt: skip
    if args.json:
        emit(dumps({**dataclasses.asdict(swept), **({"dry_run": True} if args.dry_run else {})}))
    else:
        emit(
            ("a dry run, nothing changed; the sweep would leave " if args.dry_run else "")
            + f"{swept.chats_lost} chat(s) marked lost, {swept.chats_deleted} empty chat(s) "
            f"deleted, {swept.calls_lost} call(s) ended, {swept.retention_deleted} chat(s) past "
            f"retention deleted, {swept.events_expired} webhook event(s) expired, "
            f"{swept.chats_waiting} empty chat(s) waiting for a journal"
        )
    return 0
