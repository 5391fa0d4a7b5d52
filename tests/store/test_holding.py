"""The store's side of resume (docs/resume.md), on every backend: which chat a caller comes back
to, one live call per chat (a compare-and-set), writes moved on once a call lost its chat, the
heartbeat, the sweeper and summaries."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.conftest import call, chat, msg
from voxkeep.core.errors import NotFound, TakenOver
from voxkeep.core.ids import continuation_ids
from voxkeep.store import ANY_OWNER, Store, open_store
from voxkeep.store.records import JournalClosed, JournalOpened

WINDOW_S = 600.0


async def ended(
    store: Store, chat_id: str, reason: str = "hangup", at: float | None = None
) -> None:
    await store.close_chat(
        chat_id, status="closed", end_reason=reason,  # type: ignore[arg-type]
        at=time.time() if at is None else at,
    )  # fmt: skip


async def candidate(store: Store, owner: str = "alice") -> str | None:
    found = await store.resume_candidate(owner, ended_since=time.time() - WINDOW_S)
    return None if found is None else found.id


async def test_the_most_recent_chat_is_the_candidate_while_active_or_recently_ended(
    store: Store,
) -> None:
    older, newer = chat(at=time.time() - 50), chat()
    await store.write([older, msg(older.id, "old"), newer, msg(newer.id, "new")])
    assert await candidate(store) == newer.id  # still active (a crash)
    for reason in ("hangup", "lost", "shutdown"):
        await store.claim_chat(call(newer.id), owner="alice")
        await ended(store, newer.id, reason)
        assert await candidate(store) == newer.id, reason
    assert await candidate(store, "bob") is None


async def test_no_candidate_after_the_window_or_after_a_deliberate_end(store: Store) -> None:
    long_ago = chat(at=time.time() - 5000)
    await store.write([long_ago, msg(long_ago.id, "hi", at=time.time() - 5000)])
    await ended(store, long_ago.id, "hangup", at=time.time() - 5000)
    assert await candidate(store) is None  # ended an hour and a half ago
    switched = chat()
    await store.write([switched, msg(switched.id)])
    await ended(store, switched.id, "new_chat")
    # the caller asked for a fresh chat and left it empty: the older one is not brought back
    assert await candidate(store) is None


async def test_a_claim_takes_the_chat_over_from_the_live_call(store: Store) -> None:
    c = chat()
    first, second = call(c.id), call(c.id)
    await store.write([c, first, msg(c.id, "hello")])
    await ended(store, c.id)
    claimed = await store.claim_chat(second, owner="alice")
    assert (claimed.status, claimed.end_reason, claimed.ended_at) == ("active", None, None)
    assert claimed.message_count == 1
    assert await store.heartbeat(first.id, at=time.time()) == "taken_over"
    assert await store.heartbeat(second.id, at=time.time()) == "held"
    with pytest.raises(NotFound):
        await store.claim_chat(call(c.id), owner="bob")  # not theirs: nothing changes
    assert await store.heartbeat(second.id, at=time.time()) == "held"


async def test_a_heartbeat_before_the_row_is_written_still_holds(store: Store) -> None:
    assert await store.heartbeat("call_not_written_yet", at=time.time()) == "held"


async def contents(store: Store, chat_id: str) -> list[tuple[int, str | None]]:
    return [(m.seq, m.content) for m in (await store.messages(chat_id, owner=ANY_OWNER)).messages]


async def test_messages_made_after_the_take_over_go_on_in_the_call_s_continuation_chat(
    store: Store,
) -> None:
    c = chat()
    old = call(c.id)
    said_before = msg(c.id, "said before", at=time.time() - 1).model_copy(
        update={"call_id": old.id}
    )
    await store.write([c, old])
    await store.claim_chat(call(c.id), owner="alice")
    said_after = msg(c.id, "said after").model_copy(update={"call_id": old.id})
    result = await store.write([said_before, said_after])
    assert result.moved == {said_after.id: "taken_over"} and result.inserted == 2
    # written again (a journal replayed by another process): stored once, in the same place
    again = await store.write([said_before, said_after])
    assert again.inserted == 0 and again.moved == {}
    assert await contents(store, c.id) == [(1, "said before")]
    continuation, _ = continuation_ids(old.id)
    assert await contents(store, continuation) == [(1, "said after")]
    moved_to = await store.get_chat(continuation, owner="alice")
    assert moved_to.metadata["continues"] == c.id and moved_to.title == "said after"


async def test_a_continuation_taken_over_in_turn_passes_the_message_on(store: Store) -> None:
    c = chat()
    first = call(c.id)
    await store.write([c, first])
    await store.claim_chat(call(c.id), owner="alice")
    next_chat, next_call = continuation_ids(first.id)
    await store.write([msg(c.id, "one").model_copy(update={"call_id": first.id})])
    await store.write([call(next_chat, call_id=next_call)])  # the call goes on there
    await store.claim_chat(call(next_chat), owner="alice")  # and another device resumes it
    two = msg(c.id, "two").model_copy(update={"call_id": first.id})
    result = await store.write([two])
    assert result.moved == {two.id: "taken_over"}
    assert await contents(store, next_chat) == [(1, "one")]
    assert await contents(store, continuation_ids(next_call)[0]) == [(1, "two")]


@pytest.mark.parametrize("skew_s", [30.0, -30.0])
async def test_the_take_over_rule_reads_the_database_s_clock_not_the_workers(
    store: Store, db_url: str, skew_s: float
) -> None:
    """A worker whose clock is `skew_s` off: what it said just before the take-over stays in the
    chat, and what it said just after moves on, whichever way its clock is wrong."""
    worker = await open_store(db_url)
    worker.clock = lambda: time.time() + skew_s  # type: ignore[attr-defined]
    try:
        c = chat()
        old = call(c.id)
        await store.write([c, old])
        before = msg(c.id, "before", at=time.time() + skew_s).model_copy(update={"call_id": old.id})
        await asyncio.sleep(0.05)
        await store.claim_chat(call(c.id), owner="alice")
        await asyncio.sleep(0.05)
        after = msg(c.id, "after", at=time.time() + skew_s).model_copy(update={"call_id": old.id})
        result = await worker.write([before, after])
        assert result.moved == {after.id: "taken_over"}
        assert await contents(store, c.id) == [(1, "before")]
    finally:
        await worker.aclose()


@pytest.mark.parametrize("how", ["delete_chat", "erase_owner"])
async def test_a_chat_deleted_under_a_live_call_tells_the_call_and_its_later_words_go_on(
    store: Store, how: str
) -> None:
    """Deleted from another device (or erased): the holding call's heartbeat says `deleted`, what
    it said before the delete goes with the chat, and what it says after is kept in the call's
    continuation chat, which already exists, empty, for the call to go on in."""
    c, elsewhere = chat(), chat()
    holder = call(c.id)
    await store.write([c, elsewhere, holder, msg(c.id, "kept until the delete")])
    said_before = msg(c.id, "said just before", at=time.time() - 0.5).model_copy(
        update={"call_id": holder.id}
    )
    if how == "delete_chat":
        await store.delete_chat(c.id, owner="alice")
    else:
        assert await store.erase_owner("alice", keep=elsewhere.id) == 1
    continuation, _ = continuation_ids(holder.id)
    assert (await store.get_chat(continuation, owner="alice")).message_count == 0
    assert await store.heartbeat(holder.id, at=time.time()) == "deleted"
    said_after = msg(c.id, "said after").model_copy(update={"call_id": holder.id})
    result = await store.write([said_before, said_after])
    assert result.orphaned == [said_before.id]
    assert result.moved == {said_after.id: "deleted"}
    assert await contents(store, continuation) == [(1, "said after")]
    with pytest.raises(NotFound):
        await store.get_chat(c.id, owner=ANY_OWNER)


def opened(journal: str) -> JournalOpened:
    return JournalOpened(id=journal, host="here", pid=1, opened_at=time.time())


async def test_a_chat_left_empty_waits_while_the_call_it_was_taken_from_may_still_speak(
    store: Store,
) -> None:
    """The caller resumes on another device and starts a new chat there, leaving the chat with
    only the greeting; the call on the first device was taken over and has not written yet
    (its journal is open). The chat is not dropped as one nobody spoke in: what that call said
    before the take-over lands in it, and what it said after, in its continuation."""
    c = chat()
    first = call(c.id).model_copy(update={"journal": "journal_first"})
    greeting = msg(c.id, "Hello!", role="assistant")
    await store.write([opened("journal_first"), c, first, greeting])
    said_before = msg(c.id, "before", at=time.time() - 1).model_copy(update={"call_id": first.id})
    second = call(c.id)
    await store.claim_chat(second, owner="alice")
    kept = await store.close_chat(c.id, status="closed", end_reason="new_chat", at=time.time(),
                                  call_id=second.id)  # fmt: skip
    assert not kept and (await store.get_chat(c.id, owner="alice")).status == "active"
    said_after = msg(c.id, "after").model_copy(update={"call_id": first.id})
    result = await store.write([said_before, said_after, JournalClosed(id="journal_first")])
    assert result.orphaned == [] and result.moved == {said_after.id: "taken_over"}
    assert await contents(store, c.id) == [(1, "Hello!"), (2, "before")]
    assert await contents(store, continuation_ids(first.id)[0]) == [(1, "after")]
    swept = await store.sweep(stale_before=time.time() + 60)
    assert (swept.chats_lost, swept.chats_deleted) == (2, 0)  # both spoken in, both kept


async def test_a_chat_deleted_after_a_take_over_keeps_the_older_call_s_later_words(
    store: Store,
) -> None:
    """Taken over, then deleted from a third device before the first call has written: what
    that call says after the take-over still goes on in its continuation chat."""
    c = chat()
    first = call(c.id).model_copy(update={"journal": "journal_first"})
    await store.write([opened("journal_first"), c, first, msg(c.id, "kept until the delete")])
    await store.claim_chat(call(c.id), owner="alice")
    await store.delete_chat(c.id, owner="alice")
    assert await store.heartbeat(first.id, at=time.time()) == "taken_over"
    said_after = msg(c.id, "said after").model_copy(update={"call_id": first.id})
    result = await store.write([said_after])
    assert result.moved == {said_after.id: "taken_over"} and result.orphaned == []
    assert await contents(store, continuation_ids(first.id)[0]) == [(1, "said after")]


async def test_a_call_that_lost_its_chat_cannot_close_it(store: Store) -> None:
    c = chat()
    old, new = call(c.id), call(c.id)
    await store.write([c, old, msg(c.id)])
    await store.claim_chat(new, owner="alice")
    with pytest.raises(TakenOver):
        await store.close_chat(c.id, status="closed", end_reason="hangup", at=time.time(),
                               call_id=old.id)  # fmt: skip
    assert (await store.get_chat(c.id, owner="alice")).status == "active"
    assert await store.close_chat(
        c.id, status="closed", end_reason="hangup", at=time.time(), call_id=new.id
    )


async def test_simultaneous_claims_from_two_connections_leave_one_holder(db_url: str) -> None:
    a, b = await open_store(db_url), await open_store(db_url)
    try:
        await a.migrate()
        c = chat()
        await a.write([c, msg(c.id)])
        for _ in range(20):
            ours, theirs = call(c.id), call(c.id)
            await asyncio.gather(
                a.claim_chat(ours, owner="alice"), b.claim_chat(theirs, owner="alice")
            )
            holds = [
                await a.heartbeat(ours.id, at=time.time()),
                await a.heartbeat(theirs.id, at=time.time()),
            ]
            assert sorted(holds) == ["held", "taken_over"]
    finally:
        await a.aclose()
        await b.aclose()


async def test_calls_that_stopped_beating_are_found_longest_silent_first(store: Store) -> None:
    now = time.time()
    quiet, quieter, beating, ended_one = (chat() for _ in range(4))
    await store.write([quiet, quieter, beating, ended_one])
    rows = {c.id: call(c.id, at=now - 100) for c in (quiet, quieter, beating, ended_one)}
    for row in rows.values():
        await store.claim_chat(row, owner="alice")
    await store.heartbeat(rows[quiet.id].id, at=now - 20)
    await store.heartbeat(rows[beating.id].id, at=now)
    await ended(store, ended_one.id)
    found = await store.stale_calls(stale_before=now - 10)
    assert [(s.id, s.chat_id, s.room, s.participant) for s in found] == [
        (rows[quieter.id].id, quieter.id, "demo", "alice"),
        (rows[quiet.id].id, quiet.id, "demo", "alice"),
    ]
    assert [s.last_seen for s in found] == [now - 100, now - 20]
    assert await store.stale_calls(stale_before=now - 10, limit=1) == found[:1]


async def test_of_many_claims_of_a_stale_call_exactly_one_wins(db_url: str) -> None:
    """Every worker's watcher may claim the same dead call at once: one continues it."""
    stores = [await open_store(db_url) for _ in range(3)]
    try:
        await stores[0].migrate()
        now = time.time()
        for _ in range(10):
            c = chat()
            await stores[0].write([c, msg(c.id)])
            row = call(c.id, at=now - 60)
            await stores[0].claim_chat(row, owner="alice")
            won = await asyncio.gather(
                *(s.claim_stale_call(row.id, stale_before=now - 10) for s in stores for _ in "ab")
            )
            assert sorted(won) == [False] * 5 + [True]
            assert await stores[0].stale_calls(stale_before=now) == []
            assert await stores[0].heartbeat(row.id, at=now) == "held"  # (ended: no row beats)
    finally:
        for s in stores:
            await s.aclose()


async def test_a_call_that_beat_since_or_ended_is_not_claimed(store: Store) -> None:
    now = time.time()
    c = chat()
    await store.write([c, msg(c.id)])
    row = call(c.id, at=now - 60)
    await store.claim_chat(row, owner="alice")
    await store.heartbeat(row.id, at=now - 1)  # it came back before the claim
    assert not await store.claim_stale_call(row.id, stale_before=now - 10)
    assert await store.claim_stale_call(row.id, stale_before=now)
    assert not await store.claim_stale_call(row.id, stale_before=now)  # ended by the first
    chat_now = await store.get_chat(c.id, owner=ANY_OWNER)
    assert chat_now.status == "active"  # the chat waits for its continuation


async def test_the_sweeper_ends_chats_whose_call_stopped_and_deletes_empty_ones(
    store: Store,
) -> None:
    long_ago = time.time() - 300
    spoken, silent, alive = chat(at=long_ago), chat(at=long_ago), chat(at=long_ago)
    await store.write([
        spoken, call(spoken.id, at=long_ago), msg(spoken.id, "hello", at=long_ago),
        silent, call(silent.id, at=long_ago),
        alive, (keeper := call(alive.id, at=long_ago)), msg(alive.id, "hi", at=long_ago),
    ])  # fmt: skip
    await store.heartbeat(keeper.id, at=time.time())
    events = await store.take_events(now=time.time() + 10_000, lease_s=-10_000, limit=1000)
    tried = await store.sweep(stale_before=time.time() - 60, dry_run=True)
    assert (tried.chats_lost, tried.chats_deleted, tried.calls_lost) == (1, 1, 2)
    for kept in (spoken, silent, alive):  # a dry run changes nothing, and tells no one
        assert (await store.get_chat(kept.id, owner=ANY_OWNER)).status == "active"
    assert len(
        await store.take_events(now=time.time() + 10_000, lease_s=-10_000, limit=1000)
    ) == len(events)
    swept = await store.sweep(stale_before=time.time() - 60)
    assert swept == tried  # and the sweep then does exactly what it said
    lost = await store.get_chat(spoken.id, owner=ANY_OWNER)
    assert (lost.status, lost.end_reason) == ("interrupted", "lost")
    assert lost.ended_at == pytest.approx(long_ago)  # the window counts from the loss
    with pytest.raises(NotFound):
        await store.get_chat(silent.id, owner=ANY_OWNER)
    assert (await store.get_chat(alive.id, owner=ANY_OWNER)).status == "active"
    again = await store.sweep(stale_before=time.time() - 60)
    assert (again.chats_lost, again.chats_deleted, again.calls_lost) == (0, 0, 0)


async def test_a_summary_only_ever_moves_forward(store: Store) -> None:
    c = chat()
    await store.write([c, *(msg(c.id, f"m{i}") for i in range(5))])
    assert await store.set_summary(c.id, "first three", upto_seq=3)
    assert not await store.set_summary(c.id, "only two", upto_seq=2)
    got = await store.get_chat(c.id, owner="alice")
    assert (got.summary, got.summary_seq) == ("first three", 3)
