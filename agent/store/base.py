"""The store, as the rest of the agent sees it: an async protocol in domain words (DESIGN §3).

One module per backend implements it (`sqlite.py`, later `postgres.py`); only that module imports
its driver. Reads and changes made on behalf of a caller take `owner=` and never reveal another
owner's chat: it is `NotFound`, exactly like a chat that does not exist. Operators (the CLI, the
sweeper) pass `owner=ANY_OWNER`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol

from agent.store.records import (
    Chat,
    ChatPage,
    ChatStatus,
    EndReason,
    MessagePage,
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
    current: int
    latest: int

    @property
    def pending(self) -> int:
        return max(0, self.latest - self.current)


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What one `write` did. Replayed records count in neither list: they were already there."""

    inserted: int
    orphaned: list[str] = field(default_factory=list)
    """Ids of messages whose chat no longer exists (deleted by its owner): not written."""


class Store(Protocol):
    async def migrate(self) -> list[int]:
        """Apply pending migrations in order; return the versions applied (none: a no-op)."""
        ...

    async def schema_status(self) -> SchemaStatus: ...

    async def write(self, records: Sequence[Record]) -> WriteResult:
        """Create chats and append messages, in order, in one transaction.

        Idempotent by id: a record already stored is left as it is. Each new message gets the
        next `seq` of its chat (1-based, gapless). The first user message titles an untitled chat.
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
    ) -> ChatPage:
        """Most recently updated first; `cursor` continues where the previous page stopped."""
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

    async def close_chat(
        self, chat_id: str, *, status: ChatStatus, end_reason: EndReason, at: float
    ) -> bool:
        """End a chat. A chat with no user message is deleted instead; returns whether it
        was kept. Raises NotFound if there is no such chat."""
        ...

    async def reopen_chat(self, chat_id: str, *, owner: OwnerScope) -> Chat:
        """Make an ended chat active again (a resume); raises NotFound as `get_chat` does."""
        ...

    async def rename_chat(self, chat_id: str, title: str, *, owner: OwnerScope) -> Chat: ...

    async def delete_chat(self, chat_id: str, *, owner: OwnerScope) -> None:
        """Delete a chat with its calls, messages and search entries."""
        ...

    async def search(self, query: str, *, owner: OwnerScope, limit: int = 20) -> list[SearchHit]:
        """Messages whose content has every word of `query`, best match first."""
        ...

    async def prune(self, *, older_than: float, owner: OwnerScope) -> int:
        """Delete chats that are not active and were last updated before `older_than`."""
        ...

    async def stats(self) -> StoreStats: ...

    async def check(self) -> list[str]:
        """Problems found by the database's own integrity checks; empty when healthy."""
        ...

    async def backup(self, path: str) -> None:
        """Write a consistent copy of the whole store to a new file at `path`."""
        ...

    async def aclose(self) -> None: ...
