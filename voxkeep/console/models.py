"""The console API's bodies (docs/console.md), as its OpenAPI description publishes them. Times
are UTC Unix seconds."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from voxkeep.store.records import Chat, Message
from voxkeep.views.chat import chat_fields, message_fields


class ChatOut(BaseModel):
    id: str
    owner: str
    agent_name: str | None
    title: str | None
    status: Literal["active", "closed", "interrupted"]
    end_reason: str | None
    created_at: float
    updated_at: float
    ended_at: float | None
    message_count: int
    summary: str | None
    metadata: dict[str, Any]

    @classmethod
    def of(cls, chat: Chat) -> ChatOut:
        return cls.model_validate(chat_fields(chat))


class ChatPageOut(BaseModel):
    chats: list[ChatOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null: last.")


class MessageOut(BaseModel):
    id: str
    seq: int
    role: Literal["user", "assistant", "system", "tool"]
    content: str | None
    tool_name: str | None
    tool_call: dict[str, Any] | None
    tool_result: dict[str, Any] | None
    interrupted: bool
    confidence: float | None
    started_at: float | None
    ended_at: float | None
    created_at: float
    call_id: str | None
    prosody: dict[str, Any] | None

    @classmethod
    def of(cls, m: Message) -> MessageOut:
        return cls.model_validate(message_fields(m))


class MessagePageOut(BaseModel):
    messages: list[MessageOut]
    next_after_seq: int | None = Field(
        description="Pass as `after_seq` for the next page; null: this was the last."
    )


class ProsodyPoint(BaseModel):
    """One caller utterance's figures, and how far each is from the caller's own baseline."""

    seq: int
    at: float
    pitch_hz: float | None
    loudness_db: float | None
    rate_wps: float | None
    pitch_z: float | None
    loudness_z: float | None
    rate_z: float | None


class ProsodyOut(BaseModel):
    points: list[ProsodyPoint]
    baseline: dict[str, Any] | None = Field(description="The caller's baseline in this chat.")
    measured: bool = Field(description="False when the caller switched prosody off.")


class RenameIn(BaseModel):
    title: str = Field(min_length=1, max_length=100)


class HealthOut(BaseModel):
    ok: bool
    schema_version: int
    code_schema_version: int
    problems: list[str]


class ErrorOut(BaseModel):
    error: str = Field(
        description="unauthorized, forbidden, not_found, bad_request, method_not_allowed, "
        "unavailable"
    )
    message: str
