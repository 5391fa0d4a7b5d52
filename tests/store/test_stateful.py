"""Nothing acknowledged is ever lost (docs/store.md), hunted for by hypothesis's stateful testing:
random sequences of what happens to calls, run against the real store on both backends, with the
real writer, journal, capture and switcher.

Each step is one of: a message finalizes in a call; a call starts (resuming the caller's chat,
which takes it over from the caller's call on another device); `new_chat` or `resume_chat` start
in a call and run on while later steps happen; a chat is deleted from another device; the
heartbeat tells calls what they lost; the store refuses this process's writes, and comes back;
the process is killed (its writer abandoned as a killed process leaves it: queue gone, journal
file unlocked) and a new one starts on the same journal folder, as cut off from the store as
the old one was; the sweeper runs. The writer's
queue holds three records, so spills to the journal happen all the time.

After every step, and after a final recovery, the invariant is checked: every acknowledged
message is stored exactly once, in the chat that was current for its call when it finalized
(following the call into its continuation chat when it had lost that chat by then), or it is
still in a journal file on its way; unless that chat was deleted by an explicit request, or never
held a word of the caller (such a chat is dropped by design). Seq within a chat has no gaps, and
the sweeper never deletes a chat with a user message.

`VOXKEEP_STATEFUL_EXAMPLES` sets how many random sequences run per backend (`scripts/test
--deep` runs many more).

Found so far (each fixed at its cause): on PostgreSQL, a new chat and the row by which its call
holds it could commit in different batches; the store went down between them, the process was
killed, and the sweeper took the chat, its call row still in the journal, for an abandoned empty
one, so the replay discarded what the caller had said. A chat now carries its holder's row in
one record (`NewChat.holder`), written in one transaction. Then: with the store down from a
writer's start, the records still in memory (the journal's row, a new chat and its holder) were
lost with the killed process while the words behind them, journaled, were acknowledged; the
replay found no chat and discarded them. When the spill begins, what is still in memory goes to
the journal first.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from livekit.agents import Agent, AgentSession, llm
from livekit.agents.voice.events import ConversationItemAddedEvent

from tests.conftest import abandon, new_database
from tests.pg import PgServer
from voxkeep.call.capture import Capture
from voxkeep.call.context import Budget
from voxkeep.call.state import CallState
from voxkeep.call.switch import ChatSwitcher
from voxkeep.core.errors import NotFound, StoreUnavailable, VoxkeepError
from voxkeep.core.ids import continuation_ids
from voxkeep.store import ANY_OWNER, Store, open_store
from voxkeep.store.records import NewMessage, Record, Role
from voxkeep.store.writer import Writer, WriterOptions

T = TypeVar("T")
TALLY: dict[str, int] = {}
"""What the runs did, across examples: printed at the end (the closing note records it)."""


def tally(what: str, count: int = 1) -> None:
    TALLY[what] = TALLY.get(what, 0) + count


OWNERS = ("ann", "bob")
EXAMPLES = int(os.environ.get("VOXKEEP_STATEFUL_EXAMPLES", "8"))
STEPS = 30
OPTIONS = WriterOptions(
    max_queue=3, max_batch=4, retry_initial_s=0.005, retry_max_s=0.05, close_timeout_s=0.2
)
FAULT_EVERY = 3
"""Steps at least between two faults (an outage begins or ends, a kill): time for calls to talk."""
ROLES: list[Role] = ["user", "assistant"]
STEP_S = 0.02
"""How long each step lets the work in flight (commits, replays, switches) go on."""


class Refusing:
    """This process's view of the real store, which it can lose: while `down`, every call to
    the store refuses with `StoreUnavailable`, as a partition from the database would."""

    def __init__(self, inner: Store) -> None:
        self.inner, self.down = inner, False

    def __getattr__(self, name: str) -> Any:
        real = getattr(self.inner, name)
        if not asyncio.iscoroutinefunction(real) or name == "aclose":
            return real

        async def call(*args: Any, **kwargs: Any) -> Any:
            if self.down:
                raise StoreUnavailable("the store does not answer")
            return await real(*args, **kwargs)

        return call


@dataclass
class Said:
    """A message a call finalized: where it belongs, as the call knew it then."""

    id: str
    call: int
    role: str
    step: int
    chat_id: str | None
    row: str | None
    """None while the call was switching: filed where the switch ends (`settled`)."""


@dataclass
class Process:
    writer: Writer
    store: Refusing
    started_at: float
    futures: dict[str, asyncio.Future[None]] = field(default_factory=dict)


@dataclass
class LiveCall:
    owner: str
    state: CallState
    capture: Capture
    switcher: ChatSwitcher
    session: AgentSession[Any]
    process: Process
    switch: asyncio.Task[Any] | None = None
    waiting: list[Said] = field(default_factory=list)
    """Messages finalized while a switch held them: filed where it ends."""


def machine(open_db: Callable[[], Awaitable[str]]) -> type[RuleBasedStateMachine]:
    class Calls(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.loop = asyncio.new_event_loop()
            # the current loop: what is built outside it (an AgentSession) takes its futures
            # from this one, whatever the test before left current
            asyncio.set_event_loop(self.loop)
            self.folder = Path(tempfile.mkdtemp(prefix="voxkeep-stateful-"))
            self.step = 0
            self.ids = itertools.count()
            self.said: dict[str, Said] = {}
            self.calls: dict[int, LiveCall] = {}
            self.lost_rows: dict[str, int] = {}  # call row → the step it lost its chat at
            self.deleted: dict[str, int] = {}  # chat → the step it was deleted at
            self.process: Process | None = None
            self.dead: list[Process] = []
            self.journaled: set[str] = set()
            self.last_fault = 0
            self.story: list[str] = []
            """What happened, step by step: printed with a failure (a failure that depends on
            timing does not always come back for hypothesis to shrink)."""

        def told(self, line: str) -> None:
            self.story.append(f"{self.step}: {line}")

        def run(self, work: Coroutine[Any, Any, T]) -> T:
            async def with_time_to_go_on() -> T:
                result = await asyncio.wait_for(work, 60)
                await asyncio.sleep(STEP_S)
                return result

            return self.loop.run_until_complete(with_time_to_go_on())

        # --- set-up and tear-down --------------------------------------------------------

        @initialize()
        def open(self) -> None:
            self.url = self.run(open_db_in(self.folder, open_db))
            self.reader = self.run(open_store(self.url))
            self.run(self.start_process())

        async def start_process(self, *, store_down: bool = False) -> None:
            store = Refusing(await open_store(self.url))
            store.down = store_down  # (a new process on a host cut off from the database)
            writer = await Writer.start(store, self.folder / "journal", OPTIONS)
            process = Process(writer, store, time.time())
            real_submit = writer.submit

            def submit(record: Record) -> asyncio.Future[None]:
                future = real_submit(record)
                if isinstance(record, NewMessage):
                    process.futures.setdefault(record.id, future)
                return future

            writer.submit = submit  # type: ignore[method-assign]
            self.process = process

        def teardown(self) -> None:
            try:
                if self.process is not None:
                    self.recover()
            finally:
                self.run(self.close_everything())
                self.loop.close()
                asyncio.set_event_loop(None)
                shutil.rmtree(self.folder, ignore_errors=True)

        async def close_everything(self) -> None:
            for call in self.calls.values():
                if call.switch is not None:
                    call.switch.cancel()
            if self.process is not None:
                await self.process.writer.aclose()
            await self.reader.aclose()

        def recover(self) -> None:
            """The end of the story: the store answers again, the process is killed, and a new
            one replays every journal; then everything acknowledged must be in place."""
            assert self.process is not None
            self.process.store.down = False
            for call in self.calls.values():
                if call.switch is not None:
                    with contextlib.suppress(Exception):
                        self.run(asyncio.wait_for(asyncio.shield(call.switch), 30))
            self.settle_switches()
            self.kill()
            self.run(self.start_process())
            assert self.process is not None
            self.run(asyncio.wait_for(self.process.writer.flush(), 30))
            self.check(final=True)

        # --- what happens ----------------------------------------------------------------

        @rule(owner=st.sampled_from(OWNERS), resume=st.booleans())
        def call_starts(self, owner: str, resume: bool) -> None:
            """A call of `owner` starts: resuming their most recent chat when asked to (taking
            it over from their call on another device), else in a new chat."""
            assert self.process is not None
            process = self.process
            if process.store.down and resume:
                return  # (it would wait out the load budget and start anew: a new chat)
            session: AgentSession[Any] = AgentSession()
            state = CallState(owner, room="stateful")
            capture = Capture(state, process.writer)
            switcher = ChatSwitcher(
                state, capture, session, process.writer.store, budget=Budget(), load_timeout_s=2
            )
            asked = None if resume else "chat_that_is_not_there"  # (a new chat, then)
            self.run(switcher.open(asked, Agent(instructions="Help."), window_s=3600))
            capture.attach(session)
            key = next(self.ids)
            call = LiveCall(owner, state, capture, switcher, session, process)
            self.calls[key] = call
            self.told(f"call {key} of {owner} starts in {state.chat_id} as {state.call_id}")
            real_release = capture.release

            def release() -> list[llm.ChatItem]:
                items = real_release()
                for said in call.waiting:  # filed now, in the chat the switch ended in
                    said.chat_id, said.row = state.chat_id, state.call_id
                call.waiting.clear()
                return items

            capture.release = release  # type: ignore[method-assign]

        @precondition(lambda self: bool(self.live_calls()))
        @rule(data=st.data(), roles=st.lists(st.sampled_from(ROLES), min_size=1, max_size=5))
        def messages_finalize(self, data: st.DataObject, roles: list[Role]) -> None:
            """A few turns of one call, one after another."""
            key = data.draw(st.sampled_from(self.live_calls()), label="call")
            call = self.calls[key]
            for role in roles:
                item = llm.ChatMessage(role=role, content=[f"{role} words {next(self.ids)}"])
                held = call.capture.holding
                said = Said(
                    item.id, key, role, self.step,
                    None if held else call.state.chat_id, None if held else call.state.call_id,
                )  # fmt: skip
                self.said[item.id] = said
                if held:
                    call.waiting.append(said)
                self.told(f"call {key} says {role} {item.id} in {said.chat_id} as {said.row}")
                event = ConversationItemAddedEvent(item=item)
                self.run(in_loop(call.session.emit, "conversation_item_added", event))

        @precondition(lambda self: bool(self.idle_calls()))
        @rule(data=st.data(), resume_earlier=st.booleans())
        def a_switch_starts(self, data: st.DataObject, resume_earlier: bool) -> None:
            """`new_chat`, or `resume_chat` of an earlier chat of the caller; it runs on beside
            the steps that follow."""
            key = data.draw(st.sampled_from(self.idle_calls()), label="call")
            call = self.calls[key]
            target = None
            if resume_earlier:
                chats = self.run(self.reader.list_chats(owner=call.owner, limit=10)).chats
                earlier = [c.id for c in chats if c.id != call.state.chat_id]
                target = data.draw(st.sampled_from(earlier), label="chat") if earlier else None
            work = call.switcher.new_chat() if target is None else call.switcher.resume_chat(target)
            call.switch = self.loop.create_task(quietly(work))
            self.told(f"call {key} starts {'new_chat' if target is None else target}")
            tally("new_chat" if target is None else "resume_chat")

        @rule()
        def time_passes(self) -> None:
            self.run(asyncio.sleep(STEP_S * 3))
            self.settle_switches()

        @rule(data=st.data())
        def a_chat_is_deleted_from_another_device(self, data: st.DataObject) -> None:
            owner = data.draw(st.sampled_from(OWNERS), label="owner")
            chats = self.run(self.reader.list_chats(owner=owner, limit=10)).chats
            if not chats:
                return
            chat_id = data.draw(st.sampled_from([c.id for c in chats]), label="chat")
            with contextlib.suppress(NotFound):
                self.run(self.reader.delete_chat(chat_id, owner=owner))
                self.deleted.setdefault(chat_id, self.step)
                self.told(f"{chat_id} deleted")
                tally("chats deleted from another device")

        @precondition(lambda self: bool(self.live_calls()))
        @rule()
        def heartbeats(self) -> None:
            """Each call refreshes its hold, as its heartbeat loop would, and learns what it
            lost (a switch in flight finds out at its own next step)."""
            for key in self.idle_calls():
                call = self.calls[key]
                beat = call.process.writer.store.heartbeat(call.state.call_id, at=time.time())
                try:
                    hold = self.run(beat)
                except VoxkeepError:
                    continue
                if hold != "held":
                    lost = call.state.call_id
                    self.run(in_loop(call.switcher.lost, call.state.call_id, hold))
                    self.told(f"call {key} lost {lost} ({hold}): on in {call.state.chat_id}")

        @precondition(lambda self: self.step - self.last_fault >= FAULT_EVERY)
        @rule()
        def the_store_goes_away_or_comes_back(self) -> None:
            self.last_fault = self.step
            assert self.process is not None
            self.process.store.down = not self.process.store.down
            tally("store outages" if self.process.store.down else "store returns")
            self.told("the store goes away" if self.process.store.down else "the store is back")

        @precondition(lambda self: self.step - self.last_fault >= FAULT_EVERY)
        @rule()
        def the_process_is_killed_and_another_starts(self) -> None:
            self.last_fault = self.step
            tally("processes killed")
            assert self.process is not None
            down = self.process.store.down
            self.kill()
            self.run(self.start_process(store_down=down))
            self.told("the process is killed, another starts")

        @precondition(lambda self: bool(self.dead))
        @rule()
        def the_sweeper_runs(self) -> None:
            """With every call of the live process younger than the cutoff, as a real sweep's
            `VOXKEEP_STALE_AFTER_S` makes them: what it ends is what killed processes left."""
            assert self.process is not None
            before = self.run(self.chats_with_user_messages())
            swept = self.run(self.reader.sweep(stale_before=self.process.started_at))
            tally("sweeps")
            self.told(f"the sweeper runs: {swept}")
            tally("chats the sweeper kept waiting for a journal", swept.chats_waiting)
            after = self.run(self.chats_with_user_messages())
            assert before <= after, (
                f"the sweeper deleted chats with user messages: {before - after}"
            )

        # --- the invariant ---------------------------------------------------------------

        @invariant()
        def nothing_acknowledged_is_lost_misfiled_or_doubled(self) -> None:
            if hasattr(self, "reader"):
                self.settle_switches()
                self.lost_since_last_look()
                self.check(final=False)
            self.step += 1
            tally("steps")

        def check(self, *, final: bool) -> None:
            tally("checks")
            # In this order: what was acknowledged is durable by then, and what then leaves the
            # journal is committed before it goes (the other way round, a record replayed and
            # its journal emptied while the store is read would be in neither).
            acked = self.acknowledged()
            journaled = set() if final else journal_ids(self.folder / "journal")
            self.journaled |= journaled
            stored = self.run(self.where_everything_is())
            user_chats = {
                stored[i][0] for i, s in self.said.items() if i in stored and s.role == "user"
            }
            if final:
                tally("messages acknowledged", len(acked))
                tally("acknowledged messages seen in a journal", len(self.journaled & set(acked)))
                tally("call rows that lost their chat", len(self.lost_rows))
                tally("examples")
            places = {i: self.where_it_may_be(self.said[i]) for i in acked}
            # A chat an acknowledged user message can only be in did hold a word of the caller,
            # whatever the store shows: losing that word must not excuse itself.
            spoken_in = {
                next(iter(p))
                for i, p in places.items()
                if self.said[i].role == "user" and len(p) == 1
            }
            for message_id in acked:
                said, allowed = self.said[message_id], places[message_id]
                if message_id in stored:
                    chat_id = stored[message_id][0]
                    assert chat_id in allowed, f"{said} is in {chat_id}, expected one of {allowed}"
                elif message_id not in journaled:
                    gone = [
                        c for c in allowed
                        if c in self.deleted or (c not in user_chats and c not in spoken_in)
                    ]  # fmt: skip
                    assert gone, (
                        f"{said} was acknowledged and is nowhere: expected in {allowed}\n"
                        + "\n".join(self.story)
                    )

        def where_it_may_be(self, said: Said) -> set[str]:
            """The chats a message belongs in: the chat its call was in, followed into the
            call's continuation where the call had lost that chat before (a loss seen in the
            same step as the message may have come before it or after)."""
            if said.chat_id is None or said.row is None:
                return set()  # (still held by a switch in flight: nowhere yet)
            places, chat_id, row = set(), said.chat_id, said.row
            for _ in range(8):
                lost_at = self.lost_rows.get(row)
                if lost_at is None or lost_at > said.step:
                    places.add(chat_id)
                    break
                if lost_at == said.step:
                    places.add(chat_id)
                chat_id, row = continuation_ids(row)
            return places

        def acknowledged(self) -> list[str]:
            acked = []
            for process in [*self.dead, *([self.process] if self.process else [])]:
                for message_id, future in process.futures.items():
                    if future.done() and not future.cancelled():
                        acked.append(message_id)  # (committed, journaled, or moved on)
            return acked

        # --- helpers ---------------------------------------------------------------------

        def live_calls(self) -> list[int]:
            return [k for k, c in self.calls.items() if c.process is self.process]

        def idle_calls(self) -> list[int]:
            return [k for k in self.live_calls() if self.calls[k].switch is None]

        def settle_switches(self) -> None:
            for key, call in self.calls.items():
                if call.switch is not None and call.switch.done():
                    call.switch = None
                    self.told(f"call {key}'s switch ends in {call.state.chat_id}")

        def lost_since_last_look(self) -> None:
            for row in self.run(self.rows_that_lost_their_chat()):
                self.lost_rows.setdefault(row, self.step)

        def kill(self) -> None:
            assert self.process is not None
            process, self.process = self.process, None
            for call in self.calls.values():
                if call.process is process and call.switch is not None:
                    call.switch.cancel()
                    call.switch = None
            self.run(abandon(process.writer))
            self.dead.append(process)

        async def where_everything_is(self) -> dict[str, tuple[str, int]]:
            """Every stored message's chat and seq, read again when a chat went between the
            list and its messages (a switch in flight dropped an empty one)."""
            for _ in range(10):
                with contextlib.suppress(NotFound):
                    return await self.read_everything()
            raise AssertionError("chats kept vanishing while the store was read")

        async def read_everything(self) -> dict[str, tuple[str, int]]:
            found: dict[str, tuple[str, int]] = {}
            for owner in OWNERS:
                chats = (await self.reader.list_chats(owner=owner, limit=1000)).chats
                for chat in chats:
                    messages = (await self.reader.messages(chat.id, owner=ANY_OWNER)).messages
                    seqs = [m.seq for m in messages]
                    assert seqs == list(range(1, len(seqs) + 1)), f"gaps in {chat.id}: {seqs}"
                    for m in messages:
                        assert m.id not in found, f"{m.id} is stored twice"
                        found[m.id] = (chat.id, m.seq)
            return found

        async def chats_with_user_messages(self) -> set[str]:
            stored = await self.where_everything_is()
            return {stored[i][0] for i, s in self.said.items() if i in stored and s.role == "user"}

        async def rows_that_lost_their_chat(self) -> list[str]:
            return await lost_rows(self.url)

    return Calls


async def in_loop(work: Callable[..., Any], *args: Any) -> None:
    """Run `work` on the event loop, as the call's own tasks do."""
    work(*args)


async def quietly(work: Awaitable[Any]) -> None:
    """A switch the store refused, or that found its chat gone, changes nothing more; a new
    chat's greeting needs a running session, which these calls do without."""
    with contextlib.suppress(VoxkeepError, RuntimeError):
        await work


def journal_ids(folder: Path) -> set[str]:
    """The ids of the messages in the journal files still on the disk."""
    found: set[str] = set()
    for path in folder.glob("journal-*.jsonl"):
        for line in path.read_bytes().splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if record.get("kind") == "message":
                    found.add(record["id"])
    return found


LOST_ROWS = "SELECT id FROM calls WHERE end_reason IN ('taken_over', 'deleted')"


async def lost_rows(url: str) -> list[str]:
    """The call rows that have lost their chat (taken over, or deleted under them): read from
    the database itself, which the store's interface does not list."""
    if url.startswith("sqlite"):
        with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as db:
            return [row[0] for row in db.execute(LOST_ROWS)]
    conn = await asyncpg.connect(url)
    try:
        return [row[0] for row in await conn.fetch(LOST_ROWS)]
    finally:
        await conn.close()


async def open_db_in(folder: Path, open_db: Callable[[], Awaitable[str]]) -> str:
    url = await open_db()
    if url.startswith("sqlite"):
        url = f"sqlite:///{folder / 'voxkeep.db'}"
    store = await open_store(url)
    await store.migrate()
    await store.aclose()
    return url


def run_machine(open_db: Callable[[], Awaitable[str]]) -> None:
    TALLY.clear()
    try:
        hunt(open_db)
    finally:
        print("stateful run:", ", ".join(f"{k} {v}" for k, v in TALLY.items()))


def hunt(open_db: Callable[[], Awaitable[str]]) -> None:
    run_state_machine_as_test(
        machine(open_db),
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=STEPS,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        ),
    )


@pytest.mark.timeout(1800)
def test_nothing_acknowledged_is_lost_on_sqlite() -> None:
    async def sqlite() -> str:
        return "sqlite:///"  # (a file in the example's own folder)

    run_machine(sqlite)


@pytest.mark.timeout(1800)
def test_nothing_acknowledged_is_lost_on_postgres(pg_server: PgServer) -> None:
    run_machine(lambda: new_database(pg_server))
