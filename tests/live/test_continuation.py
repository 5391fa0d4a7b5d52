"""Continuation (docs/resume.md) on the real LiveKit server: the worker serving a call is
SIGKILLed while the caller stays; another worker's agent joins the same room by itself, goes on
with the same chat, and answers the caller's next utterance with every acknowledged message in
the LLM's context. Nothing is written twice."""

from __future__ import annotations

import asyncio
import functools
import json
import time

from livekit import api

from tests.conftest import chat, msg
from tests.live.conftest import Join, StartWorker
from tests.live.harness import CONTINUING, eventually, said, scripted
from tests.pg import PgServer
from tests.support.caller import Caller, wait_until
from tests.support.processes import ModelServer, Worker
from voxkeep.core.settings import Settings
from voxkeep.jobs.continuation import Watcher
from voxkeep.local.livekit_server import LocalServer
from voxkeep.store import ANY_OWNER, Store, open_store
from voxkeep.store.records import Message, NewCall

TURNS = ["I would like to plan a trip to Lisbon.", "What is the weather like there in May?"]
REPLIES = ["Lisbon is lovely in spring.", "Mild and mostly sunny."]
FAST = CONTINUING


async def test_a_call_whose_worker_is_killed_goes_on_with_another_workers_agent(
    start_worker: StartWorker, model_server: ModelServer, join: Join, reader: Store
) -> None:
    serving, alice, chat_id, first_agent, other = await a_call_and_a_spare(
        start_worker, model_server, join
    )
    await alice.turn(TURNS[0])
    before = await eventually(lambda: _all(reader, chat_id, 2), 10, "the first turn to be stored")
    serving.kill()  # SIGKILL to the worker and its job processes, mid-call

    await another_agent(alice, first_agent)
    assert other.saw("call.continuing")  # its watcher sent the agent, and its agent came
    await wait_until(lambda: other.saw("call.started"), 30, "the new agent's call to start")
    await alice.turn(TURNS[1])  # answered by the new agent, in the same chat

    after = await eventually(lambda: _all(reader, chat_id, 4), 15, "the second turn to be stored")
    assert [(m.role, m.content) for m in after] == [
        ("user", TURNS[0]), ("assistant", REPLIES[0]),
        ("user", TURNS[1]), ("assistant", REPLIES[1]),
    ]  # fmt: skip
    assert [m.seq for m in after] == [1, 2, 3, 4]
    assert [m.id for m in after[:2]] == [m.id for m in before[:2]]
    answer = (await model_server.chat_requests())[-1]
    assert said(answer)[:3] == [("user", TURNS[0]), ("assistant", REPLIES[0]), ("user", TURNS[1])]
    # one agent in the room: the dead one was removed, not left to linger
    agents = [p for p in alice.room.remote_participants.values() if p.identity.startswith("agent-")]
    assert [a.identity for a in agents] == [alice.agent_participant().identity]  # type: ignore[union-attr]


async def test_a_call_outlives_two_workers_killed_one_after_the_other(
    start_worker: StartWorker, model_server: ModelServer, join: Join, reader: Store
) -> None:
    turns = [*TURNS, "Please book it for Friday."]
    replies = [*REPLIES, "Done, it is booked."]
    await scripted(model_server, turns, replies)
    serving = await start_worker(**FAST)
    alice = await join("alice")
    chat_id = await alice.chat_id()
    agent = (await alice.agent()).identity
    survivors = [await start_worker(**FAST), await start_worker(**FAST)]
    for n, text in enumerate(turns):
        await alice.turn(text)
        if not survivors or n == len(turns) - 1:
            break
        # killed once the turn is acknowledged (a reply not yet committed may go with it)
        turn_stored = functools.partial(_all, reader, chat_id, 2 * (n + 1))
        await eventually(turn_stored, 15, "the turn stored")
        serving.kill()
        started = {id(w): len(w.events_named("call.started")) for w in survivors}

        agent = await another_agent(alice, agent)

        def new_call(before: dict[int, int] = started) -> list[Worker]:
            return [w for w in survivors if len(w.events_named("call.started")) > before[id(w)]]

        (serving,) = await wait_until(new_call, 30, "the new agent's call to start")
        survivors.remove(serving)

    stored = await eventually(lambda: _all(reader, chat_id, 6), 15, "every turn stored")
    assert [(m.role, m.content) for m in stored] == [
        (role, text) for pair in zip(turns, replies, strict=True)
        for role, text in zip(("user", "assistant"), pair, strict=True)
    ]  # fmt: skip
    assert [m.seq for m in stored] == [1, 2, 3, 4, 5, 6]


async def test_a_worker_killed_while_the_caller_speaks_leaves_no_half_utterance_behind(
    start_worker: StartWorker, model_server: ModelServer, join: Join, reader: Store
) -> None:
    """What the caller was saying as the worker died was never heard to its end, so it was
    never acknowledged: nothing of it is stored, and said again it is answered."""
    serving, alice, chat_id, agent, other = await a_call_and_a_spare(
        start_worker, model_server, join
    )
    await alice.turn(TURNS[0])
    await eventually(lambda: _all(reader, chat_id, 2), 15, "the first turn stored")
    speaking = asyncio.create_task(alice.say(TURNS[1]))
    await asyncio.sleep(1.0)  # mid-sentence
    serving.kill()
    await speaking

    await another_agent(alice, agent)
    await wait_until(lambda: other.saw("call.started"), 30, "the new agent's call to start")
    await alice.turn(TURNS[1])  # said again, whole
    stored = await eventually(lambda: _all(reader, chat_id, 4), 15, "both turns stored")
    assert [(m.role, m.content) for m in stored] == [
        ("user", TURNS[0]), ("assistant", REPLIES[0]),
        ("user", TURNS[1]), ("assistant", REPLIES[1]),
    ]  # fmt: skip
    heard = [
        r["body"]["text"] for r in await model_server.requests() if "transcriptions" in r["path"]
    ]
    assert heard == [TURNS[0], TURNS[1]]  # the half sentence never reached a recognizer


async def test_a_worker_killed_mid_reply_is_continued_with_what_was_acknowledged(
    start_worker: StartWorker, model_server: ModelServer, join: Join, reader: Store
) -> None:
    """The reply being played when the worker died was never finalized, so never stored; the
    caller's words before it were, and the new agent has them."""
    serving, alice, chat_id, agent, other = await a_call_and_a_spare(
        start_worker, model_server, join
    )
    seen = len(alice.states)
    await alice.say(TURNS[0])
    await wait_until(lambda: "speaking" in alice.states[seen:], 30, "the agent to start replying")
    await eventually(lambda: _all(reader, chat_id, 1), 5, "the caller's words stored")
    serving.kill()  # mid-reply

    await another_agent(alice, agent)
    await wait_until(lambda: other.saw("call.started"), 30, "the new agent's call to start")
    await alice.turn(TURNS[1])
    stored = await eventually(lambda: _all(reader, chat_id, 3), 15, "the turns stored")
    assert [(m.role, m.content) for m in stored] == [
        ("user", TURNS[0]), ("user", TURNS[1]), ("assistant", REPLIES[1]),
    ]  # fmt: skip
    answer = (await model_server.chat_requests())[-1]
    assert said(answer)[:2] == [("user", TURNS[0]), ("user", TURNS[1])]


async def a_call_and_a_spare(
    start_worker: StartWorker, model_server: ModelServer, join: Join
) -> tuple[Worker, Caller, str, str, Worker]:
    """alice in a call on one worker (her chat and its agent), and a second worker registered
    after the call began, so that it did not take it: (serving, alice, chat id, agent, other)."""
    await scripted(model_server, TURNS, REPLIES)
    serving = await start_worker(**FAST)
    alice = await join("alice")
    chat_id = await alice.chat_id()
    agent = (await alice.agent()).identity
    other = await start_worker(**FAST)
    return serving, alice, chat_id, agent, other


async def another_agent(caller: Caller, previous: str) -> str:
    """The identity of the agent that joins the caller after the one named `previous`."""

    def replaced() -> str | None:
        now = caller.agent_participant()
        return now.identity if now is not None and now.identity != previous else None

    found: str = await wait_until(replaced, 45, "another worker's agent to join")
    return found


async def _all(reader: Store, chat_id: str, count: int) -> list[Message] | None:
    found = (await reader.messages(chat_id, owner=ANY_OWNER, limit=100)).messages
    return found if len(found) >= count else None


async def test_watchers_wait_out_a_store_outage_follow_only_callers_still_there_and_send_one_agent(
    livekit_server: LocalServer, pg_server: PgServer, pg_store: tuple[str, Store], join: Join,
    room: str,
) -> None:  # fmt: skip
    """Two workers' watchers, the real store and server, no worker to take the dispatch: a call
    whose heartbeats stopped with its caller in the room is continued once, and only after the
    watchers have read the store for a while (heartbeats lost to an outage come back first);
    a call whose caller left is not followed."""
    url, store = pg_store
    now = time.time()
    stayed, left = chat("alice"), chat("bob")
    await store.write([stayed, msg(stayed.id), left, msg(left.id)])
    held = NewCall(id="call_stayed", chat_id=stayed.id, room=room, participant="alice",
                   job_id="AJ_dead", started_at=now - 60)  # fmt: skip
    gone = NewCall(id="call_gone", chat_id=left.id, room=room, participant="bob",
                   job_id="AJ_dead_too", started_at=now - 60)  # fmt: skip
    await store.claim_chat(held, owner=ANY_OWNER)
    await store.claim_chat(gone, owner=ANY_OWNER)
    await join("alice", microphone=False)  # alice is still in the room; bob is not
    settings = Settings(
        _env_file=None, db_url=url, livekit_url=livekit_server.url,
        livekit_api_key=livekit_server.api_key, livekit_api_secret=livekit_server.api_secret,
        continue_after_s=5.0,
    )  # fmt: skip
    server = api.LiveKitAPI(
        f"http://127.0.0.1:{livekit_server.port}", livekit_server.api_key,
        livekit_server.api_secret,
    )  # fmt: skip
    others = [await open_store(url) for _ in range(2)]
    stopped = False
    try:
        watchers = [Watcher(settings, s, server) for s in others]
        pg_server.stop()
        stopped = True
        assert [await w.check(now=now) for w in watchers] == [[], []]  # the store is down
        pg_server.start()
        stopped = False
        assert [await w.check(now=now + 1) for w in watchers] == [[], []]  # just back: waiting
        # (the room's own automatic dispatch, made as alice joined, is the only one)
        automatic = {d.id for d in await server.agent_dispatch.list_dispatch(room_name=room)}
        assert len(automatic) == 1

        continued = await asyncio.gather(*(w.check(now=now + 6) for w in watchers))
        assert sorted(continued) == [[], ["call_stayed"]]  # one watcher won the claim
        dispatches = [
            d for d in await server.agent_dispatch.list_dispatch(room_name=room)
            if d.id not in automatic
        ]  # fmt: skip
        assert [json.loads(d.metadata) for d in dispatches] == [
            {"chat_id": stayed.id, "continues": "call_stayed"}
        ]
        stale = await store.stale_calls(stale_before=now + 6)
        assert [c.id for c in stale] == ["call_gone"]  # bob left: the sweeper's, not ours
    finally:
        if stopped:
            pg_server.start()
        for s in others:
            await s.aclose()
        await server.aclose()
