"""Capture benchmark (docs/benchmarks.md): finalize→committed latency and event-loop lag during a
simulated call — the real session, VAD, OpenAI plugin (against the local server) and store —
beside the same call with capture switched off, in the same run. The stand-in OpenAI server runs
in a process of its own, as a real provider would.

    .venv/bin/python scripts/bench/capture.py [--turns 8]

Finalize→committed runs from the session's `conversation_item_added` (the message is final)
to the moment the writer's future resolves (it is durable). Lag is how late a 1 ms timer
fires while the call runs. The caller speaks in real time, as a microphone delivers audio.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import loop_lag, percentile, print_table
from livekit.plugins import silero
from pydantic import SecretStr

from agent.capture import Capture
from agent.history import open_writer
from agent.logs import configure_logging
from agent.server import openai_providers
from agent.settings import Settings
from agent.sim.call import SimCall
from agent.sim.io import MIC_RATE
from agent.sim.speech import ESPEAK_RATE, espeak, resample
from agent.store import open_store
from agent.store.records import Record

SAID = [
    "I'd like to plan a trip to Lisbon.",
    "What's the weather there?",
    "Book it for Friday please.",
    "And a table for dinner too.",
]


async def one_call(folder: Path, turns: int, capture: bool) -> dict[str, list[float]]:
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "agent.sim.openai_server", str(MIC_RATE), *SAID,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert server.stdout is not None and server.stdin is not None
    async with asyncio.timeout(60):
        url = (await server.stdout.readline()).decode().strip()
    settings = Settings(
        db_url=f"sqlite:///{folder}/{'on' if capture else 'off'}.db",
        journal_dir=str(folder / "journal"),
        openai_base_url=url,
        openai_api_key=SecretStr("bench"),
    )
    store = await open_store(settings.db_url)
    await store.migrate()
    writer = await open_writer(settings, store)
    latencies: list[float] = []
    starts: list[float] = []
    submit = writer.submit

    def timed_submit(record: Record) -> asyncio.Future[None]:
        start = time.perf_counter()
        future = submit(record)
        into = latencies if record.kind == "message" else starts
        future.add_done_callback(lambda _: into.append((time.perf_counter() - start) * 1e3))
        return future

    writer.submit = timed_submit  # type: ignore[method-assign]
    clips = [resample(await espeak(text), ESPEAK_RATE, MIC_RATE) for text in SAID]
    attach = Capture.attach
    if not capture:
        Capture.attach = lambda self, session: None  # type: ignore[method-assign]
    lag: list[float] = []
    try:
        call = SimCall(
            settings, writer, silero.VAD.load(), openai_providers(settings), realtime_mic=True
        )
        await call.start()
        async with loop_lag(lag):
            for turn in range(turns):
                await call.say(clips[turn % len(clips)])
        await call.end("hangup")
    finally:
        Capture.attach = attach  # type: ignore[method-assign]
        await writer.aclose()
        server.stdin.close()
        await server.wait()
    return {"latency": latencies, "lag": lag, "start": starts}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--turns", type=int, default=8)
    args = parser.parse_args()
    configure_logging("WARNING", handler=True)
    with tempfile.TemporaryDirectory() as tmp:
        on = await one_call(Path(tmp), args.turns, capture=True)
        off = await one_call(Path(tmp), args.turns, capture=False)
    lat = on["latency"]
    rows: list[list[Any]] = [
        [f"finalize→committed p50 ({len(lat)} messages)", f"{percentile(lat, 0.5):.2f} ms", "", ""],
        ["finalize→committed p99", f"{percentile(lat, 0.99):.2f} ms", "", ""],
        ["finalize→committed max", f"{max(lat):.2f} ms", "", ""],
        ["chat and call rows at call start, max", f"{max(on['start']):.2f} ms", "", ""],
    ]
    for q in (0.5, 0.99):
        a, b = percentile(on["lag"], q), percentile(off["lag"], q)
        rows.append([f"event-loop lag p{int(q * 100)} during the call", f"{a:.2f} ms",
                     f"{b:.2f} ms", f"{a - b:+.2f} ms"])  # fmt: skip
    print_table(["metric", "capture on", "capture off", "added by capture"], rows)
    print(
        "\nTargets (docs/benchmarks.md): finalize→committed p99 ≤ 5 ms; capture adds ≤ 1 ms p99"
        " of lag."
    )


if __name__ == "__main__":
    asyncio.run(main())
