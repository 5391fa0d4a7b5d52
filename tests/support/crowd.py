"""Many callers at once, for the capacity test and benchmark: the callers are spread over a few
processes of their own (one event loop cannot pace a dozen microphones in real time beside
everything else on a busy machine), speak speech rendered once beforehand, and report each
turn's reply latency: the end of their speech to the agent speaking (`lk.agent.state`, which
the agent sets as its first reply audio goes out).

    results = await crowd(server, [(room, identity), ...], texts, turns=2, processes=2)

A process of the crowd is `python -m tests.support.crowd`, given its share as JSON on stdin and
answering with one JSON line on stdout.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tests.support.caller import RATE, TURN_TIMEOUT_S, VOICE, Caller, token
from voxkeep.local.livekit_server import LocalServer
from voxkeep.sim.speech import ESPEAK_RATE, Pcm, Voice, espeak, resample

ROOT = Path(__file__).resolve().parents[2]
FRAME_MS = 20
JOIN_S = 30.0
"""How long a caller waits for an agent before it counts as unserved."""
STAGGER_S = 0.5
"""Between one caller's join and the next one's in the same process: calls arrive, not burst."""


@dataclass
class Outcome:
    """One caller's call."""

    identity: str
    served: bool = False
    """An agent joined within JOIN_S."""
    latencies: list[float] = field(default_factory=list)
    """Seconds from the end of each answered turn's speech to the agent speaking."""
    missed: int = 0
    """Turns not answered within TURN_TIMEOUT_S."""
    error: str | None = None


async def crowd(
    server: LocalServer,
    people: list[tuple[str, str]],
    texts: list[str],
    *,
    turns: int,
    processes: int = 2,
    voice: Voice = VOICE,
) -> list[Outcome]:
    """`people` (room, identity) call at once, spread over `processes`, each saying `turns` of
    `texts` in turn and waiting for each answer; their outcomes, in `people`'s order."""
    with tempfile.TemporaryDirectory(prefix="crowd-") as folder:
        clips = []
        for i, text in enumerate(texts):
            pcm = resample(await espeak(text, voice), ESPEAK_RATE, RATE)
            clips.append(str(Path(folder) / f"{i}.pcm"))
            await asyncio.to_thread(Path(clips[-1]).write_bytes, pcm.tobytes())
        shares = [people[i::processes] for i in range(processes)]
        spec = {"url": server.url, "key": server.api_key, "secret": server.api_secret,
                "clips": clips, "turns": turns}  # fmt: skip
        answers = await asyncio.gather(*[_run({**spec, "people": s}) for s in shares if s])
    found = {o.identity: o for answer in answers for o in answer}
    return [found[identity] for _, identity in people]


async def _run(spec: dict[str, Any]) -> list[Outcome]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.support.crowd", cwd=ROOT,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    limit = len(spec["people"]) * STAGGER_S + JOIN_S + spec["turns"] * (TURN_TIMEOUT_S + 30) + 60
    try:
        out, _ = await asyncio.wait_for(proc.communicate(json.dumps(spec).encode()), limit)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"a crowd process exited with {proc.returncode}")
    return [Outcome(**o) for o in json.loads(out)]


async def _share(spec: dict[str, Any], clips: list[Pcm]) -> list[Outcome]:

    async def call(n: int, room: str, identity: str) -> Outcome:
        await asyncio.sleep(n * STAGGER_S)
        jwt = token(spec["key"], spec["secret"], room, identity)
        caller = Caller(spec["url"], jwt, identity, frame_ms=FRAME_MS)
        outcome = Outcome(identity)
        try:
            await caller.join()
            await caller.agent(JOIN_S)
            outcome.served = True
            for turn in range(spec["turns"]):
                seen = len(caller.states)
                await caller.speak(clips[turn % len(clips)])
                try:
                    await caller.answered(since=seen)
                except TimeoutError:
                    outcome.missed += 1
                    continue
                spoke = next(t for s, t in zip(caller.states[seen:], caller.state_at[seen:],
                                               strict=True) if s == "speaking")  # fmt: skip
                outcome.latencies.append(spoke - caller.said_at[-1])
        except Exception as exc:  # noqa: BLE001 - a caller that fails is an outcome to report
            outcome.error = f"{type(exc).__name__}: {exc}"[:200]
        finally:
            with contextlib.suppress(Exception):
                await caller.leave()
        return outcome

    return list(await asyncio.gather(*[call(n, *who) for n, who in enumerate(spec["people"])]))


def main() -> None:
    spec = json.loads(sys.stdin.read())
    clips = [np.frombuffer(Path(c).read_bytes(), dtype=np.int16) for c in spec["clips"]]
    outcomes = asyncio.run(_share(spec, clips))
    sys.stdout.write(json.dumps([asdict(o) for o in outcomes]) + "\n")
    sys.stdout.flush()
    # the rtc client's native runtime can abort while the interpreter tears it down (a tokio
    # worker's "panic in a function that cannot unwind", seen on a busy machine after every
    # caller had left): the outcomes are out, so leave without that teardown
    os._exit(0)


if __name__ == "__main__":
    main()
