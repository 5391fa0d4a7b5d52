"""The store contract: every backend behaves the same (docs/store.md)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import asyncpg
import pytest

from tests.conftest import chat, msg
from voxkeep.core.errors import InvalidInput, InvalidText, NotFound
from voxkeep.store import ANY_OWNER, Store, migrations, open_store
from voxkeep.store.records import (
    MAX_JSON_CHARS,
    MAX_TEXT_CHARS,
    MessageMeasured,
    NewChat,
    NewMessage,
    ProsodyFigures,
    Record,
    default_title,
)

LATEST = len(migrations.load("sqlite"))
assert len(migrations.load("postgres")) == LATEST  # the backends keep in step


async def seqs(store: Store, chat_id: str) -> list[int]:
    page = await store.messages(chat_id, owner=ANY_OWNER)
    return [m.seq for m in page.messages]


async def test_messages_come_back_in_the_order_they_were_written(store: Store) -> None:
    c = chat()
    words = ["one", "two", "three", "four", "five"]
    await store.write(
        [
            c,
            *(
                msg(c.id, w, role="user" if i % 2 == 0 else "assistant")
                for i, w in enumerate(words)
            ),
        ]
    )
    page = await store.messages(c.id, owner="alice")
    assert [m.content for m in page.messages] == words
    assert [m.seq for m in page.messages] == [1, 2, 3, 4, 5]
    assert [m.role for m in page.messages] == ["user", "assistant", "user", "assistant", "user"]
    assert (await store.get_chat(c.id, owner="alice")).message_count == 5


async def test_every_field_of_a_message_round_trips(store: Store) -> None:
    c = chat()
    sent = NewMessage(
        id="item_full",
        chat_id=c.id,
        call_id="call_1",
        role="tool",
        content=None,
        tool_name="get_weather",
        tool_call={"name": "get_weather", "arguments": '{"city": "Lisbon"}'},
        tool_result={"output": "sunny", "is_error": False},
        interrupted=True,
        confidence=0.87,
        started_at=10.5,
        ended_at=12.25,
        created_at=12.5,
        prosody={"v": 1, "pitch": {"median_hz": 180.1}, "pauses": None},
        item={"type": "function_call_output", "id": "item_full", "nested": [1, 2.5, None, True]},
        metadata={"v": 1, "source": "test"},
    )
    await store.write([c, sent])
    [got] = (await store.messages(c.id, owner=ANY_OWNER)).messages
    assert got.seq == 1
    for field in NewMessage.model_fields:
        if field != "kind":
            assert getattr(got, field) == getattr(sent, field), field


async def test_seq_is_gapless_under_concurrent_appends_from_many_tasks(db_url: str) -> None:
    stores = [await open_store(db_url) for _ in range(4)]
    await stores[0].migrate()
    c = chat()
    await stores[0].write([c])

    async def appender(task: int) -> None:
        for i in range(15):
            await stores[task % 4].write([msg(c.id, f"task {task} message {i}")])

    await asyncio.gather(*(appender(t) for t in range(40)))
    assert await seqs(stores[0], c.id) == list(range(1, 601))
    for s in stores:
        await s.aclose()


_CHILD = """
import asyncio, sys, time
from voxkeep.store import open_store
from voxkeep.store.records import NewMessage
async def main():
    store = await open_store(sys.argv[1])
    for i in range(int(sys.argv[4])):
        await store.write([NewMessage(id=f"{sys.argv[3]}-{i}", chat_id=sys.argv[2], role="user",
                                      content=f"{sys.argv[3]} {i}", created_at=time.time())])
    await store.aclose()
asyncio.run(main())
"""


async def test_two_processes_writing_one_file_keep_seq_gapless(store: Store, db_url: str) -> None:
    c = chat()
    await store.write([c])
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", _CHILD, db_url, c.id, name, "300"
        )
        for name in ("p1", "p2")
    ]
    async with asyncio.timeout(60):
        codes = [await child.wait() for child in children]
    assert codes == [0, 0]
    page = await store.messages(c.id, owner=ANY_OWNER)
    assert [m.seq for m in page.messages] == list(range(1, 601))
    for name in ("p1", "p2"):  # each process's own order is kept
        mine = [m.content for m in page.messages if m.id.startswith(name)]
        assert mine == [f"{name} {i}" for i in range(300)]


async def test_replayed_writes_never_duplicate(store: Store) -> None:
    c = chat()
    batch: list[Record] = [c, msg(c.id, "a", msg_id="m-a"), msg(c.id, "b", msg_id="m-b")]
    first = await store.write(batch)
    again = await store.write(batch)
    await store.write([batch[2], msg(c.id, "c", msg_id="m-c"), batch[1]])
    assert first.inserted == 2 and again.inserted == 0
    page = await store.messages(c.id, owner=ANY_OWNER)
    assert [(m.id, m.seq) for m in page.messages] == [("m-a", 1), ("m-b", 2), ("m-c", 3)]


async def test_a_message_for_a_deleted_chat_is_reported_not_written(store: Store) -> None:
    c = chat()
    await store.write([c, msg(c.id)])
    await store.delete_chat(c.id, owner="alice")
    result = await store.write([msg(c.id, msg_id="late")])
    assert result.orphaned == ["late"] and result.inserted == 0


async def test_deleting_a_chat_removes_its_messages_and_search_entries(store: Store) -> None:
    keep, gone = chat(), chat()
    await store.write([keep, gone, msg(keep.id, "zebra crossing"), msg(gone.id, "zebra stripes")])
    assert len(await store.search("zebra", owner="alice")) == 2
    await store.delete_chat(gone.id, owner="alice")
    hits = await store.search("zebra", owner="alice")
    assert [h.chat_id for h in hits] == [keep.id]
    with pytest.raises(NotFound):
        await store.messages(gone.id, owner=ANY_OWNER)
    stats = await store.stats()
    assert (stats.chats, stats.messages) == (1, 1)
    assert await store.check() == []


async def test_search_finds_words_and_respects_the_owner(store: Store) -> None:
    a, b = chat("alice"), chat("bob")
    await store.write(
        [
            a,
            b,
            msg(a.id, "I'd like to plan a trip to Lisbon"),
            msg(a.id, "What's the weather in Porto?"),
            msg(b.id, "Lisbon is lovely in spring"),
        ]
    )
    alice = await store.search("lisbon trip", owner="alice")
    assert [(h.chat_id, h.seq) for h in alice] == [(a.id, 1)]
    assert "[Lisbon]" in alice[0].snippet
    assert [h.owner for h in await store.search("lisbon", owner="bob")] == ["bob"]
    assert {h.owner for h in await store.search("LISBON", owner=ANY_OWNER)} == {"alice", "bob"}
    assert await store.search("madrid", owner="alice") == []
    # FTS syntax in a query is taken as words, never as syntax
    assert len(await store.search('weather"*( ^', owner="alice")) == 1
    assert await store.search("weather OR madrid", owner="alice") == []  # OR is a word here
    with pytest.raises(InvalidInput):
        await store.search("  ?! ", owner="alice")


async def test_pagination_is_stable_while_new_chats_arrive(store: Store) -> None:
    base = 1_700_000_000.0
    old = [chat("alice", at=base + i) for i in range(25)]
    await store.write(old)
    first = await store.list_chats(owner="alice", limit=10)
    await store.write([chat("alice", at=time.time()) for _ in range(5)])  # newer than all
    assert first.next_cursor is not None
    second = await store.list_chats(owner="alice", limit=10, cursor=first.next_cursor)
    assert second.next_cursor is not None
    third = await store.list_chats(owner="alice", limit=10, cursor=second.next_cursor)
    seen = [c.id for page in (first, second, third) for c in page.chats]
    assert seen == [c.id for c in reversed(old)]
    assert third.next_cursor is None


async def test_a_forged_cursor_is_a_bad_request(store: Store) -> None:
    for cursor in ("not-base64!!", "W10", "eyJhIjoxfQ"):
        with pytest.raises(InvalidInput):
            await store.list_chats(owner="alice", cursor=cursor)


async def test_another_owners_chat_is_not_found_for_every_verb(store: Store) -> None:
    c = chat("alice")
    await store.write([c, msg(c.id, "secret plans")])
    with pytest.raises(NotFound):
        await store.get_chat(c.id, owner="mallory")
    with pytest.raises(NotFound):
        await store.messages(c.id, owner="mallory")
    with pytest.raises(NotFound):
        await store.rename_chat(c.id, "pwned", owner="mallory")
    with pytest.raises(NotFound):
        await store.delete_chat(c.id, owner="mallory")
    assert (await store.list_chats(owner="mallory")).chats == []
    assert await store.search("secret", owner="mallory") == []
    assert await store.prune(older_than=time.time() + 10, owner="mallory") == 0
    # and nothing changed
    kept = await store.get_chat(c.id, owner="alice")
    assert kept.title == "secret plans" and kept.message_count == 1
    # a chat that does not exist looks exactly the same
    with pytest.raises(NotFound) as missing:
        await store.get_chat("chat_nope", owner="mallory")
    with pytest.raises(NotFound) as foreign:
        await store.get_chat(c.id, owner="mallory")
    assert str(missing.value) == str(foreign.value)


async def test_migrations_from_empty_then_rerun_are_noops(db_url: str) -> None:
    s = await open_store(db_url)
    assert (await s.schema_status()).current == 0
    every = list(range(1, LATEST + 1))
    assert await s.migrate() == every
    assert await s.migrate() == []
    status = await s.schema_status()
    assert (status.current, status.pending) == (every[-1], 0)
    assert await s.check() == []
    await s.aclose()


async def test_two_processes_migrating_at_once_apply_each_migration_once(db_url: str) -> None:
    code = (
        "import asyncio, sys\nfrom voxkeep.store import open_store\n"
        "async def m():\n"
        "    s = await open_store(sys.argv[1])\n"
        "    print(await s.migrate())\n"
        "    await s.aclose()\n"
        "asyncio.run(m())"
    )
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", code, db_url, stdout=subprocess.PIPE
        )
        for _ in range(3)
    ]
    async with asyncio.timeout(60):
        outputs = sorted([(await p.communicate())[0].decode().strip() for p in procs])
    applied = sorted(v for out in outputs for v in json.loads(out))
    assert applied == list(range(1, LATEST + 1))  # each migration once, whichever process got to it


async def test_the_first_user_message_titles_the_chat(store: Store) -> None:
    c = chat()
    long = "I'd like to plan a trip to Lisbon next spring with my two kids and our dog Max"
    await store.write([c, msg(c.id, "Hi, how can I help?", role="assistant"), msg(c.id, long)])
    await store.write([msg(c.id, "Something else entirely")])
    title = (await store.get_chat(c.id, owner="alice")).title
    assert title == "I'd like to plan a trip to Lisbon next spring with my two"
    assert title == default_title(long) and len(title) <= 60


def test_default_title_cuts_at_a_word_boundary() -> None:
    assert default_title("  short   and\nsweet ") == "short and sweet"
    assert default_title("x" * 80) == "x" * 60
    cut = default_title("word " * 30)
    assert len(cut) <= 60 and cut.endswith("word") and "  " not in cut


async def test_closing_a_chat_without_a_user_message_deletes_it(store: Store) -> None:
    empty, spoken = chat(), chat()
    await store.write([empty, spoken, msg(empty.id, "Hello! How can I help?", role="assistant")])
    await store.write([msg(spoken.id, "hi")])
    assert (
        await store.close_chat(empty.id, status="closed", end_reason="new_chat", at=time.time())
        is False
    )
    assert (
        await store.close_chat(spoken.id, status="closed", end_reason="hangup", at=time.time())
        is True
    )
    with pytest.raises(NotFound):
        await store.get_chat(empty.id, owner=ANY_OWNER)
    kept = await store.get_chat(spoken.id, owner=ANY_OWNER)
    assert (kept.status, kept.end_reason) == ("closed", "hangup") and kept.ended_at is not None
    with pytest.raises(NotFound):
        await store.close_chat("chat_nope", status="closed", end_reason="hangup", at=time.time())


async def test_rename_checks_the_title(store: Store) -> None:
    c = chat()
    await store.write([c, msg(c.id)])
    assert (await store.rename_chat(c.id, "  Lisbon trip  ", owner="alice")).title == "Lisbon trip"
    for bad in ("", "   ", "x" * 101, "nul\x00byte", "half \ud800 surrogate"):
        with pytest.raises(InvalidInput):
            await store.rename_chat(c.id, bad, owner="alice")
    assert (await store.get_chat(c.id, owner="alice")).title == "Lisbon trip"


EDGE_TEXTS = {
    "emoji": "Let's go 🎉🇵🇹 👩🏽‍🚀 now",
    "rtl": "שלום, مرحبا بك — mixed ‏RTL‎ marks",
    "one_megabyte": "a" * 1_000_000,
    "combining": "e\u0301 n\u0303 \u200d zero-width",
    "control_chars": "tab\tnewline\nbell\x07",
}
REFUSED_TEXTS = {
    "nul": "before\x00after",
    "unpaired_high_surrogate": "a\ud83d b",
    "unpaired_low_surrogate": "\udc00",
    "over_the_limit": "b" * (MAX_TEXT_CHARS + 1),
}


@pytest.mark.parametrize("name", sorted(EDGE_TEXTS))
async def test_edge_text_is_stored_faithfully(store: Store, name: str) -> None:
    c = chat()
    text = EDGE_TEXTS[name]
    await store.write([c, msg(c.id, text, msg_id=f"m-{name}"), msg(c.id, text, msg_id=f"m-{name}")])
    [got] = (await store.messages(c.id, owner=ANY_OWNER)).messages
    assert got.content == text


@pytest.mark.parametrize("name", sorted(REFUSED_TEXTS))
def test_edge_text_is_refused_the_same_way_every_time(name: str) -> None:
    text = REFUSED_TEXTS[name]
    errors = []
    for field in ("content", "tool_name"):
        for _ in range(2):
            with pytest.raises(InvalidText) as refused:
                NewMessage(id="m", chat_id="c", role="user", created_at=1.0, **{field: text})
            errors.append(str(refused.value).replace(field, "FIELD"))
    in_json = text if name != "over_the_limit" else "b" * (MAX_JSON_CHARS + 1)
    with pytest.raises(InvalidText):
        NewMessage(id="m", chat_id="c", role="user", created_at=1.0, item={"k": [in_json]})
    assert len(set(errors)) == 1


def test_nan_in_json_is_refused() -> None:
    with pytest.raises(InvalidText):
        NewMessage(id="m", chat_id="c", role="user", created_at=1.0, prosody={"x": float("nan")})


async def test_prune_deletes_only_ended_chats_older_than_the_cutoff(store: Store) -> None:
    old_closed, old_active, new_closed = chat(at=1000.0), chat(at=1000.0), chat()
    await store.write([old_closed, old_active, new_closed])
    await store.write(
        [msg(c.id, "hi", at=c.created_at) for c in (old_closed, old_active, new_closed)]
    )
    await store.close_chat(old_closed.id, status="closed", end_reason="hangup", at=1001.0)
    await store.close_chat(new_closed.id, status="closed", end_reason="hangup", at=time.time())
    assert await store.prune(older_than=time.time() - 3600, owner=ANY_OWNER) == 1
    remaining = {c.id for c in (await store.list_chats(owner=ANY_OWNER)).chats}
    assert remaining == {old_active.id, new_closed.id}


async def test_a_dry_run_names_exactly_what_prune_and_erasure_then_delete(store: Store) -> None:
    alice_old, alice_active, alice_new, bob_old = (
        chat("alice", at=1000.0),
        chat("alice", at=1000.0),
        chat("alice"),
        chat("bob", at=900.0),
    )
    every = (alice_old, alice_active, alice_new, bob_old)
    await store.write([*every, *(msg(c.id, "hi", at=c.created_at) for c in every)])
    for c, at in ((alice_old, 1001.0), (bob_old, 901.0), (alice_new, time.time())):
        await store.close_chat(c.id, status="closed", end_reason="hangup", at=at)
    cutoff = time.time() - 3600
    everyone = await store.to_delete(owner=ANY_OWNER, older_than=cutoff)
    assert everyone == [bob_old.id, alice_old.id]  # ended, not updated since: oldest first
    assert await store.to_delete(owner="alice", older_than=cutoff) == [alice_old.id]
    erased = await store.to_delete(owner="alice")
    assert set(erased) == {alice_old.id, alice_active.id, alice_new.id}  # the active one too
    assert len((await store.list_chats(owner=ANY_OWNER)).chats) == 4  # a dry run changes nothing
    with pytest.raises(InvalidInput):
        await store.to_delete(owner=ANY_OWNER)  # erasure names its person
    assert await store.prune(older_than=cutoff, owner="alice") == 1
    assert await store.erase_owner("alice") == len(erased) - 1
    assert [c.id for c in (await store.list_chats(owner=ANY_OWNER)).chats] == [bob_old.id]


async def restored(db_url: str, path: str) -> str:
    """A store URL holding the backup at `path`: the file itself for SQLite; for PostgreSQL,
    a new database `pg_restore` filled from it."""
    if db_url.startswith("sqlite"):
        return f"sqlite:///{path}"
    copy_url = f"{db_url}_copy"
    admin = await asyncpg.connect(db_url)
    try:
        await admin.execute(f'CREATE DATABASE "{copy_url.rsplit("/", 1)[1]}"')
    finally:
        await admin.close()
    done = await asyncio.create_subprocess_exec(
        "pg_restore", "--no-owner", f"--dbname={copy_url}", path
    )
    assert await asyncio.wait_for(done.wait(), 60) == 0
    return copy_url


async def test_a_backup_is_a_complete_searchable_copy(
    store: Store, db_url: str, tmp_path: object
) -> None:
    c = chat()
    await store.write([c, *(msg(c.id, f"note number {i} about kiwis") for i in range(50))])
    await store.delete_chat((await _scratch(store)), owner=ANY_OWNER)  # leaves freed pages behind
    path = f"{tmp_path}/backup.db"
    await store.backup(path)
    copy = await open_store(await restored(db_url, path))
    assert await copy.check() == []
    assert len(await copy.search("kiwis", owner="alice", limit=100)) == 50
    assert await seqs(copy, c.id) == list(range(1, 51))
    await copy.aclose()
    with pytest.raises(InvalidInput):
        await store.backup(path)


async def _scratch(store: Store) -> str:
    c = chat()
    await store.write([c, *(msg(c.id, "scratch " * 100) for _ in range(30))])
    return c.id


async def test_messages_page_backwards_with_before_seq(store: Store) -> None:
    c = chat()
    await store.write([c, *(msg(c.id, str(i)) for i in range(1, 26))])
    page = await store.messages(c.id, owner="alice", limit=10)
    assert [m.seq for m in page.messages] == list(range(16, 26)) and page.next_before_seq == 16
    page = await store.messages(c.id, owner="alice", limit=10, before_seq=page.next_before_seq)
    assert [m.seq for m in page.messages] == list(range(6, 16)) and page.next_before_seq == 6
    page = await store.messages(c.id, owner="alice", limit=10, before_seq=6)
    assert [m.seq for m in page.messages] == [1, 2, 3, 4, 5] and page.next_before_seq is None


async def test_stored_metadata_always_carries_a_version(store: Store) -> None:
    c = NewChat(id="chat_meta", owner="alice", created_at=1.0, metadata={"source": "sip"})
    m = NewMessage(id="m1", chat_id=c.id, role="user", content="hi", created_at=2.0)
    await store.write([c, m])
    assert (await store.get_chat(c.id, owner="alice")).metadata == {"v": 1, "source": "sip"}
    [got] = (await store.messages(c.id, owner="alice")).messages
    assert got.metadata == {"v": 1}


async def test_a_measurement_arrives_after_its_message_and_replays_change_nothing(
    store: Store,
) -> None:
    c = chat()
    said, timed = msg(c.id, "Book Lisbon."), msg(c.id, "And Porto.")
    timed = timed.model_copy(update={"started_at": 5.0, "ended_at": 6.0})
    await store.write([c, said, timed])
    prosody = {"v": 1, "pitch": {"median_hz": 120.5}}
    measured = [
        MessageMeasured(message_id=said.id, prosody=prosody, started_at=1.0, ended_at=2.0),
        MessageMeasured(message_id=timed.id, prosody=prosody, started_at=7.0, ended_at=8.0),
        MessageMeasured(message_id="item_nowhere", prosody=prosody),
    ]
    await store.write(measured)
    await store.write(measured)  # a replayed journal
    got = (await store.messages(c.id, owner=ANY_OWNER)).messages
    assert [(m.prosody, m.started_at, m.ended_at) for m in got] == [
        (prosody, 1.0, 2.0),
        (prosody, 5.0, 6.0),  # what the session knew of when it was said stays
    ]
    assert (await store.get_chat(c.id, owner=ANY_OWNER)).message_count == 2


async def test_prosody_figures_come_from_the_user_messages_that_carry_them(store: Store) -> None:
    """The chart's figures: each measured user message in order, a whole number read as the
    same figure, a figure of another type or missing as None; nothing of assistant turns or of
    unmeasured messages; another owner's chat is not found."""
    c = chat("alice")
    measured = {
        "v": 1,
        "pitch": {"median_hz": 182.5},
        "loudness": {"mean_db": -21},
        "rate": {"words_per_s": "fast"},
        "relative": {"pitch_z": 1.25, "loudness_z": -0.5},
    }
    await store.write(
        [
            c,
            msg(c.id, "first", prosody=measured),
            msg(c.id, "a reply", role="assistant", prosody={"v": 1, "pitch": {"median_hz": 99}}),
            msg(c.id, "not measured"),
            msg(c.id, "second", prosody={"v": 1, "relative": {"rate_z": 2}}),
        ]
    )

    figures = await store.prosody_figures(c.id, owner="alice")

    assert [(f.seq, f.at > 0) for f in figures] == [(1, True), (4, True)]
    assert figures[0]._replace(at=0) == ProsodyFigures(1, 0, 182.5, -21.0, None, 1.25, -0.5, None)
    assert figures[1]._replace(at=0) == ProsodyFigures(4, 0, None, None, None, None, None, 2.0)
    assert isinstance(figures[0].loudness_db, float)
    with pytest.raises(NotFound):
        await store.prosody_figures(c.id, owner="bob")
    empty = chat("alice")
    await store.write([empty])
    assert await store.prosody_figures(empty.id, owner=ANY_OWNER) == []
