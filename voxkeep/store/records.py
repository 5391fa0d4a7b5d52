"""What is written to and read from a store, in domain words (docs/store.md).

Writes are pydantic models, because they cross boundaries as JSON (the writer's journal, exports)
and must be checked before they reach any backend: the same text is accepted or refused the same
way everywhere. Reads are frozen dataclasses: internal values, cheap to build by the thousand.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, field_validator

from voxkeep.core.errors import InvalidText

Role = Literal["user", "assistant", "system", "tool"]
ChatStatus = Literal["active", "closed", "interrupted"]
EndReason = Literal["new_chat", "switched", "hangup", "shutdown", "lost"]
JsonObject = dict[str, Any]

MAX_TEXT_CHARS = 1_048_576
"""Longest text field accepted (1 MiB of characters): far past any spoken turn, and a bound on
the size of a batch, a journal line and an export."""
MAX_JSON_CHARS = 2 * MAX_TEXT_CHARS
MAX_JSON_DEPTH = 32
TITLE_MAX_CHARS = 60
_JSON = "json"


def _not_json(value: Any) -> Any:
    raise TypeError(f"{type(value).__name__} is not JSON")


# The stdlib's C encoder, built once: `JSONEncoder.encode` builds a new one per call, which
# cost more than the encoding itself for the small objects stored with every message.
_encode = (json.encoder.c_make_encoder or json.encoder._make_iterencode)(  # type: ignore[attr-defined]
    None, _not_json, json.encoder.encode_basestring, None, ":", ",", False, False, False
)


def check_text(value: str, field: str) -> str:
    """Refuse text no backend can keep faithfully: NUL, unpaired surrogates, or too long."""
    if len(value) > MAX_TEXT_CHARS:
        raise InvalidText(f"{field} is longer than {MAX_TEXT_CHARS} characters")
    if "\x00" in value:
        raise InvalidText(f"{field} contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidText(f"{field} contains an unpaired surrogate") from exc
    return value


def check_json(value: Any, field: str, depth: int = 0) -> Any:
    """Refuse JSON values that are not portable: bad strings, NaN/Infinity, too deep."""
    if depth > MAX_JSON_DEPTH:
        raise InvalidText(f"{field} is nested deeper than {MAX_JSON_DEPTH}")
    if isinstance(value, str):
        check_text(value, field)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidText(f"{field} contains NaN or Infinity")
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidText(f"{field} has a key that is not a string")
            check_text(key, field)
            check_json(item, field, depth + 1)
    elif isinstance(value, list):
        for item in value:
            check_json(item, field, depth + 1)
    elif value is not None and not isinstance(value, bool | int):
        raise InvalidText(f"{field} holds a value that is not JSON")
    return value


def encode_json(value: Any, field: str) -> str:
    """`value` as JSON text, refused as `check_json` would refuse it. Fast path in C: NaN fails
    the encoder, an unpaired surrogate fails UTF-8, and only text showing an escaped NUL (rare)
    takes the exact walk, since a literal backslash-u0000 in a string must stay accepted."""
    try:
        text = "".join(_encode(value, 0))
    except ValueError as exc:
        raise InvalidText(f"{field} contains NaN or Infinity") from exc
    except (TypeError, RecursionError) as exc:
        raise InvalidText(f"{field} holds a value that is not JSON") from exc
    if len(text) > MAX_JSON_CHARS:
        raise InvalidText(f"{field} is longer than {MAX_JSON_CHARS} characters as JSON")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidText(f"{field} contains an unpaired surrogate") from exc
    if "\\u0000" in text or text.count("[") + text.count("{") > MAX_JSON_DEPTH:
        check_json(value, field)
    return text


def default_title(text: str) -> str:
    """The first user message, whitespace folded, cut at a word boundary to ≤ 60 characters."""
    folded = " ".join(text.split())
    if len(folded) <= TITLE_MAX_CHARS:
        return folded
    cut = folded[: TITLE_MAX_CHARS + 1]
    space = cut.rfind(" ")
    return (cut[:space] if space > 0 else cut[:TITLE_MAX_CHARS]).rstrip(" ,;:-")


class _Record(BaseModel):
    """Checked once, at construction: text fields with `check_text`, JSON fields by encoding
    them, and the encoded text is kept so a backend binds it without encoding again."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    def model_post_init(self, context: Any, /) -> None:
        encoded = {}
        for name, value in self.__dict__.items():
            if isinstance(value, str):
                check_text(value, name)
            elif isinstance(value, dict):
                encoded[name] = encode_json(value, name)
        # Kept where pydantic keeps private attributes, set directly: a declared `PrivateAttr`
        # made pydantic wrap this method and build the attributes twice per record, which was
        # a third of a message's cost on the event loop (docs/benchmarks.md).
        object.__setattr__(self, "__pydantic_private__", {_JSON: encoded})

    @field_validator("metadata", mode="after", check_fields=False)
    @classmethod
    def _metadata_is_versioned(cls, value: JsonObject) -> JsonObject:
        """`metadata` always carries "v" so later shapes can be told apart (docs/store.md)."""
        return value if "v" in value else {"v": 1, **value}

    @property
    def ref(self) -> str:
        """The id a log line may name this record by."""
        fields = self.__dict__
        return str(
            fields.get("id")
            or fields.get("message_id")
            or fields.get("call_id")
            or fields["chat_id"]
        )

    def json_texts(self) -> dict[str, str]:
        """The JSON fields that are not None, as the JSON text to store, by field name."""
        kept: dict[str, str] = self.__pydantic_private__[_JSON]  # type: ignore[index]
        return kept


class NewChat(_Record):
    """A chat to create. Creating it again with the same id does nothing."""

    kind: Literal["chat"] = "chat"
    id: str = Field(min_length=1, max_length=64)
    owner: str = Field(min_length=1, max_length=256)
    agent_name: str | None = None
    created_at: float
    metadata: JsonObject = Field(default_factory=lambda: {"v": 1})
    holder: NewCall | None = None
    """The row by which the call that opens the chat holds it, created in the same transaction:
    a chat is never in the store without it, for the sweeper to take for abandoned."""


class NewMessage(_Record):
    """A finalized message to append. `seq` is given by the store at commit, in commit order."""

    kind: Literal["message"] = "message"
    id: str = Field(min_length=1, max_length=128)
    chat_id: str = Field(min_length=1, max_length=64)
    call_id: str | None = None
    role: Role
    content: str | None = None
    tool_name: str | None = None
    tool_call: JsonObject | None = None
    tool_result: JsonObject | None = None
    interrupted: bool = False
    confidence: float | None = None
    started_at: float | None = None
    ended_at: float | None = None
    created_at: float
    prosody: JsonObject | None = None
    item: JsonObject | None = None
    metadata: JsonObject = Field(default_factory=lambda: {"v": 1})


CallEndReason = Literal["new_chat", "switched", "hangup", "shutdown", "lost", "taken_over"]


class NewCall(_Record):
    """A call (one LiveKit job serving one caller) holding a chat. Replaying it does nothing."""

    kind: Literal["call"] = "call"
    id: str = Field(min_length=1, max_length=64)
    chat_id: str = Field(min_length=1, max_length=64)
    room: str | None = None
    job_id: str | None = None
    participant: str | None = None
    started_at: float
    journal: str | None = None
    """The journal of the writer the call writes through (`JournalOpened`)."""


NewChat.model_rebuild()  # (its `holder` is a NewCall, defined after it)


class CallEnded(_Record):
    """The end of a call. Only the first end counts: replaying it changes nothing."""

    kind: Literal["call_ended"] = "call_ended"
    call_id: str = Field(min_length=1, max_length=64)
    end_reason: CallEndReason
    ended_at: float


class ChatMetadataSet(_Record):
    """One key of a chat's `metadata` set to a JSON object (the prosody baseline, for one)."""

    kind: Literal["chat_metadata"] = "chat_metadata"
    chat_id: str = Field(min_length=1, max_length=64)
    key: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    value: JsonObject


class MessageMeasured(_Record):
    """What was measured of a user message's speech, which arrives after the message itself
    is stored: its prosody, and when it was said where the session did not know. Replaying it
    sets the same values."""

    kind: Literal["message_measured"] = "message_measured"
    message_id: str = Field(min_length=1, max_length=64)
    prosody: JsonObject
    started_at: float | None = None
    ended_at: float | None = None


class JournalOpened(_Record):
    """A writer's journal file (docs/store.md), the writer's first record: while its row stands,
    records of its calls may still be in the file, and the sweeper deletes none of their chats."""

    kind: Literal["journal_opened"] = "journal_opened"
    id: str = Field(min_length=1, max_length=64)
    host: str = Field(max_length=256)
    pid: int
    opened_at: float


class JournalClosed(_Record):
    """Every record of journal `id` is in the store: its row goes. The writer's last record, and
    the line a writer puts after a dead writer's lines it adopts."""

    kind: Literal["journal_closed"] = "journal_closed"
    id: str = Field(min_length=1, max_length=64)


Record = Annotated[
    NewChat
    | NewMessage
    | NewCall
    | CallEnded
    | ChatMetadataSet
    | MessageMeasured
    | JournalOpened
    | JournalClosed,
    Field(discriminator="kind"),
]


def call_rows(records: Sequence[Record]) -> list[NewCall]:
    """The call rows a batch creates, each chat's holder first (a backend inserts them after
    the chats, before the messages)."""
    holders = [r.holder for r in records if isinstance(r, NewChat) and r.holder is not None]
    return holders + [r for r in records if isinstance(r, NewCall)]


@dataclass(frozen=True, slots=True)
class Chat:
    id: str
    owner: str
    agent_name: str | None
    title: str | None
    status: ChatStatus
    end_reason: EndReason | None
    created_at: float
    updated_at: float
    ended_at: float | None
    summary: str | None
    summary_seq: int | None
    metadata: JsonObject
    message_count: int


class Message(NamedTuple):
    """A stored message. A named tuple, not a dataclass: immutable all the same, and built in C,
    which matters when a whole 10,000-message chat is read."""

    id: str
    chat_id: str
    call_id: str | None
    seq: int
    role: Role
    content: str | None
    tool_name: str | None
    tool_call: JsonObject | None
    tool_result: JsonObject | None
    interrupted: bool
    confidence: float | None
    started_at: float | None
    ended_at: float | None
    created_at: float
    prosody: JsonObject | None
    item: JsonObject | None
    metadata: JsonObject


class ProsodyFigures(NamedTuple):
    """A user message's prosody as a chart plots it: its figures, and each one against the
    caller's own baseline (`relative`); None where the message has no such figure."""

    seq: int
    at: float
    pitch_hz: float | None
    loudness_db: float | None
    rate_wps: float | None
    pitch_z: float | None
    loudness_z: float | None
    rate_z: float | None


@dataclass(frozen=True, slots=True)
class ChatPage:
    chats: list[Chat]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class MessagePage:
    messages: list[Message]
    next_before_seq: int | None


@dataclass(frozen=True, slots=True)
class SearchHit:
    chat_id: str
    owner: str
    message_id: str
    seq: int
    role: Role
    created_at: float
    snippet: str


@dataclass(frozen=True, slots=True)
class StoreStats:
    chats: int
    messages: int
    owners: int
    chats_by_status: dict[str, int]
    schema_version: int
    size_bytes: int | None


@dataclass(frozen=True, slots=True)
class OutboxEvent:
    """A webhook event waiting in the outbox (docs/webhooks.md)."""

    id: str
    type: str
    data: dict[str, Any]
    created_at: float
    attempts: int
    """Delivery attempts begun, this one included."""
    acked: list[str]
    """The receivers (by key) that already acknowledged it."""


@dataclass(frozen=True, slots=True)
class ChatFilter:
    """What `list_chats` narrows to, beyond owner and status (the console's filters)."""

    created_after: float | None = None
    """Chats started at or after this time."""
    created_before: float | None = None
    """Chats started before this time."""
    text: str | None = None
    """Chats with a message holding every word of it (full-text search)."""
