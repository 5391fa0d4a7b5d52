"""Continuation's decisions in the store (docs/resume.md), hunted for by hypothesis's stateful
testing on both backends: random sequences of calls starting and taking their caller's chat over,
heartbeats, time passing, every worker's watcher claiming stale calls at once, calls ending and
the sweeper. After every step the store must agree with a model of it:

- a chat has at most one live call;
- a call is continued at most once, and only when it was live and silent for the continuation
  threshold: of the watchers that claim it at once, exactly one wins, and none wins a call that
  beat since, ended, or lost its chat;
- the calls the store offers as stale are exactly the model's.

`VOXKEEP_STATEFUL_EXAMPLES` sets how many random sequences run per backend."""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from tests.conftest import new_database
from tests.pg import PgServer
from voxkeep.store import ANY_OWNER, Store, open_store
from voxkeep.store.records import CallEnded, NewCall, NewChat, NewMessage

T = TypeVar("T")
EXAMPLES = int(os.environ.get("VOXKEEP_STATEFUL_EXAMPLES", "15"))
STEPS = 30
AFTER_S = 8.0  # the continuation threshold
STALE_S = 60.0  # the sweeper's
START = 1_000_000.0  # the machine's clock: seconds, moved by `time_passes`
OWNERS = ["alice", "bob"]
WATCHERS = 3


@dataclass
class Row:
    """The model of one call row."""

    chat_id: str
    last_seen: float
    live: bool = True
    end_reason: str | None = None


def machine(open_db: Callable[[Path], Awaitable[str]]) -> type[RuleBasedStateMachine]:
    class Continuations(RuleBasedStateMachine):
        calls = Bundle("calls")

        def __init__(self) -> None:
            super().__init__()
            self.loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self.loop)
            self.folder = Path(tempfile.mkdtemp(prefix="voxkeep-continuation-"))
            self.ids = itertools.count()
            self.now = START
            self.rows: dict[str, Row] = {}
            self.chats: dict[str, str] = {}  # owner → their chat
            self.stores: list[Store] = []

        def run(self, work: Awaitable[T]) -> T:
            return self.loop.run_until_complete(asyncio.wait_for(work, 60))

        @initialize()
        def open(self) -> None:
            url = self.run(open_db(self.folder))
            self.stores = [self.run(open_store(url)) for _ in range(WATCHERS)]
            self.run(self.stores[0].migrate())
            for owner in OWNERS:
                chat_id = f"chat_{owner}"
                self.run(self.stores[0].write([
                    NewChat(id=chat_id, owner=owner, created_at=START),
                    NewMessage(id=f"m_{owner}", chat_id=chat_id, role="user", content="hi",
                               created_at=START),
                ]))  # fmt: skip
                self.chats[owner] = chat_id

        def teardown(self) -> None:
            try:
                for store in self.stores:
                    self.run(store.aclose())
            finally:
                self.loop.close()
                asyncio.set_event_loop(None)
                shutil.rmtree(self.folder, ignore_errors=True)

        @property
        def store(self) -> Store:
            return self.stores[0]

        # --- what happens ------------------------------------------------------------------

        @rule(target=calls, owner=st.sampled_from(OWNERS))
        def a_call_starts(self, owner: str) -> str:
            """It takes the caller's chat over from any live call of it."""
            call_id = f"call_{next(self.ids)}"
            chat_id = self.chats[owner]
            row = NewCall(
                id=call_id, chat_id=chat_id, room=f"room_{call_id}", participant=owner,
                job_id=f"AJ_{call_id}", started_at=self.now,
            )  # fmt: skip
            self.run(self.store.claim_chat(row, owner=ANY_OWNER))
            for other in self.rows.values():
                if other.chat_id == chat_id and other.live:
                    other.live, other.end_reason = False, "taken_over"
            self.rows[call_id] = Row(chat_id, self.now)
            return call_id

        @rule(call_id=calls)
        def a_heartbeat(self, call_id: str) -> None:
            held = self.run(self.store.heartbeat(call_id, at=self.now))
            row = self.rows[call_id]
            if row.live:
                assert held == "held", (call_id, held)
                row.last_seen = self.now
            else:
                assert held == ("taken_over" if row.end_reason == "taken_over" else "held")

        @rule(seconds=st.sampled_from([1.0, 3.0, AFTER_S / 2, AFTER_S + 1, STALE_S]))
        def time_passes(self, seconds: float) -> None:
            self.now += seconds

        @rule(call_id=calls, watchers=st.integers(min_value=1, max_value=WATCHERS * 2))
        def watchers_claim(self, call_id: str, watchers: int) -> None:
            """Every worker's watcher claims the call at once."""
            before = self.now - AFTER_S
            won = self.run(self.all_claim(call_id, before, watchers))
            row = self.rows[call_id]
            due = row.live and row.last_seen < before
            assert sorted(won) == [False] * (watchers - due) + [True] * due, (row, won)
            if due:
                row.live, row.end_reason = False, "lost"

        async def all_claim(self, call_id: str, before: float, watchers: int) -> list[bool]:
            return list(await asyncio.gather(*(
                self.stores[n % WATCHERS].claim_stale_call(call_id, stale_before=before)
                for n in range(watchers)
            )))  # fmt: skip

        @rule(call_id=calls)
        def a_call_ends(self, call_id: str) -> None:
            row = self.rows[call_id]
            if not row.live:
                return
            self.run(self.store.write([
                CallEnded(call_id=call_id, end_reason="hangup", ended_at=self.now)
            ]))  # fmt: skip
            row.live, row.end_reason = False, "hangup"

        @rule()
        def the_sweeper_runs(self) -> None:
            self.run(self.store.sweep(stale_before=self.now - STALE_S))
            for row in self.rows.values():
                if row.live and row.last_seen < self.now - STALE_S:
                    row.live, row.end_reason = False, "lost"

        # --- what must hold ----------------------------------------------------------------

        @invariant()
        def the_store_agrees(self) -> None:
            if not self.stores:
                return
            stale = self.run(self.store.stale_calls(stale_before=self.now - AFTER_S))
            expected = sorted(
                (row.last_seen, call_id) for call_id, row in self.rows.items()
                if row.live and row.last_seen < self.now - AFTER_S
            )  # fmt: skip
            assert [(c.last_seen, c.id) for c in stale] == expected
            live = [row.chat_id for row in self.rows.values() if row.live]
            assert len(live) == len(set(live)), "a chat with two live calls"

    return Continuations


async def _sqlite(folder: Path) -> str:
    return f"sqlite:///{folder}/voxkeep.db"


def hunt(open_db: Callable[[Path], Awaitable[str]]) -> None:
    run_state_machine_as_test(
        machine(open_db),
        settings=settings(
            max_examples=EXAMPLES, stateful_step_count=STEPS, deadline=None,
            suppress_health_check=list(HealthCheck), database=None,
        ),
    )  # fmt: skip


@pytest.mark.timeout(900)
def test_continuations_are_decided_once_on_sqlite() -> None:
    hunt(_sqlite)


@pytest.mark.timeout(900)
def test_continuations_are_decided_once_on_postgres(pg_server: PgServer) -> None:
    hunt(lambda _: new_database(pg_server))
