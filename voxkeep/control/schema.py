"""Every message of the control protocol as a model (docs/control.md): the requests (from
`protocol.py`), each command's reply, the error reply and the `chat.started` event. Their JSON
Schema (`voxkeepctl protocol schema`) is what the TypeScript client's types are generated from,
so the two sides cannot drift; the tests check every reply the dispatcher makes against it."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from voxkeep.control.protocol import (
    VERSION,
    DeleteChat,
    EraseMe,
    ErrorCode,
    GetChat,
    ListChats,
    NewChatCommand,
    Ping,
    RenameChat,
    ResumeChat,
)
from voxkeep.store.records import ChatStatus, Role


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- what replies carry ---------------------------------------------------------------------


class Pitch(_Message):
    median_hz: float
    p10_hz: float
    p90_hz: float
    range_st: float
    std_st: float
    slope_st_per_s: float


class Loudness(_Message):
    mean_db: float
    std_db: float
    range_db: float


class Pauses(_Message):
    count: int
    total_s: float
    mean_s: float


class Rate(_Message):
    words_per_s: float
    source: Literal["transcript", "acoustic"]


class VoiceQuality(_Message):
    hnr_db: float
    jitter: float | None
    shimmer: float | None


class Relative(_Message):
    """z-scores against the caller's own baseline (docs/prosody.md)."""

    pitch_z: float | None
    loudness_z: float | None
    rate_z: float | None
    range_z: float | None
    baseline_n: int


class Prosody(_Message):
    """How the caller said a message (docs/prosody.md); a group is null when there was too
    little voiced speech to measure it."""

    v: Literal[1]
    source: Literal["acoustic"]
    speech_s: float
    voiced_s: float
    pitch: Pitch | None
    loudness: Loudness | None
    pauses: Pauses | None
    rate: Rate | None
    voice: VoiceQuality | None
    relative: Relative | None = None


class ChatSummary(_Message):
    id: str
    title: str | None
    status: ChatStatus
    created_at: float
    updated_at: float
    message_count: int


class ChatMessage(_Message):
    seq: int
    role: Role
    content: str | None
    created_at: float
    interrupted: bool
    prosody: Prosody | None
    truncated: Literal[True] | None = None
    """Present when a very long content was cut to fit the reply."""


# --- replies --------------------------------------------------------------------------------


class _Reply(_Message):
    v: Literal[1]
    re: str


class PingOk(_Reply):
    type: Literal["ping.ok"]
    chat_id: str


class NewChatOk(_Reply):
    type: Literal["new_chat.ok"]
    saved_chat_id: str | None
    chat_id: str


class ListChatsOk(_Reply):
    type: Literal["list_chats.ok"]
    chats: list[ChatSummary]
    next_cursor: str | None


class GetChatOk(_Reply):
    type: Literal["get_chat.ok"]
    chat: ChatSummary
    messages: list[ChatMessage]
    next_before_seq: int | None


class ResumeChatOk(_Reply):
    type: Literal["resume_chat.ok"]
    chat_id: str
    saved_chat_id: str | None
    message_count: int
    context_messages: int


class RenameChatOk(_Reply):
    type: Literal["rename_chat.ok"]
    chat_id: str
    title: str


class DeleteChatOk(_Reply):
    type: Literal["delete_chat.ok"]
    chat_id: str


class EraseMeOk(_Reply):
    type: Literal["erase_me.ok"]
    erased: bool
    """False: nothing was deleted yet; send `erase_me` again with `confirm` to do it."""
    chat_count: int
    """The chats that will be (or were) deleted, the current one included."""
    confirm: str | None = None
    """The token to confirm with, once, within `expires_in_ms` (when not yet erased)."""
    expires_in_ms: int | None = None
    chat_id: str | None = None
    """Once erased: the new, empty chat the call goes on in."""


class ErrorReply(_Message):
    v: Literal[1]
    re: str | None
    """The request's id, or null when it was refused before its id could be read."""
    type: Literal["error"]
    code: ErrorCode
    message: str
    retry_after_ms: int | None = None
    """With `rate_limited`: when to try again."""


class ChatStarted(_Message):
    """Sent to the caller whenever the current chat changes."""

    v: Literal[1]
    type: Literal["chat.started"]
    chat_id: str
    resumed: bool
    message_count: int
    reason: Literal["not_found", "unavailable", "timeout", "taken_over", "deleted"] | None = None


Reply = Annotated[
    PingOk | NewChatOk | ListChatsOk | GetChatOk | ResumeChatOk | RenameChatOk | DeleteChatOk
    | EraseMeOk | ErrorReply,
    Field(discriminator="type"),
]  # fmt: skip
REPLY: TypeAdapter[Reply] = TypeAdapter(Reply)


class Protocol(BaseModel):
    """The whole protocol in one document: each message kind by name."""

    ping: Ping
    new_chat: NewChatCommand
    list_chats: ListChats
    get_chat: GetChat
    resume_chat: ResumeChat
    rename_chat: RenameChat
    delete_chat: DeleteChat
    erase_me: EraseMe
    ping_ok: PingOk
    new_chat_ok: NewChatOk
    list_chats_ok: ListChatsOk
    get_chat_ok: GetChatOk
    resume_chat_ok: ResumeChatOk
    rename_chat_ok: RenameChatOk
    delete_chat_ok: DeleteChatOk
    erase_me_ok: EraseMeOk
    error: ErrorReply
    chat_started: ChatStarted


def json_schema() -> dict[str, Any]:
    """The protocol's JSON Schema: every message under `$defs`, by its model's name (fields
    carry no titles of their own: a field is not a type)."""
    schema = Protocol.model_json_schema(mode="serialization")
    for model in [schema, *schema["$defs"].values()]:
        for field in model.get("properties", {}).values():
            field.pop("title", None)
    schema["title"] = "AgentControlProtocol"
    schema["description"] = f"The agent's control protocol, version {VERSION} (docs/control.md)."
    return schema


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
