"""`voxkeepctl chats …`: browse, search, export, rename, delete and prune history."""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path
from typing import Any

from voxkeep.cli.progress import Progress, wanted
from voxkeep.cli.render import dumps, emit, one_line, parse_duration, table
from voxkeep.core.errors import InvalidInput
from voxkeep.store import ANY_OWNER, OwnerScope, Store
from voxkeep.store.records import Chat, Message
from voxkeep.views import export
from voxkeep.views.chat import chat_json, iso

EXPORT_PAGE = 1_000
PRUNE_BATCH = 500


def add_parsers(sub: argparse._SubParsersAction[Any]) -> None:
    chats = sub.add_parser("chats", help="browse and manage chat history")
    cmds = chats.add_subparsers(dest="action", required=True, metavar="ACTION")

    p = cmds.add_parser("list", help="chats, most recently updated first")
    p.add_argument("--owner", help="only this caller's chats")
    p.add_argument("--status", choices=["active", "closed", "interrupted"])
    p.add_argument("--limit", type=int, default=20, help="at most this many (default 20)")
    p.add_argument("--cursor", help="continue after a previous page (its next_cursor)")
    p.set_defaults(run=list_chats)

    p = cmds.add_parser("show", help="one chat with its messages")
    p.add_argument("chat_id")
    p.add_argument("--limit", type=int, help="only the newest N messages")
    p.set_defaults(run=show)

    p = cmds.add_parser("export", help="a whole chat as Markdown, JSON or JSONL")
    p.add_argument("chat_id")
    p.add_argument("--format", choices=export.FORMATS, default="md")
    p.add_argument("--output", "-o", help="write to this file instead of stdout")
    p.set_defaults(run=export_chat)

    p = cmds.add_parser("search", help="messages holding every word of QUERY")
    p.add_argument("query")
    p.add_argument("--owner", help="only this caller's chats")
    p.add_argument("--limit", type=int, default=20)
    p.set_defaults(run=search)

    p = cmds.add_parser("rename", help="set a chat's title")
    p.add_argument("chat_id")
    p.add_argument("title")
    p.set_defaults(run=rename)

    p = cmds.add_parser(
        "delete",
        help="delete a chat with its messages, or erase a person: --owner ID --all",
    )
    p.add_argument("chat_id", nargs="?")
    p.add_argument("--owner", help="with --all: the caller whose every chat goes")
    p.add_argument("--all", action="store_true", help="every chat of --owner (erasure)")
    _dry_run(p)
    p.set_defaults(run=delete)

    p = cmds.add_parser("prune", help="delete ended chats not updated for a while")
    p.add_argument("--older-than", required=True, help="e.g. 90d, 12h")
    p.add_argument("--owner", help="only this caller's chats")
    _dry_run(p)
    p.set_defaults(run=prune)


def _dry_run(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dry-run", action="store_true", help="list what would be deleted, and delete nothing"
    )


def _scope(owner: str | None) -> OwnerScope:
    return ANY_OWNER if owner is None else owner


def _limit(value: int | None, most: int) -> None:
    if value is not None and not 1 <= value <= most:
        raise InvalidInput(f"--limit must be between 1 and {most}")


def _chat_rows(chats: list[Chat]) -> str:
    return table(
        ["id", "owner", "status", "messages", "updated", "title"],
        [
            (c.id, c.owner, c.status, c.message_count, iso(c.updated_at), one_line(c.title, 48))
            for c in chats
        ],
    )


async def list_chats(store: Store, args: argparse.Namespace) -> int:
    _limit(args.limit, 1000)
    page = await store.list_chats(
        owner=_scope(args.owner), status=args.status, limit=args.limit, cursor=args.cursor
    )
    if args.json:
        emit(dumps({"chats": [chat_json(c) for c in page.chats], "next_cursor": page.next_cursor}))
    else:
        emit(_chat_rows(page.chats) if page.chats else "no chats")
        if page.next_cursor:
            emit(f"more: --cursor {page.next_cursor}")
    return 0


async def show(store: Store, args: argparse.Namespace) -> int:
    _limit(args.limit, 100_000)
    chat = await store.get_chat(args.chat_id, owner=ANY_OWNER)
    page = await store.messages(args.chat_id, owner=ANY_OWNER, limit=args.limit)
    if args.json:
        emit(dumps({"chat": chat_json(chat), "messages": [_brief(m) for m in page.messages]}))
        return 0
    emit(
        f"{chat.id}  {chat.status}{'/' + chat.end_reason if chat.end_reason else ''}  "
        f"owner={chat.owner}  messages={chat.message_count}\ntitle: {chat.title or ''}\n"
    )
    emit(
        table(
            ["seq", "time", "role", "content"],
            [
                (
                    m.seq,
                    iso(m.created_at),
                    m.role + ("*" if m.interrupted else ""),
                    one_line(m.content if m.content is not None else m.tool_name, 90),
                )
                for m in page.messages
            ],
        )
        if page.messages
        else "no messages"
    )
    return 0


def _brief(m: Message) -> dict[str, object]:
    return {
        "seq": m.seq,
        "role": m.role,
        "content": m.content,
        "created_at": iso(m.created_at),
        "interrupted": m.interrupted,
        "tool_name": m.tool_name,
        "prosody": m.prosody,
    }


async def export_chat(store: Store, args: argparse.Namespace) -> int:
    chat = await store.get_chat(args.chat_id, owner=ANY_OWNER)
    pages: list[list[Message]] = []
    before: int | None = None
    with Progress("export", chat.message_count, shown=wanted(args), unit="msg") as bar:
        while True:  # newest page first, a page at a time, so a long chat shows its progress
            page = await store.messages(
                args.chat_id, owner=ANY_OWNER, before_seq=before, limit=EXPORT_PAGE
            )
            pages.append(page.messages)
            bar.advance(len(page.messages))
            if page.next_before_seq is None:
                break
            before = page.next_before_seq
    messages = [m for part in reversed(pages) for m in part]
    text = export.render(args.format, chat, messages)
    if args.output:
        try:
            await asyncio.to_thread(Path(args.output).write_text, text, encoding="utf-8")
        except OSError as exc:
            raise InvalidInput(f"cannot write {args.output}: {exc.strerror or exc}") from None
        if args.json:
            emit(dumps({"chat_id": chat.id, "path": args.output, "messages": len(messages)}))
    else:
        emit(text)
    return 0


async def search(store: Store, args: argparse.Namespace) -> int:
    _limit(args.limit, 1000)
    hits = await store.search(args.query, owner=_scope(args.owner), limit=args.limit)
    if args.json:
        rows = [
            {
                "chat_id": h.chat_id,
                "owner": h.owner,
                "message_id": h.message_id,
                "seq": h.seq,
                "role": h.role,
                "created_at": iso(h.created_at),
                "snippet": h.snippet,
            }
            for h in hits
        ]
        emit(dumps({"hits": rows}))
    else:
        emit(
            table(
                ["chat", "seq", "role", "time", "snippet"],
                [
                    (h.chat_id, h.seq, h.role, iso(h.created_at), one_line(h.snippet, 80))
                    for h in hits
                ],
            )
            if hits
            else "no matches"
        )
    return 0


async def rename(store: Store, args: argparse.Namespace) -> int:
    chat = await store.rename_chat(args.chat_id, args.title, owner=ANY_OWNER)
    emit(dumps({"chat": chat_json(chat)}) if args.json else f"renamed {chat.id}")
    return 0


async def delete(store: Store, args: argparse.Namespace) -> int:
    if args.all or args.owner is not None:
        if not (args.all and args.owner and args.chat_id is None):
            raise InvalidInput("erasing a person takes --owner ID --all, and no chat id")
        if args.dry_run:
            return await _would_delete(store, args, await store.to_delete(owner=args.owner))
        count = await store.erase_owner(args.owner)
        await store.purge_if_due()  # (an operator's erasure leaves no trace at once)
        if args.json:
            emit(dumps({"owner": args.owner, "deleted": count}))
        else:
            emit(f"erased {args.owner}: deleted {count} chat{'s' if count != 1 else ''}")
        return 0
    if args.chat_id is None:
        raise InvalidInput("name the chat to delete, or erase a person with --owner ID --all")
    if args.dry_run:
        return await _would_delete(store, args, [args.chat_id])
    await store.delete_chat(args.chat_id, owner=ANY_OWNER)
    emit(dumps({"deleted": args.chat_id}) if args.json else f"deleted {args.chat_id}")
    return 0


async def prune(store: Store, args: argparse.Namespace) -> int:
    cutoff = time.time() - parse_duration(args.older_than)
    if args.dry_run:
        doomed = await store.to_delete(owner=_scope(args.owner), older_than=cutoff)
        return await _would_delete(store, args, doomed)
    count = 0
    with Progress("prune", None, shown=wanted(args), unit="chat") as bar:
        while deleted := await store.prune(
            older_than=cutoff, owner=_scope(args.owner), limit=PRUNE_BATCH
        ):  # in batches: each a short transaction, so calls keep writing meanwhile
            count += deleted
            bar.advance(deleted)
    if count:
        await store.purge()
    if args.json:
        emit(dumps({"deleted": count, "older_than": iso(cutoff)}))
    else:
        emit(f"deleted {count} chat{'s' if count != 1 else ''} not updated since {iso(cutoff)}")
    return 0


async def _would_delete(store: Store, args: argparse.Namespace, chat_ids: list[str]) -> int:
    """A dry run's answer: the chats the command would delete (a missing one is `not_found`,
    as the deletion would say), and nothing deleted."""
    doomed = [await store.get_chat(chat_id, owner=ANY_OWNER) for chat_id in chat_ids]
    if args.json:
        emit(dumps({"dry_run": True, "would_delete": [chat_json(c) for c in doomed]}))
    else:
        count = f"{len(doomed)} chat{'s' if len(doomed) != 1 else ''}"
        emit(f"would delete {count} (a dry run: nothing was deleted)")
        if doomed:
            emit(_chat_rows(doomed))
    return 0
