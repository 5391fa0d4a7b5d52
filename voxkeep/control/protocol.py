"""The control protocol, version 1 (docs/control.md), as pure functions over bytes and values.

Parsing is strict and happens before any work: size first (before decoding anything), then
UTF-8, then JSON with no duplicate keys and no NaN/Infinity, nesting at most 8 deep, no NUL or
unpaired surrogates in any string, and last the schema of the command. Every failure is a
`ControlError` with the code the client acts on; nothing else escapes.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from voxkeep.core.errors import InvalidText
from voxkeep.store.records import check_text

VERSION = 1
MAX_PAYLOAD = 15 * 1024
"""Bytes, for requests and replies alike: the data channel's reliable packet limit."""
MAX_DEPTH = 8

ErrorCode = Literal[
    "bad_request",
    "unknown_type",
    "too_large",
    "not_found",
    "forbidden",
    "busy",
    "rate_limited",
    "unavailable",
    "expired",
    "internal",
]


class ControlError(Exception):
    """A request that gets an error reply. `re` is the request's id when it could be read."""

    def __init__(
        self, code: ErrorCode, message: str, *, re: str | None = None, **extra: Any
    ) -> None:
        super().__init__(message)
        self.code: ErrorCode = code
        self.message = message
        self.re = re
        self.extra = extra

    def reply(self) -> dict[str, Any]:
        return error_reply(self.re, self.code, self.message, **self.extra)


ChatId = Annotated[str, Field(min_length=1, max_length=64)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    v: Literal[1]
    id: str = Field(min_length=1, max_length=64)


class Ping(_Request):
    type: Literal["ping"]


class NewChatCommand(_Request):
    type: Literal["new_chat"]


class ListChats(_Request):
    type: Literal["list_chats"]
    limit: int = Field(20, ge=1, le=50)
    cursor: str | None = Field(None, min_length=1, max_length=512)


class GetChat(_Request):
    type: Literal["get_chat"]
    chat_id: ChatId
    before_seq: int | None = Field(None, ge=1)
    limit: int = Field(50, ge=1, le=100)


class ResumeChat(_Request):
    type: Literal["resume_chat"]
    chat_id: ChatId


class RenameChat(_Request):
    type: Literal["rename_chat"]
    chat_id: ChatId
    title: str = Field(min_length=1, max_length=100)


class DeleteChat(_Request):
    type: Literal["delete_chat"]
    chat_id: ChatId


class EraseMe(_Request):
    """Erase the caller's whole history: first without `confirm` (nothing is deleted; the reply
    carries a token), then again with that token to do it."""

    type: Literal["erase_me"]
    confirm: str | None = Field(None, min_length=1, max_length=64)


AnyRequest = (
    Ping | NewChatCommand | ListChats | GetChat | ResumeChat | RenameChat | DeleteChat | EraseMe
)
Request = Annotated[AnyRequest, Field(discriminator="type")]
_REQUEST: TypeAdapter[Request] = TypeAdapter(Request)
COMMANDS = frozenset(
    [
        "ping", "new_chat", "list_chats", "get_chat", "resume_chat", "rename_chat", "delete_chat",
        "erase_me",
    ]
)  # fmt: skip


class _Malformed(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise _Malformed("duplicate key")
    return obj


def _no_constants(name: str) -> Any:
    raise _Malformed(f"{name} is not allowed")


def _check(value: Any, depth: int = 1) -> None:
    """Nesting depth (the top object is 1) and the text of every string and key."""
    if isinstance(value, str):
        check_text(value, "a string")
        return
    if isinstance(value, dict | list):
        if depth > MAX_DEPTH:
            raise _Malformed(f"nested deeper than {MAX_DEPTH}")
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            if isinstance(key, str):
                check_text(key, "a key")
            _check(item, depth + 1)


def _request_id(obj: dict[str, Any]) -> str | None:
    value = obj.get("id")
    if isinstance(value, str) and 1 <= len(value) <= 64:
        return value
    return None


def parse(payload: bytes | str) -> Request:
    """A valid request, or ControlError with the code to reply with."""
    data = payload.encode("utf-8", "surrogatepass") if isinstance(payload, str) else payload
    if len(data) > MAX_PAYLOAD:
        raise ControlError("too_large", f"requests are at most {MAX_PAYLOAD} bytes")
    try:
        obj = json.loads(
            data.decode("utf-8"), object_pairs_hook=_no_duplicates, parse_constant=_no_constants
        )
        if not isinstance(obj, dict):
            raise _Malformed("a request is a JSON object")
        _check(obj)
    except (_Malformed, InvalidText) as exc:
        raise ControlError("bad_request", str(exc)) from exc
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ControlError("bad_request", "not UTF-8 JSON") from exc
    re = _request_id(obj)
    kind = obj.get("type")
    if not isinstance(kind, str):
        raise ControlError("bad_request", "type is missing", re=re)
    if kind not in COMMANDS:
        raise ControlError("unknown_type", "no such command", re=re)
    try:
        return _REQUEST.validate_python(obj)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"][1:]) or "request"
        raise ControlError("bad_request", f"{where}: {first['msg']}"[:200], re=re) from exc


def ok_reply(request: AnyRequest, **result: Any) -> dict[str, Any]:
    return {"v": VERSION, "re": request.id, "type": f"{request.type}.ok", **result}


def error_reply(re: str | None, code: ErrorCode, message: str, **extra: Any) -> dict[str, Any]:
    return {"v": VERSION, "re": re, "type": "error", "code": code, "message": message, **extra}


def encode(reply: dict[str, Any]) -> bytes:
    return json.dumps(reply, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
