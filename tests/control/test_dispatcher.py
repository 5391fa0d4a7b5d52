"""The control dispatcher (docs/control.md) against a real SQLite store: every command's success
path, the errors on their paths, and the rules (who may command, order, replay, rate)."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, cast

import pytest
from livekit import rtc

from tests.conftest import Outage, chat, msg
from voxkeep.control.dispatcher import MAX_WAITING, Dispatcher, Sender
from voxkeep.control.protocol import MAX_PAYLOAD, encode
from voxkeep.control.schema import REPLY
from voxkeep.core.ids import new_chat_id
from voxkeep.store import ANY_OWNER, Store
from voxkeep.store.records import NewChat
from voxkeep.store.writer import Writer

CALLER = Sender("alice")
_ids = itertools.count()


class StoreSwitcher:
    """Chat switching done on the store alone (the call's own switcher adds the session)."""

    def __init__(self, store: Store, chat_id: str) -> None:
        self.store, self.chat_id, self.switching = store, chat_id, False
        self.switches = 0

    async def new_chat(self) -> str | None:
        self.switches += 1
        kept = await self.store.close_chat(
            self.chat_id, status="closed", end_reason="new_chat", at=time.time()
        )
        saved = self.chat_id if kept else None
        self.chat_id = new_chat_id()
        await self.store.write([NewChat(id=self.chat_id, owner="alice", created_at=time.time())])
        return saved

    async def resume_chat(self, chat_id: str) -> tuple[str | None, int, int]:
        saved = await self.new_chat()
        self.chat_id = chat_id
        return saved, 0, 0


@pytest.fixture
async def setup(store: Store) -> tuple[Dispatcher, StoreSwitcher, dict[str, str]]:
    """alice talking in her current chat, with two older chats; bob with one of his own."""
    ids = {}
    for name, owner in (
        ("old1", "alice"),
        ("old2", "alice"),
        ("current", "alice"),
        ("bobs", "bob"),
    ):
        c = chat(owner=owner)
        ids[name] = c.id
        await store.write([c, msg(c.id, f"{name} first"), msg(c.id, "reply", role="assistant")])
    switcher = StoreSwitcher(store, ids["current"])
    return Dispatcher(store, switcher, "alice", rate=1000, burst=1000), switcher, ids


async def send(d: Dispatcher, sender: Sender = CALLER, **fields: Any) -> dict[str, Any] | None:
    payload = {"v": 1, "id": fields.pop("id", f"r{next(_ids)}"), **fields}
    reply = await d.handle(sender, json.dumps(payload).encode())
    if reply is not None:
        assert len(encode(reply)) <= MAX_PAYLOAD
        REPLY.validate_python(reply)  # what the TypeScript client's types say it gets
    return reply


async def test_ping_names_the_current_chat(setup: Any) -> None:
    d, switcher, _ = setup
    assert await send(d, id="p", type="ping") == {
        "v": 1, "re": "p", "type": "ping.ok", "chat_id": switcher.chat_id
    }  # fmt: skip


async def test_list_chats_pages_through_the_callers_own_chats_only(setup: Any) -> None:
    d, _, ids = setup
    first = await send(d, type="list_chats", limit=2)
    assert first is not None and first["type"] == "list_chats.ok"
    assert len(first["chats"]) == 2 and first["next_cursor"]
    rest = await send(d, type="list_chats", limit=2, cursor=first["next_cursor"])
    assert rest is not None
    seen = [c["id"] for c in first["chats"] + rest["chats"]]
    assert sorted(seen) == sorted([ids["old1"], ids["old2"], ids["current"]])
    assert set(first["chats"][0]) == {
        "id", "title", "status", "created_at", "updated_at", "message_count"
    }  # fmt: skip
    assert rest["next_cursor"] is None


async def test_get_chat_pages_back_through_messages(setup: Any, store: Store) -> None:
    d, _, ids = setup
    await store.write([msg(ids["old1"], f"line {i}") for i in range(5)])
    newest = await send(d, type="get_chat", chat_id=ids["old1"], limit=3)
    assert newest is not None and newest["type"] == "get_chat.ok"
    assert [m["seq"] for m in newest["messages"]] == [5, 6, 7]
    assert newest["chat"]["message_count"] == 7
    assert set(newest["messages"][0]) == {
        "seq", "role", "content", "created_at", "interrupted", "prosody"
    }  # fmt: skip
    older = await send(
        d, type="get_chat", chat_id=ids["old1"], before_seq=newest["next_before_seq"], limit=10
    )
    assert older is not None and [m["seq"] for m in older["messages"]] == [1, 2, 3, 4]
    assert older["next_before_seq"] is None


async def test_a_page_of_huge_messages_is_cut_to_fit_and_flagged(setup: Any, store: Store) -> None:
    d, _, ids = setup
    await store.write([msg(ids["old2"], "é" * 200_000) for _ in range(3)])
    reply = await send(d, type="get_chat", chat_id=ids["old2"], limit=100)
    assert reply is not None and reply["type"] == "get_chat.ok"
    assert reply["messages"] and all(m.get("truncated") for m in reply["messages"][-1:])
    assert reply["messages"][-1]["content"].endswith("…")
    assert reply["next_before_seq"] == reply["messages"][0]["seq"]  # the rest is a page away


async def test_rename_and_delete_change_only_the_callers_chats(setup: Any, store: Store) -> None:
    d, _, ids = setup
    renamed = await send(d, type="rename_chat", chat_id=ids["old1"], title="Lisbon trip")
    assert renamed is not None
    assert (renamed["type"], renamed["title"]) == ("rename_chat.ok", "Lisbon trip")
    assert (await store.get_chat(ids["old1"], owner="alice")).title == "Lisbon trip"
    deleted = await send(d, type="delete_chat", chat_id=ids["old2"])
    assert deleted is not None and deleted["type"] == "delete_chat.ok"
    assert ids["old2"] not in [c.id for c in (await store.list_chats(owner="alice")).chats]
    # bob's chat: the same answer as a chat that does not exist, and nothing changes
    for fields in (
        {"type": "get_chat", "chat_id": ids["bobs"]},
        {"type": "rename_chat", "chat_id": ids["bobs"], "title": "mine now"},
        {"type": "delete_chat", "chat_id": ids["bobs"]},
        {"type": "resume_chat", "chat_id": ids["bobs"]},
        {"type": "get_chat", "chat_id": "chat_does_not_exist"},
    ):
        reply = await send(d, **fields)
        assert reply is not None and reply["code"] == "not_found", fields
    bobs = await store.get_chat(ids["bobs"], owner=ANY_OWNER)
    assert (bobs.title, bobs.message_count) == ("bobs first", 2)


async def test_deleting_the_current_chat_starts_a_new_one(setup: Any, store: Store) -> None:
    d, switcher, ids = setup
    reply = await send(d, type="delete_chat", chat_id=ids["current"])
    assert reply is not None and reply["chat_id"] == ids["current"]
    assert switcher.chat_id != ids["current"] and switcher.switches == 1
    with pytest.raises(Exception, match="no such chat"):
        await store.get_chat(ids["current"], owner="alice")


@pytest.mark.parametrize(
    "sender",
    [
        Sender("mallory"),  # another person in the room
        Sender("alice", kind=rtc.ParticipantKind.PARTICIPANT_KIND_AGENT),
        Sender("alice", hidden=True),
        Sender(None),  # the server API
    ],
)
async def test_nobody_but_the_caller_can_command_the_session(
    setup: Any, store: Store, sender: Sender
) -> None:
    d, switcher, ids = setup
    before = await store.stats()
    for fields in (
        {"type": "new_chat"},
        {"type": "delete_chat", "chat_id": ids["old1"]},
        {"type": "rename_chat", "chat_id": ids["old1"], "title": "x"},
    ):
        reply = await send(d, sender, **fields)
        if sender.identity == "mallory":
            assert reply is not None and reply["code"] == "forbidden"
        else:
            assert reply is None  # ignored, not answered
    assert await store.stats() == before and switcher.switches == 0


async def test_a_request_replayed_five_times_acts_once(setup: Any) -> None:
    d, switcher, _ = setup
    replies = [await send(d, id="same", type="new_chat") for _ in range(5)]
    assert switcher.switches == 1
    assert all(r == replies[0] for r in replies)


async def test_commands_run_one_at_a_time_in_arrival_order(setup: Any, store: Store) -> None:
    d, _, ids = setup
    titles = [f"title {i}" for i in range(MAX_WAITING)]
    replies = await asyncio.gather(
        *(send(d, type="rename_chat", chat_id=ids["old1"], title=t) for t in titles)
    )
    assert [r["title"] for r in replies if r] == titles
    assert (await store.get_chat(ids["old1"], owner="alice")).title == titles[-1]
    # more than that waiting at once: the rest are told to come back
    burst = await asyncio.gather(*(send(d, type="list_chats") for _ in range(MAX_WAITING + 10)))
    assert [r["code"] for r in burst if r and r["type"] == "error"] == ["busy"] * 10


async def test_a_flood_is_rate_limited_and_the_rejections_are_bounded(store: Store) -> None:
    c = chat()
    await store.write([c])
    d = Dispatcher(store, StoreSwitcher(store, c.id), "alice", rate=5, burst=10)
    replies = [await send(d, type="ping") for _ in range(100)]
    ok = [r for r in replies if r and r["type"] == "ping.ok"]
    limited = [r for r in replies if r and r.get("code") == "rate_limited"]
    assert len(ok) == 10
    assert 1 <= len(limited) <= 6 and all(r["retry_after_ms"] > 0 for r in limited)
    assert replies.count(None) == 100 - len(ok) - len(limited)


async def test_commands_wait_while_the_chat_is_being_changed(setup: Any) -> None:
    d, switcher, _ = setup
    switcher.switching = True
    reply = await send(d, id="b", type="ping")
    assert reply is not None and (reply["code"], reply["re"]) == ("busy", "b")
    switcher.switching = False
    again = await send(d, id="b", type="ping")  # busy was not kept as the first reply
    assert again is not None and again["type"] == "ping.ok"


async def test_malformed_packets_from_the_caller_get_typed_errors_and_write_nothing(
    setup: Any, store: Store
) -> None:
    d, switcher, _ = setup
    before = await store.stats()
    for payload in (b"", b"{", b"\xff", b"[]", b"x" * (MAX_PAYLOAD + 1), b'{"v":1,"id":"a"}'):
        reply = await d.handle(CALLER, payload)
        assert reply is not None and reply["type"] == "error"
        assert reply["code"] in ("bad_request", "too_large")
    assert await store.stats() == before and switcher.switches == 0


async def test_a_store_that_is_down_answers_unavailable_and_a_retry_then_acts(
    setup: Any, store: Store, outage: Callable[[], Awaitable[Outage]]
) -> None:
    d, _, ids = setup
    down_for_now = await outage()  # SQLite locked by another process / PostgreSQL stopped
    down = await send(d, id="same", type="rename_chat", chat_id=ids["old1"], title="New title")
    assert down is not None and (down["code"], down["re"]) == ("unavailable", "same")
    await down_for_now.end()
    again = await send(d, id="same", type="rename_chat", chat_id=ids["old1"], title="New title")
    assert again is not None and again["type"] == "rename_chat.ok"  # not the cached failure
    assert (await store.get_chat(ids["old1"], owner="alice")).title == "New title"


async def test_a_failure_inside_a_command_is_internal_and_the_channel_goes_on(
    setup: Any,
) -> None:
    d, switcher, _ = setup

    async def broken() -> str | None:
        raise RuntimeError("boom")

    switcher.new_chat = broken
    reply = await send(d, id="n", type="new_chat")
    assert reply is not None and reply["code"] == "internal" and "boom" not in reply["message"]
    assert (await send(d, type="ping") or {}).get("type") == "ping.ok"


async def test_a_page_of_long_titles_shrinks_to_fit_and_the_cursor_continues(
    store: Store,
) -> None:
    chats = [chat(owner="alice") for _ in range(60)]
    await store.write(chats)
    for c in chats:  # 100 emoji: 400 bytes of title each, 24 KB for a page of 50
        await store.rename_chat(c.id, "🚋" * 100, owner="alice")
    d = Dispatcher(store, StoreSwitcher(store, chats[0].id), "alice", rate=1e6, burst=10**6)
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        page = await send(d, type="list_chats", limit=50, **({"cursor": cursor} if cursor else {}))
        assert page is not None and page["type"] == "list_chats.ok"
        assert 0 < len(page["chats"]) < 50  # shrunk, and send() checked it fits
        seen += [c["id"] for c in page["chats"]]
        if (cursor := page["next_cursor"]) is None:
            break
    assert sorted(seen) == sorted(c.id for c in chats)  # every chat once, none lost


async def test_erase_me_asks_first_then_erases_every_chat_of_the_caller_only(
    setup: tuple[Dispatcher, StoreSwitcher, dict[str, str]], store: Store
) -> None:
    d, switcher, ids = setup
    asked = await send(d, type="erase_me")
    assert asked is not None and asked["type"] == "erase_me.ok"
    assert (asked["erased"], asked["chat_count"], asked["expires_in_ms"]) == (False, 3, 60_000)
    assert len((await store.list_chats(owner="alice")).chats) == 3  # nothing deleted yet

    done = await send(d, type="erase_me", confirm=asked["confirm"])
    assert done is not None and (done["erased"], done["chat_count"]) == (True, 3)
    assert done["chat_id"] == switcher.chat_id != ids["current"]  # the call goes on, anew
    left = (await store.list_chats(owner="alice")).chats
    assert [c.id for c in left] == [switcher.chat_id] and left[0].message_count == 0
    assert await store.search("first", owner="alice") == []
    assert [h.chat_id for h in await store.search("first", owner=ANY_OWNER)] == [ids["bobs"]]


async def test_an_erasure_token_works_once_and_only_in_time(store: Store) -> None:
    c = chat("alice")
    await store.write([c, msg(c.id, "Keep me.")])
    now = [1000.0]
    d = Dispatcher(store, StoreSwitcher(store, c.id), "alice", rate=100, burst=100,
                   clock=lambda: now[0])  # fmt: skip
    first = await send(d, type="erase_me")
    assert first is not None
    wrong = await send(d, type="erase_me", confirm="not-the-token")
    assert wrong is not None and wrong["code"] == "expired"
    again = await send(d, type="erase_me", confirm=first["confirm"])  # spent by the wrong try
    assert again is not None and again["code"] == "expired"
    late = await send(d, type="erase_me")
    assert late is not None
    now[0] += 61
    too_late = await send(d, type="erase_me", confirm=late["confirm"])
    assert too_late is not None and too_late["code"] == "expired"
    assert (await store.get_chat(c.id, owner="alice")).message_count == 1  # nothing erased


class SlowWrites:
    """A store whose writes take a while to commit (a busy machine's), reads as fast as ever."""

    def __init__(self, store: Store, delay_s: float) -> None:
        self._store, self._delay_s = store, delay_s

    async def write(self, records: Any, **options: Any) -> Any:
        await asyncio.sleep(self._delay_s)
        return await self._store.write(records, **options)

    async def aclose(self) -> None:  # the test's store is the fixture's to close
        return None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


async def test_a_read_sees_what_the_call_said_just_before_it(
    setup: Any, store: Store, tmp_path: Path
) -> None:
    d, switcher, _ = setup
    writer = await Writer.start(cast(Store, SlowWrites(store, 0.5)), tmp_path / "journal")
    reads = Dispatcher(store, switcher, "alice", rate=1000, burst=1000, caught_up=writer.flush)
    try:
        # the agent's reply, handed to the writer as it finalized; the app reads at once
        writer.submit(msg(switcher.chat_id, "Lisbon is lovely.", role="assistant"))
        unwaited = await send(d, type="get_chat", chat_id=switcher.chat_id)
        seen = await send(reads, type="get_chat", chat_id=switcher.chat_id)
        listed = await send(reads, type="list_chats")
    finally:
        await writer.aclose()
    assert unwaited is not None and seen is not None and listed is not None
    assert [m["content"] for m in unwaited["messages"]] == ["current first", "reply"]
    assert [m["content"] for m in seen["messages"]][-1] == "Lisbon is lovely."
    current = next(c for c in listed["chats"] if c["id"] == switcher.chat_id)
    assert current["message_count"] == 3
