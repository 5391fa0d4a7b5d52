"""The per-process writer (docs/store.md): finalized records reach the store without the call
waiting.

`submit()` is synchronous and O(1): it queues the record and returns a future that resolves once
the record is durable. One task commits the queue in small batches (group commit) on the writer's
own store connection, retrying transient store errors with backoff. The in-memory queue is
bounded; past the bound records are appended to the journal file (fsynced, which is when their
futures resolve) and committed from there once the store catches up. Order is kept: once anything
is in the journal, later records go there too until it has drained. A record is acknowledged
only once everything submitted before it is durable too (a message needs its chat, and the
sweeper the journal's row): so when the spill begins, the records still in memory, the batch
being committed among them, go to the journal first. At start the writer replays
what an earlier process left in the journal; at close whatever could not be committed in time is
journaled for the next start. Nothing finalized is dropped silently. The records this writer
journals stay in memory too (up to `max_queue` more), so that replaying them commits them without
reading them back from JSON; the lines are read all the same, and are what counts.

    submit ──► queue (≤ max_queue) ──────────────► store.write (batches)
          └──► spill ──► journal file (fsync) ──►┘   retried with backoff
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import itertools
import os
import random
import socket
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import structlog
from pydantic import TypeAdapter, ValidationError

from voxkeep.core import metrics
from voxkeep.core.errors import ChatDeleted, DiskFull, StoreError, StoreUnavailable, TakenOver
from voxkeep.store.base import LostHold, Store
from voxkeep.store.journal import Journal
from voxkeep.store.records import JournalClosed, JournalOpened, Record

log = structlog.get_logger(__name__)
T = TypeVar("T")

_RECORD: TypeAdapter[Record] = TypeAdapter(Record)
PERMANENT_ATTEMPTS = 3
_LOST: dict[LostHold, type[TakenOver]] = {"taken_over": TakenOver, "deleted": ChatDeleted}


@dataclass(frozen=True, slots=True)
class WriterOptions:
    max_queue: int = 10_000
    max_batch: int = 1024
    retry_initial_s: float = 0.05
    retry_max_s: float = 2.0
    close_timeout_s: float = 5.0


@dataclass(slots=True)
class _Pending:
    record: Record
    future: asyncio.Future[None]
    submitted_at: float


@dataclass(slots=True)
class _Lines:
    """A run of the journal's unread lines, in file order: the records they hold, as this writer
    journaled them, or None where they must be parsed (adopted at start, or past the bound)."""

    count: int
    records: deque[Record] | None


class WriterClosed(StoreError):
    """`submit()` after `aclose()`."""


class Writer:
    """Build with `await Writer.start(store, journal_dir)`; the writer owns `store`."""

    def __init__(self, store: Store, journal: Journal, io: ThreadPoolExecutor, opts: WriterOptions):
        self._store = store
        self._journal = journal
        self._io = io
        self._opts = opts
        self._queue: deque[_Pending] = deque()
        self._queue_gauge = metrics.queue_records()
        self._queue_reported = 0
        """What this writer last added to the queue gauge: it follows at each step, not at each
        record (a gauge update per record cost more than queueing the record)."""
        self._batch: list[_Pending] = []
        """The records being committed now, taken from the queue (journaled if the spill begins
        meanwhile: then the list is replaced, and the commit's outcome counts for nothing)."""
        self._replayed_already = 0
        """Lines at the journal's head that a commit has stored since they were journaled."""
        self._spill: list[_Pending] = []
        self._appending = False
        self._disks_full: set[str] = set()  # "database", "journal": said once until space returns
        self._journal_unread = journal.unread
        self._lines: deque[_Lines] = deque([_Lines(journal.unread, None)] if journal.unread else [])
        self._held_lines = 0  # records held in `_lines`
        self._spilling = journal.unread > 0
        self._submitted = journal.unread
        self._done = 0
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._closing = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loop_task = asyncio.create_task(self._run(), name="voxkeep-writer")
        if journal.unread:
            log.info("journal.replay", records=journal.unread)
            self._wake.set()

    @classmethod
    async def start(
        cls, store: Store, journal_dir: str | Path, opts: WriterOptions | None = None
    ) -> Writer:
        io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="voxkeep-journal")
        journal = await asyncio.get_running_loop().run_in_executor(
            io, Journal.open, journal_dir, _closed_line
        )
        writer = cls(store, journal, io, opts or WriterOptions())
        # First, before any record of a call: while this row stands, the sweeper deletes no
        # chat of the calls writing through this journal (docs/store.md).
        opened = JournalOpened(
            id=journal.id, host=socket.gethostname(), pid=os.getpid(), opened_at=time.time()
        )
        writer.submit(opened)
        return writer

    @property
    def journal_id(self) -> str:
        """The journal this writer spills to: each call row names it (`NewCall.journal`)."""
        return self._journal.id

    # --- the caller's side ----------------------------------------------------------------

    def submit(self, record: Record) -> asyncio.Future[None]:
        """Queue a record; the future resolves once it is committed or journaled."""
        if self._closing:
            raise WriterClosed("the writer is closed")
        pending = _Pending(record, asyncio.get_running_loop().create_future(), time.perf_counter())
        self._submitted += 1
        if self._spilling or len(self._queue) >= self._opts.max_queue:
            if not self._spilling:
                self._begin_spill()
            self._spill.append(pending)
            if not self._appending:
                self._appending = True
                self._own(self._append_spill())
        else:
            self._queue.append(pending)
            self._wake.set()
        return pending.future

    async def flush(self) -> None:
        """Wait until every record submitted so far is committed to the store (not just
        journaled). Bound it with `asyncio.timeout` where the caller cannot wait forever."""
        if self._done >= self._submitted:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append((self._submitted, waiter))
        await waiter

    @property
    def store(self) -> Store:
        """The store the writer commits to (it owns it: `aclose` closes it)."""
        return self._store

    @property
    def backlog(self) -> int:
        """Records submitted and not yet committed."""
        return self._submitted - self._done

    async def aclose(self) -> None:
        """Commit what can be committed within `close_timeout_s`; journal the rest; close."""
        if self._closing:
            return
        self.submit(JournalClosed(id=self._journal.id))  # the last record: journaled if need be
        self._closing = True
        self._wake.set()
        try:
            async with asyncio.timeout(self._opts.close_timeout_s):
                await asyncio.shield(self._loop_task)
        except TimeoutError:
            log.warning("writer.close_timeout", backlog=self.backlog)
        finally:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
            while self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
            leftover = list(self._queue)
            self._queue.clear()
            self._report_queue()
            if leftover:
                # Older than anything already journaled: they go in front of it.
                records = [p.record for p in leftover]
                await self._in_io(lambda: self._journal.prepend(_encode(records)))
                for p in leftover:
                    if not p.future.done():
                        p.future.set_result(None)
                log.info("writer.journaled_at_close", records=len(leftover))
            await self._in_io(lambda: self._journal.close(remove=True))
            self._io.shutdown(wait=False)  # idle by now
            await self._store.aclose()

    # --- the writer's side ----------------------------------------------------------------

    def _own(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _in_io(self, work: Callable[[], T]) -> T:
        """Run journal work on the journal thread, in submission order. Records are encoded
        there too: serializing thousands of them on the event loop would stall the call."""
        return await asyncio.get_running_loop().run_in_executor(self._io, work)

    async def _run(self) -> None:
        delay = self._opts.retry_initial_s
        while True:
            try:
                if await self._step():
                    return
                delay = self._opts.retry_initial_s
            except Exception as exc:  # noqa: BLE001 - the task boundary: log, back off, go on
                log.error("writer.error", error=type(exc).__name__)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._opts.retry_max_s)

    def _begin_spill(self) -> None:
        """Past the queue bound: from now on records go to the journal, behind every record
        still in memory (the batch being committed first), so that nothing acknowledged from
        the journal depends on a record a killed process would lose."""
        log.warning("writer.spilling", queued=len(self._queue) + len(self._batch))
        ahead = [*self._batch, *self._queue]
        self._batch = []  # (its commit may store it too: the replay then skips those lines)
        self._queue.clear()
        self._report_queue()
        self._spilling = True
        self._spill.extend(ahead)

    async def _step(self) -> bool:
        """Do one piece of work; True when closing and nothing is left."""
        if self._queue:
            count = min(len(self._queue), self._opts.max_batch)
            batch = self._batch = [self._queue.popleft() for _ in range(count)]
            self._report_queue()
            try:
                moved = await self._commit([p.record for p in batch])
            except BaseException:
                if self._batch is batch:  # (not journaled meanwhile) back in front, in order
                    self._queue.extendleft(reversed(batch))
                    self._batch = []
                raise
            if self._batch is not batch:  # journaled meanwhile: counted when replayed
                self._replayed_already = len(batch)
                self._resolve(batch, moved)
                return False
            self._batch = []
            self._report_queue()
            self._resolve(batch, moved)
            log.debug(
                "writer.committed",
                records=len(batch),
                oldest_ms=_ms(time.perf_counter() - batch[0].submitted_at),
            )
            self._advance(len(batch))
        elif self._journal_unread:
            await self._replay_some()
        elif self._closing:
            return True
        else:
            self._wake.clear()
            await self._wake.wait()
        return False

    def _report_queue(self) -> None:
        """Bring the queue gauge to the records in memory: queued, or in the commit under way."""
        held = len(self._queue) + len(self._batch)
        if held != self._queue_reported:
            self._queue_gauge.inc(held - self._queue_reported)
            self._queue_reported = held

    def _resolve(self, batch: list[_Pending], moved: dict[str, LostHold]) -> None:
        """Committed: each record's future resolves, or says its call lost its chat."""
        for p in batch:
            if p.future.done():
                continue
            if moved and (how := moved.get(p.record.ref)) is not None:
                # stored in the call's continuation chat: the call moves there too
                p.future.set_exception(_LOST[how]())
            else:
                p.future.set_result(None)

    async def _replay_some(self) -> None:
        lines, offset = await self._in_io(lambda: self._journal.read(self._opts.max_batch))
        taken = self._take(lines)
        records = await self._in_io(lambda: _parsed(taken))  # (JSON off the event loop)
        if records:
            await self._commit(records)  # (the call, if alive, learns of a move at its heartbeat)
        await self._in_io(lambda: self._journal.consumed(offset, len(lines)))
        self._forget(len(lines))
        self._journal_unread -= len(lines)
        self._advance(len(lines))
        if not self._journal_unread and not self._spill and not self._appending:
            self._spilling = False
            log.info("writer.drained")

    def _take(self, lines: list[bytes]) -> list[Record | bytes]:
        """The journal's next `lines`, each as its record where this writer still holds it, else
        as the line to parse; the lines the in-flight commit stored (`_replayed_already`) left
        out. Nothing changes until `_forget`: a replay that fails reads the same lines again."""
        taken: list[Record | bytes] = []
        skip = min(self._replayed_already, len(lines))
        runs = iter(self._lines)
        done = 0
        while done < len(lines):
            run = next(runs, None) or _Lines(len(lines) - done, None)
            take = min(run.count, len(lines) - done)
            if run.records is None:
                taken.extend(lines[max(done, skip) : done + take])
            else:
                taken.extend(itertools.islice(run.records, max(0, skip - done), take))
            done += take
        return taken

    def _forget(self, count: int) -> None:
        """The journal's next `count` lines are in the store: let go of them."""
        self._replayed_already -= min(self._replayed_already, count)
        while count and self._lines:
            run = self._lines[0]
            take = min(run.count, count)
            if run.records is not None:
                for _ in range(take):
                    run.records.popleft()
                self._held_lines -= take
            run.count -= take
            count -= take
            if not run.count:
                self._lines.popleft()

    def _hold(self, records: list[Record]) -> None:
        """Note the lines an append is about to add (before it runs: a read queued behind it on
        the journal's thread sees them), with their records while within the bound."""
        keep = self._held_lines + len(records) <= self._opts.max_queue
        last = self._lines[-1] if self._lines else None
        if not keep and last is not None and last.records is None:
            last.count += len(records)
            return
        self._lines.append(_Lines(len(records), deque(records) if keep else None))
        if keep:
            self._held_lines += len(records)

    async def _append_spill(self) -> None:
        try:
            while self._spill:
                batch, self._spill = self._spill, []
                await self._journal_append(batch)
                self._journal_unread += len(batch)
                self._wake.set()
        finally:
            self._appending = False

    async def _journal_append(self, batch: Sequence[_Pending]) -> None:
        records = [p.record for p in batch]
        self._hold(records)  # (an append that fails leaves no line: it is tried until it works)
        delay = self._opts.retry_initial_s
        while True:
            try:
                await self._in_io(lambda: self._journal.append(_encode(records)))
                self._space_back("journal")
                break
            except OSError as exc:
                # A full or failing disk: keep the records in memory and keep trying.
                if exc.errno == errno.ENOSPC:
                    self._full("journal")
                else:
                    log.error(
                        "journal.append_failed", error=type(exc).__name__, records=len(records)
                    )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._opts.retry_max_s)
        for p in batch:
            if not p.future.done():
                p.future.set_result(None)

    def _full(self, place: str) -> None:
        """The database's or the journal's disk is full: said once, until space returns."""
        if place in self._disks_full:
            return
        self._disks_full.add(place)
        waiting = "in memory" if place == "journal" else "in memory, then in the journal"
        log.error(
            "writer.disk_full", place=place, queued=len(self._queue),
            spilled=len(self._spill), records_wait=waiting,
        )  # fmt: skip

    def _space_back(self, place: str) -> None:
        if place in self._disks_full:
            self._disks_full.discard(place)
            log.warning("writer.disk_space_back", place=place, backlog=self.backlog)

    def _advance(self, count: int) -> None:
        self._done += count
        ready = [w for w in self._waiters if w[0] <= self._done]
        self._waiters = [w for w in self._waiters if w[0] > self._done]
        for _, waiter in ready:
            if not waiter.done():
                waiter.set_result(None)

    async def _commit(self, records: list[Record]) -> dict[str, LostHold]:
        """Commit `records` in one transaction, retrying transient errors until it succeeds;
        the ids of the messages moved to their call's continuation chat because the call had
        lost its chat (the same rule for records replayed from the journal). A batch that fails
        for another reason is retried one record at a time, so one bad record cannot hold back
        the rest; a record that keeps failing is logged and skipped."""
        try:
            return await self._write_retrying(records)
        except StoreError:
            if len(records) == 1:
                log.error(
                    "message.failed",
                    record_id=records[0].ref,
                    kind=records[0].kind,
                    attempts=PERMANENT_ATTEMPTS,
                )
                return {}
            moved: dict[str, LostHold] = {}
            for record in records:
                moved |= await self._commit([record])
            return moved

    async def _write_retrying(self, records: list[Record]) -> dict[str, LostHold]:
        delay = self._opts.retry_initial_s
        permanent_failures = 0
        while True:
            try:
                result = await self._store.write(records)
            except DiskFull:
                self._full("database")
            except StoreUnavailable as exc:
                log.warning(
                    "store.retry",
                    error=type(exc).__name__,
                    records=len(records),
                    delay_s=round(delay, 3),
                )
            except Exception as exc:  # StoreError, or a bug below: the loop must outlive both
                permanent_failures += 1
                log.error("store.write_failed", error=type(exc).__name__, records=len(records))
                if permanent_failures >= PERMANENT_ATTEMPTS or len(records) > 1:
                    if isinstance(exc, StoreError):
                        raise
                    raise StoreError(type(exc).__name__) from exc
            else:
                self._space_back("database")
                if result.orphaned:
                    log.warning(
                        "message.discarded", reason="chat_deleted", count=len(result.orphaned)
                    )
                return result.moved
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, self._opts.retry_max_s)


def _closed_line(journal: str) -> bytes:
    """The line put after a dead writer's lines: replayed, it says all of them are in."""
    return JournalClosed(id=journal).model_dump_json().encode()


def _parsed(taken: list[Record | bytes]) -> list[Record]:
    """The records of `Writer._take`'s answer, its lines parsed; a line that is not a record is
    logged and left out."""
    records: list[Record] = []
    for one in taken:
        if not isinstance(one, bytes):
            records.append(one)
            continue
        try:
            records.append(_RECORD.validate_json(one))
        except (ValidationError, ValueError) as exc:
            log.error("journal.bad_line", error=type(exc).__name__)
    return records


def _encode(records: list[Record]) -> list[bytes]:
    return [r.model_dump_json().encode() for r in records]


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)
