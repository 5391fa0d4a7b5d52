"""The store, as the rest of the agent sees it: async protocols in domain words (docs/store.md),
split by who uses them. `ChatStore` is the core a call needs (append, read, a chat's
lifecycle); `CallHolding` is which call holds a chat (resume, take-over, the heartbeat);
`Sweeping`, `Summaries` and `Administration` serve the sweeper, the summarizer and the
operator; `Outbox` holds the webhooks' events. `Store` is all of them: what a backend
implements, and what the contract suite checks for every backend.

One package per backend implements it (`sqlite/`, `postgres/`); only that package imports its
driver. Reads and changes made on behalf of a caller take `owner=` and never reveal another
owner's chat: it is `NotFound`, exactly like a chat that does not exist. Operators (the CLI, the
sweeper) pass `owner=ANY_OWNER`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, Literal, Protocol

from voxkeep.store.records import (
    Chat,
    ChatFilter,
    ChatPage,
    ChatStatus,
    EndReason,
    MessagePage,
    NewCall,
    OutboxEvent,
    ProsodyFigures,
    Record,
    SearchHit,
    StoreStats,
)


class _AnyOwner:
    """The operator's scope: every owner's chats. A distinct type, so it is never `None` by
    accident where an owner was meant."""

    def __repr__(self) -> str:
        return "ANY_OWNER"


ANY_OWNER: Final = _AnyOwner()
OwnerScope = str | _AnyOwner


@dataclass(frozen=True, slots=True)
class SchemaStatus:
    """Where the database's schema is, against the code reading it (docs/store.md, upgrades)."""

    current: int
    """The newest migration applied to the database (0: none)."""
    latest: int
    """The newest migration this code ships: its own schema version."""
    oldest_code: int = 1
    """The oldest code, by its schema version, that the database's schema still serves."""

    @property
    def pending(self) -> int:
        return max(0, self.latest - self.current)

    def refusal(self, program: str) -> str | None:
        """Why `program` (this code) cannot run on the database, in one line; None when it can:
        the schema is at least its own and it is not older than the schema's oldest code."""
        if self.current < self.latest:
            return (
                f"the database is at schema version {self.current}, this {program} needs "
                f"{self.latest}: run `voxkeepctl db migrate`"
            )
        if self.oldest_code > self.latest:
            return (
                f"the database is at schema version {self.current}, which needs code of schema "
                f"{self.oldest_code} or newer; this {program} is of schema {self.latest}: "
                "upgrade it"
            )
        return None


LostHold = Literal["taken_over", "deleted"]
"""How a call lost its chat: another call of the caller took it over, or it was deleted under
it (by the caller's app from another device, an erasure, an operator)."""
Hold = Literal["held", "taken_over", "deleted"]
"""What a heartbeat learns: the call still holds its chat, or how it lost it."""


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What one `write` did. Replayed records count in neither list: they were already there."""

    inserted: int
    orphaned: list[str] = field(default_factory=list)
    """Ids of messages whose chat no longer exists (deleted by its owner): not written."""
    moved: dict[str, LostHold] = field(default_factory=dict)
    """Messages made after their call lost the chat (docs/resume.md), by id, with how the call
    lost it: written to the call's continuation chat instead."""


@dataclass(frozen=True, slots=True)
class StaleCall:
    """A live call row whose heartbeat stopped: its worker may be gone while its caller is
    still in the room (docs/resume.md, continuation)."""

    id: str
    chat_id: str
    room: str
    participant: str
    job_id: str | None
    last_seen: float
    """Its last heartbeat (or its start), by its worker's clock."""


@dataclass(frozen=True, slots=True)
class Swept:
    """What one sweep (docs/resume.md) ended or removed."""

    calls_lost: int
    chats_lost: int
    chats_deleted: int
    chats_waiting: int = 0
    """Chats with no user message left active, not deleted: a journal one of their calls wrote
    through may still hold their words (docs/store.md)."""


class ChatStore(Protocol):
    """The core: what a call writes and reads, and a chat's lifecycle."""

    async def write(self, records: Sequence[Record]) -> WriteResult:
        """Create chats and append messages, in order, in one transaction.

        Idempotent by id: a record already stored is left as it is. Each new message gets the
        next `seq` of its chat (1-based, gapless). The first user message titles an untitled chat.
        A message made after its call lost the chat to another call, by the database's clock,
        goes to the call's continuation chat instead (`WriteResult.moved`, `continuation_ids`):
        one rule for every write, from a live call or replayed from a journal.
        """
        ...

    async def get_chat(self, chat_id: str, *, owner: OwnerScope) -> Chat: ...

    async def list_chats(
        self,
        *,
        owner: OwnerScope,
        status: ChatStatus | None = None,
        limit: int = 20,
        cursor: str | None = None,
        filters: ChatFilter | None = None,
    ) -> ChatPage:
        """Most recently updated first; `cursor` continues where the previous page stopped,
        unmoved by chats created meanwhile."""
        ...

    async def messages(
        self,
        chat_id: str,
        *,
        owner: OwnerScope,
        before_seq: int | None = None,
        limit: int | None = None,
    ) -> MessagePage:
        """The newest `limit` messages before `before_seq` (all when None), oldest first."""
        ...

    async def prosody_figures(self, chat_id: str, *, owner: OwnerScope) -> list[ProsodyFigures]:
        """The figures of the chat's user messages that carry prosody, in order: read from those
        rows alone, and only the figures (a chart of a long chat reads no transcript)."""
        ...

    async def close_chat(
        self,
        chat_id: str,
        *,
        status: ChatStatus,
        end_reason: EndReason,
        at: float,
        call_id: str | None = None,
    ) -> bool:
        """End a chat. A chat with no user message is deleted instead, or left active for the
        sweeper while another call's journal may still hold the caller's words (docs/store.md);
        returns whether it was kept. Raises NotFound if there is no such chat, and TakenOver,
        changing nothing, when `call_id` (the call closing it) has lost the chat to another
        call."""
        ...

    async def aclose(self) -> None: ...


class CallHolding(Protocol):
    """Which call holds a chat (docs/resume.md): resuming, taking over, the heartbeat."""

    async def resume_candidate(self, owner: str, *, ended_since: float) -> Chat | None:
        """The owner's most recent chat, when it is still active or ended by hang-up, loss or
        shutdown at `ended_since` or later; else None."""
        ...

    async def claim_chat(self, call: NewCall, *, owner: OwnerScope) -> Chat:
        """Make `call` the one live call of `call.chat_id`, in one transaction: the chat's other
        live calls end `taken_over`, the chat is active again, the call's row is written.
        Raises NotFound as `get_chat` does, changing nothing."""
        ...

    async def heartbeat(self, call_id: str, *, at: float) -> Hold:
        """Refresh a live call's row: "held"; or how it lost its chat, once another call took it
        over or it was deleted."""
        ...


class Continuing(Protocol):
    """Finding the calls whose worker died while their caller stayed, and deciding, once for the
    whole fleet, who sends the agent that continues each (docs/resume.md, continuation)."""

    async def stale_calls(self, *, stale_before: float, limit: int = 100) -> list[StaleCall]:
        """Live calls in a room, with a caller, whose last heartbeat is before `stale_before`,
        the longest silent first."""
        ...

    async def claim_stale_call(self, call_id: str, *, stale_before: float) -> bool:
        """End the call `lost` at its last heartbeat, if it is still live and has not beaten
        since `stale_before`: True for exactly one of any number of claims; False when another
        claim, a heartbeat or the call's own end came first."""
        ...


class Sweeping(Protocol):
    """Ending what stopped calls left behind (docs/resume.md)."""

    async def sweep(self, *, stale_before: float, dry_run: bool = False) -> Swept:
        """End calls that stopped heartbeating before `stale_before` and the active chats left
        behind by them: `interrupted`/`lost`, or deleted when no user message was written and
        no journal their calls wrote through may still hold one. `dry_run`: what it would do,
        and nothing done."""
        ...


class Summaries(Protocol):
    """The summaries of long chats, for the next rehydration (docs/resume.md)."""

    async def set_summary(self, chat_id: str, summary: str, *, upto_seq: int) -> bool:
        """Store the summary of messages 1..`upto_seq`; ignored (False) unless it covers more
        than the stored one."""
        ...


class Administration(Protocol):
    """The schema, and what operators and the caller's app do to chats beyond a call."""

    async def migrate(self) -> list[int]:
        """Apply pending migrations in order; return the versions applied (none: a no-op)."""
        ...

    async def schema_status(self) -> SchemaStatus: ...

    async def rename_chat(self, chat_id: str, title: str, *, owner: OwnerScope) -> Chat: ...

    async def delete_chat(self, chat_id: str, *, owner: OwnerScope) -> None:
        """Delete a chat with its calls, messages and search entries. A call still holding it
        ends `deleted` and goes on in its continuation chat (docs/resume.md)."""
        ...

    async def search(self, query: str, *, owner: OwnerScope, limit: int = 20) -> list[SearchHit]:
        """Messages whose content has every word of `query`, best match first."""
        ...

    async def prune(self, *, older_than: float, owner: OwnerScope, limit: int | None = None) -> int:
        """Delete chats that are not active and were last updated before `older_than` (at
        most `limit`, oldest first); how many. `purge` afterwards to leave no trace."""
        ...

    async def to_delete(self, *, owner: OwnerScope, older_than: float | None = None) -> list[str]:
        """A dry run: the ids of the chats that `prune(older_than=…, owner=…)`, or without
        `older_than` `erase_owner(owner)`, would delete now, oldest first. Changes nothing."""
        ...

    async def erase_owner(self, owner: str, *, keep: str | None = None) -> int:
        """Erase a person (docs/operations.md, erasure): delete every chat of `owner` but `keep`
        (the empty chat their call goes on in), with its calls, messages and search entries,
        and owe a `purge`: the sweeper's next run does it (`purge_if_due`), once for any number
        of erasures, so erasing costs the other calls nothing. How many chats were deleted.
        Calls still holding them go on as after `delete_chat`."""
        ...

    async def purge_if_due(self) -> bool:
        """`purge`, when an erasure has owed one since the last; whether it did."""
        ...

    async def purge(self) -> None:
        """Make what was deleted unrecoverable from the database's own files, as far as the
        backend allows: search index segments merged, freed pages zeroed, the WAL emptied
        (SQLite); the tables vacuumed (PostgreSQL)."""
        ...

    async def stats(self) -> StoreStats: ...

    async def check(self) -> list[str]:
        """Problems found by the database's own integrity checks; empty when healthy."""
        ...

    async def backup(self, path: str) -> None:
        """Write a consistent copy of the whole store to a new file at `path`, with nothing of
        what was deleted."""
        ...


class Outbox(Protocol):
    """The webhook outbox (docs/webhooks.md). Triggers fill it in the transaction of each change;
    workers lease due events, deliver them and settle them."""

    async def take_events(self, *, now: float, lease_s: float, limit: int) -> list[OutboxEvent]:
        """Lease up to `limit` events due at `now`, oldest first: each counts one more attempt
        and is due again at `now + lease_s` unless settled before, so a worker that dies
        mid-delivery leaves it to the next."""
        ...

    async def settle_event(
        self, event_id: str, *, acked: Sequence[str], retry_at: float | None
    ) -> None:
        """After an attempt: delete the event (`retry_at` None: every receiver has it), or keep
        who acknowledged it and when to try the rest again."""
        ...

    async def expire_events(self, *, created_before: float, dry_run: bool = False) -> int:
        """Delete the events created before `created_before`, delivered or not; how many
        (`dry_run`: how many it would, and none deleted)."""
        ...


class Store(
    ChatStore, CallHolding, Continuing, Sweeping, Summaries, Administration, Outbox, Protocol
):
    """Everything a backend implements."""
