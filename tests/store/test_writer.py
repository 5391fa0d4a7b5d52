"""The writer (docs/store.md): group commit off the call's path, retries, journal spill and
replay."""

from __future__ import annotations

import asyncio
import errno
import logging
import random
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import pytest

from tests.conftest import Outage, abandon, call, chat, msg
from voxkeep.core.errors import StoreError, StoreUnavailable
from voxkeep.core.ids import continuation_ids
from voxkeep.store import ANY_OWNER, Store, WriteResult, open_store
from voxkeep.store.journal import Journal
from voxkeep.store.records import NewMessage, Record
from voxkeep.store.writer import Writer, WriterClosed, WriterOptions

HERE = Path(__file__).parent
SECRET = "SECRET-TEXT-never-in-logs"


async def contents(store: Store, chat_id: str) -> list[str | None]:
    page = await store.messages(chat_id, owner=ANY_OWNER)
    assert [m.seq for m in page.messages] == list(range(1, len(page.messages) + 1))
    return [m.content for m in page.messages]


@pytest.fixture
async def reader(store: Store) -> Store:
    """The test's own view of the database; the writer gets a store of its own."""
    return store


async def start_writer(db_url: str, tmp_path: Path, **opts: float) -> Writer:
    return await Writer.start(
        await open_store(db_url),
        tmp_path / "journal",
        WriterOptions(**opts),  # type: ignore[arg-type]
    )


async def test_submitted_records_are_committed_in_order_and_flush_waits_for_them(
    reader: Store, db_url: str, tmp_path: Path
) -> None:
    writer = await start_writer(db_url, tmp_path, max_batch=7)
    c = chat()
    futures = [writer.submit(c)]
    futures += [writer.submit(msg(c.id, f"m{i}")) for i in range(100)]
    assert not all(f.done() for f in futures)  # submit never waits for the disk
    async with asyncio.timeout(10):
        await writer.flush()
    assert all(f.done() and f.exception() is None for f in futures)
    assert await contents(reader, c.id) == [f"m{i}" for i in range(100)]
    assert writer.backlog == 0
    await writer.aclose()
    with pytest.raises(WriterClosed):
        writer.submit(msg(c.id))


class Wrapped:
    """A real store with `write` replaced by the subclass; everything else passes through."""

    inner: Store

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


class LosesAcks(Wrapped):
    """A real store whose first `fail` writes commit but then report a failure, as when a
    connection drops after COMMIT: the writer must retry, and the retry must not duplicate."""

    def __init__(self, inner: Store, fail: int) -> None:
        self.inner, self.fail, self.calls = inner, fail, 0

    async def write(self, records: Sequence[Record], **options: bool) -> WriteResult:
        self.calls += 1
        result = await self.inner.write(records, **options)
        if self.fail:
            self.fail -= 1
            raise StoreUnavailable("connection lost after commit")
        return result


async def test_a_commit_whose_reply_is_lost_is_retried_without_duplicates(
    reader: Store, db_url: str, tmp_path: Path
) -> None:
    flaky = LosesAcks(await open_store(db_url), fail=3)
    writer = await Writer.start(flaky, tmp_path / "journal", WriterOptions(retry_initial_s=0.01))  # type: ignore[arg-type]
    c = chat()
    writer.submit(c)
    for i in range(10):
        writer.submit(msg(c.id, f"m{i}"))
    async with asyncio.timeout(10):
        await writer.flush()
    assert flaky.calls >= 4 and flaky.fail == 0
    assert await contents(reader, c.id) == [f"m{i}" for i in range(10)]
    await writer.aclose()


class RefusesOne(Wrapped):
    """A real store that refuses, as a permanent error, any batch holding one given id."""

    def __init__(self, inner: Store, bad_id: str) -> None:
        self.inner, self.bad_id, self.refused = inner, bad_id, 0

    async def write(self, records: Sequence[Record], **options: bool) -> WriteResult:
        if any(r.ref == self.bad_id for r in records):
            self.refused += 1
            raise StoreError("constraint failed")
        return await self.inner.write(records, **options)


async def test_one_record_that_keeps_failing_does_not_hold_back_the_rest(
    reader: Store, db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    picky = RefusesOne(await open_store(db_url), bad_id="poison")
    writer = await Writer.start(picky, tmp_path / "journal", WriterOptions(retry_initial_s=0.01))  # type: ignore[arg-type]
    c = chat()
    writer.submit(c)
    for i in range(20):
        writer.submit(msg(c.id, f"m{i}", msg_id="poison" if i == 7 else None))
    async with asyncio.timeout(10):
        await writer.flush()
    assert await contents(reader, c.id) == [f"m{i}" for i in range(20) if i != 7]
    failed = [r for r in caplog.records if r.msg == "message.failed"]
    assert len(failed) == 1 and failed[0].record_id == "poison"  # type: ignore[attr-defined]
    assert picky.refused == 1 + 3  # the batch once, then the record alone, three attempts
    await writer.aclose()


async def test_a_cancelled_commit_still_finishes_and_a_retry_adds_nothing(
    store: Store,
) -> None:
    c = chat()
    batch: list[Record] = [c, *(msg(c.id, f"m{i}") for i in range(200))]
    task = asyncio.create_task(store.write(batch))
    await asyncio.sleep(0)  # the transaction has started
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await contents(store, c.id) == [f"m{i}" for i in range(200)]
    assert (await store.write(batch)).inserted == 0
    assert len(await contents(store, c.id)) == 200


async def test_a_message_for_a_deleted_chat_is_discarded_with_a_log_not_retried_forever(
    reader: Store, db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    writer = await start_writer(db_url, tmp_path)
    c = chat()
    writer.submit(c)
    writer.submit(msg(c.id))
    await writer.flush()
    await reader.delete_chat(c.id, owner="alice")
    late = writer.submit(msg(c.id, "too late"))
    async with asyncio.timeout(10):
        await writer.flush()
        await late
    assert any(r.msg == "message.discarded" for r in caplog.records)
    await writer.aclose()


async def logged(event: str) -> None:
    """Return once the agent logs `event` (structlog events are standard-library records)."""
    seen = asyncio.Event()

    class Watch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.msg == event:
                seen.set()

    watch = Watch()
    logging.getLogger("voxkeep").addHandler(watch)
    try:
        await seen.wait()
    finally:
        logging.getLogger("voxkeep").removeHandler(watch)


async def test_past_the_queue_bound_records_spill_to_the_journal_and_replay_in_order(
    reader: Store,
    db_url: str,
    tmp_path: Path,
    outage: Callable[[], Awaitable[Outage]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    c = chat()
    await reader.write([c])
    down = await outage()
    writer = await start_writer(db_url, tmp_path, max_queue=50, max_batch=20, retry_initial_s=0.01)
    futures = [writer.submit(msg(c.id, f"{SECRET} {i}")) for i in range(300)]
    async with asyncio.timeout(20):
        await asyncio.gather(*futures)  # journaled and fsynced while the store is locked
    journal = list((tmp_path / "journal").glob("journal-*.jsonl"))
    # When the spill began, what was still in memory went first: the writer's first record
    # (its journal's row, being committed) and the queue; nothing acknowledged depends on memory.
    lines = journal[0].read_bytes().splitlines()
    assert len(journal) == 1 and len(lines) == 1 + 300
    assert b'"journal_opened"' in lines[0] and b"journal_opened" not in b"".join(lines[1:])
    if down.readable:
        assert (await reader.get_chat(c.id, owner=ANY_OWNER)).message_count == 0
    writer.submit(msg(c.id, f"{SECRET} late"))  # arrives behind the journal, stays behind it
    async with asyncio.timeout(20):  # the store stays down past the busy timeout: a retry
        await logged("store.retry")
    await down.end()
    async with asyncio.timeout(30):
        await writer.flush()
    assert await contents(reader, c.id) == [f"{SECRET} {i}" for i in range(300)] + [
        f"{SECRET} late"
    ]
    assert journal[0].stat().st_size == 0  # drained
    await writer.aclose()
    assert not journal[0].exists()
    log_text = " ".join(str(vars(r)) for r in caplog.records)
    assert "store.retry" in log_text and "writer.spilling" in log_text
    assert SECRET not in log_text


async def test_a_replay_that_fails_midway_stores_each_journaled_record_once_in_order(
    reader: Store,
    db_url: str,
    tmp_path: Path,
    outage: Callable[[], Awaitable[Outage]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Marking replayed lines done fails now and then (the journal's disk): the writer reads
    the same lines again, and commits the same records, whether it still held them in memory
    (the first `max_queue` journaled) or parses them back."""
    c = chat()
    await reader.write([c])
    down = await outage()
    writer = await start_writer(db_url, tmp_path, max_queue=50, max_batch=20, retry_initial_s=0.01)
    for start in [0, *range(60, 300, 10)]:  # the spill begins, then appends of 10 at a time
        chunk = range(start, 60 if start == 0 else start + 10)
        async with asyncio.timeout(20):
            await asyncio.gather(*[writer.submit(msg(c.id, f"m{i}")) for i in chunk])
    real_consumed = Journal.consumed
    calls = 0

    def consumed(journal: Journal, offset: int, count: int) -> None:
        nonlocal calls
        calls += 1
        if calls % 3 == 0:  # (the retry after it goes through)
            raise OSError(errno.EIO, "the journal's disk failed")
        real_consumed(journal, offset, count)

    monkeypatch.setattr(Journal, "consumed", consumed)
    await down.end()
    async with asyncio.timeout(30):
        await writer.flush()
    assert calls > 9
    assert await contents(reader, c.id) == [f"m{i}" for i in range(300)]
    await writer.aclose()


async def test_what_could_not_be_committed_at_close_is_replayed_by_the_next_writer(
    reader: Store, db_url: str, tmp_path: Path, outage: Callable[[], Awaitable[Outage]]
) -> None:
    c = chat()
    await reader.write([c])
    down = await outage()
    writer = await start_writer(db_url, tmp_path, max_queue=30, close_timeout_s=0.5)
    futures = [writer.submit(msg(c.id, f"m{i}")) for i in range(100)]
    async with asyncio.timeout(30):
        await writer.aclose()  # the store is locked: nothing can be committed
    assert all(f.done() and f.exception() is None for f in futures)  # all journaled
    await down.end()
    assert (await reader.get_chat(c.id, owner=ANY_OWNER)).message_count == 0
    successor = await start_writer(db_url, tmp_path)
    async with asyncio.timeout(30):
        await successor.flush()
    assert await contents(reader, c.id) == [f"m{i}" for i in range(100)]
    await successor.aclose()
    assert list((tmp_path / "journal").iterdir()) == []


async def test_words_spilled_or_left_in_a_journal_after_a_take_over_go_on_in_the_continuation(
    reader: Store, db_url: str, tmp_path: Path, outage: Callable[[], Awaitable[Outage]]
) -> None:
    """One take-over rule for every commit: a live call's own spill, replayed from the journal,
    and a dead process's journal replayed by the next writer both file what the call said after
    the take-over in the call's continuation chat, never in the chat another call holds now."""
    c = chat()
    old = call(c.id)
    await reader.write([c, old, msg(c.id, "before").model_copy(update={"call_id": old.id})])
    await reader.claim_chat(call(c.id), owner="alice")

    def said(text: str) -> NewMessage:
        return msg(c.id, text).model_copy(update={"call_id": old.id})

    down = await outage()
    writer = await start_writer(db_url, tmp_path, max_queue=5, close_timeout_s=0.5)
    spilled = [writer.submit(said(f"spilled {i}")) for i in range(20)]  # 15 to the journal
    async with asyncio.timeout(20):
        await asyncio.gather(*spilled[5:])
    await down.end()
    async with asyncio.timeout(30):
        await writer.flush()
    assert await contents(reader, c.id) == ["before"]
    continuation, _ = continuation_ids(old.id)
    assert await contents(reader, continuation) == [f"spilled {i}" for i in range(20)]

    down = await outage()
    left = [writer.submit(said(f"left {i}")) for i in range(10)]
    async with asyncio.timeout(30):
        await writer.aclose()  # the store is down: all ten are journaled for the next writer
    assert all(f.done() and f.exception() is None for f in left)
    await down.end()
    successor = await start_writer(db_url, tmp_path)
    async with asyncio.timeout(30):
        await successor.flush()
    await successor.aclose()
    assert await contents(reader, c.id) == ["before"]
    assert await contents(reader, continuation) == [f"spilled {i}" for i in range(20)] + [
        f"left {i}" for i in range(10)
    ]


async def test_the_sweeper_keeps_a_chat_whose_user_messages_wait_in_a_journal(
    reader: Store, db_url: str, tmp_path: Path, outage: Callable[[], Awaitable[Outage]]
) -> None:
    """The greeting is stored, then the store goes away and the caller's words are journaled;
    the call is lost. The sweeper must not take the chat for one nobody spoke in: it waits for
    the journal, and once the next writer has replayed it the chat ends as a lost call's."""
    writer = await start_writer(db_url, tmp_path, close_timeout_s=0.5)
    c = chat()
    held = call(c.id).model_copy(update={"journal": writer.journal_id})
    writer.submit(c.model_copy(update={"holder": held}))  # (one record: one transaction)
    writer.submit(msg(c.id, "Hello, how can I help?", role="assistant"))
    async with asyncio.timeout(10):
        await writer.flush()
    down = await outage()
    words = [writer.submit(msg(c.id, f"{SECRET} {i}").model_copy(update={"call_id": held.id}))
             for i in range(3)]  # fmt: skip
    async with asyncio.timeout(30):
        await writer.aclose()  # the worker goes: its words are in the journal
    assert all(f.done() and f.exception() is None for f in words)
    await down.end()
    swept = await reader.sweep(stale_before=time.time() + 60)
    assert (swept.calls_lost, swept.chats_deleted, swept.chats_waiting) == (1, 0, 1)
    assert (await reader.get_chat(c.id, owner=ANY_OWNER)).status == "active"
    successor = await start_writer(db_url, tmp_path)
    async with asyncio.timeout(30):
        await successor.flush()
    assert await contents(reader, c.id) == ["Hello, how can I help?"] + [
        f"{SECRET} {i}" for i in range(3)
    ]
    swept = await reader.sweep(stale_before=time.time() + 60)
    assert (swept.chats_lost, swept.chats_deleted, swept.chats_waiting) == (1, 0, 0)
    await successor.aclose()
    assert (await reader.sweep(stale_before=time.time() + 60)).chats_waiting == 0


async def test_what_a_killed_writer_acknowledged_survives_with_the_records_it_depends_on(
    reader: Store, db_url: str, tmp_path: Path, outage: Callable[[], Awaitable[Outage]]
) -> None:
    """The store is down from the writer's start: its journal's row, the new chat and the call
    row holding it wait in memory while the caller's words past the queue bound are journaled
    and acknowledged. The process is killed. Acknowledged words must not depend on records that
    were only in memory: the next writer replays the journal's row, the chat and its holder
    before the words (before this was fixed, it found no chat and discarded them)."""
    down = await outage()
    writer = await start_writer(db_url, tmp_path, max_queue=3, retry_initial_s=0.01)
    c = chat()
    held = call(c.id).model_copy(update={"journal": writer.journal_id})
    writer.submit(c.model_copy(update={"holder": held}))
    words = [writer.submit(msg(c.id, f"{SECRET} {i}").model_copy(update={"call_id": held.id}))
             for i in range(6)]  # fmt: skip
    async with asyncio.timeout(20):
        await asyncio.wait(words, return_when=asyncio.FIRST_COMPLETED)
    await abandon(writer)  # SIGKILL: whatever was only in memory is gone
    acknowledged = [i for i, f in enumerate(words) if f.done() and f.exception() is None]
    assert acknowledged, "the journal acknowledged nothing"
    await down.end()
    successor = await start_writer(db_url, tmp_path)
    async with asyncio.timeout(30):
        await successor.flush()
    await successor.aclose()
    stored = await contents(reader, c.id)
    assert {f"{SECRET} {i}" for i in acknowledged} <= set(stored)


RUNS = 30


@pytest.mark.timeout(600)  # thirty processes started and killed, one after another
async def test_acknowledged_messages_survive_sigkill_at_random_moments(
    reader: Store, db_url: str, tmp_path: Path
) -> None:
    c = chat()
    await reader.write([c])
    rng = random.Random(20261122)
    acked: list[str] = []
    # Each child is killed after a number of its acknowledgements, then a moment more: the kills
    # land at random points of its work however fast or slow the machine is.
    targets = [rng.randint(1, 60) for _ in range(RUNS)]
    for run, target in enumerate(targets):
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            str(HERE / "writer_child.py"),
            db_url,
            str(tmp_path / "journal"),
            c.id,
            str(run),
            str(rng.choice([20, 200, 10_000])),
            stdout=subprocess.PIPE,
            cwd=HERE.parent.parent,
        )
        assert child.stdout is not None
        async with asyncio.timeout(60):
            assert await child.stdout.readline() == b"ready\n"
            complete = [await child.stdout.readline() for _ in range(target)]
            await asyncio.sleep(rng.uniform(0, 0.5))
            child.kill()
            out = await child.stdout.read()
            await child.wait()
        complete += out.split(b"\n")[:-1]  # a line cut by the kill is not an acknowledgement
        acked += [line.strip()[4:].decode() for line in complete if line.startswith(b"ack ")]
        # the next process replays whatever the killed one left in its journal
        successor = await start_writer(db_url, tmp_path)
        async with asyncio.timeout(60):
            await successor.flush()
        await successor.aclose()
    page = await reader.messages(c.id, owner=ANY_OWNER)
    ids = [m.id for m in page.messages]
    assert len(acked) >= sum(targets)
    assert set(acked) <= set(ids), "an acknowledged message was lost"
    assert len(ids) == len(set(ids)) and len({m.content for m in page.messages}) == len(ids)
    assert [m.seq for m in page.messages] == list(range(1, len(ids) + 1))
    for run in range(RUNS):  # each run's messages are in the order it wrote them
        mine = [int(i.split("-")[1]) for i in ids if i.startswith(f"r{run}-")]
        assert mine == sorted(mine)
    assert await reader.check() == []
