"""Under load (docs/scaling.md): callers at once, on a machine a process keeps busy, are each
answered: slower than alone, never silent, and every turn is stored.

Four callers on two cores: with the callers' own rtc clients, the LiveKit server and a process
spinning on one core, that is past what scripts/bench/capacity.py measures as a 2-core
machine's capacity at an unchanged reply latency. Ten callers on two cores overload the machine
itself (the ten callers' clients take about a core): a bare LiveKit agent then misses most
turns too, so that count tests the machine, not the agent."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import uuid
from collections.abc import Iterator

from tests.live.conftest import StartWorker
from tests.live.harness import eventually
from tests.support.crowd import crowd
from tests.support.processes import ModelServer
from voxkeep.local.livekit_server import LocalServer
from voxkeep.sim.speech import Voice
from voxkeep.store import ANY_OWNER, Store

CALLERS = 4
TURNS = 2
SAID = ["I would like to plan a trip to Lisbon.", "What is the weather like there in May?"]


@contextlib.contextmanager
def hogging_a_core() -> Iterator[None]:
    """A process that spins for as long as the block runs: a busy neighbour."""
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield
    finally:
        hog.kill()
        hog.wait(timeout=30)


async def test_four_callers_at_once_beside_a_cpu_hog_are_each_answered_and_stored(
    livekit_server: LocalServer, model_server: ModelServer, start_worker: StartWorker,
    reader: Store,
) -> None:  # fmt: skip
    for text in SAID:
        await model_server.learn(text, Voice())
    await start_worker(VOXKEEP_IDLE_PROCESSES="2")
    tag = uuid.uuid4().hex[:6]
    people = [(f"load-{tag}-{i}", f"caller{i}") for i in range(CALLERS)]
    with hogging_a_core():
        outcomes = await crowd(livekit_server, people, SAID, turns=TURNS)
    for o in outcomes:  # every caller got an agent, and an answer to every turn
        assert (o.served, o.missed, o.error, len(o.latencies)) == (True, 0, None, TURNS), o

    async def stored() -> dict[str, list[str]] | None:
        roles: dict[str, list[str]] = {}
        for chat in (await reader.list_chats(owner=ANY_OWNER, limit=100)).chats:
            page = await reader.messages(chat.id, owner=ANY_OWNER)
            roles[chat.owner] = [m.role for m in page.messages]
        return roles if all(len(r) == 2 * TURNS for r in roles.values()) else None

    roles = await eventually(stored, 30, "every turn stored")
    assert roles == {who: ["user", "assistant"] * TURNS for _, who in people}
