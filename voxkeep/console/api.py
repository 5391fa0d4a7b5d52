"""`voxkeepctl serve`'s HTTP API over the store (docs/console.md), with its OpenAPI description at
/api/openapi.json and the console's pages beside it.

Every route under /api takes a bearer token: reading needs a read or admin token, renaming and
deleting an admin one. A missing or unknown token is 401, the wrong role 403. CORS only for
the origins configured. Errors are `{"error": code, "message": …}` with the store's codes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from http import HTTPStatus
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from voxkeep.console.auth import ConsoleToken, Role, bearer_token, role_of
from voxkeep.console.models import (
    ChatOut,
    ChatPageOut,
    ErrorOut,
    HealthOut,
    MessageOut,
    MessagePageOut,
    ProsodyOut,
    RenameIn,
)
from voxkeep.core.errors import InvalidInput, NotFound, StoreUnavailable, VoxkeepError
from voxkeep.store import ANY_OWNER, OwnerScope, Store
from voxkeep.store.records import ChatFilter
from voxkeep.views import export

MAX_PAGE = 500
_STATUS = {InvalidInput: 400, NotFound: 404, StoreUnavailable: 503}
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (400, 401, 403, 404, 503)
}
_MEDIA = {"md": "text/markdown", "json": "application/json", "jsonl": "application/x-ndjson"}
_EXPORTED: dict[str, Any] = {
    "description": "The chat as a file, in the format asked for.",
    "content": {
        "text/markdown": {"schema": {"type": "string"}},
        "application/json": {"schema": {"type": "object"}},  # {"chat": …, "messages": […]}
        "application/x-ndjson": {"schema": {"type": "string"}},  # a JSON object a line
    },
}
_bearer = HTTPBearer(auto_error=False)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
ChatStatusQuery = Literal["active", "closed", "interrupted"]
ChatId = Annotated[str, PathParam(min_length=1, max_length=64)]
OwnerQuery = Annotated[str | None, Query(min_length=1, max_length=256)]


class Refused(Exception):
    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error, self.message = status, error, message


def _error(status: int, error: str, message: str) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"error": error, "message": message}, status, headers=headers)


def create_app(
    store: Store,
    tokens: Sequence[ConsoleToken],
    *,
    cors_origins: Sequence[str] = (),
    pages: Path | None = None,
) -> FastAPI:
    """The console's app over `store`; `pages` is the built UI to serve at /, if any."""
    app = FastAPI(
        title="Agent console API",
        description="The chat history the agent keeps, for operators (docs/console.md).",
        version="1",
        openapi_url="/api/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
    )
    if cors_origins:
        app.add_middleware(
            CORSMiddleware, allow_origins=list(cors_origins), allow_methods=["*"],
            allow_headers=["Authorization", "Content-Type"],
        )  # fmt: skip
    known = list(tokens)

    def needs(wanted: Role) -> Callable[[Request, Credentials], Awaitable[Role]]:
        async def check(request: Request, credentials: Credentials) -> Role:
            # (`credentials` puts the scheme in the OpenAPI description; FastAPI's parsing
            # strips any Unicode whitespace, so the header itself is read)
            presented = bearer_token(request.headers.get("authorization", ""))
            role = role_of(known, presented) if credentials is not None and presented else None
            if role is None:
                raise Refused(401, "unauthorized", "a valid bearer token is needed")
            if wanted == "admin" and role != "admin":
                raise Refused(403, "forbidden", "this needs an admin token")
            return role

        return check

    reader = Depends(needs("read"))
    admin = Depends(needs("admin"))

    @app.exception_handler(Refused)
    async def refused(_: Request, exc: Refused) -> JSONResponse:
        return _error(exc.status, exc.error, exc.message)

    @app.exception_handler(VoxkeepError)
    async def store_error(_: Request, exc: VoxkeepError) -> JSONResponse:
        status = next((s for kind, s in _STATUS.items() if isinstance(exc, kind)), 500)
        message = str(exc)[:200] if status == 400 else exc.code.replace("_", " ")
        return _error(status, exc.code, message)

    @app.exception_handler(HTTPException)
    async def refused_early(_: Request, exc: HTTPException) -> JSONResponse:
        """What is refused before a route runs (a body that does not parse, a path or a method
        there is no route for), in the shape of every other error."""
        error = HTTPStatus(exc.status_code).phrase.lower().replace(" ", "_")  # not_found …
        reply = _error(exc.status_code, error, str(exc.detail)[:200])
        reply.headers.update(exc.headers or {})
        return reply

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "request"
        return _error(400, "bad_request", f"{where}: {first.get('msg', 'invalid')}"[:200])

    def scope(owner: str | None) -> OwnerScope:
        return ANY_OWNER if owner is None else owner

    @app.get("/api/health", response_model=HealthOut, responses=_ERRORS, dependencies=[reader])
    async def health() -> HealthOut:
        """The store's health: reachable, and at a schema this code runs on. Cheap enough to
        poll; `voxkeepctl db check` runs the database's own, slower, integrity checks."""
        status = await store.schema_status()
        refusal = status.refusal("console")
        problems = [] if refusal is None else [refusal]
        return HealthOut(
            ok=not problems, schema_version=status.current, code_schema_version=status.latest,
            problems=problems,
        )  # fmt: skip

    @app.get("/api/chats", response_model=ChatPageOut, responses=_ERRORS, dependencies=[reader])
    async def list_chats(
        owner: OwnerQuery = None,
        status: ChatStatusQuery | None = None,
        created_after: Annotated[float | None, Query(ge=0, le=1e11)] = None,
        created_before: Annotated[float | None, Query(ge=0, le=1e11)] = None,
        q: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
        limit: Annotated[int, Query(ge=1, le=100)] = 50,
        cursor: Annotated[str | None, Query(min_length=1, max_length=512)] = None,
    ) -> ChatPageOut:
        """Chats, most recently updated first: by owner, status, when they started (Unix
        seconds) and words said in them; `cursor` pages on, unmoved by chats created
        meanwhile."""
        filters = ChatFilter(created_after, created_before, q)
        page = await store.list_chats(
            owner=scope(owner), status=status, limit=limit, cursor=cursor, filters=filters
        )
        return ChatPageOut(chats=[ChatOut.of(c) for c in page.chats], next_cursor=page.next_cursor)

    @app.get(
        "/api/chats/{chat_id}", response_model=ChatOut, responses=_ERRORS, dependencies=[reader]
    )
    async def get_chat(
        chat_id: ChatId,
        owner: OwnerQuery = None,
    ) -> ChatOut:
        """One chat; with `owner`, only if it is theirs."""
        return ChatOut.of(await store.get_chat(chat_id, owner=scope(owner)))

    @app.get(
        "/api/chats/{chat_id}/messages", response_model=MessagePageOut, responses=_ERRORS,
        dependencies=[reader],
    )  # fmt: skip
    async def messages(
        chat_id: ChatId,
        after_seq: Annotated[int, Query(ge=0, le=2**31 - 2)] = 0,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 200,
        owner: OwnerQuery = None,
    ) -> MessagePageOut:
        """A chat's messages in order, `limit` after `after_seq`: tool calls with their
        results, interrupted turns, timings and prosody."""
        chat = await store.get_chat(chat_id, owner=scope(owner))
        end = min(after_seq + limit, chat.message_count)
        if end <= after_seq:
            return MessagePageOut(messages=[], next_after_seq=None)
        page = await store.messages(
            chat_id, owner=scope(owner), before_seq=end + 1, limit=end - after_seq
        )
        return MessagePageOut(
            messages=[MessageOut.of(m) for m in page.messages],
            next_after_seq=end if end < chat.message_count else None,
        )

    @app.get(
        "/api/chats/{chat_id}/prosody", response_model=ProsodyOut, responses=_ERRORS,
        dependencies=[reader],
    )  # fmt: skip
    async def prosody(
        chat_id: ChatId,
        owner: OwnerQuery = None,
    ) -> Response:
        """The caller's pitch, loudness and rate over the chat, each against their own
        baseline (docs/prosody.md)."""
        chat = await store.get_chat(chat_id, owner=scope(owner))
        figures = await store.prosody_figures(chat_id, owner=scope(owner))
        baseline = chat.metadata.get("prosody_baseline")
        measured = chat.metadata.get("prosody", {}).get("measured", True) is not False
        # Encoded straight from the store's figures: thousands of points through pydantic cost
        # more than reading them (the figures are typed already; `ProsodyOut` documents them).
        return JSONResponse(
            {
                "points": [f._asdict() for f in figures],
                "baseline": baseline if isinstance(baseline, dict) else None,
                "measured": measured,
            }
        )

    @app.get(
        "/api/chats/{chat_id}/export", dependencies=[reader], response_class=Response,
        responses={**_ERRORS, 200: _EXPORTED},
    )  # fmt: skip
    async def export_chat(
        chat_id: ChatId,
        format: Literal["md", "json", "jsonl"] = "md",
        owner: OwnerQuery = None,
    ) -> Response:
        """The chat in the export formats (the same as `voxkeepctl chats export`)."""
        chat = await store.get_chat(chat_id, owner=scope(owner))
        page = await store.messages(chat_id, owner=scope(owner))
        return Response(
            export.render(format, chat, page.messages),
            media_type=f"{_MEDIA[format]}; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{chat.id}.{format}"'},
        )

    @app.patch(
        "/api/chats/{chat_id}", response_model=ChatOut, responses=_ERRORS, dependencies=[admin]
    )
    async def rename_chat(chat_id: ChatId, body: RenameIn) -> ChatOut:
        """Set a chat's title (admin)."""
        return ChatOut.of(await store.rename_chat(chat_id, body.title, owner=ANY_OWNER))

    @app.delete("/api/chats/{chat_id}", status_code=204, responses=_ERRORS, dependencies=[admin])
    async def delete_chat(chat_id: ChatId) -> Response:
        """Delete a chat with its messages (admin)."""
        await store.delete_chat(chat_id, owner=ANY_OWNER)
        return Response(status_code=204)

    if pages is not None:
        app.mount("/", StaticFiles(directory=pages, html=True), name="console")
    return app
