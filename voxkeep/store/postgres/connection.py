"""The shared store: PostgreSQL through asyncpg (docs/store.md), for several workers at once.

A pool of connections with a `command_timeout`; each write is one transaction. `seq` is given
under a row lock on the chats written to (taken in id order, so two writers never deadlock), which
keeps it gapless per chat across processes and machines. Connection failures — the server
restarting, a network blip — are `StoreUnavailable`: the writer retries and the pool reconnects.
Only this package imports asyncpg."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Self, TypeVar

import asyncpg

from voxkeep.core.errors import DiskFull, StoreError, StoreUnavailable
from voxkeep.store.base import ANY_OWNER, OwnerScope
from voxkeep.store.shielded import finish

T = TypeVar("T")

COMMAND_TIMEOUT_S = 10.0
CONNECT_TIMEOUT_S = 5.0
DISK_FULL = "53100"
_TRANSIENT_SQLSTATE = ("08", "53", "57", "40")  # connection, resources, shutdown, rollback


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, OSError | TimeoutError | asyncpg.InterfaceError):
        return True
    state = getattr(exc, "sqlstate", None) or ""
    return isinstance(state, str) and state.startswith(_TRANSIENT_SQLSTATE)


@contextlib.contextmanager
def mapped() -> Iterator[None]:
    """Translate driver errors into the project's hierarchy at the boundary."""
    try:
        yield
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
        if getattr(exc, "sqlstate", None) == DISK_FULL:
            raise DiskFull(f"PostgreSQL: {type(exc).__name__}") from exc
        if _transient(exc):
            raise StoreUnavailable(f"PostgreSQL: {type(exc).__name__}") from exc
        raise StoreError(f"PostgreSQL: {type(exc).__name__}: {exc}") from exc


def owner_clause(owner: OwnerScope, column: str, n: int) -> tuple[str, tuple[str, ...]]:
    return ("", ()) if owner is ANY_OWNER else (f" AND {column} = ${n}", (str(owner),))


def count_changed(status: str) -> int:
    """Rows changed, from a command status such as `UPDATE 3`."""
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0


class PostgresConnection:
    """The connection pool every part of `PostgresStore` works through: transactions that
    finish once started, reads, and the translation of driver errors."""

    def __init__(self, pool: asyncpg.Pool, url: str) -> None:
        self._pool = pool
        self._url = url
        self._closed = False
        self.clock: Callable[[], float] = time.time
        """The clock of this host, which the times in its records are read from; the take-over
        rule converts them to the database's clock (tests skew it, to stand for another host)."""

    @classmethod
    async def open(cls, url: str) -> Self:
        with mapped():
            pool = await asyncpg.create_pool(
                url, min_size=0, max_size=10, command_timeout=COMMAND_TIMEOUT_S,
                timeout=CONNECT_TIMEOUT_S,
            )  # fmt: skip
        return cls(pool, url)

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await self._pool.close()

    async def _transaction(
        self, work: Callable[[asyncpg.Connection], Awaitable[T]], *, commit: bool = True
    ) -> T:
        """Run `work` in one transaction; once started it finishes (commit or rollback) even
        if whoever awaited it is cancelled, as the SQLite store's do. `commit=False` rolls it
        back (a dry run, which answers by the same rule as the change)."""

        async def run() -> T:
            with mapped():
                async with self._pool.acquire() as conn:
                    if commit:
                        async with conn.transaction():
                            return await work(conn)
                    trial = conn.transaction()
                    await trial.start()
                    try:
                        return await work(conn)
                    finally:
                        await trial.rollback()

        return await finish(asyncio.ensure_future(run()))

    async def _fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        with mapped():
            return list(await self._pool.fetch(sql, *args))

    async def _changed(self, sql: str, *args: Any) -> int:
        async def run(conn: asyncpg.Connection) -> int:
            return count_changed(await conn.execute(sql, *args))

        return await self._transaction(run)
