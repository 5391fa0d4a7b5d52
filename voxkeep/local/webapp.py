"""The reference web app's server, for local use (docs/webapp.md): the built app (`web/dist`),
tokens minted here so no key reaches the browser, and a caller's history to read while no call
(and so no agent) is up. It binds to loopback only; anyone who can reach it can call as anyone.
It answers only requests addressed to this machine by name (`Host`: 127.0.0.1, localhost or
::1), so a web page whose own domain resolves to 127.0.0.1 (DNS rebinding) cannot use it, and
takes JSON only as `application/json`, which no page can send to it without its consent.

    python -m voxkeep.local.webapp [--port PORT]     (default: VOXKEEP_WEB_PORT, 8089)

- `POST /api/token` `{"identity": …, "resume_chat_id": …}`: a token for a new room of its own,
  with the `voxkeep.resume_chat_id` attribute when given, that may change its own attributes
  and, when the worker has a `VOXKEEP_AGENT_NAME`, dispatches that agent into the room.
- `GET /api/chats?identity=…`: the caller's chats, newest first.
- `GET /api/chats/{chat_id}?identity=…`: one of them with its newest messages.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import secrets
import sys
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Handler

from voxkeep.control.dispatcher import message_json
from voxkeep.control.protocol import MAX_PAYLOAD
from voxkeep.control.room import RESUME_ATTRIBUTE
from voxkeep.core.errors import NotFound, VoxkeepError
from voxkeep.core.hosts import addressed_to_loopback
from voxkeep.core.settings import Settings, load_settings
from voxkeep.core.tokens import caller_token
from voxkeep.store import Store, open_store
from voxkeep.views.chat import chat_brief

HOST = "127.0.0.1"
TOKEN_TTL = datetime.timedelta(hours=2)
MAX_IDENTITY = 128
MESSAGES = 100
DIST = Path(__file__).resolve().parents[2] / "web" / "dist"
STORE: web.AppKey[Store] = web.AppKey("store", Store)
SETTINGS: web.AppKey[Settings] = web.AppKey("settings", Settings)


def _refusal(status: int, error: str) -> web.Response:
    return web.json_response({"error": error}, status=status)


@web.middleware
async def _addressed_here(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Only requests for this machine by name: a page on another domain that resolves to
    127.0.0.1 sends its own name as `Host`."""
    if not addressed_to_loopback(request.host):
        return _refusal(421, "this server answers to 127.0.0.1 and localhost only")
    if request.method == "POST" and request.content_type != "application/json":
        return _refusal(415, "send JSON as application/json")
    return await handler(request)


class _BadRequest(web.HTTPBadRequest):
    def __init__(self, error: str) -> None:
        super().__init__(text=f'{{"error": "{error}"}}', content_type="application/json")


def _identity(value: object) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_IDENTITY or not value.isprintable():
        raise _BadRequest("identity: 1 to 128 printable characters")
    return value


async def token(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    try:
        body = await request.json()
    except ValueError:
        raise _BadRequest("a JSON object is expected") from None
    if not isinstance(body, dict):
        raise _BadRequest("a JSON object is expected")
    identity = _identity(body.get("identity"))
    resume = body.get("resume_chat_id")
    if resume is not None and (not isinstance(resume, str) or not 0 < len(resume) <= 64):
        raise _BadRequest("resume_chat_id: a chat id")
    room = f"call-{secrets.token_hex(6)}"
    minted = caller_token(
        settings.livekit_api_key.get_secret_value(),
        settings.livekit_api_secret.get_secret_value(),
        identity=identity, room=room, ttl_s=TOKEN_TTL.total_seconds(),
        attributes={RESUME_ATTRIBUTE: resume} if resume else None,
        agent_name=settings.agent_name or None,
    )  # fmt: skip
    return web.json_response({"url": settings.livekit_url, "token": minted.to_jwt(), "room": room})


async def chats(request: web.Request) -> web.Response:
    owner = _identity(request.query.get("identity"))
    page = await request.app[STORE].list_chats(owner=owner, limit=50)
    return web.json_response({"chats": [chat_brief(c) for c in page.chats]})


async def chat(request: web.Request) -> web.Response:
    owner = _identity(request.query.get("identity"))
    store = request.app[STORE]
    chat_id = request.match_info["chat_id"]
    try:
        found = await store.get_chat(chat_id, owner=owner)
        page = await store.messages(chat_id, owner=owner, limit=MESSAGES)
    except NotFound:
        raise web.HTTPNotFound(
            text='{"error": "no such chat"}', content_type="application/json"
        ) from None
    messages = [message_json(m, MAX_PAYLOAD) for m in page.messages]
    return web.json_response({"chat": chat_brief(found), "messages": messages})


async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(DIST / "index.html")


def build_app(settings: Settings, store: Store, dist: Path = DIST) -> web.Application:
    app = web.Application(client_max_size=16 * 1024, middlewares=[_addressed_here])
    app[SETTINGS], app[STORE] = settings, store
    app.router.add_post("/api/token", token)
    app.router.add_get("/api/chats", chats)
    app.router.add_get("/api/chats/{chat_id}", chat)
    app.router.add_get("/", index)
    app.router.add_static("/assets", dist / "assets")
    return app


async def serve(settings: Settings, port: int, dist: Path = DIST) -> None:
    """Serve until cancelled, printing the app's URL once it answers."""
    if not (dist / "index.html").is_file():
        raise VoxkeepError(f"the web app is not built ({dist}): npm run build")
    store = await open_store(settings.db_url)
    runner = web.AppRunner(build_app(settings, store, dist), access_log=None)
    try:
        await runner.setup()
        await web.TCPSite(runner, HOST, port).start()
        sys.stdout.write(f"web app: http://{HOST}:{port}/\n")
        sys.stdout.flush()
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
        await store.aclose()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m voxkeep.local.webapp", description=__doc__)
    parser.add_argument("--port", type=int, help="default: VOXKEEP_WEB_PORT (8089)")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        port = args.port or settings.web_port
        missing = [
            name
            for name, value in {
                "LIVEKIT_URL": settings.livekit_url,
                "LIVEKIT_API_KEY": settings.livekit_api_key.get_secret_value(),
                "LIVEKIT_API_SECRET": settings.livekit_api_secret.get_secret_value(),
            }.items()
            if not value
        ]
        if missing:
            raise VoxkeepError(f"set {', '.join(missing)} (see config/example.env)")
        asyncio.run(serve(settings, port))
    except VoxkeepError as exc:
        sys.stderr.write(f"webapp: {exc}\n")
        return 1
    except OSError as exc:  # the port is taken, say
        sys.stderr.write(f"webapp: cannot serve on {HOST}:{port}: {exc.strerror or exc}\n")
        return 1
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
