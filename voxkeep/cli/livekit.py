"""`voxkeepctl dispatch …`, `rooms list`, `token` (docs/operations.md): the LiveKit server API
through
`livekit-api`, with the credentials of `LIVEKIT_URL`, `LIVEKIT_API_KEY`, `LIVEKIT_API_SECRET`.
Every failure a user can cause is one line naming the problem."""

from __future__ import annotations

import argparse
import contextlib
import json
import time
import warnings
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from jwt.warnings import InsecureKeyLengthWarning
from livekit import api

from voxkeep.cli.render import dumps, emit, parse_duration, table
from voxkeep.control.room import MAX_CHAT_ID_CHARS
from voxkeep.core.errors import InvalidInput, VoxkeepError
from voxkeep.core.settings import Settings
from voxkeep.core.tokens import caller_token
from voxkeep.views.chat import iso

TIMEOUT_S = 10.0
NO_ROOM_NODE = "no response from servers"
"""What a LiveKit server answers about a room no node of it holds (a room that does not
exist, or no longer does)."""


class ServerRefused(VoxkeepError):
    """The LiveKit server answered with an error."""

    code = "server"


def add_parsers(sub: argparse._SubParsersAction[Any]) -> None:
    dispatch = sub.add_parser("dispatch", help="explicit agent dispatch (LiveKit server API)")
    cmds = dispatch.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = cmds.add_parser("create", help="send an agent into a room")
    p.add_argument("--room", required=True)
    p.add_argument("--agent-name", help="the worker's VOXKEEP_AGENT_NAME (default: this one's)")
    p.add_argument("--metadata", help="job metadata, a JSON object")
    p.add_argument("--chat-id", help="resume this chat of the caller (adds it to the metadata)")
    p.set_defaults(run=create_dispatch, own_store=True)
    p = cmds.add_parser("list", help="the dispatches of a room")
    p.add_argument("--room", required=True)
    p.set_defaults(run=list_dispatches, own_store=True)
    p = cmds.add_parser("delete", help="withdraw a dispatch")
    p.add_argument("--room", required=True)
    p.add_argument("dispatch_id")
    p.add_argument(
        "--dry-run", action="store_true", help="show the dispatch that would go, and keep it"
    )
    p.set_defaults(run=delete_dispatch, own_store=True)

    rooms = sub.add_parser("rooms", help="the LiveKit server's rooms")
    cmds = rooms.add_subparsers(dest="action", required=True, metavar="ACTION")
    cmds.add_parser("list", help="rooms open now").set_defaults(run=list_rooms, own_store=True)

    p = sub.add_parser("token", help="a participant token, for testing")
    p.add_argument("--room", required=True)
    p.add_argument("--identity", required=True)
    p.add_argument("--ttl", default="1h", help="how long it is valid, e.g. 1h, 30m (default 1h)")
    p.add_argument(
        "--attribute", action="append", default=[], metavar="KEY=VALUE",
        help="a participant attribute, e.g. voxkeep.resume_chat_id=chat_…; repeatable",
    )  # fmt: skip
    p.add_argument(
        "--agent", metavar="NAME",
        help="dispatch this agent (a worker's VOXKEEP_AGENT_NAME) into the room when the token "
        "joins it",
    )  # fmt: skip
    p.add_argument("--agent-metadata", metavar="JSON", help="with --agent: the job's metadata")
    p.set_defaults(run=token, own_store=True)


# --- the server API -----------------------------------------------------------------------


def _credentials(settings: Settings, *, url: bool = True) -> tuple[str, str, str]:
    # LiveKit's development secret ("secret") is shorter than PyJWT likes, and it says so on
    # stderr at every signature; the LiveKit server warns about short secrets itself, and this
    # CLI's stderr is for its one-line errors.
    warnings.filterwarnings("ignore", category=InsecureKeyLengthWarning)
    values = {
        "LIVEKIT_URL": settings.livekit_url if url else "-",
        "LIVEKIT_API_KEY": settings.livekit_api_key.get_secret_value(),
        "LIVEKIT_API_SECRET": settings.livekit_api_secret.get_secret_value(),
    }
    missing = [name for name, value in values.items() if not value]
    if missing:
        raise InvalidInput(f"set {', '.join(missing)} in .env or the environment")
    return values["LIVEKIT_URL"], values["LIVEKIT_API_KEY"], values["LIVEKIT_API_SECRET"]


@contextlib.asynccontextmanager
async def _server(settings: Settings, room: str | None = None) -> AsyncIterator[api.LiveKitAPI]:
    """The server API; its failures as one line each."""
    url, key, secret = _credentials(settings)
    if not url.startswith(("http://", "https://", "ws://", "wss://")):
        raise InvalidInput(f"LIVEKIT_URL must start with wss://, ws://, https:// or http://: {url}")
    lkapi = api.LiveKitAPI(
        url, key, secret, timeout=aiohttp.ClientTimeout(total=TIMEOUT_S), failover=False
    )
    try:
        yield lkapi
    except api.TwirpError as exc:
        raise _refused(exc, room) from None
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise VoxkeepError(f"cannot reach the LiveKit server at {url}: {_reason(exc)}") from None
    finally:
        await lkapi.aclose()


def _refused(exc: api.TwirpError, room: str | None) -> VoxkeepError:
    message = exc.message.removeprefix("twirp error unknown: ")
    if exc.status == 401 or exc.code in ("unauthenticated", "permission_denied"):
        return ServerRefused(
            "the LiveKit server refused the credentials: check LIVEKIT_API_KEY and "
            "LIVEKIT_API_SECRET"
        )
    if room and message == NO_ROOM_NODE:
        return ServerRefused(f"the LiveKit server has no room {room}")
    if exc.code == "not_found":
        where = f" (room {room})" if room else ""
        return ServerRefused(f"the LiveKit server says: {message or 'not found'}{where}")
    return ServerRefused(f"the LiveKit server answered {exc.code}: {message or exc.status}")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {TIMEOUT_S:.0f} s"
    return str(exc) or type(exc).__name__


# --- dispatch -----------------------------------------------------------------------------


def job_metadata(metadata: str | None, chat_id: str | None) -> str:
    """`--metadata` (a JSON object) with `--chat-id` merged in as `chat_id` (docs/resume.md)."""
    fields: dict[str, Any] = {}
    if metadata is not None:
        try:
            fields = json.loads(metadata)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"--metadata is not valid JSON: {exc.msg} at {exc.pos}") from None
        if not isinstance(fields, dict):
            raise InvalidInput('--metadata must be a JSON object, e.g. \'{"plan": "pro"}\'')
    if chat_id is not None:
        if not 1 <= len(chat_id) <= MAX_CHAT_ID_CHARS:
            raise InvalidInput(f"--chat-id has 1 to {MAX_CHAT_ID_CHARS} characters")
        fields["chat_id"] = chat_id
    return json.dumps(fields, ensure_ascii=False) if fields or metadata is not None else ""


def dispatch_json(d: api.AgentDispatch) -> dict[str, Any]:
    created = iso(d.state.created_at / 1e9) if d.state.created_at else None
    return {
        "id": d.id, "agent_name": d.agent_name, "room": d.room, "metadata": d.metadata,
        "created_at": created, "jobs": len(d.state.jobs),
    }  # fmt: skip


def _dispatch_rows(dispatches: list[dict[str, Any]]) -> str:
    return table(
        ["id", "agent", "room", "created", "jobs", "metadata"],
        [(d["id"], d["agent_name"], d["room"], d["created_at"] or "", d["jobs"], d["metadata"])
         for d in dispatches],
    )  # fmt: skip


async def create_dispatch(settings: Settings, args: argparse.Namespace) -> int:
    metadata = job_metadata(args.metadata, args.chat_id)
    agent_name = args.agent_name if args.agent_name is not None else settings.agent_name
    request = api.CreateAgentDispatchRequest(
        agent_name=agent_name, room=args.room, metadata=metadata
    )
    async with _server(settings, args.room) as lkapi:
        made = dispatch_json(await lkapi.agent_dispatch.create_dispatch(request))
    emit(dumps(made) if args.json else _dispatch_rows([made]))
    return 0


async def list_dispatches(settings: Settings, args: argparse.Namespace) -> int:
    async with _server(settings, args.room) as lkapi:
        found = [dispatch_json(d) for d in await lkapi.agent_dispatch.list_dispatch(args.room)]
    if args.json:
        emit(dumps({"dispatches": found}))
    else:
        emit(_dispatch_rows(found) if found else f"no dispatches in {args.room}")
    return 0


async def delete_dispatch(settings: Settings, args: argparse.Namespace) -> int:
    if args.dry_run:
        async with _server(settings, args.room) as lkapi:
            held = await lkapi.agent_dispatch.list_dispatch(args.room)
        found = [dispatch_json(d) for d in held if d.id == args.dispatch_id]
        if not found:
            raise ServerRefused(f"no dispatch {args.dispatch_id} in room {args.room}")
        if args.json:
            emit(dumps({"dry_run": True, "would_delete": found[0]}))
        else:
            emit("would delete (a dry run: nothing was deleted):\n" + _dispatch_rows(found))
        return 0
    async with _server(settings, args.room) as lkapi:
        gone = dispatch_json(
            await lkapi.agent_dispatch.delete_dispatch(args.dispatch_id, args.room)
        )
    emit(dumps(gone) if args.json else f"deleted dispatch {gone['id'] or args.dispatch_id}")
    return 0


# --- rooms --------------------------------------------------------------------------------


def room_json(r: Any) -> dict[str, Any]:
    return {
        "sid": r.sid, "name": r.name, "participants": r.num_participants,
        "publishers": r.num_publishers,
        "created_at": iso(r.creation_time) if r.creation_time else None,
        "metadata": r.metadata,
    }  # fmt: skip


async def list_rooms(settings: Settings, args: argparse.Namespace) -> int:
    async with _server(settings) as lkapi:
        rooms = [room_json(r) for r in (await lkapi.room.list_rooms(api.ListRoomsRequest())).rooms]
    if args.json:
        emit(dumps({"rooms": rooms}))
    elif not rooms:
        emit("no rooms")
    else:
        emit(table(
            ["name", "sid", "participants", "created"],
            [(r["name"], r["sid"], r["participants"], r["created_at"] or "") for r in rooms],
        ))  # fmt: skip
    return 0


# --- tokens -------------------------------------------------------------------------------


def _attributes(pairs: list[str]) -> dict[str, str]:
    attributes: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InvalidInput(f"--attribute wants KEY=VALUE, got {pair!r}")
        attributes[key.strip()] = value
    return attributes


async def token(settings: Settings, args: argparse.Namespace) -> int:
    _, key, secret = _credentials(settings, url=False)
    ttl = parse_duration(args.ttl)
    if ttl <= 0:
        raise InvalidInput("--ttl must be longer than zero")
    attributes = _attributes(args.attribute)
    if args.agent_metadata is not None and not args.agent:
        raise InvalidInput("--agent-metadata goes with --agent NAME")
    metadata = job_metadata(args.agent_metadata, None) if args.agent else ""
    minted = caller_token(
        key, secret, identity=args.identity, room=args.room, ttl_s=ttl,
        attributes=attributes, agent_name=args.agent, agent_metadata=metadata,
    )  # fmt: skip
    minted_at = int(time.time())  # to_jwt() stamps exp as now + ttl, in whole seconds
    jwt = minted.to_jwt()
    if args.json:
        emit(dumps({
            "token": jwt, "identity": args.identity, "room": args.room,
            "expires_at": iso(minted_at + int(ttl)), "url": settings.livekit_url or None,
            "attributes": attributes, "agent": args.agent,
        }))  # fmt: skip
    else:
        emit(jwt)
    return 0
