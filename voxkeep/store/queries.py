"""Backend-neutral pieces of queries: page cursors and search terms."""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from voxkeep.core.errors import InvalidInput
from voxkeep.core.ids import continuation_ids
from voxkeep.store.base import Swept
from voxkeep.store.records import (
    Chat,
    ChatPage,
    Message,
    MessagePage,
    NewMessage,
    ProsodyFigures,
    default_title,
)

RESUMABLE_ENDS = ("hangup", "lost", "shutdown")

# The same columns on every backend (docs/store.md), in the order the row converters read them.
CHAT_COLUMNS = (
    "c.id, c.owner, c.agent_name, c.title, c.status, c.end_reason, c.created_at, c.updated_at,"
    " c.ended_at, c.summary, c.summary_seq, c.metadata,"
    " COALESCE((SELECT MAX(seq) FROM messages m WHERE m.chat_id = c.id), 0)"
)
STALE_CALL_COLUMNS = (
    "id, chat_id, room, participant, job_id, COALESCE(heartbeat_at, started_at) AS last_seen"
)
"""A `StaleCall`'s columns of `calls`, in its order (both backends)."""
MESSAGE_COLUMNS = (
    "id, chat_id, call_id, seq, role, content, tool_name, tool_call, tool_result, interrupted,"
    " confidence, started_at, ended_at, created_at, prosody, item, metadata"
)

PROSODY_FIGURES = (
    ("pitch", "median_hz"), ("loudness", "mean_db"), ("rate", "words_per_s"),
    ("relative", "pitch_z"), ("relative", "loudness_z"), ("relative", "rate_z"),
)  # fmt: skip
"""Where `ProsodyFigures`' figures are in a message's prosody (docs/prosody.md), in its order."""


def prosody_figures(rows: Iterable[Sequence[Any]]) -> list[ProsodyFigures]:
    """Rows of (seq, created_at, the value at each of `PROSODY_FIGURES` or None) as figures: a
    whole number is the same figure as a float; a value that is not a number is no figure."""
    return [
        ProsodyFigures(
            row[0],
            row[1],
            *(
                float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None
                for v in row[2:]
            ),
        )
        for row in rows
    ]


def journal_pending(chat: str, closer: str = "NULL") -> str:
    """SQL, on either backend: whether a journal that a call of `chat` (other than `closer`)
    wrote through is still open, so the caller's words may still be on their way to it: a chat
    with no user message is not dropped meanwhile (docs/store.md). Both are SQL expressions."""
    return (
        "EXISTS (SELECT 1 FROM calls k JOIN journals j ON j.id = k.journal"
        f" WHERE k.chat_id = {chat} AND k.id <> COALESCE({closer}, ''))"
    )


_WORD = re.compile(r"\w+", re.UNICODE)
MAX_SEARCH_WORDS = 16


def encode_cursor(updated_at: float, chat_id: str) -> str:
    """An opaque cursor for keyset pages ordered by (updated_at DESC, id DESC)."""
    raw = json.dumps([updated_at, chat_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        updated_at, chat_id = json.loads(raw)
    except (ValueError, TypeError, binascii.Error) as exc:
        raise InvalidInput("cursor is not one this store gave out") from exc
    if not isinstance(updated_at, int | float) or isinstance(updated_at, bool):
        raise InvalidInput("cursor is not one this store gave out")
    try:
        at = float(updated_at)  # (an integer of hundreds of digits is no float)
    except OverflowError:
        raise InvalidInput("cursor is not one this store gave out") from None
    if not math.isfinite(at) or not isinstance(chat_id, str):
        raise InvalidInput("cursor is not one this store gave out")
    return at, chat_id


def search_words(query: str) -> list[str]:
    """The words of a search query: every one must match. Operators and quotes are not syntax."""
    words = _WORD.findall(query)
    if not words:
        raise InvalidInput("a search needs at least one word")
    return words[:MAX_SEARCH_WORDS]


def fts_query(query: str) -> str:
    """An FTS5 MATCH expression that finds messages holding every word (each as a prefix-free
    quoted string, so no user input is parsed as FTS5 syntax)."""
    return " AND ".join(f'"{word}"' for word in search_words(query))


@dataclass
class Appended:
    """What one batch of messages does to the chats it touches (both backends, same rules)."""

    live: list[tuple[NewMessage, int]] = field(default_factory=list)
    """The messages to insert, each with its seq (and its chat: moved ones carry their new one)."""
    orphaned: list[str] = field(default_factory=list)
    moved: dict[str, str] = field(default_factory=dict)
    """Moved messages: id → the call that had lost its chat."""
    continued: dict[str, tuple[str, float]] = field(default_factory=dict)
    """The continuation chats moved messages go to: id → (the chat it continues, created at).
    The backend creates those that do not exist yet, in this order, before inserting."""
    newest: dict[str, float] = field(default_factory=dict)
    """Each touched chat's newest message time (its `updated_at`)."""
    titles: dict[str, str] = field(default_factory=dict)
    """The title of each touched chat from its first user message (kept only if untitled)."""


MAX_CONTINUATIONS = 8
"""How many take-overs in a row one message is followed through (each needs a caller to take
over the chat their own previous call continued in: two or three is already rare)."""


def chains(lost: Iterable[str]) -> tuple[set[str], set[str]]:
    """The continuation chats and calls that messages of the calls in `lost` (calls that lost
    their chat) may move through, `MAX_CONTINUATIONS` deep: a backend reads those chats' last
    seq, and which of those calls lost their chat too, in one query each."""
    chats: set[str] = set()
    calls: set[str] = set()
    for call_id in lost:
        for _ in range(MAX_CONTINUATIONS):
            chat_id, call_id = continuation_ids(call_id)
            chats.add(chat_id)
            calls.add(call_id)
    return chats, calls


def append(
    messages: Iterable[NewMessage],
    last_seq: Mapping[str, int],
    stored: set[str],
    lost_at: Mapping[str, float],
    offset: float = 0.0,
) -> Appended:
    """Number a batch, in batch order: each new message gets its chat's next seq. A message
    whose chat is gone is orphaned; one already stored (a replay) takes no number; one made
    after its call lost the chat to another call is moved to that call's continuation chat
    (`continuation_ids`), followed through further take-overs; one said before its chat was
    deleted under its call goes with the chat. `lost_at`: call id → when it lost its chat, by
    the database's clock, for the calls of the batch and their continuations; `offset`: the
    database's clock minus the clock of the messages' `created_at`. `last_seq` holds every
    existing chat the batch may touch."""
    out, seqs, seen = Appended(), dict(last_seq), set(stored)
    for m in messages:
        if m.id in seen:
            continue
        hops, call_id = 0, m.call_id
        while m.call_id is not None and m.created_at + offset > lost_at.get(m.call_id, math.inf):
            chat_id, next_call = continuation_ids(m.call_id)
            if hops == MAX_CONTINUATIONS or (chat_id not in seqs and m.chat_id not in seqs):
                break  # (nothing to continue from: that chat was deleted)
            hops += 1
            if chat_id not in seqs:
                seqs[chat_id] = 0
                out.continued[chat_id] = (m.chat_id, m.created_at)
            m = m.model_copy(update={"chat_id": chat_id, "call_id": next_call})
        if m.chat_id not in seqs:  # deleted, and said before it was (or no call to follow)
            out.orphaned.append(m.id)
            continue
        if hops:
            out.moved[m.id] = call_id or ""
        seen.add(m.id)
        seqs[m.chat_id] += 1
        out.live.append((m, seqs[m.chat_id]))
        out.newest[m.chat_id] = max(out.newest.get(m.chat_id, m.created_at), m.created_at)
        if m.role == "user" and m.chat_id not in out.titles and m.content and m.content.strip():
            out.titles[m.chat_id] = default_title(m.content)
    return out


@dataclass
class SweepPlan:
    """What one sweep does to the stale chats it found (both backends, same rules)."""

    lost: dict[str, float]
    """Chats someone spoke in: ended `interrupted`/`lost`, at the last moment known alive."""
    empty: list[str]
    """Chats with no user message and no journal that may still hold one: deleted."""
    waiting: int
    """Chats with no user message, left active while a journal may still hold one."""

    def result(self, calls_lost: int) -> Swept:
        return Swept(
            calls_lost=calls_lost, chats_lost=len(self.lost), chats_deleted=len(self.empty),
            chats_waiting=self.waiting,
        )  # fmt: skip


def swept(stale: Iterable[tuple[str, bool, float, bool]], cutoff: float) -> SweepPlan:
    """The sweep of chats nobody holds that were not updated since `cutoff`: each as (id, has
    a user message, the last moment known alive, a journal of its calls is still open)."""
    plan = SweepPlan({}, [], 0)
    for chat_id, spoke, alive_until, journaled in stale:
        if alive_until >= cutoff:
            continue
        if spoke:
            plan.lost[chat_id] = alive_until
        elif journaled:
            plan.waiting += 1
        else:
            plan.empty.append(chat_id)
    return plan


def resumable(newest: Chat | None, ended_since: float) -> Chat | None:
    """The owner's most recent chat, if a new call should resume it (docs/resume.md): still active,
    or ended by hang-up, loss or shutdown at `ended_since` or later."""
    if newest is None or newest.status == "active":
        return newest
    recent = (newest.ended_at or 0) >= ended_since
    return newest if newest.end_reason in RESUMABLE_ENDS and recent else None


def check_page_limit(limit: int | None) -> None:
    if limit is not None and limit < 1:
        raise InvalidInput("limit must be at least 1")


def chat_page(chats: list[Chat], limit: int) -> ChatPage:
    """A page from up to `limit + 1` chats read (the extra one says there is more)."""
    page = chats[:limit]
    more = len(chats) > limit
    return ChatPage(
        chats=page,
        next_cursor=encode_cursor(page[-1].updated_at, page[-1].id) if more else None,
    )


def message_page(newest_first: list[Message]) -> MessagePage:
    """A page from messages read newest first: oldest first, and where the next page ends."""
    newest_first.reverse()
    first = newest_first[0].seq if newest_first else 0
    return MessagePage(messages=newest_first, next_before_seq=first if first > 1 else None)
